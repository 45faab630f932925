"""The API reference of docs/api.md, written from the OpenAPI document.

`python -m wpk.sidecar.apidoc docs/api.md` rewrites the part between the markers; a test
checks that the file holds exactly what this writes, so the reference cannot drift from the
document the server serves.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .openapi import document

BEGIN = "<!-- BEGIN GENERATED FROM sidecar/openapi.py: python -m wpk.sidecar.apidoc docs/api.md -->"
END = "<!-- END GENERATED -->"


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[-1]}`"
    if "oneOf" in schema:
        return " or ".join(_schema_text(s) for s in schema["oneOf"])
    kind = schema.get("type", "any")
    text = "/".join(kind) if isinstance(kind, list) else str(kind)
    if "enum" in schema:
        text = " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "minimum" in schema or "maximum" in schema:
        text += f" {schema.get('minimum', '')}..{schema.get('maximum', '')}"
    if "pattern" in schema:
        text += f" matching `{schema['pattern']}`"
    return text


def render(doc: dict[str, Any] | None = None) -> str:
    doc = doc or document()
    lines = [BEGIN, ""]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            auth = "no token" if op.get("security") == [] else "bearer token"
            lines.append(f"### `{method.upper()} {path}`")
            lines.append("")
            lines.append(f"{op['summary']} ({auth}).")
            lines.append("")
            params = op.get("parameters", [])
            if params:
                lines.append("| parameter | in | type | |")
                lines.append("|---|---|---|---|")
                for p in params:
                    lines.append(
                        f"| `{p['name']}` | {p['in']} | {_schema_text(p['schema'])} | "
                        f"{p.get('description', '')} |"
                    )
                lines.append("")
            body = op.get("requestBody")
            if body:
                schema = body["content"]["application/json"]["schema"]
                required = set(schema.get("required", []))
                lines.append("| body field | type | |")
                lines.append("|---|---|---|")
                for name, field in schema["properties"].items():
                    note = "required" if name in required else ""
                    desc = field.get("description", "")
                    lines.append(
                        f"| `{name}` | {_schema_text(field)} | {'; '.join(x for x in (note, desc) if x)} |"
                    )
                lines.append("")
            lines.append("| status | answer |")
            lines.append("|---|---|")
            for status, response in op["responses"].items():
                content = response.get("content", {})
                shapes = ", ".join(
                    f"{_schema_text(c['schema'])} ({media})"
                    if media != "application/json"
                    else _schema_text(c["schema"])
                    for media, c in content.items()
                )
                lines.append(f"| {status} | {response['description']}{': ' + shapes if shapes else ''} |")
            lines.append("")
    lines.append("### Shapes")
    lines.append("")
    for name, schema in doc["components"]["schemas"].items():
        props = schema.get("properties")
        if not props:
            lines.append(f"- `{name}`: {_schema_text(schema)}")
            continue
        required = set(schema.get("required", []))
        fields = ", ".join(f"`{k}`" + ("" if k in required else "?") for k in props)
        lines.append(f"- `{name}`: {fields}")
    lines += ["", END]
    return "\n".join(lines)


def rewrite(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + render() + tail


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    path.write_text(rewrite(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

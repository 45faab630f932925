"""Secrets: resolved on the agent, never written anywhere in clear.

A runbook only names its secrets; the values come from `WPK_SECRET_<NAME>` or the file
`$WPK_SECRETS_DIR/<name>`. Every event payload, log line, output, plan and error passes
through `Redactor.redact` before it leaves the runner, so a value can only ever appear as `***`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MASK = "***"
MAX_SECRET_BYTES = 64 * 1024
MIN_SEGMENT_CHARS = 6
"""Runs of a secret between quotes, backslashes and spaces at least this long are masked alone."""
MIN_FORM_CHARS = 4
"""Derived forms shorter than this are not masked on their own (they would mask everyday text)."""


class MissingSecrets(Exception):
    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def resolve_secrets(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values for every declared secret, or MissingSecrets naming all that resolve to nothing."""
    env = os.environ if environ is None else environ
    secrets_dir = env.get("WPK_SECRETS_DIR")
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in names:
        value = env.get(f"WPK_SECRET_{name.upper()}")
        if value is None and secrets_dir:
            candidate = Path(secrets_dir) / name
            if name not in (".", "..") and "/" not in name and candidate.is_file():
                raw = candidate.read_bytes()[:MAX_SECRET_BYTES]
                value = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if value:
            found[name] = value
        else:
            missing.append(name)
    if missing:
        raise MissingSecrets(missing)
    return found


_CONTAINERS = (dict, list)


def _holds_secret_object(value: Any) -> bool:
    """Whether a JSON tree holds a `kind: Secret` mapping anywhere. On every result event, so it
    is a plain loop over containers only (no generator, no call for a leaf or an empty one)."""
    if isinstance(value, dict):
        if value.get("kind") == "Secret":
            return True
        children: Iterable[Any] = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    for child in children:  # noqa: SIM110 - a loop: no generator on the hot path
        if child and isinstance(child, _CONTAINERS) and _holds_secret_object(child):
            return True
    return False


def mask_secret_objects(value: Any) -> Any:
    """Mask the values of Kubernetes Secret objects (`data`, `stringData`) in a JSON tree.

    Results and undo records of `k8s.*` steps can hold whole Secrets (a `k8s.get`, or the
    previous object an `apply` must restore). They are not wpk secrets, so the Redactor does not
    know their values; masking them by shape keeps them out of the event log. Compensation in the
    same process uses the unmasked copy the runner holds in memory.
    """
    if not _holds_secret_object(value):
        return value  # the common case: no copy at all
    if isinstance(value, list):
        return [mask_secret_objects(v) for v in value]
    if not isinstance(value, dict):
        return value
    masked = {k: mask_secret_objects(v) for k, v in value.items()}
    if masked.get("kind") == "Secret" and str(masked.get("apiVersion", "v1")) == "v1":
        for key in ("data", "stringData"):
            if isinstance(masked.get(key), dict):
                masked[key] = {name: MASK for name in masked[key]}
    return masked


def _base64_fragments(raw: bytes) -> list[str]:
    """The part of any base64 text that encodes `raw`, whatever its offset in the encoded bytes.

    Base64 works in 3-byte groups, so `raw` encodes three ways depending on its offset modulo 3
    (Basic auth encodes `user:password`: the password starts mid-group). For each offset, the
    characters that depend on `raw` alone are the same in every encoding: those are masked, and at
    most two characters at each end (a few bits of the secret) stay visible."""
    fragments = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii").rstrip("=")
        first = -(-offset * 8 // 6)  # the first character with no bit of the padding
        last = (offset + len(raw)) * 8 // 6  # one past the last character complete in `raw`
        fragments.append(encoded[first:last])
    fragments.append(base64.b64encode(raw).decode("ascii"))  # the whole value, with padding
    return fragments


def derived_forms(secret: str) -> set[str]:
    """Every form of `secret` the masker looks for: as is, line by line, and encoded.

    Line by line: a PEM key printed by a step reaches the log one line at a time. Encodings:
    base64 and base64url (padded or not, at any offset), percent-encoding (`quote`, `quote_plus`,
    upper and lower case hex), JSON and Python escaping, POSIX shell quoting (also quoted twice),
    hex, and the long runs between a secret's quotes and backslashes (whatever else escapes it)."""
    forms = {secret}
    lines = [line.strip() for line in secret.splitlines()]
    forms.update(line for line in lines if len(line) >= MIN_FORM_CHARS)
    raw = secret.encode("utf-8")
    for fragment in _base64_fragments(raw):
        forms.add(fragment)
        forms.add(fragment.replace("+", "-").replace("/", "_"))
    for text in (secret, *lines):
        percent = urllib.parse.quote(text, safe="")
        forms.update({percent, percent.lower(), urllib.parse.quote(text), urllib.parse.quote_plus(text)})
        forms.update({json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]})
        quoted = {shlex.quote(text), text.replace("'", "'\"'\"'"), shlex.quote(json.dumps(text))}
        # Quoted again, as when a command holding the quoted secret is itself shown quoted
        # (`sh -c '…'` in a dry-run plan): each `'` becomes `'"'"'` once more.
        quoted |= {q.replace("'", "'\"'\"'") for q in quoted}
        forms.update({repr(text)[1:-1], *quoted})
    # Any other escaping scheme splits the secret at its quotes and backslashes: the long runs
    # between them are masked on their own too.
    forms.update(part for part in re.split(r"['\"\\\s]", secret) if len(part) >= MIN_SEGMENT_CHARS)
    forms.update({raw.hex(), raw.hex().upper()})
    return {f for f in forms if len(f) >= min(MIN_FORM_CHARS, len(secret))}


class Redactor:
    """Replaces every secret, and every form derived from one, by `***` in any JSON-like tree.

    Longest forms first, so a whole value is masked before one of its lines. Tests feed each
    form through every output channel (tests/test_hardening_secrets.py)."""

    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            if value:
                forms |= derived_forms(value)
        self.values = sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, value: str) -> str:
        for secret in self.values:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def redact(self, value: Any) -> Any:
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.redact(k) if isinstance(k, str) else k: self.redact(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact(v) for v in value]
        return value

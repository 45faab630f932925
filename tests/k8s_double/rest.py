"""The request/response vocabulary of the API layer, and the decoding every verb shares.

`Request` and `Response` are what `Api.handle` takes and gives (no HTTP in them); the helpers
decode bodies, `dryRun`, `fieldManager` and patches the way kube-apiserver does, raising `ApiError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from .errors import ApiError, bad_request
from .patches import PatchError, json_patch, merge_patch, strategic_merge_patch
from .resources import ResourceType

if TYPE_CHECKING:
    from .rbac import Identity

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_PATCH]
PROPAGATION = ("Orphan", "Background", "Foreground")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    user: Identity | None = None  # who sent it (None: a direct call, not authorized)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    stream: Iterator[bytes] | None = None  # a watch: chunks until the stream ends
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any) -> Response:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode())

    @classmethod
    def error(cls, error: ApiError) -> Response:
        return cls.json(error.code, error.status())


@dataclass(frozen=True, slots=True)
class Route:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def int_param(request: Request, name: str) -> int | None:
    raw = request.param(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"invalid {name} {raw!r}: not an integer") from None


def bool_param(request: Request, name: str) -> bool:
    return (request.param(name) or "").lower() in ("true", "1")


def strip_type(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}


def dry_run_requested(request: Request, options: Mapping[str, Any] | None = None) -> bool:
    values = list(request.query.get("dryRun", []))
    if options and isinstance(options.get("dryRun"), list):
        values += options["dryRun"]
    for value in values:
        if value != "All":
            raise bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return bool(values)


def field_manager(request: Request) -> str:
    given = request.param("fieldManager")
    if given is not None:
        if len(given) > 128:
            raise bad_request("fieldManager: Too long: may not be longer than 128")
        return given
    agent = request.headers.get("user-agent", "")
    return agent.split("/")[0] or "unknown"


def decode_body(request: Request, *, yaml_ok: bool = False) -> Any:
    if not request.body:
        raise bad_request("the request body is empty")
    try:
        if yaml_ok or request.media_type in ("application/yaml", "text/yaml"):
            return yaml.safe_load(request.body.decode("utf-8"))
        return json.loads(request.body)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the body of the request could not be decoded: {exc}") from None


def apply_patch_document(
    media_type: str, target: dict[str, Any], patch: Any, fields_path: tuple[str, ...] = ()
) -> Any:
    try:
        if media_type == MERGE_PATCH:
            if not isinstance(patch, dict):
                raise PatchError("a merge patch must be a JSON object", malformed=True)
            return merge_patch(target, patch)
        if media_type == STRATEGIC_PATCH:
            return strategic_merge_patch(target, patch, fields_path)
        return json_patch(target, patch)
    except PatchError as exc:
        if exc.malformed:
            raise bad_request(str(exc)) from None
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {exc}", {}
        ) from None

"""Object validation: the checks that turn a bad write into 400 (undecodable) or 422 (Invalid).

The real server first decodes the body into a typed object (a wrong `apiVersion`/`kind`, or a
field of the wrong JSON type, is 400 BadRequest), then validates it (422 Invalid, one cause per
field). The double does the same split, for the fields its resources use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import Cause, bad_request, invalid, invalid_value, required
from .resources import ResourceType
from .selectors import match_label_selector

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def check_type(rt: ResourceType, obj: Any) -> None:
    """Decoding: what a Go client would fail to unmarshal. Raises 400 BadRequest."""
    if not isinstance(obj, dict):
        raise bad_request(f"the body of the request is not a {rt.kind} object")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version is not None and api_version != rt.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match "
            f"the expected API version ({rt.api_version})"
        )
    if kind is not None and kind != rt.kind:
        raise bad_request(f"the object provided is unrecognized (must be of type {rt.kind}): {kind}")
    meta = obj.get("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request(
            f"json: cannot unmarshal {type(meta).__name__} into Go struct field {rt.kind}.metadata"
        )
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
        ):
            raise bad_request(
                f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{key} "
                "of type map[string]string"
            )
    for key in ("spec", "status"):
        if key in obj and obj[key] is not None and not isinstance(obj[key], dict):
            raise bad_request(f"json: cannot unmarshal into Go struct field {rt.kind}.{key}")
    spec = obj.get("spec") or {}
    if (
        "replicas" in spec
        and spec["replicas"] is not None
        and (isinstance(spec["replicas"], bool) or not isinstance(spec["replicas"], int))
    ):
        raise bad_request(
            f"json: cannot unmarshal into Go struct field {rt.kind}Spec.spec.replicas of type int32"
        )
    if rt.kind == "ConfigMap":
        data = obj.get("data")
        if data is not None and (
            not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values())
        ):
            raise bad_request("json: cannot unmarshal into Go struct field ConfigMap.data of type string")


def _name_causes(rt: ResourceType, meta: Mapping[str, Any]) -> list[Cause]:
    name = meta.get("name")
    if not name:
        return [required("metadata.name", "Required value: name or generateName is required")]
    if not isinstance(name, str):
        return [invalid_value("metadata.name", name, "must be a string")]
    if rt.kind in ("Namespace",):
        pattern, limit, what = _DNS1123_LABEL, 63, "a lowercase RFC 1123 label"
    elif rt.kind == "Service":
        pattern, limit, what = _DNS1035_LABEL, 63, "a DNS-1035 label"
    else:
        pattern, limit, what = _DNS1123_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain"
    if len(name) > limit or not pattern.match(name):
        return [invalid_value("metadata.name", name, f"must be {what} (at most {limit} characters)")]
    return []


def _label_causes(meta: Mapping[str, Any]) -> list[Cause]:
    causes = []
    for key, value in (meta.get("labels") or {}).items():
        name = key.rsplit("/", 1)[-1]
        if not _LABEL_NAME.match(name) or len(name) > 63:
            causes.append(
                invalid_value(
                    "metadata.labels",
                    key,
                    "name part must consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                invalid_value(
                    "metadata.labels",
                    value,
                    "a valid label must be an empty string or "
                    "consist of alphanumeric characters, '-', '_' or '.'",
                )
            )
    return causes


def _container_causes(path: str, containers: Any) -> list[Cause]:
    if not isinstance(containers, list) or not containers:
        return [required(path)]
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        where = f"{path}[{i}]"
        if not isinstance(container, dict):
            causes.append(invalid_value(where, container, "must be an object"))
            continue
        name = container.get("name")
        if not name:
            causes.append(required(f"{where}.name"))
        elif not isinstance(name, str) or not _DNS1123_LABEL.match(name):
            causes.append(invalid_value(f"{where}.name", name, "must be a lowercase RFC 1123 label"))
        elif name in seen:
            causes.append(Cause("FieldValueDuplicate", f'Duplicate value: "{name}"', f"{where}.name"))
        else:
            seen.add(name)
        if not container.get("image"):
            causes.append(required(f"{where}.image"))
        for j, port in enumerate(container.get("ports") or []):
            number = port.get("containerPort") if isinstance(port, dict) else None
            if not isinstance(number, int) or not 0 < number < 65536:
                causes.append(
                    invalid_value(
                        f"{where}.ports[{j}].containerPort", number, "must be between 1 and 65535, inclusive"
                    )
                )
    return causes


def _template_causes(spec: Mapping[str, Any], *, needs_selector: bool) -> list[Cause]:
    causes: list[Cause] = []
    selector = spec.get("selector")
    template = spec.get("template")
    if needs_selector and not selector:
        causes.append(required("spec.selector"))
    elif needs_selector and not (
        isinstance(selector, dict) and (selector.get("matchLabels") or selector.get("matchExpressions"))
    ):
        causes.append(invalid_value("spec.selector", selector, "empty selector is invalid for deployment"))
    if not isinstance(template, dict):
        causes.append(required("spec.template"))
        return causes
    labels = (template.get("metadata") or {}).get("labels") or {}
    if needs_selector and selector and not match_label_selector(selector, labels):
        causes.append(
            invalid_value(
                "spec.template.metadata.labels", labels, "`selector` does not match template `labels`"
            )
        )
    pod_spec = template.get("spec")
    causes += _container_causes("spec.template.spec.containers", (pod_spec or {}).get("containers"))
    return causes


def _spec_causes(rt: ResourceType, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    if rt.kind in ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"):
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            causes.append(invalid_value("spec.replicas", replicas, "must be greater than or equal to 0"))
        causes += _template_causes(spec, needs_selector=True)
        if old is not None and (old.get("spec") or {}).get("selector") != spec.get("selector"):
            causes.append(invalid_value("spec.selector", spec.get("selector"), "field is immutable"))
    elif rt.kind == "Pod":
        causes += _container_causes("spec.containers", spec.get("containers"))
    elif rt.kind == "Service":
        for i, port in enumerate(spec.get("ports") or []):
            number = port.get("port") if isinstance(port, dict) else None
            if not isinstance(number, int) or not 0 < number < 65536:
                causes.append(
                    invalid_value(f"spec.ports[{i}].port", number, "must be between 1 and 65535, inclusive")
                )
    elif rt.kind == "ConfigMap":
        for key in obj.get("data") or {}:
            if not _CONFIG_KEY.match(key):
                causes.append(
                    invalid_value(
                        "data",
                        key,
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                    )
                )
    elif rt.kind == "Event" and not isinstance(obj.get("involvedObject"), dict):
        causes.append(required("involvedObject"))
    return causes


def validate(rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None = None) -> None:
    """Raise 422 Invalid listing every problem of a decoded object."""
    meta = obj.get("metadata") or {}
    causes = _name_causes(rt, meta) + _label_causes(meta) + _spec_causes(rt, obj, old)
    if causes:
        raise invalid(rt.kind, rt.group, str(meta.get("name") or ""), causes)

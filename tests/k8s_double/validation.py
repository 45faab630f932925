"""Object validation: the checks that turn a bad write into 400 (undecodable) or 422 (Invalid).

The real server first decodes the body into a typed object (a wrong `apiVersion`/`kind`, or a
field of the wrong JSON type, is 400 BadRequest), then validates it (422 Invalid, one cause per
field). The double does the same split, for the fields its resources use.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
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
    if rt.kind == "Secret":
        _check_secret_type(obj)
    if rt.kind == "Role":
        _check_list_of_objects(obj, "rules", "Role.rules", "PolicyRule")
    if rt.kind == "RoleBinding":
        _check_list_of_objects(obj, "subjects", "RoleBinding.subjects", "Subject")
        if obj.get("roleRef") is not None and not isinstance(obj["roleRef"], dict):
            raise bad_request(
                "json: cannot unmarshal into Go struct field RoleBinding.roleRef of type RoleRef"
            )


def _check_secret_type(obj: Mapping[str, Any]) -> None:
    """`data` is map[string][]byte (base64 in JSON), `stringData` map[string]string."""
    for key in ("data", "stringData"):
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad_request(f"json: cannot unmarshal into Go struct field Secret.{key} of type string")
    for encoded in (obj.get("data") or {}).values():
        try:
            base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise bad_request(
                'Secret in version "v1" cannot be handled as a Secret: illegal base64 data'
            ) from None


def _check_list_of_objects(obj: Mapping[str, Any], key: str, where: str, item: str) -> None:
    value = obj.get(key)
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise bad_request(f"json: cannot unmarshal into Go struct field {where} of type []v1.{item}")
    for entry in value:
        for field_name, field_value in entry.items():
            if isinstance(field_value, list) and not all(isinstance(v, str) for v in field_value):
                raise bad_request(
                    f"json: cannot unmarshal into Go struct field {item}.{where}.{field_name} of type string"
                )


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
    causes += _pod_spec_causes("spec.template.spec", pod_spec if isinstance(pod_spec, dict) else {})
    return causes


_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_SUFFIX: dict[str, int | Decimal] = {
    "": 1,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def parse_quantity(value: Any) -> Decimal | None:
    """A resource.Quantity (`250m`, `64Mi`, `1e3`, 2) as a number; None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    match = _QUANTITY.match(str(value))
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * Decimal(_SUFFIX[suffix])
    except (InvalidOperation, KeyError):
        return None


def _resource_causes(where: str, resources: Any) -> list[Cause]:
    if not isinstance(resources, dict):
        return []
    causes: list[Cause] = []
    parsed: dict[str, dict[str, Decimal]] = {}
    for part in ("limits", "requests"):
        for name, raw in (resources.get(part) or {}).items():
            quantity = parse_quantity(raw)
            if quantity is None:
                causes.append(
                    invalid_value(
                        f"{where}.resources.{part}[{name}]",
                        raw,
                        "quantities must match the regular expression "
                        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                    )
                )
            else:
                parsed.setdefault(part, {})[name] = quantity
    for name, request in parsed.get("requests", {}).items():
        limit = parsed.get("limits", {}).get(name)
        if limit is not None and request > limit:
            raw = resources["requests"][name]
            causes.append(
                invalid_value(
                    f"{where}.resources.requests",
                    raw,
                    f"must be less than or equal to {name} limit of {resources['limits'][name]}",
                )
            )
    return causes


def _security_causes(where: str, context: Any) -> list[Cause]:
    if not isinstance(context, dict):
        return []
    causes: list[Cause] = []
    if context.get("allowPrivilegeEscalation") is False:
        if context.get("privileged") is True:
            causes.append(
                invalid_value(
                    f"{where}.securityContext",
                    "{...}",
                    "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                )
            )
        added = ((context.get("capabilities") or {}).get("add")) or []
        if "SYS_ADMIN" in added or "CAP_SYS_ADMIN" in added:
            causes.append(
                invalid_value(
                    f"{where}.securityContext",
                    "{...}",
                    "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
                )
            )
    for key in ("runAsUser", "runAsGroup"):
        value = context.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            causes.append(
                invalid_value(
                    f"{where}.securityContext.{key}", value, "must be between 0 and 2147483647, inclusive"
                )
            )
    return causes


def _pod_spec_causes(prefix: str, spec: Mapping[str, Any]) -> list[Cause]:
    """Containers, volumes and the mounts that name them, resources and security contexts."""
    causes = _container_causes(f"{prefix}.containers", spec.get("containers"))
    volumes: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        name = volume.get("name") if isinstance(volume, dict) else None
        if not isinstance(name, str) or not _DNS1123_LABEL.match(name):
            causes.append(
                invalid_value(f"{prefix}.volumes[{i}].name", name, "must be a lowercase RFC 1123 label")
            )
        elif name in volumes:
            causes.append(
                Cause("FieldValueDuplicate", f'Duplicate value: "{name}"', f"{prefix}.volumes[{i}].name")
            )
        else:
            volumes.add(name)
        sources = [k for k in (volume or {}) if k != "name"] if isinstance(volume, dict) else []
        if len(sources) != 1:
            causes.append(
                required(f"{prefix}.volumes[{i}]", "must specify exactly 1 volume type")
                if not sources
                else Cause(
                    "FieldValueForbidden",
                    "Forbidden: may not specify more than 1 volume type",
                    f"{prefix}.volumes[{i}]",
                )
            )
    causes += _security_causes(prefix, spec.get("securityContext"))
    for i, container in enumerate(spec.get("containers") or []):
        if not isinstance(container, dict):
            continue
        where = f"{prefix}.containers[{i}]"
        for j, mount in enumerate(container.get("volumeMounts") or []):
            name = mount.get("name") if isinstance(mount, dict) else None
            if name not in volumes:
                causes.append(
                    Cause("FieldValueNotFound", f'Not found: "{name}"', f"{where}.volumeMounts[{j}].name")
                )
            if not isinstance(mount, dict) or not mount.get("mountPath"):
                causes.append(required(f"{where}.volumeMounts[{j}].mountPath"))
        causes += _resource_causes(where, container.get("resources"))
        causes += _security_causes(where, container.get("securityContext"))
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
        causes += _pod_spec_causes("spec", spec)
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
    elif rt.kind == "Secret":
        causes += _secret_causes(obj, old)
    elif rt.kind == "Role":
        for i, rule in enumerate(obj.get("rules") or []):
            causes += _policy_rule_causes(f"rules[{i}]", rule)
    elif rt.kind == "RoleBinding":
        causes += _role_binding_causes(obj, old)
    return causes


def _secret_causes(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    data = obj.get("data") or {}
    size = 0
    for key, encoded in data.items():
        if not _CONFIG_KEY.match(key):
            causes.append(
                invalid_value(
                    f"data[{key}]",
                    key,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                )
            )
        size += len(base64.b64decode(encoded))
    if size > 1024 * 1024:
        causes.append(Cause("FieldValueTooLong", "Too long: must have at most 1048576 bytes", "data"))
    if old is not None and old.get("immutable") is True:
        if old.get("data") != obj.get("data"):
            causes.append(
                Cause("FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set", "data")
            )
        if obj.get("immutable") is not True:
            causes.append(
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: field is immutable when `immutable` is set",
                    "immutable",
                )
            )
    if old is not None and old.get("type") != obj.get("type"):
        causes.append(invalid_value("type", obj.get("type"), "field is immutable"))
    return causes


def _policy_rule_causes(where: str, rule: Mapping[str, Any]) -> list[Cause]:
    """`ValidatePolicyRule` for a namespaced Role."""
    causes: list[Cause] = []
    if not rule.get("verbs"):
        causes.append(required(f"{where}.verbs", "Required value: verbs must contain at least one value"))
    if rule.get("nonResourceURLs"):
        causes.append(
            invalid_value(
                f"{where}.nonResourceURLs",
                rule["nonResourceURLs"],
                "namespaced rules cannot apply to non-resource URLs",
            )
        )
        return causes
    if not rule.get("apiGroups"):
        causes.append(
            required(
                f"{where}.apiGroups", "Required value: resource rules must supply at least one api group"
            )
        )
    if not rule.get("resources"):
        causes.append(
            required(f"{where}.resources", "Required value: resource rules must supply at least one resource")
        )
    return causes


_SUBJECT_GROUPS = {
    "ServiceAccount": "",
    "User": "rbac.authorization.k8s.io",
    "Group": "rbac.authorization.k8s.io",
}


def _role_binding_causes(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    ref = obj.get("roleRef") or {}
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{ref.get("apiGroup", "")}": '
                'supported values: "rbac.authorization.k8s.io"',
                "roleRef.apiGroup",
            )
        )
    if ref.get("kind") not in ("Role", "ClusterRole"):
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{ref.get("kind", "")}": supported values: "Role", "ClusterRole"',
                "roleRef.kind",
            )
        )
    if not ref.get("name"):
        causes.append(required("roleRef.name"))
    if old is not None and (old.get("roleRef") or {}) != ref:
        causes.append(invalid_value("roleRef", ref.get("name"), "cannot change roleRef"))
    for i, subject in enumerate(obj.get("subjects") or []):
        where = f"subjects[{i}]"
        kind = subject.get("kind")
        if kind not in _SUBJECT_GROUPS:
            causes.append(
                Cause(
                    "FieldValueNotSupported",
                    f'Unsupported value: "{kind}": supported values: "ServiceAccount", "User", "Group"',
                    f"{where}.kind",
                )
            )
            continue
        if not subject.get("name"):
            causes.append(required(f"{where}.name"))
        elif kind == "ServiceAccount" and not _DNS1123_SUBDOMAIN.match(str(subject["name"])):
            causes.append(
                invalid_value(f"{where}.name", subject["name"], "must be a lowercase RFC 1123 subdomain")
            )
        if subject.get("apiGroup", "") != _SUBJECT_GROUPS[kind]:
            causes.append(
                Cause(
                    "FieldValueNotSupported",
                    f'Unsupported value: "{subject.get("apiGroup", "")}": '
                    f'supported values: "{_SUBJECT_GROUPS[kind]}"',
                    f"{where}.apiGroup",
                )
            )
    return causes


def validate(rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None = None) -> None:
    """Raise 422 Invalid listing every problem of a decoded object."""
    meta = obj.get("metadata") or {}
    causes = _name_causes(rt, meta) + _label_causes(meta) + _spec_causes(rt, obj, old)
    if causes:
        raise invalid(rt.kind, rt.group, str(meta.get("name") or ""), causes)

"""Secrets: resolved on the agent, never written anywhere in clear.

A runbook only names its secrets; the values come from `WPK_SECRET_<NAME>` or the file
`$WPK_SECRETS_DIR/<name>`. Every event payload, log line, output, plan and error passes
through `Redactor.redact` before it leaves the runner, so a value can only ever appear as `***`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MASK = "***"
MAX_SECRET_BYTES = 64 * 1024


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


def _holds_secret_object(value: Any) -> bool:
    if isinstance(value, dict):
        if value.get("kind") == "Secret":
            return True
        return any(isinstance(v, dict | list) and _holds_secret_object(v) for v in value.values())
    if isinstance(value, list):
        return any(isinstance(v, dict | list) and _holds_secret_object(v) for v in value)
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


class Redactor:
    """Replaces every secret value (longest first) by `***` in any JSON-like tree."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = sorted({v for v in values if v}, key=len, reverse=True)

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

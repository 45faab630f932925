"""The agent configuration file (`--config agent.yaml`): read strictly, or not at all.

One layout, checked against `wpk-schemas/v1/agent-config.schema.json`:

    adapters:            # one section per adapter, named as in `uses:`
      shell: {...}
      api: {...}
      k8s: {...}
    limits: {...}        # the engine's budgets (engine/limits.py)

A setting that is silently dropped is worse than none: `api: {allow_private: false}` at the top
level once left loopback open (issue 9). So an unknown key, a misplaced section or a bad value
stops start-up with `file:line:col`, like a runbook error, before any step runs; each configured
adapter is also built once, so its own checks (a malformed CIDR, say) fail at start-up too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Diagnostic, error
from .limits import Limits
from .loader import LoadError, PathT, SourceDoc, load_file
from .schema import describe_path, friendly_message, iter_leaf_errors, make_validator

__all__ = ["AgentConfig", "ConfigError", "check_agent_config", "load_agent_config"]

_SECTIONS = ("adapters", "limits")


@dataclass(frozen=True, slots=True)
class AgentConfig:
    adapters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)


class ConfigError(Exception):
    """The configuration is refused; each diagnostic is one `file:line:col: error: …` line."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics


def load_agent_config(path: str | None) -> AgentConfig:
    """Read and check the file; no path means the defaults. Raises ConfigError."""
    if not path:
        return AgentConfig()
    try:
        doc = load_file(path)
    except LoadError as exc:
        raise ConfigError([exc.diagnostic]) from None
    problems = check_agent_config(doc)
    if problems:
        raise ConfigError(problems)
    data = doc.data if isinstance(doc.data, Mapping) else {}
    return AgentConfig(
        adapters={k: dict(v) for k, v in data.get("adapters", {}).items()},
        limits=Limits.from_mapping(data.get("limits", {})),
    )


def check_agent_config(doc: SourceDoc) -> list[Diagnostic]:
    """Every problem of a loaded configuration document (empty: it is valid)."""
    if doc.data is None:
        return []  # an empty file: every default
    from wpk import schemas

    validator = make_validator(schemas.agent_config_schema(), formats=False, trusted=True)
    found: list[Diagnostic] = []
    for err in iter_leaf_errors(validator, doc.data):
        path: PathT = tuple(err.absolute_path)
        message, unknown = friendly_message(err, _where(path))
        if unknown is not None and not path:
            message += _misplaced_hint(unknown)
        mark = doc.key_mark(path + (unknown,)) if unknown is not None else doc.mark(path)
        found.append(error(doc.path, mark.line, mark.col, f"config-{err.validator}", message))
    if found:
        return found
    return _check_adapters(doc)


def _where(path: PathT) -> str:
    return "the agent configuration" if not path else f"agent configuration {describe_path(path)}"


def _misplaced_hint(key: str) -> str:
    from wpk.adapters import registry

    if key in registry.adapter_names():
        return f"; adapter settings go under `adapters:` (`adapters: {{{key}: …}}`)"
    return " (the sections are: " + ", ".join(_SECTIONS) + ")"


def _check_adapters(doc: SourceDoc) -> list[Diagnostic]:
    """Build each configured adapter once, so its own checks run now, not at its first step."""
    from wpk.adapters import registry

    found: list[Diagnostic] = []
    sections = doc.data.get("adapters", {}) if isinstance(doc.data, Mapping) else {}
    for name, section in sections.items():
        path: PathT = ("adapters", name)
        try:
            registry.create_adapter(name, section)
        except registry.UnknownAdapter:
            mark = doc.key_mark(path)
            known = ", ".join(registry.adapter_names())
            message = f"adapter {name!r} is not installed (installed: {known})"
            found.append(error(doc.path, mark.line, mark.col, "config-adapter", message))
        except (ValueError, TypeError) as exc:
            mark = doc.mark(path)
            found.append(error(doc.path, mark.line, mark.col, "config-adapter", f"adapters.{name}: {exc}"))
    return found

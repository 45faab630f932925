"""The published WPK JSON Schemas, shipped as package data.

`wpk.schema.json` describes a runbook package; `adapters/<adapter>.<action>.json` describes the
`with:` inputs of one adapter action. These files are the contract editors, CI and the validator
share, so they are loaded from here and nowhere else. `agent-config.schema.json` describes the
agent's own configuration file (never part of a runbook).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "v1"


def schema_dir() -> Path:
    # The files sit beside this module in every way wpk is installed (wheel, editable, source
    # tree); `importlib.resources.files` found the same folder at 2-6 ms of start-up.
    return Path(__file__).resolve().parent / SCHEMA_VERSION


def schema_path() -> Path:
    return schema_dir() / "wpk.schema.json"


@functools.cache
def runbook_schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(schema_path().read_text(encoding="utf-8"))
    return data


def agent_config_schema_path() -> Path:
    return schema_dir() / "agent-config.schema.json"


@functools.cache
def agent_config_schema() -> dict[str, Any]:
    """The agent configuration's schema (`--config FILE`): adapter sections and limits."""
    data: dict[str, Any] = json.loads(agent_config_schema_path().read_text(encoding="utf-8"))
    return data


@functools.cache
def action_schemas() -> dict[str, dict[str, Any]]:
    """Every built-in action's input schema, keyed by `adapter.action`."""
    found: dict[str, dict[str, Any]] = {}
    for file in sorted((schema_dir() / "adapters").glob("*.json")):
        found[file.name.removesuffix(".json")] = json.loads(file.read_text(encoding="utf-8"))
    return found

"""Issue 9, finding 5: the agent configuration is strict, and its documented examples are valid.

`api: {allow_private: false}` at the top level (the layout docs/adapters-api.md once showed) was
dropped silently and loopback stayed open; an unknown key or bad value failed only at the first
API step, after earlier steps had run. Now the one layout has a schema, and every mistake stops
start-up with `file:line:col` before anything is validated or run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from wpk import schemas
from wpk.engine.agent_config import ConfigError, check_agent_config, load_agent_config
from wpk.engine.limits import Limits
from wpk.engine.loader import load_text

DOCS = Path(__file__).resolve().parent.parent / "docs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_agent_config(str(write(tmp_path, text)))
    return [str(d) for d in info.value.diagnostics]


def test_the_schema_is_shipped_and_is_valid_json_schema() -> None:
    schema = schemas.agent_config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith("/v1/agent-config.schema.json")
    assert schemas.agent_config_schema_path().is_file()


def test_top_level_adapter_section_is_refused_with_a_hint(tmp_path: Path) -> None:
    problems = refusal(tmp_path, "api:\n  allow_private: false\n")
    path = tmp_path / "agent.yaml"
    assert problems == [
        f"{path}:1:1: error: unknown field 'api' in the agent configuration; "
        "adapter settings go under `adapters:` (`adapters: {api: …}`)"
    ]


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("adapters:\n  api:\n    allow_privat: false\n", "3:5", "unknown field 'allow_privat'"),
        ("adapters:\n  api:\n    allow_private: 'no'\n", "3:20", "expected boolean"),
        ("adapters:\n  shell:\n    grace_seconds: -1\n", "3:20", "grace_seconds"),
        ("adapters:\n  k8s:\n    context: 7\n", "3:14", "expected string"),
        ("adapters:\n  core: {x: 1}\n", "2:9", "core"),
        ("adapters:\n  api:\n    deny_networks: ['10.0.0.0/33']\n", "3:5", "is not a network in CIDR form"),
        ("adapters:\n  nosuch: {}\n", "2:3", "adapter 'nosuch' is not installed"),
        ("limits:\n  for_each_items: 1.5\n", "2:19", "expected integer"),
        ("limits:\n  regex_second: 2\n", "2:3", "did you mean 'regex_seconds'"),
        ("- adapters\n", "1:1", "expected mapping"),
    ],
)
def test_mistakes_stop_start_up_with_their_position(
    tmp_path: Path, text: str, where: str, words: str
) -> None:
    problems = refusal(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{tmp_path / 'agent.yaml'}:{where}: error: "), problems
    assert words in problems[0]


def test_a_valid_configuration_is_read() -> None:
    assert load_agent_config(None).limits == Limits()


def test_limits_and_sections_are_read(tmp_path: Path) -> None:
    config = load_agent_config(
        str(write(tmp_path, "adapters:\n  api: {allow_private: false}\nlimits: {for_each_items: 7}\n"))
    )
    assert config.adapters == {"api": {"allow_private": False}}
    assert config.limits.for_each_items == 7
    assert config.limits.regex_seconds == Limits().regex_seconds


def _documented_configs() -> list[tuple[str, str]]:
    """Every example marked `# agent.yaml` in docs/: (where, text)."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for match in re.finditer(r"```yaml\n(# agent\.yaml\n.*?)```", page.read_text(encoding="utf-8"), re.S):
            line = page.read_text(encoding="utf-8")[: match.start()].count("\n") + 1
            found.append((f"{page.name}:{line}", match.group(1)))
    return found


def test_docs_show_agent_configuration_examples() -> None:
    pages = {where.split(":")[0] for where, _ in _documented_configs()}
    assert {"running.md", "adapters-api.md", "adapters-k8s.md", "security.md"} <= pages


@pytest.mark.parametrize(("where", "text"), _documented_configs(), ids=lambda v: v if ":" in v else "")
def test_every_documented_agent_configuration_is_valid(where: str, text: str) -> None:
    assert check_agent_config(load_text(text, where)) == []


def test_no_doc_shows_an_adapter_section_at_the_top_level() -> None:
    for page in DOCS.glob("*.md"):
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            first = block.lstrip().splitlines()[0] if block.strip() else ""
            assert not re.match(r"(api|k8s|shell|core):", first), f"{page.name}: {first}"


def test_allow_private_false_really_blocks_loopback(tmp_path: Path) -> None:
    # The case, end to end: with the setting where the docs put it, a request to
    # loopback is refused by the host policy (no server is needed: nothing is sent).
    runbook = tmp_path / "rb.json"
    runbook.write_text(
        json.dumps(
            {
                "apiVersion": "wpk/v1",
                "kind": "Runbook",
                "metadata": {"name": "rb", "version": "1.0.0"},
                "spec": {
                    "steps": [{"id": "a", "uses": "api.request", "with": {"url": "http://127.0.0.1:9/"}}]
                },
            }
        ),
        encoding="utf-8",
    )
    config = write(tmp_path, "adapters:\n  api: {allow_private: false}\n")
    argv = ["run", str(runbook), "--store", "memory:", "--format", "json", "--config", str(config)]
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.run(
        [sys.executable, "-m", "wpk.engine.cli", *argv], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    step = json.loads(proc.stdout)["steps"][0]
    assert step["status"] == "failed"
    assert "allow_private is false" in step["error"], step["error"]


def test_a_bad_configuration_stops_before_any_step(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    runbook = tmp_path / "rb.json"
    runbook.write_text(
        json.dumps(
            {
                "apiVersion": "wpk/v1",
                "kind": "Runbook",
                "metadata": {"name": "rb", "version": "1.0.0"},
                "spec": {
                    "steps": [{"id": "a", "uses": "shell.run", "with": {"argv": ["touch", str(marker)]}}]
                },
            }
        ),
        encoding="utf-8",
    )
    config = write(tmp_path, "adapters:\n  api: {allow_private: nope}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wpk.engine.cli",
            "run",
            str(runbook),
            "--store",
            "memory:",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{config}:2:")
    assert not marker.exists()

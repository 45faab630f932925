"""Issue 9, finding 8: the smaller holes, each with its hostile input."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from runbooks import run, workflow

from wpk.adapters.api import inputs as api_inputs
from wpk.adapters.base import InputError
from wpk.adapters.guards.envpolicy import forbidden_env_key
from wpk.engine.expressions import RenderError, render_template
from wpk.engine.params import ParamError, resolve_params
from wpk.engine.state import StepStatus
from wpk.engine.validate import validate_path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wpk.engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
        cwd=tmp_path,
    )


def runbook(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / "rb.json"
    doc = {"apiVersion": "wpk/v1", "kind": "Runbook", "metadata": {"name": "rb", "version": "1.0.0"}}
    path.write_text(json.dumps({**doc, "spec": spec}), encoding="utf-8")
    return path


# -- a parameter in a URL path ----------------------------------------------------------------------


async def _serve(nursery: trio.Nursery, seen: list[str]) -> int:
    async def handle(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        seen.append(data.split(b" ")[1].decode())
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


async def test_urlencode_keeps_a_parameter_inside_its_path_segment(nursery: trio.Nursery) -> None:
    seen: list[str] = []
    port = await _serve(nursery, seen)
    wf = workflow(f"""
        params: {{user: {{type: string}}}}
        steps:
          - id: get
            uses: api.request
            with: {{url: "http://127.0.0.1:{port}/api/users/{{{{ params.user | urlencode }}}}"}}
    """)
    runner, _ = await run(wf, params={"user": "../../admin?x=1#"})
    assert runner.state.step("get").status is StepStatus.COMPLETED, runner.state.step("get").error
    assert seen == ["/api/users/..%2F..%2Fadmin%3Fx%3D1%23"]


async def test_an_unencoded_parameter_cannot_reroute_a_request(nursery: trio.Nursery) -> None:
    seen: list[str] = []
    port = await _serve(nursery, seen)
    wf = workflow(f"""
        params: {{user: {{type: string}}}}
        steps:
          - id: get
            uses: api.request
            with: {{url: "http://127.0.0.1:{port}/api/users/{{{{ params.user }}}}"}}
    """)
    runner, _ = await run(wf, params={"user": "../../admin?x=1#"})
    record = runner.state.step("get")
    assert record.status is StepStatus.FAILED
    assert "'..' segment" in (record.error or "") and "urlencode" in (record.error or "")
    assert seen == []  # nothing was sent


@pytest.mark.parametrize("path", ["/a/../b", "/a/./b", "/a/%2e%2E/b", "/a/..", "/.%2e/x"])
def test_dot_segments_are_refused(path: str) -> None:
    with pytest.raises(InputError, match="segment"):
        api_inputs.parse_request({"url": f"https://example.com{path}"}, max_response_bytes=1024)


def test_dots_inside_a_segment_are_fine() -> None:
    spec = api_inputs.parse_request(
        {"url": "https://example.com/v1.2/a..b/.well-known"}, max_response_bytes=1
    )
    assert spec.url.endswith("/v1.2/a..b/.well-known")


def test_urlencode_filter() -> None:
    assert render_template("{{ 'a b/c?d#e&f' | urlencode }}", {}) == "a%20b%2Fc%3Fd%23e%26f"
    assert render_template("{{ '..' | urlencode }}", {}) == "%2E%2E"
    assert render_template("{{ {'q': 'a b', 'n': 1} | urlencode }}", {}) == "q=a%20b&n=1"
    assert "urlencode" in (DOCS / "expressions.md").read_text(encoding="utf-8")


# -- header values --------------------------------------------------------------------------------


def test_non_ascii_header_value_is_a_clear_input_error() -> None:
    with pytest.raises(InputError, match="header X-Name contains non-ASCII characters"):
        api_inputs.parse_request(
            {"url": "https://example.com/", "headers": {"X-Name": "Zoë"}}, max_response_bytes=1
        )


async def test_non_ascii_header_fails_the_step_not_the_engine() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: api.request, with: {url: "https://example.com/", headers: {X-Name: "Zoë"}}}
    """)
    runner, _ = await run(wf)
    error = runner.state.step("a").error or ""
    assert "non-ASCII" in error and "unexpected" not in error


# -- errors do not echo huge values or files ------------------------------------------------------


def test_errors_quote_at_most_an_excerpt_of_a_huge_value() -> None:
    big = "y" * 100_000
    with pytest.raises(ParamError) as info:
        resolve_params({"name": {"type": "string", "pattern": "^[a-z]{1,5}$"}}, {"name": big})
    message = info.value.problems[0]
    assert len(message) < 400 and "more characters" in message
    with pytest.raises(RenderError) as rinfo:
        render_template("{{ params.m[params.big] }}", {"params": {"m": {}, "big": big}})
    assert len(str(rinfo.value)) < 400


def test_params_file_contents_are_never_echoed(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text("root:$6$saltsalt$hashhashhash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    path = runbook(tmp_path, {"steps": [{"id": "a", "uses": "core.noop"}]})
    proc = cli(tmp_path, "run", str(path), "--params-file", str(shadow), "--store", "memory:")
    assert proc.returncode == 2
    assert "hashhash" not in proc.stderr + proc.stdout and "daemon" not in proc.stderr + proc.stdout
    assert "not a valid parameter name, not shown" in proc.stderr


# -- what a path is -------------------------------------------------------------------------------


def test_fifo_and_device_are_named_as_what_they_are(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = cli(tmp_path, "validate", str(fifo), "/dev/zero")
    assert proc.returncode == 2  # a path that is not a runbook is a usage error, as a missing one
    assert f"{fifo}:0:0: error: is a FIFO (named pipe), not a runbook file or folder" in proc.stdout
    assert "/dev/zero:0:0: error: is a character device, not a runbook file or folder" in proc.stdout
    path = runbook(tmp_path, {"steps": [{"id": "a", "uses": "core.noop"}]})
    proc = cli(tmp_path, "run", str(path), "--params-file", "/dev/zero", "--store", "memory:")
    assert proc.returncode == 2
    assert "/dev/zero:1:1: error: is a character device, not a regular file" in proc.stderr


def test_missing_file_still_says_so(tmp_path: Path) -> None:
    result = list(validate_path(tmp_path / "nope.yaml").diagnostics)
    assert result and "cannot open file" in result[0].message


# -- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["{{ 'inf' | float }}", "{{ 'nan' | float }}", "{{ '-inf' | float }}"])
def test_non_finite_floats_are_clear_errors(text: str) -> None:
    with pytest.raises(RenderError, match="not a finite number"):
        render_template(text, {})


# -- a finished command is not "timed out" --------------------------------------------------------


async def test_exit_0_stands_when_cleanup_outlives_the_deadline() -> None:
    wf = workflow("""
        steps:
          - id: a
            uses: shell.run
            timeout: 1s
            with: {command: "sh -c 'trap \\"\\" TERM; sleep 5' & sleep 0.2; echo done"}
    """)
    started = time.monotonic()
    runner, _ = await run(wf, adapter_config={"shell": {"grace_seconds": 1.5}})
    record = runner.state.step("a")
    assert record.status is StepStatus.COMPLETED, record.error
    assert record.outputs == {} and time.monotonic() - started < 6
    assert runner.step_scope["a"]["result"]["exit_code"] == 0


async def test_a_command_still_running_at_the_deadline_times_out() -> None:
    wf = workflow("""
        steps:
          - {id: a, uses: shell.run, timeout: 500ms, with: {command: "sleep 5"}}
    """)
    runner, _ = await run(wf)
    assert "timed out after 0.5s" in (runner.state.step("a").error or "")


# -- environment denylist -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["GLIBC_TUNABLES", "OPENSSL_CONF", "PYTHONHOME", "JAVA_TOOL_OPTIONS", "WPK_STEP_PROCESS"]
)
def test_loader_and_library_hijack_variables_are_refused(tmp_path: Path, name: str) -> None:
    assert forbidden_env_key(name)
    spec = {"steps": [{"id": "a", "uses": "shell.run", "with": {"argv": ["true"], "env": {name: "x"}}}]}
    proc = cli(tmp_path, "validate", str(runbook(tmp_path, spec)))
    assert proc.returncode == 1 and name in proc.stdout


# -- !!str ----------------------------------------------------------------------------------------


def test_str_tag_makes_a_value_text_as_the_format_doc_says(tmp_path: Path) -> None:
    # DESIGN §3 and docs/format.md allow the core `!!str`; it was refused. Users write it to keep
    # `1.10` from being a number; other tags stay refused.
    text = (DOCS / "format.md").read_text(encoding="utf-8")
    assert "`!!str` on a single value\n  makes it text" in text
    path = tmp_path / "rb.yaml"
    path.write_text(
        "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: rb, version: 1.0.0}\n"
        "spec:\n  params: {v: {type: string, default: !!str 1.10}}\n"
        "  steps: [{id: a, uses: core.echo, with: {message: '{{ params.v }}'},"
        " outputs: {v: '{{ result.message }}'}}]\n",
        encoding="utf-8",
    )
    proc = cli(tmp_path, "run", str(path), "--store", "memory:", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["steps"][0]["outputs"] == {"v": "1.10"}  # text, not 1.1
    path.write_text(path.read_text(encoding="utf-8").replace("!!str 1.10", "!!int 1"), encoding="utf-8")
    proc = cli(tmp_path, "validate", str(path))
    assert proc.returncode == 1
    assert "YAML tag '!!int' is not allowed" in proc.stdout

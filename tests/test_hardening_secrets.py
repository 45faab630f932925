"""Issue 9, finding 4: redaction follows the secret through its forms and every output channel.

A secret with quotes, a backslash and `$` (`p'a"s\\s$x…`), and a multi-line PEM, are fed through
each form the issue names (as is, line by line, base64/base64url with and without padding, Basic
auth, percent-encoding, JSON and shell escaping, hex) and each channel: the terminal (progress and
summary), `--format json`, events and logs in the store (the SQLite file's bytes), error messages,
and the dry-run plan in text and JSON. No form may appear anywhere. Transforms the masker cannot
follow are refused when the runbook is validated.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from wpk.engine.expressions import ExpressionError, compile_template, render_template
from wpk.engine.secrets import Redactor

PASSWORD = "p'a\"s\\s$x-Zq9"
PEM = (
    "-----BEGIN TEST KEY-----\n"
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
    "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm\n"
    "-----END TEST KEY-----"
)


def forms(secret: str) -> set[str]:
    """The forms to look for, computed here (not by the code under test)."""
    raw = secret.encode()
    found = {
        secret,
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b64encode(b"user:" + raw).decode(),  # Basic auth
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        json.dumps(secret)[1:-1],
        shlex.quote(secret),
        raw.hex(),
        repr(secret)[1:-1],
    }
    found |= {line for line in secret.splitlines() if len(line) > 8}
    # Any escaping of the secret, however nested, would show a long run of its characters.
    if "\n" not in secret:
        found |= {secret[i : i + 10] for i in range(len(secret) - 9)}
    return {f for f in found if f}


NEEDLES = forms(PASSWORD) | forms(PEM)

RUNBOOK = {
    "apiVersion": "wpk/v1",
    "kind": "Runbook",
    "metadata": {"name": "leaky", "version": "1.0.0"},
    "spec": {
        "secrets": ["pw", "pem"],
        "params": {"m": {"type": "object", "default": {}}},
        "steps": [
            {
                "id": "shell",
                "uses": "shell.run",
                "dry_run": "execute",
                "with": {
                    "env": {"S": "{{ secrets.pw }}", "PEM": "{{ secrets.pem }}"},
                    "command": (
                        "printf '%s\\n' \"$S\"; printf '%s\\n' \"$PEM\"; "
                        "printf 'user:%s' \"$S\" | base64 -w0; echo; "
                        "printf '%s' \"$S\" | base64 -w0; echo; "
                        "printf '%s' \"$S\" | od -An -v -tx1 | tr -d ' \\n'; echo; "
                        "printf '%s' \"$S\" >&2"
                    ),
                },
                "outputs": {"said": "{{ result.stdout }}", "err": "{{ result.stderr }}"},
            },
            {
                "id": "forms",
                "uses": "core.echo",
                "with": {
                    "message": {
                        "plain": "token={{ secrets.pw }}",
                        "b64": "{{ secrets.pw | b64encode }}",
                        "basic": "Basic {{ ('user' ~ ':' ~ secrets.pw) | b64encode }}",
                        "url": "https://h/x?p={{ secrets.pw | urlencode }}",
                        "json": "{{ secrets.pw | tojson }}",
                        "shell": "{{ secrets.pw | shell_quote }}",
                        "pem": "{{ secrets.pem | tojson }}",
                    }
                },
                "outputs": {"all": "{{ result.message }}"},
            },
            {
                "id": "quoted",
                "uses": "shell.run",
                "with": {"command": "echo {{ secrets.pw }} {{ secrets.pem }} > /dev/null"},
            },
            {
                "id": "broken",
                "needs": ["forms"],
                "uses": "core.echo",
                "continue_on_error": True,
                "with": {"message": "{{ params.m[secrets.pw] }}"},
            },
        ],
    },
}


@pytest.fixture(scope="module")
def channels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Everything wpk wrote, per channel, for a run and a dry-run of the leaky runbook."""
    tmp = tmp_path_factory.mktemp("secrets")
    path = tmp / "leaky.json"
    path.write_text(json.dumps(RUNBOOK), encoding="utf-8")
    env = {
        **os.environ,
        "WPK_SECRET_PW": PASSWORD,
        "WPK_SECRET_PEM": PEM,
        "XDG_STATE_HOME": str(tmp / "state"),
    }
    store = tmp / "wpk.db"
    out: dict[str, str] = {}
    for label, argv in {
        "run-text": ["run", str(path), "--store", f"sqlite://{store}"],
        "run-json": ["run", str(path), "--store", f"sqlite://{store}", "--format", "json"],
        "dry-run-text": ["dry-run", str(path), "--store", f"sqlite://{store}"],
        "dry-run-json": ["dry-run", str(path), "--store", f"sqlite://{store}", "--format", "json"],
    }.items():
        proc = subprocess.run(
            [sys.executable, "-m", "wpk.engine.cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode in (0, 1), proc.stderr
        out[f"{label} stdout"] = proc.stdout
        out[f"{label} stderr"] = proc.stderr
    for file in tmp.glob("wpk.db*"):  # the database and its WAL: every byte the store wrote
        out[f"store {file.name}"] = file.read_bytes().decode("utf-8", errors="replace")
    return out


def test_the_runbook_really_exercised_every_channel(channels: dict[str, str]) -> None:
    record = json.loads(channels["run-json stdout"])
    steps = {s["id"]: s for s in record["steps"]}
    assert steps["shell"]["status"] == "completed"
    assert steps["forms"]["status"] == "completed"
    assert steps["broken"]["status"] == "failed"
    assert "<secrets.pw>" in steps["broken"]["error"]  # the error names the secret
    plan = json.loads(channels["dry-run-json stdout"])["plan"]
    assert {s["id"] for s in plan["steps"]} == {"shell", "forms", "quoted", "broken"}
    assert "***" in channels["run-text stderr"] and "***" in channels["dry-run-text stdout"]
    assert any(k.startswith("store") and "log" in v for k, v in channels.items())


@pytest.mark.parametrize("needle", sorted(NEEDLES), ids=lambda n: repr(n)[:24])
def test_no_form_of_a_secret_reaches_any_channel(channels: dict[str, str], needle: str) -> None:
    leaks = [channel for channel, text in channels.items() if needle in text]
    assert not leaks, f"{needle!r} leaked into {leaks}"


def test_redactor_masks_base64_at_every_offset() -> None:
    redactor = Redactor([PASSWORD])
    for prefix in ("", "u", "us", "user:", "x" * 7):
        for suffix in ("", "!", "!?"):
            text = prefix + PASSWORD + suffix
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(text.encode()).decode()
                for shown in (encoded, encoded.rstrip("=")):
                    masked = redactor.text(shown)
                    assert "***" in masked
                    # at most two characters of the secret's own encoding stay at each end
                    assert len(masked) <= len(shown) - len(PASSWORD) * 4 // 3 + 4 + 3


@pytest.mark.parametrize(
    "template",
    [
        "{{ secrets.pw | upper }}",
        "{{ secrets.pw | lower }}",
        "{{ secrets.pw | reverse }}",
        "{{ secrets.pw | list }}",
        "{{ secrets.pw[1:] }}",
        "{{ secrets.pw[0] }}",
        "{{ secrets.pw | b64encode | b64encode }}",
        "{{ secrets.pw | urlencode | b64encode }}",
        "{{ secrets.pw | replace('a', 'b') }}",
        "{{ secrets.pw | join(',') }}",
        "{{ '%.3s' % secrets.pw }}",
        "{{ secrets.pw | split('a') }}",
        "{{ secrets.pw | trim }}",
        "{{ secrets.pw | first }}",
        "{{ (secrets.pw ~ 'x') | upper }}",
    ],
)
def test_transforms_that_hide_a_secret_are_refused(template: str) -> None:
    with pytest.raises(ExpressionError, match="would hide a secret from redaction"):
        compile_template(template)


def test_refusal_is_a_validation_error_with_its_position(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(RUNBOOK))
    doc["spec"]["steps"][1]["with"]["message"] = {"x": "{{ secrets.pw | reverse }}"}
    path = tmp_path / "rb.yaml"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "wpk.engine.cli", "validate", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    line = next(ln for ln in proc.stdout.splitlines() if "would hide a secret" in ln)
    assert line.startswith(f"{path}:")
    assert "`reverse`" in line


@pytest.mark.parametrize(
    "template",
    [
        "{{ secrets.pw }}",
        "Bearer {{ secrets.pw }}",
        "{{ [params.user, secrets.pw] | join(':') | b64encode }}",
        "{{ secrets.pw | default('') | tojson }}",
        "{{ {'token': secrets.pw} | urlencode }}",
        "{{ secrets.pw | length }}",
        "{{ params.m[secrets.pw] | default('none') }}",
    ],
)
def test_uses_the_masker_follows_are_allowed_and_masked(template: str) -> None:
    compiled = compile_template(template)
    rendered = render_template(compiled, {"params": {"user": "u", "m": {}}, "secrets": {"pw": PASSWORD}})
    masked = Redactor([PASSWORD]).redact(json.dumps(rendered))
    for needle in forms(PASSWORD):
        assert needle not in masked


def test_errors_name_the_secret_never_its_value() -> None:
    from wpk.engine.expressions import RenderError

    scope = {"params": {"m": {}}, "secrets": {"pw": PASSWORD}}
    with pytest.raises(RenderError) as info:
        render_template("{{ params.m[secrets.pw] }}", scope)
    assert str(info.value) == "undefined: a mapping has no key <secrets.pw>"
    with pytest.raises(RenderError) as info:
        render_template("{{ params.m[secrets.pw] ~ 1 }}", scope)
    assert all(needle not in str(info.value) for needle in forms(PASSWORD))

"""`wpk validate` as CI pipelines use it: paths, formats, exit codes; and hostile files.

These run the installed console script in a subprocess, exactly as a user or a pipeline would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WPK = str(Path(sys.executable).parent / "wpk")
GOOD = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: good, version: 1.0.0}
spec:
  steps:
    - {id: a, uses: core.noop}
"""
BAD = """\
apiVersion: wpk/v1
kind: Runbook
metadata: {name: bad, version: 1.0.0}
spec:
  steps:
    - {id: a, uses: core.noop, needs: [b]}
"""


def wpk(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WPK, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False)


def test_valid_file_exits_0(tmp_path: Path) -> None:
    (tmp_path / "wpk.yaml").write_text(GOOD)
    proc = wpk("validate", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("1 file valid")


def test_invalid_file_exits_1_with_located_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.wpk.yaml"
    path.write_text(BAD)
    proc = wpk("validate", str(path))
    assert proc.returncode == 1
    assert f"{path}:6:40: error: step 'a' needs unknown step 'b'" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_usage_error_exits_2() -> None:
    proc = wpk("validate", "--format", "xml", "x")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    proc = wpk("validate", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert "no such file or folder" in proc.stdout


def test_folders_are_searched_recursively(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "wpk.yaml").write_text(GOOD)
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "b" / "deep" / "x.wpk.yaml").write_text(BAD)
    (tmp_path / "b" / "ignored.yaml").write_text("not: a runbook")
    proc = wpk("validate", "--format", "json", str(tmp_path))
    assert proc.returncode == 1
    body = json.loads(proc.stdout)
    assert sorted(Path(f["path"]).name for f in body["files"]) == ["wpk.yaml", "x.wpk.yaml"]
    assert body["valid"] is False


def test_github_format(tmp_path: Path) -> None:
    path = tmp_path / "wpk.yaml"
    path.write_text(BAD)
    proc = wpk("validate", "--format", "github", str(path))
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"::error file={path},line=6,col=40,title=wpk unknown-need::step 'a' needs")


def test_sarif_format_is_valid_sarif_2_1_0(tmp_path: Path) -> None:
    path = tmp_path / "wpk.yaml"
    path.write_text(BAD)
    proc = wpk("validate", "--format", "sarif", str(path))
    sarif = json.loads(proc.stdout)
    assert sarif["version"] == "2.1.0"
    result = sarif["runs"][0]["results"][0]
    assert result["level"] == "error" and result["ruleId"] == "unknown-need"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 6, "startColumn": 40}
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert rules[result["ruleIndex"]]["id"] == "unknown-need"


def test_schema_command_prints_path_and_id() -> None:
    proc = wpk("schema")
    assert proc.returncode == 0
    assert "https://wpk.dev/schemas/v1/wpk.schema.json" in proc.stdout
    path = proc.stdout.split("path:", 1)[1].split()[0]
    assert json.loads(Path(path).read_text())["$id"].endswith("wpk.schema.json")


def test_examples_are_valid() -> None:
    proc = wpk("validate", str(ROOT / "examples"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " error: " not in proc.stdout


# -- hostile files: exit 1, a few clear lines, < 5 s, < 500 MB, nothing executed ----------------


def _hostile(
    tmp_path: Path, name: str, content: bytes
) -> tuple[subprocess.CompletedProcess[str], float, int]:
    path = tmp_path / name
    path.write_bytes(content)
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        f"p = subprocess.run([{WPK!r}, 'validate', {str(path)!r}], capture_output=True, text=True)\n"
        "el = time.monotonic() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "sys.stdout.write(f'{p.returncode}\\n{el}\\n{rss}\\n' + p.stdout + '\\n--stderr--\\n' + p.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    rc, elapsed, rss, rest = out.stdout.split("\n", 3)
    stdout = rest.split("\n--stderr--\n")[0]
    proc = subprocess.CompletedProcess([], int(rc), stdout, rest.split("\n--stderr--\n")[1])
    return proc, float(elapsed), int(rss) * 1024


HOSTILE = {
    "huge.yaml": lambda: b"a: " + b"x" * (20 * 1024 * 1024) + b"\n",
    "bomb.yaml": lambda: (
        b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + b"".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n".encode()
            for i in range(8)
        )
    ),
    "deep.yaml": lambda: b"[" * 100_000 + b"]" * 100_000,
    "latin1.yaml": lambda: "name: caf\u00e9\n".encode("latin-1"),
    "python.yaml": lambda: b'x: !!python/object/apply:os.system ["touch PWNED"]\n',
    "escape.yaml": lambda: (
        GOOD.replace(
            "{id: a, uses: core.noop}",
            "{id: a, uses: core.echo, with: {message: \"{{ ''.__class__.__mro__ }}\"}}",
        )
    ).encode(),
    "ref.yaml": lambda: (GOOD.replace("spec:\n", 'spec:\n  params:\n    p: {$ref: "PWNED_REF"}\n')).encode(),
    "redos.yaml": lambda: (
        GOOD.replace(
            "spec:\n", 'spec:\n  params:\n    p: {type: string, pattern: "^(a|aa)+$", default: aaa}\n'
        )
    ).encode(),
}


@pytest.mark.timing
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_is_refused_quickly_and_cheaply(tmp_path: Path, name: str) -> None:
    (tmp_path / "PWNED_REF").write_text('{"type": "string"}')
    proc, elapsed, peak = _hostile(tmp_path, name, HOSTILE[name]())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if ": error: " in line]
    assert 1 <= len(errors) <= 3, proc.stdout
    assert all(line.startswith(str(tmp_path / name) + ":") for line in errors)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert elapsed < 15, elapsed
    assert peak < 500 * 1024 * 1024, peak
    assert not (tmp_path / "PWNED").exists()
    assert not Path("PWNED").exists()


def test_ref_to_local_file_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "string", "description": "TOPSECRET"}')
    doc = GOOD.replace("spec:\n", f'spec:\n  params:\n    p: {{$ref: "file://{secret}"}}\n')
    (tmp_path / "wpk.yaml").write_text(doc)
    proc = wpk("validate", str(tmp_path))
    assert proc.returncode == 1
    assert "TOPSECRET" not in proc.stdout
    assert "'$ref' is not allowed" in proc.stdout


def test_schema_validator_never_resolves_outside_the_document(tmp_path: Path) -> None:
    from referencing.exceptions import Unresolvable

    from wpk.engine.schema import make_validator

    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "integer"}')
    validator = make_validator({"$ref": f"file://{secret}"})
    with pytest.raises(Unresolvable):
        list(validator.iter_errors("x"))


@pytest.mark.timing
def test_validate_is_fast_on_many_files(tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / f"r{i}.wpk.yaml").write_text(GOOD.replace("name: good", f"name: good{i}"))
    start = time.monotonic()
    proc = wpk("validate", str(tmp_path))
    assert proc.returncode == 0
    assert time.monotonic() - start < 30  # a generous sanity bound; the benchmark has the real figure

"""The public API of wpk.engine is explicit (trio's rule): each name listed once, all importable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import wpk.engine


def test_all_names_exist_and_are_unique() -> None:
    names = wpk.engine.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(wpk.engine, name) is not None


def test_public_names_are_exactly_all() -> None:
    public = {n for n in dir(wpk.engine) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(wpk.engine, n)).__name__ == "module"}
    assert public - modules - {"annotations", "importlib", "TYPE_CHECKING", "Any"} == set(wpk.engine.__all__)


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        _ = wpk.engine.nothing_here  # type: ignore[attr-defined]
    except AttributeError as exc:
        assert "nothing_here" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_validate_command_does_not_import_trio_or_clients() -> None:
    code = (
        "import sys\n"
        "from wpk.engine.cli import main\n"
        "main(['validate', '--format', 'json', sys.argv[1]])\n"
        "print(sorted(m for m in ('trio', 'httpx', 'kubernetes') if m in sys.modules))\n"
    )

    example = Path(__file__).resolve().parent.parent / "examples" / "hello"
    out = subprocess.run(
        [sys.executable, "-c", code, str(example)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_template_free_run_imports_only_what_it_uses(tmp_path: Path) -> None:
    (tmp_path / "wpk.yaml").write_text(
        "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: one, version: 1.0.0}\n"
        "spec:\n  steps:\n    - {id: a, uses: core.noop}\n"
    )
    code = (
        "import sys\n"
        "from wpk.engine.cli import main\n"
        "assert main(['run', sys.argv[1], '--store', 'memory:']) == 0\n"
        "heavy = ('jinja2', 'regex', 'httpx', 'kubernetes', 'importlib.metadata', 'fastjsonschema')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"

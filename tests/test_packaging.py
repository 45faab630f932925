"""The wheel: only `wpk/…` and its dist-info, schemas included, and it works from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    proc = subprocess.run([*argv, str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (found,) = out.glob("wpk-*.whl")
    return found


@pytest.mark.slow
def test_wheel_holds_only_the_wpk_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"wpk", next(t for t in tops if t.endswith(".dist-info"))}
    assert "wpk/schemas/v1/wpk.schema.json" in names
    assert any(n.startswith("wpk/schemas/v1/adapters/") and n.endswith(".json") for n in names)
    assert "wpk/engine/cli.py" in names and "wpk/adapters/base.py" in names
    assert "wpk/__init__.py" not in names  # an implicit namespace: nothing generic installed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "wpk = wpk.engine.cli:main" in text and "[wpk.adapters]" in text


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_validates_examples_from_tmp(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # Dependencies come from this environment's site-packages, but not its editable wpk:
    # a plain path entry does not run the editable finder's .pth hook.
    purelib = sysconfig.get_paths()["purelib"]
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "deps.pth").write_text(purelib + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import wpk.engine; print(wpk.engine.__file__)"],
        capture_output=True,
        text=True,
        cwd="/tmp",
        env=env,
        check=True,
    )
    assert where.stdout.startswith(str(venv))
    proc = subprocess.run(
        [str(venv / "bin" / "wpk"), "validate", str(ROOT / "examples")],
        capture_output=True,
        text=True,
        cwd="/tmp",
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

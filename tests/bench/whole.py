"""Whole-process benchmark: what a user pays for `wpk run`, against bare trio, in one run.

Run:  env -u PYTHONDONTWRITEBYTECODE python tests/bench/whole.py            (~5 minutes on 2 cores)
      env -u PYTHONDONTWRITEBYTECODE python tests/bench/whole.py --quick    (smaller sizes, a smoke run)

Every figure is a whole process (start-up, load, validate, compile, run, exit), measured as the
CPU time (user + system) the child used, from `wait4`, best of `--repeat`: on a shared, loaded
machine CPU time moves far less than wall time. "Marginal µs/step" is (cost of the N-step
process - cost of the 1-step process) / (N - 1), so start-up does not flatter large N. Bare
trio is measured the same way: a process that imports trio and runs one task per step, each
waiting on its predecessor's `trio.Event` (chain) or on the root's (fan-out).

Small sizes are noisy: a 1,000-step bare-trio process spends about 15 ms on its steps, the
same order as the jitter of a process's CPU time, so its marginal cost once moved between 10
and 69 µs/step from run to run. So the bare process runs its workload `rounds` times in one
process (`trio.run` once per round, rounds = 20,000 // N, the 1-step base the same number of
times) and the per-step figure divides by rounds too; and every size under 10,000 (and the
1-step base) is best of 2 x repeat + 1. Neither choice favours wpk: the baseline gets more
precise, not smaller (the per-step work of a round is the same).

Runbooks over the loader's 1 MiB default (40,000 steps is 2 MB) need a larger limit; every wpk
process here runs `wpk.engine.cli.main` with the loader's default raised to 64 MiB, so all
sizes go through the same code. Figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from validate import make_tree  # noqa: E402

from engine import chain_yaml, fanout_yaml  # noqa: E402 - the same runbooks as tests/bench/engine.py

WPK = (
    "import sys\n"
    "import wpk.engine.loader as loader\n"
    "loader.DEFAULT_MAX_BYTES = 64 * 1024 * 1024\n"
    "from wpk.engine.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)

BARE = """\
import sys
import trio

n, kind, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])


async def chain() -> None:
    events = [trio.Event() for _ in range(n)]

    async def step(i: int) -> None:
        if i:
            await events[i - 1].wait()
        await trio.lowlevel.checkpoint()
        events[i].set()

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(step, i)


async def fanout() -> None:
    root = trio.Event()

    async def leaf() -> None:
        await root.wait()
        await trio.lowlevel.checkpoint()

    async def first() -> None:
        await trio.lowlevel.checkpoint()
        root.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        for _ in range(n - 1):
            nursery.start_soon(leaf)


for _ in range(rounds):
    trio.run(chain if kind == "chain" else fanout)
"""


def child(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, peak RSS KiB) of one child process, which must exit 0."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv[-6:])}")
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss


def best(argv: list[str], env: dict[str, str], repeat: int, prepare: Any = None) -> tuple[float, float, int]:
    runs = []
    for _ in range(repeat):
        if prepare is not None:
            prepare()
        runs.append(child(argv, env))
    return min(r[0] for r in runs), min(r[1] for r in runs), min(r[2] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1k and 4k steps, fewer repeats")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [1000, 4000] if args.quick else [1000, 2000, 10_000, 40_000]
    repeat = 2 if args.quick else args.repeat
    python = sys.executable
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        "python": sys.version.split()[0],
        "unit": f"marginal CPU µs per step (whole process, best of {repeat})",
    }
    with tempfile.TemporaryDirectory() as raw:
        tmp = Path(raw)
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache"), "XDG_STATE_HOME": str(tmp / "state")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        files: dict[tuple[str, int], Path] = {}
        for kind, make in (("chain", chain_yaml), ("fanout", fanout_yaml)):
            for n in [1, *sizes]:
                path = tmp / f"{kind}{n}" / "wpk.yaml"
                path.parent.mkdir()
                text = make(n) if kind == "chain" else make(max(n - 1, 0))  # fan-out: root + n - 1
                path.write_text(text)
                files[(kind, n)] = path.parent
        db = tmp / "bench.db"

        def fresh_db() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)

        def reps(n: int) -> int:
            return repeat if n >= 10_000 else 2 * repeat + 1

        def wpk(kind: str, n: int, store: str, cached: bool) -> tuple[float, float, int]:
            argv = [python, "-c", WPK, "run", "--store", store, str(files[(kind, n)])]
            if not cached:
                argv.insert(4, "--no-cache")
            else:  # fill the cache first
                child(argv, env)
            return best(argv, env, reps(n), fresh_db if store.startswith("sqlite") else None)

        rows: dict[str, Any] = {}
        for kind in ("chain", "fanout"):
            for n in sizes:
                rounds = max(1, 20_000 // n)
                base_bare = best([python, "-c", BARE, "1", kind, str(rounds)], env, reps(1))[0]
                cpu, _, _ = best([python, "-c", BARE, str(n), kind, str(rounds)], env, reps(n))
                per_step = (cpu - base_bare) / (rounds * (n - 1)) * 1e6
                rows.setdefault(f"{kind} {n}", {})["bare trio"] = round(per_step, 1)
            for store_name, store in (("memory", "memory:"), ("sqlite", f"sqlite:///{db}")):
                for cached in (False, True):
                    if store_name == "sqlite" and cached:
                        continue  # the goal is for a cold run on SQLite
                    label = f"{store_name} {'cached' if cached else 'cold'}"
                    base = wpk(kind, 1, store, cached)[0]
                    for n in sizes:
                        if store_name == "sqlite" and n > 10_000:
                            continue
                        cpu, _, rss = wpk(kind, n, store, cached)
                        row = rows.setdefault(f"{kind} {n}", {})
                        row[label] = round((cpu - base) / (n - 1) * 1e6, 1)
                        if store_name == "memory" and not cached:
                            row["peak RSS MiB (memory cold)"] = round(rss / 1024, 1)
            print(json.dumps({k: v for k, v in rows.items() if k.startswith(kind)}), flush=True)
        for row in rows.values():
            for label in ("memory cold", "memory cached", "sqlite cold"):
                if label in row and row.get("bare trio"):
                    row[f"{label} / bare"] = round(row[label] / row["bare trio"], 2)
        out["runs"] = rows

        # `wpk run` of a one-step runbook: wall time of the whole process, best of 7.
        one = files[("chain", 1)]
        one_argv = ["run", "--store", "memory:", str(one)]
        wpk_bin = str(Path(python).parent / "wpk")
        out["one-step run wall s (best of 7)"] = {
            "cold": round(best([wpk_bin, one_argv[0], "--no-cache", *one_argv[1:]], env, 7)[1], 3),
            "cached": round(best([wpk_bin, *one_argv], env, 7)[1], 3),
            "python -c pass": round(best([python, "-c", "pass"], env, 7)[1], 3),
        }

        # 500 example-sized packages through one `wpk validate`.
        tree = tmp / "tree"
        tree.mkdir()
        make_tree(tree)
        shutil.rmtree(tmp / "cache", ignore_errors=True)
        cold = best([wpk_bin, "validate", "--no-cache", str(tree)], env, repeat)
        child([wpk_bin, "validate", str(tree)], env)  # fill the cache
        cached = best([wpk_bin, "validate", str(tree)], env, repeat)
        out["500 packages, one wpk validate"] = {
            "cold CPU s": round(cold[0], 3),
            "cold wall s": round(cold[1], 3),
            "cached CPU s": round(cached[0], 3),
            "cached wall s": round(cached[1], 3),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

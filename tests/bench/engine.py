"""Engine benchmark: per-step overhead against bare trio, shell steps against xargs, start-up, memory.

Run:  python tests/bench/engine.py            (about a minute on 2 cores)
      python tests/bench/engine.py --quick    (smaller sizes, for a smoke check)

Figures are recorded in docs/performance.md. Everything runs on the in-memory store
(`--store memory:`); durability costs belong to the store benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from wpk.engine import MemoryStore, Runner, RunOptions, compile_workflow
from wpk.engine.validate import validate_text

HEAD = "apiVersion: wpk/v1\nkind: Runbook\nmetadata: {name: bench, version: 1.0.0}\nspec:\n"


def chain_yaml(n: int) -> str:
    lines = [HEAD, "  concurrency: 1000\n  steps:\n", "    - {id: s0, uses: core.noop}\n"]
    lines += [f"    - {{id: s{i}, uses: core.noop, needs: [s{i - 1}]}}\n" for i in range(1, n)]
    return "".join(lines)


def fanout_yaml(n: int) -> str:
    lines = [HEAD, "  concurrency: 1000\n  steps:\n", "    - {id: root, uses: core.noop}\n"]
    lines += [f"    - {{id: s{i}, uses: core.noop, needs: [root]}}\n" for i in range(n)]
    return "".join(lines)


def shell_yaml(n: int) -> str:
    lines = [HEAD, "  concurrency: 2\n  steps:\n"]
    lines += [
        f'    - {{id: s{i}, uses: shell.run, rollback: none, with: {{argv: ["true"]}}}}\n' for i in range(n)
    ]
    return "".join(lines)


def compile_text(text: str):  # type: ignore[no-untyped-def]
    result = validate_text(text, "bench.yaml", max_bytes=64 * 1024 * 1024)
    assert result.valid, [str(d) for d in result.errors[:3]]
    assert result.doc is not None
    return compile_workflow(result.doc)


def run_engine(workflow) -> float:  # type: ignore[no-untyped-def]
    async def main() -> float:
        runner = Runner(workflow, params={}, secrets={}, store=MemoryStore(), options=RunOptions())
        start = time.perf_counter()
        state = await runner.run()
        elapsed = time.perf_counter() - start
        assert str(state.status) == "completed", state.error
        return elapsed

    return trio.run(main)


def bare_chain(n: int) -> float:
    """One trio task per step; each waits on its predecessor's Event."""

    async def main() -> float:
        events = [trio.Event() for _ in range(n)]

        async def step(i: int) -> None:
            if i:
                await events[i - 1].wait()
            await trio.lowlevel.checkpoint()
            events[i].set()

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(step, i)
        return time.perf_counter() - start

    return trio.run(main)


def bare_fanout(n: int) -> float:
    async def main() -> float:
        root = trio.Event()

        async def leaf() -> None:
            await root.wait()
            await trio.lowlevel.checkpoint()

        async def first() -> None:
            await trio.lowlevel.checkpoint()
            root.set()

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            for _ in range(n):
                nursery.start_soon(leaf)
        return time.perf_counter() - start

    return trio.run(main)


def bare_processes(n: int, concurrency: int, *, capture: bool = False) -> float:
    """trio.run_process at the same concurrency; with `capture`, the fair baseline for shell.run,
    which must read and stream stdout and stderr."""

    async def main() -> float:
        limiter = trio.CapacityLimiter(concurrency)

        async def one() -> None:
            async with limiter:
                await trio.run_process(["true"], capture_stdout=capture, capture_stderr=capture)

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)
        return time.perf_counter() - start

    return trio.run(main)


def interleaved(fns: dict[str, object], rounds: int) -> dict[str, float]:
    """Best time of each, running them in turn so drift in machine load hits all alike."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            elapsed = fn()  # type: ignore[operator]
            best[name] = min(best.get(name, elapsed), elapsed)
    return best


def xargs(n: int, concurrency: int) -> float:
    start = time.perf_counter()
    subprocess.run(["xargs", f"-P{concurrency}", "-n1", "true"], input="x\n" * n, text=True, check=True)
    return time.perf_counter() - start


def best(fn, repeat: int):  # type: ignore[no-untyped-def]
    return min(fn() for _ in range(repeat))


def startup(tmp: Path) -> float:
    pkg = tmp / "one"
    pkg.mkdir(exist_ok=True)
    (pkg / "wpk.yaml").write_text(HEAD + "  steps:\n    - {id: a, uses: core.noop}\n")
    wpk = str(Path(sys.executable).parent / "wpk")
    # As an installed wheel behaves: bytecode cached (pip compiles it at install). Some
    # environments set PYTHONDONTWRITEBYTECODE, which would recompile wpk on every start.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([wpk, "run", str(pkg), "--store", "memory:"], check=True, capture_output=True, env=env)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        subprocess.run([wpk, "run", str(pkg), "--store", "memory:"], check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return min(times)


def rss_of_run(n: int) -> int:
    code = (
        "import resource, sys, trio\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import engine as b\n"
        f"wf = b.compile_text(b.chain_yaml({n}))\n"
        "b.run_engine(wf)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 2_000 if args.quick else 10_000
    shells = 200 if args.quick else 1_000
    repeat = 1 if args.quick else 3
    out: dict[str, object] = {"machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"}

    for name, make_yaml, bare in (("chain", chain_yaml, bare_chain), ("fanout", fanout_yaml, bare_fanout)):
        wf = compile_text(make_yaml(n))
        engine_s = best(lambda: run_engine(wf), repeat)  # noqa: B023 - called within this iteration
        bare_s = best(lambda: bare(n), repeat)  # noqa: B023
        out[name] = {
            "steps": n,
            "engine_us_per_step": round(engine_s / n * 1e6, 1),
            "bare_trio_us_per_step": round(bare_s / n * 1e6, 1),
            "ratio": round(engine_s / bare_s, 2),
        }

    sh = compile_text(shell_yaml(shells))
    times = interleaved(
        {
            "engine": lambda: run_engine(sh),
            "bare": lambda: bare_processes(shells, 2),
            "capturing": lambda: bare_processes(shells, 2, capture=True),
            "xargs": lambda: xargs(shells, 2),
        },
        1 if args.quick else 11,
    )
    out["shell"] = {
        "steps": shells,
        "concurrency": 2,
        "engine_s": round(times["engine"], 3),
        "bare_trio_run_process_s": round(times["bare"], 3),
        "bare_trio_run_process_capturing_s": round(times["capturing"], 3),
        "xargs_P2_s": round(times["xargs"], 3),
        "ratio_vs_bare_trio": round(times["engine"] / times["bare"], 2),
        "ratio_vs_bare_trio_capturing": round(times["engine"] / times["capturing"], 2),
        "ratio_vs_xargs": round(times["engine"] / times["xargs"], 2),
    }

    with tempfile.TemporaryDirectory() as tmp:
        out["startup_s"] = round(startup(Path(tmp)), 3)
    out["rss_mib_10k_chain"] = round(rss_of_run(n) / 2**20, 1)
    out["max_rss_self_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

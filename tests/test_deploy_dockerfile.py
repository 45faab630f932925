"""The Dockerfile, read as Docker reads it: stages, instructions, the final image's properties.

No container engine runs here, so the file is parsed (line continuations joined, comments and
the parser directive dropped, JSON-form arguments decoded) and the properties the deployment
relies on are asserted on the final stage: a fixed non-root user, no compiler or build tools,
the lock installed with hashes from the builder's wheels, `wpk` as the entrypoint with
`serve` on 0.0.0.0:4000 and a token file, a state volume, a Python health check. The build
context is checked against `.dockerignore` the way Docker matches it.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
K8S_UID = 10001  # runAsUser in examples/deploy/50-deployment.yaml
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|cc|clang|make|build-essential|libc6-dev|python3-dev|python3\.\d+-dev|"
    r"pkg-config|cmake|rustc|cargo|git)\b"
)


@dataclass(slots=True)
class Instruction:
    keyword: str
    args: str
    line: int

    def json_args(self) -> list[str]:
        """The exec (JSON array) form; fails the test if the instruction uses the shell form."""
        value = json.loads(self.args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
        return value


@dataclass(slots=True)
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base!r} has no {keyword}"
        return found[-1]


def parse_dockerfile(text: str) -> tuple[list[Instruction], list[Stage]]:
    """(instructions before the first FROM, stages), as BuildKit's parser splits them."""
    logical: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue  # comments and the `# syntax=` directive
        if pending and stripped.startswith("#"):
            continue  # a comment line inside a continued instruction is dropped
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw)
        logical.append((start, " ".join(part.strip() for part in pending)))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued line"
    preamble: list[Instruction] = []
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), number)
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append(instruction)
        else:
            preamble.append(instruction)
    return preamble, stages


@pytest.fixture(scope="module")
def parsed() -> tuple[list[Instruction], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(parsed: tuple[list[Instruction], list[Stage]]) -> Stage:
    return parsed[1][-1]


def run_commands(stage: Stage) -> list[list[str]]:
    """Every simple command of every RUN (split at &&, ;, |), as argv lists; RUN flags dropped."""
    commands: list[list[str]] = []
    for run in stage.all("RUN"):
        text = re.sub(r"^(--\S+\s+)+", "", run.args)
        for part in re.split(r"&&|\|\||;|\|", text):
            argv = shlex.split(part)
            if argv:
                commands.append(argv)
    return commands


def test_two_stages_a_builder_and_a_slim_python_311_final(
    parsed: tuple[list[Instruction], list[Stage]],
) -> None:
    preamble, stages = parsed
    args = dict(i.args.split("=", 1) for i in preamble if i.keyword == "ARG")
    assert [s.name for s in stages] == ["builder", None]
    assert {s.base for s in stages} == {"${PYTHON_IMAGE}"}
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", args["PYTHON_IMAGE"]), args


def test_final_stage_runs_as_a_fixed_non_root_user(final: Stage) -> None:
    user = final.last("USER").args
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) == K8S_UID, "USER must be numeric (runAsNonRoot checks it)"
    assert gid.isdigit() and int(gid) != 0
    # The user is created with that UID, and nothing after USER switches back to root.
    assert any(
        argv[:1] == ["useradd"] and "--uid" in argv and argv[argv.index("--uid") + 1] == uid
        for argv in run_commands(final)
    )
    after = final.instructions[final.instructions.index(final.last("USER")) :]
    assert [i for i in after if i.keyword == "RUN"] == [], "RUN after USER would run as the user anyway"


def test_final_stage_installs_no_compiler_or_build_tools(final: Stage) -> None:
    for argv in run_commands(final):
        assert argv[0] not in ("apt-get", "apt", "apk", "yum", "dnf"), (
            f"package manager in final stage: {argv}"
        )
        joined = " ".join(argv)
        assert not BUILD_TOOLS.search(joined), f"build tool in the final stage: {joined}"
    copies = [i.args for i in final.all("COPY")]
    assert not any("engine/" in c or "pyproject" in c for c in copies), "sources belong to the builder"


def test_final_stage_installs_the_lock_with_hashes_and_no_index(final: Stage) -> None:
    installs = [argv for argv in run_commands(final) if argv[:2] == ["pip", "install"]]
    assert len(installs) == 2, installs
    lock, own = installs
    assert "--require-hashes" in lock and "--no-index" in lock
    assert lock[lock.index("-r") + 1] == "/tmp/run.txt"
    assert any(c.args == "requirements/run.txt /tmp/run.txt" for c in final.all("COPY"))
    # wpk's own wheel from the builder, and nothing pulled in behind the lock's back.
    assert "--no-deps" in own and "--no-index" in own
    assert any(a.startswith("/wheels/wpk-") and a.endswith(".whl") for a in own)
    assert ["pip", "check"] in run_commands(final)
    mounts = [i.args for i in final.all("RUN") if i.args.startswith("--mount=")]
    assert any("from=builder" in m and "source=/wheels" in m for m in mounts), "wheels come from the builder"


def test_builder_checks_hashes_and_builds_only_binary_wheels(
    parsed: tuple[list[Instruction], list[Stage]],
) -> None:
    builder = parsed[1][0]
    commands = run_commands(builder)
    download = next(argv for argv in commands if argv[:2] == ["pip", "download"])
    assert {"--require-hashes", "--only-binary=:all:"} <= set(download)
    build = next(argv for argv in commands if argv[:2] == ["pip", "wheel"])
    assert {"--no-deps", "--no-build-isolation", "--no-index"} <= set(build)


def test_entrypoint_is_wpk_and_serves_on_4000_with_a_token_file(final: Stage) -> None:
    assert final.last("ENTRYPOINT").json_args() == ["wpk"]
    cmd = final.last("CMD").json_args()
    assert cmd == [
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "4000",
        "--token-file",
        "/var/run/secrets/wpk/token",
    ]
    assert final.last("EXPOSE").args == "4000"


def test_state_directory_is_a_volume_where_the_default_store_lives(final: Stage) -> None:
    env: dict[str, str] = {}
    for instruction in final.all("ENV"):
        for assignment in shlex.split(instruction.args):
            key, _, value = assignment.partition("=")
            env[key] = value
    volumes = final.last("VOLUME").json_args()
    # engine/store/sqlite.py: the default file is $XDG_STATE_HOME/wpk/wpk.db.
    assert f"{env['XDG_STATE_HOME']}/wpk" in volumes
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    created = [argv for argv in run_commands(final) if argv[:1] == ["install"]]
    assert created and "/var/lib/wpk" in created[0] and "wpk" in created[0], "the volume must be the user's"


def test_healthcheck_asks_health_with_python_not_curl(final: Stage) -> None:
    check = final.last("HEALTHCHECK").args
    options, _, command = check.partition("CMD ")
    assert "--timeout=" in options and "--interval=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert "http://127.0.0.1:4000/health" in argv[2]
    compile(argv[2], "<healthcheck>", "exec")  # the probe is valid Python
    assert "curl" not in check and "wget" not in check


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """moby/patternmatcher: `*` and `?` stop at `/`, `**` crosses directories, `[...]` classes."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def dockerignore_allows(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parents = ["/".join(path.split("/")[:n]) for n in range(1, path.count("/") + 2)]
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _docker_pattern(pattern.removeprefix("!").strip("/"))
        if any(regex.match(candidate) for candidate in parents):
            included = negate
    return included


def test_dockerignore_sends_the_sources_and_the_lock_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in (
        "pyproject.toml",
        "README.md",
        "requirements/run.txt",
        "engine/cli.py",
        "adapters/k8s/client.py",
        "wpk-schemas/v1/wpk.schema.json",
        "sidecar/__init__.py",
    ):
        assert dockerignore_allows(patterns, needed), needed
    for excluded in (
        ".git/config",
        ".venv/bin/python",
        "tests/test_runner.py",
        "examples/hello/wpk.yaml",
        "engine/__pycache__/cli.cpython-311.pyc",
        "wpk.egg-info/PKG-INFO",
        "requirements/test.txt",
        "build/lib/wpk/engine/cli.py",
    ):
        assert not dockerignore_allows(patterns, excluded), excluded
    # Everything the Dockerfile COPYs from the context is in it.
    _, stages = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    for stage in stages:
        for copy in stage.all("COPY"):
            if copy.args.startswith("--from"):
                continue
            for source in copy.args.split()[:-1]:
                assert dockerignore_allows(patterns, source.rstrip("/")), source
                assert (REPO / source).exists() or source == "requirements/run.txt", source

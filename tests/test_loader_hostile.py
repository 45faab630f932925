"""Hostile input for the loader: every case must end in one `LoadError`, fast and small.

Deep nesting runs in a child process, so that a parser crash (PyYAML's C composer segfaults
around 50,000 levels) shows up as a signal instead of taking the test run down, and so the
child's peak memory can be read with `getrusage`.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wpk.engine import loader
from wpk.engine.loader import DEFAULT_MAX_BYTES, LoadError, SourceDoc, load_bytes, load_file

BACKENDS = ["libyaml", "pure"] if loader._c_parser_factory() is not None else ["pure"]
MEMORY_BOUND_MB = 200


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Switch the loader's event source for a block (a plain context manager, so hypothesis
    examples inside one test all run with the same backend)."""
    saved = loader._make_parser
    factory = loader._c_parser_factory() if name == "libyaml" else loader._PurePythonParser
    assert factory is not None
    loader._make_parser = factory
    try:
        yield
    finally:
        loader._make_parser = saved


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    with use_backend(request.param):
        yield request.param


def refused(data: bytes, path: str = "evil.yaml", **limits: Any) -> LoadError:
    with pytest.raises(LoadError) as info:
        load_bytes(data, path, **limits)
    return info.value


def peak_allocation(action: Callable[[], object]) -> int:
    """Peak bytes allocated by Python while `action` runs (tracemalloc sees every bytes object)."""
    tracemalloc.start()
    try:
        with contextlib.suppress(LoadError):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------------------------------------
# Size: refused before reading


@pytest.fixture
def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every `os.read` the loader makes, by the number of bytes it returned."""
    sizes: list[int] = []
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        chunk = real_read(fd, n)
        sizes.append(len(chunk))
        return chunk

    monkeypatch.setattr(os, "read", read)
    return sizes


@pytest.mark.timing
def test_twenty_megabyte_file_is_refused_before_any_read(tmp_path: Path, counted_reads: list[int]) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as f:
        line = b"key: value that repeats\n"
        f.write(line * (20 * 1024 * 1024 // len(line)))
        f.write(b"x" * (20 * 1024 * 1024 - f.tell()))
    peak = peak_allocation(lambda: load_file(path, display_path="x.yaml"))
    with pytest.raises(LoadError) as info:
        load_file(path, display_path="x.yaml")
    assert str(info.value) == "x.yaml:1:1: error: file is 20971520 bytes, over the 1048576-byte limit"
    assert info.value.diagnostic.code == "yaml-too-large"
    assert counted_reads == []  # fstat said no: not one byte was read
    assert peak < 64 * 1024


def test_endless_device_is_named_and_never_read(counted_reads: list[int]) -> None:
    # A device is never a document (issue 9: it was reported as "no such file" by `validate`).
    with pytest.raises(LoadError) as info:
        load_file("/dev/zero", display_path="zero", max_bytes=100_000)
    assert str(info.value) == "zero:1:1: error: is a character device, not a regular file"
    assert sum(counted_reads) == 0


def test_endless_pipe_reads_one_byte_past_the_limit(tmp_path: Path, counted_reads: list[int]) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    written: list[int] = []

    def feed() -> None:
        fd = os.open(fifo, os.O_WRONLY)
        total = 0
        try:
            with contextlib.suppress(BrokenPipeError):
                while total < 50 * DEFAULT_MAX_BYTES:
                    total += os.write(fd, b"a: b\n" * 4096)
        finally:
            written.append(total)
            os.close(fd)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    with pytest.raises(LoadError) as info:
        load_file(fifo, display_path="fifo")
    writer.join(timeout=10)
    assert str(info.value) == "fifo:1:1: error: file is larger than the 1048576-byte limit"
    assert sum(counted_reads) == DEFAULT_MAX_BYTES + 1
    assert not writer.is_alive() and written[0] < 50 * DEFAULT_MAX_BYTES  # it saw the pipe close


def test_file_exactly_at_the_limit_loads(tmp_path: Path, counted_reads: list[int]) -> None:
    path = tmp_path / "full.yaml"
    path.write_bytes(b"a: " + b"x" * (DEFAULT_MAX_BYTES - 3))
    doc = load_file(path)
    assert len(doc.data["a"]) == DEFAULT_MAX_BYTES - 3
    assert sum(counted_reads) == DEFAULT_MAX_BYTES


@pytest.mark.timing
def test_oversized_bytes_are_not_decoded() -> None:
    data = b"\xff" * (20 * 1024 * 1024)
    peak = peak_allocation(lambda: load_bytes(data, "x.yaml"))
    assert (
        str(refused(data, "x.yaml"))
        == "x.yaml:1:1: error: file is 20971520 bytes, over the 1048576-byte limit"
    )
    assert peak < 64 * 1024


# ---------------------------------------------------------------------------------------------
# Alias bombs, tags that run code


BILLION_LAUGHS = textwrap.dedent(
    """\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    """
).encode()


@pytest.mark.timing
def test_billion_laughs(backend: str) -> None:
    peak = peak_allocation(lambda: load_bytes(BILLION_LAUGHS, "evil.yaml"))
    error = refused(BILLION_LAUGHS)
    assert str(error) == "evil.yaml:1:4: error: YAML anchors and aliases are not allowed in a runbook"
    assert peak < 1024 * 1024


def test_alias_without_its_anchor_is_refused_at_the_alias(backend: str) -> None:
    bomb = b"steps:\n  - " + b",".join([b"*x"] * 1000) + b"\n"
    assert str(refused(bomb)) == "evil.yaml:2:5: error: YAML anchors and aliases are not allowed in a runbook"


@pytest.mark.parametrize(
    "template",
    [
        'a: !!python/object/apply:os.system ["touch {target}"]\n',
        'a: !!python/object/apply:subprocess.run [["touch", "{target}"]]\n',
        'a: !!python/object/apply:subprocess.check_call [["touch", "{target}"]]\n',
        "%TAG !p! tag:yaml.org,2002:python/object/apply:\n---\na: !p!os.system ['touch {target}']\n",
        "- !<tag:yaml.org,2002:python/object/apply:os.system> ['touch {target}']\n",
    ],
)
def test_python_object_tags_never_run(template: str, tmp_path: Path, backend: str) -> None:
    target = tmp_path / "pwned"
    payload = template.format(target=target).encode()
    error = refused(payload)
    assert error.diagnostic.code == "yaml-tag"
    assert "YAML tag '" in str(error) and "python/object/" in str(error)
    assert not target.exists()
    # Control: the payload is live; PyYAML's unsafe loader would have run it.
    yaml.unsafe_load(payload.decode())
    assert target.exists()


def test_os_system_message() -> None:
    error = refused(b'a: !!python/object/apply:os.system ["touch /tmp/x"]\n')
    assert str(error) == (
        "evil.yaml:1:4: error: YAML tag '!!python/object/apply:os.system' is not allowed in a runbook"
        " (write plain data)"
    )


# ---------------------------------------------------------------------------------------------
# Deep nesting, in a child process

DEEP_SCRIPT = textwrap.dedent(
    """\
    import sys, time
    from wpk.engine import loader

    if sys.argv[1] == "pure":
        loader._make_parser = loader._PurePythonParser
    n = 100_000
    payloads = {
        "flow-sequence": "[" * n + "]" * n,
        "flow-mapping": "{a: " * n + "}" * n,
        "block-sequence": "- " * n + "x",
        "block-mapping-keys": "? " * n + "x",
        "block-mapping-indented": "".join(" " * i + "k:\\n" for i in range(1_400)),
        "million-brackets": "[" * 1_000_000,
        "million-braces": "{" * 1_000_000,
    }
    data = payloads[sys.argv[2]].encode()
    assert len(data) <= loader.DEFAULT_MAX_BYTES, len(data)
    start = time.perf_counter()
    try:
        loader.load_bytes(data, "deep.yaml")
        print("LOADED")
    except loader.LoadError as exc:
        print(exc)
    print(time.perf_counter() - start)
    # VmHWM is this address space's peak; ru_maxrss would include the parent's (kept across exec)
    print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024)
    """
)


@pytest.mark.timing
@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("flow-sequence", "deep.yaml:1:65: error: nesting deeper than 64 levels"),
        ("flow-mapping", "deep.yaml:1:257: error: nesting deeper than 64 levels"),
        ("block-sequence", "deep.yaml:1:129: error: nesting deeper than 64 levels"),
        ("block-mapping-keys", "deep.yaml:1:3: error: a mapping key must be a string, not a mapping"),
        ("block-mapping-indented", "deep.yaml:65:65: error: nesting deeper than 64 levels"),
        ("million-brackets", "deep.yaml:1:65: error: nesting deeper than 64 levels"),
        ("million-braces", "deep.yaml:1:2: error: a mapping key must be a string, not a mapping"),
    ],
)
def test_deep_nesting_is_refused_early(backend_name: str, case: str, expected: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", DEEP_SCRIPT, "pure" if backend_name == "pure" else "c", case],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, (child.returncode, child.stderr[-2000:])  # a signal would be < 0
    message, seconds, rss_mb = child.stdout.splitlines()
    assert message == expected
    # Refused after a few dozen events: milliseconds for libyaml. The pure scanner looks up to
    # 1,024 characters ahead for simple keys, which costs it a few tenths of a second here.
    assert float(seconds) < (2.0 if backend_name == "libyaml" else 20.0)
    assert int(rss_mb) < MEMORY_BOUND_MB


# ---------------------------------------------------------------------------------------------
# Encodings, numbers, documents


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("a: 1\n".encode("utf-16"), "1:1: error: file is not valid UTF-8: invalid start byte (byte 0xff)"),
        ("a: 1\n".encode("utf-16-be"), "1:1: error: NUL U+0000 is not allowed in a runbook"),
        ("a: 1\n".encode("utf-32-le"), "1:2: error: NUL U+0000 is not allowed in a runbook"),
        (
            "a: café\n".encode("latin-1"),
            "1:7: error: file is not valid UTF-8: invalid continuation byte (byte 0xe9)",
        ),
        (
            b"a: 1\n" * 1000 + b"b: \x80\n",
            "1001:4: error: file is not valid UTF-8: invalid start byte (byte 0x80)",
        ),
        (
            b"a: \xf4\x90\x80\x80\n",
            "1:4: error: file is not valid UTF-8: invalid continuation byte (byte 0xf4)",
        ),
        (b"a: 1\x00\x00\x00\x00", "1:5: error: NUL U+0000 is not allowed in a runbook"),
    ],
)
def test_not_utf8_or_binary(data: bytes, expected: str, backend: str) -> None:
    assert str(refused(data)) == "evil.yaml:" + expected


def test_nan_and_infinity_anywhere(backend: str) -> None:
    assert str(refused(b"a:\n  b: [1, {c: .NaN}]\n")).startswith("evil.yaml:2:14: error: .NaN is not allowed")
    assert str(refused(b".inf: 1\n")).startswith("evil.yaml:1:1: error: .inf is not allowed")
    assert str(refused(b"- -1e400\n")).startswith("evil.yaml:1:3: error: number -1e400 is out of range")


def test_ten_thousand_digit_integer(backend: str) -> None:
    error = refused(b"replicas: " + b"9" * 10_000 + b"\n")
    assert str(error) == (
        "evil.yaml:1:11: error: integer has 10000 digits; at most 100 are allowed"
        " (quote it to keep it as text)"
    )
    assert error.diagnostic.code == "yaml-number-too-long"


@pytest.mark.timing
def test_megabyte_numbers_cost_nothing(backend: str) -> None:
    for literal in (b"7" * 1_000_000, b"0x" + b"f" * 1_000_000, b"1." + b"5" * 1_000_000):
        start = time.perf_counter()
        assert refused(b"n: " + literal).diagnostic.code == "yaml-number-too-long"
        assert time.perf_counter() - start < 15.0


@pytest.mark.timing
def test_many_documents(backend: str) -> None:
    start = time.perf_counter()
    error = refused(b"a: 1\n" + b"---\nb: 2\n" * 100_000)
    assert (
        str(error)
        == "evil.yaml:2:1: error: a second YAML document starts here; a runbook file holds exactly one"
    )
    assert time.perf_counter() - start < 10.0


def test_long_key_and_duplicate_are_shortened_in_the_message(backend: str) -> None:
    key = "k" * 500
    message = str(refused(f"{key}: 1\n{key}: 2\n".encode()))
    assert message.startswith("evil.yaml:2:1: error: duplicate key 'kkkk")
    assert "...' (first defined at line 1)" in message
    assert len(message) < 200


CHILD_FLAT = textwrap.dedent(
    """\
    import time
    from wpk.engine import loader

    data = b"[" + b"a," * (loader.DEFAULT_MAX_BYTES // 2 - 2) + b"a]"
    start = time.perf_counter()
    doc = loader.load_bytes(data, "flat.yaml")
    print(len(doc.data), doc.mark((len(doc.data) - 1,)).col)
    print(time.perf_counter() - start)
    # VmHWM is this address space's peak; ru_maxrss would include the parent's (kept across exec)
    print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024)
    """
)


@pytest.mark.timing
@pytest.mark.slow
def test_largest_flat_document_stays_within_memory() -> None:
    """The worst case that is *valid*: 1 MiB of one-character scalars, one position each."""
    child = subprocess.run([sys.executable, "-c", CHILD_FLAT], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    counts, seconds, rss_mb = child.stdout.splitlines()
    assert counts == f"{DEFAULT_MAX_BYTES // 2 - 1} {DEFAULT_MAX_BYTES - 2}"
    assert int(rss_mb) < MEMORY_BOUND_MB
    assert float(seconds) < 60


# ---------------------------------------------------------------------------------------------
# Property: nothing but LoadError, and what loads is plain JSON with sane positions

VALID = textwrap.dedent(
    """\
    apiVersion: wpk/v1
    kind: Runbook
    metadata:
      name: restart-unhealthy
      version: 1.2.0
      labels: {service: payments}
    spec:
      params:
        namespace: {type: string, default: default, pattern: "^[a-z0-9-]+$"}
        min_ready: {type: integer, default: 1, minimum: 0}
      secrets: [slack_token]
      priority: 50
      timeout: 15m
      steps:
        - id: check
          uses: k8s.get
          with: {kind: Deployment, name: "{{ params.deployment }}"}
          outputs:
            ready: "{{ result.object.status.readyReplicas | default(0) }}"
        - id: notify
          needs: [check]
          uses: api.request
          with:
            method: POST
            json: {text: 'restarted {{ params.deployment }}'}
            body: |
              multi
              line
          continue_on_error: true
    """
).encode()

TOKENS = [
    b"&a ", b"*a", b"!!str ", b"!x ", b"[", b"]", b"{", b"}", b"? ", b"- ", b": ", b", ", b"\t",
    b"---\n", b"...\n", b"%YAML 1.2\n", b"'", b'"', b"|", b">-", b"\n  ", b"#", b"\\", b"\x00",
    b"\xef\xbb\xbf", b"\xc3", b"\xe2\x80\xa8", b".nan", b"-.inf", b"0x", b"1e999", b"9" * 200, b"~",
    b"<<: ", b"@", b"`", b"\r", b"\r\n", b"\xf0\x9f\x92\xa5",
]  # fmt: skip


@st.composite
def mutated_runbooks(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "random"]))
        if action == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif action == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 80))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def assert_plain_json(value: Any, doc: SourceDoc, path: tuple[str | int, ...], lines: int) -> None:
    mark = doc.mark(path)
    assert 1 <= mark.line <= lines + 1 and mark.col >= 1
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            assert 1 <= doc.key_mark((*path, key)).line <= lines + 1
            assert_plain_json(item, doc, (*path, key), lines)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain_json(item, doc, (*path, index), lines)
    elif isinstance(value, float):
        assert math.isfinite(value)
    else:
        assert value is None or type(value) in (str, int, bool)


def check_only_load_errors(data: bytes) -> None:
    try:
        doc = load_bytes(data, "fuzz.yaml", max_depth=16)
    except LoadError as exc:
        text = str(exc)
        assert text.startswith("fuzz.yaml:") and "\n" not in text
        assert "could not parse YAML" not in text  # the safety net is not how normal errors arrive
        assert exc.diagnostic.line >= 1 and exc.diagnostic.col >= 1
        return
    assert_plain_json(doc.data, doc, (), data.count(b"\n") + data.count(b"\r"))


FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("backend_name", BACKENDS)
@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_raise_only_load_error(backend_name: str, data: bytes) -> None:
    with use_backend(backend_name):
        check_only_load_errors(data)


@pytest.mark.parametrize("backend_name", BACKENDS)
@FUZZ
@given(data=mutated_runbooks())
def test_mutated_runbooks_raise_only_load_error(backend_name: str, data: bytes) -> None:
    with use_backend(backend_name):
        check_only_load_errors(data)


def test_the_unmutated_runbook_loads() -> None:
    doc = load_bytes(VALID, "wpk.yaml")
    assert doc.data["spec"]["steps"][1]["with"]["body"] == "multi\nline\n"
    assert doc.data["metadata"]["version"] == "1.2.0"
    assert doc.data["spec"]["priority"] == 50

"""The size-capped body reader: raw and decoded bytes are both bounded, whatever the encoding."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable, Iterable

import pytest

from wpk.adapters.guards.bounded_body import (
    BodyDecodeError,
    BodyTooLarge,
    BoundedBody,
    UnsupportedEncoding,
    check_declared_length,
    format_size,
)

TEXT = b"".join(b"line %d of a perfectly ordinary response body\n" % i for i in range(3000))


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def decode(chunks: Iterable[bytes], encoding: str | None, limit: int = 10 << 20) -> bytes:
    body = BoundedBody(limit=limit, content_encoding=encoding)
    for chunk in chunks:
        body.feed(chunk)
    return body.finish()


def deflate_raw(data: bytes) -> bytes:
    obj = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return obj.compress(data) + obj.flush()


@pytest.mark.parametrize("size", [1, 7, 1000, 65536])
@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda d: d),
        ("identity", lambda d: d),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", deflate_raw),
        ("gzip, deflate", lambda d: zlib.compress(gzip.compress(d))),
    ],
)
def test_round_trip_in_any_chunking(
    encoding: str | None, encode: Callable[[bytes], bytes], size: int
) -> None:
    assert decode(chunked(encode(TEXT), size), encoding) == TEXT


def test_multi_member_gzip_is_decoded_whole() -> None:
    data = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decode(chunked(data, 5), "gzip") == b"first second"


def test_raw_cap() -> None:
    body = BoundedBody(limit=1000)
    body.feed(b"x" * 1000)
    with pytest.raises(BodyTooLarge, match="bytes received"):
        body.feed(b"x")


@pytest.mark.timing
def test_decoded_cap_stops_inside_a_single_chunk() -> None:
    bomb = gzip.compress(bytes(50 << 20), compresslevel=9)  # 50 MiB of zeros in ~50 KB
    assert len(bomb) < 100_000
    body = BoundedBody(limit=1 << 20, content_encoding="gzip")
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="decoded bytes"):
            body.feed(bomb)  # one chunk holding the whole bomb
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the limit, the buffer's over-allocation and a few decompression pieces; never the 50 MiB
    assert peak < (1 << 20) * 3 // 2
    assert body.raw_bytes == len(bomb)


def test_nested_encodings_are_bounded_too() -> None:
    inner = gzip.compress(bytes(20 << 20), compresslevel=9)
    double = gzip.compress(inner, compresslevel=9)
    with pytest.raises(BodyTooLarge, match="decoded bytes"):
        decode([double], "gzip, gzip", limit=1 << 20)


def test_exactly_the_limit_is_accepted() -> None:
    assert decode([gzip.compress(b"a" * 4096)], "gzip", limit=4096) == b"a" * 4096
    with pytest.raises(BodyTooLarge):
        decode([gzip.compress(b"a" * 4097)], "gzip", limit=4096)


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_unknown_encodings_are_refused(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding, match="gzip, deflate and identity"):
        BoundedBody(limit=100, content_encoding=encoding)


def test_too_many_layers_are_refused() -> None:
    with pytest.raises(UnsupportedEncoding, match="too many"):
        BoundedBody(limit=100, content_encoding="gzip, gzip, gzip, gzip")


def test_corrupt_gzip() -> None:
    with pytest.raises(BodyDecodeError, match="corrupt"):
        decode([b"\x1f\x8b\x08\x00garbage-garbage-garbage"], "gzip")


def test_declared_length() -> None:
    check_declared_length(None, 10)
    check_declared_length("10", 10)
    check_declared_length("nonsense", 10)
    with pytest.raises(BodyTooLarge, match="Content-Length is 11"):
        check_declared_length("11", 10)


def test_format_size() -> None:
    assert format_size(10 << 20) == "10 MiB"
    assert format_size(1 << 30) == "1 GiB"
    assert format_size(1500) == "1500 bytes"

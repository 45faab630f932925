"""Read an HTTP response body with a hard cap on both the bytes received and the bytes decoded.

A cap checked after each decoded chunk is not a cap: one 64 KiB gzip chunk can expand to tens of
megabytes before the check runs (SECURITY.md measured 67 MB past a 10 MiB cap). So the body is
decompressed here, not by httpx, with `zlib.decompressobj(...).decompress(data, max_length)`: no
single step can produce more than `PIECE` bytes, and reading stops as soon as either count passes
the limit. Memory stays near the limit however large or however compressed the body is.

Only `identity`, `gzip` (`x-gzip`) and `deflate` are decoded; the adapter asks for just those
(`Accept-Encoding: gzip, deflate`), and any other encoding (br, zstd, ...) is refused rather than
passed through undecoded.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

PIECE = 64 * 1024  # the most one decompression step may produce
MAX_LAYERS = 3  # "gzip, gzip, gzip, ..." beyond this is an attack, not a server


class BodyTooLarge(Exception):
    """The body passed the byte limit; reading stopped there."""

    def __init__(self, limit: int, *, what: str) -> None:
        super().__init__(f"response body exceeds the limit of {format_size(limit)} ({what})")
        self.limit = limit


class UnsupportedEncoding(Exception):
    """A `Content-Encoding` this reader does not decode."""


class BodyDecodeError(Exception):
    """The compressed body is corrupt."""


def format_size(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


class _ZlibLayer:
    """One gzip or deflate layer, producing output in pieces of at most `PIECE` bytes."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding == "gzip"
        self._obj: zlib._Decompress | None = self._new() if self._gzip else None
        self._head = b""  # deflate: the first bytes, until we know zlib-wrapped from raw

    def _new(self, wbits: int = zlib.MAX_WBITS | 16) -> zlib._Decompress:
        return zlib.decompressobj(wbits)

    def _deflate_object(self, data: bytes) -> tuple[zlib._Decompress | None, bytes]:
        # "deflate" is zlib-wrapped by the standard, raw deflate by some servers: look at the header.
        self._head += data
        if len(self._head) < 2:
            return None, b""
        cmf, flg = self._head[0], self._head[1]
        wrapped = cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
        data, self._head = self._head, b""
        return self._new(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS), data

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._obj is None:
            self._obj, data = self._deflate_object(data)
            if self._obj is None:
                return
        try:
            yield from self._drain(data)
        except zlib.error as exc:
            raise BodyDecodeError(f"corrupt compressed body: {exc}") from None

    def _drain(self, data: bytes) -> Iterator[bytes]:
        assert self._obj is not None
        while True:
            obj = self._obj
            out = obj.decompress(data, PIECE)
            if out:
                yield out
            data = obj.unconsumed_tail
            if obj.eof:
                rest = obj.unused_data + data
                if not (self._gzip and rest.strip(b"\0")):
                    return  # end of stream; trailing padding is ignored
                self._obj, data = self._new(), rest  # another gzip member follows
                continue
            if not data and len(out) < PIECE:
                return  # all input consumed and nothing left pending

    def finish(self) -> Iterator[bytes]:
        if self._obj is None:  # a deflate body of fewer than two bytes
            if self._head:
                raise BodyDecodeError("corrupt compressed body: truncated deflate stream")
            return
        yield from self.feed(b"")


def _layers(content_encoding: str | None) -> list[_ZlibLayer]:
    names = [part.strip().lower() for part in (content_encoding or "").split(",")]
    names = [name for name in names if name and name != "identity"]
    if len(names) > MAX_LAYERS:
        raise UnsupportedEncoding(f"too many content encodings ({content_encoding})")
    layers: list[_ZlibLayer] = []
    for name in reversed(names):  # the last encoding applied is the first to undo
        if name in ("gzip", "x-gzip"):
            layers.append(_ZlibLayer("gzip"))
        elif name == "deflate":
            layers.append(_ZlibLayer("deflate"))
        else:
            raise UnsupportedEncoding(
                f"unsupported Content-Encoding {name!r} (only gzip, deflate and identity are accepted)"
            )
    return layers


class BoundedBody:
    """Accumulates a body chunk by chunk; raises `BodyTooLarge` as soon as a count passes `limit`."""

    def __init__(self, *, limit: int, content_encoding: str | None = None) -> None:
        self.limit = limit
        self.raw_bytes = 0
        self._layers = _layers(content_encoding)
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.raw_bytes += len(chunk)
        if self.raw_bytes > self.limit:
            raise BodyTooLarge(self.limit, what="bytes received")
        self._take(self._through(0, chunk))

    def finish(self) -> bytes:
        for index, layer in enumerate(self._layers):
            for piece in layer.finish():
                self._take(self._through(index + 1, piece))
        return bytes(self._buffer)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._layers):
            yield data
            return
        for piece in self._layers[index].feed(data):
            yield from self._through(index + 1, piece)

    def _take(self, pieces: Iterator[bytes]) -> None:
        for piece in pieces:
            if len(self._buffer) + len(piece) > self.limit:
                raise BodyTooLarge(self.limit, what="decoded bytes")
            self._buffer += piece


def check_declared_length(content_length: str | None, limit: int) -> None:
    """Refuse before reading when the server announces more than the limit."""
    if content_length is None:
        return
    try:
        declared = int(content_length.strip())
    except ValueError:
        return  # h11 rejects malformed lengths itself
    if declared > limit:
        raise BodyTooLarge(limit, what=f"Content-Length is {declared}")

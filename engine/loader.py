"""The safe YAML loader: runbook bytes -> plain JSON data with the source position of every node.

Runbooks are submitted by people and by pipelines we do not control, so this module treats every
byte as hostile. PyYAML's own loaders are not used at all: they resolve YAML 1.1 (`no` is False,
`0755` is octal, `1:30` is 90, `.nan` is NaN), keep the last of two duplicate keys without a word,
expand alias bombs, construct Python objects from tags, and compose recursively (the C composer
segfaults around 50,000 levels, the pure one raises RecursionError around 500). Instead we read
PyYAML's *event stream* (iterative in both the C and the pure parser) and compose plain data
ourselves with an explicit stack, in one pass:

1. size: refused before anything is decoded (and, in `load_file`, before anything is read);
2. encoding: strict UTF-8 (a leading BOM is skipped), no control characters;
3. every event passes the depth gate (in `_Composer.consume`) *before* it is composed, so a
   100,000-deep `[[[[` is refused at the 65th bracket after a few dozen events; a file whose flow
   brackets nest that deep (`_flow_depth_crossing`) is parsed only up to that bracket, because
   libyaml reads brackets ahead of its events and newer releases refuse deep nesting themselves;
4. the composer refuses anchors, aliases, tags, a second document, non-string and duplicate keys,
   and resolves plain scalars by the YAML 1.2 core schema (`_resolve_plain`).

Each refusal is a `LoadError` carrying one `Diagnostic` that points at the offending node. Codes:
`yaml-too-large`, `yaml-unreadable`, `yaml-encoding`, `yaml-control-character`, `yaml-syntax`,
`yaml-too-deep`, `yaml-alias`, `yaml-tag`, `yaml-multiple-documents`, `yaml-empty`,
`yaml-duplicate-key`, `yaml-non-string-key`, `yaml-nan`, `yaml-number-too-long`.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml
from yaml import events as ev
from yaml.parser import Parser as _PyParserBase
from yaml.reader import Reader as _PyReader
from yaml.scanner import Scanner as _PyScanner

from .diagnostics import Diagnostic, error

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "MAX_NUMBER_DIGITS",
    "LoadError",
    "Mark",
    "PathT",
    "SourceDoc",
    "load_bytes",
    "load_file",
    "load_text",
]

_STR_TAG = "tag:yaml.org,2002:str"
"""The one explicit tag accepted: `!!str` on a scalar, which makes it text (as quotes do)."""
DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_MAX_DEPTH = 64
MAX_NUMBER_DIGITS = 100
"""Longest numeric literal accepted. Far beyond any real runbook value, and far below CPython's
4,300-digit int-conversion limit, whose ValueError must never reach a user."""

PathT = tuple[str | int, ...]


# --------------------------------------------------------------------------------------------
# Public data types


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based source position. Columns count Unicode code points, as editors show them."""

    line: int
    col: int


_ORIGIN = Mark(1, 1)


class NodePos:
    """Where one node of the document was written; the loader's private position tree.

    One small slotted object per node (not a dict keyed by path) keeps a maximal 1 MiB file of
    tiny scalars within a few tens of MB.
    """

    __slots__ = ("children", "col", "key_col", "key_line", "line", "style")

    def __init__(self, line: int, col: int, style: str | None = None) -> None:
        self.line = line
        self.col = col
        self.style = style  # scalars only: None (plain), "'", '"', "|", ">" or "!" (plain, `!!str`)
        self.key_line = 0  # where this node's key is, when it is a mapping value
        self.key_col = 0
        # None for a scalar, a list for a sequence, a dict for a mapping (same keys as the data).
        self.children: list[NodePos] | dict[str, NodePos] | None = None


def mark_below(node: NodePos, rel: PathT) -> Mark:
    """`SourceDoc.mark` of `rel` below `node`: the nearest existing node's position."""
    for part in rel:
        children = node.children
        child: NodePos | None = None
        if isinstance(children, dict) and isinstance(part, str):
            child = children.get(part)
        elif isinstance(children, list) and type(part) is int and 0 <= part < len(children):
            child = children[part]
        if child is None:
            break
        node = child
    return Mark(node.line, node.col)


@dataclass(frozen=True, slots=True)
class SourceDoc:
    """A loaded document: plain JSON data plus the position of every node.

    `data` holds only dict (str keys) / list / str / int / float / bool / None. Positions are
    looked up by JSON path, e.g. `("spec", "steps", 0, "with", "name")`, the same paths that
    jsonschema reports, so later stages never need to know about YAML.
    """

    path: str
    data: Any
    positions: NodePos | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_data(cls, data: Any, path: str) -> SourceDoc:
        """A document that did not come from text (e.g. JSON from the API): every mark is 1:1."""
        return cls(path=path, data=data)

    def _walk(self, path: PathT) -> tuple[NodePos | None, bool]:
        """The node at `path`, or its nearest existing ancestor; and whether the path exists."""
        node = self.positions
        if node is None:
            return None, False
        for part in path:
            children = node.children
            child: NodePos | None = None
            if isinstance(children, dict) and isinstance(part, str):
                child = children.get(part)
            elif (
                isinstance(children, list)
                and isinstance(part, int)
                and not isinstance(part, bool)
                and 0 <= part < len(children)
            ):
                child = children[part]
            if child is None:
                return node, False
            node = child
        return node, True

    def mark(self, path: PathT) -> Mark:
        """Position of the value at `path`; the nearest existing ancestor's if there is none.

        The root, `()`, is always 1:1 (a whole-document problem is reported at the top).
        """
        if not path:
            return _ORIGIN
        node, _ = self._walk(path)
        if node is None or node is self.positions:
            return _ORIGIN
        return Mark(node.line, node.col)

    def key_mark(self, path: PathT) -> Mark:
        """Position of the key of the mapping entry at `path` (else falls back to `mark`)."""
        node, exists = self._walk(path)
        if exists and node is not None and path and isinstance(path[-1], str) and node.key_line:
            return Mark(node.key_line, node.key_col)
        return self.mark(path)

    def nodes_under(self, path: PathT) -> list[NodePos] | None:
        """The position nodes of the sequence at `path` (None if it is not one, or unknown).

        For a caller that reads many siblings' positions (the compiler, once per step): one walk
        from the root for all of them, then `mark_below` from each."""
        node, exists = self._walk(path)
        if not exists or node is None or node is self.positions or not isinstance(node.children, list):
            return None
        return node.children

    def scalar_style(self, path: PathT) -> str | None:
        """YAML style of the scalar at `path`: None (plain), "'", '"', "|" or ">".

        None also for a path that does not exist or is not a scalar. For plain and quoted
        scalars on one line, character `i` of the value sits at `mark(path).col + i` (plus one
        for the opening quote when the style is a quote, if the value holds no escapes).
        """
        node, exists = self._walk(path)
        if not exists or node is None:
            return None
        return node.style


class LoadError(Exception):
    """The document could not be loaded; `str(e)` is the one-line `file:line:col: error: ...`."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic

    def __reduce__(self) -> tuple[type[LoadError], tuple[Diagnostic]]:
        return (LoadError, (self.diagnostic,))


# --------------------------------------------------------------------------------------------
# Entry points


def load_file(
    path: str | os.PathLike[str],
    *,
    display_path: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> SourceDoc:
    """Load a file, reading at most `max_bytes + 1` bytes of it.

    A regular file is measured with `fstat` before the first read. Pipes and devices report no
    useful size, so the read itself stops one byte past the limit. (Opening a FIFO waits for its
    writer, as `cat` does: an early non-blocking open would misread a slow writer as an empty
    file. Agents never load user-chosen paths, so only the CLI user's own FIFO can block.)
    """
    shown = display_path if display_path is not None else os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise _fail(shown, 1, 1, "yaml-unreadable", f"cannot open file: {_os_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _fail(shown, 1, 1, "yaml-unreadable", "is a directory, not a file")
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
            # /dev/zero, /dev/urandom, a terminal, a socket: never a document; a pipe may be
            # (`--params-file <(...)`), so it is read, up to the limit.
            raise _fail(shown, 1, 1, "yaml-unreadable", f"is {file_kind(info.st_mode)}, not a regular file")
        if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
            raise _too_large(shown, f"file is {info.st_size} bytes", max_bytes)
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as exc:
        raise _fail(shown, 1, 1, "yaml-unreadable", f"cannot read file: {_os_reason(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise _too_large(shown, "file is larger than", max_bytes, exact=False)
    return load_bytes(data, shown, max_bytes=max_bytes, max_depth=max_depth)


def file_kind(mode: int) -> str:
    """`a character device`, `a FIFO (named pipe)`…: what a path is, for a message."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISREG, "a regular file"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def load_text(
    text: str, path: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> SourceDoc:
    """Load text that a caller already has (e.g. an API body); limited on its UTF-8 length."""
    if len(text) > max_bytes:  # every code point is at least one UTF-8 byte: over for sure
        raise _too_large(path, f"content is {_utf8_length(text)} bytes", max_bytes)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from "\ud800" in JSON
        line, col = _position(text, exc.start)
        raise _fail(
            path, line, col, "yaml-encoding", f"text holds a lone surrogate U+{ord(text[exc.start]):04X}"
        ) from None
    if len(data) > max_bytes:
        raise _too_large(path, f"content is {len(data)} bytes", max_bytes)
    return load_bytes(data, path, max_bytes=max_bytes, max_depth=max_depth)


def load_bytes(
    data: bytes, path: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> SourceDoc:
    """Load one YAML document of plain data. Raises `LoadError` and nothing else."""
    if len(data) > max_bytes:
        raise _too_large(path, f"file is {len(data)} bytes", max_bytes)
    text = _decode(bytes(data), path)
    try:
        crossing = _flow_depth_crossing(text, max_depth)
        if crossing is not None:
            # Parse only up to the bracket that crosses the limit: the gate refuses it there, with
            # wpk's message, before any parser can read ahead to a limit of its own. Should the
            # count have been fooled (the gate stays silent), the whole text is read as usual.
            try:
                _Composer(path, max_depth).compose(text[: crossing + 1])
            except LoadError as exc:
                if exc.diagnostic.code != "yaml-syntax":  # the gate, or a refusal before the cut
                    raise
            except yaml.YAMLError:
                pass  # the cut itself ends the text mid-collection
        return _Composer(path, max_depth).compose(text)
    except LoadError:
        raise
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(path, text, exc) from None
    except yaml.reader.ReaderError as exc:
        line, col = _position(text, exc.position) if isinstance(exc.position, int) else (1, 1)
        raise _fail(path, line, col, "yaml-encoding", f"unacceptable character: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise _fail(path, 1, 1, "yaml-syntax", f"invalid YAML: {_one_line(str(exc))}") from None
    except Exception as exc:  # hostile input must never surface as a traceback
        raise _fail(
            path, 1, 1, "yaml-syntax", f"could not parse YAML ({type(exc).__name__}: {_one_line(str(exc))})"
        ) from None


# --------------------------------------------------------------------------------------------
# Bytes -> text


_BOM = b"\xef\xbb\xbf"
# Everything YAML's reader accepts, minus NEL, LS and PS: PyYAML counts those as line breaks
# where editors do not, so positions (and plain-scalar folding) would silently disagree. Written
# as the forbidden ranges rather than "not the allowed ones": the same set (tests/test_loader_chars.py
# checks every code point), but compiling the negated form built a 64K-entry table on every start
# (10 ms of a 0.2 s `wpk run`).
_FORBIDDEN_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
_CHAR_NAMES = {
    "\x00": "NUL",
    "\x85": "NEL (next line)",
    "\u2028": "line separator",
    "\u2029": "paragraph separator",
}


def _decode(data: bytes, path: str) -> str:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The bytes before the first bad one are valid UTF-8, so they give an exact column.
        prefix = data[: exc.start].decode("utf-8", errors="replace")
        line, col = _position(prefix, len(prefix))
        bad = data[exc.start]
        raise _fail(
            path, line, col, "yaml-encoding", f"file is not valid UTF-8: {exc.reason} (byte 0x{bad:02x})"
        ) from None
    found = _FORBIDDEN_CHAR.search(text)
    if found is not None:
        char = found.group()
        line, col = _position(text, found.start())
        name = _CHAR_NAMES.get(char, "control character" if ord(char) < 0xA0 else "character")
        hint = " (write it as an escape inside a double-quoted string)" if char != "\x00" else ""
        raise _fail(
            path,
            line,
            col,
            "yaml-control-character",
            f"{name} U+{ord(char):04X} is not allowed in a runbook{hint}",
        )
    return text


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of `text[index]`, counting breaks as YAML does (LF, CRLF, CR)."""
    head = text[:index]
    line = 1 + head.count("\n") + head.count("\r") - head.count("\r\n")
    last_break = max(head.rfind("\n"), head.rfind("\r"))
    return line, index - last_break


# --------------------------------------------------------------------------------------------
# Text -> events (C parser when available), gated on depth


class _EventSource(Protocol):
    def get_event(self) -> Any: ...  # the next event; None after the last
    def dispose(self) -> None: ...


class _PurePythonParser(_PyReader, _PyScanner, _PyParserBase):
    """PyYAML's pure reader + scanner + parser, without any composer or constructor."""

    def __init__(self, text: str) -> None:
        _PyReader.__init__(self, text)
        _PyScanner.__init__(self)
        _PyParserBase.__init__(self)


def _c_parser_factory() -> Callable[[str], _EventSource] | None:
    try:
        from yaml._yaml import CParser
    except ImportError:  # PyYAML built without libyaml
        return None
    return CParser


_make_parser: Callable[[str], _EventSource] = _c_parser_factory() or _PurePythonParser
"""The event source used; tests switch it to `_PurePythonParser` to cover the fallback."""


_FLOW_SIGNIFICANT = re.compile(r"[\[\]{}'\"#]")
_AFTER_BLOCK_INDICATOR = frozenset(" \t\r\n:-?,[{")


def _flow_depth_crossing(text: str, max_depth: int) -> int | None:
    """Where flow collections first nest deeper than `max_depth`: the index of that bracket, or None.

    libyaml's scanner reads flow brackets ahead of the events it emits (up to 1,024 characters on
    one line, for a possible simple key), and the libyaml in PyYAML 6.0.4 refuses 1,000 levels
    itself, with its own message, before our event gate sees the 65th. So before choosing a parser
    we count flow depth in one pass over the few characters that matter: `[`/`{` opens (in block
    context only where a collection can start: after a space, a line start or an indicator),
    `]`/`}` closes inside a flow collection, and comments and one-line quoted scalars are skipped.
    The count is exact for ordinary YAML; what could fool it (tags before a quote, quoted scalars
    spanning lines) cannot fit 1,000 levels into libyaml's 1,024-character window, and past that
    window events flow and the gate decides anyway.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return None  # the common case: not enough brackets in the whole file
    depth = 0
    pos = 0
    search = _FLOW_SIGNIFICANT.search
    while (match := search(text, pos)) is not None:
        i = match.start()
        char = text[i]
        pos = i + 1
        before = text[i - 1] if i else "\n"
        if char == "[" or char == "{":
            if depth or before in _AFTER_BLOCK_INDICATOR:
                depth += 1
                if depth > max_depth:
                    return i
        elif char == "]" or char == "}":
            if depth:
                depth -= 1
        elif before not in _AFTER_BLOCK_INDICATOR:
            continue  # a quote or `#` inside a plain scalar is just a character
        elif char == "#":
            pos = _line_end(text, i)
        else:
            end = _quoted_end(text, i, _line_end(text, i))
            if end is not None:
                pos = end + 1
    return None


def _line_end(text: str, start: int) -> int:
    ends = [e for e in (text.find("\n", start), text.find("\r", start)) if e != -1]
    return min(ends) if ends else len(text)


def _quoted_end(text: str, start: int, limit: int) -> int | None:
    """Index of the quote that closes the scalar opened at `start`, if it closes before `limit`."""
    quote = text[start]
    i = start + 1
    while (j := text.find(quote, i, limit)) != -1:
        if quote == "'":
            if text.startswith("''", j):
                i = j + 2
                continue
            return j
        run = text[i:j]
        if (len(run) - len(run.rstrip("\\"))) % 2 == 0:  # not an escaped `\"`
            return j
        i = j + 1
    return None


# Both parsers build exactly these classes; comparing types is the composer's hot path.
_SCALAR, _ALIAS = ev.ScalarEvent, ev.AliasEvent
_SEQ_START, _SEQ_END = ev.SequenceStartEvent, ev.SequenceEndEvent
_MAP_START, _MAP_END = ev.MappingStartEvent, ev.MappingEndEvent
_DOC_START = ev.DocumentStartEvent


def _event_mark(event: Any) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


# --------------------------------------------------------------------------------------------
# Events -> plain data


class _Frame:
    """An open collection while composing: its data, its positions, and a pending key."""

    __slots__ = ("children", "is_map", "key", "key_col", "key_line", "value")

    def __init__(self, value: Any, children: Any, is_map: bool) -> None:
        self.value = value  # the list or dict being filled (same shape as `children`)
        self.children = children
        self.is_map = is_map
        self.key: str | None = None  # mappings: the key whose value comes next, and where it is
        self.key_line = 0
        self.key_col = 0


class _Composer:
    """Builds plain data and the position tree from the event stream, with an explicit stack."""

    def __init__(self, path: str, max_depth: int) -> None:
        self.path = path
        self.max_depth = max_depth
        self.stack: list[_Frame] = []
        self.last_map_start = (0, 0)  # where the latest mapping began: `{{` is two, side by side
        self.root: Any = None
        self.root_node: NodePos | None = None
        self.root_empty = False

    def compose(self, text: str) -> SourceDoc:
        parser = _make_parser(text)
        try:
            self.consume(parser)
        finally:
            parser.dispose()  # now, not at garbage collection
        if self.root_node is None:
            raise _fail(self.path, 1, 1, "yaml-empty", "file is empty (it holds no YAML document)")
        if self.root_empty:
            raise _fail(self.path, 1, 1, "yaml-empty", "file holds an empty YAML document")
        return SourceDoc(path=self.path, data=self.root, positions=self.root_node)

    def consume(self, parser: _EventSource) -> None:
        """Compose every event, each after the depth gate: the first collection that opens deeper
        than `max_depth` is refused before it is composed, so a hostile file costs at most
        `max_depth` events of work. Both parsers emit events iteratively (`get_event` gives None
        after the last) and nothing here recurses. One loop, no generator between the parser and
        the composer: this is the loader's hot path (a 10,000-step runbook is 100,000 events)."""
        stack = self.stack
        max_depth = self.max_depth
        documents = 0
        get_event = parser.get_event
        while (event := get_event()) is not None:
            kind = type(event)
            if kind is _SCALAR:
                self.scalar(event)
            elif kind is _SEQ_END or kind is _MAP_END:
                stack.pop()
            elif kind is _SEQ_START or kind is _MAP_START:
                if len(stack) >= max_depth:  # the gate: this one would open at depth max_depth + 1
                    line, col = _event_mark(event)
                    message = f"nesting deeper than {max_depth} levels"
                    raise _fail(self.path, line, col, "yaml-too-deep", message)
                self.start(event, kind is _MAP_START)
            elif kind is _ALIAS:
                raise self.fail(event, "yaml-alias", "YAML anchors and aliases are not allowed in a runbook")
            elif kind is _DOC_START:
                documents += 1
                if documents > 1:
                    raise self.fail(
                        event,
                        "yaml-multiple-documents",
                        "a second YAML document starts here; a runbook file holds exactly one",
                    )

    def scalar(self, event: ev.ScalarEvent) -> None:
        forced_string = False
        if event.tag is not None or event.anchor is not None:
            forced_string = event.tag == _STR_TAG and event.anchor is None
            if not forced_string:
                self.refuse_decoration(event)
        mark = event.start_mark
        assert mark is not None
        line, col = mark.line + 1, mark.column + 1
        style = event.style or None  # the C parser reports plain as "", the pure one as None
        value: Any = event.value
        if forced_string:
            # `!!str 1.10`: the core schema's way to say "this is text", as quotes do. The text
            # starts after the tag, so columns inside it are not known ("!" style).
            style = "!" if style is None else style
        elif style is None:
            try:
                value = _resolve_plain(value)
            except _ScalarError as exc:
                raise _fail(self.path, line, col, exc.code, exc.message) from None
        if not self.stack:
            self.root_empty = style is None and event.value == ""  # `---` and nothing else
            self.root, self.root_node = value, NodePos(line, col, style)
            return
        frame = self.stack[-1]
        if not frame.is_map:
            frame.value.append(value)
            frame.children.append(NodePos(line, col, style))
        elif frame.key is None:
            self.take_key(frame, value, event, line, col)
        else:  # `add_entry`, inline: a runbook's most common event is a mapping's scalar value
            key = frame.key
            frame.value[key] = value
            node = NodePos(line, col, style)
            node.key_line, node.key_col = frame.key_line, frame.key_col
            frame.children[key] = node
            frame.key = None

    def start(self, event: ev.CollectionStartEvent, is_map: bool) -> None:
        if event.anchor is not None or event.tag is not None:
            self.refuse_decoration(event)
        line, col = _event_mark(event)
        node = NodePos(line, col)
        value: Any = {} if is_map else []
        node.children = {} if is_map else []
        frame = self.stack[-1] if self.stack else None
        if frame is None:
            self.root, self.root_node = value, node
        elif not frame.is_map:
            frame.value.append(value)
            frame.children.append(node)
        elif frame.key is None:
            kind = "mapping" if is_map else "sequence"
            hint = (
                " (an unquoted {{ ... }} is read as a YAML mapping: quote a value that starts with {{, "
                'e.g. name: "{{ params.x }}")'
                if is_map and self.last_map_start == (line, col - 1) and len(self.stack) > 1
                else ""
            )
            raise self.fail(
                event, "yaml-non-string-key", f"a mapping key must be a string, not a {kind}{hint}"
            )
        else:
            self.add_entry(frame, value, node)
        if is_map:
            self.last_map_start = (line, col)
        self.stack.append(_Frame(value, node.children, is_map))

    def take_key(self, frame: _Frame, key: Any, event: ev.ScalarEvent, line: int, col: int) -> None:
        if not isinstance(key, str):
            raise self.fail(event, "yaml-non-string-key", _non_string_key_message(key, event.value))
        first = frame.children.get(key)
        if first is not None:
            raise self.fail(
                event,
                "yaml-duplicate-key",
                f"duplicate key {_show(key)} (first defined at line {first.key_line})",
            )
        frame.key, frame.key_line, frame.key_col = key, line, col

    @staticmethod
    def add_entry(frame: _Frame, value: Any, node: NodePos) -> None:
        key = frame.key
        frame.value[key] = value
        node.key_line, node.key_col = frame.key_line, frame.key_col
        frame.children[key] = node
        frame.key = None

    def refuse_decoration(self, event: Any) -> None:
        if event.anchor is not None:
            raise self.fail(event, "yaml-alias", "YAML anchors and aliases are not allowed in a runbook")
        hint = "write plain data"
        if event.tag == _STR_TAG:
            hint = "`!!str` applies to a single value, not to an anchored one or a collection"
        raise self.fail(
            event, "yaml-tag", f"YAML tag {_show_tag(event.tag)} is not allowed in a runbook ({hint})"
        )

    def fail(self, event: Any, code: str, message: str) -> LoadError:
        line, col = _event_mark(event)
        return _fail(self.path, line, col, code, message)


# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution), plain scalars only.
# Note `0755` is the decimal integer 755 (1.2 has octal only as `0o755`), and `1_000`, `1:30`,
# `2001-12-14`, `yes`, `off` and `0b101` are strings, unlike in YAML 1.1.
_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT_DEC = re.compile(r"[-+]?[0-9]+")
_INT_OCT = re.compile(r"0o[0-7]+")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF_NAN = re.compile(r"[-+]?(?:\.inf|\.Inf|\.INF)|\.nan|\.NaN|\.NAN")


class _ScalarError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _resolve_plain(text: str) -> Any:
    """The value of a plain (unquoted) scalar under the YAML 1.2 core schema."""
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if text[0] in "-+.0123456789":  # cheap pre-filter: every number starts so
        for pattern, base, prefix in ((_INT_DEC, 10, 0), (_INT_OCT, 8, 2), (_INT_HEX, 16, 2)):
            if pattern.fullmatch(text):
                digits = len(text) - prefix - (text[0] in "+-")
                if digits > MAX_NUMBER_DIGITS:
                    raise _ScalarError(
                        "yaml-number-too-long",
                        f"integer has {digits} digits; at most {MAX_NUMBER_DIGITS} are allowed"
                        " (quote it to keep it as text)",
                    )
                return int(text[prefix:], base)
        if _FLOAT.fullmatch(text):
            if len(text) > MAX_NUMBER_DIGITS:
                raise _ScalarError(
                    "yaml-number-too-long",
                    f"number is {len(text)} characters long; at most {MAX_NUMBER_DIGITS} are allowed"
                    " (quote it to keep it as text)",
                )
            number = float(text)
            if number in (float("inf"), float("-inf")):
                raise _ScalarError(
                    "yaml-nan", f"number {text} is out of range (infinity is not allowed in a runbook)"
                )
            return number
        if _INF_NAN.fullmatch(text):
            raise _ScalarError(
                "yaml-nan",
                f"{text} is not allowed: NaN and infinity are not data a runbook may hold"
                f" (quote it, '{text}', to keep it as text)",
            )
    return text


# --------------------------------------------------------------------------------------------
# Messages


def _fail(path: str, line: int, col: int, code: str, message: str) -> LoadError:
    return LoadError(error(path, line, col, code, message))


def _too_large(path: str, what: str, limit: int, *, exact: bool = True) -> LoadError:
    text = f"{what}, over the {limit}-byte limit" if exact else f"{what} the {limit}-byte limit"
    return _fail(path, 1, 1, "yaml-too-large", text)


def _syntax_error(path: str, text: str, exc: yaml.MarkedYAMLError) -> LoadError:
    """One line from PyYAML's error: the problem, where it is, and where the enclosing node began."""
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    if problem == "found character that cannot start any token" and mark is not None:
        # libyaml leaves the character out; PyYAML's pure scanner names it.
        problem = f"found character {text[mark.index : mark.index + 1]!r} that cannot start any token"
    message = f"invalid YAML: {problem}"
    context_mark = exc.context_mark
    if (
        exc.context
        and exc.problem
        and context_mark is not None
        and context_mark.index != (mark and mark.index)
    ):
        message += f" ({exc.context} that started at line {context_mark.line + 1})"
    if "tab character" in problem or "'\\t'" in problem:
        message += "; indent with spaces, YAML does not allow tabs there"
    return _fail(path, line, col, "yaml-syntax", _one_line(message))


def _non_string_key_message(key: Any, raw: str) -> str:
    if raw == "":
        return "a mapping key is empty; keys must be strings"
    kind = "null" if key is None else "a boolean" if isinstance(key, bool) else "a number"
    return f"mapping key {_shorten(raw)} is read as {kind}, not a string (quote it to use it as text)"


def _show_tag(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    shown = "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag
    return _show(shown)


def _show(text: str) -> str:
    return repr(_shorten(text))


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(text: str) -> str:
    return _shorten(" ".join(text.split()), 300)


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _utf8_length(text: str) -> int:
    """UTF-8 length of possibly huge text, without allocating a copy of it all at once."""
    step = 1 << 16
    return sum(len(text[i : i + step].encode("utf-8", "surrogatepass")) for i in range(0, len(text), step))


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < limit:
        chunk = os.read(fd, min(limit - len(chunks), 1 << 16))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)

"""Which characters a runbook may hold: every code point, and what the loader says of a refused one."""

from __future__ import annotations

import re

import pytest

from wpk.engine import loader
from wpk.engine.loader import LoadError, load_text

# YAML 1.2's printable set (c-printable) minus NEL, LS and PS, as the loader documents it.
YAML_PRINTABLE_MINUS_BREAKS = re.compile(
    "[\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def test_the_forbidden_set_is_exactly_the_complement_of_the_allowed_one() -> None:
    disagree = [
        hex(c)
        for c in range(0x110000)
        if (loader._FORBIDDEN_CHAR.match(chr(c)) is None)
        != (YAML_PRINTABLE_MINUS_BREAKS.match(chr(c)) is not None)
    ]
    assert disagree == []


@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\x00", "NUL U+0000"),
        ("\x08", "control character U+0008"),
        ("\x0b", "control character U+000B"),
        ("\x1f", "control character U+001F"),
        ("\x7f", "control character U+007F"),
        ("\x85", "NEL (next line) U+0085"),
        ("\x9f", "control character U+009F"),
        ("\u2028", "line separator U+2028"),
        ("\u2029", "paragraph separator U+2029"),
        ("\ufffe", "character U+FFFE"),
        ("\uffff", "character U+FFFF"),
    ],
)
def test_a_refused_character_is_named_at_its_line_and_column(char: str, name: str) -> None:
    with pytest.raises(LoadError) as info:
        load_text(f"a: 1\nb: x{char}y\n", "rb.yaml")
    d = info.value.diagnostic
    assert (d.line, d.col, d.code) == (2, 5, "yaml-control-character")
    assert d.message.startswith(f"{name} is not allowed in a runbook")


@pytest.mark.parametrize(
    "char", ["\t", "\xa0", "\u2027", "\u202a", "\ud7ff", "\ue000", "\ufffd", "\U0001f600"]
)
def test_the_characters_next_to_the_refused_ones_load(char: str) -> None:
    assert load_text(f'a: "x{char}y"\n', "rb.yaml").data == {"a": f"x{char}y"}

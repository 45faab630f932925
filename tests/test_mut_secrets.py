"""The length thresholds of secret masking, at their edges (issue 15, mutation testing).

A line of a multi-line secret is masked on its own from MIN_FORM_CHARS (4) characters, a run
between a secret's quotes, backslashes or spaces from MIN_SEGMENT_CHARS (6): shorter pieces would
mask everyday text. Each row is a secret, a text, and exactly what the Redactor leaves of it.
"""

from __future__ import annotations

import pytest

from wpk.engine.secrets import Redactor

ROWS: list[tuple[str, str, str]] = [
    ("abc\nlongsecretline", "abc here; longsecretline there", "abc here; *** there"),
    ("abcd\nlongsecretline", "abcd here; longsecretline there", "*** here; *** there"),
    ("aaaaa'bbbbbb", "aaaaa alone, bbbbbb alone", "aaaaa alone, *** alone"),
    ("aaaaaa'bbbbb", "aaaaaa alone, bbbbb alone", "*** alone, bbbbb alone"),
    ("xyz", "xyz and eHl6 and 78797a", "*** and *** and ***"),  # a short secret: all its forms
]


@pytest.mark.parametrize(("secret", "text", "left"), ROWS)
def test_pieces_of_a_secret_are_masked_from_their_threshold(secret: str, text: str, left: str) -> None:
    assert Redactor([secret]).text(text) == left

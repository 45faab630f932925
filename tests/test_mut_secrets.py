"""The length thresholds of secret masking, at their edges (issue 15, mutation testing).

A line of a multi-line secret is masked on its own from MIN_FORM_CHARS (4) characters, a run
between a secret's quotes, backslashes or spaces from MIN_SEGMENT_CHARS (6): shorter pieces would
mask everyday text. Each row is a secret, a text, and exactly what the Redactor leaves of it.

Then every derived form of a few secrets, exactly (a form missing is a leak through that
encoding; a form added masks text that holds no secret), and base64 at each offset in context:
exactly which characters stay visible.
"""

from __future__ import annotations

import pytest

from wpk.engine.secrets import Redactor, derived_forms

ROWS: list[tuple[str, str, str]] = [
    ("abc\nlongsecretline", "abc here; longsecretline there", "abc here; *** there"),
    ("abcd\nlongsecretline", "abcd here; longsecretline there", "*** here; *** there"),
    # a 4-character line with both quote kinds: no escaped form of it equals the line itself
    ("xy\na'\"b", "see a'\"b", "see ***"),
    ("aaaaa'bbbbbb", "aaaaa alone, bbbbbb alone", "aaaaa alone, *** alone"),
    ("aaaaaa'bbbbb", "aaaaaa alone, bbbbb alone", "*** alone, bbbbb alone"),
    ("xyz", "xyz and eHl6 and 78797a", "*** and *** and ***"),  # a short secret: all its forms
]


@pytest.mark.parametrize(("secret", "text", "left"), ROWS)
def test_pieces_of_a_secret_are_masked_from_their_threshold(secret: str, text: str, left: str) -> None:
    assert Redactor([secret]).text(text) == left


# (secret, every form the masker looks for). Each set holds: the secret; its lines of 4+
# characters, stripped; base64 at offsets 0, 1, 2 (only the characters that depend on the
# secret alone), base64url of those, the padded whole; percent-encoded (`safe=""` upper and
# lower case, `quote` keeping `/`, `quote_plus`); JSON (ASCII and not) and `repr` bodies; shell
# quoting, the `'"'"'` escape, the quoted JSON, each quoted again; the runs of 6+ characters
# between quotes, backslashes and white space; hex, lower and upper case. Forms shorter than 4
# characters are dropped.
FORMS: list[tuple[str, set[str]]] = [
    (
        "a'b c",
        {
            "a'b c",
            "EnYiBj",
            "YSdiIG",
            "hJ2IgY",
            "a%27b+c",
            "YSdiIGM=",
            "a%27b%20c",
            "a'\"'\"'b c",
            "6127622063",
            "'a'\"'\"'b c'",
            "'\"a'\"'\"'b c\"'",
            "a'\"'\"'\"'\"'\"'\"'\"'\"'b c",
            "'\"'\"'a'\"'\"'\"'\"'\"'\"'\"'\"'b c'\"'\"'",
            "'\"'\"'\"a'\"'\"'\"'\"'\"'\"'\"'\"'b c\"'\"'\"'",
        },
    ),
    (
        'pä"s/?\x01 x',
        {
            'pä"s/?\x01 x',
            "'pä\"s/?\x01 x'",
            "DDpCJzLz8BIH",
            'pä"s/?\\x01 x',
            "cMOkInMvPwEge",
            "ww6Qicy8/ASB4",
            "ww6Qicy8_ASB4",
            'pä\\"s/?\\u0001 x',
            "cMOkInMvPwEgeA==",
            "'\"'\"'pä\"s/?\x01 x'\"'\"'",
            "70C3A422732F3F012078",
            "70c3a422732f3f012078",
            'p\\u00e4\\"s/?\\u0001 x',
            "p%C3%A4%22s%2F%3F%01+x",
            "p%C3%A4%22s/%3F%01%20x",
            '\'"p\\u00e4\\"s/?\\u0001 x"\'',
            "p%C3%A4%22s%2F%3F%01%20x",
            "p%c3%a4%22s%2f%3f%01%20x",
            '\'"\'"\'"p\\u00e4\\"s/?\\u0001 x"\'"\'"\'',
        },
    ),
    (
        "a b\ncdef\n",
        {
            "cdef",
            "'a b'",
            "a%20b",
            "'\"a b\"'",
            "'\"cdef\"'",
            "a b\ncdef\n",
            "'a b\ncdef\n'",
            "EgYgpjZGVmC",
            "a b\\ncdef\\n",
            "hIGIKY2RlZg",
            "YSBiCmNkZWYK",
            "'\"'\"'a b'\"'\"'",
            "a+b%0Acdef%0A",
            "'\"'\"'\"a b\"'\"'\"'",
            "'\"a b\\ncdef\\n\"'",
            "a%20b%0Acdef%0A",
            "a%20b%0acdef%0a",
            "'\"'\"'\"cdef\"'\"'\"'",
            "6120620A636465660A",
            "6120620a636465660a",
            "'\"'\"'a b\ncdef\n'\"'\"'",
            "'\"'\"'\"a b\\ncdef\\n\"'\"'\"'",
        },
    ),
    (
        "ab\\cdefgh\t~~~>>>",
        {
            "cdefgh",
            "~~~>>>",
            "ab\\cdefgh\t~~~>>>",
            "'ab\\cdefgh\t~~~>>>'",
            "ab\\\\cdefgh\\t~~~>>>",
            "FiXGNkZWZnaAl+fn4+Pj",
            "FiXGNkZWZnaAl-fn4-Pj",
            "YWJcY2RlZmdoCX5+fj4+P",
            "YWJcY2RlZmdoCX5-fj4-P",
            "hYlxjZGVmZ2gJfn5+Pj4+",
            "hYlxjZGVmZ2gJfn5-Pj4-",
            "'\"ab\\\\cdefgh\\t~~~>>>\"'",
            "YWJcY2RlZmdoCX5+fj4+Pg==",
            "YWJcY2RlZmdoCX5-fj4-Pg==",
            "'\"'\"'ab\\cdefgh\t~~~>>>'\"'\"'",
            "ab%5Ccdefgh%09~~~%3E%3E%3E",
            "ab%5ccdefgh%09~~~%3e%3e%3e",
            "'\"'\"'\"ab\\\\cdefgh\\t~~~>>>\"'\"'\"'",
            "61625C636465666768097E7E7E3E3E3E",
            "61625c636465666768097e7e7e3e3e3e",
        },
    ),
]


@pytest.mark.parametrize(("secret", "forms"), FORMS, ids=lambda v: repr(v)[:12])
def test_every_derived_form_of_a_secret_exactly(secret: str, forms: set[str]) -> None:
    assert derived_forms(secret) == forms


# base64 of `prefix + secret + suffix` (Basic auth puts `user:` in front): what stays visible is
# the prefix's own characters, the one character shared with the prefix, and at most two
# characters at the end (the padded whole value, from offset 0, is masked whole).
BASE64_ROWS: list[tuple[str, str, str]] = [
    ("hunter2hunter", "aHVudGVyMmh1bnRlcg==", "***"),
    ("hunter2hunter", "aHVudGVyMmh1bnRlciE=", "***iE="),
    ("hunter2hunter", "dWh1bnRlcjJodW50ZXI=", "dW***I="),
    ("hunter2hunter", "dWh1bnRlcjJodW50ZXIh", "dW***Ih"),
    ("hunter2hunter", "dTpodW50ZXIyaHVudGVy", "dTp***"),
    ("hunter2hunter", "dTpodW50ZXIyaHVudGVyIQ==", "dTp***IQ=="),
    ("hunter2hunter", "dXNlcjpodW50ZXIyaHVudGVy", "dXNlcjp***"),
    ("hunter2hunter", "dXNlcjpodW50ZXIyaHVudGVyIQ==", "dXNlcjp***IQ=="),
    # "u" + "hunter2W": the encoding ends in "X", which only `=` may be stripped of
    ("hunter2W", "dWh1bnRlcjJX", "dW***"),
]


@pytest.mark.parametrize(("secret", "encoded", "left"), BASE64_ROWS)
def test_base64_at_each_offset_leaves_exactly_these_characters(secret: str, encoded: str, left: str) -> None:
    assert Redactor([secret]).text(encoded) == left

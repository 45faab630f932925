"""What needs no Jinja2: telling a template from plain text, and the names a template may use.

Kept apart from `expressions` so that loading, validating and running a runbook without
templates never imports the template engine (start-up time, DESIGN's 0.3 s goal).
"""

from __future__ import annotations

SCOPE_NAMES = frozenset({"params", "secrets", "steps", "item", "index", "execution", "result"})


def is_template(value: object) -> bool:
    return isinstance(value, str) and "{{" in value

"""The public API of wpk.engine is explicit (trio's rule): each name exported once, all importable."""

from __future__ import annotations

import wpk.engine


def test_all_names_exist_and_are_unique() -> None:
    names = wpk.engine.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(wpk.engine, name) is not None


def test_every_public_attribute_is_in_all() -> None:
    public = {n for n in vars(wpk.engine) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(wpk.engine, n)).__name__ == "module"}
    assert public - modules == set(wpk.engine.__all__)

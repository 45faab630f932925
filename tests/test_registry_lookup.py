"""Action metadata lookups (`registry.action_info`) follow what is registered, before and after."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wpk.adapters import registry
from wpk.adapters.base import ActionInfo, Inverse


def _adapter(name: str, actions: tuple[str, ...]) -> Any:
    class Adapter:
        def __init__(self, config: Mapping[str, Any] | None = None) -> None:
            self.config = dict(config or {})

        def actions(self) -> Mapping[str, ActionInfo]:
            return {
                a: ActionInfo(
                    adapter=name, action=a, read_only=True, inverse=Inverse.NOT_NEEDED, input_schema={}
                )
                for a in actions
            }

    return Adapter


def test_registering_and_unregistering_an_adapter_changes_what_is_known() -> None:
    assert registry.action_info("lookup.write") is None  # asked before: must not stick
    registry.register("lookup", _adapter("lookup", ("write",)))
    try:
        info = registry.action_info("lookup.write")
        assert isinstance(info, ActionInfo) and info.uses == "lookup.write"
        assert registry.action_info("lookup.nothing") is None
    finally:
        registry.unregister("lookup")
    assert registry.action_info("lookup.write") is None


def test_a_registered_adapter_overrides_a_built_in_one_of_the_same_name() -> None:
    builtin = registry.action_info("core.noop")
    assert builtin is not None and builtin.uses == "core.noop"
    registry.register("core", _adapter("core", ("other",)))
    try:
        assert registry.action_info("core.noop") is None
        assert registry.action_info("core.other") is not None
    finally:
        registry.unregister("core")
    assert registry.action_info("core.noop") == builtin

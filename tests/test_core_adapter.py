"""The `core` adapter: noop, echo, sleep (on a mock clock, and cancellable) and fail."""

from __future__ import annotations

import math
from importlib import metadata
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from wpk.adapters.base import Adapter, AdapterError, InputError, Inverse, Outcome, StepContext
from wpk.adapters.core import CoreAdapter


def make_ctx(logs: list[tuple[str, str]] | None = None) -> StepContext:
    sink = logs if logs is not None else []
    return StepContext(
        execution_id="exec-1",
        step_id="step",
        attempt=1,
        idempotency_key="exec-1/step",
        dry_run=False,
        log=lambda stream, line: sink.append((stream, line)),
    )


@pytest.fixture
def core() -> CoreAdapter:
    return CoreAdapter()


def test_is_an_adapter_and_registered_as_entry_point() -> None:
    adapter = CoreAdapter()
    assert isinstance(adapter, Adapter)
    assert adapter.name == "core"
    (entry,) = [ep for ep in metadata.entry_points(group="wpk.adapters") if ep.name == "core"]
    assert entry.load() is CoreAdapter


def test_actions_come_from_the_schemas(core: CoreAdapter) -> None:
    infos = core.actions()
    assert set(infos) == {"noop", "echo", "sleep", "fail"}
    for info in infos.values():
        assert info.adapter == "core"
        assert info.read_only
        assert info.is_read_only({})
        assert info.inverse is Inverse.NOT_NEEDED
    assert infos["sleep"].input_schema["required"] == ["seconds"]


def test_config_is_refused() -> None:
    with pytest.raises(ValueError, match="no configuration"):
        CoreAdapter({"unexpected": 1})


async def test_noop_returns_empty_result(core: CoreAdapter) -> None:
    outcome = await core.apply("noop", {}, make_ctx())
    assert outcome == Outcome(result={}, undo=None)


@pytest.mark.parametrize(
    "message",
    ["hello", 42, 1.5, None, True, ["a", {"b": [1, 2]}], {"nested": {"list": [1, "x", None]}}],
)
async def test_echo_returns_any_json_message(core: CoreAdapter, message: Any) -> None:
    outcome = await core.apply("echo", {"message": message}, make_ctx())
    assert outcome.result == {"message": message}
    assert outcome.undo is None


async def test_echo_without_message_is_an_input_error(core: CoreAdapter) -> None:
    with pytest.raises(InputError, match="message is required"):
        await core.apply("echo", {}, make_ctx())


async def test_sleep_waits_the_given_seconds(core: CoreAdapter, autojump_clock: MockClock) -> None:
    start = trio.current_time()
    outcome = await core.apply("sleep", {"seconds": 90}, make_ctx())
    assert outcome.result == {}
    assert trio.current_time() - start == pytest.approx(90)


async def test_sleep_accepts_fractions_and_zero(core: CoreAdapter, autojump_clock: MockClock) -> None:
    start = trio.current_time()
    await core.apply("sleep", {"seconds": 0}, make_ctx())
    await core.apply("sleep", {"seconds": 0.25}, make_ctx())
    assert trio.current_time() - start == pytest.approx(0.25)


async def test_sleep_is_cancellable(core: CoreAdapter, autojump_clock: MockClock) -> None:
    start = trio.current_time()
    with trio.move_on_after(5) as scope:
        await core.apply("sleep", {"seconds": 3600}, make_ctx())
    assert scope.cancelled_caught
    assert trio.current_time() - start == pytest.approx(5)


@pytest.mark.parametrize("seconds", [-1, 86_401, math.nan, math.inf, "5", True, None, [1]])
async def test_sleep_rejects_bad_seconds(core: CoreAdapter, seconds: Any) -> None:
    with pytest.raises(InputError, match=r"core\.sleep"):
        await core.apply("sleep", {"seconds": seconds}, make_ctx())


async def test_fail_raises_a_retryable_error_with_its_message(core: CoreAdapter) -> None:
    with pytest.raises(AdapterError) as caught:
        await core.apply("fail", {"message": "disk full on db-1"}, make_ctx())
    assert not isinstance(caught.value, InputError)
    assert caught.value.message == "disk full on db-1"
    assert str(caught.value) == "disk full on db-1"
    assert caught.value.retryable is True
    assert caught.value.reason == "core.fail"


async def test_fail_has_a_default_message(core: CoreAdapter) -> None:
    with pytest.raises(AdapterError, match=r"failed by core\.fail"):
        await core.apply("fail", {}, make_ctx())


async def test_fail_with_non_string_message_is_an_input_error(core: CoreAdapter) -> None:
    with pytest.raises(InputError):
        await core.apply("fail", {"message": {"not": "text"}}, make_ctx())


@pytest.mark.parametrize("method", ["apply", "plan"])
async def test_unknown_action_is_an_input_error(core: CoreAdapter, method: str) -> None:
    with pytest.raises(InputError, match=r"unknown action core\.explode"):
        await getattr(core, method)("explode", {}, make_ctx())


async def test_plans_describe_the_call(core: CoreAdapter) -> None:
    ctx = make_ctx()
    noop = await core.plan("noop", {}, ctx)
    assert noop.result == {}
    echo = await core.plan("echo", {"message": {"k": [1]}}, ctx)
    assert echo.result == {"message": {"k": [1]}}
    sleep = await core.plan("sleep", {"seconds": 2.5}, ctx)
    assert "2.5s" in sleep.summary
    assert sleep.details == {"seconds": 2.5}
    fail = await core.plan("fail", {"message": "boom"}, ctx)
    assert "boom" in fail.summary
    with pytest.raises(InputError):
        await core.plan("sleep", {"seconds": -3}, ctx)


async def test_plan_does_not_sleep(core: CoreAdapter, autojump_clock: MockClock) -> None:
    start = trio.current_time()
    await core.plan("sleep", {"seconds": 600}, make_ctx())
    assert trio.current_time() == start


async def test_compensate_and_aclose_do_nothing(core: CoreAdapter) -> None:
    logs: list[tuple[str, str]] = []
    ctx = make_ctx(logs)
    outcome = await core.apply("echo", {"message": "x"}, ctx)
    await core.compensate("echo", {"message": "x"}, outcome, ctx)
    await core.compensate("sleep", {"seconds": 1}, Outcome(result={}), ctx)
    await core.aclose()
    assert logs == [("info", "x")]  # the echo's own message (issue 11: shown in the progress); nothing else

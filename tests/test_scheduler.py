"""engine/scheduler.py: the lifecycle table (every pair), placement, aging and its bound."""

from __future__ import annotations

import itertools

import pytest

from wpk.engine import scheduler as s


def test_every_pair_of_states_is_allowed_exactly_when_the_table_says() -> None:
    expected = {
        ("created", "running"),
        ("created", "stopped"),
        ("created", "failed"),
        ("running", "paused"),
        ("paused", "running"),
        ("running", "stopped"),
        ("paused", "stopped"),
        ("running", "failed"),
        ("paused", "failed"),
        ("failed", "running"),
    }
    for frm, to in itertools.product(s.AGENT_STATES, repeat=2):
        assert s.can_transition(frm, to) is ((frm, to) in expected), (frm, to)
        if (frm, to) in expected:
            s.check_transition("a1", frm, to)
        else:
            with pytest.raises(s.IllegalTransition) as caught:
                s.check_transition("a1", frm, to)
            assert f"agent a1 is {frm}: cannot go to {to}" in caught.value.message


def test_every_request_from_every_state() -> None:
    legal = {
        ("running", "pause"): "paused",
        ("paused", "pause"): "paused",  # repeating it is harmless
        ("paused", "resume"): "running",
        ("running", "resume"): "running",
        ("created", "resume"): "running",
        ("created", "drain"): "stopped",
        ("running", "drain"): "stopped",
        ("paused", "drain"): "stopped",
        ("failed", "resume"): "running",
        ("stopped", "drain"): "stopped",
    }
    for state, request in itertools.product(s.AGENT_STATES, s.REQUESTS):
        if (state, request) in legal:
            assert s.check_request("a1", state, request) == legal[(state, request)]
        else:
            with pytest.raises(s.IllegalTransition, match=f"is {state}: cannot {request} it"):
                s.check_request("a1", state, request)
    with pytest.raises(ValueError, match="unknown request 'stop'"):
        s.check_request("a1", "running", "stop")


def test_an_illegal_request_names_what_is_allowed() -> None:
    with pytest.raises(s.IllegalTransition) as caught:
        s.check_request("a7", "stopped", "resume")
    assert caught.value.message == "agent a7 is stopped: cannot resume it (allowed from stopped: nothing)"


def test_placement_every_label_with_its_value() -> None:
    assert s.eligible({}, {})
    assert s.eligible({}, {"cluster": "prod-eu"})
    assert not s.eligible({"cluster": "prod-eu"}, {})
    assert not s.eligible({"cluster": "prod-eu"}, {"cluster": "prod-us"})
    assert s.eligible({"cluster": "prod-eu"}, {"cluster": "prod-eu", "zone": "a"})
    assert not s.eligible({"cluster": "prod-eu", "zone": "b"}, {"cluster": "prod-eu", "zone": "a"})
    assert s.eligible_json('{"cluster":"prod-eu"}', '{"cluster":"prod-eu"}')
    assert not s.eligible_json('{"cluster":"prod-eu"}', "{}")


def test_effective_priority_rises_by_the_rate_per_minute() -> None:
    assert s.effective_priority(10, 1000.0, 1000.0, 10.0) == 10
    assert s.effective_priority(10, 1000.0, 1060.0, 10.0) == pytest.approx(20)
    assert s.effective_priority(10, 1000.0, 1600.0, 0.0) == 10
    assert s.effective_priority(10, 1000.0, 900.0, 10.0) == 10  # a clock that went back lowers nothing


def test_claim_order_fifo_within_a_priority_and_highest_first() -> None:
    rows = [(10, 0.0, 1), (90, 1.0, 2), (90, 2.0, 3), (10, 3.0, 4)]
    order = sorted(rows, key=lambda r: s.order_key(*r, rate=0.0))
    assert [r[2] for r in order] == [2, 3, 1, 4]


@pytest.mark.parametrize("rate", [1.0, 10.0, 60.0])
@pytest.mark.parametrize("low", [0, 30, 99])
def test_the_documented_bound(rate: float, low: int) -> None:
    """A priority-`low` execution submitted at t0 is claimed before any priority-100 execution
    submitted after t0 + (100 - low) / rate minutes, and after those submitted before."""
    bound = (100 - low) / rate * 60.0
    t0 = 5000.0
    starving = s.order_key(low, t0, 1, rate)
    later = s.order_key(100, t0 + bound + 0.01, 2, rate)
    earlier = s.order_key(100, t0 + bound - 0.01, 3, rate)
    assert starving < later  # sorts first: claimed first
    assert earlier < starving


def test_waiting_reasons() -> None:
    now = 10_000.0
    running = s.AgentView("a", "running", {})
    paused = s.AgentView("b", "paused", {"cluster": "prod-eu"})
    assert s.waiting_reason({}, None, now, [running]) is None
    assert s.waiting_reason({}, now + 60, now, [running]) == "not before 1970-01-01T02:47:40Z"
    assert s.waiting_reason({}, None, now, []) == "no live agent"
    assert s.waiting_reason({}, None, now, [s.AgentView("c", "failed", {})]) == "no live agent"
    assert (
        s.waiting_reason({"cluster": "prod-eu"}, None, now, [running])
        == "no live agent has the labels cluster=prod-eu"
    )
    assert s.waiting_reason({"cluster": "prod-eu"}, None, now, [running, paused]) == (
        "every agent that could run it is paused"
    )


def test_times_for_at_and_in() -> None:
    assert s.parse_at("2026-01-31T12:00:00Z") == 1769860800.0
    assert s.parse_at("2026-01-31T12:00:00") == 1769860800.0  # no zone: UTC
    assert s.parse_at("2026-01-31T13:00:00+01:00") == 1769860800.0
    assert s.parse_at("1700000000") == 1700000000.0
    assert s.parse_in("10m", 100.0) == 700.0
    with pytest.raises(ValueError, match="not a time"):
        s.parse_at("tomorrow")
    with pytest.raises(ValueError, match="not a duration"):
        s.parse_in("soon", 0.0)

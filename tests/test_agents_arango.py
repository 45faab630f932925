"""The agents and queue scenarios with the store on the ArangoDB double (tests/arango_double):
the real `wpk serve` scenarios of tests/test_agents_e2e.py and tests/test_agents_handover.py and
the store-level queue tests of tests/test_queue_store.py, unchanged, on `arangodb://` instead of
SQLite.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from arango_double import ArangoDouble
from test_agents_e2e import (  # noqa: F401  (collected here with this module's `backing`)
    Backing,
    test_pause_priority_placement_and_control_across_processes,
    test_sigkill_marks_the_agent_failed_and_sigterm_drains,
)
from test_agents_handover import (  # noqa: F401  (collected here with this module's `backing`)
    test_sigterm_hands_running_work_over_to_an_eligible_agent,
)
from test_queue_store import (  # noqa: F401  (collected here with this module's `store`)
    test_aging_lets_an_old_low_priority_execution_overtake,
    test_control_requests_and_failed_agents,
    test_not_before_holds_an_execution_back,
    test_placement_only_an_agent_with_the_labels_claims,
    test_the_queue_listing_is_in_claim_order,
)

from wpk.engine.store.arangodb import ArangoStore, parse_url
from wpk.engine.store.base import ExecutionStore

PASSWORD = "pw-" + secrets.token_hex(8)


@pytest.fixture
def double() -> Iterator[ArangoDouble]:
    with ArangoDouble(password=PASSWORD) as d:
        yield d


@pytest.fixture
def backing(double: ArangoDouble) -> Backing:
    return Backing(f"arangodb://root@{double.host}:{double.port}/wpk", {"WPK_ARANGO_PASSWORD": PASSWORD})


@pytest.fixture
async def store(double: ArangoDouble) -> AsyncIterator[ExecutionStore]:
    s = ArangoStore(parse_url(f"arangodb://root@{double.host}:{double.port}/wpk"), PASSWORD)
    yield s  # type: ignore[misc]
    await s.aclose()

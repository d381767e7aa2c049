"""The guard's heaviest property: many random histories, each executed twice; too long for the fast tier."""

from __future__ import annotations

import typing

from hypothesis import HealthCheck, example, given, settings

from bilayer.execution.executor import results_root
from bilayer.execution.state import State
from tests.support.guard import (
    EXAMPLES,
    RICH_HISTORY,
    Runner,
    histories,
)


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@example(RICH_HISTORY)
@given(histories)
def test_a_rejected_entry_changes_nothing_and_execution_is_deterministic(history: list[typing.Any]) -> None:
    first = Runner()
    first.run(history)
    assert first.state.root() == State(first.state.items()).root()
    again = Runner()
    again.run(history)
    assert again.roots == first.roots
    assert results_root(again.results) == results_root(first.results)

"""The node's post-commit effects: named, run in the listed order, one failure stops no other."""

from __future__ import annotations

import logging

import pytest

from bilayer.node.effects import Effects, Subscriber


def test_subscribers_run_in_the_listed_order_and_a_failure_stops_no_other(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[tuple[str, int]] = []

    def broken(height: int) -> None:
        raise RuntimeError("the stream is gone")

    effects = Effects("checkpoint committed", [
        Subscriber("waiters", lambda height: ran.append(("waiters", height))),
        Subscriber("stream", broken),
        Subscriber("scrubber", lambda height: ran.append(("scrubber", height))),
    ])
    assert effects.names == ("waiters", "stream", "scrubber")
    with caplog.at_level(logging.ERROR, logger="bilayer.effects"):
        effects(7)
        effects(8)
    assert ran == [("waiters", 7), ("scrubber", 7), ("waiters", 8), ("scrubber", 8)]
    assert sum("after checkpoint committed: stream failed" in r.getMessage() for r in caplog.records) == 2


def test_a_subscriber_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        Effects("entries stored", [Subscriber("gossip", print), Subscriber("gossip", print)])

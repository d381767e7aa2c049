"""What follows a durable write, in a fixed order: named subscribers, listed in one place.

A batch of entries committed to the store, and a checkpoint committed, each have effects
(gossip to peers, answers to clients waiting, the live stream, finality, metrics). The node's
composition root (`Node._compose` in `runtime.py`) lists them once, in the order they run, so
a reader sees everything that happens after a commit and in which order. A subscriber runs
only after the write is durable; one that fails is logged and the rest still run, because the
write it follows cannot be undone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..ledger.entry import Entry

log = logging.getLogger("bilayer.effects")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """Entries just committed to the store, each with where it came from."""

    entries: Sequence[Entry]
    sources: Sequence[str]


@dataclass(frozen=True, slots=True)
class Subscriber(Generic[T]):
    name: str
    run: Callable[[T], None]


class Effects(Generic[T]):
    def __init__(self, event: str, subscribers: Sequence[Subscriber[T]]) -> None:
        names = [s.name for s in subscribers]
        if len(set(names)) != len(names):
            raise ValueError(f"{event}: a subscriber is listed twice in {names}")
        self.event = event
        self.subscribers = tuple(subscribers)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.subscribers)

    def __call__(self, item: T) -> None:
        for subscriber in self.subscribers:
            try:
                subscriber.run(item)
            except Exception:
                log.exception("after %s: %s failed; the other effects still run", self.event, subscriber.name)

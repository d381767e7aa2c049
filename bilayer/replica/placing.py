"""Where an arriving entry goes in the DAG: the ledger layer's placement rules, without I/O.

An entry whose parents are all held is placed; one missing a parent waits in the orphan pool
(bounded count and time) until its last missing parent arrives. A second entry by an author
at a sequence number already used is a fork: evidence (`on_fork`); then the half that came
second is refused when a client sends it (`ForkDetected`, 409 at the API), and admitted when a
peer sends it or this replica asked for it, because another node took it, so the chain must
order it, and execution rejects whichever half is ordered second.

The node's ingest (`node/ingest.py`) and the simulator's nodes place entries with this code.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from ..errors import BilayerError
from ..ledger.dag import Dag, ForkDetected, Orphan, Placed, Placement
from ..ledger.entry import EntryHeader

Source = str  # "api:<client>" or "peer:<node key hex>"


def from_client(source: Source) -> bool:
    return source.startswith("api")


class Arrival(Protocol):
    @property
    def id(self) -> bytes: ...

    @property
    def header(self) -> EntryHeader: ...


A = TypeVar("A", bound=Arrival)


@dataclass(slots=True)
class HeldOrphan(Generic[A]):
    entry: A
    missing: set[bytes]
    expires_ms: int
    source: Source


@dataclass
class OrphanPool(Generic[A]):
    """Entries waiting for parents; oldest evicted first when full, each dropped after its TTL."""

    capacity: int
    ttl_ms: int
    held: OrderedDict[bytes, HeldOrphan[A]] = field(default_factory=OrderedDict)
    waiting: dict[bytes, dict[bytes, None]] = field(default_factory=dict)  # ordered: a seed replays exactly

    def __len__(self) -> int:
        return len(self.held)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self.held

    def add(self, entry: A, missing: Sequence[bytes], now_ms: int, source: Source) -> None:
        if entry.id in self.held:
            return
        while len(self.held) >= self.capacity:
            self._drop(next(iter(self.held)))
        self.held[entry.id] = HeldOrphan(entry, set(missing), now_ms + self.ttl_ms, source)
        for parent in missing:
            self.waiting.setdefault(parent, {})[entry.id] = None

    def _drop(self, entry_id: bytes) -> HeldOrphan[A] | None:
        orphan = self.held.pop(entry_id, None)
        if orphan is not None:
            for parent in orphan.missing:
                children = self.waiting.get(parent)
                if children is not None:
                    children.pop(entry_id, None)
                    if not children:
                        del self.waiting[parent]
        return orphan

    def parent_arrived(self, parent: bytes) -> list[HeldOrphan[A]]:
        """Orphans whose last missing parent was `parent`, removed from the pool."""
        ready = []
        for child in self.waiting.pop(parent, ()):
            orphan = self.held.get(child)
            if orphan is None:
                continue
            orphan.missing.discard(parent)
            if not orphan.missing:
                self.held.pop(child)
                ready.append(orphan)
        return ready

    def expire(self, now_ms: int) -> int:
        expired = [held_id for held_id, o in self.held.items() if o.expires_ms <= now_ms]
        for held_id in expired:
            self._drop(held_id)
        return len(expired)

    def missing_parents(self) -> list[bytes]:
        return [parent for parent in self.waiting if parent not in self.held]

    def clear(self) -> None:
        self.held.clear()
        self.waiting.clear()


@dataclass
class Placer(Generic[A]):
    """The DAG and the orphans waiting to join it; `on_fork(existing_id, second, source)` hears
    of every fork found, before the second half is admitted or refused."""

    dag: Dag
    orphans: OrphanPool[A]
    on_fork: Callable[[bytes, A, Source], None]

    def placement(self, entry: A, source: Source, requested: bool) -> Placement:
        """Where `entry` stands; raises ForkDetected for a client's second half this replica did
        not ask for."""
        try:
            return self.dag.placement(entry.id, entry.header)
        except ForkDetected as fork:
            self.on_fork(fork.existing_id, entry, source)
            if from_client(source) and not requested:
                raise
            return self.dag.placement(entry.id, entry.header, allow_fork=True)

    def complete(self, placed: A, now_ms: int, requested: Callable[[bytes], bool], add: Callable[[A, Source], None],
                 refused: Callable[[BilayerError], None]) -> None:
        """After `placed` joined the DAG: place every orphan it (transitively) completes, each only
        when its turn comes, so two halves of a fork waiting on one parent meet as a fork."""
        waiting = self.orphans.parent_arrived(placed.id)
        while waiting:
            orphan = waiting.pop()
            try:
                placement = self.placement(orphan.entry, orphan.source, requested(orphan.entry.id))
            except BilayerError as exc:
                refused(exc)
                continue
            if isinstance(placement, Placed):
                add(orphan.entry, orphan.source)
                waiting.extend(self.orphans.parent_arrived(orphan.entry.id))
            elif isinstance(placement, Orphan):
                self.orphans.add(orphan.entry, placement.missing, now_ms, orphan.source)

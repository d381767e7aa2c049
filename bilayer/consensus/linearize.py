"""Linearization: the one order in which every node executes what a checkpoint covers.

    linearize(parents_of, frontier, ordered, root) -> [entry ids]

Everything reachable from `frontier` by parent links that is neither already `ordered`
nor the genesis `root`, parents before children; among entries whose parents are all
placed, the smallest id (as bytes) comes first: Kahn's algorithm with a min-heap. A pure
function of the DAG and the frontier, so every honest node computes the same list.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Container, Iterable


class MissingEntry(Exception):
    """The DAG below the frontier is incomplete; the entry must be fetched first."""

    def __init__(self, entry_id: bytes) -> None:
        super().__init__(entry_id.hex())
        self.entry_id = entry_id


def linearize(
    parents_of: Callable[[bytes], tuple[bytes, ...]],
    frontier: Iterable[bytes],
    ordered: Container[bytes],
    root: bytes,
) -> list[bytes]:
    """`parents_of(id)` gives an entry's parents and raises `MissingEntry` for an unknown id."""
    new_parents: dict[bytes, set[bytes]] = {}
    stack = [f for f in frontier if f != root and f not in ordered]
    while stack:
        current = stack.pop()
        if current in new_parents:
            continue
        fresh = {p for p in parents_of(current) if p != root and p not in ordered}
        new_parents[current] = fresh
        stack.extend(p for p in fresh if p not in new_parents)
    waiting = {entry: len(ps) for entry, ps in new_parents.items()}
    children: dict[bytes, list[bytes]] = {}
    for entry, ps in new_parents.items():
        for parent in ps:
            children.setdefault(parent, []).append(entry)
    ready = [entry for entry, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        entry = heapq.heappop(ready)
        order.append(entry)
        for child in children.get(entry, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    return order

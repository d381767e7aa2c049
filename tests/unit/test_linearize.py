"""Linearization is a pure, documented function: committed vectors and its defining properties."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from bilayer.consensus.linearize import MissingEntry, linearize
from tests.support.paths import VECTORS

VECTORS = json.loads((VECTORS / "linearize_v1.json").read_text())


def h(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


ROOT = h(VECTORS["root"])
PARENTS = {h(k): tuple(h(p) for p in v) for k, v in VECTORS["dag"].items()}
NAMES = {h(k): k for k in VECTORS["dag"]}


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_committed_vectors(case: dict) -> None:
    order = linearize(PARENTS.__getitem__, [h(f) for f in case["frontier"]], {h(o) for o in case["ordered"]}, ROOT)
    assert [NAMES[i] for i in order] == case["expected"]


def _is_valid_order(order: list[bytes], parents: dict[bytes, tuple[bytes, ...]], already: set[bytes],
                    root: bytes) -> bool:
    """Parents first, and each step takes the smallest entry whose parents are all placed."""
    placed = set(already) | {root}
    remaining = set(order)
    for entry in order:
        ready = {e for e in remaining if all(p in placed for p in parents[e])}
        if entry != min(ready):
            return False
        placed.add(entry)
        remaining.discard(entry)
    return True


@pytest.mark.parametrize("seed", range(20))
def test_random_dags_give_parents_first_smallest_id_orders(seed: int) -> None:
    rng = random.Random(seed)
    root = h("root")
    entries: list[bytes] = []
    parents: dict[bytes, tuple[bytes, ...]] = {}
    for index in range(60):
        entry = h(f"{seed}-{index}")
        pool = entries or [root]
        parents[entry] = tuple(rng.sample(pool, min(len(pool), rng.randint(1, 3))))
        entries.append(entry)
    already = set(entries[: rng.randint(0, 20)])
    already = {e for e in already if all(p in already or p == root for p in parents[e])}
    frontier = rng.sample(entries, 5)
    order = linearize(parents.__getitem__, frontier, already, root)
    assert _is_valid_order(order, parents, already, root)
    assert len(order) == len(set(order))
    # every ancestor of the frontier that was not ordered yet is in the order, nothing else
    reachable: set[bytes] = set()
    stack = list(frontier)
    while stack:
        e = stack.pop()
        if e in reachable or e in already or e == root:
            continue
        reachable.add(e)
        stack.extend(parents[e])
    assert set(order) == reachable
    # the same inputs in another order give the same output
    assert linearize(parents.__getitem__, list(reversed(frontier)), already, root) == order


def test_unknown_entry_raises_missing() -> None:
    def parents_of(entry: bytes) -> tuple[bytes, ...]:
        if entry == h("x"):
            return (h("unknown"),)
        raise MissingEntry(entry)

    with pytest.raises(MissingEntry) as info:
        linearize(parents_of, [h("x")], set(), h("root"))
    assert info.value.entry_id == h("unknown")

"""The state read through a value source (the node's `state` table, the simulator's disk)
against a plain dict: random writes, deletes, nested transactions and rollbacks, prefix
scans, checkpoints made durable at once or one behind (memory running ahead of the disk),
commits the disk refuses, and reopening over what the disk holds. The cache is kept tiny
so that reads go to the source and evictions happen all the time."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from bilayer.execution.smt import Child, MemoryNodes, TreeUpdate
from bilayer.execution.state import MemoryValues, State, StateTree, ValueSource
from bilayer.node.storage import Storage

PREFIXES = [b"", b"B", b"B\x01", b"A", b"Z", b"Zw", b"Zw\x00", b"Zw\x00r", b"Zapp\x00", b"Q", b"B\xff"]


def key_pool(rng: random.Random) -> list[bytes]:
    keys = {b"B" + bytes([rng.choice([1, 2, 0xFF])]) + rng.randbytes(rng.randint(0, 2)) for _ in range(40)}
    keys |= {b"A" + rng.randbytes(2) for _ in range(15)}
    keys |= {app + bytes([kind]) + rng.randbytes(1) for app in (b"Zw\x00", b"Zapp\x00") for kind in b"rl"
             for _ in range(8)}
    keys |= {b"B", b"Z", b"B\xff\xff"}
    return sorted(keys)


class Disk:
    """A value source and its durable writer, with the tree's nodes beside it."""

    def __init__(self, source: ValueSource, write: Callable[[list[tuple[bytes, bytes | None]]], None]) -> None:
        self.source = source
        self.write = write
        self.nodes = MemoryNodes()


def memory_disk() -> Disk:
    values = MemoryValues()
    return Disk(values, values.apply)


def sqlite_disk(storage: Storage) -> Disk:
    def write(changes: list[tuple[bytes, bytes | None]]) -> None:
        def transaction(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN")
            conn.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                             [(k, v) for k, v in changes if v is not None])
            conn.executemany("DELETE FROM state WHERE key = ?", [(k,) for k, v in changes if v is None])
            conn.execute("COMMIT")

        storage.with_writer(transaction)

    return Disk(storage.values, write)


def run_model(disk: Disk, seed: int, steps: int) -> None:
    rng = random.Random(seed)
    keys = key_pool(rng)
    state = State(tree=StateTree(disk.nodes, None, -1), source=disk.source, cache_values=4)
    model: dict[bytes, bytes] = {}
    on_disk: dict[bytes, bytes] = {}
    disk_tree: tuple[Child | None, int] = (None, -1)
    snapshots: list[dict[bytes, bytes]] = []
    # a checkpoint taken from memory whose write is under way (memory runs ahead meanwhile),
    # then written but not yet reported `durable`
    taken: tuple[list[tuple[bytes, bytes | None]], TreeUpdate] | None = None
    written: list[tuple[bytes, bytes | None]] | None = None

    def check() -> None:
        for prefix in rng.sample(PREFIXES, 3):
            expected = sorted((k, v) for k, v in model.items() if k.startswith(prefix))
            assert list(state.scan(prefix)) == expected, prefix
        for key in rng.sample(keys, 5):
            assert state.get(key) == model.get(key)
        assert len(state) == len(model)
        assert state.cached_values <= 4

    def reopen() -> None:
        """A restart, or a refused commit: memory becomes what the disk holds."""
        nonlocal state, model, taken, written
        state = State(tree=StateTree(disk.nodes, *disk_tree), source=disk.source, cache_values=4)
        model = dict(on_disk)
        taken = written = None

    def write_taken() -> None:
        nonlocal taken, written, disk_tree
        assert taken is not None
        changes, update = taken
        disk.write(changes)
        disk.nodes.write(update)
        state.tree.written(update.version)
        disk_tree = (update.root, update.version)
        for k, v in changes:
            if v is None:
                on_disk.pop(k, None)
            else:
                on_disk[k] = v
        taken, written = None, changes

    for _ in range(steps):
        roll = rng.random()
        if roll < 0.35:
            key, value = rng.choice(keys), rng.randbytes(rng.randint(0, 3))
            state.set(key, value)
            model[key] = value
        elif roll < 0.5:
            key = rng.choice(keys)
            state.delete(key)
            model.pop(key, None)
        elif roll < 0.58 and len(snapshots) < 3:
            state.begin_transaction()
            snapshots.append(dict(model))
        elif roll < 0.64 and snapshots:
            state.commit_transaction()
            snapshots.pop()
        elif roll < 0.7 and snapshots:
            state.rollback_transaction()
            model = snapshots.pop()
        elif roll < 0.72 and taken is not None:
            write_taken()  # the write lands while memory has run ahead
        elif roll < 0.82 and written is not None:
            state.durable(written)
            written = None
        elif roll < 0.88 and not snapshots and taken is None and written is None:
            # a checkpoint: the writes taken and a tree version made, the write to disk to follow
            changes = state.take_dirty()
            update = state.commit_version(disk_tree[1] + 1)
            assert state.root() == State(model.items()).root()
            taken = (changes, update)
            if rng.random() < 0.3:
                write_taken()
                assert on_disk == model
        elif roll < 0.92 and not snapshots and taken is not None:
            reopen()  # the disk refused the write: memory goes back to what it holds
        elif roll < 0.96 and not snapshots and taken is None and written is None and not state._changed:
            reopen()  # a restart after durable checkpoints
        check()
    assert state.overlay_size <= len(keys)


@pytest.mark.parametrize("seed", range(6))
def test_a_state_over_a_memory_source_behaves_as_a_dict(seed: int) -> None:
    run_model(memory_disk(), seed, 600)


@pytest.mark.parametrize("seed", range(2))
def test_a_state_over_the_state_table_behaves_as_a_dict(tmp_path: Path, seed: int) -> None:
    storage = Storage(tmp_path / "ledger.sqlite")
    try:
        run_model(sqlite_disk(storage), seed, 400)
    finally:
        storage.close()


def test_durable_writes_leave_memory_and_a_scan_pages_through_the_table(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "ledger.sqlite")
    try:
        disk = sqlite_disk(storage)
        state = State(source=disk.source, cache_values=16)
        for n in range(2000):  # four pages of the table's scan
            state.set(b"B" + n.to_bytes(4, "big"), n.to_bytes(2, "big"))
        changes = state.take_dirty()
        disk.write(changes)
        assert state.overlay_size == 2000
        state.durable(changes)
        assert state.overlay_size == 0 and state.cached_values <= 16
        state.delete(b"B" + (7).to_bytes(4, "big"))
        scanned = [k for k, _ in state.scan(b"B")]
        assert len(scanned) == 1999 == len(state) and scanned == sorted(scanned)
        assert b"B" + (7).to_bytes(4, "big") not in scanned
        assert state.cached_values <= 16
    finally:
        storage.close()

"""Restoring a state snapshot into a SQLite store on disk: from a real source store, through the
wire form, interrupted (cleanly, and by kill -9) and resumed, and against hostile sources."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from bilayer.execution.smt import Child, InternalNode, LeafNode, Node, NodeKey
from bilayer.execution.smt_proof import verify_proof
from bilayer.execution.smt_sync import (
    ChunkNode,
    SnapshotChunk,
    decode_chunk,
    decode_request,
    encode_chunk,
    leaves,
)
from bilayer.node.state_store import StateStore, StateVersionPruned
from bilayer.node.state_sync import (
    SnapshotSourceUnavailable,
    SnapshotTarget,
    StateSyncConflict,
    StateSyncNoSources,
    StoreSource,
    restore,
)
from tests.support.paths import REPO

KEYS = 3000


def key(i: int) -> bytes:
    return b"account/%d" % i


def make_source(path: Path, keys: int = KEYS) -> tuple[StateStore, SnapshotTarget]:
    """A store with a history: the snapshot is its latest version, whose nodes span several."""
    store = StateStore(path)
    store.commit(1, [(key(i), b"%d" % (i * 3)) for i in range(keys)])
    store.commit(2, [(key(i), b"moved") for i in range(0, keys, 5)])
    store.commit(3, [(key(i), None) for i in range(0, keys, 11)] + [(key(keys + 1), b"new")])
    return store, SnapshotTarget(3, store.root(3))


def stored_keys(path: Path) -> set[NodeKey]:
    with sqlite3.connect(path) as conn:
        return {(v, bytes(p)) for v, p in conn.execute("SELECT version, path FROM smt_nodes")}


def assert_same_state(restored: StateStore, source: StateStore, version: int) -> None:
    assert restored.root(version) == source.root(version)
    for i in [*range(0, KEYS + 3, 97), 5, 11, KEYS + 1, 10**6]:
        value, proof = restored.prove(key(i), version)
        assert (value, proof) == source.prove(key(i), version)
        assert verify_proof(restored.root(version), key(i), value, proof)
    assert dict(leaves(restored, restored.root_ref(version))) == dict(leaves(source, source.root_ref(version)))


class Counting:
    """An honest source that records the nodes it sent and can go away after some chunks."""

    def __init__(self, inner: StoreSource, chunks_before_leaving: int | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.left = chunks_before_leaving
        self.sent: list[NodeKey] = []

    def fetch(self, request: bytes) -> bytes:
        if self.left is not None:
            if self.left == 0:
                raise SnapshotSourceUnavailable(f"{self.name} went away")
            self.left -= 1
        data = self.inner.fetch(request)
        self.sent.extend((entry.version, entry.path) for entry in decode_chunk(data).nodes)
        return data


def test_restore_from_a_source_store_gives_a_working_store(tmp_path: Path) -> None:
    source, target = make_source(tmp_path / "source.sqlite")
    with StateStore(tmp_path / "joined.sqlite") as joined:
        report = restore(joined, target, [StoreSource(source, 3)], chunk_nodes=300, batch_nodes=500)
        assert report.done and not report.resumed and report.refused == []
        assert report.nodes == joined.node_count() and report.batches >= 3
        assert report.leaves == KEYS - len(range(0, KEYS, 11)) + 1
        assert (joined.oldest_version, joined.latest_version) == (3, 3)
        assert_same_state(joined, source, 3)
        with pytest.raises(StateVersionPruned):  # it never held the versions before the snapshot
            joined.root(2)
        # the restored store goes on as the source does: the same next version, the same root
        changes = [(key(i), b"next") for i in range(0, KEYS, 7)] + [(key(3), None)]
        assert joined.commit(4, changes) == source.commit(4, changes)
        assert_same_state(joined, source, 4)
        # restoring the snapshot a store already holds is done at once
        assert restore(joined, SnapshotTarget(4, joined.root(4)), []).done
    source.close()


def test_an_interrupted_restore_resumes_without_fetching_what_it_holds(tmp_path: Path) -> None:
    source, target = make_source(tmp_path / "source.sqlite")
    leaving = Counting(StoreSource(source, 3, "leaving"), chunks_before_leaving=6)
    with StateStore(tmp_path / "joined.sqlite") as joined, pytest.raises(StateSyncNoSources) as caught:
        restore(joined, target, [leaving], chunk_nodes=100, batch_nodes=250)
    assert caught.value.code == "state_sync_no_sources"
    held = stored_keys(tmp_path / "joined.sqlite")
    assert 0 < len(held) <= len(leaving.sent)  # what was verified was kept, in whole batches
    with StateStore(tmp_path / "joined.sqlite") as joined:
        assert joined.latest_version is None  # nothing of the version is visible before it is whole
        assert joined.restore_target() is not None
        with pytest.raises(StateSyncConflict) as conflict:  # another snapshot is refused meanwhile
            restore(joined, SnapshotTarget(2, source.root(2)), [StoreSource(source, 2)])
        assert conflict.value.code == "state_sync_conflict"
        staying = Counting(StoreSource(source, 3, "staying"))
        report = restore(joined, target, [staying], chunk_nodes=100, batch_nodes=250)
        assert report.done and report.resumed
        assert held.isdisjoint(staying.sent)  # no verified node is asked for again
        assert held | set(staying.sent) == stored_keys(tmp_path / "joined.sqlite")
        assert_same_state(joined, source, 3)
    source.close()


CHILD = """
import sys, time
from pathlib import Path
from bilayer.node.state_store import StateStore
from bilayer.node.state_sync import SnapshotTarget, StoreSource, restore

source_path, joined_path, progress_path, root = sys.argv[1:5]
source = StateStore(Path(source_path))
inner = StoreSource(source, 3)

class Slow:
    name = "slow"
    def fetch(self, request):
        time.sleep(0.02)
        return inner.fetch(request)

def on_batch(report):
    Path(progress_path).write_text(str(report.batches))

restore(StateStore(Path(joined_path)), SnapshotTarget(3, bytes.fromhex(root)), [Slow()], chunk_nodes=20,
        batch_nodes=60, on_batch=on_batch)
Path(progress_path).write_text("done")
"""


def test_a_restore_killed_mid_batch_resumes_from_what_is_on_disk(tmp_path: Path) -> None:
    source, target = make_source(tmp_path / "source.sqlite")
    progress = tmp_path / "progress"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "source.sqlite"),
                              str(tmp_path / "joined.sqlite"), str(progress), target.root_hash.hex()],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        for _ in range(3000):  # until three batches are durable, a few seconds at most
            text = progress.read_text() if progress.exists() else ""
            if (text.isdigit() and int(text) >= 3) or time.monotonic() > deadline or child.poll() is not None:
                break
            time.sleep(0.02)
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    assert progress.read_text() != "done"
    held = stored_keys(tmp_path / "joined.sqlite")
    assert held
    with StateStore(tmp_path / "joined.sqlite") as joined:
        assert joined.latest_version is None
        staying = Counting(StoreSource(source, 3))
        report = restore(joined, target, [staying], chunk_nodes=20, batch_nodes=60)
        assert report.done and report.resumed
        assert held.isdisjoint(staying.sent)
        assert held | set(staying.sent) == stored_keys(tmp_path / "joined.sqlite")
        assert_same_state(joined, source, 3)
    source.close()


class Hostile:
    """Answers every request, each time with the honest chunk spoiled in its own way."""

    def __init__(self, name: str, honest: StoreSource) -> None:
        self.name = name
        self.honest = honest
        self.asked = 0

    def fetch(self, request: bytes) -> bytes:
        self.asked += 1
        data = self.honest.fetch(request)
        chunk = decode_chunk(data)
        nodes = list(chunk.nodes)
        if self.name == "garbage":
            return data[: len(data) // 2]
        if self.name == "truncating":
            return encode_chunk(SnapshotChunk(chunk.paths, tuple(nodes[:-1])))
        if self.name == "other-subtrees":
            asked = [subtree.path for subtree in decode_request(request).subtrees]
            return encode_chunk(SnapshotChunk((*asked, b"\x0f\x0f\x0f"), chunk.nodes))
        # one byte flipped: of the last node's value if it is a leaf, else of a child's hash
        last = nodes[-1]
        if isinstance(last.node, LeafNode):
            spoiled: Node = LeafNode(last.node.key, bytes([last.node.value[0] ^ 1]) + last.node.value[1:])
        else:
            children = list(last.node.children)
            n, child = next((n, c) for n, c in enumerate(children) if c is not None)
            children[n] = Child(child.version, bytes([child.hash[0] ^ 1]) + child.hash[1:], child.leaf)
            spoiled = InternalNode(tuple(children))
        nodes[-1] = ChunkNode(last.version, last.path, spoiled)
        return msgspec.msgpack.encode(SnapshotChunk(chunk.paths, tuple(nodes)))


def test_hostile_sources_are_dropped_and_the_sync_completes_from_the_honest(tmp_path: Path) -> None:
    source, target = make_source(tmp_path / "source.sqlite")
    hostile = [Hostile(name, StoreSource(source, 3, name))
               for name in ("byte-flipping", "garbage", "truncating", "other-subtrees")]
    honest = StoreSource(source, 3, "honest")
    with StateStore(tmp_path / "joined.sqlite") as joined:
        report = restore(joined, target, [hostile[0], honest, *hostile[1:]], chunk_nodes=200, batch_nodes=400)
        assert report.done
        assert sorted(report.refused) == [
            ("byte-flipping", "snapshot_chunk_hash_mismatch"),
            ("garbage", "snapshot_chunk_malformed"),
            ("other-subtrees", "snapshot_chunk_out_of_place"),
            ("truncating", "snapshot_chunk_truncated"),
        ]
        assert all(h.asked == 1 for h in hostile)  # one bad chunk, and the source is dropped
        assert_same_state(joined, source, 3)
    source.close()


def test_a_sync_with_only_bad_sources_stops_with_a_code_and_keeps_nothing_unverified(tmp_path: Path) -> None:
    source, target = make_source(tmp_path / "source.sqlite")
    source.commit(4, [(key(1), b"later")])
    source.prune(4)  # the snapshot's version is gone from this source
    with StateStore(tmp_path / "joined.sqlite") as joined:
        with pytest.raises(StateSyncNoSources):
            restore(joined, target, [StoreSource(source, 3, "pruned"),
                                     Hostile("byte-flipping", StoreSource(source, 4, "wrong-version"))])
        assert joined.node_count() == 0 and joined.latest_version is None
    with StateStore(tmp_path / "committed.sqlite") as committed:
        committed.commit(1, [(b"a", b"1")])
        with pytest.raises(StateSyncConflict):
            restore(committed, target, [StoreSource(source, 4)])
    source.close()

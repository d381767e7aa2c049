"""Restoring a state snapshot into the store on disk, chunk by verified chunk, resumable after a crash.

`restore` drives a `SyncPlan` (execution/smt_sync.py: the verification rules) against
sources of chunks, and writes what it accepts into a `StateStore` in durable batches. A
source is anything that answers a request in its wire form with a chunk in its wire form:
a peer over a link, or, as here, `StoreSource`, another store in this process. A source that
sends a chunk that does not verify is dropped for the rest of the sync and the request goes
to the next source; when none is left the sync stops, its verified nodes kept.

Resuming: the references still pending are persisted in the same SQLite transaction as the
nodes of each batch (`StateStore.write_restore_batch`). The other way, deriving the missing
references from the stored nodes, needs a pass over every node stored so far, some 10^6
reads at 10^6 accounts, each time the sync starts again; the persisted frontier is bounded
by the chunk size times the tree's depth, and is read back in one query. And since the
nodes and the frontier commit together, the file after a kill is either before a batch or
after it: a verified subtree already on disk is never asked for again, and nothing half
written is ever taken as received. What a crash loses is the batch being gathered, fetched
again on resume.

Over the node's peer links, and from a tree to a chain: `node/snapshot_join.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import BilayerError
from ..execution.smt import Child, LeafNode, Node, NodeKey, NodeMissing
from ..execution.smt_sync import (
    ChunkAccepted,
    SnapshotChunkInvalid,
    SnapshotChunkOutOfPlace,
    SnapshotRequestInvalid,
    SyncPlan,
    decode_chunk,
    decode_request,
    encode_chunk,
    encode_request,
    serve_request,
)
from .state_store import StateStore


class SnapshotSourceUnavailable(BilayerError):
    """The source of snapshot chunks cannot answer (gone, or no longer holding that version)."""

    code = "snapshot_source_unavailable"


class StateSyncNoSources(BilayerError):
    """Every source of the snapshot was dropped or is unavailable: the sync stops, its
    verified nodes kept, and resumes when started again with sources."""

    code = "state_sync_no_sources"


class StateSyncConflict(BilayerError):
    """The store holds other state: committed versions, or the restore of another snapshot."""

    code = "state_sync_conflict"


class ChunkSource(Protocol):
    name: str

    def fetch(self, request: bytes) -> bytes:
        """The encoded chunk answering the encoded `request`; raises SnapshotSourceUnavailable
        when there is none to give."""
        ...


@dataclass(frozen=True)
class SnapshotTarget:
    """What the joining node trusts: the state root a quorum certified at `version`."""

    version: int
    root_hash: bytes


@dataclass
class SyncReport:
    version: int
    root_hash: bytes
    resumed: bool  # a restore of this snapshot was already in progress in the store
    done: bool = False
    nodes: int = 0  # received and verified in this run
    leaves: int = 0
    bytes: int = 0
    chunks: int = 0
    batches: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (source, code) of each chunk refused
    unavailable: list[str] = field(default_factory=list)


class _Batch:
    """What was accepted since the last durable write: nodes, and the pending references
    that changed (those received, and those newly named)."""

    def __init__(self) -> None:
        self.nodes: dict[NodeKey, Node] = {}
        self.received: set[bytes] = set()
        self.pending: dict[bytes, Child] = {}

    def add(self, accepted: ChunkAccepted) -> None:
        self.nodes.update(accepted.nodes)
        for path in accepted.received:
            if path in self.pending:  # named and received within this batch: the file never knew it
                del self.pending[path]
            else:
                self.received.add(path)
        self.pending.update(accepted.pending)


def restore(store: StateStore, target: SnapshotTarget, sources: Sequence[ChunkSource], *,
            chunk_nodes: int = 4000, subtrees: int = 256, batch_nodes: int = 20_000,
            on_batch: Callable[[SyncReport], None] | None = None) -> SyncReport:
    """Restore the tree of `target` into `store` (empty, or holding a restore of this same
    snapshot, which continues where it stopped); on success the store's one version is
    `target.version`. Refuses with StateSyncConflict a store holding anything else, and
    stops with StateSyncNoSources when no source is left."""
    in_progress = store.restore_target()
    if in_progress is None:
        latest = store.latest_version
        if latest is not None:
            if latest == target.version and store.root(latest) == target.root_hash:
                return SyncReport(target.version, target.root_hash, resumed=False, done=True)
            raise StateSyncConflict(f"the store holds committed state up to version {latest}", latest=latest)
        plan = SyncPlan(target.root_hash, target.version, chunk_nodes=chunk_nodes)
        store.start_restore(target.version, target.root_hash, plan.pending)
        report = SyncReport(target.version, target.root_hash, resumed=False)
    else:
        version, certified, root = in_progress
        if (version, certified) != (target.version, target.root_hash):
            raise StateSyncConflict(f"the store holds the restore of version {version}, root {certified.hex()}",
                                    version=version)
        plan = SyncPlan.resume(certified, version, root, store.restore_pending(), chunk_nodes=chunk_nodes)
        report = SyncReport(target.version, target.root_hash, resumed=True)

    live = list(sources)
    batch = _Batch()
    turn = 0

    def flush() -> None:
        nonlocal batch
        if not batch.nodes and not batch.received:
            return
        store.write_restore_batch(batch.nodes, plan.root, batch.received, batch.pending)
        batch = _Batch()
        report.batches += 1
        if on_batch is not None:
            on_batch(report)

    while not plan.done:
        if not live:
            flush()
            raise StateSyncNoSources(f"no source left, {len(plan.pending)} subtrees still missing",
                                     pending=len(plan.pending))
        request = plan.next_request(subtrees)
        assert request is not None  # something is pending
        source = live[turn % len(live)]
        turn += 1
        try:
            data = source.fetch(encode_request(request))
            chunk = decode_chunk(data)
            if chunk.paths != tuple(subtree.path for subtree in request.subtrees):
                raise SnapshotChunkOutOfPlace("a chunk of other subtrees than those asked for")
            accepted = plan.accept(chunk)
        except SnapshotChunkInvalid as refused:
            report.refused.append((source.name, refused.code))
            live.remove(source)
            continue
        except SnapshotSourceUnavailable:
            report.unavailable.append(source.name)
            live.remove(source)
            continue
        report.chunks += 1
        report.bytes += len(data)
        report.nodes += len(accepted.nodes)
        report.leaves += sum(1 for node in accepted.nodes.values() if isinstance(node, LeafNode))
        batch.add(accepted)
        if len(batch.nodes) >= batch_nodes:
            flush()
    flush()
    store.finish_restore()
    report.done = True
    return report


def serve_chunk(store: StateStore, version: int, request: bytes) -> bytes:
    """The answer a node gives from its own store: the chunk `request` asks for, of the tree
    at `version` (refused with a code when that version is pruned or unknown)."""
    parsed = decode_request(request)
    root = store.root_ref(version)
    try:
        return encode_chunk(serve_request(store, root, parsed))
    except NodeMissing as missing:
        raise SnapshotRequestInvalid(f"no such subtree at version {version}: {missing.message}") from missing


class StoreSource:
    """Chunks served from a store in this process, through the wire form, as a peer would."""

    def __init__(self, store: StateStore, version: int, name: str = "local") -> None:
        self.store = store
        self.version = version
        self.name = name

    def fetch(self, request: bytes) -> bytes:
        try:
            return serve_chunk(self.store, self.version, request)
        except BilayerError as failed:
            raise SnapshotSourceUnavailable(f"{self.name}: {failed.message}", cause=failed.code) from failed

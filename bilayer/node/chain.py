"""The replica's chain made durable: each applied checkpoint is one SQLite transaction.

The replica (`bilayer.replica.chain.ChainState`) verifies and executes checkpoints in memory;
this module records them (checkpoint, results, state changes and the state tree's version of
that height in one transaction), restores them at start, prunes state versions past the
retention setting, and keeps the audit index, a read model derived from the chain, following
the commits on a thread of its own.

The store records its chain format (node/storage.py refuses another at open).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .. import codec
from ..audit import index as audit_index
from ..audit.proof import validator_change_proofs
from ..consensus.linearize import MissingEntry
from ..consensus.messages import CertificateInvalid, FinalizedCheckpoint
from ..execution.executor import genesis_state
from ..execution.smt import TreeUpdate, root_hash
from ..execution.state import DEFAULT_CACHE_VALUES, State, StateTree
from ..genesis import Genesis
from ..ledger.dag import Dag
from ..ledger.entry import EntryHeader, Tombstone
from ..replica.chain import Applied, ChainState, NotNext, RootMismatch, ValidatorEpoch, withheld_payloads
from .state_store import StateStoreCorrupt, check_values
from .storage import Storage, StoredCheckpoint, StoredResult

log = logging.getLogger("bilayer.chain")


DEFAULT_KEEP_HEIGHTS = 10_000


@dataclass(frozen=True, slots=True)
class PreparedCommit:
    checkpoint: StoredCheckpoint
    results: list[StoredResult]
    changes: list[tuple[bytes, bytes | None]]
    withheld: list[tuple[bytes, Tombstone]]
    indexed: audit_index.CheckpointEntries
    state: State
    tree: tuple[TreeUpdate, ...]
    validator_proofs: list[tuple[int, int, bytes]]


class AuditIndexer:
    """Writes the audit index of each committed checkpoint after its commit, in height order,
    on a thread of its own: the index is derived data, so it stays off the commit that
    consensus waits for. Each checkpoint's part is its own durable transaction; a node that
    stops before one is written finds its index behind at the next start and catches it up
    from the stored chain (`audit_index.ensure_current`)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-index")
        self._last: Future[None] | None = None

    def submit(self, checkpoint: audit_index.CheckpointEntries, state: State) -> None:
        """`state` may run ahead of `checkpoint`: the index reads only records that never change."""
        storage = self.storage
        try:
            self._last = self._worker.submit(storage.with_writer,
                                             lambda conn: audit_index.maintain(conn, checkpoint, state))
        except RuntimeError:  # stopping: the next start catches the index up from the stored chain
            log.info("audit index: height %d left for the next start", checkpoint.height)

    def run(self, work: Callable[[], None]) -> None:
        """Other work after commits (pruning state versions), in order with the index's."""
        self._last = self._worker.submit(work)

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until every checkpoint submitted so far is indexed (tests, shutdown)."""
        last = self._last
        if last is not None:
            last.result(timeout_s)

    async def caught_up(self, timeout_s: float) -> bool:
        """Wait (bounded) until the index holds every checkpoint committed so far, so a reader
        sees each final entry in it; False when it did not get there within `timeout_s`."""
        last = self._last
        if last is None or last.done():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(last)), timeout_s)
        except TimeoutError:
            return False
        except Exception:  # the disk failed the index write: the reader sees the index as it stands
            return True
        return True

    def close(self) -> None:
        self._worker.shutdown(wait=True)


@dataclass(frozen=True)
class ChainHead:
    """The last checkpoint on disk. Memory runs one checkpoint ahead while it is being written
    (on a worker thread), so what a client is told is the latest comes from here: a height it
    reads in /v1/status is a checkpoint it can fetch."""

    height: int
    checkpoint_id: bytes | None
    time_ms: int
    state_root: bytes
    results_root: bytes


class Chain(ChainState):
    """ChainState persisted: each applied checkpoint is one SQLite transaction."""

    def __init__(self, storage: Storage, genesis: Genesis, indexer: AuditIndexer | None = None,
                 keep_heights: int | None = DEFAULT_KEEP_HEIGHTS, cache_values: int = DEFAULT_CACHE_VALUES) -> None:
        """With an `indexer`, the audit index stays out of the commit: whoever runs the chain
        submits each committed checkpoint to it (the node: its "audit index" subscriber);
        without one, the index is written inside the commit (the simplest form, for tools and tests).
        `keep_heights`: the state versions kept provable (None: archive, all of them);
        older ones are pruned after commits, on the indexer's thread when there is one.
        `cache_values`: the state values kept in memory once read (the rest stay on disk)."""
        super().__init__(genesis)
        if keep_heights is not None and keep_heights < 1:
            raise ValueError("keep_heights is at least 1")
        self.storage = storage
        self.indexer = indexer
        self.keep_heights = keep_heights
        self.cache_values = cache_values
        self.committed: ChainHead = ChainHead(0, None, genesis.genesis_time_ms, self.state_root, self.results_root)

    def load(self) -> None:
        """Restore from storage. The state's values stay on disk (read through the state's
        cache); the check at start is the cheap one: the stored tree's root at the last height
        is the root recorded with the last checkpoint (`restore`). The full check, every stored
        value against the tree, is `check_state` (`bilayer node check-state`). A new store gets
        the genesis state and its tree first."""
        storage = self.storage
        if storage.tree.latest_version is None:
            state = genesis_state(self.genesis)
            storage.init_state(state.items(), state.commit_version(0))
        latest = storage.latest_checkpoint()
        height = 0 if latest is None else latest.height
        tree_version = storage.tree.latest_version
        if tree_version != height:
            raise StateStoreCorrupt(f"the stored state tree's latest version is {tree_version}, the last"
                                    f" checkpoint's height {height}: the stored state is damaged")
        stored = storage.tree.root_ref(height)
        state = State(tree=StateTree(storage.tree, stored, height), source=storage.values, lock=threading.Lock(),
                      cache_values=self.cache_values)
        if latest is None:
            self.restore(state, None, b"", self.results_root, ())
        else:
            finalized = codec.decode(latest.finalized, FinalizedCheckpoint)
            self.restore(state, finalized.checkpoint, latest.state_root, latest.results_root,
                         storage.ordered_ids())
        if storage.snapshot_height() is not None:
            self.ordered_before = snapshot_boundary(storage)
        self.committed = self.head()
        self._ensure_audit_index()

    def _ensure_audit_index(self) -> None:
        """The audit index is derived from the chain: rebuild it when missing or behind."""
        if self.indexer is not None:
            self.indexer.wait()
        genesis, state = self.genesis, self.state
        self.storage.with_writer(lambda conn: audit_index.ensure_current(conn, genesis, state))

    def apply(self, finalized: FinalizedCheckpoint, dag: Dag, header_of: Callable[[bytes], EntryHeader]) -> Applied:
        """Verify, execute and durably record the next checkpoint (see `ChainState.execute_next`)."""
        applied = self.execute_next(finalized, dag, header_of)
        self.commit(finalized, applied)
        return applied

    def commit(self, finalized: FinalizedCheckpoint, applied: Applied) -> None:
        """Durably record a checkpoint the replica executed in memory. When the disk refuses it,
        memory goes back to exactly what the disk holds, and the error is raised: the replica
        keeps the checkpoint and tries again."""
        prepared = self.prepare(finalized, applied)
        try:
            self.write(prepared)
        except BaseException:
            self.reload()
            raise
        self.written(prepared)

    def prepare(self, finalized: FinalizedCheckpoint, applied: Applied) -> PreparedCommit:
        """The records of one checkpoint's transaction, taken from memory (on the thread that
        executes; `write` may then run on another)."""
        checkpoint = applied.checkpoint
        results = applied.results
        changes = self.state.take_dirty()
        indexed = audit_index.checkpoint_entries(applied)
        return PreparedCommit(
            StoredCheckpoint(checkpoint.height, checkpoint.id, codec.encode(finalized), applied.state_root,
                             applied.results_root, len(results), int(time.time() * 1000)),
            [StoredResult(r.entry_id, checkpoint.height, i, str(r.outcome), r.code, r.cause, kind)
             for i, (r, kind) in enumerate(zip(results, applied.kinds, strict=True))],
            changes, withheld_payloads(checkpoint, results, changes), indexed, self.state,
            tuple(self.state.tree.take_unwritten()),
            validator_change_proofs(self.state.prove, checkpoint.height, changes))

    def write(self, prepared: PreparedCommit) -> None:
        """The one SQLite transaction (blocking: the node runs it on a worker thread)."""
        indexed, state = prepared.indexed, prepared.state
        self.storage.commit_checkpoint(
            prepared.checkpoint, prepared.results, prepared.changes, prepared.withheld,
            None if self.indexer is not None else lambda conn: audit_index.maintain(conn, indexed, state),
            prepared.tree, prepared.validator_proofs,
        )

    def written(self, prepared: PreparedCommit) -> None:
        self.committed = ChainHead(prepared.checkpoint.height, prepared.checkpoint.id, prepared.indexed.time_ms,
                                   prepared.checkpoint.state_root, prepared.checkpoint.results_root)
        height = prepared.checkpoint.height
        prepared.state.tree.written(height)
        prepared.state.durable(prepared.changes)
        if self.keep_heights is not None and height - self.keep_heights >= 0:
            self._prune(height - self.keep_heights + 1)

    def _prune(self, oldest: int) -> None:
        """Off the commit: on the indexer's thread, else (tools, tests) at once."""
        storage = self.storage

        def prune() -> None:
            storage.prune_state(oldest)

        if self.indexer is None:
            prune()
            return
        with contextlib.suppress(RuntimeError):  # stopping: the next commit prunes
            self.indexer.run(prune)

    def head(self) -> ChainHead:
        return ChainHead(self.height, self.last.id if self.last else None, self.last_time_ms, self.state_root,
                         self.results_root)

    def reload(self) -> None:
        """Memory ran ahead of the disk: go back to exactly what the disk holds."""
        ChainState.__init__(self, self.genesis)
        self.load()


def snapshot_boundary(storage: Storage) -> Callable[[bytes, int], bool]:
    """Whether an author's entry at `seq` was ordered before the snapshot a chain started
    from: below the author's next sequence number in that state (`Storage.install_snapshot`)."""

    @functools.lru_cache(maxsize=65_536)
    def next_seq(author: bytes) -> int:
        return storage.snapshot_next_seq(author)

    return lambda author, seq: seq < next_seq(author)


@dataclass(frozen=True)
class StateCheck:
    """What `check_state` found: the height checked, its root, and the keys checked."""

    height: int
    state_root: bytes
    keys: int


def check_state(storage: Storage, progress: Callable[[int, int], None] | None = None) -> StateCheck:
    """The full check of the stored state, an operator's action (the start only compares
    roots): the tree at the last height re-hashed from its nodes, its root the one recorded
    with the last checkpoint, every leaf's value the `state` table's, and the table holding
    no key the tree lacks. `progress(done, total)` as keys are checked. Damage is raised as
    StateStoreCorrupt (or NodeMissing, RootMismatch), never left to a traceback."""
    latest = storage.latest_checkpoint()
    height = 0 if latest is None else latest.height
    stored = storage.tree.root_ref(height)
    recorded = latest.state_root if latest is not None else None
    if recorded is not None and root_hash(stored) != recorded:
        raise RootMismatch(f"the stored state tree at height {height} has root {root_hash(stored).hex()}, the"
                           f" checkpoint recorded {recorded.hex()}: the stored state is damaged")
    values = storage.values
    total = len(values)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    leaves = check_values(storage.tree, stored, values.get, advance)
    if leaves != total:
        raise StateStoreCorrupt(f"the state table holds {total} keys, the tree at height {height} {leaves}:"
                                " the stored state is damaged", table=total, tree=leaves)
    return StateCheck(height, root_hash(stored), leaves)


__all__ = ["Applied", "AuditIndexer", "CertificateInvalid", "Chain", "ChainHead", "ChainState", "MissingEntry",
           "NotNext", "RootMismatch", "StateCheck", "ValidatorEpoch", "check_state"]

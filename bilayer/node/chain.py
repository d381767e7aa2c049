"""Finality on one node: applying finalized checkpoints, in height order, exactly once.

Validators and ledger nodes share this path. A checkpoint is applied only with a valid
commit certificate of the current validator set, only on top of the previous one, and
only when every entry below its frontier is held. Applying = linearize, execute, then
commit checkpoint, results and state changes in one SQLite transaction.

Checkpoint h+1 carries the state root after h. A node whose own root differs from the one
a quorum signed has diverged: it halts (`RootMismatch`) with a diagnostic rather than go on.

The validator set of each height comes from the chain itself. A council decision executed
in checkpoint h governs heights from h+2 (`VALIDATOR_CHANGE_DELAY`): after applying h a node
knows the sets of h+1 and h+2, so it verifies the next certificate, and a validator that
joins (or leaves) starts (or stops) its consensus core a whole checkpoint ahead of time.
Every set change stays in state, so a restarted node, or one catching up from genesis,
verifies each old certificate with the set of its own height.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .. import codec
from ..audit import index as audit_index
from ..consensus.linearize import MissingEntry, linearize
from ..consensus.messages import (
    CertificateInvalid,
    Checkpoint,
    CommitCertificate,
    FinalizedCheckpoint,
    verify_certificate,
)
from ..consensus.validators import Validator, ValidatorSet
from ..errors import BilayerError, ConfigError
from ..execution.executor import EntryResult, execute, genesis_state, results_root
from ..execution.governance.context import ExecContext
from ..execution.governance.redaction import Redactions, redactions_among
from ..execution.governance.rules import ContentBlocked, Rules, keywords_in
from ..execution.governance.validator_set import VALIDATOR_CHANGE_DELAY, Validators, ValidatorSetChange
from ..execution.state import State
from ..genesis import Genesis
from ..ledger.dag import Dag
from ..ledger.entry import EntryHeader, Tombstone
from .storage import Storage, StoredCheckpoint, StoredResult

log = logging.getLogger("bilayer.chain")


class RootMismatch(BilayerError):
    """This node's state differs from what a quorum of validators signed: halt."""

    code = "state_diverged"
    http_status = 500


class NotNext(Exception):
    """The checkpoint does not extend this node's chain (wrong height or previous id)."""


@dataclass(frozen=True, slots=True)
class Applied:
    height: int
    checkpoint: Checkpoint
    results: list[EntryResult]
    state_root: bytes
    results_root: bytes
    kinds: tuple[str, ...] = ()
    headers: tuple[EntryHeader, ...] = ()
    certificate: CommitCertificate | None = None  # the quorum's signatures that finalized it


@dataclass(frozen=True, slots=True)
class ValidatorEpoch:
    """A validator set and the change (in state) that made it govern from `change.height`."""

    change: ValidatorSetChange
    validators: ValidatorSet

    @property
    def height(self) -> int:
        return self.change.height


class ChainState:
    """The in-memory part of finality: what has been decided and executed so far.

    Pure and storage-free, so the simulator runs exactly what nodes run."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.epochs: list[ValidatorEpoch] = []
        self._epoch_heights: list[int] = []
        self.height = 0
        self.last: Checkpoint | None = None
        self.last_time_ms = genesis.genesis_time_ms
        self.state = genesis_state(genesis)
        self.state.take_dirty()
        self.state_root = self.state.root()
        self.results_root = results_root([])
        self.ordered: set[bytes] = set()
        self._sync_epochs()

    # --- the validator set of each height -----------------------------------------------------

    def _sync_epochs(self) -> None:
        """Pick up the set changes recorded in state since the last call. A change is recorded
        during the checkpoint that decides it and never amended afterwards."""
        validators = Validators(self.state)
        for number in range(len(self.epochs) + 1, validators.change_count() + 1):
            change = validators.change(number)
            if change is None:
                raise ConfigError(f"validator set change {number} is missing from the state")
            members = ValidatorSet(Validator(m.name, m.key, m.power) for m in change.members)
            self.epochs.append(ValidatorEpoch(change, members))
            self._epoch_heights.append(change.height)
        if not self.epochs:
            raise ConfigError("the genesis names no validators")

    def epoch_at(self, height: int) -> ValidatorEpoch:
        """The set governing `height` (known up to `height + VALIDATOR_CHANGE_DELAY`; beyond, the
        latest known set, which a later change may still replace)."""
        index = bisect.bisect_right(self._epoch_heights, height) - 1
        return self.epochs[max(0, index)]

    def validators_at(self, height: int) -> ValidatorSet:
        return self.epoch_at(height).validators

    def knows_validators_of(self, height: int) -> bool:
        return height <= self.height + VALIDATOR_CHANGE_DELAY

    @property
    def validators(self) -> ValidatorSet:
        """The set of the next height: the one that votes now."""
        return self.validators_at(self.height + 1)

    @property
    def prev_id(self) -> bytes:
        return self.last.id if self.last is not None else self.genesis.root

    def uncovered_tips(self, dag: Dag) -> list[bytes]:
        return sorted(t for t in dag.tips if t != dag.root and t not in self.ordered)

    def check_extends(self, checkpoint: Checkpoint) -> None:
        if checkpoint.height != self.height + 1:
            raise NotNext(f"checkpoint height {checkpoint.height}, this node is at {self.height}")
        if checkpoint.prev_id != self.prev_id:
            raise NotNext("checkpoint does not extend this node's last checkpoint")

    def missing_entries(self, checkpoint: Checkpoint, dag: Dag) -> tuple[bytes, ...]:
        return tuple(f for f in checkpoint.frontier if not dag.holds(f))

    def order_of(self, frontier: tuple[bytes, ...], dag: Dag) -> list[bytes]:
        """The entries a checkpoint with this frontier orders, in execution order."""

        def parents_of(entry_id: bytes) -> tuple[bytes, ...]:
            node = dag.nodes.get(entry_id)
            if node is None:
                raise MissingEntry(entry_id)
            return node.parents

        return linearize(parents_of, frontier, self.ordered, dag.root)

    def keywords_found(
        self, frontier: tuple[bytes, ...], dag: Dag, header_of: Callable[[bytes], EntryHeader],
        payload_of: Callable[[bytes], bytes | None],
    ) -> tuple[tuple[bytes, tuple[str, ...]], ...]:
        """What the next checkpoint must say about keywords in its data entries' payloads,
        by the content rules in force now. Redacted entries are not looked at."""
        keywords = Rules(self.state).content_keywords()
        if not keywords:
            return ()
        found = []
        for entry_id in self.order_of(frontier, dag):
            if header_of(entry_id).kind != "data" or Redactions(self.state).of(entry_id) is not None:
                continue
            hits = keywords_in(payload_of(entry_id) or b"", keywords)
            if hits:
                found.append((entry_id, hits))
        return tuple(found)

    def execute_next(
        self, finalized: FinalizedCheckpoint, dag: Dag, header_of: Callable[[bytes], EntryHeader]
    ) -> Applied:
        """Verify and execute the next checkpoint in memory. Raises NotNext, CertificateInvalid,
        MissingEntry (fetch, then retry) or RootMismatch (halt)."""
        checkpoint = finalized.checkpoint
        self.check_extends(checkpoint)
        verify_certificate(self.genesis.chain_id, checkpoint, finalized.certificate,
                           self.validators_at(checkpoint.height))
        if checkpoint.state_root != self.state_root or checkpoint.results_root != self.results_root:
            raise RootMismatch(
                f"at height {checkpoint.height} a quorum signed state root {checkpoint.state_root.hex()} and results"
                f" root {checkpoint.results_root.hex()} for height {self.height}; this node computed"
                f" {self.state_root.hex()} and {self.results_root.hex()}"
            )
        missing = self.missing_entries(checkpoint, dag)
        if missing:
            raise MissingEntry(missing[0])

        order = self.order_of(checkpoint.frontier, dag)
        ordered_headers = [(entry_id, header_of(entry_id)) for entry_id in order]
        context = ExecContext(checkpoint.height, checkpoint.time_ms, self.genesis.governance,
                              dict(checkpoint.keywords))
        results = execute(context, self.state, ordered_headers)
        self.results_root = results_root(results)
        self.state_root = self.state.root()
        self.height = checkpoint.height
        self.last = checkpoint
        self.last_time_ms = checkpoint.time_ms
        self.ordered.update(order)
        self._sync_epochs()
        kinds = tuple(header.kind for _, header in ordered_headers)
        return Applied(checkpoint.height, checkpoint, results, self.state_root, self.results_root, kinds,
                       tuple(header for _, header in ordered_headers), finalized.certificate)


def withheld_payloads(
    checkpoint: Checkpoint, results: list[EntryResult], changes: list[tuple[bytes, bytes | None]]
) -> list[tuple[bytes, Tombstone]]:
    """The payloads this checkpoint's decisions remove: entries its content rules blocked,
    and entries a proposal executed in it redacts."""
    removed = [(r.entry_id, Tombstone(r.cause, r.code, checkpoint.time_ms, checkpoint.height))
               for r in results if r.code == ContentBlocked.code]
    for entry_id, record in redactions_among(changes):
        removed.append((entry_id, Tombstone(f"proposal:{record.decision}", record.reason_code, record.time_ms,
                                            record.height)))
    return removed


FULL_STATE_KEY = "state_includes_genesis"


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


class Chain(ChainState):
    """ChainState persisted: each applied checkpoint is one SQLite transaction."""

    def __init__(self, storage: Storage, genesis: Genesis, indexer: AuditIndexer | None = None) -> None:
        """With an `indexer`, the audit index is written after each commit on its thread;
        without one, inside the commit (the simplest form, for tools and tests)."""
        super().__init__(genesis)
        self.storage = storage
        self.indexer = indexer
        self.on_applied: list[Callable[[Applied], None]] = []

    def load(self) -> None:
        """Restore from storage; check that the stored state still matches its recorded root."""
        if self.storage.get_meta(FULL_STATE_KEY) is None:
            # a new store, or one that kept only the keys changed since genesis: from now on it holds
            # the whole state, so a genesis key deleted later (a validator removed) stays deleted
            items = dict(genesis_state(self.genesis).items())
            items.update(self.storage.state_items())
            self.storage.replace_state(items.items(), FULL_STATE_KEY)
        latest = self.storage.latest_checkpoint()
        if latest is None:
            self._ensure_audit_index()
            return
        self.state = State(self.storage.state_items())
        self.epochs, self._epoch_heights = [], []
        self._sync_epochs()
        self.state_root = self.state.root()
        if self.state_root != latest.state_root:
            raise RootMismatch(
                f"stored state root {self.state_root.hex()} differs from the root recorded at height"
                f" {latest.height} ({latest.state_root.hex()}): the database is damaged"
            )
        finalized = codec.decode(latest.finalized, FinalizedCheckpoint)
        self.height = latest.height
        self.last = finalized.checkpoint
        self.last_time_ms = finalized.checkpoint.time_ms
        self.results_root = latest.results_root
        self.ordered = set(self.storage.ordered_ids())
        self._ensure_audit_index()

    def _ensure_audit_index(self) -> None:
        """The audit index is derived from the chain: rebuild it when missing or behind."""
        if self.indexer is not None:
            self.indexer.wait()
        genesis, state = self.genesis, self.state
        self.storage.with_writer(lambda conn: audit_index.ensure_current(conn, genesis, state))

    def apply(self, finalized: FinalizedCheckpoint, dag: Dag, header_of: Callable[[bytes], EntryHeader]) -> Applied:
        """Verify, execute and durably record the next checkpoint (see `execute_next`)."""
        applied = self.execute_next(finalized, dag, header_of)
        checkpoint = finalized.checkpoint
        results = applied.results
        changes = self.state.take_dirty()
        indexed = audit_index.CheckpointEntries(
            checkpoint.height, checkpoint.time_ms,
            [audit_index.OrderedEntry(r.entry_id, header, str(r.outcome), r.code, r.cause)
             for r, header in zip(results, applied.headers, strict=True)])
        state = self.state
        try:
            self.storage.commit_checkpoint(
                StoredCheckpoint(checkpoint.height, checkpoint.id, codec.encode(finalized), applied.state_root,
                                 applied.results_root, len(results), int(time.time() * 1000)),
                [StoredResult(r.entry_id, checkpoint.height, i, str(r.outcome), r.code, r.cause, kind)
                 for i, (r, kind) in enumerate(zip(results, applied.kinds, strict=True))],
                changes,
                withheld_payloads(checkpoint, results, changes),
                None if self.indexer is not None else lambda conn: audit_index.maintain(conn, indexed, state),
            )
        except BaseException:
            # memory ran ahead of the disk: go back to exactly what the disk holds, then report
            ChainState.__init__(self, self.genesis)
            self.load()
            raise
        if self.indexer is not None:
            self.indexer.submit(indexed, state)
        for callback in self.on_applied:
            callback(applied)
        return applied


__all__ = ["Applied", "AuditIndexer", "CertificateInvalid", "Chain", "ChainState", "MissingEntry", "NotNext",
           "RootMismatch", "ValidatorEpoch"]

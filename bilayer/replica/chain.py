"""The replica's chain: finalized checkpoints verified and executed in memory, in height order.

Pure: no storage, clock or network. The node persists what this computes (`node/chain.py`),
the simulator keeps it in a simulated store, and both run this code.

Checkpoint h+1 carries the state root after h. A replica whose own root differs from the one
a quorum signed has diverged: `RootMismatch`, and its host halts with a diagnostic.

The state root is the state tree's version of each height (`State.commit_version`): genesis
is version 0, checkpoint h version h, whether or not it changed a key, so a proof at any
retained height names its version by the height.

The validator set of each height comes from the chain itself. A council decision executed
in checkpoint h governs heights from h+2 (`VALIDATOR_CHANGE_DELAY`): after applying h a replica
knows the sets of h+1 and h+2, so it verifies the next certificate, and a validator that
joins (or leaves) starts (or stops) its consensus core a whole checkpoint ahead of time.
Every set change stays in state, so a restarted node, or one catching up from genesis,
verifies each old certificate with the set of its own height.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass

from ..consensus.linearize import MissingEntry, linearize
from ..consensus.messages import (
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
from ..execution.smt import TreeUpdate
from ..execution.state import State
from ..genesis import Genesis
from ..ledger.dag import Dag
from ..ledger.entry import EntryHeader, Tombstone


class RootMismatch(BilayerError):
    """This node's state differs from what a quorum of validators signed: halt."""

    code = "state_diverged"


class NotNext(Exception):
    """The checkpoint does not extend this node's chain (wrong height or previous id)."""


@dataclass(frozen=True, slots=True)
class Applied:
    """One checkpoint executed: what the host makes durable, then announces."""

    height: int
    checkpoint: Checkpoint
    results: list[EntryResult]
    state_root: bytes
    results_root: bytes
    kinds: tuple[str, ...] = ()
    headers: tuple[EntryHeader, ...] = ()
    certificate: CommitCertificate | None = None  # the quorum's signatures that finalized it
    tree: TreeUpdate | None = None  # the state tree's version `height`: its nodes, for the host to write


@dataclass(frozen=True, slots=True)
class ValidatorEpoch:
    """A validator set and the change (in state) that made it govern from `change.height`."""

    change: ValidatorSetChange
    validators: ValidatorSet

    @property
    def height(self) -> int:
        return self.change.height


class SnapshotOrdered:
    """What a chain that starts from a snapshot counts as ordered: the entries its own
    checkpoints ordered, and those of the DAG whose author's sequence number is below the
    author's next one in the snapshot's state (`ordered_before`), the entries the chain
    executed before the snapshot. An entry not in the DAG is not known to be ordered: its
    header is fetched first (linearizing asks for it)."""

    def __init__(self, ordered: set[bytes], dag: Dag, ordered_before: Callable[[bytes, int], bool]) -> None:
        self.ordered = ordered
        self.dag = dag
        self.ordered_before = ordered_before

    def __contains__(self, entry_id: object) -> bool:
        if entry_id in self.ordered:
            return True
        node = self.dag.nodes.get(entry_id) if isinstance(entry_id, bytes) else None
        return node is not None and self.ordered_before(node.author, node.seq)


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
        # a chain restored from a snapshot: (author, seq) -> whether ordered before it (`SnapshotOrdered`)
        self.ordered_before: Callable[[bytes, int], bool] | None = None
        self._sync_epochs()

    def restore(self, state: State, last: Checkpoint | None, recorded_root: bytes, results_root: bytes,
                ordered: Iterable[bytes]) -> None:
        """Become exactly what a durable store holds after `last` (a restart, or a commit the disk
        refused). Raises RootMismatch when the stored state does not hash to the root recorded with it."""
        self.state = state
        self.epochs, self._epoch_heights = [], []
        self._sync_epochs()
        self.state_root = state.root()
        if last is None:
            self.height, self.last, self.last_time_ms = 0, None, self.genesis.genesis_time_ms
            self.results_root = results_root
            self.ordered = set(ordered)
            return
        if self.state_root != recorded_root:
            raise RootMismatch(
                f"stored state root {self.state_root.hex()} differs from the root recorded at height"
                f" {last.height} ({recorded_root.hex()}): the stored state is damaged"
            )
        self.height = last.height
        self.last = last
        self.last_time_ms = last.time_ms
        self.results_root = results_root
        self.ordered = set(ordered)

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

    def ordered_in(self, dag: Dag) -> Container[bytes]:
        """The entries ordered so far, as linearizing asks about them."""
        if self.ordered_before is None:
            return self.ordered
        return SnapshotOrdered(self.ordered, dag, self.ordered_before)

    def uncovered_tips(self, dag: Dag) -> list[bytes]:
        ordered = self.ordered_in(dag)
        return sorted(t for t in dag.tips if t != dag.root and t not in ordered)

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

        return linearize(parents_of, frontier, self.ordered_in(dag), dag.root)

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
        tree = self.state.commit_version(checkpoint.height)
        self.state_root = self.state.root()
        self.height = checkpoint.height
        self.last = checkpoint
        self.last_time_ms = checkpoint.time_ms
        self.ordered.update(order)
        self._sync_epochs()
        kinds = tuple(header.kind for _, header in ordered_headers)
        return Applied(checkpoint.height, checkpoint, results, self.state_root, self.results_root, kinds,
                       tuple(header for _, header in ordered_headers), finalized.certificate, tree)


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

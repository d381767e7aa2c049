"""The finality driver of a replica: the consensus core, the chain and the checkpoints peers send,
as one state machine without I/O.

Inputs go in (`step`: a consensus message, a finalized checkpoint from a peer, a timer, new
entries, a retry) and each returns a `Ready`: what the host must do, in this order:

1. `persist`: save the signer state durably, BEFORE anything in `send` leaves the process
   (a validator that restarts must not sign a second vote at a height and round it voted in);
2. `send`: consensus messages and finalized checkpoints, in order;
3. `commit`: record the checkpoint the replica executed in memory; then report the outcome
   with `advance` (`Committed`, or `CommitFailed` once the host has restored the chain from
   its durable state);
4. the rest in any order: `timers`, `fetch`, `request_checkpoints`, `evidence`, `forget`,
   `applied` (checkpoints now durable: the post-commit effects), `halted`, `retry_ms`.

The core is stepped only here, and never while the actions of an earlier step are being
collected: events the driver gives the core itself (`HeightApplied` after a commit, `Start`
when this replica joins the validator set) go through one queue. A checkpoint is applied
only after the previous one's commit was acknowledged, so memory is at most one checkpoint
ahead of the disk, and a refused commit loses nothing: the checkpoint stays pending and is
tried again after `retry_ms`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..consensus.core import (
    Behind,
    Broadcast,
    Commit,
    EntriesAvailable,
    Equivocation,
    Event,
    FetchEntries,
    HeightApplied,
    MessageReceived,
    Persist,
    ScheduleTimeout,
    SignerState,
    Start,
    TendermintCore,
    TimeoutFired,
    Timeouts,
)
from ..consensus.linearize import MissingEntry
from ..consensus.messages import CertificateInvalid, Checkpoint, FinalizedCheckpoint, Proposal, Vote, verify_certificate
from ..consensus.validators import ValidatorSet
from ..keys.signing import Signer
from ..ledger.dag import Dag
from ..ledger.entry import EntryHeader
from .app import ChainApp
from .chain import Applied, ChainState, NotNext, RootMismatch

SYNC_BATCH = 50
FETCH_DELAY_MS = 150  # gossip usually delivers a proposal's entries within milliseconds: ask only after
SYNC_REQUEST_INTERVAL_MS = 500
STORAGE_RETRY_MS = 1000
MAX_PENDING = 10_000

CoreFactory = Callable[[str, Signer, ValidatorSet, ChainApp, SignerState | None, Timeouts], TendermintCore]


def default_core(chain_id: str, signer: Signer, validators: ValidatorSet, app: ChainApp, state: SignerState | None,
                 timeouts: Timeouts) -> TendermintCore:
    return TendermintCore(chain_id, signer, validators, app, state, timeouts)


class Entries(Protocol):
    """What the driver reads of the ledger layer: the DAG and the headers and payloads it holds."""

    dag: Dag

    def header_of(self, entry_id: bytes) -> EntryHeader | None: ...

    def payload_of(self, entry_id: bytes) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class FinalityStatus:
    """How the driver stands: halted (why), a checkpoint the disk refused (retried), and the
    round and phase of the height being decided (None when no core runs)."""

    halted: str | None
    storage_error: str | None
    round: int | None
    phase: int | None


# --- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsensusReceived:
    message: Proposal | Vote


@dataclass(frozen=True, slots=True)
class CheckpointReceived:
    """A finalized checkpoint from a peer (followers and lagging validators)."""

    finalized: FinalizedCheckpoint


@dataclass(frozen=True, slots=True)
class EntriesStored:
    """New entries are durable: waiting proposals may be checkable, pending checkpoints applicable."""


@dataclass(frozen=True, slots=True)
class RetryCommit:
    """`retry_ms` after a refused commit: try the pending checkpoints again."""


Input = Start | ConsensusReceived | CheckpointReceived | TimeoutFired | EntriesStored | RetryCommit


@dataclass(frozen=True, slots=True)
class Committed:
    height: int


@dataclass(frozen=True, slots=True)
class CommitFailed:
    """The disk refused the commit of `height`; the host already restored the chain from disk."""

    height: int
    diagnostic: str


# --- outputs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timer:
    delay_ms: int
    event: TimeoutFired


@dataclass(frozen=True, slots=True)
class Fetch:
    """Ask peers for these entries after `delay_ms`, those still missing then."""

    entry_ids: tuple[bytes, ...]
    delay_ms: int


@dataclass(frozen=True, slots=True)
class ToCommit:
    finalized: FinalizedCheckpoint
    applied: Applied


@dataclass(frozen=True, slots=True)
class Ready:
    persist: SignerState | None = None
    send: tuple[Proposal | Vote | FinalizedCheckpoint, ...] = ()
    commit: ToCommit | None = None
    cancel_timers: bool = False  # before `timers`: every timer scheduled earlier is void
    timers: tuple[Timer, ...] = ()
    fetch: tuple[Fetch, ...] = ()
    request_checkpoints: int | None = None  # ask peers for finalized checkpoints from this height
    evidence: tuple[Equivocation, ...] = ()
    forget: tuple[bytes, ...] = ()  # entries now ordered: the host may drop their cached headers
    applied: tuple[Applied, ...] = ()  # durable now, in height order
    refused: tuple[str, ...] = ()  # decisions of this replica's own core without a valid certificate
    halted: str | None = None
    storage_error: str | None = None  # set when a commit was refused; "" when the disk works again
    retry_ms: int | None = None


@dataclass
class _Outbox:
    persist: SignerState | None = None
    send: list[Proposal | Vote | FinalizedCheckpoint] = field(default_factory=list)
    commit: ToCommit | None = None
    cancel_timers: bool = False
    timers: list[Timer] = field(default_factory=list)
    fetch: list[Fetch] = field(default_factory=list)
    request_checkpoints: int | None = None
    evidence: list[Equivocation] = field(default_factory=list)
    forget: list[bytes] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    halted: str | None = None
    storage_error: str | None = None
    retry_ms: int | None = None

    def ready(self) -> Ready:
        return Ready(self.persist, tuple(self.send), self.commit, self.cancel_timers, tuple(self.timers),
                     tuple(self.fetch), self.request_checkpoints, tuple(self.evidence), tuple(self.forget),
                     tuple(self.applied), tuple(self.refused), self.halted, self.storage_error, self.retry_ms)


class FinalityDriver:
    """Drives the consensus core (while this replica's key votes) and follows finalized checkpoints."""

    def __init__(
        self,
        chain: ChainState,
        entries: Entries,
        signer: Signer,
        signer_state: SignerState | None,
        clock_ms: Callable[[], int],
        timeouts: Timeouts | None = None,
        heartbeat_ms: int = 0,
        core_factory: CoreFactory = default_core,
    ) -> None:
        """`signer_state` is what the host last persisted (None: nothing yet); `clock_ms` the wall
        clock, which also paces requests for checkpoints."""
        self.chain = chain
        self.entries = entries
        self.signer = signer
        self.clock_ms = clock_ms
        self.timeouts = timeouts or Timeouts()
        self.heartbeat_ms = heartbeat_ms
        self.core_factory = core_factory
        self.signer_state = signer_state
        self.halted: str | None = None
        self.storage_error: str | None = None
        self.pending: dict[int, FinalizedCheckpoint] = {}
        self.committing: ToCommit | None = None
        self._waiting_retry = False  # a commit was refused: nothing is applied until `RetryCommit`
        self._inbox: deque[Event] = deque()
        self._out = _Outbox()
        self._last_sync_request_ms: int | None = None
        self._dropped_ahead = False
        self.core: TendermintCore | None = self._new_core() if signer.public_key in chain.validators else None

    @property
    def is_validator(self) -> bool:
        return self.core is not None

    def _new_core(self) -> TendermintCore:
        app = ChainApp(self.chain, self.entries, self.signer.public_key, self.clock_ms, self.heartbeat_ms,
                       self.entries.header_of, self.entries.payload_of)
        state = self._resume_state()
        return self.core_factory(self.chain.genesis.chain_id, self.signer, self.chain.validators_at(state.height),
                                 app, state, self.timeouts)

    def _resume_state(self) -> SignerState:
        state = self.signer_state
        if state is None or state.height <= self.chain.height:
            # nothing signed yet, or the decision was applied before a restart: start at the next height
            return SignerState(height=self.chain.height + 1, round=0, phase=0, prev=self.chain.last)
        return state

    # --- the two entry points --------------------------------------------------------------

    def step(self, event: Input) -> Ready:
        if not self.halted:
            if isinstance(event, ConsensusReceived):
                if event.message.height > self.chain.height + 2:
                    self._ask_for_checkpoints()
                self._feed(MessageReceived(event.message))
            elif isinstance(event, CheckpointReceived):
                self._on_finalized(event.finalized)
            elif isinstance(event, EntriesStored):
                self._drain()
                self._feed(EntriesAvailable())
            elif isinstance(event, RetryCommit):
                self._waiting_retry = False
                self._drain()
            else:
                self._feed(event)
        return self._take()

    def advance(self, outcome: Committed | CommitFailed) -> Ready:
        """The host's answer to `Ready.commit`."""
        committing, self.committing = self.committing, None
        if committing is None or committing.applied.height != outcome.height:
            raise ValueError(f"advance({outcome}) without a commit of that height in flight")
        if isinstance(outcome, CommitFailed):
            self.pending[outcome.height] = committing.finalized
            if outcome.diagnostic != self.storage_error:
                self.storage_error = self._out.storage_error = outcome.diagnostic
            self._out.retry_ms = STORAGE_RETRY_MS
            self._waiting_retry = True
            return self._take()
        if self.storage_error is not None:
            self.storage_error, self._out.storage_error = None, ""
        applied = committing.applied
        self.pending.pop(applied.height, None)
        self._out.forget.extend(result.entry_id for result in applied.results)
        self._out.applied.append(applied)
        self._out.send.append(committing.finalized)
        self._follow_validator_set(applied.height, applied.checkpoint)
        self._run()
        self._drain()
        return self._take()

    def _take(self) -> Ready:
        self._run()
        ready, self._out = self._out.ready(), _Outbox()
        return ready

    # --- the core --------------------------------------------------------------------------

    def _feed(self, event: Event) -> None:
        self._inbox.append(event)
        self._run()

    def _run(self) -> None:
        """Step the core with queued events, one at a time, collecting their actions."""
        while self._inbox:
            event = self._inbox.popleft()
            if self.core is None or self.halted:
                continue
            for action in self.core.step(event):
                if isinstance(action, Persist):
                    self.signer_state = self._out.persist = action.state
                elif isinstance(action, Broadcast):
                    self._out.send.append(action.message)
                elif isinstance(action, ScheduleTimeout):
                    fired = TimeoutFired(action.kind, action.height, action.round)
                    self._out.timers.append(Timer(action.delay_ms, fired))
                elif isinstance(action, Commit):
                    self._decided(action.finalized)
                elif isinstance(action, FetchEntries):
                    self._out.fetch.append(Fetch(tuple(action.entry_ids), FETCH_DELAY_MS))
                elif isinstance(action, Behind):
                    self._ask_for_checkpoints()
                elif isinstance(action, Equivocation):
                    self._out.evidence.append(action)
        self._drain()

    def _decided(self, finalized: FinalizedCheckpoint) -> None:
        checkpoint = finalized.checkpoint
        try:  # a core that decides without a quorum's certificate is broken: never apply that
            verify_certificate(self.chain.genesis.chain_id, checkpoint, finalized.certificate,
                               self.chain.validators_at(checkpoint.height))
        except CertificateInvalid as exc:
            self._out.refused.append(f"decided height {checkpoint.height} without a quorum certificate: {exc}")
            return
        if checkpoint.height > self.chain.height and not (self.committing and
                                                          self.committing.applied.height == checkpoint.height):
            self.pending[checkpoint.height] = finalized

    def _follow_validator_set(self, height: int, checkpoint: Checkpoint) -> None:
        """After `height` is durable: join consensus if this key votes at `height + 1`, leave it if it
        no longer does, else tell the core (with the next height's set when a decision changed it)."""
        following = self.chain.validators_at(height + 1)
        member = self.signer.public_key in following
        if self.core is None:
            if member:
                self.core = self._new_core()
                self._inbox.append(Start())
            return
        if not member:
            self.core = None
            self._out.cancel_timers = True
            self._out.timers.clear()
            return
        changed = following is not self.chain.validators_at(height) or following is not self.core.validators
        self._inbox.append(HeightApplied(height, checkpoint, following if changed else None))

    # --- finalized checkpoints -------------------------------------------------------------

    def _on_finalized(self, finalized: FinalizedCheckpoint) -> None:
        height = finalized.checkpoint.height
        if height <= self.chain.height or height in self.pending:
            return
        try:  # only certified checkpoints may take a pending slot
            verify_certificate(self.chain.genesis.chain_id, finalized.checkpoint, finalized.certificate,
                               self.chain.validators_at(height))
        except CertificateInvalid:
            if not self.chain.knows_validators_of(height):  # signed by a set not known yet: ask again later
                self._dropped_ahead = True
            return
        if len(self.pending) < MAX_PENDING:
            self.pending[height] = finalized
        if height > self.chain.height + 1:
            self._ask_for_checkpoints()
        self._drain()

    def _drain(self) -> None:
        """Execute the next pending checkpoint in memory and hand it to the host to commit; one at
        a time, each after the previous one's commit was acknowledged."""
        if self.committing is not None or self.halted or self._waiting_retry:
            return
        chain = self.chain
        finalized = self.pending.get(chain.height + 1)
        if finalized is not None:
            try:
                applied = chain.execute_next(finalized, self.entries.dag, self._header_of)
            except MissingEntry as missing:
                still_missing = chain.missing_entries(finalized.checkpoint, self.entries.dag)
                self._out.fetch.append(Fetch((missing.entry_id, *still_missing), 0))
                return
            except NotNext:
                return
            except CertificateInvalid:
                del self.pending[chain.height + 1]
                return
            except RootMismatch as exc:
                self._halt(str(exc))
                return
            self.committing = self._out.commit = ToCommit(finalized, applied)
            return
        for height in [h for h in self.pending if h <= chain.height]:
            del self.pending[height]
        if self._dropped_ahead and chain.height + 1 not in self.pending and self._ask_for_checkpoints():
            self._dropped_ahead = False

    def _header_of(self, entry_id: bytes) -> EntryHeader:
        header = self.entries.header_of(entry_id)
        if header is None:
            raise MissingEntry(entry_id)
        return header

    def _ask_for_checkpoints(self) -> bool:
        now = self.clock_ms()
        last = self._last_sync_request_ms
        if last is not None and 0 <= now - last < SYNC_REQUEST_INTERVAL_MS:
            return False
        self._last_sync_request_ms = now
        self._out.request_checkpoints = self.chain.height + 1
        return True

    def _halt(self, diagnostic: str) -> None:
        self.halted = self._out.halted = diagnostic
        self.core = None
        self._out.cancel_timers = True
        self._out.timers.clear()
        self._inbox.clear()

    def status(self) -> FinalityStatus:
        core = self.core
        return FinalityStatus(self.halted, self.storage_error, core.round if core is not None else None,
                              int(core.phase) if core is not None else None)

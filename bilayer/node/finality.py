"""The finality service of a node: drives the consensus core (validators) and follows
finalized checkpoints (every node), on top of the ledger layer.

This is the I/O shell around the sans-IO `TendermintCore`: it persists the signer state
before anything it signed leaves the process, turns timeouts into `loop.call_later`, sends
messages to peers, fetches missing entries, applies decisions through `Chain`, and answers
peers that ask for finalized checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Protocol

from .. import codec
from ..consensus.core import (
    Action,
    Behind,
    Broadcast,
    Commit,
    ConsensusApp,
    EntriesAvailable,
    Equivocation,
    Event,
    FetchEntries,
    HeightApplied,
    Invalid,
    Missing,
    Persist,
    ScheduleTimeout,
    SignerState,
    Start,
    TendermintCore,
    TimeoutFired,
    Timeouts,
    Valid,
    Verdict,
)
from ..consensus.linearize import MissingEntry
from ..consensus.messages import (
    MAX_FRONTIER,
    CertificateInvalid,
    Checkpoint,
    FinalizedCheckpoint,
    Proposal,
    Vote,
    verify_certificate,
)
from ..keys.signing import Signer
from ..ledger.dag import Dag
from ..ledger.entry import EntryHeader
from .chain import Chain, ChainState, NotNext, RootMismatch
from .ingest import Ingest

log = logging.getLogger("bilayer.finality")

SIGNER_STATE_KEY = "signer_state"
MAX_CLOCK_SKEW_MS = 30_000
SYNC_BATCH = 50
FETCH_DELAY_S = 0.15


class HoldsDag(Protocol):
    dag: Dag


class ChainApp(ConsensusApp):
    """What the core asks of this node: values to propose and whether a value is acceptable.

    Shared by the node runtime and the simulator: it reads only the chain state and the DAG."""

    def __init__(self, chain: ChainState, ingest: HoldsDag, me: bytes, clock_ms: Callable[[], int],
                 heartbeat_ms: int, header_of: Callable[[bytes], EntryHeader | None] = lambda entry_id: None,
                 payload_of: Callable[[bytes], bytes | None] = lambda entry_id: None) -> None:
        self.chain = chain
        self.ingest = ingest
        self.me = me
        self.clock_ms = clock_ms
        self.heartbeat_ms = heartbeat_ms
        self.header_of = header_of
        self.payload_of = payload_of

    def _header_of(self, entry_id: bytes) -> EntryHeader:
        """Content keywords are looked for only while content rules are in force."""
        header = self.header_of(entry_id)
        if header is None:
            raise MissingEntry(entry_id)
        return header

    def propose_value(self, height: int, prev: Checkpoint | None) -> Checkpoint | None:
        if height != self.chain.height + 1:
            return None
        frontier = self.chain.uncovered_tips(self.ingest.dag)[:MAX_FRONTIER]
        now = self.clock_ms()
        if not frontier and (self.heartbeat_ms <= 0 or now - self.chain.last_time_ms < self.heartbeat_ms):
            return None
        return Checkpoint(
            chain=self.chain.genesis.chain_id,
            height=height,
            prev_id=self.chain.prev_id,
            proposer=self.me,
            frontier=tuple(frontier),
            state_root=self.chain.state_root,
            results_root=self.chain.results_root,
            time_ms=max(now, self.chain.last_time_ms + 1),
            keywords=self.chain.keywords_found(tuple(frontier), self.ingest.dag, self._header_of, self.payload_of),
        )

    def check_value(self, value: Checkpoint) -> Verdict:
        chain = self.chain
        if value.height != chain.height + 1 or value.prev_id != chain.prev_id:
            return Invalid("does not extend the last checkpoint")
        if value.state_root != chain.state_root or value.results_root != chain.results_root:
            return Invalid("state or results root differs from this node's")
        if value.proposer not in chain.validators:
            return Invalid("proposer is not a validator")
        if len(value.frontier) > MAX_FRONTIER or list(value.frontier) != sorted(set(value.frontier)):
            return Invalid("frontier must be sorted, distinct and bounded")
        if value.time_ms <= chain.last_time_ms or value.time_ms > self.clock_ms() + MAX_CLOCK_SKEW_MS:
            return Invalid("timestamp out of range")
        missing = chain.missing_entries(value, self.ingest.dag)
        if missing:
            return Missing(missing)
        try:
            keywords = chain.keywords_found(value.frontier, self.ingest.dag, self._header_of, self.payload_of)
        except MissingEntry as absent:
            return Missing((absent.entry_id,))
        if value.keywords != keywords:
            return Invalid("the content keywords it reports differ from the payloads")
        return Valid()

    def has_work(self, height: int) -> bool:
        return bool(self.chain.uncovered_tips(self.ingest.dag))


class Finality:
    def __init__(
        self,
        chain: Chain,
        ingest: Ingest,
        signer: Signer,
        send: Callable[[Proposal | Vote | FinalizedCheckpoint], None],
        request_checkpoints: Callable[[int, int], None],
        timeouts: Timeouts | None = None,
        heartbeat_ms: int = 0,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.chain = chain
        self.ingest = ingest
        self.signer = signer
        self.send = send
        self.request_checkpoints = request_checkpoints
        self.clock_ms = clock_ms
        self.halted: str | None = None
        self.storage_error: str | None = None  # the disk refused the last checkpoint: retried every second
        self.pending: dict[int, FinalizedCheckpoint] = {}
        self.commit_latency_ms: list[float] = []
        self.timeouts = timeouts or Timeouts()
        self.heartbeat_ms = heartbeat_ms
        self.core: TendermintCore | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._entries_event_scheduled = False
        self._last_sync_request = 0.0
        self._dropped_ahead = False
        if signer.public_key in chain.validators:
            self.core = self._new_core()

    def _new_core(self) -> TendermintCore:
        app = ChainApp(self.chain, self.ingest, self.signer.public_key, self.clock_ms, self.heartbeat_ms,
                       self.ingest.header_of, self.ingest.payload_of)
        return TendermintCore(self.chain.genesis.chain_id, self.signer, self.chain.validators, app,
                              self._load_signer_state(), self.timeouts)

    @property
    def is_validator(self) -> bool:
        return self.core is not None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._feed(Start())

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _follow_validator_set(self, height: int, checkpoint: Checkpoint) -> None:
        """After applying `height`: join consensus if this node's key votes at `height + 1`, leave
        it if it no longer does, else tell the core the next height's set when a decision changed it."""
        chain = self.chain
        following = chain.validators_at(height + 1)
        member = self.signer.public_key in following
        if self.core is None:
            if member:
                log.warning("this node joins the validator set at height %d", height + 1)
                self.core = self._new_core()
                self._feed(Start())
            return
        if not member:
            log.warning("this node leaves the validator set at height %d; it follows as a ledger node", height + 1)
            self.stop()
            self.core = None
            return
        changed = following is not chain.validators_at(height)
        self._feed(HeightApplied(height, checkpoint, following if changed else None))

    def _load_signer_state(self) -> SignerState | None:
        raw = self.chain.storage.get_meta(SIGNER_STATE_KEY)
        if raw is None:
            return SignerState(height=self.chain.height + 1, round=0, phase=0, prev=self.chain.last)
        state = codec.decode(raw, SignerState)
        if state.height <= self.chain.height:
            # the decision was applied before the crash: resume at the next height
            return SignerState(height=self.chain.height + 1, round=0, phase=0, prev=self.chain.last)
        return state

    # --- core driving ---------------------------------------------------------------------

    def _feed(self, event: Event) -> None:
        if self.core is None or self.halted:
            return
        for action in self.core.step(event):
            self._do(action)

    def _do(self, action: Action) -> None:
        if isinstance(action, Persist):
            self.chain.storage.set_meta(SIGNER_STATE_KEY, codec.encode(action.state))
        elif isinstance(action, Broadcast):
            self.send(action.message)
        elif isinstance(action, ScheduleTimeout):
            loop = asyncio.get_running_loop()
            event = TimeoutFired(action.kind, action.height, action.round)
            handle = loop.call_later(action.delay_ms / 1000, self._on_timer, event)
            self._timers.add(handle)
        elif isinstance(action, Commit):
            self._apply(action.finalized, own=True)
        elif isinstance(action, FetchEntries):
            # gossip usually delivers them within milliseconds: ask peers only for what is still missing
            asyncio.get_running_loop().call_later(FETCH_DELAY_S, self._fetch_if_missing, action.entry_ids)
        elif isinstance(action, Behind):
            self._ask_for_checkpoints()
        elif isinstance(action, Equivocation):
            self._record_equivocation(action)

    def _fetch_if_missing(self, entry_ids: tuple[bytes, ...]) -> None:
        missing = [i for i in entry_ids if not self.ingest.dag.holds(i)]
        if missing:
            self.ingest.fetch_missing(missing)

    def _on_timer(self, event: TimeoutFired) -> None:
        self._timers = {t for t in self._timers if not t.cancelled() and t.when() > asyncio.get_running_loop().time()}
        self._feed(event)

    def on_consensus_message(self, message: Proposal | Vote) -> None:
        from ..consensus.core import MessageReceived

        if message.height > self.chain.height + 2:
            self._ask_for_checkpoints()
        self._feed(MessageReceived(message))

    def on_entries_stored(self) -> None:
        """New entries: re-check waiting proposals, let an idle proposer propose, retry checkpoints."""
        if self._entries_event_scheduled:
            return
        self._entries_event_scheduled = True
        asyncio.get_running_loop().call_soon(self._entries_stored_now)

    def _entries_stored_now(self) -> None:
        self._entries_event_scheduled = False
        self._drain_pending()
        self._feed(EntriesAvailable())

    # --- applying decisions -----------------------------------------------------------------

    def on_finalized(self, finalized: FinalizedCheckpoint) -> None:
        """A finalized checkpoint from a peer (followers and lagging validators)."""
        height = finalized.checkpoint.height
        if height <= self.chain.height or height in self.pending:
            return
        try:  # only certified checkpoints may take a pending slot
            verify_certificate(self.chain.genesis.chain_id, finalized.checkpoint, finalized.certificate,
                               self.chain.validators_at(height))
        except CertificateInvalid as exc:
            if self.chain.knows_validators_of(height):
                log.warning("ignoring checkpoint %d from a peer: %s", height, exc)
            else:  # signed by a set this node cannot know yet: ask again once it does
                log.debug("checkpoint %d is beyond the validator sets known here: %s", height, exc)
                self._dropped_ahead = True
            return
        if len(self.pending) < 10_000:
            self.pending[height] = finalized
        if height > self.chain.height + 1:
            self._ask_for_checkpoints()
        self._drain_pending()

    def _drain_pending(self) -> None:
        while self.chain.height + 1 in self.pending and not self.halted:
            finalized = self.pending[self.chain.height + 1]
            if not self._apply(finalized, own=False):
                return
            self.pending.pop(finalized.checkpoint.height, None)
        for height in [h for h in self.pending if h <= self.chain.height]:
            del self.pending[height]
        if self._dropped_ahead and self.chain.height + 1 not in self.pending and self._ask_for_checkpoints():
            self._dropped_ahead = False

    def _apply(self, finalized: FinalizedCheckpoint, own: bool) -> bool:
        if self.halted:
            return False
        height = finalized.checkpoint.height
        if height <= self.chain.height:
            return True
        try:
            applied = self.chain.apply(finalized, self.ingest.dag, self._header_of)
        except MissingEntry as missing:
            self.pending[height] = finalized
            still_missing = self.chain.missing_entries(finalized.checkpoint, self.ingest.dag)
            self.ingest.fetch_missing([missing.entry_id, *still_missing])
            return False
        except NotNext as exc:
            log.debug("checkpoint %d not applicable yet: %s", height, exc)
            self.pending.setdefault(height, finalized)
            return False
        except CertificateInvalid as exc:
            log.warning("refusing checkpoint %d: %s", height, exc)
            self.pending.pop(height, None)
            return False
        except RootMismatch as exc:
            self._halt(str(exc))
            return False
        except (sqlite3.Error, OSError) as exc:  # the disk, never the checkpoint: keep it and try again
            self.pending[height] = finalized
            diagnostic = f"storage_failed: cannot record checkpoint {height}: {exc}"
            if diagnostic != self.storage_error:
                log.critical("%s; retrying every second (a restart on a working disk also recovers)", diagnostic)
            self.storage_error = diagnostic
            asyncio.get_running_loop().call_later(1.0, self._drain_pending)
            return False
        if self.storage_error is not None:
            log.warning("checkpoint %d recorded: storage works again", height)
            self.storage_error = None
        self.ingest.forget_headers([result.entry_id for result in applied.results])
        self.send(finalized)
        self._follow_validator_set(height, finalized.checkpoint)
        return True

    def _header_of(self, entry_id: bytes) -> EntryHeader:
        header = self.ingest.header_of(entry_id)
        if header is None:
            raise MissingEntry(entry_id)
        return header

    def _ask_for_checkpoints(self) -> bool:
        now = time.monotonic()
        if now - self._last_sync_request < 0.5:
            return False
        self._last_sync_request = now
        self.request_checkpoints(self.chain.height + 1, SYNC_BATCH)
        return True

    def _halt(self, diagnostic: str) -> None:
        """Stop finalizing, say why in the log, the status and a HALTED file beside the data."""
        self.halted = diagnostic
        log.critical("HALTED: this node's state diverged from the quorum's. %s", diagnostic)
        marker = self.chain.storage.path.parent / "HALTED"
        try:
            marker.write_text(f"{diagnostic}\nThis node stopped finalizing rather than diverge. Its data is kept"
                              " for inspection; resync it from a trusted node.\n")
        except OSError as exc:
            log.critical("cannot write %s: %s", marker, exc)
        self.stop()

    def _record_equivocation(self, action: Equivocation) -> None:
        first, second = action.first, action.second
        if isinstance(first, Vote) and isinstance(second, Vote):
            validator, kind = first.validator, "duplicate_vote"
        elif isinstance(first, Proposal) and isinstance(second, Proposal):
            validator, kind = first.proposer, "duplicate_proposal"
        else:
            return
        stored = self.chain.storage.store_equivocation(
            validator, first.height, first.round, kind, codec.encode(first), codec.encode(second), self.clock_ms()
        )
        if stored:
            log.warning("equivocation by validator %s at height %d round %d (%s)", validator.hex()[:12],
                        first.height, first.round, kind)

    def status(self) -> dict[str, Any]:
        view: dict[str, Any] = {"height": self.chain.height, "halted": self.halted}
        if self.storage_error is not None:
            view["storage_error"] = self.storage_error
        if self.core is not None:
            view.update(round=self.core.round, phase=int(self.core.phase))
        return view

"""The finality service of a node: the asyncio pump around the replica's `FinalityDriver`.

The driver decides; this module does what each `Ready` says, in its order: persist the signer
state (before anything it signed leaves the process), send to peers, commit the checkpoint
through `Chain` and acknowledge it with `advance`, schedule timers on the loop, fetch missing
entries, record equivocation evidence, and write `HALTED` beside the data when the node's state
diverged from the quorum's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable

from .. import codec
from ..consensus.core import Equivocation, SignerState, Start, TimeoutFired, Timeouts
from ..consensus.messages import FinalizedCheckpoint, Proposal, Vote
from ..keys.signing import Signer
from ..replica.chain import Applied
from ..replica.finality import (
    SYNC_BATCH,
    CheckpointReceived,
    CommitFailed,
    Committed,
    ConsensusReceived,
    EntriesStored,
    FinalityDriver,
    FinalityStatus,
    Input,
    Ready,
    RetryCommit,
)
from .chain import Chain
from .ingest import Ingest

log = logging.getLogger("bilayer.finality")

SIGNER_STATE_KEY = "signer_state"


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
        after_commit: Callable[[Applied], None] = lambda applied: None,
    ) -> None:
        """`after_commit` runs once per checkpoint made durable, in height order (the node's
        post-commit effects). The signer state and checkpoint writes run on a worker thread, the
        loop serving clients and peers meanwhile; the inputs that arrive during a write wait in
        order for it, so nothing signed is sent before its state is durable and no commit is
        acknowledged before it is written."""
        self.chain = chain
        self.after_commit = after_commit
        self.ingest = ingest
        self.send = send
        self.request_checkpoints = request_checkpoints
        self.clock_ms = clock_ms
        self._timers: set[asyncio.TimerHandle] = set()
        self._entries_event_scheduled = False
        self._stopped = False
        self._inputs: deque[Input] = deque()
        self._pump_task: asyncio.Task[None] | None = None
        self.driver = FinalityDriver(chain, ingest, signer, self._load_signer_state(), clock_ms, timeouts,
                                     heartbeat_ms)

    @property
    def halted(self) -> str | None:
        return self.driver.halted

    @property
    def storage_error(self) -> str | None:
        return self.driver.storage_error

    @property
    def is_validator(self) -> bool:
        return self.driver.is_validator

    def _load_signer_state(self) -> SignerState | None:
        raw = self.chain.storage.get_meta(SIGNER_STATE_KEY)
        return None if raw is None else codec.decode(raw, SignerState)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._step(Start())

    def stop(self) -> None:
        """No more inputs are taken; what is being written finishes (see `idle`)."""
        self._stopped = True
        self._inputs.clear()
        self._cancel_timers()

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # --- inputs -------------------------------------------------------------------------

    def on_consensus_message(self, message: Proposal | Vote) -> None:
        self._step(ConsensusReceived(message))

    def on_finalized(self, finalized: FinalizedCheckpoint) -> None:
        """A finalized checkpoint from a peer (followers and lagging validators)."""
        self._step(CheckpointReceived(finalized))

    def on_entries_stored(self) -> None:
        """New entries: re-check waiting proposals, let an idle proposer propose, retry checkpoints."""
        if self._entries_event_scheduled:
            return
        self._entries_event_scheduled = True
        asyncio.get_running_loop().call_soon(self._entries_stored_now)

    def _entries_stored_now(self) -> None:
        self._entries_event_scheduled = False
        self._step(EntriesStored())

    def _on_timer(self, event: TimeoutFired | RetryCommit) -> None:
        now = asyncio.get_running_loop().time()
        self._timers = {t for t in self._timers if not t.cancelled() and t.when() > now}
        self._step(event)

    # --- the pump -------------------------------------------------------------------------

    def _step(self, event: Input) -> None:
        if self._stopped:
            return
        self._inputs.append(event)
        if self._pump_task is None:
            self._pump_task = asyncio.get_running_loop().create_task(self._pump(), name="finality")

    def _log_role_change(self, voting: bool) -> None:
        if voting != self.driver.is_validator and not self.driver.halted:
            height = self.chain.height + 1
            if voting:
                log.warning("this node leaves the validator set at height %d; it follows as a ledger node", height)
            else:
                log.warning("this node joins the validator set at height %d", height)

    async def _pump(self) -> None:
        """One input at a time: the driver's `Ready`, then what it says, with the writes on a worker
        thread; a commit's acknowledgement yields the next `Ready`."""
        try:
            while self._inputs:
                event = self._inputs.popleft()
                voting = self.driver.is_validator
                try:
                    await self._handle(self.driver.step(event))
                except Exception:
                    log.exception("finality: handling %s failed", type(event).__name__)
                self._log_role_change(voting)
        finally:
            self._pump_task = None

    async def _handle(self, ready: Ready | None) -> None:
        storage = self.chain.storage
        while ready is not None:
            if ready.persist is not None:
                await asyncio.to_thread(storage.set_meta, SIGNER_STATE_KEY, codec.encode(ready.persist))
            for message in ready.send:
                self.send(message)
            for applied in ready.applied:
                self.after_commit(applied)
            next_ready = None
            if ready.commit is not None:
                next_ready = await self._commit(ready.commit.finalized, ready.commit.applied)
            self._effects(ready)
            ready = next_ready

    async def _commit(self, finalized: FinalizedCheckpoint, applied: Applied) -> Ready:
        chain, height = self.chain, applied.height
        prepared = chain.prepare(finalized, applied)
        try:
            await asyncio.to_thread(chain.write, prepared)
        except (sqlite3.Error, OSError) as exc:  # the disk, never the checkpoint: keep it and try again
            chain.reload()
            diagnostic = f"storage_failed: cannot record checkpoint {height}: {exc}"
            return self.driver.advance(CommitFailed(height, diagnostic))
        chain.written(prepared)
        return self.driver.advance(Committed(height))

    async def idle(self, timeout_s: float) -> None:
        """Wait (bounded) until the inputs received so far are handled and their writes done."""
        task = self._pump_task
        if task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout_s)

    def _effects(self, ready: Ready) -> None:
        if ready.cancel_timers:
            self._cancel_timers()
        if ready.timers or ready.fetch or ready.retry_ms is not None:
            loop = asyncio.get_running_loop()
            for timer in ready.timers:
                self._timers.add(loop.call_later(timer.delay_ms / 1000, self._on_timer, timer.event))
            for fetch in ready.fetch:
                if fetch.delay_ms <= 0:
                    self.ingest.fetch_missing(fetch.entry_ids)
                else:
                    loop.call_later(fetch.delay_ms / 1000, self._fetch_if_missing, fetch.entry_ids)
            if ready.retry_ms is not None:
                loop.call_later(ready.retry_ms / 1000, self._on_timer, RetryCommit())
        if ready.request_checkpoints is not None:
            self.request_checkpoints(ready.request_checkpoints, SYNC_BATCH)
        for evidence in ready.evidence:
            self._record_equivocation(evidence)
        if ready.forget:
            self.ingest.forget_headers(ready.forget)
        for refused in ready.refused:
            log.critical("refusing this node's own decision: %s", refused)
        if ready.storage_error:
            log.critical("%s; retrying every second (a restart on a working disk also recovers)", ready.storage_error)
        elif ready.storage_error == "":
            log.warning("checkpoint recorded: storage works again")
        if ready.halted is not None:
            self._halt(ready.halted)

    def _fetch_if_missing(self, entry_ids: tuple[bytes, ...]) -> None:
        missing = [i for i in entry_ids if not self.ingest.dag.holds(i)]
        if missing:
            self.ingest.fetch_missing(missing)

    def _halt(self, diagnostic: str) -> None:
        """Stop finalizing, say why in the log, the status and a HALTED file beside the data."""
        log.critical("HALTED: this node's state diverged from the quorum's. %s", diagnostic)
        marker = self.chain.storage.path.parent / "HALTED"
        try:
            marker.write_text(f"{diagnostic}\nThis node stopped finalizing rather than diverge. Its data is kept"
                              " for inspection; resync it from a trusted node.\n")
        except OSError as exc:
            log.critical("cannot write %s: %s", marker, exc)
        self._cancel_timers()

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

    def status(self) -> FinalityStatus:
        return self.driver.status()

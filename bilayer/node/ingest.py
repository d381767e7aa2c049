"""Ingestion: the path every entry takes into a node, from a client or from a peer.

check (stateless, signature last) -> rate limit by author -> place in the DAG
  -> placed: queued for the next durable batch, then announced to peers
  -> orphan: held (bounded count and time) while its parents are fetched
  -> fork: evidence, kept and passed on to every peer; then the half that came second is
     refused when a client sends it (409), and admitted when a peer sends it or this node
     asked for it: another node took it, so the chain must order it, and execution rejects
     whichever half is ordered second

A batch (a client's, or a peer's gossip) takes the same path with its signatures checked
together on worker threads (`verify_pool.py`) while the loop decodes the rest of the batch;
entries are then placed in the batch's order, each exactly as `ingest` would place it alone,
so every entry gets the answer and the error code it would get on its own.

The placement rules (orphans, forks) are the replica's (`replica/placing.py`), shared with the
simulator. This object owns the in-memory DAG and the orphan pool. It does no network I/O
itself: `announce` and `request` are callbacks the runtime wires to the peer links.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .. import codec
from ..errors import BadSignature, BilayerError, Overloaded, RateLimited
from ..genesis import Genesis
from ..ledger.dag import NO_FORKS, Dag, Known, Orphan, Placed, Placement, fork_digest_with
from ..ledger.entry import Entry, EntryHeader, SignedEntry, WithheldEntry, entry_id
from ..ledger.validation import check_entry, check_entry_unsigned, check_fork, signature_holds
from ..ratelimit import RateLimiter
from ..replica.placing import OrphanPool, Placer, Source
from .metrics import NodeMetrics
from .storage import ForkEvidence, Storage
from .verify_pool import CHUNK, VerifyPool

log = logging.getLogger("bilayer.ingest")

Announce = Callable[[Sequence[Entry], Sequence[Source]], None]
Request = Callable[[Sequence[bytes]], None]
AnnounceEvidence = Callable[[Sequence[ForkEvidence], Source], None]

MAX_BATCH = 2000
# Peers' entries waiting to be checked: past this many a peer link stops reading until there is
# room, so a node that falls behind slows its peers' sends instead of queueing without bound.
MAX_INBOX = 4000
FORK_LOG_INTERVAL_S = 10.0  # a flood of forks is one log line per interval, with a count
WANT_RETRY_MS = 2000
# Gossip usually brings an orphan's parents within milliseconds (another node took them from a
# client a moment earlier): ask peers only for the parents still missing after this delay, so a
# busy network does not answer a want for every entry it is about to send anyway. An orphan this
# node asked for itself (it is walking back a history it lacks) has its parents asked for at once.
ORPHAN_FETCH_DELAY_S = 0.15
STALL_MS = 5000  # no checkpoint for this long: the chain is stalled, not overloaded (see `Ingest.admit`)
ORDER_WINDOW_MS = 3000  # the recent ordering rate, which admission compares the backlog to, is over this window


class Status(StrEnum):
    STORED = "stored"
    KNOWN = "known"
    ORPHAN = "orphan"


@dataclass(frozen=True, slots=True)
class SubmitResult:
    id: bytes
    status: Status
    missing: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class IngestLimits:
    author_rate: float = 200.0
    author_burst: float = 2000.0
    max_orphans: int = 50_000
    orphan_ttl_ms: int = 60_000
    max_unordered: int = 0  # admission bounds (see `Ingest.admit`); 0: off
    max_unordered_age_ms: int = 0


class StorageFailed(BilayerError):
    """The node could not write to its disk (full, I/O error): it accepts nothing until it is
    restarted on a working disk. Never caused by what a client or a peer sends."""

    code = "storage_failed"


class NotRequested(BilayerError):
    """A peer passed on an entry without its payload that this node did not ask for."""

    code = "not_requested"


class Ingest:
    def __init__(
        self,
        storage: Storage,
        genesis: Genesis,
        metrics: NodeMetrics,
        limits: IngestLimits = IngestLimits(),
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.storage = storage
        self.genesis = genesis
        self.params = genesis.params  # what clients' new entries must meet: the parameters in force
        self.peer_params = genesis.params  # the loosest the chain ever had: older entries still pass
        self.metrics = metrics
        self.clock_ms = clock_ms
        self.dag = Dag(genesis.root)
        self.limits = limits
        self.orphans: OrphanPool[Entry] = OrphanPool(limits.max_orphans, limits.orphan_ttl_ms)
        self.placer = Placer(self.dag, self.orphans,
                             lambda existing, second, source: self._keep_fork_evidence(existing, second.signed, source))
        self.author_limiter = RateLimiter(limits.author_rate, limits.author_burst)
        self.announce: Announce = lambda entries, sources: None
        self.request: Request = lambda ids: None
        self.announce_evidence: AnnounceEvidence = lambda evidence, source: None
        self.fetch_later: Request = self._fetch_soon  # orphans' parents; the peer links take this over
        self._evidence: list[ForkEvidence] = []  # found since the last durable batch
        self._evidence_unwritten: set[tuple[bytes, int]] = set()
        self._evidence_written: asyncio.Future[None] | None = None
        self.fork_digest = NO_FORKS  # of every fork kept here: peers compare it to learn what they miss
        self._fork_logged_at: float | None = None
        self._forks_unlogged = 0
        self._queue: list[tuple[Entry, Source]] = []
        self._uncommitted: dict[bytes, Entry] = {}
        self._headers: dict[bytes, EntryHeader] = {}  # entries not yet ordered by a checkpoint
        self._unordered: OrderedDict[bytes, int] = OrderedDict()  # the same entries, oldest first: when placed
        self._ordered_ms: int | None = None  # when a checkpoint last ordered entries here
        self._orderings: deque[tuple[int, int]] = deque()  # (when, how many) checkpoints ordered, recent ones
        self._committed: dict[bytes, asyncio.Future[None]] = {}  # entry -> the write that makes it durable
        self._next_write: asyncio.Future[None] | None = None  # the write that takes what is queued now
        self._writing: asyncio.Future[None] | None = None
        self.verifier = VerifyPool()
        self._inbox: deque[tuple[Sequence[SignedEntry], Source, Callable[[], None]]] = deque()
        self._inbox_size = 0
        self._inbox_wake = asyncio.Event()
        self._inbox_room = asyncio.Event()
        self._inbox_room.set()
        self._receiver_task: asyncio.Task[None] | None = None
        self._requested: dict[bytes, int] = {}
        self._to_fetch: set[bytes] = set()  # orphans' missing parents, asked for after ORPHAN_FETCH_DELAY_S
        self._wake = asyncio.Event()
        self._failed: BaseException | None = None
        self._writer_task: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def load(self, ordered: Container[bytes] = frozenset()) -> int:
        """Rebuild the DAG index from storage (arrival order puts parents first)."""
        for author, seq in self.storage.fork_keys():
            self.fork_digest = fork_digest_with(self.fork_digest, author, seq)
        for raw_id, header_bytes in self.storage.headers_in_order():
            id_ = bytes(raw_id)
            header = codec.decode(bytes(header_bytes), EntryHeader)
            self.dag.add(id_, header)
            if id_ not in ordered:
                self._headers[id_] = header
                self._unordered[id_] = self.clock_ms()
        self._refresh_gauges()
        return len(self.dag)

    def start(self) -> None:
        self._ordered_ms = self.clock_ms()  # a node just started counts as live until STALL_MS shows otherwise
        loop = asyncio.get_running_loop()
        self._writer_task = loop.create_task(self._write_loop(), name="ingest-writer")
        self._receiver_task = loop.create_task(self._receive_loop(), name="ingest-receiver")

    async def stop(self) -> None:
        if self._receiver_task is not None:
            self._receiver_task.cancel()
            await asyncio.gather(self._receiver_task, return_exceptions=True)
        if self._writer_task is not None:
            await self.flush()
            self._writer_task.cancel()
            await asyncio.gather(self._writer_task, return_exceptions=True)
        self.verifier.close()

    async def flush(self) -> None:
        """Wait until everything placed (and every fork found) so far is on disk."""
        writes = (self._next_write, self._writing, self._evidence_written)
        pending = [f for f in writes if f is not None and not f.done()]
        if self._queue or self._evidence:
            self._wake.set()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    @property
    def healthy(self) -> bool:
        return self._failed is None

    # --- admission ------------------------------------------------------------------------

    def admit(self, count: int) -> None:
        """Refuse a client's request before any work on it while this node is behind: while too
        many entries wait for a checkpoint to order them; while checkpoints come but the oldest
        of those entries has waited `max_unordered_age_ms`; or, earlier, while the entries waiting
        (with these) would take longer than that to order at the rate checkpoints ordered entries
        over the last ORDER_WINDOW_MS, once the oldest has waited half the bound, so that what
        is taken is final within about that bound instead of joining a queue. A stalled chain
        (no checkpoint for `STALL_MS`, counted from the start) is not overload: then only the
        count bounds what is taken. Entries from peers are never refused here: the chain may
        need them."""
        limits, backlog = self.limits, len(self._unordered)
        if limits.max_unordered and backlog and backlog + count > limits.max_unordered:
            self.metrics.entries_refused.labels("backlog").inc(count)
            raise Overloaded(f"{backlog} entries are waiting for a checkpoint on this node; retry shortly")
        if limits.max_unordered_age_ms and backlog and self._ordered_ms is not None:
            now = self.clock_ms()
            if now - self._ordered_ms > STALL_MS:
                return
            waited = now - next(iter(self._unordered.values()))
            if waited > limits.max_unordered_age_ms:
                self.metrics.entries_refused.labels("behind").inc(count)
                raise Overloaded(f"checkpoints are not keeping up: an entry here has waited {waited} ms to be"
                                 " ordered; retry shortly")
            # Only once an entry has waited half the bound: a chain that keeps up orders what a
            # quiet node holds sooner, and the rate then measures the demand, not what checkpoints can order.
            per_ms = self._order_rate(now) if waited > limits.max_unordered_age_ms // 2 else 0.0
            if per_ms and backlog + count > per_ms * limits.max_unordered_age_ms:
                self.metrics.entries_refused.labels("drain").inc(count)
                raise Overloaded(f"{backlog} entries wait for a checkpoint here, more than checkpoints order in"
                                 f" {limits.max_unordered_age_ms} ms; retry shortly")

    def _order_rate(self, now: int) -> float:
        """Entries ordered per millisecond over the recent window; 0 before any were."""
        orderings = self._orderings
        while orderings and now - orderings[0][0] > ORDER_WINDOW_MS:
            orderings.popleft()
        if not orderings:
            return 0.0
        return sum(n for _, n in orderings) / max(now - orderings[0][0], ORDER_WINDOW_MS // 3)

    # --- submission -----------------------------------------------------------------------

    async def submit(self, signed: SignedEntry, source: Source) -> SubmitResult:
        """Ingest one entry for a client; returns once it is durable (or held / known)."""
        result = self.ingest(signed, source)
        future = self._committed.get(result.id)
        if future is not None:
            await asyncio.shield(future)
        return result

    async def submit_many(self, items: Sequence[SignedEntry], source: Source) -> list[SubmitResult | BilayerError]:
        """A client's batch: one result or error per entry, in order, once the stored ones are durable."""
        results = await self.ingest_many(items, source)
        writes = {id(f): f for r in results if isinstance(r, SubmitResult) and (f := self._committed.get(r.id))}
        if writes:
            await asyncio.gather(*(asyncio.shield(f) for f in writes.values()))
        return results

    def ingest(self, signed: SignedEntry, source: Source) -> SubmitResult:
        """Check and place one entry; raise its typed error when it is refused."""
        screened = self._screen(signed, source)
        if isinstance(screened, SubmitResult):
            return screened
        return self._admit(screened, signature_holds(screened), source)

    async def ingest_many(self, items: Sequence[SignedEntry], source: Source) -> list[SubmitResult | BilayerError]:
        """Check and place a batch: each entry answered as `ingest` answers it, in order, with
        the signatures checked on the pool's threads while the loop screens the rest."""
        results: list[SubmitResult | BilayerError | None] = [None] * len(items)
        chunks: list[tuple[list[tuple[int, Entry]], asyncio.Future[list[bool]]]] = []
        chunk: list[tuple[int, Entry]] = []
        for index, signed in enumerate(items):
            try:
                screened = self._screen(signed, source)
            except BilayerError as exc:
                results[index] = exc
                continue
            if isinstance(screened, SubmitResult):
                results[index] = screened
                continue
            chunk.append((index, screened))
            if len(chunk) == CHUNK:
                chunks.append((chunk, self.verifier.check([entry for _, entry in chunk])))
                chunk = []
        if chunk:
            chunks.append((chunk, self.verifier.check([entry for _, entry in chunk])))
        for screened_chunk, verdicts in chunks:
            for (index, entry), holds in zip(screened_chunk, await verdicts, strict=True):
                try:
                    results[index] = self._admit(entry, holds, source)
                except BilayerError as exc:
                    results[index] = exc
        return [r for r in results if r is not None]

    def _held(self, id_: bytes) -> SubmitResult | None:
        if id_ in self.dag:
            return SubmitResult(id_, Status.KNOWN)
        if id_ in self.orphans:
            return SubmitResult(id_, Status.ORPHAN, tuple(self.orphans.held[id_].missing))
        return None

    def _screen(self, signed: SignedEntry, source: Source) -> SubmitResult | Entry:
        """Everything before the signature: an entry already held is answered here, one that
        fails a check raises its error, and the rest come back typed, for the signature."""
        if self._failed is not None:
            raise StorageFailed(f"this node cannot write to its disk ({self._failed}); restart it on a working disk")
        id_ = entry_id(signed.header)
        held = self._held(id_)
        if held is not None:
            return held
        try:
            params = self.params if source.startswith("api") else self.peer_params
            return check_entry_unsigned(signed, id_, chain_id=self.genesis.chain_id, params=params,
                                        now_ms=self.clock_ms())
        except BilayerError as exc:
            self.metrics.entries_rejected.labels(exc.code).inc()
            raise

    def _admit(self, entry: Entry, signature_holds: bool, source: Source) -> SubmitResult:
        """After the signature: the author's rate, then the DAG. Held is looked at again first,
        as the same entry may have come in (from another batch, or twice in one) meanwhile."""
        if self._failed is not None:
            raise StorageFailed(f"this node cannot write to its disk ({self._failed}); restart it on a working disk")
        held = self._held(entry.id)
        if held is not None:
            return held
        try:
            if not signature_holds:
                raise BadSignature()
            if not self.author_limiter.allow(entry.author, self.clock_ms() / 1000):
                raise RateLimited("this author is writing faster than the node's per-author limit")
            return self._place(entry, source)
        except BilayerError as exc:
            self.metrics.entries_rejected.labels(exc.code).inc()
            raise

    # --- peers' batches -------------------------------------------------------------------

    def receive(self, items: Sequence[SignedEntry], source: Source, on_new: Callable[[], None]) -> None:
        """A peer's gossip batch, checked and placed in arrival order behind the batches before
        it; `on_new` is called when it brought something this node did not hold. Errors are
        counted, never raised: one bad entry spoils nothing else."""
        self._inbox.append((items, source, on_new))
        self._inbox_size += len(items)
        if self._inbox_size >= MAX_INBOX:
            self._inbox_room.clear()
        self._inbox_wake.set()

    async def room(self) -> None:
        """Return once the peers' batches waiting here are few enough to take another."""
        await self._inbox_room.wait()

    async def _receive_loop(self) -> None:
        while True:
            await self._inbox_wake.wait()
            self._inbox_wake.clear()
            while self._inbox:
                items, source, on_new = self._inbox[0]
                results: list[SubmitResult | BilayerError] = []
                try:
                    results = await self.ingest_many(items, source)
                except Exception:  # a fault here must not stop every later batch
                    log.exception("checking a batch from %s failed", source)
                finally:
                    self._inbox.popleft()
                    self._inbox_size -= len(items)
                    if self._inbox_size < MAX_INBOX:
                        self._inbox_room.set()
                if any(isinstance(r, SubmitResult) and r.status is not Status.KNOWN for r in results):
                    on_new()

    def ingest_withheld(self, withheld: WithheldEntry, source: Source) -> SubmitResult:
        """An entry a peer passes on without its payload, deleted there by a decision. Taken
        only when this node asked for it (it needs the entry to complete the DAG or apply a
        checkpoint); execution never reads payloads, so the node still verifies every root."""
        if self._failed is not None:
            raise StorageFailed(f"this node cannot write to its disk ({self._failed}); restart it on a working disk")
        id_ = entry_id(withheld.header)
        if id_ in self.dag or id_ in self.orphans:
            return SubmitResult(id_, Status.KNOWN)
        if id_ not in self._requested:
            raise NotRequested("an entry without its payload is taken only in answer to a request")
        try:
            signed = SignedEntry(withheld.header, withheld.signature, b"")
            entry = check_entry(signed, chain_id=self.genesis.chain_id, params=self.peer_params,
                                now_ms=self.clock_ms(), tombstone=withheld.tombstone)
            return self._place(entry, source)
        except BilayerError as exc:
            self.metrics.entries_rejected.labels(exc.code).inc()
            raise

    def _placement(self, entry: Entry, source: Source) -> Placement:
        """Where the entry stands in the DAG (see `replica/placing.py` for forks)."""
        return self.placer.placement(entry, source, entry.id in self._requested)

    def _place(self, entry: Entry, source: Source) -> SubmitResult:
        placement = self._placement(entry, source)
        if isinstance(placement, Known):
            return SubmitResult(entry.id, Status.KNOWN)
        if isinstance(placement, Orphan):
            if len(self.orphans) >= self.orphans.capacity and source.startswith("api"):
                raise Overloaded("too many entries are waiting for their parents; retry later")
            self.orphans.add(entry, placement.missing, self.clock_ms(), source)
            self.metrics.orphans.set(len(self.orphans))
            if entry.id in self._requested:  # walking back a history this node lacks: no gossip is coming
                self.fetch_missing(placement.missing)
            else:
                self.fetch_later(placement.missing)
            return SubmitResult(entry.id, Status.ORPHAN, placement.missing)
        assert isinstance(placement, Placed)
        self._accept(entry, source)
        return SubmitResult(entry.id, Status.STORED)

    def _accept(self, entry: Entry, source: Source) -> None:
        """Place an entry, then every orphan it (transitively) completes."""
        self._add(entry, source)
        self.placer.complete(entry, self.clock_ms(), self._requested.__contains__, self._add,
                             lambda exc: self.metrics.entries_rejected.labels(exc.code).inc())
        self.metrics.orphans.set(len(self.orphans))
        self._wake.set()

    def _add(self, entry: Entry, source: Source) -> None:
        self.dag.add(entry.id, entry.header)
        self._headers[entry.id] = entry.header
        self._unordered[entry.id] = self.clock_ms()
        self._uncommitted[entry.id] = entry
        if self._next_write is None:
            self._next_write = asyncio.get_running_loop().create_future()
        self._committed[entry.id] = self._next_write
        self._queue.append((entry, source))
        self._requested.pop(entry.id, None)

    def header_of(self, entry_id: bytes) -> EntryHeader | None:
        """The header of a held entry (memory for entries not yet ordered, else storage)."""
        header = self._headers.get(entry_id)
        if header is None:
            stored = self.storage.get(entry_id)
            if stored is None:
                return None
            header = codec.decode(stored.signed.header, EntryHeader)
        return header

    def payload_of(self, entry_id: bytes) -> bytes | None:
        """The payload of a held entry, or None when it is unknown or withheld (a tombstone)."""
        pending = self._uncommitted.get(entry_id)
        if pending is not None:
            return pending.signed.payload
        stored = self.storage.get(entry_id)
        return None if stored is None or stored.tombstone is not None else stored.signed.payload

    def forget_headers(self, entry_ids: Sequence[bytes]) -> None:
        """A checkpoint ordered these entries."""
        for forgotten in entry_ids:
            self._headers.pop(forgotten, None)
            self._unordered.pop(forgotten, None)
        self._ordered_ms = self.clock_ms()
        if entry_ids:
            self._orderings.append((self._ordered_ms, len(entry_ids)))
        self.metrics.entries_unordered.set(len(self._unordered))

    def fetch_missing(self, ids: Sequence[bytes]) -> None:
        now = self.clock_ms()
        due = [i for i in ids if now - self._requested.get(i, -WANT_RETRY_MS) >= WANT_RETRY_MS]
        for i in due:
            self._requested[i] = now
        if due:
            self.request(due)

    def _fetch_soon(self, ids: Sequence[bytes]) -> None:
        if not self._to_fetch:
            asyncio.get_running_loop().call_later(ORPHAN_FETCH_DELAY_S, self._fetch_still_missing)
        self._to_fetch.update(ids)

    def _fetch_still_missing(self) -> None:
        due, self._to_fetch = self._to_fetch, set()
        self.fetch_missing(sorted(i for i in due if i not in self.dag and i not in self.orphans))

    def maintain(self) -> None:
        """Periodic upkeep: expire old orphans, ask again for parents still missing."""
        now = self.clock_ms()
        self.orphans.expire(now)
        self._requested = {i: t for i, t in self._requested.items() if now - t < self.orphans.ttl_ms}
        self.fetch_missing(self.orphans.missing_parents()[:1024])
        self.metrics.orphans.set(len(self.orphans))

    # --- fork evidence ------------------------------------------------------------------

    def _keep_fork_evidence(self, existing_id: bytes, second: SignedEntry, source: Source) -> None:
        first = self._uncommitted.get(existing_id)
        first_signed = first.signed if first else None
        if first_signed is None:
            stored = self.storage.get(existing_id)
            first_signed = stored.signed if stored else None
        if first_signed is not None:
            self._record_fork(first_signed, second, source)

    def ingest_evidence(self, first: SignedEntry, second: SignedEntry, source: Source) -> bool:
        """Fork evidence a peer passes on; True when it is new here (then it is kept and passed on).
        Every peer that finds a fork passes it on, so a proof already held is dropped before its
        two signatures are checked."""
        if self._holds_fork(codec.decode_canonical(first.header, EntryHeader)):
            return False
        check_fork((first.header, first.signature), (second.header, second.signature),
                   chain_id=self.genesis.chain_id, params=self.peer_params)
        return self._record_fork(first, second, source)

    def _holds_fork(self, header: EntryHeader) -> bool:
        key = (header.author, header.seq)
        return key in self._evidence_unwritten or self.storage.has_fork_evidence(*key)

    def _record_fork(self, first: SignedEntry, second: SignedEntry, source: Source) -> bool:
        """Keep one proof per (author, seq), written with the next durable batch, and pass it on."""
        header = codec.decode(first.header, EntryHeader)
        if self._holds_fork(header):
            return False
        key = (header.author, header.seq)
        self.metrics.forks.inc()
        self._log_fork(header)
        evidence = ForkEvidence(0, header.author, header.seq, SignedEntry(first.header, first.signature, b""),
                                SignedEntry(second.header, second.signature, b""), self.clock_ms())
        self._evidence.append(evidence)
        self._evidence_unwritten.add(key)
        self.fork_digest = fork_digest_with(self.fork_digest, header.author, header.seq)
        if self._evidence_written is None:
            self._evidence_written = asyncio.get_running_loop().create_future()
        self._wake.set()
        self.announce_evidence([evidence], source)
        return True

    def _log_fork(self, header: EntryHeader) -> None:
        now = time.monotonic()
        if self._fork_logged_at is not None and now - self._fork_logged_at < FORK_LOG_INTERVAL_S:
            self._forks_unlogged += 1
            return
        more = f" ({self._forks_unlogged} more forks since the last report)" if self._forks_unlogged else ""
        log.warning("fork: author %s signed two entries at sequence %d; evidence kept%s", header.author.hex()[:16],
                    header.seq, more)
        self._fork_logged_at, self._forks_unlogged = now, 0

    # --- durable batches ----------------------------------------------------------------

    async def _write_loop(self) -> None:
        """Everything queued since the last write goes to disk together (in transactions of at
        most MAX_BATCH entries, on a thread); its entries share one future, so the per-entry
        path does no more than append to the queue."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue or self._evidence:
                queued, self._queue = self._queue, []
                self._writing, self._next_write = self._next_write, None
                written = True
                for start in range(0, max(1, len(queued)), MAX_BATCH):
                    written = await self._write(queued[start : start + MAX_BATCH])
                    if not written:
                        break
                writing, self._writing = self._writing, None
                if writing is not None:
                    if written:
                        writing.set_result(None)
                    else:
                        writing.set_exception(StorageFailed(str(self._failed)))
                if not written:
                    return

    async def _write(self, batch: list[tuple[Entry, Source]]) -> bool:
        """One durable transaction: these entries and the fork evidence found so far; False when
        the disk failed (then nothing more is accepted)."""
        evidence, self._evidence = self._evidence, []
        evidence_written, self._evidence_written = self._evidence_written, None
        entries = [entry for entry, _ in batch]
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.storage.store_entries, entries, self.clock_ms(), evidence)
        except Exception as exc:  # the disk (input cannot fail a write): stop accepting
            log.critical("storage_failed: the node cannot write to %s (%s); it refuses new entries until"
                         " it is restarted on a working disk", self.storage.path, exc)
            self._failed = exc
            if evidence_written is not None:
                evidence_written.set_result(None)  # nothing more will be written: stop waiting
            for entry in entries:
                self._committed.pop(entry.id, None)
            if self._next_write is not None:  # placed meanwhile: never to be written
                self._next_write.set_exception(StorageFailed(str(exc)))
            return False
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        self._evidence_unwritten.difference_update((e.author, e.seq) for e in evidence)
        if evidence_written is not None:
            evidence_written.set_result(None)
        for entry in entries:
            self._uncommitted.pop(entry.id, None)
            self._committed.pop(entry.id, None)
        for kind, count in Counter(source.split(":", 1)[0] for _, source in batch).items():
            self.metrics.entries_accepted.labels(kind).inc(count)
        self._refresh_gauges()
        if entries:
            self.announce(entries, [source for _, source in batch])
        return True

    def _refresh_gauges(self) -> None:
        self.metrics.entries_stored.set(len(self.dag))
        self.metrics.entries_unordered.set(len(self._unordered))
        self.metrics.tips.set(len(self.dag.tips))
        self.metrics.orphans.set(len(self.orphans))

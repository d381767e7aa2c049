"""Ingestion: the path every entry takes into a node, from a client or from a peer.

check (stateless, signature last) -> rate limit by author -> place in the DAG
  -> placed: queued for the next durable batch, then announced to peers
  -> orphan: held (bounded count and time) while its parents are fetched
  -> fork: evidence, kept and passed on to every peer; then the half that came second is
     refused when a client sends it (409), and admitted when a peer sends it or this node
     asked for it: another node took it, so the chain must order it, and execution rejects
     whichever half is ordered second

The placement rules (orphans, forks) are the replica's (`replica/placing.py`), shared with the
simulator. This object owns the in-memory DAG and the orphan pool. It does no network I/O
itself: `announce` and `request` are callbacks the runtime wires to the peer links.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .. import codec
from ..errors import BilayerError, Overloaded, RateLimited
from ..genesis import Genesis
from ..ledger.dag import NO_FORKS, Dag, Known, Orphan, Placed, Placement, fork_digest_with
from ..ledger.entry import Entry, EntryHeader, SignedEntry, WithheldEntry, entry_id
from ..ledger.validation import check_entry, check_fork
from ..replica.placing import OrphanPool, Placer, Source
from .metrics import NodeMetrics
from .ratelimit import RateLimiter
from .storage import ForkEvidence, Storage

log = logging.getLogger("bilayer.ingest")

Announce = Callable[[Sequence[Entry], Sequence[Source]], None]
Request = Callable[[Sequence[bytes]], None]
AnnounceEvidence = Callable[[Sequence[ForkEvidence], Source], None]

MAX_BATCH = 2000
FORK_LOG_INTERVAL_S = 10.0  # a flood of forks is one log line per interval, with a count
WANT_RETRY_MS = 2000
# Gossip usually brings an orphan's parents within milliseconds (another node took them from a
# client a moment earlier): ask peers only for the parents still missing after this delay, so a
# busy network does not answer a want for every entry it is about to send anyway. An orphan this
# node asked for itself (it is walking back a history it lacks) has its parents asked for at once.
ORPHAN_FETCH_DELAY_S = 0.15
STALL_MS = 5000  # no checkpoint for this long: the chain is stalled, not overloaded (see `Ingest.admit`)


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
    http_status = 500


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
        self._committed: dict[bytes, asyncio.Future[None]] = {}
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
        self._writer_task = asyncio.get_running_loop().create_task(self._write_loop(), name="ingest-writer")

    async def stop(self) -> None:
        if self._writer_task is not None:
            await self.flush()
            self._writer_task.cancel()
            await asyncio.gather(self._writer_task, return_exceptions=True)

    async def flush(self) -> None:
        """Wait until everything placed (and every fork found) so far is on disk."""
        pending = [f for f in self._committed.values() if not f.done()]
        if self._evidence_written is not None:
            pending.append(self._evidence_written)
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
        many entries wait for a checkpoint to order them, or while checkpoints come but the
        oldest of those entries has waited `max_unordered_age_ms`. A stalled chain (no checkpoint
        for `STALL_MS`, counted from the start) is not overload: then only the count bounds what is taken. Entries from
        peers are never refused here: the chain may need them."""
        limits, backlog = self.limits, len(self._unordered)
        if limits.max_unordered and backlog and backlog + count > limits.max_unordered:
            self.metrics.entries_refused.labels("backlog").inc(count)
            raise Overloaded(f"{backlog} entries are waiting for a checkpoint on this node; retry shortly")
        if limits.max_unordered_age_ms and backlog and self._ordered_ms is not None:
            now = self.clock_ms()
            waited = now - next(iter(self._unordered.values()))
            if waited > limits.max_unordered_age_ms and now - self._ordered_ms <= STALL_MS:
                self.metrics.entries_refused.labels("behind").inc(count)
                raise Overloaded(f"checkpoints are not keeping up: an entry here has waited {waited} ms to be"
                                 " ordered; retry shortly")

    # --- submission -----------------------------------------------------------------------

    async def submit(self, signed: SignedEntry, source: Source) -> SubmitResult:
        """Ingest one entry for a client; returns once it is durable (or held / known)."""
        result = self.ingest(signed, source)
        future = self._committed.get(result.id)
        if future is not None:
            await asyncio.shield(future)
        return result

    async def submit_many(self, items: Sequence[SignedEntry], source: Source) -> list[SubmitResult | BilayerError]:
        results: list[SubmitResult | BilayerError] = []
        for signed in items:
            try:
                results.append(self.ingest(signed, source))
            except BilayerError as exc:
                results.append(exc)
        futures = [self._committed[r.id] for r in results if isinstance(r, SubmitResult) and r.id in self._committed]
        if futures:
            await asyncio.gather(*(asyncio.shield(f) for f in futures))
        return results

    def ingest(self, signed: SignedEntry, source: Source) -> SubmitResult:
        """Check and place one entry; raise its typed error when it is refused."""
        if self._failed is not None:
            raise StorageFailed(f"this node cannot write to its disk ({self._failed}); restart it on a working disk")
        id_ = entry_id(signed.header)
        if id_ in self.dag:
            return SubmitResult(id_, Status.KNOWN)
        if id_ in self.orphans:
            return SubmitResult(id_, Status.ORPHAN, tuple(self.orphans.held[id_].missing))
        try:
            params = self.params if source.startswith("api") else self.peer_params
            entry = check_entry(signed, chain_id=self.genesis.chain_id, params=params, now_ms=self.clock_ms())
            if not self.author_limiter.allow(entry.author, self.clock_ms() / 1000):
                raise RateLimited("this author is writing faster than the node's per-author limit")
            return self._place(entry, source)
        except BilayerError as exc:
            self.metrics.entries_rejected.labels(exc.code).inc()
            raise

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
        self._committed[entry.id] = asyncio.get_running_loop().create_future()
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
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue or self._evidence:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
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
                        future = self._committed.pop(entry.id, None)
                        if future is not None and not future.done():
                            future.set_exception(StorageFailed(str(exc)))
                    return
                self.metrics.commit_seconds.observe(time.perf_counter() - started)
                self._evidence_unwritten.difference_update((e.author, e.seq) for e in evidence)
                if evidence_written is not None:
                    evidence_written.set_result(None)
                for entry, source in batch:
                    self._uncommitted.pop(entry.id, None)
                    future = self._committed.pop(entry.id, None)
                    if future is not None and not future.done():
                        future.set_result(None)
                    self.metrics.entries_accepted.labels(source.split(":", 1)[0]).inc()
                self._refresh_gauges()
                if entries:
                    self.announce(entries, [source for _, source in batch])

    def _refresh_gauges(self) -> None:
        self.metrics.entries_stored.set(len(self.dag))
        self.metrics.entries_unordered.set(len(self._unordered))
        self.metrics.tips.set(len(self.dag.tips))
        self.metrics.orphans.set(len(self.orphans))

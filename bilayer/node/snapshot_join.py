"""A node joins a running network by a state snapshot over its peer links.

Serving (every node with finality): a peer asks for an offer (`SnapshotOfferWantMsg`) and
gets the latest checkpoint this node holds, the one before it, and the proof of the
validator set that certified the latest (`ValidatorChain`, from the validator change
proofs stored when each change executed). The state offered is the tree after the checkpoint
before the latest, whose root the latest signs. Chunks (`ChunkWantMsg`) are read from the
store for any retained version and refused with a code when pruned; each peer gets at most
`[sync] chunk_rate` requests a second (offers included), and at most `MAX_PENDING_REQUESTS`
wait at once. Reads run on a thread of their own, on connections of their own.

Joining (`[sync] mode = "snapshot"`, an empty data directory): the node links to its peers,
asks each for an offer, checks each offer from the genesis (`verify_validator_chain`: every
validator set change certified by the set before it, then the offered checkpoint's
certificate) and that the checkpoint before it is the one it names, then restores the tree
of the highest offer from every peer that made one (`state_sync.restore`: every chunk
verified against the certified root; a peer sending a bad one dropped; the frontier durable,
so a killed node resumes). The chosen offer is kept in the store before the restore starts:
a node restarted mid-sync resumes that same snapshot. Then, in one transaction, the restored
leaves become the `state` table, the checkpoint before the latest becomes the last applied
one (its results root the one the latest signs), and each author's next sequence number in
that state is kept as the boundary of what the chain ordered before (`SnapshotOrdered`).

From there the node is an ordinary one: it executes each checkpoint after the snapshot. The
entries of those checkpoints, and the DAG below them that gossip needs to place new entries,
are fetched by the usual anti-entropy (tips, wants, orphans' parents) in the background;
entries ordered before the snapshot are placed in the DAG but never executed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec

from .. import codec
from ..audit import index as audit_index
from ..audit.verify import (
    CheckpointLinkInvalid,
    StateProof,
    ValidatorChain,
    ValidatorChangeProof,
    verify_validator_chain,
)
from ..consensus.messages import FinalizedCheckpoint
from ..errors import BilayerError, Overloaded, RateLimited
from ..execution.governance.validator_set import VALIDATOR_CHANGES
from ..execution.smt import Child, LeafNode, StateVersionPruned
from ..execution.smt_sync import SnapshotRequestInvalid, decode_request
from ..genesis import Genesis
from ..ratelimit import RateLimiter
from ..replica.messages import (
    ChunkMsg,
    ChunkWantMsg,
    PeerMessage,
    SnapshotMessage,
    SnapshotOfferMsg,
    SnapshotOfferWantMsg,
)
from .metrics import NodeMetrics
from .state_store import StateStore
from .state_sync import (
    SnapshotSourceUnavailable,
    SnapshotTarget,
    StateSyncNoSources,
    SyncReport,
    restore,
    serve_chunk,
)
from .storage import Storage, StoredCheckpoint, validator_change_proofs

log = logging.getLogger("bilayer.snapshot")

ANSWER_TIMEOUT_S = 15.0  # a peer that does not answer a chunk request within this is left out
RATE_LIMITED_RETRIES = 20
RATE_LIMITED_WAIT_S = 0.25
OFFER_ROUNDS = 120  # rounds of asking linked peers for offers before the join gives up (some 2 to 4 minutes)
OFFER_ROUND_S = 2.0
SYNC_ATTEMPTS = 5  # restores started against fresh offers when every source dropped out
MAX_PENDING_REQUESTS = 64  # queued on the serving thread; more at once are refused as overloaded
MAX_SERVED_NODES = 8000  # the largest chunk served: a bound on one answer's frame and read
OFFER_KEY = "snapshot_offer"  # meta: the offer being restored, so a restart resumes it


class SnapshotOfferStruct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The offer a join restores, as kept in the store until the join is done."""

    finalized: FinalizedCheckpoint
    previous: FinalizedCheckpoint


# --- serving ---------------------------------------------------------------------------------


class ServeReader:
    """The store as serving reads it: connections of its own, on the serving thread only."""

    def __init__(self, path: Path) -> None:
        self.tree = StateStore(path, cache_nodes=4096, page_cache_mib=8)
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA query_only=1")

    def finalized(self, height: int) -> FinalizedCheckpoint | None:
        row = self.conn.execute("SELECT finalized FROM checkpoints WHERE height = ?", (height,)).fetchone()
        return None if row is None else codec.decode(bytes(row[0]), FinalizedCheckpoint)

    def latest_height(self) -> int:
        row = self.conn.execute("SELECT coalesce(max(height), 0) FROM checkpoints").fetchone()
        return int(row[0])

    def close(self) -> None:
        self.tree.close()
        self.conn.close()


def make_offer(reader: ServeReader) -> SnapshotOfferMsg:
    """This node's offer: its latest checkpoint L, checkpoint L-1 and the validator chain that
    proves L's certificate from the genesis; a coded refusal when it holds no such thing."""
    height = reader.latest_height()
    finalized, previous = reader.finalized(height), reader.finalized(height - 1)
    if height < 2 or finalized is None or previous is None:
        return SnapshotOfferMsg(code=SnapshotSourceUnavailable.code)
    try:
        value, proof = reader.tree.prove(VALIDATOR_CHANGES, height - 1)
    except StateVersionPruned:
        return SnapshotOfferMsg(code=StateVersionPruned.code)
    if value is None:
        return SnapshotOfferMsg(code=SnapshotSourceUnavailable.code)
    number = codec.decode(value, int)
    changes = []
    for _, executed, data in validator_change_proofs(reader.conn, number):
        certified = reader.finalized(executed + 1)
        if certified is None or executed + 1 > height:
            break
        changes.append(ValidatorChangeProof(codec.decode(data, StateProof), certified))
    if len(changes) != number - 1:  # a store that joined by snapshot after a change lacks its proof
        return SnapshotOfferMsg(code=SnapshotSourceUnavailable.code)
    chain = ValidatorChain(tuple(changes), StateProof(VALIDATOR_CHANGES, value, proof))
    return SnapshotOfferMsg(finalized, previous, codec.encode(chain))


class SnapshotServer:
    """Answers offers and chunk requests from peers (see the module doc)."""

    def __init__(self, path: Path, send: Callable[[bytes, PeerMessage], bool], metrics: NodeMetrics,
                 rate: float, burst: float, corrupt: bool = False) -> None:
        """`corrupt`: serve every chunk with its last byte flipped (`[testing]`: a hostile peer)."""
        self.path = path
        self.corrupt = corrupt
        self.send = send
        self.metrics = metrics
        self.limiter = RateLimiter(rate, burst)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-serve")
        self._local = threading.local()
        self._readers: list[ServeReader] = []
        self._closed = False
        self._pending = 0  # requests queued for or on the serving thread (counted on the event loop)

    def _reader(self) -> ServeReader:
        reader: ServeReader | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = ServeReader(self.path)
            self._readers.append(reader)
        return reader

    def _answer(self, message: SnapshotOfferWantMsg | ChunkWantMsg) -> PeerMessage:
        reader = self._reader()
        if isinstance(message, SnapshotOfferWantMsg):
            return make_offer(reader)
        try:
            request = decode_request(message.request)
            if request.max_nodes > MAX_SERVED_NODES:
                raise SnapshotRequestInvalid(f"this node serves chunks of at most {MAX_SERVED_NODES} nodes")
            chunk = serve_chunk(reader.tree, message.version, message.request)
        except BilayerError as refused:
            return ChunkMsg(message.nonce, message.version, code=refused.code)
        if self.corrupt:
            chunk = chunk[:-1] + bytes([chunk[-1] ^ 1])
        return ChunkMsg(message.nonce, message.version, chunk=chunk)

    def handle(self, peer: bytes, message: SnapshotOfferWantMsg | ChunkWantMsg) -> None:
        """Answer on the serving thread; the answer is queued on the peer's link from the loop."""
        if self._closed:
            return
        refusal = None
        if not self.limiter.allow(peer, time.monotonic()):
            refusal = RateLimited.code
        elif self._pending >= MAX_PENDING_REQUESTS:  # many peers at once: the thread's queue stays bounded
            refusal = Overloaded.code
        if refusal is not None:
            if isinstance(message, ChunkWantMsg):
                self.metrics.snapshot_chunks_served.labels(refusal).inc()
                self.send(peer, ChunkMsg(message.nonce, message.version, code=refusal))
            else:
                self.send(peer, SnapshotOfferMsg(code=refusal))
            return
        loop = asyncio.get_running_loop()

        def done(answer: PeerMessage | None) -> None:
            self._pending -= 1
            if answer is None:
                return
            if isinstance(answer, ChunkMsg):
                self.metrics.snapshot_chunks_served.labels(answer.code or "served").inc()
            self.send(peer, answer)

        def work() -> None:
            answer: PeerMessage | None = None
            try:
                answer = self._answer(message)
            except Exception:  # a damaged store: the asker times out and asks another peer
                log.exception("serving a snapshot request failed")
            loop.call_soon_threadsafe(done, answer)

        try:
            self._worker.submit(work)
        except RuntimeError:  # closing
            return
        self._pending += 1

    def close(self) -> None:
        self._closed = True

        def close_readers() -> None:
            for reader in self._readers:
                reader.close()

        with contextlib.suppress(RuntimeError):
            self._worker.submit(close_readers)
        self._worker.shutdown(wait=True)


# --- asking ----------------------------------------------------------------------------------


class SnapshotClient:
    """A joining node's side of the requests: offers and chunks asked of peers, answers
    matched to their asker by peer and nonce (an answer nobody waits for is ignored)."""

    def __init__(self, send: Callable[[bytes, PeerMessage], bool], loop: asyncio.AbstractEventLoop) -> None:
        self.send = send
        self.loop = loop
        self._chunks: dict[tuple[bytes, int], asyncio.Future[ChunkMsg]] = {}
        self._offers: dict[bytes, asyncio.Future[SnapshotOfferMsg]] = {}
        self._nonce = 0
        self.stopped = False

    def is_stopped(self) -> bool:
        return self.stopped

    def stop(self) -> None:
        """The node is stopping: every request waiting, and every later one, fails at once."""
        self.stopped = True
        for chunk in self._chunks.values():
            chunk.cancel()
        for offer in self._offers.values():
            offer.cancel()

    def received(self, peer: bytes, message: ChunkMsg | SnapshotOfferMsg) -> None:
        if isinstance(message, ChunkMsg):
            future = self._chunks.pop((peer, message.nonce), None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        offer = self._offers.pop(peer, None)
        if offer is not None and not offer.done():
            offer.set_result(message)

    async def offer(self, peer: bytes, timeout_s: float = ANSWER_TIMEOUT_S) -> SnapshotOfferMsg | None:
        if self.stopped:
            return None
        future: asyncio.Future[SnapshotOfferMsg] = self.loop.create_future()
        self._offers[peer] = future
        if not self.send(peer, SnapshotOfferWantMsg()):
            self._offers.pop(peer, None)
            return None
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        except asyncio.CancelledError:
            if not self.is_stopped():
                raise
            return None
        finally:
            if self._offers.get(peer) is future:
                del self._offers[peer]

    async def chunk(self, peer: bytes, version: int, request: bytes) -> bytes:
        """The chunk, or SnapshotSourceUnavailable (no link, no answer in time, a refusal)."""
        for _ in range(RATE_LIMITED_RETRIES):
            if self.stopped:
                raise SnapshotSourceUnavailable("this node is stopping")
            self._nonce += 1
            key = (peer, self._nonce)
            future: asyncio.Future[ChunkMsg] = self.loop.create_future()
            self._chunks[key] = future
            try:
                if not self.send(peer, ChunkWantMsg(self._nonce, version, request)):
                    raise SnapshotSourceUnavailable(f"no link to peer {peer.hex()[:12]}")
                try:
                    answer = await asyncio.wait_for(future, ANSWER_TIMEOUT_S)
                except TimeoutError:
                    raise SnapshotSourceUnavailable(f"peer {peer.hex()[:12]} did not answer in"
                                                    f" {ANSWER_TIMEOUT_S:.0f} s") from None
                except asyncio.CancelledError:
                    if not self.is_stopped():
                        raise
                    raise SnapshotSourceUnavailable("this node is stopping") from None
            finally:
                self._chunks.pop(key, None)
            if answer.code in (RateLimited.code, Overloaded.code):  # busy, not hostile: ask again shortly
                await asyncio.sleep(RATE_LIMITED_WAIT_S)
                continue
            if answer.code or answer.version != version:
                raise SnapshotSourceUnavailable(f"peer {peer.hex()[:12]} refused: {answer.code}", cause=answer.code)
            return answer.chunk
        raise SnapshotSourceUnavailable(f"peer {peer.hex()[:12]} kept refusing: over its rate")


class LinkSource:
    """A peer as a `ChunkSource` of `state_sync.restore`, which runs on a worker thread: each
    fetch is asked on the event loop and waited for here."""

    def __init__(self, client: SnapshotClient, peer: bytes, version: int) -> None:
        self.client = client
        self.peer = peer
        self.version = version
        self.name = "peer:" + peer.hex()[:16]

    def fetch(self, request: bytes) -> bytes:
        if self.client.stopped:
            raise SnapshotSourceUnavailable(f"{self.name}: this node is stopping")
        running = asyncio.run_coroutine_threadsafe(self.client.chunk(self.peer, self.version, request),
                                                   self.client.loop)
        try:
            return running.result(ANSWER_TIMEOUT_S * (RATE_LIMITED_RETRIES + 1))
        except TimeoutError:
            running.cancel()
            raise SnapshotSourceUnavailable(f"{self.name}: no answer") from None


# --- joining ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedOffer:
    peer: bytes
    finalized: FinalizedCheckpoint
    previous: FinalizedCheckpoint

    @property
    def target(self) -> SnapshotTarget:
        """The tree after `previous`, whose root `finalized` signs."""
        return SnapshotTarget(self.previous.checkpoint.height, self.finalized.checkpoint.state_root)


def verify_offer(genesis: Genesis, peer: bytes, offer: SnapshotOfferMsg) -> VerifiedOffer:
    """The offer, checked from the genesis: the validator chain and the latest checkpoint's
    certificate (`verify_validator_chain`), and the checkpoint before it the one it names.
    Raises the verifier's coded error on any failure."""
    finalized, previous = offer.finalized, offer.previous
    if offer.code or finalized is None or previous is None:
        raise SnapshotSourceUnavailable(f"peer {peer.hex()[:12]} offers no snapshot: {offer.code}",
                                        cause=offer.code)
    chain = codec.decode(offer.validators, ValidatorChain)
    verify_validator_chain(genesis, chain, finalized)
    if (previous.checkpoint.height + 1 != finalized.checkpoint.height
            or previous.checkpoint.id != finalized.checkpoint.prev_id or previous.checkpoint.chain != genesis.chain_id):
        raise CheckpointLinkInvalid("the checkpoint before the offered one is not the one it names")
    return VerifiedOffer(peer, finalized, previous)


def _claimed(offer: SnapshotOfferMsg) -> int:
    return offer.finalized.checkpoint.height if offer.finalized is not None else -1


def restored_leaves(store: StateStore, root: Child | None, batch: int = 512) -> Iterator[tuple[bytes, bytes]]:
    """Every key and value of the tree of `root`, up to `batch` nodes read in one query
    (one query a node took as long as the whole transfer at 10^5 keys). Depth first: what is
    held is at most the batch's children for each level, never the state."""
    if root is None:
        return
    stack: list[tuple[Child, bytes]] = [(root, b"")]
    while stack:
        taken = stack[-batch:]
        del stack[-batch:]
        for (_, path), node in zip(taken, store.read_nodes([(ref.version, path) for ref, path in taken]),
                                   strict=True):
            if isinstance(node, LeafNode):
                yield node.key, node.value
            else:
                stack.extend((child, path + bytes((n,))) for n, child in enumerate(node.children)
                             if child is not None)


def author_heads(items: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, int]]:
    """Each author's next sequence number, from the state's `A` + key records."""
    for key, value in items:
        if len(key) == 33 and key[:1] == b"A":
            next_seq, _ = codec.decode(value, tuple[int, bytes])
            yield key[1:], next_seq


@dataclass
class JoinReport:
    height: int = 0  # the height the chain starts from (the snapshot's)
    offers: int = 0
    refused_offers: int = 0
    resumed: bool = False
    sync: SyncReport | None = None
    seconds: float = 0.0


class SnapshotJoin:
    """The join of one node (see the module doc): `run` returns when the store holds the
    chain at the snapshot's height, ready for `Chain.load`."""

    def __init__(self, storage: Storage, genesis: Genesis, client: SnapshotClient,
                 linked: Callable[[], list[bytes]], metrics: NodeMetrics, chunk_nodes: int = 4000) -> None:
        self.chunk_nodes = max(1, min(chunk_nodes, MAX_SERVED_NODES))
        self.storage = storage
        self.genesis = genesis
        self.client = client
        self.linked = linked
        self.metrics = metrics
        self.report = JoinReport()
        self.refused: set[bytes] = set()  # peers whose offer did not prove itself

    @staticmethod
    def needed(storage: Storage) -> bool:
        """A store with no checkpoint and either no state (a new node) or a snapshot's offer in
        progress (a join that was interrupted)."""
        if storage.latest_checkpoint() is not None:
            return False
        return storage.tree.latest_version is None or storage.get_meta(OFFER_KEY) is not None

    @staticmethod
    def interrupted(storage: Storage) -> bool:
        """A join started in this store and not finished."""
        return storage.latest_checkpoint() is None and storage.get_meta(OFFER_KEY) is not None

    async def _offers(self) -> list[tuple[bytes, SnapshotOfferMsg]]:
        """The offers linked peers make (those that answer with a checkpoint), highest first."""
        peers = self.linked()
        answers = await asyncio.gather(*(self.client.offer(peer) for peer in peers))
        made = [(peer, answer) for peer, answer in zip(peers, answers, strict=True)
                if answer is not None and answer.finalized is not None and not answer.code]
        self.report.offers += len(made)
        return sorted(made, key=lambda offer: -_claimed(offer[1]))

    async def _verified(self, offers: list[tuple[bytes, SnapshotOfferMsg]]) -> VerifiedOffer | None:
        """The highest offer that proves itself. Only that one needs to: the other peers are
        sources of chunks, each chunk verified against the chosen root. (Checking an offer
        builds the genesis state once, seconds with a large genesis: off the event loop.)"""
        for peer, offer in offers:
            try:
                return await asyncio.to_thread(verify_offer, self.genesis, peer, offer)
            except BilayerError as refused:
                self.refused.add(peer)
                self.report.refused_offers += 1
                self.metrics.snapshot_offers_refused.labels(refused.code).inc()
                log.warning("snapshot offer of peer %s refused: %s (%s)", peer.hex()[:12], refused.message,
                            refused.code)
        return None

    def _holding(self, offers: list[tuple[bytes, SnapshotOfferMsg]], chosen: VerifiedOffer) -> list[bytes]:
        """The peers whose offer is at the chosen height or later (they retain its version),
        but for those whose offer did not prove itself."""
        return [peer for peer, offer in offers
                if _claimed(offer) >= chosen.finalized.checkpoint.height and peer not in self.refused]

    async def _chosen(self) -> tuple[VerifiedOffer, list[bytes]]:
        """The offer to restore (the one in progress, else the highest that proves itself), and
        the peers to ask for chunks (those offering its height or a later one)."""
        kept = self.storage.get_meta(OFFER_KEY)
        for round_ in range(OFFER_ROUNDS):
            if self.client.stopped:
                break
            offers = await self._offers()
            chosen: VerifiedOffer | None = None
            if kept is not None:
                saved = codec.decode(kept, SnapshotOfferStruct)
                chosen = VerifiedOffer(b"", saved.finalized, saved.previous)
                self.report.resumed = True
                if not offers and round_ < 3:
                    chosen = None  # give the peers a few rounds to answer
            elif offers:
                chosen = await self._verified(offers)
            if chosen is not None:
                return chosen, self._holding(offers, chosen)
            linked = len(self.linked())
            if linked or round_ % 8 == 7:
                log.info("snapshot join: waiting for a peer to offer a snapshot (%d linked)", linked)
            await asyncio.sleep(OFFER_ROUND_S if linked else OFFER_ROUND_S / 8)  # links come up in milliseconds
        raise StateSyncNoSources(f"no peer offered a snapshot in {OFFER_ROUNDS} rounds of asking")

    async def run(self) -> JoinReport:
        started = time.monotonic()
        chosen, peers = await self._chosen()
        if self.storage.get_meta(OFFER_KEY) is None:
            self.storage.set_meta(OFFER_KEY, codec.encode(SnapshotOfferStruct(chosen.finalized, chosen.previous)))
        target = chosen.target
        self.report.height = target.version
        self.metrics.snapshot_height.set(target.version)
        log.info("snapshot join: restoring the state after height %d (root %s) from %d peer(s)%s", target.version,
                 target.root_hash.hex()[:16], len(peers), ", resuming" if self.report.resumed else "")
        for attempt in range(SYNC_ATTEMPTS):
            sources = [LinkSource(self.client, peer, target.version) for peer in peers]
            try:
                self.report.sync = await asyncio.to_thread(self._restore, target, sources)
                break
            except StateSyncNoSources as stopped:
                if attempt == SYNC_ATTEMPTS - 1 or self.client.stopped:
                    raise
                log.warning("snapshot join: %s; asking for offers again", stopped.message)
                await asyncio.sleep(OFFER_ROUND_S)
                peers = self._holding(await self._offers(), chosen)
        await asyncio.to_thread(self._install, chosen)
        self.report.seconds = time.monotonic() - started
        sync = self.report.sync
        log.info("snapshot join done: state after height %d, %d nodes (%d keys) received in %.1f s; executing"
                 " from height %d", target.version, sync.nodes if sync else 0, sync.leaves if sync else 0,
                 self.report.seconds, target.version + 1)
        return self.report

    def _restore(self, target: SnapshotTarget, sources: list[LinkSource]) -> SyncReport:
        last_log = [time.monotonic()]
        metrics = self.metrics

        def progress(report: SyncReport) -> None:
            metrics.snapshot_nodes.set(report.nodes)
            now = time.monotonic()
            if report.batches == 1 or now - last_log[0] >= 2.0:
                last_log[0] = now
                log.info("snapshot join: %d nodes, %d keys, %.1f MB received", report.nodes, report.leaves,
                         report.bytes / 1e6)

        with StateStore(self.storage.path) as store:
            report = restore(store, target, sources, chunk_nodes=self.chunk_nodes,
                             batch_nodes=max(5 * self.chunk_nodes, 2000), on_batch=progress)
        for source, code in report.refused:
            metrics.snapshot_sources_dropped.labels(code).inc()
            log.warning("snapshot join: %s sent a chunk that does not verify (%s): dropped", source, code)
        for source in report.unavailable:
            metrics.snapshot_sources_dropped.labels(SnapshotSourceUnavailable.code).inc()
            log.warning("snapshot join: %s left out: no answer, or a refusal", source)
        metrics.snapshot_nodes.set(report.nodes)
        return report

    def _install(self, chosen: VerifiedOffer) -> None:
        """The restored tree becomes the chain's state at the snapshot's height (one transaction)."""
        storage, genesis = self.storage, self.genesis
        previous, finalized = chosen.previous, chosen.finalized
        height = previous.checkpoint.height
        stored = StoredCheckpoint(height, previous.checkpoint.id, codec.encode(previous),
                                  finalized.checkpoint.state_root, finalized.checkpoint.results_root, 0,
                                  int(time.time() * 1000))

        def index(conn: sqlite3.Connection) -> None:
            """The audit index starts at the snapshot: what came before was never executed here."""
            audit_index.drop_tables(conn)
            audit_index.create_tables(conn)
            audit_index.index_genesis(conn, genesis)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         (audit_index.INDEX_HEIGHT_KEY, codec.encode(height)))

        with StateStore(storage.path) as tree:  # a connection of its own: this runs off the event loop
            root = tree.root_ref(height)
            storage.install_snapshot(stored, restored_leaves(tree, root), author_heads, index)
        storage.with_writer(lambda conn: conn.execute("DELETE FROM meta WHERE key = ?", (OFFER_KEY,)))


__all__ = ["JoinReport", "LinkSource", "SnapshotClient", "SnapshotJoin", "SnapshotMessage", "SnapshotServer",
           "VerifiedOffer", "make_offer", "verify_offer"]

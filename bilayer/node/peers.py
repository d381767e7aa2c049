"""Peer links: dial the configured peers, accept anyone who completes the handshake, and pump
the replica's gossip protocol (`replica/gossip.py`) over them.

What to send to whom (push, wants, tips, fork evidence, checkpoints for catch-up, peer
exchange) is decided by `Gossip`, a state machine without I/O that the simulator runs too.
This module is its asyncio host: it turns frames and link events into the machine's inputs and
its actions into frames, ingestion, finality inputs, dials and timers. A peer that sends a bad
frame or message loses its link; the node carries on.

Inbound slots are open to anyone, so they are kept from squatters. Validators of every set
the node knows are always let in, displacing the least useful stranger if the node is
full; strangers share what is left (`max_inbound` less one slot per known validator), at
most `max_inbound_per_ip` from one address, and a stranger that has brought nothing new
for `STRANGER_IDLE_S` gives its slot to the next stranger who asks. Handshakes in
progress are capped too; when they are, the oldest (an honest one takes milliseconds)
gives way.

Peer exchange: the node dials up to `max_learned_peers` addresses its peers offered
(`PeersMsg`) besides its configured `peers`, so a node that joins with one seed finds the
others. An address is advertised as `external_address` (else the listen address); a learned
address that fails `LEARNED_ATTEMPTS` dials in a row, or that leads to a peer already linked,
is forgotten (it may be learned again). Redials back off exponentially with jitter, so peers
restarted together do not redial in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from ..consensus.messages import FinalizedCheckpoint, Proposal, Vote
from ..errors import BilayerError, PeerProtocolError
from ..keys.signing import Signer
from ..ledger.entry import Entry, SignedEntry, WithheldEntry
from ..ratelimit import RateLimiter
from ..replica.gossip import (
    MAX_CHECKPOINTS_ANSWER,
    MAX_WANT_ANSWER,
    TIPS_INTERVAL_MS,
    Action,
    Close,
    Fetch,
    Gossip,
    Learn,
    Send,
    TakeCheckpoint,
    TakeConsensus,
    TakeEntries,
    TakeEvidence,
    TakeSnapshot,
    TakeWithheld,
    Upkeep,
    Wake,
    addresses_to_learn,
    dialable,
    entry_batches,
    split_host_port,
)
from ..replica.messages import (
    CheckpointMsg,
    ForkProof,
    PeerMessage,
    ProposalMsg,
    SnapshotMessage,
    VoteMsg,
    encode_message,
)
from ..replica.placing import Source
from .ingest import Ingest, Status
from .metrics import NodeMetrics
from .storage import ForkEvidence
from .transport import SecureLink, handshake

log = logging.getLogger("bilayer.peers")

__all__ = ["MAX_CHECKPOINTS_ANSWER", "MAX_WANT_ANSWER", "PeerLink", "PeerManager", "addresses_to_learn",
           "backoff_delay", "dialable", "entry_batches", "split_host_port"]

TIPS_INTERVAL_S = TIPS_INTERVAL_MS / 1000
OUTBOX_LIMIT = 2000
MAX_PENDING_HANDSHAKES = 32
STRANGER_IDLE_S = 30.0
LEARNED_ATTEMPTS = 5
MAX_BACKOFF_S = 5.0


_NEW = (Status.STORED, Status.ORPHAN)


def backoff_delay(backoff: float) -> float:
    """Half the backoff plus a random half: spread out, never below half."""
    return backoff / 2 + random.uniform(0, backoff / 2)


def fork_proof(evidence: ForkEvidence) -> ForkProof:
    return ForkProof(evidence.first.header, evidence.first.signature, evidence.second.header,
                     evidence.second.signature)


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


class NodeLedger:
    """What the gossip protocol reads of this node: the ingest's DAG and orphans, the store."""

    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager
        self.ingest = manager.ingest

    def tips(self) -> Sequence[bytes]:
        return list(self.ingest.dag.tips)

    def holds(self, entry_id: bytes) -> bool:
        return self.ingest.dag.holds(entry_id) or entry_id in self.ingest.orphans

    def lookup(self, ids: Sequence[bytes]) -> list[SignedEntry | WithheldEntry]:
        return [s.signed if s.tombstone is None else WithheldEntry(s.signed.header, s.signed.signature, s.tombstone)
                for s in self.ingest.storage.get_many(ids)]

    def fork_digest(self) -> bytes:
        return self.ingest.fork_digest

    def fork_proofs(self, limit: int) -> list[ForkProof]:
        return [fork_proof(e) for e in self.ingest.storage.recent_fork_evidence(limit)]

    def height(self) -> int:
        return self.manager.height()

    def checkpoints_from(self, start: int, count: int) -> list[FinalizedCheckpoint]:
        return self.manager.checkpoints_from(start, count)


class PeerLink:
    def __init__(self, link: SecureLink, inbound: bool = False, ip: str = "") -> None:
        self.link = link
        self.key = link.peer_key
        self.source: Source = "peer:" + link.peer_key.hex()
        self.inbound = inbound
        self.ip = ip
        # when the peer last brought something new (an entry this node stored)
        self.last_useful = time.monotonic()
        # (when queued, frame): a link with an emulated delay sends each frame that long after
        self._urgent: deque[tuple[float, bytes]] = deque()
        self._normal: deque[tuple[float, bytes]] = deque()
        self._ready = asyncio.Event()
        self.closed = asyncio.Event()
        self.height = 0

    def enqueue(self, message: PeerMessage) -> None:
        """Queue a message; when the peer is too slow, drop it (anti-entropy repairs the gap).

        Consensus messages go first: a vote must not wait behind megabytes of entries."""
        urgent = isinstance(message, ProposalMsg | VoteMsg | CheckpointMsg)
        queue = self._urgent if urgent else self._normal
        if len(queue) < OUTBOX_LIMIT:
            queue.append((time.monotonic(), encode_message(message)))
            self._ready.set()

    async def next_frame(self) -> tuple[float, bytes]:
        while True:
            if self._urgent:
                return self._urgent.popleft()
            if self._normal:
                return self._normal.popleft()
            self._ready.clear()
            await self._ready.wait()


class PeerManager:
    def __init__(
        self,
        signer: Signer,
        chain_id: str,
        listen: str,
        dial: Sequence[str],
        ingest: Ingest,
        metrics: NodeMetrics,
        entry_rate: float,
        entry_burst: float,
        max_inbound: int = 128,
        max_inbound_per_ip: int = 32,
        external_address: str = "",
        max_learned_peers: int = 16,
        link_delays: Mapping[bytes, float] | None = None,
        link_jitter: float = 0.0,
    ) -> None:
        self.signer = signer
        self.chain_id = chain_id
        self.listen = listen
        self.advertised = external_address or listen
        self.dial = list(dial)
        self.max_learned_peers = max_learned_peers
        self.learned: set[str] = set()
        self.link_delays = dict(link_delays or {})  # seconds, by peer key (`[testing] link_delay_ms`)
        self.link_jitter = link_jitter
        self.ingest = ingest
        self.metrics = metrics
        self.limiter = RateLimiter(entry_rate, entry_burst)
        self.links: dict[bytes, PeerLink] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        self.isolated = False
        self.cut: frozenset[bytes] = frozenset()  # peers this node keeps no link with (`cut_off`)
        self.max_inbound = max_inbound
        self.max_inbound_per_ip = max_inbound_per_ip
        self._handshaking: dict[asyncio.StreamWriter, None] = {}  # oldest first
        self.height: Callable[[], int] = lambda: 0
        self.on_consensus: Callable[[Proposal | Vote], None] = lambda message: None
        self.on_checkpoint: Callable[[FinalizedCheckpoint], None] = lambda finalized: None
        self.checkpoints_from: Callable[[int, int], list[FinalizedCheckpoint]] = lambda start, count: []
        # snapshot sync traffic (node/snapshot_join.py): served from the store, or answers for a sync
        self.on_snapshot: Callable[[bytes, SnapshotMessage], None] = lambda peer, message: None
        self.gossip = Gossip(NodeLedger(self),
                             lambda message: self.metrics.peer_frames.labels(type(message).__name__).inc())
        ingest.request = self.request
        ingest.announce_evidence = self.broadcast_evidence
        ingest.fetch_later = lambda ids: self._do(self.gossip.orphans_missing(ids, _now_ms()))

    @property
    def validator_keys(self) -> set[bytes]:
        return self.gossip.validator_keys

    @validator_keys.setter
    def validator_keys(self, keys: set[bytes]) -> None:
        self.gossip.validator_keys = keys

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        self._running = True
        host, port = split_host_port(self.listen)
        self._server = await asyncio.start_server(self._on_inbound, host, port, limit=2**20)
        for address in self.dial:
            self._spawn(self._dial_loop(address), f"dial {address}")
        self._spawn(self._tips_loop(), "tips")

    async def stop(self) -> None:
        self._running = False
        if self._server is not None:
            self._server.close()
        for peer in list(self.links.values()):
            peer.link.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- links ---------------------------------------------------------------------------

    def isolate(self) -> None:
        """Cut every peer link and refuse new ones (fault campaigns; maintenance)."""
        self.isolated = True
        for peer in list(self.links.values()):
            peer.link.close()
        log.warning("isolated: all peer links cut")

    def cut_off(self, keys: frozenset[bytes]) -> None:
        """Keep no link with these peers (a link-level partition of a fault campaign): links
        to them close, and they are refused after the handshake until `rejoin`."""
        self.cut = keys
        for key in keys & self.links.keys():
            self.links[key].link.close()
        log.warning("links to %d peer(s) cut: %s", len(keys), ", ".join(sorted(k.hex()[:12] for k in keys)))

    def rejoin(self) -> None:
        self.isolated = False
        self.cut = frozenset()
        log.warning("rejoined: dialing peers again")

    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.isolated:
            writer.close()
            return
        if len(self._handshaking) >= MAX_PENDING_HANDSHAKES:
            oldest = next(iter(self._handshaking))
            del self._handshaking[oldest]
            oldest.close()
            self.metrics.peer_evictions.labels("slow_handshake").inc()
        self._handshaking[writer] = None
        try:
            link = await handshake(reader, writer, self.signer, self.chain_id, self.advertised)
        except (PeerProtocolError, OSError) as exc:
            self._count_error(exc)
            writer.close()
            return
        finally:
            self._handshaking.pop(writer, None)
        peername = writer.get_extra_info("peername")
        ip = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
        if not self._make_room(link.peer_key, ip):
            link.close()
            return
        await self._run(link, inbound=True, ip=ip)

    def _inbound_links(self) -> list[PeerLink]:
        return [p for p in self.links.values() if p.inbound]

    def _make_room(self, key: bytes, ip: str) -> bool:
        """Whether a peer that just proved `key` from `ip` may hold an inbound link, closing a
        stranger's link to make room when that is the rule (see the module doc)."""
        if key in self.links:
            return True  # `_run` keeps the link already open
        inbound = self._inbound_links()
        strangers = sorted((p for p in inbound if p.key not in self.validator_keys), key=lambda p: p.last_useful)
        if key in self.validator_keys:
            if len(inbound) < self.max_inbound:
                return True
            return self._evict(strangers[:1], "validator_needs_slot")
        now = time.monotonic()
        idle = [p for p in strangers if now - p.last_useful >= STRANGER_IDLE_S]
        same_ip = [p for p in strangers if p.ip == ip]
        if len(same_ip) >= self.max_inbound_per_ip and not self._evict(
                [p for p in idle if p.ip == ip][:1], "stranger_idle"):
            self.metrics.peer_evictions.labels("refused_per_ip").inc()
            return False
        stranger_slots = max(0, self.max_inbound - len(self.validator_keys))
        inbound = self._inbound_links()
        strangers = [p for p in strangers if p.key in self.links]
        if (len(strangers) >= stranger_slots or len(inbound) >= self.max_inbound) and not self._evict(
                [p for p in idle if p.key in self.links][:1], "stranger_idle"):
            self.metrics.peer_evictions.labels("refused_full").inc()
            return False
        return True

    def _evict(self, victims: list[PeerLink], reason: str) -> bool:
        if not victims:
            return False
        for peer in victims:
            log.info("closing the link of stranger %s (%s) to free its slot: %s", peer.key.hex()[:12], peer.ip,
                     reason)
            del self.links[peer.key]  # its slot is free now; its task ends once the socket closes
            peer.link.close()
            self.metrics.peer_evictions.labels(reason).inc()
        self.metrics.peers.set(len(self.links))
        return True

    async def _dial_loop(self, address: str, learned: bool = False) -> None:
        """Keep a link to `address` up; a learned address is given up when it fails
        `LEARNED_ATTEMPTS` times in a row or leads to a peer linked already."""
        host, port = split_host_port(address)
        backoff = 0.2
        failures = 0
        while self._running and not (learned and failures >= LEARNED_ATTEMPTS):
            if self.isolated:
                await asyncio.sleep(0.2)
                continue
            opened: asyncio.StreamWriter | None = None
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=2**20), 5)
                opened = writer
                link = await handshake(reader, writer, self.signer, self.chain_id, self.advertised)
                if link.peer_key in self.cut:
                    link.close()  # backs off as a failed dial does, without counting an error
                    await asyncio.sleep(backoff_delay(backoff))
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    continue
                backoff, failures = 0.2, 0
                if learned and link.peer_key in self.links:
                    link.close()
                    break
                await self._run(link)
            except (PeerProtocolError, OSError, TimeoutError) as exc:
                failures += 1
                self._count_error(exc)
                if opened is not None:
                    opened.close()  # a failed handshake must not leave the connection open
            except Exception:  # never let one odd failure end dialing this peer for good
                failures += 1
                log.exception("dialing %s failed unexpectedly", address)
                if opened is not None:
                    opened.close()
            await asyncio.sleep(backoff_delay(backoff))
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        if learned:
            self.learned.discard(address)

    def _learn(self, offered: Sequence[str]) -> None:
        known = {self.listen, self.advertised, *self.dial, *self.learned,
                 *(p.link.peer_listen for p in self.links.values())}
        room = self.max_learned_peers - len(self.learned)
        for address in addresses_to_learn(offered, known, room):
            self.learned.add(address)
            log.info("learned peer address %s; dialling it", address)
            self._spawn(self._dial_loop(address, learned=True), f"dial learned {address}")

    def _count_error(self, exc: BaseException) -> None:
        code = exc.code if isinstance(exc, BilayerError) else "connection"
        if isinstance(exc, PeerProtocolError):
            log.warning("peer link refused: %s", exc)
        self.metrics.peer_errors.labels(code).inc()

    async def _run(self, link: SecureLink, inbound: bool = False, ip: str = "") -> None:
        if link.peer_key in self.links or self.isolated or link.peer_key in self.cut:
            link.close()  # one link per peer is enough; none across a cut
            return
        peer = PeerLink(link, inbound, ip)
        self.links[peer.key] = peer
        self.metrics.peers.set(len(self.links))
        log.info("peer %s connected (%s)", peer.key.hex()[:12], link.peer_listen)
        sender = asyncio.get_running_loop().create_task(self._send_loop(peer))
        try:
            self._do(self.gossip.peer_connected(peer.key, link.peer_listen))
            while self._running and self.links.get(peer.key) is peer:
                data = await link.recv()
                self._do(self.gossip.received(peer.key, data))
                known = self.gossip.peers.get(peer.key)
                if known is not None:
                    peer.height = known.height  # what readiness reads (`Node.catching_up`)
                await self.ingest.room()  # a node behind on peers' batches reads no more until it has room
        except (PeerProtocolError, BilayerError) as exc:
            self._count_error(exc)
            log.warning("closing link to %s: %s", peer.key.hex()[:12], exc)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()
            link.close()
            if self.links.get(peer.key) is peer:
                del self.links[peer.key]
            if peer.key not in self.links:
                self.gossip.peer_gone(peer.key)
            self.metrics.peers.set(len(self.links))
            peer.closed.set()

    async def _send_loop(self, peer: PeerLink) -> None:
        delay = self.link_delays.get(peer.key, 0.0)
        due = 0.0
        with contextlib.suppress(OSError):
            while True:
                queued, frame = await peer.next_frame()
                if delay:  # an emulated wide-area link: never earlier than the frame before
                    due = max(due, queued + delay + random.uniform(0, self.link_jitter))
                    await asyncio.sleep(due - time.monotonic())
                await peer.link.send(frame)

    # --- the gossip protocol's actions ------------------------------------------------------

    def _do(self, actions: list[Action]) -> None:
        """Carry out what the gossip machine asks, in its order."""
        for action in actions:
            if isinstance(action, Send):
                peer = self.links.get(action.peer)
                if peer is not None:
                    peer.enqueue(action.message)
            elif isinstance(action, TakeEntries | TakeWithheld | TakeEvidence):
                self._take(action)
            elif isinstance(action, TakeConsensus):
                self.on_consensus(action.message)
            elif isinstance(action, TakeCheckpoint):
                self.on_checkpoint(action.finalized)
            elif isinstance(action, Fetch):
                self.ingest.fetch_missing(action.ids)
            elif isinstance(action, Learn):
                self._learn(action.addresses)
            elif isinstance(action, Wake):
                asyncio.get_running_loop().call_later(action.delay_ms / 1000,
                                                      lambda: self._do(self.gossip.wake(_now_ms())))
            elif isinstance(action, Upkeep):
                self.ingest.maintain()
            elif isinstance(action, Close):
                self._close(action)
            elif isinstance(action, TakeSnapshot):
                self.on_snapshot(action.peer, action.message)

    def _close(self, action: Close) -> None:
        peer = self.links.pop(action.peer, None)
        self.metrics.peer_errors.labels(action.code).inc()
        log.warning("closing link to %s: %s", action.peer.hex()[:12], action.reason)
        if peer is not None:
            peer.link.close()
        self.metrics.peers.set(len(self.links))

    def _take(self, action: TakeEntries | TakeWithheld | TakeEvidence) -> None:
        """Ingest what a peer sent, within its rate; each bad item spoils nothing else (counted by ingest)."""
        peer = self.links.get(action.peer)
        if peer is None:
            return
        cost = len(action.proofs) if isinstance(action, TakeEvidence) else len(action.items)
        if not self.limiter.allow(peer.key, time.monotonic(), cost=cost):
            if not isinstance(action, TakeEvidence):
                self.metrics.entries_rejected.labels("rate_limited").inc(cost)
            return
        if isinstance(action, TakeEvidence):
            for proof in action.proofs:
                with contextlib.suppress(BilayerError):
                    self.ingest.ingest_evidence(SignedEntry(proof.first_header, proof.first_signature, b""),
                                                SignedEntry(proof.second_header, proof.second_signature, b""),
                                                peer.source)
            return
        if isinstance(action, TakeEntries):  # signatures checked on the verify pool, answers in order
            self.ingest.receive(action.items, peer.source, lambda: setattr(peer, "last_useful", time.monotonic()))
            return
        for item in action.items:
            with contextlib.suppress(BilayerError):
                if self.ingest.ingest_withheld(item, peer.source).status in _NEW:
                    peer.last_useful = time.monotonic()

    def broadcast(self, entries: Sequence[Entry], sources: Sequence[Source]) -> None:
        """Push newly stored entries to every peer that did not send them."""
        self._do(self.gossip.stored(entries, sources))

    def broadcast_evidence(self, evidence: Sequence[ForkEvidence], source: Source = "") -> None:
        """Pass fork evidence new here on to every peer but the one it came from."""
        self._do(self.gossip.evidence_found([fork_proof(e) for e in evidence], source))

    def request(self, ids: Sequence[bytes]) -> None:
        self._do(self.gossip.want(ids))

    def send(self, peer: bytes, message: PeerMessage) -> bool:
        """Queue `message` for `peer`; False when there is no link to it."""
        link = self.links.get(peer)
        if link is None:
            return False
        link.enqueue(message)
        return True

    def send_consensus(self, message: Proposal | Vote) -> None:
        self._do(self.gossip.consensus(message))

    def send_checkpoint(self, finalized: FinalizedCheckpoint) -> None:
        self._do(self.gossip.finalized(finalized))

    def request_checkpoints(self, from_height: int, count: int) -> None:
        self._do(self.gossip.request_checkpoints(from_height, count))

    async def _tips_loop(self) -> None:
        while self._running:
            await asyncio.sleep(TIPS_INTERVAL_S)
            self._do(self.gossip.tick(_now_ms()))

    def peer_list(self) -> list[dict[str, str]]:
        return [{"node_key": p.key.hex(), "listen": p.link.peer_listen,
                 "direction": "inbound" if p.inbound else "outbound"} for p in self.links.values()]

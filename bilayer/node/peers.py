"""Peer links: dial the configured peers, accept anyone who completes the handshake, gossip.

Gossip is push plus pull. A node pushes every batch it stores to every peer but the ones
it came from; asks peers for parents it lacks (`WantMsg`); and every few seconds tells its
peers its tips (`TipsMsg`), so a node that was down or partitioned pulls what it missed.
A peer that sends a bad frame or message loses its link; the node carries on.

Inbound slots are open to anyone, so they are kept from squatters. Validators of every set
the node knows are always let in, displacing the least useful stranger if the node is
full; strangers share what is left (`max_inbound` less one slot per known validator), at
most `max_inbound_per_ip` from one address, and a stranger that has brought nothing new
for `STRANGER_IDLE_S` gives its slot to the next stranger who asks. Handshakes in
progress are capped too; when they are, the oldest (an honest one takes milliseconds)
gives way.

Peer exchange: a node tells each new peer, and every `PEERS_INTERVAL_S`, the addresses its
linked peers advertise (`PeersMsg`), and dials up to `max_learned_peers` addresses it
learned this way besides its configured `peers`, so a node that joins with one seed finds
the others. An address is advertised as `external_address` (else the listen address); a
learned address that fails `LEARNED_ATTEMPTS` dials in a row, or that leads to a peer
already linked, is forgotten (it may be learned again). Redials back off exponentially
with jitter, so peers restarted together do not redial in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any

from ..consensus.messages import FinalizedCheckpoint, Proposal, Vote
from ..errors import BilayerError, PeerProtocolError
from ..keys.signing import Signer
from ..ledger.dag import NO_FORKS
from ..ledger.entry import Entry, SignedEntry, WithheldEntry
from ..replica.placing import Source
from .ingest import Ingest, Status
from .messages import (
    MAX_ADDRESSES,
    MAX_IDS,
    CheckpointMsg,
    EntriesMsg,
    EvidenceMsg,
    ForkProof,
    PeerMessage,
    PeersMsg,
    ProposalMsg,
    TipsMsg,
    VoteMsg,
    WantCheckpointsMsg,
    WantMsg,
    WithheldMsg,
    decode_message,
    encode_message,
)
from .metrics import NodeMetrics
from .ratelimit import RateLimiter
from .storage import ForkEvidence
from .transport import MAX_FRAME, SecureLink, handshake

log = logging.getLogger("bilayer.peers")

TIPS_INTERVAL_S = 2.0
OUTBOX_LIMIT = 2000
MAX_CHECKPOINTS_ANSWER = 100
MAX_PENDING_HANDSHAKES = 32
STRANGER_IDLE_S = 30.0
PEERS_INTERVAL_S = 30.0
LEARNED_ATTEMPTS = 5
MAX_BACKOFF_S = 5.0
MAX_WANT_ANSWER = 2000
ENTRIES_PER_MESSAGE = 1000
# Room for msgpack framing and the box's MAC: an EntriesMsg frame stays under MAX_FRAME.
MESSAGE_BYTES = MAX_FRAME - 64 * 1024
ENTRY_OVERHEAD = 64


_NEW = (Status.STORED, Status.ORPHAN)


def entry_batches(items: Sequence[SignedEntry]) -> Iterator[list[SignedEntry]]:
    """Split entries into EntriesMsg-sized lists a peer accepts (count and frame size)."""
    batch: list[SignedEntry] = []
    size = 0
    for signed in items:
        cost = len(signed.header) + len(signed.signature) + len(signed.payload) + ENTRY_OVERHEAD
        if batch and (len(batch) >= ENTRIES_PER_MESSAGE or size + cost > MESSAGE_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(signed)
        size += cost
    if batch:
        yield batch


def split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {address!r} is not HOST:PORT")
    return host, int(port)


def dialable(address: str) -> bool:
    """HOST:PORT with a host one can dial: a name or a specific IP, not 0.0.0.0 or ::."""
    try:
        host, _ = split_host_port(address)
    except ValueError:
        return False
    host = host.strip("[]")
    try:
        return not ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return len(host) <= 253 and all(part and len(part) <= 63 and part.replace("-", "").isalnum()
                                        for part in host.split("."))


def addresses_to_learn(offered: Sequence[str], known: set[str], room: int) -> list[str]:
    """Of the addresses a peer offered, those worth dialling: dialable, new, at most `room`."""
    chosen: list[str] = []
    for address in offered:
        if len(chosen) >= room:
            break
        if address not in known and address not in chosen and dialable(address):
            chosen.append(address)
    return chosen


def backoff_delay(backoff: float) -> float:
    """Half the backoff plus a random half: spread out, never below half."""
    return backoff / 2 + random.uniform(0, backoff / 2)


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
        self.max_inbound = max_inbound
        self.max_inbound_per_ip = max_inbound_per_ip
        self._handshaking: dict[asyncio.StreamWriter, None] = {}  # oldest first
        self.validator_keys: set[bytes] = set()
        self.height: Callable[[], int] = lambda: 0
        self.on_consensus: Callable[[Proposal | Vote], None] = lambda message: None
        self.on_checkpoint: Callable[[FinalizedCheckpoint], None] = lambda finalized: None
        self.checkpoints_from: Callable[[int, int], list[FinalizedCheckpoint]] = lambda start, count: []
        ingest.request = self.request
        ingest.announce_evidence = self.broadcast_evidence

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

    def rejoin(self) -> None:
        self.isolated = False
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

    def _peer_addresses(self, leaving_out: PeerLink | None = None) -> list[str]:
        """What this node's linked peers advertise, for peer exchange."""
        return sorted({p.link.peer_listen for p in self.links.values()
                       if p is not leaving_out and dialable(p.link.peer_listen)})[:MAX_ADDRESSES]

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
        if link.peer_key in self.links or self.isolated:
            link.close()  # one link per peer is enough
            return
        peer = PeerLink(link, inbound, ip)
        self.links[peer.key] = peer
        self.metrics.peers.set(len(self.links))
        log.info("peer %s connected (%s)", peer.key.hex()[:12], link.peer_listen)
        sender = asyncio.get_running_loop().create_task(self._send_loop(peer))
        try:
            peer.enqueue(self._tips())
            peer.enqueue(PeersMsg(self._peer_addresses(leaving_out=peer)))
            while self._running:
                data = await link.recv()
                self._dispatch(peer, decode_message(data))
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

    # --- messages ------------------------------------------------------------------------

    def _dispatch(self, peer: PeerLink, message: PeerMessage) -> None:
        self.metrics.peer_frames.labels(type(message).__name__).inc()
        if isinstance(message, EntriesMsg):
            if not self.limiter.allow(peer.key, time.monotonic(), cost=len(message.items)):
                self.metrics.entries_rejected.labels("rate_limited").inc(len(message.items))
                return
            self.ingest.receive(message.items, peer.source, lambda: setattr(peer, "last_useful", time.monotonic()))
        elif isinstance(message, WithheldMsg):
            if not self.limiter.allow(peer.key, time.monotonic(), cost=len(message.items)):
                self.metrics.entries_rejected.labels("rate_limited").inc(len(message.items))
                return
            for item in message.items:
                with contextlib.suppress(BilayerError):
                    if self.ingest.ingest_withheld(item, peer.source).status in _NEW:
                        peer.last_useful = time.monotonic()
        elif isinstance(message, EvidenceMsg):
            if not self.limiter.allow(peer.key, time.monotonic(), cost=len(message.forks)):
                return
            for proof in message.forks:
                with contextlib.suppress(BilayerError):  # a bad proof spoils nothing else
                    self.ingest.ingest_evidence(SignedEntry(proof.first_header, proof.first_signature, b""),
                                                SignedEntry(proof.second_header, proof.second_signature, b""),
                                                peer.source)
        elif isinstance(message, WantMsg):
            found = self.ingest.storage.get_many(message.ids[:MAX_WANT_ANSWER])
            for batch in entry_batches([stored.signed for stored in found if stored.tombstone is None]):
                peer.enqueue(EntriesMsg(batch))
            withheld = [WithheldEntry(s.signed.header, s.signed.signature, s.tombstone) for s in found
                        if s.tombstone is not None]
            if withheld:
                peer.enqueue(WithheldMsg(withheld))
        elif isinstance(message, TipsMsg):
            unknown = [i for i in message.ids if not self.ingest.dag.holds(i) and i not in self.ingest.orphans]
            if unknown:
                peer.enqueue(WantMsg(unknown))
            if message.forks != self.ingest.fork_digest and self.ingest.fork_digest != NO_FORKS:
                self.broadcast_evidence(self.ingest.storage.recent_fork_evidence(MAX_IDS), peer=peer)
            peer.height = max(0, message.height)
            if peer.height > self.height():
                peer.enqueue(WantCheckpointsMsg(self.height() + 1, MAX_CHECKPOINTS_ANSWER))
        elif isinstance(message, PeersMsg):
            self._learn(message.addresses)
        elif isinstance(message, ProposalMsg | VoteMsg):
            if peer.key in self.validator_keys:  # consensus speaks only through validators' own links
                self.on_consensus(message.proposal if isinstance(message, ProposalMsg) else message.vote)
        elif isinstance(message, CheckpointMsg):
            self.on_checkpoint(message.finalized)
        elif isinstance(message, WantCheckpointsMsg):
            count = max(0, min(message.count, MAX_CHECKPOINTS_ANSWER))
            for finalized in self.checkpoints_from(message.from_height, count):
                peer.enqueue(CheckpointMsg(finalized))

    def broadcast(self, entries: Sequence[Entry], sources: Sequence[Source]) -> None:
        """Push newly stored entries to every peer that did not send them."""
        for peer in self.links.values():
            items = [e.signed for e, source in zip(entries, sources, strict=True)
                     if source != peer.source and e.tombstone is None]
            for batch in entry_batches(items):
                peer.enqueue(EntriesMsg(batch))

    def broadcast_evidence(self, evidence: Sequence[ForkEvidence], source: Source = "",
                           peer: PeerLink | None = None) -> None:
        """Pass fork evidence on to one peer, or to every peer but the one it came from."""
        if not evidence:
            return
        message = EvidenceMsg([ForkProof(e.first.header, e.first.signature, e.second.header, e.second.signature)
                               for e in evidence])
        for link in [peer] if peer is not None else self.links.values():
            if link.source != source:
                link.enqueue(message)

    def _tips(self) -> TipsMsg:
        return TipsMsg(sorted(self.ingest.dag.tips)[:MAX_IDS], self.height(), self.ingest.fork_digest)

    def request(self, ids: Sequence[bytes]) -> None:
        for start in range(0, len(ids), MAX_IDS):
            message = WantMsg(list(ids[start : start + MAX_IDS]))
            for peer in self.links.values():
                peer.enqueue(message)

    def send_consensus(self, message: Proposal | Vote) -> None:
        wrapped = ProposalMsg(message) if isinstance(message, Proposal) else VoteMsg(message)
        for peer in self.links.values():
            if peer.key in self.validator_keys:
                peer.enqueue(wrapped)

    def send_checkpoint(self, finalized: FinalizedCheckpoint) -> None:
        message = CheckpointMsg(finalized)
        for peer in self.links.values():
            if peer.height < finalized.checkpoint.height:
                peer.enqueue(message)

    def request_checkpoints(self, from_height: int, count: int) -> None:
        ahead = [p for p in self.links.values() if p.height >= from_height] or list(self.links.values())
        for peer in ahead[:2]:
            peer.enqueue(WantCheckpointsMsg(from_height, count))

    async def _tips_loop(self) -> None:
        last_exchange = time.monotonic()
        while self._running:
            await asyncio.sleep(TIPS_INTERVAL_S)
            self.ingest.maintain()
            tips = self._tips()
            for peer in self.links.values():
                peer.enqueue(tips)
            if time.monotonic() - last_exchange >= PEERS_INTERVAL_S:
                last_exchange = time.monotonic()
                for peer in self.links.values():
                    peer.enqueue(PeersMsg(self._peer_addresses(leaving_out=peer)))

    def peer_list(self) -> list[dict[str, str]]:
        return [{"node_key": p.key.hex(), "listen": p.link.peer_listen,
                 "direction": "inbound" if p.inbound else "outbound"} for p in self.links.values()]

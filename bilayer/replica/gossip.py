"""The gossip and link protocol of a replica, as a state machine without I/O.

Gossip is push plus pull. A replica pushes every batch it stores to every peer but the ones
it came from; asks peers for parents it lacks (`WantMsg`), after `ORPHAN_FETCH_DELAY_MS` for
the parents of orphans (gossip usually brings them within milliseconds) and only for those
still missing then; and on every tick tells its peers its tips, height and digest of forks
(`TipsMsg`), so a replica that was down or partitioned pulls the entries, checkpoints and
fork evidence it missed. Fork evidence is passed on once, to every peer but its source.
Peers exchange the addresses their peers advertise (`PeersMsg`). A peer that sends a frame
that does not decode to a valid message loses its link; the replica carries on.

Inputs are method calls (`peer_connected`, `peer_gone`, `received`, `stored`,
`evidence_found`, `orphans_missing`, `wake`, `tick`, `want`, `consensus`, `finalized`,
`request_checkpoints`); each returns the actions the host must take, in order: send a
message to a peer, close a peer's link, hand entries, evidence, consensus messages or
checkpoints on, fetch ids, learn addresses, wake the machine later. What the machine reads
of the replica (tips, entries by id, height, checkpoints) comes through `LedgerView`.

The node (`node/peers.py`) turns its encrypted links into these inputs and the actions into
frames; the simulator (`sim/world.py`) drives the same machine over its simulated network.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from .. import codec
from ..consensus.messages import FinalizedCheckpoint, Proposal, Vote
from ..errors import BilayerError
from ..ledger.dag import NO_FORKS
from ..ledger.entry import EntryHeader, SignedEntry, Tombstone, WithheldEntry
from .messages import (
    MAX_ADDRESSES,
    MAX_FRAME,
    MAX_IDS,
    CheckpointMsg,
    ChunkMsg,
    ChunkWantMsg,
    EntriesMsg,
    EvidenceMsg,
    ForkProof,
    PeerMessage,
    PeersMsg,
    ProposalMsg,
    SnapshotMessage,
    SnapshotOfferMsg,
    SnapshotOfferWantMsg,
    TipsMsg,
    VoteMsg,
    WantCheckpointsMsg,
    WantMsg,
    WithheldMsg,
    decode_message,
)
from .placing import Source

PeerId = bytes  # the peer's node key

TIPS_INTERVAL_MS = 2000
PEERS_INTERVAL_MS = 30_000
ORPHAN_FETCH_DELAY_MS = 150
MAX_CHECKPOINTS_ANSWER = 100
MAX_WANT_ANSWER = 2000
ENTRIES_PER_MESSAGE = 1000
# Room for msgpack framing and the box's MAC: an EntriesMsg frame stays under MAX_FRAME.
MESSAGE_BYTES = MAX_FRAME - 64 * 1024
ENTRY_OVERHEAD = 64
MAX_PASSED_ON = 100_000  # fork proofs remembered as passed on (oldest forgotten first)


def peer_source(peer: PeerId) -> Source:
    return "peer:" + peer.hex()


# --- addresses -------------------------------------------------------------------------------


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


# --- what the machine reads of the replica ---------------------------------------------------


class StoredEntry(Protocol):
    """An entry just made durable: its signed form, and a tombstone when it came without payload."""

    @property
    def signed(self) -> SignedEntry: ...

    @property
    def tombstone(self) -> Tombstone | None: ...


class LedgerView(Protocol):
    def tips(self) -> Sequence[bytes]: ...

    def holds(self, entry_id: bytes) -> bool:
        """Placed in the DAG or held as an orphan: nothing to ask for."""
        ...

    def lookup(self, ids: Sequence[bytes]) -> Sequence[SignedEntry | WithheldEntry]: ...

    def fork_digest(self) -> bytes: ...

    def fork_proofs(self, limit: int) -> Sequence[ForkProof]: ...

    def height(self) -> int: ...

    def checkpoints_from(self, start: int, count: int) -> Sequence[FinalizedCheckpoint]: ...


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    peer: PeerId
    message: PeerMessage


@dataclass(frozen=True, slots=True)
class Close:
    """Cut the peer's link: it sent what no honest peer sends."""

    peer: PeerId
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class TakeEntries:
    """Ingest these entries from `peer` (checked and placed by the host's ingestion)."""

    peer: PeerId
    items: tuple[SignedEntry, ...]


@dataclass(frozen=True, slots=True)
class TakeWithheld:
    peer: PeerId
    items: tuple[WithheldEntry, ...]


@dataclass(frozen=True, slots=True)
class TakeEvidence:
    peer: PeerId
    proofs: tuple[ForkProof, ...]


@dataclass(frozen=True, slots=True)
class TakeConsensus:
    """A proposal or vote a validator sent over its own link: for the finality driver."""

    message: Proposal | Vote


@dataclass(frozen=True, slots=True)
class TakeCheckpoint:
    finalized: FinalizedCheckpoint


@dataclass(frozen=True, slots=True)
class Fetch:
    """Ask peers for these ids now: the host marks them as asked for, then calls `want`."""

    ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Learn:
    """Addresses a peer offered: the host dials those it has room for (`addresses_to_learn`)."""

    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Wake:
    """Call `wake` after `delay_ms`."""

    delay_ms: int


@dataclass(frozen=True, slots=True)
class Upkeep:
    """The tick's upkeep of ingestion: expire old orphans, ask again for parents still missing."""


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Snapshot sync traffic from `peer` (offers, chunk requests and chunks): the host serves
    it from its store, or hands answers to the sync waiting for them."""

    peer: PeerId
    message: SnapshotMessage


Action = Send | Close | TakeEntries | TakeWithheld | TakeEvidence | TakeConsensus | TakeCheckpoint | Fetch | Learn \
    | Wake | Upkeep | TakeSnapshot


@dataclass(slots=True)
class Peer:
    key: PeerId
    source: Source
    listen: str  # the address it advertises
    height: int = 0  # the finalized height it last reported


class Gossip:
    """One replica's side of every peer link (see the module doc)."""

    def __init__(self, view: LedgerView, observe: Callable[[PeerMessage], None] = lambda message: None) -> None:
        """`observe` sees each message decoded (the node counts them in its metrics)."""
        self.view = view
        self.observe = observe
        self.peers: dict[PeerId, Peer] = {}
        self.validator_keys: set[bytes] = set()  # consensus speaks only through validators' own links
        self._to_fetch: dict[bytes, int] = {}  # orphans' missing parents -> when to ask for them
        self._passed_on: OrderedDict[tuple[bytes, int], None] = OrderedDict()
        self._last_exchange_ms: int | None = None
        # False while the replica cannot apply checkpoints (joining by snapshot): peers' heights
        # are not answered with requests for checkpoints it would drop
        self.follows_checkpoints = True

    # --- links ---------------------------------------------------------------------------

    def peer_connected(self, peer: PeerId, listen: str) -> list[Action]:
        """A new link: tell the peer what this replica holds, and where its other peers are."""
        self.peers[peer] = Peer(peer, peer_source(peer), listen)
        return [Send(peer, self._tips()), Send(peer, PeersMsg(self._addresses(leaving_out=peer)))]

    def peer_gone(self, peer: PeerId) -> None:
        self.peers.pop(peer, None)

    def received(self, peer: PeerId, data: bytes) -> list[Action]:
        """A frame from `peer`. One that does not decode to a valid message costs it its link."""
        try:
            message = decode_message(data)
        except BilayerError as exc:
            self.peers.pop(peer, None)
            return [Close(peer, exc.code, str(exc))]
        self.observe(message)
        return self.handle(peer, message)

    def handle(self, peer: PeerId, message: PeerMessage) -> list[Action]:
        """A decoded message from `peer`."""
        known = self.peers.get(peer)
        if known is None:
            known = self.peers[peer] = Peer(peer, peer_source(peer), "")
        if isinstance(message, EntriesMsg):
            return [TakeEntries(peer, tuple(message.items))] if message.items else []
        if isinstance(message, WithheldMsg):
            return [TakeWithheld(peer, tuple(message.items))] if message.items else []
        if isinstance(message, EvidenceMsg):
            return [TakeEvidence(peer, tuple(message.forks))] if message.forks else []
        if isinstance(message, WantMsg):
            return self._answer_want(peer, message.ids)
        if isinstance(message, TipsMsg):
            return self._compare_tips(known, message)
        if isinstance(message, PeersMsg):
            return [Learn(tuple(message.addresses))] if message.addresses else []
        if isinstance(message, ProposalMsg | VoteMsg):
            if peer not in self.validator_keys:
                return []
            return [TakeConsensus(message.proposal if isinstance(message, ProposalMsg) else message.vote)]
        if isinstance(message, CheckpointMsg):
            return [TakeCheckpoint(message.finalized)]
        if isinstance(message, SnapshotOfferWantMsg | SnapshotOfferMsg | ChunkWantMsg | ChunkMsg):
            return [TakeSnapshot(peer, message)]
        count = max(0, min(message.count, MAX_CHECKPOINTS_ANSWER))
        return [Send(peer, CheckpointMsg(f)) for f in self.view.checkpoints_from(message.from_height, count)]

    def _answer_want(self, peer: PeerId, ids: Sequence[bytes]) -> list[Action]:
        found = self.view.lookup(ids[:MAX_WANT_ANSWER])
        signed = [item for item in found if isinstance(item, SignedEntry)]
        actions: list[Action] = [Send(peer, EntriesMsg(batch)) for batch in entry_batches(signed)]
        withheld = [item for item in found if isinstance(item, WithheldEntry)]
        if withheld:
            actions.append(Send(peer, WithheldMsg(withheld)))
        return actions

    def _compare_tips(self, peer: Peer, message: TipsMsg) -> list[Action]:
        """Pull what the peer holds and this replica lacks: entries, checkpoints, fork evidence."""
        actions: list[Action] = []
        unknown = [i for i in message.ids if not self.view.holds(i)]
        if unknown:
            actions.append(Send(peer.key, WantMsg(unknown)))
        digest = self.view.fork_digest()
        if message.forks != digest and digest != NO_FORKS:
            proofs = self.view.fork_proofs(MAX_IDS)
            if proofs:
                actions.append(Send(peer.key, EvidenceMsg(list(proofs))))
        peer.height = max(0, message.height)
        height = self.view.height()
        if peer.height > height and self.follows_checkpoints:
            actions.append(Send(peer.key, WantCheckpointsMsg(height + 1, MAX_CHECKPOINTS_ANSWER)))
        return actions

    # --- what the replica did ---------------------------------------------------------------

    def stored(self, entries: Sequence[StoredEntry], sources: Sequence[Source]) -> list[Action]:
        """Entries just made durable: push them to every peer that did not send them (entries
        without their payload are not pushed: a peer asks for those)."""
        actions: list[Action] = []
        for peer in self.peers.values():
            items = [e.signed for e, source in zip(entries, sources, strict=True)
                     if source != peer.source and e.tombstone is None]
            actions.extend(Send(peer.key, EntriesMsg(batch)) for batch in entry_batches(items))
        return actions

    def evidence_found(self, proofs: Sequence[ForkProof], source: Source = "") -> list[Action]:
        """Fork evidence new to this replica: pass each proof on once, to every peer but its source."""
        fresh = [p for p in proofs if self._first_time(p)]
        if not fresh:
            return []
        message = EvidenceMsg(fresh)
        return [Send(peer.key, message) for peer in self.peers.values() if peer.source != source]

    def _first_time(self, proof: ForkProof) -> bool:
        try:
            header = codec.decode(proof.first_header, EntryHeader)
        except BilayerError:
            return False
        key = (header.author, header.seq)
        if key in self._passed_on:
            return False
        self._passed_on[key] = None
        if len(self._passed_on) > MAX_PASSED_ON:
            self._passed_on.popitem(last=False)
        return True

    def orphans_missing(self, ids: Sequence[bytes], now_ms: int) -> list[Action]:
        """Parents an orphan lacks: asked for after `ORPHAN_FETCH_DELAY_MS`, if still missing then."""
        idle = not self._to_fetch
        due = now_ms + ORPHAN_FETCH_DELAY_MS
        for entry_id in ids:
            self._to_fetch.setdefault(entry_id, due)
        return [Wake(ORPHAN_FETCH_DELAY_MS)] if idle and self._to_fetch else []

    def wake(self, now_ms: int) -> list[Action]:
        due = sorted(i for i, at in self._to_fetch.items() if at <= now_ms)
        for entry_id in due:
            del self._to_fetch[entry_id]
        actions: list[Action] = []
        missing = tuple(i for i in due if not self.view.holds(i))
        if missing:
            actions.append(Fetch(missing))
        if self._to_fetch:
            actions.append(Wake(max(1, min(self._to_fetch.values()) - now_ms)))
        return actions

    def want(self, ids: Sequence[bytes]) -> list[Action]:
        """Ask every peer for these ids."""
        actions: list[Action] = []
        for start in range(0, len(ids), MAX_IDS):
            message = WantMsg(list(ids[start:start + MAX_IDS]))
            actions.extend(Send(peer, message) for peer in self.peers)
        return actions

    def tick(self, now_ms: int) -> list[Action]:
        """Anti-entropy, every `TIPS_INTERVAL_MS`: the upkeep, tips to every peer, and every
        `PEERS_INTERVAL_MS` the addresses of the other peers."""
        actions: list[Action] = [Upkeep()]
        tips = self._tips()
        actions.extend(Send(peer, tips) for peer in self.peers)
        if self._last_exchange_ms is None:
            self._last_exchange_ms = now_ms
        elif now_ms - self._last_exchange_ms >= PEERS_INTERVAL_MS:
            self._last_exchange_ms = now_ms
            actions.extend(Send(peer, PeersMsg(self._addresses(leaving_out=peer))) for peer in self.peers)
        return actions

    # --- layer 2 ---------------------------------------------------------------------------

    def consensus(self, message: Proposal | Vote) -> list[Action]:
        """A proposal or vote this replica signed: to the validators' links only."""
        wrapped = ProposalMsg(message) if isinstance(message, Proposal) else VoteMsg(message)
        return [Send(peer, wrapped) for peer in self.peers if peer in self.validator_keys]

    def finalized(self, finalized: FinalizedCheckpoint) -> list[Action]:
        """A checkpoint this replica finalized: to every peer not known to hold it."""
        message = CheckpointMsg(finalized)
        return [Send(peer.key, message) for peer in self.peers.values()
                if peer.height < finalized.checkpoint.height]

    def request_checkpoints(self, from_height: int, count: int) -> list[Action]:
        """Catch-up: ask two peers that reported that height (any two if none has)."""
        ahead = [p for p in self.peers.values() if p.height >= from_height] or list(self.peers.values())
        return [Send(peer.key, WantCheckpointsMsg(from_height, count)) for peer in ahead[:2]]

    # --- reading ---------------------------------------------------------------------------

    def _tips(self) -> TipsMsg:
        return TipsMsg(sorted(self.view.tips())[:MAX_IDS], self.view.height(), self.view.fork_digest())

    def _addresses(self, leaving_out: PeerId) -> list[str]:
        """What this replica's other peers advertise, for peer exchange."""
        return sorted({p.listen for p in self.peers.values()
                       if p.key != leaving_out and dialable(p.listen)})[:MAX_ADDRESSES]

"""Messages between nodes after the handshake, as a tagged msgpack union.

Layer 1 gossip (entries, wants, tips) and layer 2 (proposals, votes, finalized
checkpoints and requests for them) share one link and one union. Pure structs: the node puts
them in frames on its links, the simulator on its simulated network (`replica/gossip.py`).
"""

from __future__ import annotations

import msgspec

from .. import codec
from ..consensus.messages import FinalizedCheckpoint, Proposal, Vote
from ..errors import BadEncoding
from ..ledger.entry import SignedEntry, WithheldEntry

MAX_ITEMS = 5000
MAX_IDS = 1024
MAX_FRAME = 8 * 1024 * 1024  # the largest frame a link reads: a bigger one closes it


class EntriesMsg(msgspec.Struct, frozen=True, tag="entries", forbid_unknown_fields=True):
    """Entries pushed to a peer (new ones) or sent in answer to `WantMsg`."""

    items: list[SignedEntry]


class WithheldMsg(msgspec.Struct, frozen=True, tag="withheld", forbid_unknown_fields=True):
    """Entries asked for whose payloads this node deleted by a decision: headers and tombstones."""

    items: list[WithheldEntry]


class ForkProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Two entries one author signed at one sequence number: the signed headers prove it."""

    first_header: bytes
    first_signature: bytes
    second_header: bytes
    second_signature: bytes


class EvidenceMsg(msgspec.Struct, frozen=True, tag="evidence", forbid_unknown_fields=True):
    """Fork evidence a node found, passed on so that every node holds it, including nodes
    that never see the refused half as an entry."""

    forks: list[ForkProof]


class WantMsg(msgspec.Struct, frozen=True, tag="want", forbid_unknown_fields=True):
    """Ask a peer for entries by id (missing parents, unknown tips)."""

    ids: list[bytes]


class TipsMsg(msgspec.Struct, frozen=True, tag="tips", forbid_unknown_fields=True):
    """The sender's DAG tips, finalized height and the digest of the forks it holds as
    evidence: anti-entropy, so a node that was away learns which entries, checkpoints and
    fork evidence it missed."""

    ids: list[bytes]
    height: int = 0
    forks: bytes = b""


class PeersMsg(msgspec.Struct, frozen=True, tag="peers", forbid_unknown_fields=True):
    """Addresses (HOST:PORT) where the sender's peers say they can be reached: a node that
    joined with one seed learns the rest of the network from it."""

    addresses: list[str]


class ProposalMsg(msgspec.Struct, frozen=True, tag="proposal", forbid_unknown_fields=True):
    proposal: Proposal


class VoteMsg(msgspec.Struct, frozen=True, tag="vote", forbid_unknown_fields=True):
    vote: Vote


class CheckpointMsg(msgspec.Struct, frozen=True, tag="checkpoint", forbid_unknown_fields=True):
    """A finalized checkpoint with its certificate; anyone may relay it, everyone verifies it."""

    finalized: FinalizedCheckpoint


class WantCheckpointsMsg(msgspec.Struct, frozen=True, tag="want_checkpoints", forbid_unknown_fields=True):
    """Ask for finalized checkpoints `from_height` .. `from_height + count - 1`."""

    from_height: int
    count: int


class SnapshotOfferWantMsg(msgspec.Struct, frozen=True, tag="snapshot_offer_want", forbid_unknown_fields=True):
    """Ask a peer which state it can serve as a snapshot (a node joining by snapshot)."""


class SnapshotOfferMsg(msgspec.Struct, frozen=True, tag="snapshot_offer", forbid_unknown_fields=True):
    """The state a peer serves: the tree after `previous`, whose root `finalized` (the next
    checkpoint) signs, and the proof of the validator set that certified it (an encoded
    `ValidatorChain`, checked from the genesis). `code` instead, when it has none to offer."""

    finalized: FinalizedCheckpoint | None = None
    previous: FinalizedCheckpoint | None = None
    validators: bytes = b""
    code: str = ""


class ChunkWantMsg(msgspec.Struct, frozen=True, tag="chunk_want", forbid_unknown_fields=True):
    """Ask for the chunk `request` (an encoded `ChunkRequest`) of the tree at `version`; the
    answer carries the same `nonce`."""

    nonce: int
    version: int
    request: bytes


class ChunkMsg(msgspec.Struct, frozen=True, tag="chunk", forbid_unknown_fields=True):
    """The chunk asked for (an encoded `SnapshotChunk`), or the code of the refusal (the
    version pruned, the asker over its rate)."""

    nonce: int
    version: int
    chunk: bytes = b""
    code: str = ""


SnapshotMessage = SnapshotOfferWantMsg | SnapshotOfferMsg | ChunkWantMsg | ChunkMsg

PeerMessage = (EntriesMsg | WithheldMsg | WantMsg | TipsMsg | ProposalMsg | VoteMsg | CheckpointMsg
               | WantCheckpointsMsg | EvidenceMsg | PeersMsg | SnapshotOfferWantMsg | SnapshotOfferMsg
               | ChunkWantMsg | ChunkMsg)

MAX_ADDRESSES = 64
MAX_ADDRESS_CHARS = 261  # a DNS name (253) and a port
MAX_CHUNK_REQUEST = 64 * 1024  # a request names at most a few hundred subtrees
MAX_CODE_CHARS = 64
MAX_NUMBER = 2**63 - 1

_decoder: msgspec.msgpack.Decoder[PeerMessage] = msgspec.msgpack.Decoder(PeerMessage)


def decode_message(data: bytes) -> PeerMessage:
    try:
        message = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError, OverflowError) as exc:
        raise BadEncoding(f"bad peer message: {exc}") from None
    if isinstance(message, EntriesMsg | WithheldMsg) and len(message.items) > MAX_ITEMS:
        raise BadEncoding(f"more than {MAX_ITEMS} entries in one message")
    if isinstance(message, EvidenceMsg) and len(message.forks) > MAX_IDS:
        raise BadEncoding(f"more than {MAX_IDS} fork proofs in one message")
    if isinstance(message, WantMsg | TipsMsg) and len(message.ids) > MAX_IDS:
        raise BadEncoding(f"more than {MAX_IDS} ids in one message")
    if isinstance(message, PeersMsg) and (len(message.addresses) > MAX_ADDRESSES
                                          or any(len(a) > MAX_ADDRESS_CHARS for a in message.addresses)):
        raise BadEncoding(f"more than {MAX_ADDRESSES} addresses, or one longer than {MAX_ADDRESS_CHARS} characters")
    if isinstance(message, ChunkWantMsg | ChunkMsg):
        if not (0 <= message.nonce <= MAX_NUMBER and 0 <= message.version <= MAX_NUMBER):
            raise BadEncoding("a chunk's nonce and version are numbers from 0 to 2^63-1")
        if isinstance(message, ChunkWantMsg) and len(message.request) > MAX_CHUNK_REQUEST:
            raise BadEncoding(f"a chunk request longer than {MAX_CHUNK_REQUEST} bytes")
        if isinstance(message, ChunkMsg) and (len(message.code) > MAX_CODE_CHARS
                                              or bool(message.code) == bool(message.chunk)):
            raise BadEncoding(f"a chunk answer holds a chunk or a code of at most {MAX_CODE_CHARS} characters")
    if isinstance(message, SnapshotOfferMsg):
        if len(message.code) > MAX_CODE_CHARS:
            raise BadEncoding(f"a code longer than {MAX_CODE_CHARS} characters")
        if not message.code and (message.finalized is None or message.previous is None):
            raise BadEncoding("a snapshot offer names its checkpoint and the one before, or a code")
    return message


def encode_message(message: PeerMessage) -> bytes:
    return codec.encode(message)

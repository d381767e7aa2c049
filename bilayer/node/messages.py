"""Messages between nodes after the handshake, as a tagged msgpack union.

Later layers add their own message types here (consensus proposals, votes, ...).
"""

from __future__ import annotations

import msgspec

from .. import codec
from ..errors import BadEncoding
from ..ledger.entry import SignedEntry

MAX_ITEMS = 5000
MAX_IDS = 1024


class EntriesMsg(msgspec.Struct, frozen=True, tag="entries", forbid_unknown_fields=True):
    """Entries pushed to a peer (new ones) or sent in answer to `WantMsg`."""

    items: list[SignedEntry]


class WantMsg(msgspec.Struct, frozen=True, tag="want", forbid_unknown_fields=True):
    """Ask a peer for entries by id (missing parents, unknown tips)."""

    ids: list[bytes]


class TipsMsg(msgspec.Struct, frozen=True, tag="tips", forbid_unknown_fields=True):
    """The sender's DAG tips: anti-entropy, so a node that was away learns what it missed."""

    ids: list[bytes]


PeerMessage = EntriesMsg | WantMsg | TipsMsg

_decoder: msgspec.msgpack.Decoder[PeerMessage] = msgspec.msgpack.Decoder(PeerMessage)


def decode_message(data: bytes) -> PeerMessage:
    try:
        message = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError, OverflowError) as exc:
        raise BadEncoding(f"bad peer message: {exc}") from None
    if isinstance(message, EntriesMsg) and len(message.items) > MAX_ITEMS:
        raise BadEncoding(f"more than {MAX_ITEMS} entries in one message")
    if isinstance(message, WantMsg | TipsMsg) and len(message.ids) > MAX_IDS:
        raise BadEncoding(f"more than {MAX_IDS} ids in one message")
    return message


def encode_message(message: PeerMessage) -> bytes:
    return codec.encode(message)

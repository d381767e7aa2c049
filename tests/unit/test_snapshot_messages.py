"""The snapshot sync messages of the peer link: their limits, coded refusals, and the gossip
machine handing them to the host."""

from __future__ import annotations

import msgspec
import pytest

from bilayer import codec
from bilayer.consensus.messages import Checkpoint
from bilayer.errors import BadEncoding
from bilayer.replica.gossip import Close, Gossip, Send, TakeSnapshot
from bilayer.replica.messages import (
    MAX_CHUNK_REQUEST,
    MAX_CODE_CHARS,
    ChunkMsg,
    ChunkWantMsg,
    SnapshotOfferMsg,
    SnapshotOfferWantMsg,
    TipsMsg,
    WantCheckpointsMsg,
    decode_message,
    encode_message,
)
from tests.support.chain import GENESIS, VALIDATORS, finalize

PEER = b"\x07" * 32


class View:
    """The least ledger the gossip machine reads: nothing held, height 0."""

    def tips(self) -> list[bytes]:
        return []

    def holds(self, entry_id: bytes) -> bool:
        return False

    def lookup(self, ids: object) -> list[object]:
        return []

    def fork_digest(self) -> bytes:
        return b""

    def fork_proofs(self, limit: int) -> list[object]:
        return []

    def height(self) -> int:
        return 0

    def checkpoints_from(self, start: int, count: int) -> list[object]:
        return []


def test_each_snapshot_message_goes_through_the_wire_and_to_the_host() -> None:
    finalized = finalize(Checkpoint(GENESIS.chain_id, 1, GENESIS.root, VALIDATORS[0].public_key, (), b"\1" * 32,
                                    b"\2" * 32, GENESIS.genesis_time_ms + 1000))
    messages = [SnapshotOfferWantMsg(), SnapshotOfferMsg(finalized, finalized, b"chain"),
                SnapshotOfferMsg(code="state_version_pruned"), ChunkWantMsg(1, 5, b"request"),
                ChunkMsg(1, 5, chunk=b"chunk"), ChunkMsg(2, 5, code="rate_limited")]
    gossip = Gossip(View())  # type: ignore[arg-type]
    for message in messages:
        assert decode_message(encode_message(message)) == message
        assert gossip.received(PEER, encode_message(message)) == [TakeSnapshot(PEER, message)]


def raw(tag: str, **fields: object) -> bytes:
    return codec.encode({"type": tag, **fields})


@pytest.mark.parametrize("data", [
    raw("chunk_want", nonce=1, version=2, request=b"x" * (MAX_CHUNK_REQUEST + 1)),
    raw("chunk_want", nonce=-1, version=2, request=b"x"),
    raw("chunk_want", nonce=1, version=-2, request=b"x"),
    raw("chunk_want", nonce=1, version=2),
    raw("chunk", nonce=1, version=2),  # neither a chunk nor a code
    raw("chunk", nonce=1, version=2, chunk=b"c", code="rate_limited"),  # both
    raw("chunk", nonce=1, version=2, code="x" * (MAX_CODE_CHARS + 1)),
    raw("snapshot_offer"),  # no checkpoint and no code
    raw("snapshot_offer", code="y" * (MAX_CODE_CHARS + 1)),
    raw("snapshot_offer_want", extra=1),
    raw("chunk", nonce="one", version=2, chunk=b"c"),
])
def test_bad_snapshot_messages_are_refused_with_a_code_and_cost_the_link(data: bytes) -> None:
    with pytest.raises(BadEncoding) as refused:
        decode_message(data)
    assert refused.value.code == "bad_encoding"
    actions = Gossip(View()).received(PEER, data)  # type: ignore[arg-type]
    assert len(actions) == 1 and isinstance(actions[0], Close) and actions[0].code == "bad_encoding"


def test_the_tag_names_the_message() -> None:
    assert msgspec.msgpack.decode(encode_message(ChunkWantMsg(3, 4, b"r")))["type"] == "chunk_want"


def test_a_replica_that_cannot_apply_checkpoints_does_not_ask_for_them() -> None:
    gossip = Gossip(View())  # type: ignore[arg-type]
    tips = encode_message(TipsMsg([], height=7))
    assert any(isinstance(a, Send) and isinstance(a.message, WantCheckpointsMsg) for a in gossip.received(PEER, tips))
    gossip.follows_checkpoints = False
    assert not any(isinstance(a, Send) and isinstance(a.message, WantCheckpointsMsg)
                   for a in gossip.received(PEER, tips))

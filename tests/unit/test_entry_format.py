"""The entry format is frozen by committed vectors: same key and inputs -> same bytes and id."""

from __future__ import annotations

import json

import pytest

from bilayer import codec
from bilayer.errors import BadEncoding
from bilayer.keys.address import public_key_from_address
from bilayer.keys.signing import Signer, verify
from bilayer.ledger.entry import EntryHeader, SignedEntry, build_entry, entry_id, signing_message
from bilayer.ledger.operations import Data, Operation, Transfer, decode_operation
from bilayer.ledger.pow import has_work
from tests.support.paths import VECTORS

VECTORS = json.loads((VECTORS / "entry_v1.json").read_text())["vectors"]


def _op(view: dict[str, object]) -> Operation:
    if view["kind"] == "transfer":
        return Transfer(asset=str(view["asset"]), amount=int(view["amount"]),  # type: ignore[call-overload]
                        to=public_key_from_address(str(view["to"])))
    return Data(media_type=str(view["media_type"]))


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_reproduces_bytes_and_id(vector: dict) -> None:
    inputs = vector["inputs"]
    signer = Signer(bytes.fromhex(inputs["seed"]))
    id_, signed = build_entry(
        signer,
        chain_id=inputs["chain_id"],
        seq=inputs["seq"],
        parents=[bytes.fromhex(p) for p in inputs["parents"]],
        op=_op(inputs["op"]),
        payload=bytes.fromhex(inputs["payload"]),
        time_ms=inputs["time_ms"],
        pow_bits=inputs["pow_bits"],
    )
    assert signer.address == vector["author_address"]
    assert signed.header.hex() == vector["header"]
    assert id_.hex() == vector["id"]
    assert signed.signature.hex() == vector["signature"]
    assert codec.encode(signed).hex() == vector["signed_entry"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_decodes_and_verifies(vector: dict) -> None:
    signed = codec.decode_canonical(bytes.fromhex(vector["signed_entry"]), SignedEntry)
    header = codec.decode_canonical(signed.header, EntryHeader)
    assert entry_id(signed.header).hex() == vector["id"]
    assert header.seq == vector["inputs"]["seq"]
    assert header.chain == vector["inputs"]["chain_id"]
    assert decode_operation(header.kind, header.body).view() == vector["inputs"]["op"]
    assert codec.sha256(signed.payload) == header.payload_hash
    assert has_work(bytes.fromhex(vector["id"]), vector["inputs"]["pow_bits"])
    assert verify(header.author, signing_message(bytes.fromhex(vector["id"])), signed.signature)


def test_id_is_sha256_of_header_bytes() -> None:
    vector = VECTORS[0]
    assert codec.sha256(bytes.fromhex(vector["header"])).hex() == vector["id"]


def test_round_trip_of_header_and_signed_entry() -> None:
    header = EntryHeader(1, "c", bytes(32), 7, (bytes(32), b"\x01" * 32), 5, "data", b"\x81", bytes(32), 0, bytes(8))
    assert codec.decode_canonical(codec.encode(header), EntryHeader) == header
    signed = SignedEntry(codec.encode(header), b"s" * 64, b"payload")
    assert codec.decode_canonical(codec.encode(signed), SignedEntry) == signed


def test_non_canonical_encoding_is_refused() -> None:
    import msgspec

    header = EntryHeader(1, "c", bytes(32), 7, (bytes(32),), 5, "data", b"\x81", bytes(32), 0, bytes(8))
    reordered = dict(reversed(list(msgspec.msgpack.decode(codec.encode(header)).items())))
    with pytest.raises(BadEncoding):
        codec.decode_canonical(msgspec.msgpack.encode(reordered), EntryHeader)
    # seq 7 written as a 64-bit integer instead of a positive fixint
    canonical = codec.encode(header)
    longer = canonical.replace(b"\xa3seq\x07", b"\xa3seq\xcf" + (7).to_bytes(8, "big"))
    assert longer != canonical
    with pytest.raises(BadEncoding):
        codec.decode_canonical(longer, EntryHeader)

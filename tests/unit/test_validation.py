"""Each ingress rule refuses with its own stable code."""

from __future__ import annotations

import time

import msgspec
import pytest

from bilayer import codec
from bilayer.errors import (
    BadEncoding,
    BadSignature,
    DuplicateParents,
    EntryInvalid,
    EntryTooLarge,
    InsufficientWork,
    InvalidOperation,
    ParentCountOutOfRange,
    PayloadHashMismatch,
    PayloadTooLarge,
    TimestampInFuture,
    UnknownOperation,
    UnsupportedVersion,
    WrongChain,
)
from bilayer.genesis import Genesis
from bilayer.ledger.entry import EntryHeader, SignedEntry, entry_id, signing_message
from bilayer.ledger.operations import Data, Transfer
from bilayer.ledger.pow import NONCE_SIZE, find_nonce
from bilayer.ledger.validation import check_entry, decode_signed_entry
from tests.support.builders import make_entry, seeded_signer, transfer_to

ALICE = seeded_signer(1)
BOB = seeded_signer(2)


def check(signed: SignedEntry, genesis: Genesis, now_ms: int | None = None) -> object:
    return check_entry(signed, chain_id=genesis.chain_id, params=genesis.params,
                       now_ms=now_ms if now_ms is not None else int(time.time() * 1000))


def resign(header: EntryHeader, genesis: Genesis, payload: bytes = b"", signer=ALICE) -> SignedEntry:  # type: ignore[no-untyped-def]
    """Re-encode a modified header, re-stamp and re-sign it, so only the intended rule is broken."""
    unstamped = codec.encode(msgspec.structs.replace(header, nonce=bytes(NONCE_SIZE)))[:-NONCE_SIZE]
    header_bytes = unstamped + find_nonce(unstamped, genesis.params.pow_bits)
    return SignedEntry(header_bytes, signer.sign(signing_message(entry_id(header_bytes))), payload)


def header_of(signed: SignedEntry) -> EntryHeader:
    return codec.decode(signed.header, EntryHeader)


def test_valid_entry_passes(genesis: Genesis) -> None:
    id_, signed = make_entry(ALICE, genesis, op=transfer_to(BOB), payload=b"memo")
    entry = check(signed, genesis)
    assert entry.id == id_  # type: ignore[attr-defined]


def test_bad_encoding(genesis: Genesis) -> None:
    _, signed = make_entry(ALICE, genesis)
    with pytest.raises(BadEncoding):
        check(SignedEntry(signed.header[:-3], signed.signature, signed.payload), genesis)
    with pytest.raises(BadEncoding):
        decode_signed_entry(b"\x93\x01\x02")


def test_wrong_chain(genesis: Genesis) -> None:
    _, signed = make_entry(ALICE, genesis, chain_id="other-chain")
    with pytest.raises(WrongChain) as info:
        check(signed, genesis)
    assert info.value.code == "wrong_chain"


def test_bad_signature(genesis: Genesis) -> None:
    _, signed = make_entry(ALICE, genesis)
    forged = SignedEntry(signed.header, BOB.sign(signing_message(entry_id(signed.header))), signed.payload)
    with pytest.raises(BadSignature):
        check(forged, genesis)
    flipped = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    with pytest.raises(BadSignature):
        check(SignedEntry(signed.header, flipped, signed.payload), genesis)
    with pytest.raises(BadSignature):
        check(SignedEntry(signed.header, signed.signature[:10], signed.payload), genesis)


def test_oversized_header(genesis: Genesis) -> None:
    parents = [bytes([i]) * 32 for i in range(genesis.params.max_parents)]
    _, signed = make_entry(ALICE, genesis, parents=parents)
    big = SignedEntry(signed.header + b"\x00" * genesis.params.max_header_bytes, signed.signature, signed.payload)
    with pytest.raises(EntryTooLarge):
        check(big, genesis)


def test_oversized_payloads(genesis: Genesis) -> None:
    _, signed = make_entry(ALICE, genesis, payload=b"x" * (genesis.params.max_data_bytes + 1))
    with pytest.raises(PayloadTooLarge):
        check(signed, genesis)
    _, memo = make_entry(ALICE, genesis, op=transfer_to(BOB), payload=b"m" * (genesis.params.max_memo_bytes + 1))
    with pytest.raises(PayloadTooLarge):
        check(memo, genesis)


@pytest.mark.parametrize("count", [0, 9])
def test_parent_count_out_of_range(genesis: Genesis, count: int) -> None:
    _, signed = make_entry(ALICE, genesis, parents=[bytes([i + 1]) * 32 for i in range(count)])
    with pytest.raises(ParentCountOutOfRange):
        check(signed, genesis)


def test_duplicate_parents(genesis: Genesis) -> None:
    _, signed = make_entry(ALICE, genesis, parents=[genesis.root, genesis.root])
    with pytest.raises(DuplicateParents):
        check(signed, genesis)


def test_payload_hash_mismatch(genesis: Genesis) -> None:
    _, signed = make_entry(ALICE, genesis, payload=b"original")
    with pytest.raises(PayloadHashMismatch):
        check(SignedEntry(signed.header, signed.signature, b"tampered"), genesis)
    with pytest.raises(PayloadHashMismatch):
        check(SignedEntry(signed.header, signed.signature, b"original+"), genesis)


def test_timestamp_too_far_in_future(genesis: Genesis) -> None:
    now = 1_800_000_000_000
    _, signed = make_entry(ALICE, genesis, time_ms=now + genesis.params.max_future_ms + 1)
    with pytest.raises(TimestampInFuture):
        check(signed, genesis, now_ms=now)
    _, ok = make_entry(ALICE, genesis, time_ms=now + genesis.params.max_future_ms)
    check(ok, genesis, now_ms=now)


def test_insufficient_work(genesis: Genesis) -> None:
    for nonce_start in range(64):  # find a stamp that meets 0 bits but not the chain's 4
        id_, signed = make_entry(ALICE, genesis, pow_bits=0, time_ms=1_000 + nonce_start)
        if id_[0] >> 4 != 0:
            break
    with pytest.raises(InsufficientWork):
        check(signed, genesis)


def test_unknown_operation_and_invalid_body(genesis: Genesis) -> None:
    _, signed = make_entry(ALICE, genesis)
    header = header_of(signed)
    with pytest.raises(UnknownOperation):
        check(resign(msgspec.structs.replace(header, kind="mint"), genesis), genesis)
    with pytest.raises(InvalidOperation):
        check(resign(msgspec.structs.replace(header, body=b"\xc1"), genesis), genesis)
    bad_transfer = codec.encode(Transfer(asset="BLY", amount=0, to=BOB.public_key))
    with pytest.raises(InvalidOperation):
        check(resign(msgspec.structs.replace(header, kind="transfer", body=bad_transfer), genesis), genesis)
    bad_media = codec.encode(Data(media_type="not a media type"))
    with pytest.raises(InvalidOperation):
        check(resign(msgspec.structs.replace(header, body=bad_media), genesis), genesis)


def test_unsupported_version(genesis: Genesis) -> None:
    _, signed = make_entry(ALICE, genesis)
    with pytest.raises(UnsupportedVersion):
        check(resign(msgspec.structs.replace(header_of(signed), version=2), genesis), genesis)


def test_every_refusal_has_a_distinct_stable_code() -> None:
    classes = [BadEncoding, WrongChain, BadSignature, EntryTooLarge, PayloadTooLarge, ParentCountOutOfRange,
               DuplicateParents, PayloadHashMismatch, TimestampInFuture, InsufficientWork, UnknownOperation,
               InvalidOperation, UnsupportedVersion]
    codes = [c.code for c in classes]
    assert len(set(codes)) == len(codes)
    assert all(issubclass(c, EntryInvalid) for c in classes)

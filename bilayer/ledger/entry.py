"""Entries: the signed, self-certifying records of layer 1.

An entry travels as a `SignedEntry`: the canonical header bytes, the author's signature,
and the payload beside them. The entry id is SHA-256 of the header bytes; the header
commits to the payload only through `payload_hash`, so a payload can later be deleted
(redacted) while the id, the DAG and every root built on it stay verifiable.

The author signs `ENTRY_DOMAIN || id` with Ed25519. The domain prefix keeps an entry
signature from ever being valid as any other kind of bilayer signature.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from .. import codec
from ..keys.signing import Signer
from .operations import Operation, encode_operation
from .pow import NONCE_SIZE, find_nonce

ENTRY_VERSION = 1
ENTRY_DOMAIN = b"bilayer/entry/v1"


class EntryHeader(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the id commits to. Field order is part of the format: never reorder."""

    version: int
    chain: str
    author: bytes
    seq: int
    parents: tuple[bytes, ...]
    time_ms: int
    kind: str
    body: bytes
    payload_hash: bytes
    payload_size: int
    nonce: bytes


class SignedEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The unit of transport: in msgpack between nodes, in JSON (base64 bytes) over HTTP."""

    header: bytes
    signature: bytes
    payload: bytes


class Tombstone(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a node serves in place of a payload it deleted: the decision that removed it
    (`proposal:N` for a redaction or for the content rule that blocked the entry), the
    reason code, and the checkpoint time and height at which it took effect."""

    decision: str
    reason_code: str
    time_ms: int
    height: int


class WithheldEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An entry whose payload is gone, as nodes pass it on: the DAG and every root stay
    verifiable from the header, which commits to the payload only by its hash."""

    header: bytes
    signature: bytes
    tombstone: Tombstone


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry whose encoding, limits, work and signature have been checked. `tombstone`
    is set when it arrived without its payload (deleted by a decision)."""

    id: bytes
    header: EntryHeader
    signed: SignedEntry
    op: Operation
    tombstone: Tombstone | None = None

    @property
    def author(self) -> bytes:
        return self.header.author

    @property
    def seq(self) -> int:
        return self.header.seq

    @property
    def parents(self) -> tuple[bytes, ...]:
        return self.header.parents


def entry_id(header_bytes: bytes) -> bytes:
    return codec.sha256(header_bytes)


def signing_message(entry_id_: bytes) -> bytes:
    return ENTRY_DOMAIN + entry_id_


def build_entry(
    signer: Signer,
    *,
    chain_id: str,
    seq: int,
    parents: list[bytes] | tuple[bytes, ...],
    op: Operation,
    payload: bytes = b"",
    time_ms: int,
    pow_bits: int,
    nonce_start: int = 0,
) -> tuple[bytes, SignedEntry]:
    """Make, stamp and sign an entry; returns (id, signed entry)."""
    header_bytes = stamped_header(author=signer.public_key, chain_id=chain_id, seq=seq, parents=parents, op=op,
                                  payload=payload, time_ms=time_ms, pow_bits=pow_bits, nonce_start=nonce_start)
    id_ = entry_id(header_bytes)
    return id_, SignedEntry(header=header_bytes, signature=signer.sign(signing_message(id_)), payload=payload)


def stamped_header(
    *,
    author: bytes,
    chain_id: str,
    seq: int,
    parents: list[bytes] | tuple[bytes, ...],
    op: Operation,
    payload: bytes,
    time_ms: int,
    pow_bits: int,
    nonce_start: int = 0,
) -> bytes:
    """The canonical header bytes with a proof-of-work stamp: what the author signs the id of."""
    kind, body = encode_operation(op)
    header = EntryHeader(
        version=ENTRY_VERSION,
        chain=chain_id,
        author=author,
        seq=seq,
        parents=tuple(parents),
        time_ms=time_ms,
        kind=kind,
        body=body,
        payload_hash=codec.sha256(payload),
        payload_size=len(payload),
        nonce=bytes(NONCE_SIZE),
    )
    prefix = codec.encode(header)[:-NONCE_SIZE]
    return prefix + find_nonce(prefix, pow_bits, nonce_start)

"""Stateless checks of an entry at ingress: everything that needs no DAG.

Cheap checks run first and the signature last, so garbage costs a node almost nothing.
`now_ms` is a parameter, never read from a clock here, so validation is deterministic.
"""

from __future__ import annotations

from .. import codec
from ..errors import (
    BadEncoding,
    BadSignature,
    DuplicateParents,
    EntryTooLarge,
    InsufficientWork,
    NotAFork,
    ParentCountOutOfRange,
    PayloadHashMismatch,
    PayloadTooLarge,
    TimestampInFuture,
    UnsupportedVersion,
    WrongChain,
)
from ..genesis import ChainParams
from ..keys.signing import verify
from .entry import ENTRY_VERSION, Entry, EntryHeader, SignedEntry, Tombstone, entry_id, signing_message
from .operations import decode_operation
from .pow import NONCE_SIZE, has_work

HASH_SIZE = codec.HASH_SIZE
EMPTY_PAYLOAD_HASH = codec.sha256(b"")  # most entries (transfers, votes) carry no payload


def decode_signed_entry(data: bytes) -> SignedEntry:
    return codec.decode_canonical(data, SignedEntry)


def check_entry(
    signed: SignedEntry, *, chain_id: str, params: ChainParams, now_ms: int, tombstone: Tombstone | None = None
) -> Entry:
    """Check one entry completely except for its place in the DAG; return it typed. With a
    `tombstone` the payload is known to be deleted: everything but the payload is checked."""
    entry = check_entry_unsigned(signed, entry_id(signed.header), chain_id=chain_id, params=params, now_ms=now_ms,
                                 tombstone=tombstone)
    if not signature_holds(entry):
        raise BadSignature()
    return entry


def check_entry_unsigned(
    signed: SignedEntry, id_: bytes, *, chain_id: str, params: ChainParams, now_ms: int,
    tombstone: Tombstone | None = None,
) -> Entry:
    """Every check of `check_entry` but the signature, in the same order, the work stamp last:
    for a node that verifies the signatures of a batch together, off its event loop. `id_` is
    the entry id, SHA-256 of the header bytes, which the caller has already hashed."""
    header = _decode_header(signed.header, chain_id, params)
    if not 1 <= len(header.parents) <= params.max_parents:
        raise ParentCountOutOfRange(f"{len(header.parents)} parents; allowed 1..{params.max_parents}")
    if len(set(header.parents)) != len(header.parents):
        raise DuplicateParents()
    op = decode_operation(header.kind, header.body)
    if tombstone is not None:
        if signed.payload:
            raise BadEncoding("an entry passed on without its payload carries no payload bytes")
        op.check(header.payload_size, params)
    else:
        if header.payload_size != len(signed.payload):
            raise PayloadHashMismatch("payload_size does not match the payload")
        op.check(len(signed.payload), params)
        if len(signed.payload) > params.max_data_bytes:
            raise PayloadTooLarge(f"payload is {len(signed.payload)} bytes; the limit is {params.max_data_bytes}")
        if (codec.sha256(signed.payload) if signed.payload else EMPTY_PAYLOAD_HASH) != header.payload_hash:
            raise PayloadHashMismatch()
    if header.time_ms > now_ms + params.max_future_ms:
        raise TimestampInFuture(f"timestamp is {header.time_ms - now_ms} ms ahead of this node's clock")
    if not has_work(id_, params.pow_bits):
        raise InsufficientWork(f"the entry id needs {params.pow_bits} leading zero bits")
    return Entry(id=id_, header=header, signed=signed, op=op, tombstone=tombstone)


def signature_holds(entry: Entry) -> bool:
    """The author's signature over the entry id: the one costly check, kept apart so that a
    node can run it on worker threads (libsodium verifies without the interpreter lock)."""
    return verify(entry.header.author, signing_message(entry.id), entry.signed.signature)


def check_signed_header(header_bytes: bytes, signature: bytes, *, chain_id: str, params: ChainParams) -> EntryHeader:
    """What a header and its signature prove without the payload or the DAG: who signed
    what, on this chain, with the work stamp. Enough to check evidence against an author."""
    header = _decode_header(header_bytes, chain_id, params)
    _check_signature(header_bytes, header, signature, params)
    return header


def check_fork(
    first: tuple[bytes, bytes], second: tuple[bytes, bytes], *, chain_id: str, params: ChainParams
) -> EntryHeader:
    """Check a fork proof, (header, signature) twice; return the first header."""
    if first[0] == second[0]:
        raise NotAFork("the two entries are the same entry")
    one = check_signed_header(*first, chain_id=chain_id, params=params)
    two = check_signed_header(*second, chain_id=chain_id, params=params)
    if one.author != two.author or one.seq != two.seq:
        raise NotAFork("the two entries differ in author or sequence number")
    return one


def _decode_header(header_bytes: bytes, chain_id: str, params: ChainParams) -> EntryHeader:
    if len(header_bytes) > params.max_header_bytes:
        raise EntryTooLarge(f"header is {len(header_bytes)} bytes; the limit is {params.max_header_bytes}")
    header = codec.decode_canonical(header_bytes, EntryHeader)
    if header.version != ENTRY_VERSION:
        raise UnsupportedVersion(f"entry version {header.version} (this node speaks {ENTRY_VERSION})")
    if header.chain != chain_id:
        raise WrongChain(f"entry is for chain {header.chain!r}, this is {chain_id!r}")
    _check_shape(header)
    return header


def _check_signature(header_bytes: bytes, header: EntryHeader, signature: bytes, params: ChainParams) -> bytes:
    """The work stamp, then the signature (the costly check, last); returns the entry id."""
    id_ = entry_id(header_bytes)
    if not has_work(id_, params.pow_bits):
        raise InsufficientWork(f"the entry id needs {params.pow_bits} leading zero bits")
    if not verify(header.author, signing_message(id_), signature):
        raise BadSignature()
    return id_


def _check_shape(header: EntryHeader) -> None:
    if len(header.author) != 32:
        raise BadEncoding("author must be a 32-byte public key")
    if header.seq < 0 or header.time_ms < 0 or header.payload_size < 0:
        raise BadEncoding("seq, time_ms and payload_size are non-negative")
    for parent in header.parents:  # a plain loop: this runs for every entry a node sees
        if len(parent) != HASH_SIZE:
            raise BadEncoding("every parent id is 32 bytes")
    if len(header.payload_hash) != HASH_SIZE:
        raise BadEncoding("payload_hash is 32 bytes")
    if len(header.nonce) != NONCE_SIZE:
        raise BadEncoding("nonce is 8 bytes")

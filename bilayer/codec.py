"""Canonical encoding and hashing: the one way bilayer turns structures into bytes.

Everything that is hashed or signed is msgpack as msgspec writes it for a typed struct
(fields in declaration order, smallest integer forms, no floats). A byte string is
canonical exactly when decoding it strictly and encoding the result gives the same bytes;
`decode_canonical` enforces that, so two different byte strings never stand for one value.
"""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar

import msgspec

from .errors import BadEncoding

T = TypeVar("T")

HASH_SIZE = 32

_encoder = msgspec.msgpack.Encoder()


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


_decoders: dict[type[Any], msgspec.msgpack.Decoder[Any]] = {}


def _decoder_for(kind: type[T]) -> msgspec.msgpack.Decoder[T]:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = msgspec.msgpack.Decoder(kind)
        _decoders[kind] = decoder
    return decoder


def decode(data: bytes, kind: type[T]) -> T:
    """Strict typed decode; any malformed input becomes `BadEncoding`."""
    try:
        return _decoder_for(kind).decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError, OverflowError) as exc:
        raise BadEncoding(f"cannot decode {kind.__name__}: {exc}") from None


def decode_canonical(data: bytes, kind: type[T]) -> T:
    """Decode and insist the bytes are the canonical encoding of the value."""
    value = decode(data, kind)
    if encode(value) != data:
        raise BadEncoding(f"{kind.__name__} is not canonically encoded")
    return value


def from_hex(text: str, size: int) -> bytes | None:
    """`size` bytes written as hex, or None when the text is not exactly that; callers name the error."""
    try:
        value = bytes.fromhex(text)
    except ValueError:
        return None
    return value if len(value) == size else None


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()

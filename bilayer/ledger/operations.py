"""Typed operations carried by entries, and the registry that names them.

An entry header holds an operation as `kind` (its registered name) and `body` (the
canonical msgpack of the operation's struct). Adding an operation type is local: define a
struct subclassing `Operation`, give it `KIND`, its stateless `check` and its JSON `view`,
and decorate it with `@register`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, TypeVar

import msgspec

from .. import codec
from ..errors import BadEncoding, InvalidOperation, PayloadTooLarge, UnknownOperation
from ..genesis import ChainParams
from ..keys.address import PUBLIC_KEY_SIZE, address_from_public_key

_ASSET = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
MAX_AMOUNT = 2**63 - 1


class Operation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = ""

    def check(self, payload_size: int, params: ChainParams) -> None:
        """Stateless rules of this operation type; raise `InvalidOperation`."""

    def view(self) -> dict[str, Any]:
        """A JSON-friendly rendering for the API and CLI."""
        return {"kind": self.KIND, **msgspec.to_builtins(self)}


_REGISTRY: dict[str, type[Operation]] = {}

OpT = TypeVar("OpT", bound=type[Operation])


def register(cls: OpT) -> OpT:
    if not cls.KIND or cls.KIND in _REGISTRY:
        raise ValueError(f"operation kind {cls.KIND!r} is empty or registered twice")
    _REGISTRY[cls.KIND] = cls
    return cls


def operation_kinds() -> list[str]:
    return sorted(_REGISTRY)


def decode_operation(kind: str, body: bytes) -> Operation:
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise UnknownOperation(f"unknown operation kind {kind!r}")
    try:
        return codec.decode_canonical(body, cls)
    except BadEncoding as exc:
        raise InvalidOperation(f"{kind} body: {exc.message}") from None


def encode_operation(op: Operation) -> tuple[str, bytes]:
    return op.KIND, codec.encode(op)


@register
class Transfer(Operation, frozen=True, forbid_unknown_fields=True):
    """Move `amount` units of `asset` from the author to `to`; the payload is a memo."""

    KIND: ClassVar[str] = "transfer"
    asset: str
    amount: int
    to: bytes

    def check(self, payload_size: int, params: ChainParams) -> None:
        if not _ASSET.fullmatch(self.asset):
            raise InvalidOperation("asset: 1-16 characters, A-Z and 0-9, starting with a letter")
        if not 0 < self.amount <= MAX_AMOUNT:
            raise InvalidOperation(f"amount must be between 1 and {MAX_AMOUNT}")
        if len(self.to) != PUBLIC_KEY_SIZE:
            raise InvalidOperation("recipient must be a 32-byte public key")
        if payload_size > params.max_memo_bytes:
            raise PayloadTooLarge(f"a transfer memo holds at most {params.max_memo_bytes} bytes")

    def view(self) -> dict[str, Any]:
        return {"kind": self.KIND, "asset": self.asset, "amount": self.amount, "to": address_from_public_key(self.to)}


@register
class Data(Operation, frozen=True, forbid_unknown_fields=True):
    """Publish the payload bytes, labelled with a media type."""

    KIND: ClassVar[str] = "data"
    media_type: str

    def check(self, payload_size: int, params: ChainParams) -> None:
        if not _MEDIA_TYPE.fullmatch(self.media_type):
            raise InvalidOperation("media_type must look like 'type/subtype' in lower case")
        if payload_size > params.max_data_bytes:
            raise PayloadTooLarge(f"a data payload holds at most {params.max_data_bytes} bytes")

"""The notary's operations: register a document by its hash, and hand it to a new owner."""

from __future__ import annotations

from typing import Any, ClassVar

from ...errors import InvalidOperation, PayloadTooLarge
from ...genesis import ChainParams
from ...keys.address import PUBLIC_KEY_SIZE, address_from_public_key
from ...ledger.operations import Operation, register

MAX_TITLE = 200


@register
class NotaryRegister(Operation, frozen=True, forbid_unknown_fields=True):
    """The author registers a document by its SHA-256 and becomes its owner; the payload, if
    any, is a note that travels with the entry (and may be redacted like any payload)."""

    KIND: ClassVar[str] = "notary.register"
    document: bytes
    title: str

    def check(self, payload_size: int, params: ChainParams) -> None:
        if len(self.document) != 32:
            raise InvalidOperation("document is the 32-byte SHA-256 of the document")
        if not 0 < len(self.title) <= MAX_TITLE:
            raise InvalidOperation(f"title: 1-{MAX_TITLE} characters")
        if payload_size > params.max_memo_bytes:
            raise PayloadTooLarge(f"a notary note holds at most {params.max_memo_bytes} bytes")

    def view(self) -> dict[str, Any]:
        return {"kind": self.KIND, "document": self.document.hex(), "title": self.title}

    def parties(self, author: bytes) -> tuple[bytes, ...]:
        return (author,)


@register
class NotaryTransfer(Operation, frozen=True, forbid_unknown_fields=True):
    """The owner hands a registered document to `to`."""

    KIND: ClassVar[str] = "notary.transfer"
    document: bytes
    to: bytes

    def check(self, payload_size: int, params: ChainParams) -> None:
        if len(self.document) != 32 or len(self.to) != PUBLIC_KEY_SIZE:
            raise InvalidOperation("document is a 32-byte SHA-256 and to a 32-byte public key")
        if payload_size > params.max_memo_bytes:
            raise PayloadTooLarge(f"a notary note holds at most {params.max_memo_bytes} bytes")

    def view(self) -> dict[str, Any]:
        return {"kind": self.KIND, "document": self.document.hex(), "to": address_from_public_key(self.to)}

    def parties(self, author: bytes) -> tuple[bytes, ...]:
        return (author, self.to)

"""The notary's state, handlers and read queries.

Keeper of these keys, under the application's prefix (`b"Znotary\\x00"`):

    b"d" + document              -> DocumentRecord: owner, title, when registered, how often handed on
    b"o" + owner + document      -> b"" (the owner's documents, for listing by prefix)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ... import codec
from ...errors import BadRequest, NotFound
from ...execution.application import AppKeeper
from ...execution.errors import ExecutionRejected
from ...execution.governance.context import ExecContext
from ...execution.state import State
from ...keys.address import PUBLIC_KEY_SIZE, address_from_public_key, public_key_from_address
from ...ledger.entry import EntryHeader
from ...ledger.operations import Operation
from .operations import NotaryRegister, NotaryTransfer

MAX_LISTED = 1000


class DocumentExists(ExecutionRejected):
    code = "document_exists"


class DocumentNotFound(ExecutionRejected):
    code = "document_not_found"


class NotDocumentOwner(ExecutionRejected):
    code = "not_document_owner"


class DocumentRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    owner: bytes
    title: str
    registered_entry: bytes
    registered_height: int
    registered_ms: int
    transfers: int = 0
    last_entry: bytes = b""


class Documents(AppKeeper):
    __slots__ = ()
    APP = "notary"

    def document(self, document: bytes) -> DocumentRecord | None:
        raw = self._get(b"d" + document)
        return None if raw is None else codec.decode(raw, DocumentRecord)

    def owned_by(self, owner: bytes, limit: int = MAX_LISTED) -> list[bytes]:
        """The documents `owner` holds, in hash order."""
        found = []
        for key, _ in self._scan(b"o" + owner):
            found.append(key[1 + PUBLIC_KEY_SIZE:])
            if len(found) >= limit:
                break
        return found

    def put(self, document: bytes, record: DocumentRecord, previous_owner: bytes | None = None) -> None:
        if previous_owner is not None:
            self._delete(b"o" + previous_owner + document)
        self._put(b"d" + document, codec.encode(record))
        self._put(b"o" + record.owner + document, b"")


def apply_register(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, NotaryRegister)
    documents = Documents(state)
    existing = documents.document(op.document)
    if existing is not None:
        raise DocumentExists(f"document {op.document.hex()} was registered by entry {existing.registered_entry.hex()}")
    documents.put(op.document, DocumentRecord(header.author, op.title, entry_id, ctx.height, ctx.time_ms))


def apply_transfer(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, NotaryTransfer)
    documents = Documents(state)
    record = documents.document(op.document)
    if record is None:
        raise DocumentNotFound(f"no document {op.document.hex()} is registered")
    if record.owner != header.author:
        raise NotDocumentOwner("only the document's owner hands it on")
    documents.put(op.document, msgspec.structs.replace(record, owner=op.to, transfers=record.transfers + 1,
                                                       last_entry=entry_id), previous_owner=header.author)


# --- read queries: GET /v1/apps/notary/<query> ---------------------------------------------------


def document_view(document: bytes, record: DocumentRecord) -> dict[str, Any]:
    return {"document": document.hex(), "owner": address_from_public_key(record.owner), "title": record.title,
            "registered_entry": record.registered_entry.hex(), "registered_height": record.registered_height,
            "registered_ms": record.registered_ms, "transfers": record.transfers,
            "last_entry": record.last_entry.hex() or None}


def query_document(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?hash=` (64 hex): the document, its owner and its history counts."""
    document = codec.from_hex(params.get("hash", ""), 32)
    if document is None:
        raise BadRequest("hash is the document's SHA-256 in 64 hex characters")
    record = Documents(state).document(document)
    if record is None:
        raise NotFound(f"no document {document.hex()} is registered")
    return document_view(document, record)


def query_owned(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?owner=ADDRESS`: the documents it holds."""
    owner = public_key_from_address(params.get("owner", ""))
    documents = Documents(state)
    listed = []
    for document in documents.owned_by(owner):
        record = documents.document(document)
        if record is not None:
            listed.append(document_view(document, record))
    return {"owner": address_from_public_key(owner), "documents": listed}

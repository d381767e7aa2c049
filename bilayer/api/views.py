"""JSON renderings of ledger objects: ids in hex, keys as addresses, bytes in base64."""

from __future__ import annotations

import base64
from typing import Any

from .. import codec
from ..keys.address import address_from_public_key
from ..ledger.entry import EntryHeader, SignedEntry, entry_id
from ..ledger.operations import decode_operation
from ..node.storage import ForkEvidence, StoredEntry


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def header_view(header: EntryHeader) -> dict[str, Any]:
    return {
        "chain": header.chain,
        "author": address_from_public_key(header.author),
        "seq": header.seq,
        "parents": [p.hex() for p in header.parents],
        "time_ms": header.time_ms,
        "kind": header.kind,
        "op": decode_operation(header.kind, header.body).view(),
        "payload_hash": header.payload_hash.hex(),
        "payload_size": header.payload_size,
        "nonce": header.nonce.hex(),
    }


def signed_view(signed: SignedEntry, *, with_payload: bool) -> dict[str, Any]:
    header = codec.decode(signed.header, EntryHeader)
    view: dict[str, Any] = {"id": entry_id(signed.header).hex(), **header_view(header)}
    view["signature"] = signed.signature.hex()
    view["header_bytes"] = b64(signed.header)
    if with_payload:
        view["payload"] = b64(signed.payload)
    return view


def stored_view(stored: StoredEntry, *, with_payload: bool = True) -> dict[str, Any]:
    view = signed_view(stored.signed, with_payload=with_payload)
    view["status"] = "stored"
    view["position"] = stored.seqno
    view["received_ms"] = stored.received_ms
    return view


def fork_view(evidence: ForkEvidence) -> dict[str, Any]:
    return {
        "kind": "fork",
        "author": address_from_public_key(evidence.author),
        "seq": evidence.seq,
        "detected_ms": evidence.detected_ms,
        "entries": [
            {"id": entry_id(s.header).hex(), "header_bytes": b64(s.header), "signature": s.signature.hex()}
            for s in (evidence.first, evidence.second)
        ],
    }

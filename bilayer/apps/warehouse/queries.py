"""Reads that span records: a receipt's lineage, its physical evidence, and that evidence
as one EPCIS 2.0 document (what a bank or an auditor takes away to check offline)."""

from __future__ import annotations

from typing import Any

from .epcis import CONTEXT, render
from .keeper import Keeper
from .records import Evidence, Receipt


def lineage(k: Keeper, rid: bytes) -> list[Receipt]:
    """The receipt, every receipt it came from and every receipt that came from it, by number."""
    seen: dict[bytes, Receipt] = {}
    todo = [rid]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        receipt = k.receipt(current)
        if receipt is None:
            continue
        seen[current] = receipt
        todo.extend(receipt.parents)
        todo.extend(receipt.children)
    return sorted(seen.values(), key=lambda r: (r.warehouse, r.number))


def evidence_of(k: Keeper, rid: bytes) -> list[Evidence]:
    """The intake weighing of each of the receipt's lots, and their latest outbound event, in chain order."""
    receipt = k.receipt(rid)
    if receipt is None:
        return []
    found: dict[bytes, Evidence] = {}
    for key in receipt.lots:
        lot = k.lot(key)
        for event_id in (receipt.evidence[receipt.lots.index(key)], lot.outbound_event if lot else b""):
            evidence = k.evidence(event_id) if event_id else None
            if evidence is not None:
                found[event_id] = evidence
    return sorted(found.values(), key=lambda e: (e.height, e.event_id))


def evidence_document(k: Keeper, rid: bytes, creation_date: str) -> dict[str, Any]:
    """A receipt's device evidence as an EPCIS 2.0 JSON-LD document (numbers are `Decimal`)."""
    events = []
    for evidence in evidence_of(k, rid):
        event = render(evidence.reading)
        del event["@context"]
        events.append(event)
    return {"@context": CONTEXT, "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": creation_date,
            "epcisBody": {"eventList": events}}

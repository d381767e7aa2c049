"""A receipt's whole history as one offline-verifiable document.

`bilayer warehouse proof RECEIPT` gathers, from a node, a bilayer entry proof
(`audit/proof.py`) for every entry that wrote the receipt, every booking of its lots and
every device reading of them (intake and outbound weighings). `bilayer audit verify` checks
the document against genesis alone, with no node running:

* every entry proof verifies (signature, results-root path, certificates of a validator set
  walked from genesis), on this document's chain, and every outcome is FINAL;
* the history is in chain order; its first entry issues the receipt (a proposal whose
  warehouse and number give the receipt's id) or is the act on a parent that issued it (a
  split, merge, partial release or partial delivery), and every later entry acts on it;
  an act on the receipt that the document leaves out in the middle is not detected (the
  entries prove themselves, not that no other exists);
* every lot booking is a `warehouse.register_lot` citing an intake reading the document
  proves, and every reading is a `warehouse.reading` whose content hash is recomputed here.

What it proves: these acts, by these keys, were final on the chain at these heights, linked
by the receipt's id and the readings' content hashes. What the receipt's state became is
the application's rule applied to them (`transitions.py`), which the verifier does not
re-execute.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from ... import codec
from ...audit.verify import DocumentDecoder, EntryProof, verify_entry_proof
from ...errors import ProofInvalid
from ...genesis import Genesis
from ...ledger.entry import EntryHeader
from ...ledger.operations import decode_operation
from .epcis import event_hash
from .operations import (
    MergeReceipts,
    ProposeReceipt,
    RecordReading,
    RegisterLot,
    ReleasePledge,
    SplitReceipt,
    Surrender,
    WarehouseOperation,
)
from .records import lot_key, receipt_id

DOCUMENT_TYPE: Final = "warehouse_receipt"
ISSUING: Final = (SplitReceipt, MergeReceipts, ReleasePledge, Surrender)
"""The acts on a receipt that issue new ones (children) for part or all of its goods."""


class ReceiptProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag=DOCUMENT_TYPE):
    format: int
    chain_id: str
    genesis_root: bytes
    receipt: bytes
    history: tuple[EntryProof, ...]  # the entries that wrote the receipt, oldest first
    lots: tuple[EntryProof, ...]  # the bookings of its lots
    evidence: tuple[EntryProof, ...]  # the device readings of its lots


class ReceiptHistoryInvalid(ProofInvalid):
    """The entries verify, but do not form this receipt's history."""

    code = "receipt_history_invalid"


_decoder: DocumentDecoder[ReceiptProof] = DocumentDecoder(ReceiptProof, "a receipt proof")


def decode(data: bytes) -> ReceiptProof:
    return _decoder.decode(data)


def encode(proof: ReceiptProof) -> bytes:
    return msgspec.json.encode(proof)


def _verified(proof: ReceiptProof, entry: EntryProof, genesis: Genesis) -> tuple[dict[str, Any], WarehouseOperation]:
    if (entry.chain_id, entry.genesis_root) != (proof.chain_id, proof.genesis_root):
        raise ReceiptHistoryInvalid("an entry proof is of another chain than the document")
    summary = verify_entry_proof(entry, genesis)
    if summary["outcome"] != "FINAL":
        raise ReceiptHistoryInvalid(f"entry {summary['entry']} is {summary['outcome']}, not FINAL")
    header = codec.decode(entry.entry.header, EntryHeader)
    op = decode_operation(header.kind, header.body)
    if not isinstance(op, WarehouseOperation):
        raise ReceiptHistoryInvalid(f"entry {summary['entry']} is a {header.kind}, not a warehouse act")
    return summary, op


def _names(op: WarehouseOperation) -> tuple[bytes, ...]:
    """The receipts an act is on."""
    if isinstance(op, MergeReceipts):
        return op.receipts
    receipt = getattr(op, "receipt", None)
    return (receipt,) if isinstance(receipt, bytes) else ()


def verify(data: bytes, genesis: Genesis) -> dict[str, Any]:
    """Raise a `ProofInvalid` naming the first part that fails; else what the document proves."""
    proof = decode(data)
    if (proof.chain_id, proof.genesis_root) != (genesis.chain_id, genesis.root):
        raise ReceiptHistoryInvalid("the document is of another chain than this genesis")
    if not proof.history:
        raise ReceiptHistoryInvalid("a receipt's history has at least its issuing entry")
    rid = proof.receipt
    timeline = []
    issued_from: list[str] = []
    last_height = 0
    for position, entry in enumerate(proof.history):
        summary, op = _verified(proof, entry, genesis)
        if summary["height"] < last_height:
            raise ReceiptHistoryInvalid("the history is not in chain order")
        last_height = summary["height"]
        if position == 0 and isinstance(op, ProposeReceipt):
            author = codec.decode(entry.entry.header, EntryHeader).author
            if receipt_id(author, op.number) != rid:
                raise ReceiptHistoryInvalid("the first entry issues another receipt")
        elif position == 0:  # a child: issued by an act on its parents
            if not isinstance(op, ISSUING) or rid in _names(op):
                raise ReceiptHistoryInvalid("the first entry neither proposes the receipt nor issues it from a parent")
            issued_from = [r.hex() for r in _names(op)]
        elif rid not in _names(op):
            raise ReceiptHistoryInvalid(f"entry {summary['entry']} does not act on the receipt")
        timeline.append({"height": summary["height"], "kind": summary["operation"], "author": summary["author"],
                         "entry": summary["entry"]})
    readings: dict[bytes, dict[str, Any]] = {}
    for entry in proof.evidence:
        summary, op = _verified(proof, entry, genesis)
        if not isinstance(op, RecordReading):
            raise ReceiptHistoryInvalid(f"evidence entry {summary['entry']} is not a device reading")
        readings[event_hash(op.reading)] = {"event_id": event_hash(op.reading).hex(), "device": op.reading.device_id,
                                            "biz_step": op.reading.biz_step, "height": summary["height"],
                                            "entry": summary["entry"]}
    lots = []
    for entry in proof.lots:
        summary, op = _verified(proof, entry, genesis)
        if not isinstance(op, RegisterLot):
            raise ReceiptHistoryInvalid(f"lot entry {summary['entry']} is not a lot booking")
        if op.intake_event not in readings:
            raise ReceiptHistoryInvalid(f"the intake reading of coil {op.coil} is not proven in the document")
        lots.append({"lot": lot_key(op.mill, op.heat, op.coil).hex(), "coil": f"{op.mill}:{op.heat}:{op.coil}",
                     "intake": readings[op.intake_event]["event_id"], "height": summary["height"]})
    return {"valid": True, "kind": DOCUMENT_TYPE, "chain_id": genesis.chain_id, "receipt": rid.hex(),
            "issued_from": issued_from, "entries": len(proof.history) + len(proof.lots) + len(proof.evidence),
            "history": timeline, "lots": lots, "evidence": list(readings.values()),
            "lines": [f"VALID: receipt {rid.hex()}: {len(timeline)} acts, {len(lots)} lots, {len(readings)} readings,"
                      f" every entry FINAL and proven against genesis",
                      *(f"  h{t['height']:<6} {t['kind']:<28} by {t['author']}" for t in timeline)]}

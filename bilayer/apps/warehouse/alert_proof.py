"""A reconciliation alert's evidence as one offline-verifiable document.

`bilayer warehouse alert-export ALERT` gathers, from a node, the alert record as the node
reports it and a bilayer entry proof (`audit/proof.py`) for every entry behind it: the
device readings (or the supervisor's stocktake) the alert names as evidence, each reading
device's registration by its warehouse, and for goods that left with no instruction (R2,
R5) the bookings of those coils and their intake weighings. `bilayer audit verify` checks
the document against genesis alone, with no node running:

* every entry proof verifies (signature, results-root path, certificates of a validator set
  walked from genesis) on this document's chain, and every outcome is FINAL;
* the alert's id is H(rule, height, warehouse, n) (`monitor.alert_id`) for its own rule,
  height and warehouse;
* every evidence id the alert names is proven, and nothing else is carried: a reading's
  EPCIS event id is recomputed from the reading in the signed entry; a stocktake's id is its
  entry's; the alert's own evidence was ordered in the checkpoint that raised it;
* each reading is signed by the key its device was registered with, by a proposal of the
  alert's warehouse (R10: the new weighing is at another warehouse), of the kind the rule
  reads, and the reporting device is among the alert's devices;
* the observed side is recomputed from the signed evidence: R1 the lidar's net, R2/R5 the
  booked nets of the coils that left (the coils among those the reading names, each booking
  citing a proven intake weighing), R3 the weighed net, R6 the camera's count, R7 a tamper
  flag, R8 the local minute of the opening, R9 the counted kilograms (and its warehouse and
  bin), R10 both weighings (observed and expected).

What it takes on trust: the expected (book) side of R1-R3, R6, R8 and R9, the tolerance, the
severity, the holds and the alert's status are the node's state, not proven here (state
proofs of the application's records are not part of this document). R7 silences, R11 and
R12 name no evidence: for them the document proves only that the record is shaped as its
id says. An evidence entry left out of the alert by the node cannot be detected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from ... import codec
from ...audit.verify import PROOF_FORMAT, DocumentDecoder, EntryProof, verify_entry_proof
from ...errors import BilayerError, ProofInvalid
from ...genesis import Genesis
from ...keys.address import address_from_public_key
from ...ledger.entry import EntryHeader
from ...ledger.operations import decode_operation
from .epcis import event_hash, net_weight
from .monitor import GATES, alert_id, local_minute, report
from .operations import ProposeDevice, RecordReading, RecordStocktake, RegisterLot, WarehouseOperation
from .records import Alert, lot_key, lot_key_of_urn, to_view

DOCUMENT_TYPE: Final = "warehouse_alert"
MAX_ALERTS_PER_CHECKPOINT: Final = 1 << 16  # the search bound for n in the alert's id
KINDS: Final[dict[str, frozenset[str]]] = {
    "R1": frozenset({"lidar"}), "R2": GATES, "R3": frozenset({"weighbridge"}), "R5": frozenset({"gnss_tag"}),
    "R6": frozenset({"camera"}), "R8": frozenset({"door"}), "R10": frozenset({"weighbridge"}),
}
"""The device kinds each rule reads its evidence from (R7: any kind)."""
TRUSTED: Final = ("the expected (book) side, the tolerance, the severity, the holds and the status are the node's "
                  "state, not proven here: state proofs of the application's records are not part of this document")


class AlertProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag=DOCUMENT_TYPE):
    format: int
    chain_id: str
    genesis_root: bytes
    alert: Alert  # as the node reports it
    evidence: tuple[EntryProof, ...]  # the entries carrying the alert's evidence, in its order
    devices: tuple[EntryProof, ...] = ()  # the registrations of the reading devices
    lots: tuple[EntryProof, ...] = ()  # R2/R5: the bookings of the coils that left
    intakes: tuple[EntryProof, ...] = ()  # their intake weighings


class AlertIdMismatch(ProofInvalid):
    """The alert's id is not the hash of its rule, height and warehouse."""

    code = "alert_id_mismatch"


class AlertEvidenceMissing(ProofInvalid):
    """An evidence id the alert names is not proven in the document."""

    code = "alert_evidence_missing"


class AlertEvidenceUnrelated(ProofInvalid):
    """The document carries an entry that is not final, of another chain, or not one the alert rests on."""

    code = "alert_evidence_unrelated"


class AlertEvidenceHeight(ProofInvalid):
    """The alert's evidence was not ordered in the checkpoint that raised it."""

    code = "alert_evidence_height"


class AlertDeviceMismatch(ProofInvalid):
    """A reading's device is not the alert's, not registered by its warehouse, or not of the rule's kind."""

    code = "alert_device_mismatch"


class AlertLotsMismatch(ProofInvalid):
    """The alert's lots are not the ones its readings and bookings name."""

    code = "alert_lots_mismatch"


class AlertObservedMismatch(ProofInvalid):
    """The observed figure recomputed from the signed evidence differs from the alert's."""

    code = "alert_observed_mismatch"


class AlertExpectedMismatch(ProofInvalid):
    """The expected figure recomputed from the signed evidence (R10), or the delta, differs from the alert's."""

    code = "alert_expected_mismatch"


_decoder: DocumentDecoder[AlertProof] = DocumentDecoder(AlertProof, "an alert proof")


def decode(data: bytes) -> AlertProof:
    return _decoder.decode(data)


def encode(proof: AlertProof) -> bytes:
    return msgspec.json.encode(proof)


PARTS: Final = ("evidence", "devices", "lots", "intakes")


def assemble(trail: dict[str, Any], chain_id: str, genesis_root: bytes,
             proof_of: Callable[[str], EntryProof]) -> AlertProof:
    """The document from a node's `alert_trail` answer and an entry proof for each id it lists."""
    record = msgspec.json.decode(msgspec.json.encode(trail["record"]), type=Alert)
    parts = {part: tuple(proof_of(entry) for entry in trail[part]) for part in PARTS}
    return AlertProof(PROOF_FORMAT, chain_id, genesis_root, record, **parts)


class _Proven(msgspec.Struct, frozen=True):
    """One verified entry: its summary, author and operation."""

    summary: dict[str, Any]
    author: bytes
    op: WarehouseOperation


def _verified(proof: AlertProof, entry: EntryProof, genesis: Genesis) -> _Proven:
    if (entry.chain_id, entry.genesis_root) != (proof.chain_id, proof.genesis_root):
        raise AlertEvidenceUnrelated("an entry proof is of another chain than the document")
    summary = verify_entry_proof(entry, genesis)
    if summary["outcome"] != "FINAL":
        raise AlertEvidenceUnrelated(f"entry {summary['entry']} is {summary['outcome']}, not FINAL")
    header = codec.decode(entry.entry.header, EntryHeader)
    op = decode_operation(header.kind, header.body)
    if not isinstance(op, WarehouseOperation):
        raise AlertEvidenceUnrelated(f"entry {summary['entry']} is a {header.kind}, not a warehouse act")
    return _Proven(summary, header.author, op)


def _check_id(alert: Alert) -> None:
    for n in range(MAX_ALERTS_PER_CHECKPOINT):
        if alert_id(alert.rule, alert.height, alert.warehouse, n) == alert.id:
            return
    raise AlertIdMismatch(f"alert {alert.id.hex()} is not an {alert.rule} alert of height {alert.height} at warehouse"
                          f" {address_from_public_key(alert.warehouse) if len(alert.warehouse) == 32 else '?'}")


def _net(reading_op: RecordReading) -> int:
    try:
        net = net_weight(reading_op.reading)
    except BilayerError:
        net = None
    return -1 if net is None else net


def _observed(what: str, recomputed: int, alert: Alert) -> None:
    if recomputed != alert.observed:
        raise AlertObservedMismatch(f"{what} is {recomputed} by the signed evidence; the alert says {alert.observed}")


def verify(data: bytes, genesis: Genesis) -> dict[str, Any]:
    """Raise a `ProofInvalid` naming the first part that fails; else what the document proves."""
    proof = decode(data)
    if (proof.chain_id, proof.genesis_root) != (genesis.chain_id, genesis.root):
        raise AlertEvidenceUnrelated("the document is of another chain than this genesis")
    alert = proof.alert
    _check_id(alert)
    if alert.rule != "R11" and alert.delta != alert.observed - alert.expected:  # R11's notice states none
        raise AlertExpectedMismatch(f"the delta {alert.delta} is not observed minus expected")

    # the devices: id -> (key, kind, warehouse), each proposed by its warehouse
    devices: dict[str, tuple[bytes, str, bytes]] = {}
    for entry in proof.devices:
        proven = _verified(proof, entry, genesis)
        if not isinstance(proven.op, ProposeDevice):
            raise AlertEvidenceUnrelated(f"device entry {proven.summary['entry']} is not a device registration")
        devices[proven.op.device_id] = (proven.op.public_key, proven.op.kind, proven.author)

    # the evidence, in the alert's order
    if len(proof.evidence) != len(alert.evidence):
        raise (AlertEvidenceMissing if len(proof.evidence) < len(alert.evidence) else AlertEvidenceUnrelated)(
            f"the alert names {len(alert.evidence)} pieces of evidence; the document proves {len(proof.evidence)}")
    readings: list[RecordReading] = []
    stocktake: RecordStocktake | None = None
    lines = []
    for position, (named, entry) in enumerate(zip(alert.evidence, proof.evidence, strict=True)):
        proven = _verified(proof, entry, genesis)
        height = proven.summary["height"]
        if position == 0 and (height, proven.summary["checkpoint_time_ms"]) != (alert.height, alert.time_ms):
            raise AlertEvidenceHeight(f"the alert was raised at height {alert.height}; its evidence was ordered at"
                                      f" {height}")
        if height > alert.height:
            raise AlertEvidenceHeight(f"evidence ordered at height {height}, after the alert")
        if isinstance(proven.op, RecordStocktake):
            if bytes.fromhex(proven.summary["entry"]) != named:
                raise AlertEvidenceMissing(f"the stocktake {named.hex()} the alert names is not proven here")
            stocktake = proven.op
            lines.append(f"  h{height:<6} stocktake of bin {proven.op.bin}: {proven.op.counted_kg} kg,"
                         f" {proven.op.counted_pieces} pieces, by {proven.summary['author']}")
            continue
        if not isinstance(proven.op, RecordReading):
            raise AlertEvidenceUnrelated(f"evidence entry {proven.summary['entry']} is neither a reading nor a"
                                         " stocktake")
        if event_hash(proven.op.reading) != named:
            raise AlertEvidenceMissing(f"event {named.hex()} the alert names is not the reading of entry"
                                       f" {proven.summary['entry']} (its event id is"
                                       f" {event_hash(proven.op.reading).hex()})")
        reading = proven.op.reading
        registered = devices.get(reading.device_id)
        if registered is None or registered[0] != proven.author:
            raise AlertDeviceMismatch(f"reading {named.hex()[:16]}… is not signed by a key registered for"
                                      f" device {reading.device_id} in this document")
        here = registered[2] == alert.warehouse
        elsewhere = alert.rule == "R10" and position == 0
        if here == elsewhere:
            raise AlertDeviceMismatch(f"device {reading.device_id} is registered by another warehouse than the"
                                      f" {'other one R10 names' if elsewhere else 'alert'}'s")
        if position == 0 and reading.device_id not in alert.devices:
            raise AlertDeviceMismatch(f"device {reading.device_id} is not among the alert's devices")
        if position == 0 and alert.rule in KINDS and registered[1] not in KINDS[alert.rule]:
            raise AlertDeviceMismatch(f"{alert.rule} reads a {'/'.join(sorted(KINDS[alert.rule]))}, not a"
                                      f" {registered[1]}")
        readings.append(proven.op)
        lines.append(f"  h{height:<6} {reading.biz_step:<16} {reading.device_id} ({registered[1]}) event"
                     f" {named.hex()[:16]}…")

    lots = _check_lots(proof, alert, readings, genesis)
    recomputed = _recompute(alert, readings, stocktake, lots)
    used = {r.reading.device_id for r in readings}
    if set(devices) - used:
        raise AlertEvidenceUnrelated(f"device {sorted(set(devices) - used)[0]} is registered here but reports none"
                                     " of the alert's evidence")
    proves = (f"the alert's evidence, signed by its devices and final on the chain; {recomputed}" if alert.evidence
              else "only that the record is shaped as its id says: this rule names no evidence")
    return {"valid": True, "kind": DOCUMENT_TYPE, "chain_id": genesis.chain_id, "alert": alert.id.hex(),
            "rule": alert.rule, "severity": alert.severity, "height": alert.height,
            "warehouse": address_from_public_key(alert.warehouse),
            "entries": len(proof.evidence) + len(proof.devices) + len(proof.lots) + len(proof.intakes),
            "record": to_view(alert), "proves": proves, "trusted": TRUSTED,
            "lines": [f"VALID: {alert.rule} alert {alert.id.hex()[:16]}… at height {alert.height}: {alert.summary}",
                      f"  proves: {proves}", *lines, f"  on trust: {TRUSTED}"]}


def _check_lots(proof: AlertProof, alert: Alert, readings: list[RecordReading], genesis: Genesis) -> dict[bytes, int]:
    """The alert's lots among those its first reading names; for R2/R5 each one's booked net,
    from its booking (by the alert's warehouse) and the intake weighing the booking cites."""
    named = {lot_key_of_urn(epc) for r in readings[:1] for epc in r.reading.epcs} - {None}
    if alert.rule in ("R2", "R3", "R5", "R10") and not set(alert.lots) <= named:
        raise AlertLotsMismatch("the alert names a lot its reading does not")
    intakes: dict[bytes, int] = {}
    for entry in proof.intakes:
        proven = _verified(proof, entry, genesis)
        if not isinstance(proven.op, RecordReading):
            raise AlertEvidenceUnrelated(f"intake entry {proven.summary['entry']} is not a reading")
        intakes[event_hash(proven.op.reading)] = _net(proven.op)
    booked: dict[bytes, int] = {}
    for entry in proof.lots:
        proven = _verified(proof, entry, genesis)
        op = proven.op
        if not isinstance(op, RegisterLot) or proven.author != alert.warehouse:
            raise AlertEvidenceUnrelated(f"lot entry {proven.summary['entry']} is not a booking by the alert's"
                                         " warehouse")
        key = lot_key(op.mill, op.heat, op.coil)
        if key not in alert.lots or op.intake_event not in intakes:
            raise AlertLotsMismatch(f"the booking of coil {op.mill}:{op.heat}:{op.coil} is not of an alert's lot"
                                    " with its intake weighing proven here")
        booked[key] = intakes.pop(op.intake_event)
    if intakes:
        raise AlertEvidenceUnrelated("an intake reading no booking here cites")
    if alert.rule in ("R2", "R5") and set(booked) != set(alert.lots):
        raise AlertLotsMismatch(f"the document books {len(booked)} of the alert's {len(alert.lots)} lots")
    return booked


def _recompute(alert: Alert, readings: list[RecordReading], stocktake: RecordStocktake | None,
               booked: dict[bytes, int]) -> str:
    """Check the observed side against the signed evidence; say what was recomputed."""
    rule = alert.rule
    first = readings[0] if readings else None
    if rule == "R9" and stocktake is not None:
        if stocktake.warehouse != alert.warehouse or stocktake.bin not in alert.bins:
            raise AlertDeviceMismatch("the stocktake counts another warehouse or bin than the alert's")
        _observed("the counted kilograms", stocktake.counted_kg, alert)
        return f"observed {alert.observed} kg is the stocktake's count"
    if first is None:
        if alert.evidence:
            raise AlertEvidenceUnrelated(f"{rule} rests on a reading, not a stocktake")
        return ""
    step = first.reading.biz_step
    if rule == "R1":
        _observed("the lidar's net", _net(first), alert)
        return f"observed {alert.observed} kg is the lidar's estimate"
    if rule in ("R2", "R5"):
        if step not in ("shipping", "departing"):
            raise AlertEvidenceUnrelated(f"{rule} rests on goods leaving, not on {step}")
        _observed("the booked net of the coils that left", sum(booked.values()), alert)
        return f"observed {alert.observed} kg is the booked net of the {len(booked)} coils that left"
    if rule == "R3":
        _observed("the weighed net", _net(first), alert)
        return f"observed {alert.observed} kg is the outbound weighing"
    if rule == "R6":
        counted = report(first.reading, "Count")
        if counted is None:
            raise AlertObservedMismatch("the camera's reading reports no count")
        _observed("the camera's count", counted, alert)
        return f"observed {alert.observed} pieces is the camera's count"
    if rule == "R7":
        if report(first.reading, "Tamper") != 1 or alert.observed != 0:
            raise AlertObservedMismatch("the reading raises no tamper flag")
        return "the device's reading raised its tamper flag"
    if rule == "R8":
        if report(first.reading, "Contact") != 1:
            raise AlertObservedMismatch("the reading reports no door opening")
        _observed("the local minute of the opening", local_minute(first.reading.event_time_ms), alert)
        return f"the door opened at minute {alert.observed} of the local day"
    if rule == "R10":
        if len(readings) != 2:
            raise AlertEvidenceMissing("R10 rests on the new weighing and the lot's intake weighing")
        _observed("the new weighing's net", _net(first), alert)
        if _net(readings[1]) != alert.expected:
            raise AlertExpectedMismatch(f"the intake weighing's net is {_net(readings[1])}; the alert says"
                                        f" {alert.expected}")
        if not set(alert.lots) <= {lot_key_of_urn(epc) for epc in readings[1].reading.epcs}:
            raise AlertLotsMismatch("the intake weighing is of another lot")
        return f"observed {alert.observed} kg and expected {alert.expected} kg are both signed weighings"
    raise AlertEvidenceUnrelated(f"{rule} names no device evidence")

"""The state transition function of the warehouse application: one `apply_*` per operation.

Each function reads like its rule: who must sign, what the state must be, then the writes.
`apply(target, ctx, op)` is the entry point the chain calls: it re-runs the operation's
stateless rules (an entry may reach execution without them), and runs the function inside
a state transaction, so a refusal changes nothing. `Context` is what an entry's
execution may depend on besides state; `council` and `regulator` are decided by the
governance side (on the chain: the author holding council weight; the author being one of
the chain's regulators) and passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import msgspec

from ...errors import InvalidOperation
from ...execution.state import State
from . import finance, monitor
from .epcis import event_hash, net_weight
from .errors import (
    AcceptanceWindowOver,
    AlertResolved,
    AlertUnknown,
    AlreadyFrozen,
    AlreadyPledged,
    BinHeld,
    CaseMismatch,
    CaseUnknown,
    ClockSkew,
    CurePeriodOver,
    CurePeriodRunning,
    DeviceExists,
    DeviceKeyInUse,
    DeviceNotActive,
    DeviceRevoked,
    DeviceUncalibrated,
    DeviceUnknown,
    DuplicateEvent,
    EvidenceInvalid,
    EvidenceUnknown,
    EvidenceUsed,
    ExtensionNotLater,
    IneligibleHolder,
    LocationNotCovered,
    LotAlreadyReceipted,
    LotHeldElsewhere,
    LotNotInWarehouse,
    LotUnknown,
    MergeMismatch,
    NotAPartition,
    NotAppointer,
    NotCouncil,
    NotFrozen,
    NotHolder,
    NotIntakeEvidence,
    NotIssuer,
    NotPledgee,
    NotRegulator,
    NotSupervisor,
    NotYetExpired,
    OfferMismatch,
    OutboundEvidenceMissing,
    OutOfSequence,
    PaperMismatch,
    PartyExists,
    PartyRevoked,
    PartyUnknown,
    QuantityMismatch,
    ReceiptExpired,
    ReceiptFrozen,
    ReceiptHeld,
    ReceiptNumberOutOfSeries,
    ReceiptPledged,
    ReceiptUnknown,
    StatelessRuleBroken,
    UnknownBin,
    WarehouseRejected,
    WeighingRequired,
    WrongDeviceKind,
    WrongRole,
    WrongSigner,
    WrongStatus,
)
from .keeper import Keeper
from .operations import (
    AcceptReceipt,
    AcceptTransfer,
    ApproveDevice,
    CancelOffer,
    CancelReceipt,
    ConfirmPledge,
    ConvertToPaper,
    Countersign,
    CureDefault,
    DeclareDefault,
    ExpireReceipt,
    ExtendReceipt,
    FreezeReceipt,
    InspectLot,
    InvokePledge,
    MergeReceipts,
    OfferTransfer,
    OpenCase,
    ProposeDevice,
    ProposeReceipt,
    RecordReading,
    RecordStocktake,
    RegisterLot,
    RegisterParty,
    RegisterWarehouse,
    RejectReceipt,
    ReleasePledge,
    RenewCalibration,
    RequestPledge,
    ResolveAlert,
    RevokeDevice,
    RevokeParty,
    SetMonitoring,
    SplitReceipt,
    Surrender,
    UnfreezeReceipt,
    VoidReceipt,
    WarehouseOperation,
)
from .records import (
    TRANSITIONS,
    UNDER_PLEDGE,
    Case,
    Delivery,
    Device,
    Endorsement,
    EndorsementKind,
    Evidence,
    Lot,
    Offer,
    Party,
    Pending,
    Pledge,
    Policy,
    Receipt,
    Resolution,
    Role,
    Status,
    Stocktake,
    WarehouseInfo,
    lot_key,
    lot_key_of_urn,
    lot_urn,
    receipt_id,
)

ACCEPT_WINDOW_MS: Final = 7 * 24 * 3600 * 1000
"""A proposed receipt the depositor has not accepted within a week can only be voided."""

MAX_CLOCK_SKEW_MS: Final = 5 * 60 * 1000
"""A reading's eventTime may differ from its checkpoint's time by at most five minutes."""

APPOINTERS: Final[Mapping[Role, tuple[Role, ...]]] = MappingProxyType({
    "warehouse": (),
    "bank": (),
    "supervisor": (),
    "depositor": ("warehouse", "bank"),
    "inspector": ("supervisor",),
})
"""Who besides the council may appoint each role: banks, supervisors and warehouses are
council-appointed; a warehouse or bank onboards depositors after its KYC (as India's
repository participants do); a supervisor appoints its inspectors."""

HOLDER_ROLES: Final[tuple[Role, ...]] = ("depositor", "bank")
WEIGHED_STEPS: Final = frozenset({"receiving", "shipping"})
OUTBOUND_STEPS: Final = frozenset({"shipping", "departing"})


@dataclass(frozen=True, slots=True)
class Context:
    """The entry being executed: its id, author, checkpoint height and time, and the two
    authorities the governance side vouches for."""

    entry_id: bytes
    author: bytes
    height: int
    time_ms: int
    council: bool = False  # the author acts for the council (on the chain: it holds council weight)
    regulator: bool = False  # the author is one of the chain's regulators


# --- guards ----------------------------------------------------------------------------------------


def _ensure(condition: bool, error: type[WarehouseRejected], message: str) -> None:
    if not condition:
        raise error(message)


def _party(k: Keeper, key: bytes, *roles: Role) -> Party:
    """An appointed, unrevoked party of one of these roles."""
    party = k.party(key)
    _ensure(party is not None, PartyUnknown, "not a registered party")
    assert party is not None
    _ensure(not party.revoked, PartyRevoked, "the party's appointment was revoked")
    _ensure(party.role in roles, WrongRole, f"a {party.role} cannot do this; it takes a {' or '.join(roles)}")
    return party


def _warehouse(k: Keeper, ctx: Context) -> WarehouseInfo:
    """The author, acting as an appointed warehouse."""
    _party(k, ctx.author, "warehouse")
    info = k.warehouse(ctx.author)
    assert info is not None
    return info


def _receipt(k: Keeper, rid: bytes) -> Receipt:
    receipt = k.receipt(rid)
    _ensure(receipt is not None, ReceiptUnknown, "no such receipt")
    assert receipt is not None
    return receipt


HOLDER_MOVES: Final = frozenset({"offer_transfer", "request_pledge", "split_receipt", "merge_receipts", "surrender",
                                  "convert_to_paper"})


HELD_BLOCKS: Final = frozenset({"offer_transfer", "accept_transfer", "countersign", "request_pledge",
                                 "confirm_pledge", "release_pledge", "split_receipt", "merge_receipts", "surrender"})
"""What the HELD overlay refuses: moving the receipt or its goods while an alert is open."""


def _may(k: Keeper, receipt: Receipt, kind: str) -> None:
    """The receipt may take this transition: not frozen, in a state the table allows, and not held
    for it (a move its state forbids anyway is refused for that, the lasting reason)."""
    _ensure(receipt.frozen_case == 0, ReceiptFrozen, f"frozen under case {receipt.frozen_case}")
    if receipt.status in TRANSITIONS[kind][0]:
        _ensure(kind not in HELD_BLOCKS or not k.held(receipt), ReceiptHeld,
                "an open alert holds the receipt or its goods' bin until the warehouse's supervisor resolves it")
        return
    pledged = receipt.status in UNDER_PLEDGE or (receipt.status == "expired" and receipt.expired_from in UNDER_PLEDGE)
    _ensure(not (kind == "request_pledge" and pledged), AlreadyPledged, "the receipt is pledged already")
    _ensure(not (kind in HOLDER_MOVES and pledged), ReceiptPledged, "a pledged receipt moves only with its pledgee")
    raise WrongStatus(f"{kind} does not apply to a receipt that is {receipt.status}")


def _holder(k: Keeper, ctx: Context, receipt: Receipt) -> None:
    _ensure(ctx.author == receipt.holder, NotHolder, "only the holder may do this")
    _party(k, ctx.author, *HOLDER_ROLES)


def _issuer(k: Keeper, ctx: Context, receipt: Receipt) -> None:
    _ensure(ctx.author == receipt.warehouse, NotIssuer, "only the issuing warehouse may do this")
    _party(k, ctx.author, "warehouse")


def _unexpired(ctx: Context, receipt: Receipt) -> None:
    _ensure(ctx.time_ms < receipt.terms.storage_until_ms, ReceiptExpired, "the receipt's storage period is over")


def _pledgee(k: Keeper, ctx: Context, receipt: Receipt) -> Pledge:
    pledge = k.pledge(receipt.pledge)
    assert pledge is not None, "a receipt under pledge names its pledge"
    _ensure(ctx.author == pledge.pledgee, NotPledgee, "only the pledgee may do this")
    _party(k, ctx.author, "bank")
    return pledge


def _offer(receipt: Receipt, offer_id: bytes) -> Offer:
    offer = receipt.offer
    _ensure(offer is not None and offer.id == offer_id, OfferMismatch, "not the receipt's pending offer")
    assert offer is not None
    return offer


def _changed(receipt: Receipt, ctx: Context, **changes: Any) -> Receipt:
    return msgspec.structs.replace(receipt, version=receipt.version + 1, last_entry=ctx.entry_id, **changes)


def _endorse(receipt: Receipt, ctx: Context, kind: EndorsementKind, endorser: bytes, endorsee: bytes,
             countersigned_by: bytes = b"") -> tuple[Endorsement, ...]:
    return (*receipt.endorsements, Endorsement(kind, endorser, endorsee, countersigned_by, ctx.entry_id, ctx.height,
                                               ctx.time_ms))


def _bind(k: Keeper, lots: tuple[bytes, ...], rid: bytes) -> None:
    for key in lots:
        lot = k.lot(key)
        assert lot is not None
        k.put_lot(msgspec.structs.replace(lot, receipt=rid))


def _lots_of(k: Keeper, keys: tuple[bytes, ...]) -> list[Lot]:
    lots = [k.lot(key) for key in keys]
    return [lot for lot in lots if lot is not None]


def _issue_child(k: Keeper, ctx: Context, parents: tuple[Receipt, ...], lots: tuple[bytes, ...], status: Status,
                 holder: bytes, pledge: bytes = b"", delivery: Delivery | None = None) -> Receipt:
    """A receipt for part or all of its parents' goods, numbered from the warehouse's series
    (a split, merge, partial release or partial delivery cancels the old receipts and issues
    new ones, with lineage: Kansas statute 34-246)."""
    first = parents[0]
    info = k.warehouse(first.warehouse)
    assert info is not None
    number = info.next_receipt_no
    k.put_warehouse(msgspec.structs.replace(info, next_receipt_no=number + 1))
    goods_lots = _lots_of(k, tuple(sorted(lots)))
    rid = receipt_id(first.warehouse, number)
    goods = msgspec.structs.replace(first.goods, pieces=sum(lot.pieces for lot in goods_lots),
                                    quantity_kg=sum(lot.net_kg for lot in goods_lots))
    child = msgspec.structs.replace(
        first, id=rid, number=number, issued_ms=ctx.time_ms, issued_height=ctx.height, issue_entry=ctx.entry_id,
        holder=holder, goods=goods, lots=tuple(sorted(lots)), bins=tuple(sorted({lot.bin for lot in goods_lots})),
        evidence=tuple(lot.intake_event for lot in goods_lots), mill_certs=tuple(lot.mill_cert for lot in goods_lots),
        status=status, accept_by_ms=0, parents=tuple(p.id for p in parents), children=(), pledge=pledge, offer=None,
        endorsements=(), delivery=delivery, frozen_case=0, expired_from="", paper_ref="", replaces_paper=b"",
        replaced_by=b"", version=0, last_entry=ctx.entry_id, held=())
    k.put_receipt(child)
    monitor.receipt_issued(k, child)
    _bind(k, child.lots, rid)
    return child


def _supersede(k: Keeper, ctx: Context, parent: Receipt, children: tuple[Receipt, ...]) -> None:
    k.put_receipt(_changed(parent, ctx, status="superseded", children=tuple(c.id for c in children), offer=None,
                           pledge=b""))


# --- parties -----------------------------------------------------------------------------------------


def apply_register_warehouse(k: Keeper, ctx: Context, op: RegisterWarehouse) -> None:
    _ensure(ctx.council, NotCouncil, "warehouses are appointed by the council")
    _ensure(k.party(op.key) is None, PartyExists, "the key is a registered party already")
    _ensure(k.device_for_key(op.key) is None, DeviceKeyInUse, "the key reports for a device")
    _party(k, op.supervisor, "supervisor")
    k.put_party(Party(op.key, "warehouse", op.name, op.uscc, op.domicile, b"", ctx.entry_id, ctx.height))
    k.put_warehouse(WarehouseInfo(op.key, op.location, op.supervisor, op.bins, op.require_signoff))


def apply_register_party(k: Keeper, ctx: Context, op: RegisterParty) -> None:
    if ctx.council:
        appointer = b""
    else:
        allowed = APPOINTERS[op.role]
        _ensure(bool(allowed), NotCouncil, f"a {op.role} is appointed by the council")
        author = k.party(ctx.author)
        _ensure(author is not None and author.role in allowed and not author.revoked, NotAppointer,
                f"a {op.role} is appointed by the council or a {' or '.join(allowed)}")
        appointer = ctx.author
    _ensure(k.party(op.key) is None, PartyExists, "the key is a registered party already")
    _ensure(k.device_for_key(op.key) is None, DeviceKeyInUse, "the key reports for a device")
    k.put_party(Party(op.key, op.role, op.name, op.uscc, op.domicile, appointer, ctx.entry_id, ctx.height))


def apply_revoke_party(k: Keeper, ctx: Context, op: RevokeParty) -> None:
    party = k.party(op.key)
    _ensure(party is not None, PartyUnknown, "not a registered party")
    assert party is not None
    _ensure(not party.revoked, PartyRevoked, "revoked already")
    _ensure(ctx.council or (party.appointed_by != b"" and ctx.author == party.appointed_by), NotAppointer,
            "a party is revoked by whoever appointed it, or by the council")
    k.put_party(msgspec.structs.replace(party, revoked=True))


# --- devices and evidence ------------------------------------------------------------------------------


def _device(k: Keeper, device_id: str) -> Device:
    device = k.device(device_id)
    _ensure(device is not None, DeviceUnknown, f"no device {device_id!r}")
    assert device is not None
    return device


def _supervisor_of(k: Keeper, ctx: Context, warehouse: bytes) -> None:
    info = k.warehouse(warehouse)
    assert info is not None
    _ensure(ctx.author == info.supervisor, WrongSigner, "only the warehouse's supervisor may do this")
    _party(k, ctx.author, "supervisor")


def apply_propose_device(k: Keeper, ctx: Context, op: ProposeDevice) -> None:
    info = _warehouse(k, ctx)
    _ensure(k.device(op.device_id) is None, DeviceExists, "the device is registered already")
    _ensure(k.device_for_key(op.public_key) is None and k.party(op.public_key) is None, DeviceKeyInUse,
            "the key reports for another device or is a party's")
    _ensure(set(op.bins) <= set(info.bins), UnknownBin, "a device covers bins of its own warehouse")
    k.put_device(Device(op.device_id, op.kind, ctx.author, op.bins, op.public_key, op.read_point, op.calibration,
                        heartbeat_ms=op.heartbeat_ms, entry=ctx.entry_id))


def apply_approve_device(k: Keeper, ctx: Context, op: ApproveDevice) -> None:
    device = _device(k, op.device_id)
    _supervisor_of(k, ctx, device.warehouse)
    _ensure(device.status == "pending", DeviceNotActive, f"the device is {device.status}, not pending")
    _ensure(ctx.time_ms < device.calibration.expires_ms, DeviceUncalibrated, "its calibration has expired")
    k.put_device(monitor.device_active(k, msgspec.structs.replace(device, status="active"), ctx.time_ms))


def apply_renew_calibration(k: Keeper, ctx: Context, op: RenewCalibration) -> None:
    device = _device(k, op.device_id)
    _supervisor_of(k, ctx, device.warehouse)
    _ensure(device.status != "revoked", DeviceRevoked, "the device is revoked")
    weighs = op.calibration.accuracy_class != "" and op.calibration.scale_interval_g > 0
    _ensure(weighs == (device.kind == "weighbridge"), WrongDeviceKind, "a scale class is for weighbridges only")
    _ensure(op.calibration.expires_ms > ctx.time_ms, DeviceUncalibrated, "the new certificate has expired")
    renewed = msgspec.structs.replace(device, calibration=op.calibration)
    monitor.calibration_renewed(k, device, renewed)
    k.put_device(renewed)


def apply_revoke_device(k: Keeper, ctx: Context, op: RevokeDevice) -> None:
    device = _device(k, op.device_id)
    info = k.warehouse(device.warehouse)
    assert info is not None
    _ensure(ctx.author in (device.warehouse, info.supervisor), WrongSigner,
            "a device is revoked by its warehouse or its supervisor")
    _ensure(device.status != "revoked", DeviceRevoked, "revoked already")
    k.put_device(msgspec.structs.replace(device, status="revoked"))


def apply_record_reading(k: Keeper, ctx: Context, op: RecordReading) -> None:
    """A reading counts only from a registered, approved, calibrated device, signed by its
    own key, at its own read point and warehouse, in sequence, with a clock near the chain's."""
    reading = op.reading
    device = _device(k, reading.device_id)
    _ensure(ctx.author == device.public_key, WrongSigner, "a reading is signed by its device's key")
    _ensure(device.status != "revoked", DeviceRevoked, "the device is revoked")
    _ensure(device.status == "active", DeviceNotActive, "the device awaits its supervisor's approval")
    _ensure(ctx.time_ms < device.calibration.expires_ms, DeviceUncalibrated, "the device's calibration has expired")
    info = k.warehouse(device.warehouse)
    assert info is not None
    _ensure(reading.read_point in ("", device.read_point) and reading.biz_location in ("", info.location),
            LocationNotCovered, "the reading is outside the device's read point or warehouse")
    _ensure(reading.seq > device.last_seq, OutOfSequence, f"bl:deviceSeq must exceed {device.last_seq}")
    _ensure(abs(reading.event_time_ms - ctx.time_ms) <= MAX_CLOCK_SKEW_MS, ClockSkew,
            f"eventTime is more than {MAX_CLOCK_SKEW_MS} ms from the checkpoint's time")
    event_id = event_hash(reading)
    _ensure(k.evidence(event_id) is None, DuplicateEvent, "this event is recorded already")
    net = net_weight(reading)
    _ensure(not (device.kind == "weighbridge" and reading.biz_step in WEIGHED_STEPS and net is None),
            WeighingRequired, "a weighbridge's receiving or shipping event carries a weighing")
    if reading.biz_step != "receiving":  # goods already booked are reported only where they lie
        for epc in reading.epcs:
            key = lot_key_of_urn(epc)
            lot = None if key is None else k.lot(key)
            _ensure(lot is None or lot.status != "in_stock" or (lot.warehouse == device.warehouse
                                                                and lot.bin in device.bins),
                    LocationNotCovered, "the reading names a lot in a bin the device does not cover")
    evidence = Evidence(event_id, reading, device.kind, device.warehouse, -1 if net is None else net, ctx.entry_id,
                        ctx.height)
    k.put_device(monitor.reading_recorded(k, msgspec.structs.replace(device, last_seq=reading.seq), evidence,
                                          ctx.height))
    k.put_evidence(evidence)
    if reading.biz_step in OUTBOUND_STEPS:
        for epc in reading.epcs:
            key = lot_key_of_urn(epc)
            lot = None if key is None else k.lot(key)
            if lot is not None and lot.warehouse == device.warehouse and lot.status == "in_stock":
                k.put_lot(msgspec.structs.replace(lot, outbound_event=event_id, outbound_height=ctx.height))


# --- lots ------------------------------------------------------------------------------------------------


def apply_register_lot(k: Keeper, ctx: Context, op: RegisterLot) -> None:
    """INV-5 starts here: a lot exists only with a finalized weighbridge intake at its warehouse."""
    info = _warehouse(k, ctx)
    _ensure(op.bin in info.bins, UnknownBin, f"no bin {op.bin!r} at this warehouse")
    evidence = k.evidence(op.intake_event)
    _ensure(evidence is not None, EvidenceUnknown, "no such recorded event")
    assert evidence is not None
    _ensure(evidence.warehouse == ctx.author and evidence.device_kind == "weighbridge"
            and evidence.reading.biz_step == "receiving" and evidence.net_kg > 0
            and evidence.reading.epcs == (lot_urn(op.mill, op.heat, op.coil),),
            NotIntakeEvidence, "the event is not this lot's weighbridge receiving at this warehouse")
    _ensure(evidence.lot == b"", EvidenceUsed, "the event registered a lot already")
    key = lot_key(op.mill, op.heat, op.coil)
    existing = k.lot(key)
    _ensure(existing is None or existing.status == "shipped", LotHeldElsewhere,
            "this mill, heat and coil number is in stock at a warehouse already")
    lot = Lot(key, op.mill, op.heat, op.coil, op.form, op.grade, op.spec, op.pieces, evidence.net_kg,
              op.intake_event, op.mill_cert, op.production_date, ctx.author, op.bin, entry=ctx.entry_id)
    k.put_lot(lot)
    monitor.lot_booked(k, lot)
    k.put_evidence(msgspec.structs.replace(evidence, lot=key))


def apply_inspect_lot(k: Keeper, ctx: Context, op: InspectLot) -> None:
    _party(k, ctx.author, "inspector")
    lot = k.lot(op.lot)
    _ensure(lot is not None, LotUnknown, "no such lot")
    assert lot is not None
    k.put_lot(msgspec.structs.replace(lot, inspection=op.report))


# --- issuing ---------------------------------------------------------------------------------------------


def apply_propose_receipt(k: Keeper, ctx: Context, op: ProposeReceipt) -> None:
    info = _warehouse(k, ctx)
    _ensure(op.number == info.next_receipt_no, ReceiptNumberOutOfSeries,
            f"the next number of this warehouse's series is {info.next_receipt_no}")
    depositor = k.party(op.depositor)
    _ensure(depositor is not None and not depositor.revoked and depositor.role in HOLDER_ROLES, IneligibleHolder,
            "the depositor is an appointed depositor or bank")
    assert depositor is not None
    _ensure(op.terms.storage_until_ms > ctx.time_ms, ReceiptExpired, "the storage period is over already")
    paper = None
    if op.replaces_paper:
        paper = k.receipt(op.replaces_paper)
        _ensure(paper is not None and paper.status == "converted_to_paper" and not paper.replaced_by
                and paper.warehouse == ctx.author and set(paper.lots) == set(op.lots), PaperMismatch,
                "a paper receipt of this warehouse comes back over exactly its own lots")
    lots = []
    for key in op.lots:
        lot = k.lot(key)
        _ensure(lot is not None, LotUnknown, "no such lot")
        assert lot is not None
        _ensure(lot.warehouse == ctx.author and lot.status == "in_stock", LotNotInWarehouse,
                "the lot is not in stock at this warehouse")
        _ensure(lot.receipt == b"" or (paper is not None and lot.receipt == paper.id), LotAlreadyReceipted,
                "the lot backs a live receipt already")
        intake = k.evidence(lot.intake_event)
        _ensure(intake is not None and intake.lot == key, NotIntakeEvidence, "the lot has no intake evidence")
        lots.append(lot)
    held = monitor.bin_held(k, ctx.author, tuple(sorted({lot.bin for lot in lots})))
    _ensure(held is None, BinHeld, f"an open alert holds bin {held}")
    _ensure(op.goods.quantity_kg == sum(lot.net_kg for lot in lots) and op.goods.pieces == sum(
        lot.pieces for lot in lots), QuantityMismatch, "quantity and pieces are the sums of the lots' weighed nets")
    rid = receipt_id(ctx.author, op.number)
    ordered = sorted(lots, key=lambda lot: lot.key)
    receipt = Receipt(
        id=rid, number=op.number, warehouse=ctx.author, negotiable=op.negotiable, rights_notice=op.rights_notice,
        issue_place=op.issue_place, signer=op.signer, issued_ms=ctx.time_ms, issued_height=ctx.height,
        issue_entry=ctx.entry_id, depositor=op.depositor, depositor_name=depositor.name,
        depositor_domicile=depositor.domicile, depositor_uscc=depositor.uscc, holder=ctx.author, goods=op.goods,
        lots=tuple(lot.key for lot in ordered), bins=tuple(sorted({lot.bin for lot in ordered})), terms=op.terms,
        evidence=tuple(lot.intake_event for lot in ordered), mill_certs=tuple(lot.mill_cert for lot in ordered),
        status="proposed", accept_by_ms=ctx.time_ms + ACCEPT_WINDOW_MS, replaces_paper=op.replaces_paper,
        last_entry=ctx.entry_id)
    k.put_warehouse(msgspec.structs.replace(info, next_receipt_no=op.number + 1))
    k.put_receipt(receipt)
    monitor.receipt_issued(k, receipt)
    _bind(k, receipt.lots, rid)
    if paper is not None:
        k.put_receipt(_changed(paper, ctx, replaced_by=rid))


def apply_accept_receipt(k: Keeper, ctx: Context, op: AcceptReceipt) -> None:
    """The depositor's acceptance and, where the warehouse requires it, the supervisor's
    sign-off: the receipt is live for the depositor once both are in, in either order."""
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "accept_receipt")
    _ensure(ctx.time_ms <= receipt.accept_by_ms, AcceptanceWindowOver, "the acceptance window is over")
    info = k.warehouse(receipt.warehouse)
    assert info is not None
    if ctx.author == receipt.depositor and not receipt.depositor_accepted:
        _party(k, ctx.author, *HOLDER_ROLES)
        receipt = msgspec.structs.replace(receipt, depositor_accepted=True)
    elif ctx.author == info.supervisor and info.require_signoff and not receipt.signed_off:
        _party(k, ctx.author, "supervisor")
        receipt = msgspec.structs.replace(receipt, signed_off=True)
    else:
        raise WrongSigner("a proposal is accepted by its depositor and signed off by the warehouse's supervisor")
    if receipt.depositor_accepted and (receipt.signed_off or not info.require_signoff):
        receipt = msgspec.structs.replace(
            receipt, status="active", holder=receipt.depositor,
            endorsements=_endorse(receipt, ctx, "issue", receipt.warehouse, receipt.depositor,
                                  info.supervisor if receipt.signed_off else b""))
    k.put_receipt(_changed(receipt, ctx))


def apply_reject_receipt(k: Keeper, ctx: Context, op: RejectReceipt) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "reject_receipt")
    info = k.warehouse(receipt.warehouse)
    assert info is not None
    _ensure(ctx.author in (receipt.depositor, receipt.warehouse, info.supervisor), WrongSigner,
            "a proposal is refused by its depositor or supervisor, or withdrawn by its warehouse")
    _void(k, ctx, receipt)


def _void(k: Keeper, ctx: Context, receipt: Receipt) -> None:
    """Void a receipt: its lots back nothing (or, for a refused return from paper, the paper again)."""
    paper = k.receipt(receipt.replaces_paper) if receipt.replaces_paper and receipt.status == "proposed" else None
    _bind(k, receipt.lots, paper.id if paper is not None else b"")
    if paper is not None:
        k.put_receipt(_changed(paper, ctx, replaced_by=b""))
    if receipt.pledge:
        pledge = k.pledge(receipt.pledge)
        assert pledge is not None
        k.put_pledge(msgspec.structs.replace(pledge, status="void"))
    k.put_receipt(_changed(receipt, ctx, status="void", offer=None, pledge=b""))


# --- transfer and pledge: an offer, the counterparty's acceptance, the bailee's countersignature -----------


def apply_offer_transfer(k: Keeper, ctx: Context, op: OfferTransfer) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "offer_transfer")
    _holder(k, ctx, receipt)
    _unexpired(ctx, receipt)
    to = k.party(op.to)
    _ensure(to is not None and not to.revoked and to.role in HOLDER_ROLES and op.to != receipt.holder,
            IneligibleHolder, "a receipt passes to another appointed depositor or bank")
    k.put_receipt(_changed(receipt, ctx, status="transfer_offered",
                           offer=Offer("transfer", ctx.entry_id, ctx.author, op.to, ctx.time_ms)))


def apply_request_pledge(k: Keeper, ctx: Context, op: RequestPledge) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "request_pledge")
    _holder(k, ctx, receipt)
    _unexpired(ctx, receipt)
    _ensure(op.pledgee != ctx.author, WrongRole, "a holder does not pledge to itself")
    _party(k, op.pledgee, "bank")
    finance.check_pledge_facility(k, op.pledgee, op.facility, ctx.author)
    k.put_receipt(_changed(receipt, ctx, status="pledge_requested",
                           offer=Offer("pledge", ctx.entry_id, ctx.author, op.pledgee, ctx.time_ms, op.facility,
                                       op.registration)))


def apply_accept_transfer(k: Keeper, ctx: Context, op: AcceptTransfer) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "accept_transfer")
    _counterparty(k, ctx, receipt, op.offer, "transfer", HOLDER_ROLES)


def apply_confirm_pledge(k: Keeper, ctx: Context, op: ConfirmPledge) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "confirm_pledge")
    _counterparty(k, ctx, receipt, op.offer, "pledge", ("bank",))


def _counterparty(k: Keeper, ctx: Context, receipt: Receipt, offer_id: bytes, kind: str,
                  roles: tuple[Role, ...]) -> None:
    offer = _offer(receipt, offer_id)
    _ensure(offer.kind == kind, OfferMismatch, f"the pending offer is a {offer.kind}")
    _ensure(ctx.author == offer.to and not offer.accepted, WrongSigner, "only the offer's counterparty accepts, once")
    _party(k, ctx.author, *roles)
    _unexpired(ctx, receipt)
    _complete(k, ctx, receipt, msgspec.structs.replace(offer, accepted=True))


def apply_countersign(k: Keeper, ctx: Context, op: Countersign) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "countersign")
    offer = _offer(receipt, op.offer)
    _issuer(k, ctx, receipt)
    _ensure(not offer.countersigned, WrongSigner, "countersigned already")
    _unexpired(ctx, receipt)
    _complete(k, ctx, receipt, msgspec.structs.replace(offer, countersigned=True))


def _complete(k: Keeper, ctx: Context, receipt: Receipt, offer: Offer) -> None:
    """An offer takes effect once both the counterparty and the bailee have signed."""
    if not (offer.accepted and offer.countersigned):
        k.put_receipt(_changed(receipt, ctx, offer=offer))
        return
    _party(k, offer.to, *(HOLDER_ROLES if offer.kind == "transfer" else ("bank",)))  # still appointed now
    endorsements = _endorse(receipt, ctx, offer.kind, offer.by, offer.to, receipt.warehouse)
    if offer.kind == "transfer":
        k.put_receipt(_changed(receipt, ctx, status="active", holder=offer.to, offer=None, endorsements=endorsements))
        return
    finance.check_facility_open(k, offer.to, offer.facility)
    k.put_pledge(Pledge(offer.id, offer.by, offer.to, (receipt.id,), offer.facility, offer.registration, ctx.height))
    k.put_receipt(_changed(receipt, ctx, status="pledged", pledge=offer.id, offer=None, endorsements=endorsements))


def apply_cancel_offer(k: Keeper, ctx: Context, op: CancelOffer) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "cancel_offer")
    offer = _offer(receipt, op.offer)
    _ensure(ctx.author in (offer.by, offer.to, receipt.warehouse), WrongSigner,
            "an offer is withdrawn by its maker or refused by its counterparty or the bailee")
    k.put_receipt(_changed(receipt, ctx, status="active", offer=None))


# --- under pledge ------------------------------------------------------------------------------------------


def apply_release_pledge(k: Keeper, ctx: Context, op: ReleasePledge) -> None:
    """Full release: the receipt is free. Partial release: the released lots get a free
    receipt, the rest a receipt that stays under the same pledge."""
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "release_pledge")
    pledge = _pledgee(k, ctx, receipt)
    if not op.lots or set(op.lots) == set(receipt.lots):
        k.put_pledge(msgspec.structs.replace(pledge, status="released", cure_deadline_ms=0))
        k.put_receipt(_changed(receipt, ctx, status="active", pledge=b"",
                               endorsements=_endorse(receipt, ctx, "release", pledge.pledgee, receipt.holder)))
        return
    _ensure(set(op.lots) < set(receipt.lots), NotAPartition, "released lots are lots of the receipt")
    kept = tuple(key for key in receipt.lots if key not in set(op.lots))
    free = _issue_child(k, ctx, (receipt,), op.lots, "active", receipt.holder)
    still = _issue_child(k, ctx, (receipt,), kept, receipt.status, receipt.holder, pledge.id)
    _supersede(k, ctx, receipt, (free, still))
    k.put_pledge(msgspec.structs.replace(pledge, receipts=(still.id,)))


def apply_declare_default(k: Keeper, ctx: Context, op: DeclareDefault) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "declare_default")
    pledge = _pledgee(k, ctx, receipt)
    k.put_pledge(msgspec.structs.replace(pledge, cure_deadline_ms=ctx.time_ms + op.cure_ms))
    k.put_receipt(_changed(receipt, ctx, status="defaulted"))


def apply_cure_default(k: Keeper, ctx: Context, op: CureDefault) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "cure_default")
    pledge = _pledgee(k, ctx, receipt)
    _ensure(ctx.time_ms < pledge.cure_deadline_ms, CurePeriodOver, "the cure period is over")
    k.put_pledge(msgspec.structs.replace(pledge, cure_deadline_ms=0))
    k.put_receipt(_changed(receipt, ctx, status="pledged"))


def apply_invoke_pledge(k: Keeper, ctx: Context, op: InvokePledge) -> None:
    """After an uncured default, or on expiry under pledge, the pledgee becomes the holder."""
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "invoke_pledge")
    _ensure(receipt.status == "defaulted" or receipt.expired_from in UNDER_PLEDGE, WrongStatus,
            "only a receipt under pledge is invoked")
    pledge = _pledgee(k, ctx, receipt)
    _ensure(receipt.status == "expired" or ctx.time_ms >= pledge.cure_deadline_ms, CurePeriodRunning,
            "the cure period is still running")
    k.put_pledge(msgspec.structs.replace(pledge, status="invoked"))
    k.put_receipt(_changed(receipt, ctx, status="active", holder=pledge.pledgee, pledge=b"", expired_from="",
                           endorsements=_endorse(receipt, ctx, "invoke", receipt.holder, pledge.pledgee)))


# --- delivery ---------------------------------------------------------------------------------------------


def apply_surrender(k: Keeper, ctx: Context, op: Surrender) -> None:
    """The holder hands the receipt back to the warehouse, which holds it as custodian until
    the goods are out (EWR); naming some lots delivers those and keeps a receipt for the rest."""
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "surrender")
    _ensure(receipt.status == "active" or receipt.expired_from == "active", ReceiptPledged,
            "a pledged receipt moves only with its pledgee")
    _holder(k, ctx, receipt)
    delivery = Delivery(receipt.holder, op.collector_ref, ctx.height, ctx.time_ms)
    if not op.lots or set(op.lots) == set(receipt.lots):
        k.put_receipt(_changed(receipt, ctx, status="delivery_pending", holder=receipt.warehouse, delivery=delivery,
                               expired_from="",
                               endorsements=_endorse(receipt, ctx, "surrender", receipt.holder, receipt.warehouse)))
        return
    _ensure(set(op.lots) < set(receipt.lots), NotAPartition, "delivered lots are lots of the receipt")
    kept = tuple(key for key in receipt.lots if key not in set(op.lots))
    out = _issue_child(k, ctx, (receipt,), op.lots, "delivery_pending", receipt.warehouse, delivery=delivery)
    rest = _issue_child(k, ctx, (receipt,), kept, "active", receipt.holder)
    _supersede(k, ctx, receipt, (out, rest))


def apply_cancel_receipt(k: Keeper, ctx: Context, op: CancelReceipt) -> None:
    """The warehouse cancels as it ships, when outbound evidence after the surrender covers every lot."""
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "cancel_receipt")
    _issuer(k, ctx, receipt)
    assert receipt.delivery is not None
    since = receipt.delivery.height
    for lot in _lots_of(k, receipt.lots):
        _ensure(lot.outbound_event != b"" and lot.outbound_height >= since, OutboundEvidenceMissing,
                f"no outbound weighing of coil {lot.coil} since the surrender")
    for lot in _lots_of(k, receipt.lots):
        k.put_lot(msgspec.structs.replace(lot, status="shipped", receipt=b""))
    k.put_receipt(_changed(receipt, ctx, status="cancelled"))


# --- split and merge ---------------------------------------------------------------------------------------


def apply_split_receipt(k: Keeper, ctx: Context, op: SplitReceipt) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "split_receipt")
    _holder(k, ctx, receipt)
    _unexpired(ctx, receipt)
    named = [key for part in op.parts for key in part]
    _ensure(len(named) == len(set(named)) and set(named) == set(receipt.lots), NotAPartition,
            "the parts hold every lot of the receipt, each lot in one part")
    children = tuple(_issue_child(k, ctx, (receipt,), part, "active", receipt.holder) for part in op.parts)
    _supersede(k, ctx, receipt, children)


MERGE_SAME: Final = ("warehouse", "holder", "depositor", "terms", "negotiable", "rights_notice")
GOODS_SAME: Final = ("commodity", "spec", "grade", "producer", "packaging")


def apply_merge_receipts(k: Keeper, ctx: Context, op: MergeReceipts) -> None:
    receipts = tuple(_receipt(k, rid) for rid in op.receipts)
    for receipt in receipts:
        _may(k, receipt, "merge_receipts")
        _holder(k, ctx, receipt)
        _unexpired(ctx, receipt)
    first = receipts[0]
    _ensure(all(getattr(r, f) == getattr(first, f) for r in receipts for f in MERGE_SAME)
            and all(getattr(r.goods, f) == getattr(first.goods, f) for r in receipts for f in GOODS_SAME),
            MergeMismatch, "merged receipts share warehouse, holder, depositor, terms and goods description")
    lots = tuple(key for r in receipts for key in r.lots)
    child = _issue_child(k, ctx, receipts, lots, "active", first.holder)
    for receipt in receipts:
        _supersede(k, ctx, receipt, (child,))


# --- expiry, paper ------------------------------------------------------------------------------------------


def apply_expire_receipt(k: Keeper, ctx: Context, op: ExpireReceipt) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "expire_receipt")
    _ensure(ctx.time_ms >= receipt.terms.storage_until_ms, NotYetExpired, "the storage period is not over")
    k.put_receipt(_changed(receipt, ctx, status="expired", expired_from=receipt.status))


def apply_extend_receipt(k: Keeper, ctx: Context, op: ExtendReceipt) -> None:
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "extend_receipt")
    _issuer(k, ctx, receipt)
    _ensure(op.until_ms > max(ctx.time_ms, receipt.terms.storage_until_ms), ExtensionNotLater,
            "an extension ends later than now and than the current period")
    terms = msgspec.structs.replace(receipt.terms, storage_until_ms=op.until_ms)
    status = receipt.expired_from if receipt.status == "expired" else receipt.status
    extended = _changed(receipt, ctx, terms=terms, status=status, expired_from="")
    k.put_receipt(extended)
    monitor.receipt_issued(k, extended)


def apply_convert_to_paper(k: Keeper, ctx: Context, op: ConvertToPaper) -> None:
    """The electronic record ceases to have effect; its lots stay bound to the paper (INV-12)."""
    receipt = _receipt(k, op.receipt)
    _may(k, receipt, "convert_to_paper")
    _holder(k, ctx, receipt)
    _unexpired(ctx, receipt)
    k.put_receipt(_changed(receipt, ctx, status="converted_to_paper", paper_ref=op.paper_ref,
                           endorsements=_endorse(receipt, ctx, "convert", receipt.holder, receipt.holder)))


# --- the regulator and the council ---------------------------------------------------------------------------


def apply_open_case(k: Keeper, ctx: Context, op: OpenCase) -> None:
    _ensure(ctx.regulator or ctx.council, NotRegulator, "cases are opened by a regulator or the council")
    number = k.last_case() + 1
    k.put_case(Case(number, op.reason_code, op.legal_ref, op.summary, ctx.author, ctx.height, ctx.time_ms))


def _case(k: Keeper, number: int) -> Case:
    case = k.case(number)
    _ensure(case is not None, CaseUnknown, f"no case {number}")
    assert case is not None
    return case


def apply_freeze_receipt(k: Keeper, ctx: Context, op: FreezeReceipt) -> None:
    _ensure(ctx.regulator, NotRegulator, "receipts are frozen by a regulator")
    _case(k, op.case)
    receipt = _receipt(k, op.receipt)
    _ensure(receipt.live, WrongStatus, "only a live receipt is frozen")
    _ensure(receipt.frozen_case == 0, AlreadyFrozen, f"frozen already under case {receipt.frozen_case}")
    k.put_receipt(_changed(receipt, ctx, frozen_case=op.case))


def apply_unfreeze_receipt(k: Keeper, ctx: Context, op: UnfreezeReceipt) -> None:
    _ensure(ctx.regulator, NotRegulator, "receipts are unfrozen by a regulator")
    receipt = _receipt(k, op.receipt)
    _ensure(receipt.frozen_case != 0, NotFrozen, "the receipt is not frozen")
    _ensure(receipt.frozen_case == op.case, CaseMismatch, f"the freeze was imposed under case {receipt.frozen_case}")
    k.put_receipt(_changed(receipt, ctx, frozen_case=0))


def apply_void_receipt(k: Keeper, ctx: Context, op: VoidReceipt) -> None:
    _ensure(ctx.council, NotCouncil, "receipts are voided by the council")
    _case(k, op.case)
    receipt = _receipt(k, op.receipt)
    _ensure(receipt.live, WrongStatus, "only a live receipt is voided")
    _void(k, ctx, receipt)


# --- monitoring (`monitor.py`) ------------------------------------------------------------------------------


def _supervisor(k: Keeper, ctx: Context, warehouse: bytes) -> None:
    info = k.warehouse(warehouse)
    _ensure(info is not None and ctx.author == info.supervisor, NotSupervisor,
            "only the warehouse's supervisor may do this")
    _party(k, ctx.author, "supervisor")


def apply_resolve_alert(k: Keeper, ctx: Context, op: ResolveAlert) -> None:
    alert = k.alert(op.alert)
    _ensure(alert is not None, AlertUnknown, "no such alert")
    assert alert is not None
    _ensure(alert.status == "open", AlertResolved, "the alert is resolved already")
    _supervisor(k, ctx, alert.warehouse)
    monitor.resolve(k, alert, Resolution(ctx.author, op.code, op.note, ctx.entry_id, ctx.height))


def apply_record_stocktake(k: Keeper, ctx: Context, op: RecordStocktake) -> None:
    """R9 runs on it at the end of the checkpoint, with the book as it then stands."""
    _party(k, op.warehouse, "warehouse")
    _supervisor(k, ctx, op.warehouse)
    info = k.warehouse(op.warehouse)
    assert info is not None
    _ensure(op.bin in info.bins, UnknownBin, f"no bin {op.bin!r} at this warehouse")
    k.enqueue(Pending("stocktake", ctx.entry_id, ctx.height,
                      Stocktake(op.warehouse, op.bin, op.counted_kg, op.counted_pieces, op.note)))


def apply_set_monitoring(k: Keeper, ctx: Context, op: SetMonitoring) -> None:
    _ensure(ctx.council, NotCouncil, "the monitoring policy is the council's")
    k.put_policy(Policy(op.tolerance_permille, op.business_hours_start_min, op.business_hours_end_min,
                        op.heartbeat_factor, op.ageing_days, op.expiry_notice_days))


# --- the entry point -----------------------------------------------------------------------------------------

Apply = Callable[[Keeper, Context, Any], None]

APPLY: Final[Mapping[type[WarehouseOperation], Apply]] = MappingProxyType({
    RegisterWarehouse: apply_register_warehouse,
    RegisterParty: apply_register_party,
    RevokeParty: apply_revoke_party,
    ProposeDevice: apply_propose_device,
    ApproveDevice: apply_approve_device,
    RenewCalibration: apply_renew_calibration,
    RevokeDevice: apply_revoke_device,
    RecordReading: apply_record_reading,
    RegisterLot: apply_register_lot,
    InspectLot: apply_inspect_lot,
    ProposeReceipt: apply_propose_receipt,
    AcceptReceipt: apply_accept_receipt,
    RejectReceipt: apply_reject_receipt,
    OfferTransfer: apply_offer_transfer,
    AcceptTransfer: apply_accept_transfer,
    RequestPledge: apply_request_pledge,
    ConfirmPledge: apply_confirm_pledge,
    Countersign: apply_countersign,
    CancelOffer: apply_cancel_offer,
    ReleasePledge: apply_release_pledge,
    DeclareDefault: apply_declare_default,
    CureDefault: apply_cure_default,
    InvokePledge: apply_invoke_pledge,
    Surrender: apply_surrender,
    CancelReceipt: apply_cancel_receipt,
    SplitReceipt: apply_split_receipt,
    MergeReceipts: apply_merge_receipts,
    ExpireReceipt: apply_expire_receipt,
    ExtendReceipt: apply_extend_receipt,
    ConvertToPaper: apply_convert_to_paper,
    OpenCase: apply_open_case,
    FreezeReceipt: apply_freeze_receipt,
    UnfreezeReceipt: apply_unfreeze_receipt,
    VoidReceipt: apply_void_receipt,
    ResolveAlert: apply_resolve_alert,
    RecordStocktake: apply_record_stocktake,
    SetMonitoring: apply_set_monitoring,
    **finance.APPLY,
})

APPLY_BY_KIND: Final[Mapping[str, Apply]] = MappingProxyType({cls.KIND: fn for cls, fn in APPLY.items()})


def apply(target: Keeper | State, ctx: Context, op: WarehouseOperation, *, checked: bool = False) -> None:
    """Execute one warehouse operation: its stateless rules (unless the caller `checked`
    them), then its transition, all or nothing.

    Raises a `WarehouseRejected` with the refusal's code; the state is then unchanged (the
    transition runs in a state transaction, nested in the entry's when on the chain)."""
    keeper = target if isinstance(target, Keeper) else Keeper(target)
    if not checked:
        try:
            op.check_body()
        except InvalidOperation as exc:
            raise StatelessRuleBroken(exc) from None
    state = keeper.state
    state.begin_transaction()
    try:
        APPLY[type(op)](keeper, ctx, op)
    except BaseException:
        state.rollback_transaction()
        raise
    state.commit_transaction()


__all__ = ["APPLY", "APPLY_BY_KIND", "Context", "EvidenceInvalid", "apply"]

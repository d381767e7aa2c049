"""The answers of the application queries whose shapes the API knows, as types: each has the
checkpoint `height` first, then the fields the application's query renders, in its order.
A route answers one of these by converting the query's answer strictly, so a field the type
lacks fails (in the tests first) instead of reaching a client undescribed.

Statuses and kinds are plain strings here: the API does not import the applications' modules
(they import the API's client). A record the application renders with `to_view` keeps its
record's fields in order, bytes as hex (`Hex`); keys the query turns into accounts are `Address`,
and a party not named yet is an empty string."""

from __future__ import annotations

from typing import Annotated, Any, Final, Generic, TypeVar, cast

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

from .responses import Address, Base64, Height, Hex, Response


def height_first(view: type[Response], name: str, doc: str) -> type[Response]:
    """An answer that is a view with the checkpoint's height before its fields. A subclass cannot
    say it (msgspec puts a parent's fields first, and the field order is the wire order), so the
    type is made from the view's fields: a field added to the view is in the answer too."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [("height", Height)]
    fields += [(f.name, f.type) if f.required else (f.name, f.type, f.default) for f in msgspec.structs.fields(view)]
    made = msgspec.defstruct(name, fields, bases=(Response,), kw_only=True, frozen=True, module=__name__)
    made.__doc__ = doc
    return cast(type[Response], made)


# --- notary -----------------------------------------------------------------------------------


class NotaryDocumentView(Response, frozen=True, kw_only=True):
    """A registered document as the notary renders it: an item of `notary/owned`, and after the
    height the whole of `notary/document`."""

    document: Annotated[Hex, Meta(description="its SHA-256")]
    owner: Address
    title: str
    registered_entry: Hex
    registered_height: Height
    registered_ms: int
    transfers: Annotated[int, Meta(ge=0, description="times it was handed on")]
    last_entry: Annotated[Hex | None, Meta(description="the last transfer; null when never handed on")]


NotaryDocument: Final = height_first(
    NotaryDocumentView, "NotaryDocument", "`notary/document`: a registered document, its owner and its history counts.")


class NotaryOwned(Response, frozen=True, kw_only=True):
    """`notary/owned`: the documents an account holds."""

    height: Height
    owner: Address
    documents: list[NotaryDocumentView]


# --- warehouse --------------------------------------------------------------------------------


class WarehouseReceiptLine(Response, frozen=True, kw_only=True):
    """One line of the receipt register. A party not yet named is an empty string."""

    id: Hex
    number: int
    warehouse: Address
    holder: Address
    depositor: Address
    status: Annotated[str, Meta(description="proposed, active, transfer_offered, pledge_requested, pledged,"
                                            " defaulted, delivery_pending, expired, superseded, cancelled, void"
                                            " or converted_to_paper")]
    frozen_case: Annotated[int, Meta(ge=0, description="the regulator's case freezing it; 0: not frozen")]
    pledge: Annotated[Hex, Meta(description="the live pledge's id; empty when none")]
    commodity: str
    spec: str
    grade: str
    quantity_kg: int
    pieces: int
    lots: Annotated[int, Meta(ge=0, description="how many lots it covers")]
    issued_height: Height
    storage_until_ms: int


class WarehouseRegister(Response, frozen=True, kw_only=True):
    """`warehouse/register`: the receipt register, filtered; `count` is every match, the list at most
    the first ones."""

    height: Height
    count: Annotated[int, Meta(ge=0)]
    receipts: list[WarehouseReceiptLine]


class WarehouseLineageLine(WarehouseReceiptLine, frozen=True, kw_only=True):
    """A receipt of the lineage: its register line, the receipts it came from and those that came
    from it, and the entries that wrote it."""

    parents: list[Hex]
    children: list[Hex]
    history: list[Hex]


class WarehouseHistory(Response, frozen=True, kw_only=True):
    """`warehouse/history`: the receipt's entries, and its lineage (parents and children, transitively)."""

    height: Height
    receipt: Hex
    history: list[Hex]
    lineage: list[WarehouseLineageLine]


class WarehouseTrail(Response, frozen=True, kw_only=True):
    """`warehouse/trail`: the entries a proof of the receipt's history is made of."""

    height: Height
    receipt: Hex
    history: Annotated[list[Hex], Meta(description="the entries that wrote the receipt")]
    lots: Annotated[list[Hex], Meta(description="the bookings of its lots")]
    evidence: Annotated[list[Hex], Meta(description="the device readings of them")]


# --- warehouse: records as `to_view` renders them -----------------------------------------------------

B = TypeVar("B")  # how a record's bytes are written: Hex (`to_view`) or Base64 (msgspec's own JSON)
R = TypeVar("R")  # the resolution's type, written the same way


class Goods(Response, frozen=True, kw_only=True):
    """What a receipt stands for (Civil Code art. 909(2))."""

    commodity: str
    spec: str
    grade: str
    producer: str
    packaging: str
    marks: str
    pieces: int
    quantity_kg: int


class Insurance(Response, frozen=True, kw_only=True):
    insurer: str
    sum_insured: int
    currency: str
    until_ms: int


class Terms(Response, frozen=True, kw_only=True):
    """A receipt's shrinkage standard, storage period, fee and insurance."""

    shrinkage_permille: int
    storage_until_ms: int
    fee_per_tonne_day: Annotated[int, Meta(description="minor units of `currency`")]
    currency: str
    insurance: Insurance | None


class Offer(Response, frozen=True, kw_only=True):
    """A pending transfer or pledge of a receipt."""

    kind: Annotated[str, Meta(description="transfer or pledge")]
    id: Annotated[Hex, Meta(description="the offering entry")]
    by: Hex
    to: Hex
    at_ms: int
    facility: str
    registration: str
    accepted: bool
    countersigned: bool


class Endorsement(Response, frozen=True, kw_only=True):
    kind: Annotated[str, Meta(description="issue, transfer, pledge, release, invoke, surrender or convert")]
    endorser: Hex
    endorsee: Hex
    countersigned_by: Hex
    entry: Hex
    height: int
    time_ms: int


class Delivery(Response, frozen=True, kw_only=True):
    surrendered_by: Hex
    collector_ref: Annotated[Hex, Meta(description="hash of the collector's identity document")]
    height: int
    time_ms: int


class ReceiptRecord(Response, frozen=True, kw_only=True):
    """A whole electronic warehouse receipt, keys as hex (empty when not set)."""

    id: Hex
    number: int
    warehouse: Hex
    negotiable: bool
    rights_notice: Hex
    issue_place: str
    signer: str
    issued_ms: int
    issued_height: int
    issue_entry: Hex
    depositor: Hex
    depositor_name: str
    depositor_domicile: str
    depositor_uscc: str
    holder: Hex
    goods: Goods
    lots: list[Hex]
    bins: list[str]
    terms: Terms
    evidence: Annotated[list[Hex], Meta(description="the intake event ids")]
    mill_certs: list[Hex]
    status: str
    accept_by_ms: int
    doc_kind: str
    depositor_accepted: bool
    signed_off: bool
    parents: list[Hex]
    children: list[Hex]
    pledge: Hex
    offer: Offer | None
    endorsements: list[Endorsement]
    delivery: Delivery | None
    frozen_case: int
    expired_from: str
    paper_ref: str
    replaces_paper: Hex
    replaced_by: Hex
    version: int
    last_entry: Hex
    held: Annotated[list[Hex], Meta(description="the open alerts holding it")]


class PledgeView(Response, frozen=True, kw_only=True):
    """A pledge, and its pledgee as an account."""

    id: Annotated[Hex, Meta(description="the requesting entry")]
    pledgor: Hex
    pledgee: Hex
    receipts: list[Hex]
    facility: str
    registration: str
    confirmed_height: int
    status: Annotated[str, Meta(description="live, released, invoked or void")]
    cure_deadline_ms: int
    pledgee_address: Address


class WarehouseReceipt(Response, frozen=True, kw_only=True):
    """`warehouse/receipt`: the whole receipt record, its pledge and the entries that wrote it."""

    height: Height
    receipt: ReceiptRecord
    holder_address: Address
    warehouse_address: Address
    pledge: Annotated[PledgeView | None, Meta(description="null when not pledged")]
    history: list[Hex]


class LotRecord(Response, frozen=True, kw_only=True):
    """A steel coil or bundle, identified by mill, heat and coil."""

    key: Hex
    mill: str
    heat: str
    coil: str
    form: str
    grade: str
    spec: str
    pieces: int
    net_kg: int
    intake_event: Hex
    mill_cert: Hex
    production_date: str
    warehouse: Hex
    bin: str
    status: Annotated[str, Meta(description="in_stock or shipped")]
    receipt: Hex
    outbound_event: Hex
    outbound_height: Annotated[int, Meta(description="-1 while in stock")]
    inspection: Hex
    entry: Annotated[Hex, Meta(description="the entry that booked it")]


class EvidenceLine(Response, frozen=True, kw_only=True):
    """One device reading with its weighbridge ticket."""

    event_id: Hex
    device: str
    device_kind: str
    biz_step: str
    net_kg: Annotated[int, Meta(description="-1: the event weighs nothing")]
    gross_kg: Annotated[int, Meta(description="-1 when the reading states none")]
    tare_kg: Annotated[int, Meta(description="-1 when the reading states none")]
    time_ms: int
    entry: Hex
    height: Height
    lot: Annotated[Hex, Meta(description="the lot whose intake it recorded; empty before one is booked")]


class WarehouseLot(Response, frozen=True, kw_only=True):
    """`warehouse/lot`: the lot and its device evidence."""

    height: Height
    lot: LotRecord
    evidence: list[EvidenceLine]


# --- warehouse: EPCIS 2.0, as far as its shape is fixed -----------------------------------------------

Number = Annotated[int | float, Meta(description="a decimal, written as a JSON number")]


class EpcisId(Response, frozen=True, kw_only=True):
    id: str


class EpcisQuantity(Response, frozen=True, kw_only=True):
    epcClass: str
    quantity: Number
    uom: str


class EpcisBizTransaction(Response, frozen=True, kw_only=True):
    type: str
    bizTransaction: str


class EpcisSensorMetadata(Response, frozen=True, kw_only=True):
    deviceID: str
    time: str | UnsetType = UNSET
    deviceMetadata: str | UnsetType = UNSET
    rawData: str | UnsetType = UNSET


class EpcisSensorReport(Response, frozen=True, kw_only=True):
    type: str
    value: Number
    uom: str
    weighing: Annotated[str, Meta(description="gross or tare; absent: net")] | UnsetType = field(
        default=UNSET, name="bl:weighing")


class EpcisSensorElement(Response, frozen=True, kw_only=True):
    sensorMetadata: EpcisSensorMetadata
    sensorReport: list[EpcisSensorReport]


class EpcisEvent(Response, frozen=True, kw_only=True):
    """An EPCIS 2.0 ObjectEvent as a device reading renders it; an element the reading lacks is absent."""

    type: str
    eventTime: str
    eventTimeZoneOffset: str
    action: str
    bizStep: str
    device_id: str = field(name="bl:deviceID")
    device_seq: int = field(name="bl:deviceSeq")
    disposition: str | UnsetType = UNSET
    epcList: list[str] | UnsetType = UNSET
    quantityList: list[EpcisQuantity] | UnsetType = UNSET
    readPoint: EpcisId | UnsetType = UNSET
    bizLocation: EpcisId | UnsetType = UNSET
    bizTransactionList: list[EpcisBizTransaction] | UnsetType = UNSET
    certificationInfo: str | UnsetType = UNSET
    sensorElementList: list[EpcisSensorElement] | UnsetType = UNSET
    eventID: str


class EpcisBody(Response, frozen=True, kw_only=True):
    eventList: list[EpcisEvent]


class EpcisDocument(Response, frozen=True, kw_only=True):
    """An EPCIS 2.0 JSON-LD document. Its `@context` is JSON-LD's own: an IRI or a map of
    prefixes to IRIs, a list of either, so its items are open JSON."""

    context: list[Any] = field(name="@context")
    type: str
    schemaVersion: str
    creationDate: str
    epcisBody: EpcisBody


class WarehouseEvidence(Response, frozen=True, kw_only=True):
    """`warehouse/evidence`: the device evidence of the receipt's lots, and the same as one EPCIS 2.0
    document."""

    height: Height
    receipt: Hex
    events: list[EvidenceLine]
    epcis: EpcisDocument


# --- warehouse: parties and devices -----------------------------------------------------------------


class PartyView(Response, frozen=True, kw_only=True):
    """A registered key with one role, and its account; `appointed_by` empty: by the council."""

    key: Hex
    role: Annotated[str, Meta(description="warehouse, depositor, bank, supervisor or inspector")]
    name: str
    uscc: Annotated[str, Meta(description="the unified social credit code")]
    domicile: str
    appointed_by: Hex
    appointed_entry: Hex
    appointed_height: int
    revoked: bool
    address: Address


class WarehouseInfo(Response, frozen=True, kw_only=True):
    """A warehouse's storage place, bins, supervisor and receipt series."""

    key: Hex
    location: Annotated[str, Meta(description="the EPCIS bizLocation id (an SGLN URN)")]
    supervisor: Hex
    bins: list[str]
    require_signoff: bool
    next_receipt_no: int


class Calibration(Response, frozen=True, kw_only=True):
    certificate: Annotated[Hex, Meta(description="hash of the calibration certificate")]
    accuracy_class: str
    scale_interval_g: int
    expires_ms: int


class DeviceRecord(Response, frozen=True, kw_only=True):
    """A registered device."""

    device_id: Annotated[str, Meta(description="its GIAI URN")]
    kind: str
    warehouse: Hex
    bins: list[str]
    public_key: Hex
    read_point: str
    calibration: Calibration
    status: Annotated[str, Meta(description="pending, active or revoked")]
    last_seq: int
    heartbeat_ms: Annotated[int, Meta(description="0: it sends no heartbeats")]
    last_seen_ms: Annotated[int, Meta(description="-1: never seen")]
    heartbeat_due_ms: int
    entry: Annotated[Hex, Meta(description="the proposal that bound its id to its key")]


class DeviceView(DeviceRecord, frozen=True, kw_only=True):
    """A device and its own account (its key's address)."""

    address: Address


class WarehouseParty(Response, frozen=True, kw_only=True):
    """`warehouse/party`: a registered party, and for a warehouse its bins, supervisor, series and devices."""

    height: Height
    party: PartyView
    warehouse: Annotated[WarehouseInfo | None, Meta(description="null when the party is no warehouse")]
    devices: list[DeviceRecord]


class WarehouseDevice(Response, frozen=True, kw_only=True):
    """`warehouse/device`: a device, its status, calibration and last sequence number."""

    height: Height
    device: DeviceView


class DeviceHealth(Response, frozen=True, kw_only=True):
    """A device's health: when it was last seen, when a heartbeat is due, its open R7 alerts."""

    device_id: str
    kind: str
    warehouse: Address
    bins: list[str]
    status: str
    last_seq: int
    heartbeat_ms: int
    last_seen_ms: int
    heartbeat_due_ms: int
    calibration_expires_ms: int
    open_alerts: Annotated[int, Meta(ge=0)]


class WarehouseDevices(Response, frozen=True, kw_only=True):
    """`warehouse/devices`: every device with its health; `count` is every one, the list at most the first."""

    height: Height
    count: Annotated[int, Meta(ge=0)]
    devices: list[DeviceHealth]


# --- warehouse: monitoring ----------------------------------------------------------------------------


class ResolutionFields(Response, Generic[B], frozen=True, kw_only=True):
    by: B
    code: Annotated[str, Meta(description="false_positive, explained, confirmed_shortage or device_fault")]
    note: str
    entry: B
    height: int


class ResolutionView(ResolutionFields[Hex], frozen=True, kw_only=True):
    """How an alert was resolved, bytes as hex."""


class ResolutionRecord(ResolutionFields[Base64], frozen=True, kw_only=True):
    """How an alert was resolved, bytes as base64."""


class AlertFields(Response, Generic[B, R], frozen=True, kw_only=True):
    """An alert's record: one finding of a reconciliation rule, what it compared and what it held.
    Written with its bytes as hex (the API's views) or as base64 (the record's own JSON)."""

    id: B
    rule: Annotated[str, Meta(description="R1 .. R12")]
    rule_version: int
    severity: Annotated[str, Meta(description="LOW, MEDIUM, HIGH or CRITICAL")]
    warehouse: B
    summary: str
    height: int
    time_ms: int
    bins: list[str]
    receipts: list[B]
    lots: list[B]
    devices: list[str]
    unit: Annotated[str, Meta(description="kg, pieces, ms, or empty when nothing is measured")]
    expected: int
    observed: int
    delta: Annotated[int, Meta(description="observed - expected")]
    tolerance: int
    tolerance_inputs: Annotated[list[tuple[str, int]], Meta(description="the tolerance formula's inputs, by name")]
    evidence: Annotated[list[B], Meta(description="EPCIS event ids, or the stocktake's entry")]
    held_receipts: list[B]
    held_bins: list[str]
    status: Annotated[str, Meta(description="open or resolved")]
    resolution: R | None


class AlertView(AlertFields[Hex, ResolutionView], frozen=True, kw_only=True):
    """An alert, bytes as hex, and its warehouse as an account."""

    warehouse_address: Address


class AlertRecord(AlertFields[Base64, ResolutionRecord], frozen=True, kw_only=True):
    """The alert's record as msgspec writes it (bytes as base64), what a proof of the alert holds."""


class WarehouseAlerts(Response, frozen=True, kw_only=True):
    """`warehouse/alerts`: alerts, oldest first; `count` is every match, the list at most the first ones."""

    height: Height
    count: Annotated[int, Meta(ge=0)]
    alerts: list[AlertView]


class WarehouseAlert(Response, frozen=True, kw_only=True):
    """`warehouse/alert`: one alert: what it compared, its tolerance and evidence, what it held, its resolution."""

    height: Height
    alert: AlertView


class WarehouseAlertTrail(Response, frozen=True, kw_only=True):
    """`warehouse/alert_trail`: the alert and the entries a proof of it is made of."""

    height: Height
    alert: AlertView
    record: AlertRecord
    evidence: Annotated[list[Hex], Meta(description="the entries carrying its evidence")]
    devices: Annotated[list[Hex], Meta(description="the registrations of the reading devices")]
    lots: Annotated[list[Hex], Meta(description="for R2 and R5: the bookings of the coils")]
    intakes: Annotated[list[Hex], Meta(description="for R2 and R5: their intake weighings")]


class HeldReceiptLine(WarehouseReceiptLine, frozen=True, kw_only=True):
    """A held receipt's register line, and the alerts holding it."""

    held: list[Hex]


class HeldBin(Response, frozen=True, kw_only=True):
    warehouse: Address
    bin: str
    alerts: list[Hex]


class WarehouseHolds(Response, frozen=True, kw_only=True):
    """`warehouse/holds`: the HELD overlay: held receipts and held bins, each with the alerts holding it."""

    height: Height
    receipts: list[HeldReceiptLine]
    bins: list[HeldBin]


class BinLine(Response, frozen=True, kw_only=True):
    """A bin's book, its last verified figure and the alerts holding it."""

    bin: str
    book_kg: int
    book_pieces: int
    lots: int
    pledged_kg: int
    verified_kg: Annotated[int, Meta(description="-1: never verified")]
    verified_height: int
    verified_source: Annotated[str, Meta(description="lidar, stocktake, or empty")]
    held_by: list[Hex]


class OwnerLine(Response, frozen=True, kw_only=True):
    """An owner's live receipts' kilograms, by what binds them."""

    holder: Address
    free_kg: int
    pledged_kg: int
    frozen_kg: int
    held_kg: int


class WarehouseStock(Response, frozen=True, kw_only=True):
    """`warehouse/stock`: the stock statement of a warehouse, per bin and per owner."""

    height: Height
    warehouse: Address
    bins: list[BinLine]
    owners: list[OwnerLine]
    live_receipts_kg: int
    verified_kg: int
    verified_bins: int


# --- warehouse: finance -------------------------------------------------------------------------------


class KindRef(Response, frozen=True, kw_only=True):
    """The latest usable day's price of one kind of mark, and the trading day's before it."""

    kind: Annotated[str, Meta(description="spot or settlement")]
    day: str
    price: int
    prev_day: str
    prev_price: int


class SpecHeadView(Response, frozen=True, kw_only=True):
    """A spec's latest good price, and whether it is older than the last trading day."""

    spec: str
    day: str
    price: int
    source: str
    refs: list[KindRef]
    stale: bool


class MarkView(Response, frozen=True, kw_only=True):
    """One published price; `net_price` is ex-VAT, per tonne, in minor units."""

    spec: str
    source: str
    kind: str
    day: str
    price: int
    currency: str
    vat_included: bool
    net_price: int
    publisher: Address
    entry: Hex
    height: int
    status: Annotated[str, Meta(description="usable or unconfirmed")]
    confirmed_by: Annotated[str, Meta(description="the second source that confirmed a move beyond the limit")]


class DayPrice(Response, frozen=True, kw_only=True):
    spec: str
    day: str
    price: int
    source: str
    kind: str


class WarehousePrices(Response, frozen=True, kw_only=True):
    """`warehouse/prices`: the as-of day and each spec's latest good price; asked with a spec, its marks and
    daily prices too."""

    height: Height
    as_of: Annotated[str, Meta(description="the latest day a usable mark names; empty before any")]
    trading_day: int
    specs: list[SpecHeadView]
    marks: Annotated[list[MarkView], Meta(description="only asked with a spec: its marks, newest last")] | UnsetType = (
        UNSET)
    daily: Annotated[list[DayPrice], Meta(description="only asked with a spec")] | UnsetType = UNSET


class FacilitySummary(Response, frozen=True, kw_only=True):
    """A facility's state, its latest LTV and collateral."""

    bank: Address
    name: str
    borrower: Address
    state: str
    limit: int
    currency: str
    outstanding: int
    cash: int
    ltv_bp: int
    collateral: int
    day: str
    deadline_trading_day: Annotated[int, Meta(description="in a margin call, the last trading day to cure; else 0")]


class WarehouseFacilities(Response, frozen=True, kw_only=True):
    """`warehouse/facilities`: the facilities; `count` is every one, the list at most the first ones."""

    height: Height
    count: Annotated[int, Meta(ge=0)]
    facilities: list[FacilitySummary]


class FacilityEvent(Response, frozen=True, kw_only=True):
    """One state change of a facility: when, at what LTV, and why."""

    day: str
    height: int
    state: str
    ltv_bp: int
    cause: str


class FacilityView(Response, frozen=True, kw_only=True):
    """A facility's record, its bank and borrower as accounts."""

    bank: Address
    name: str
    borrower: Address
    limit: int
    currency: str
    haircut_bp: int
    initial_ltv_bp: int
    warning_bp: int
    call_bp: int
    liquidation_bp: int
    cure_days: int
    max_warehouse_bp: int
    max_spec_bp: int
    opened_entry: Hex
    opened_height: int
    state: Annotated[str, Meta(description="performing, watch, margin_call, cured, default, enforcement or closed")]
    outstanding: int
    outstanding_day: str
    cash: int
    deadline_ordinal: int
    last_day: str
    last_ltv_bp: int
    last_collateral: int
    events: list[FacilityEvent]


class LtvDay(Response, frozen=True, kw_only=True):
    day: str
    ltv_bp: int
    collateral: int
    outstanding: int
    state: str


class ValuationLine(Response, frozen=True, kw_only=True):
    receipt: Hex
    spec: str
    warehouse: Address
    quantity_kg: int
    price: Annotated[int, Meta(description="per tonne, ex-VAT; 0 when the spec has no price")]
    source: str
    price_day: str
    stale: bool
    haircut_bp: int
    value: int


class Share(Response, frozen=True, kw_only=True):
    name: Annotated[str, Meta(description="a warehouse's address, or a spec")]
    value: int
    share_bp: int
    breach: bool


class ValuationView(Response, frozen=True, kw_only=True):
    """A facility's daily valuation statement, accounts as addresses."""

    bank: Address
    facility: str
    day: str
    height: int
    outstanding: int
    cash: int
    collateral: int
    ltv_bp: int
    state: str
    headroom_warning: int
    headroom_call: int
    headroom_liquidation: int
    stale: bool
    concentration_breach: bool
    lines: list[ValuationLine]
    warehouses: list[Share]
    specs: list[Share]


class WarehouseFacility(Response, frozen=True, kw_only=True):
    """`warehouse/facility`: its terms, state and state changes, its LTV by day, its live pledges and its
    latest valuation."""

    height: Height
    facility: FacilityView
    events: list[FacilityEvent]
    ltv_history: list[LtvDay]
    pledges: list[Hex]
    valuation: Annotated[ValuationView | None, Meta(description="null before its first valuation")]


class WarehouseValuation(Response, frozen=True, kw_only=True):
    """`warehouse/valuation`: a facility's daily valuation statement."""

    height: Height
    valuation: ValuationView


class BankExposure(Response, frozen=True, kw_only=True):
    bank: Address
    facilities: int
    outstanding: int
    collateral: int
    margin_calls: int
    defaults: int


class WarehouseExposure(Response, frozen=True, kw_only=True):
    """One bank's collateral at one warehouse, on its facilities' latest valuations."""

    bank: Address
    warehouse: Address
    collateral: int


class WarehouseExposures(Response, frozen=True, kw_only=True):
    """`warehouse/exposure`: systemic exposure, per bank and per (bank, warehouse)."""

    height: Height
    as_of: str
    banks: list[BankExposure]
    warehouses: list[WarehouseExposure]

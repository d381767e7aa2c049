"""The warehouse application's records, and its lifecycle as data.

Every record is a frozen msgspec struct stored as canonical msgpack under the application's
prefix (`keeper.py`). Amounts are integers (kilograms, minor currency units, milliseconds); keys
are 32-byte Ed25519 public keys; hashes are 32-byte SHA-256 digests.

`TRANSITIONS` is the receipt state machine as a table (operation kind → the states it may
start from → the state it leads to), in the style of h11's `_state.py`: the apply functions
consult it, and the tests check every observed move against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

import msgspec

from ... import codec
from .epcis import Reading

Role = Literal["warehouse", "depositor", "bank", "supervisor", "inspector"]
DeviceKind = Literal["weighbridge", "gate_reader", "camera", "lidar", "door", "rfid_gate", "gnss_tag", "env"]
DeviceStatus = Literal["pending", "active", "revoked"]
LotStatus = Literal["in_stock", "shipped"]
Status = Literal[
    "proposed", "active", "transfer_offered", "pledge_requested", "pledged", "defaulted", "delivery_pending",
    "expired", "superseded", "cancelled", "void", "converted_to_paper",
]
PledgeStatus = Literal["live", "released", "invoked", "void"]
EndorsementKind = Literal["issue", "transfer", "pledge", "release", "invoke", "surrender", "convert"]

ROLES: Final = get_args(Role)
DEVICE_KINDS: Final = get_args(DeviceKind)
STATUSES: Final = get_args(Status)

LIVE: Final[frozenset[str]] = frozenset({
    "proposed", "active", "transfer_offered", "pledge_requested", "pledged", "defaulted", "delivery_pending", "expired",
})
"""A live receipt stands for goods in the warehouse; the others are history."""

UNDER_PLEDGE: Final[frozenset[str]] = frozenset({"pledged", "defaulted"})


def under_pledge(status: str, expired_from: str) -> bool:
    return status in UNDER_PLEDGE or (status == "expired" and expired_from in UNDER_PLEDGE)


class Party(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A registered key with one role; `appointed_by` empty means by the council."""

    key: bytes
    role: Role
    name: str
    uscc: str  # 统一社会信用代码
    domicile: str
    appointed_by: bytes
    appointed_entry: bytes
    appointed_height: int
    revoked: bool = False


class WarehouseInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A bailee (保管人): its storage place, its bins, its supervisor, its receipt series."""

    key: bytes
    location: str  # the EPCIS bizLocation id (an SGLN URN)
    supervisor: bytes
    bins: tuple[str, ...]
    require_signoff: bool  # receipts need the supervisor's sign-off besides the depositor's acceptance
    next_receipt_no: int = 1


class Calibration(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    certificate: bytes  # hash of the calibration certificate
    accuracy_class: str  # OIML R76 class for scales ("III"), "" for devices that do not weigh
    scale_interval_g: int  # e, the verification scale interval; 0 for devices that do not weigh
    expires_ms: int


class Device(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    device_id: str  # GIAI URN
    kind: DeviceKind
    warehouse: bytes
    bins: tuple[str, ...]
    public_key: bytes
    read_point: str
    calibration: Calibration
    status: DeviceStatus = "pending"
    last_seq: int = -1
    heartbeat_ms: int = 60_000  # 0: the device sends no heartbeats
    last_seen_ms: int = -1  # the eventTime of its latest reading
    heartbeat_due_ms: int = 0  # > 0: R7 fires if nothing arrives by then (indexed under `D`)
    entry: bytes = b""  # the warehouse's proposal that bound this id to this key (an alert's proof cites it)


class Evidence(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A finalized device reading; `lot` is the lot whose intake it recorded, once registered."""

    event_id: bytes
    reading: Reading
    device_kind: DeviceKind
    warehouse: bytes
    net_kg: int  # -1: the event weighs nothing
    entry: bytes
    height: int
    lot: bytes = b""


class Lot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A steel coil or bundle, identified across the chain by mill, heat and coil number."""

    key: bytes
    mill: str
    heat: str
    coil: str
    form: str
    grade: str
    spec: str
    pieces: int
    net_kg: int
    intake_event: bytes
    mill_cert: bytes
    production_date: str
    warehouse: bytes
    bin: str
    status: LotStatus = "in_stock"
    receipt: bytes = b""
    outbound_event: bytes = b""
    outbound_height: int = -1
    inspection: bytes = b""
    entry: bytes = b""  # the entry that booked it


class Goods(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Civil Code art. 909(2): kind, quantity, quality, packaging, pieces and marks."""

    commodity: str
    spec: str
    grade: str
    producer: str
    packaging: str
    marks: str
    pieces: int
    quantity_kg: int


class Insurance(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    insurer: str
    sum_insured: int
    currency: str
    until_ms: int


class Terms(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Art. 909(3)-(7): shrinkage standard, storage period, fee, insurance (the place is the warehouse)."""

    shrinkage_permille: int
    storage_until_ms: int
    fee_per_tonne_day: int  # minor units of `currency`
    currency: str
    insurance: Insurance | None = None


class Offer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A pending transfer or pledge: it completes when the counterparty accepts and the
    bailee countersigns, in either order (Civil Code: endorsement plus the bailee's seal)."""

    kind: Literal["transfer", "pledge"]
    id: bytes  # the offering entry
    by: bytes
    to: bytes
    at_ms: int
    facility: str = ""
    registration: str = ""
    accepted: bool = False
    countersigned: bool = False


class Endorsement(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kind: EndorsementKind
    endorser: bytes
    endorsee: bytes
    countersigned_by: bytes
    entry: bytes
    height: int
    time_ms: int


class Delivery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    surrendered_by: bytes
    collector_ref: bytes  # hash of 提货人有效证件: the identity document stays off chain
    height: int
    time_ms: int


class Receipt(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An electronic warehouse receipt (仓单) with the elements of art. 909 and GB/T 30332."""

    id: bytes
    number: int
    warehouse: bytes
    negotiable: bool
    rights_notice: bytes  # hash of the 凭证权利提示 text
    issue_place: str
    signer: str  # 填发人
    issued_ms: int
    issued_height: int
    issue_entry: bytes
    depositor: bytes
    depositor_name: str
    depositor_domicile: str
    depositor_uscc: str
    holder: bytes
    goods: Goods
    lots: tuple[bytes, ...]
    bins: tuple[str, ...]
    terms: Terms
    evidence: tuple[bytes, ...]  # intake event ids
    mill_certs: tuple[bytes, ...]
    status: Status
    accept_by_ms: int
    doc_kind: str = "仓单"
    depositor_accepted: bool = False
    signed_off: bool = False
    parents: tuple[bytes, ...] = ()
    children: tuple[bytes, ...] = ()
    pledge: bytes = b""
    offer: Offer | None = None
    endorsements: tuple[Endorsement, ...] = ()
    delivery: Delivery | None = None
    frozen_case: int = 0
    expired_from: str = ""
    paper_ref: str = ""
    replaces_paper: bytes = b""
    replaced_by: bytes = b""  # for a paper receipt: the electronic receipt that brought it back
    version: int = 0
    last_entry: bytes = b""
    held: tuple[bytes, ...] = ()  # the open alerts holding it (the HELD overlay, `monitor.py`)

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def binds_lots(self) -> bool:
        """Its lots back it: live, or on paper and not yet brought back (INV-2, INV-12)."""
        return self.status in LIVE or (self.status == "converted_to_paper" and not self.replaced_by)


class Pledge(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One pledge (priority 1 only); it follows the pledged remainder through partial releases."""

    id: bytes  # the requesting entry
    pledgor: bytes
    pledgee: bytes
    receipts: tuple[bytes, ...]
    facility: str
    registration: str  # external registry number (中登网), if any
    confirmed_height: int
    status: PledgeStatus = "live"
    cure_deadline_ms: int = 0  # > 0 while the pledgee has declared a default


class Case(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A regulator's recorded case: freezes cite it, the council's voids cite it."""

    number: int
    reason_code: str
    legal_ref: str
    summary: str
    opened_by: bytes
    height: int
    time_ms: int


def to_view(value: Any) -> Any:
    """A record or operation as JSON-ready builtins for the API and CLI: bytes as hex."""
    return _hexed(msgspec.to_builtins(value, builtin_types=(bytes,)))


def _hexed(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _hexed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):  # to_builtins keeps tuples: lots, parents, children, endorsements
        return [_hexed(v) for v in value]
    return value


def lot_key(mill: str, heat: str, coil: str) -> bytes:
    """The chain-wide identity of a lot: the same coil has the same key at every warehouse."""
    return hashlib.sha256(codec.encode(("bilayer.warehouse.lot", mill, heat, coil))).digest()


def lot_urn(mill: str, heat: str, coil: str) -> str:
    """The lot's EPC in device events."""
    return f"urn:bl:lot:{mill}:{heat}:{coil}"


def lot_key_of_urn(epc: str) -> bytes | None:
    """The lot key an EPC names, or None when it names no lot."""
    parts = epc.split(":")
    if len(parts) != 6 or parts[:3] != ["urn", "bl", "lot"]:
        return None
    return lot_key(parts[3], parts[4], parts[5])


def receipt_id(warehouse: bytes, number: int) -> bytes:
    """H(warehouse, number): a number of a warehouse's series names one receipt forever."""
    return hashlib.sha256(codec.encode(("bilayer.warehouse.receipt", warehouse, number))).digest()


# --- the receipt lifecycle as data ---------------------------------------------------------------

_ALL_LIVE = frozenset(LIVE)

TRANSITIONS: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = MappingProxyType({
    # kind: (states it starts from, states it may lead to)
    "propose_receipt": (frozenset({"none"}), frozenset({"proposed"})),
    "accept_receipt": (frozenset({"proposed"}), frozenset({"proposed", "active"})),
    "reject_receipt": (frozenset({"proposed"}), frozenset({"void"})),
    "offer_transfer": (frozenset({"active"}), frozenset({"transfer_offered"})),
    "accept_transfer": (frozenset({"transfer_offered"}), frozenset({"transfer_offered", "active"})),
    "request_pledge": (frozenset({"active"}), frozenset({"pledge_requested"})),
    "confirm_pledge": (frozenset({"pledge_requested"}), frozenset({"pledge_requested", "pledged"})),
    "countersign": (frozenset({"transfer_offered", "pledge_requested"}),
                    frozenset({"transfer_offered", "pledge_requested", "active", "pledged"})),
    "cancel_offer": (frozenset({"transfer_offered", "pledge_requested"}), frozenset({"active"})),
    "release_pledge": (frozenset({"pledged", "defaulted"}), frozenset({"active", "superseded"})),
    "declare_default": (frozenset({"pledged"}), frozenset({"defaulted"})),
    "cure_default": (frozenset({"defaulted"}), frozenset({"pledged"})),
    "invoke_pledge": (frozenset({"defaulted", "expired"}), frozenset({"active"})),
    "surrender": (frozenset({"active", "expired"}), frozenset({"delivery_pending", "superseded"})),
    "cancel_receipt": (frozenset({"delivery_pending"}), frozenset({"cancelled"})),
    "split_receipt": (frozenset({"active"}), frozenset({"superseded"})),
    "merge_receipts": (frozenset({"active"}), frozenset({"superseded"})),
    "expire_receipt": (frozenset({"active", "pledged", "defaulted"}), frozenset({"expired"})),
    "extend_receipt": (frozenset({"active", "pledged", "defaulted", "expired"}),
                       frozenset({"active", "pledged", "defaulted"})),
    "convert_to_paper": (frozenset({"active"}), frozenset({"converted_to_paper"})),
    "void_receipt": (_ALL_LIVE, frozenset({"void"})),
    "freeze_receipt": (_ALL_LIVE, _ALL_LIVE),  # an overlay: the state stays, only the overlay changes
    "unfreeze_receipt": (_ALL_LIVE, _ALL_LIVE),
    # the HELD overlay: an alert holds at the end of a checkpoint; resolving it lifts that hold, whatever the state
    "resolve_alert": (frozenset(STATUSES), frozenset(STATUSES)),
})
"""A split, merge, partial release or partial surrender moves the parent to `superseded`
and issues new receipts (children, with lineage) that start in one of `CHILD_STATES`; a
child is an issuance, not a move of any receipt."""

CHILD_STATES: Final = frozenset({"active", "pledged", "defaulted", "delivery_pending"})


# --- monitoring: reconciliation of goods against receipts (`monitor.py`) --------------------------

Severity = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
AlertStatus = Literal["open", "resolved"]
ResolutionCode = Literal["false_positive", "explained", "confirmed_shortage", "device_fault"]
SEVERITIES: Final = get_args(Severity)
RESOLUTION_CODES: Final = get_args(ResolutionCode)


class Resolution(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    by: bytes
    code: ResolutionCode
    note: str
    entry: bytes
    height: int


class Alert(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One finding of a reconciliation rule, with what it compared and what it held."""

    id: bytes  # H(rule, height, warehouse, n)
    rule: str  # "R1" .. "R12"
    rule_version: int
    severity: Severity
    warehouse: bytes
    summary: str
    height: int
    time_ms: int
    bins: tuple[str, ...] = ()
    receipts: tuple[bytes, ...] = ()
    lots: tuple[bytes, ...] = ()
    devices: tuple[str, ...] = ()
    unit: str = ""  # "kg", "pieces", "ms" or "" when nothing is measured
    expected: int = 0
    observed: int = 0
    delta: int = 0  # observed - expected
    tolerance: int = 0
    tolerance_inputs: tuple[tuple[str, int], ...] = ()  # the formula's inputs, by name
    evidence: tuple[bytes, ...] = ()  # EPCIS event ids (or the stocktake's entry)
    held_receipts: tuple[bytes, ...] = ()
    held_bins: tuple[str, ...] = ()
    status: AlertStatus = "open"
    resolution: Resolution | None = None

    @property
    def holds(self) -> bool:
        return bool(self.held_receipts or self.held_bins)


class BinStock(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A bin's book (its in-stock lots, kept by `put_lot`) and its last verified figure."""

    book_kg: int = 0
    book_pieces: int = 0
    lots: int = 0
    pledged_kg: int = 0  # of its book, under a live pledge (kept by `put_receipt`)
    verified_kg: int = -1  # -1: never verified
    verified_height: int = -1
    verified_source: str = ""  # "lidar" or "stocktake"


class WarehouseStock(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A warehouse's totals for R12: live receipts' quantity, verified stock, its largest e."""

    live_kg: int = 0
    verified_kg: int = 0
    verified_bins: int = 0
    max_scale_interval_g: int = 0


class Policy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The council's monitoring policy (`warehouse.set_monitoring`); these are the defaults."""

    tolerance_permille: int = 0  # 0: the default rule, max(3 per mille, 2e)
    business_hours_start_min: int = 8 * 60  # minutes after local midnight, UTC+8
    business_hours_end_min: int = 18 * 60
    heartbeat_factor: int = 3
    ageing_days: int = 360
    expiry_notice_days: int = 30


class Stocktake(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    warehouse: bytes
    bin: str
    counted_kg: int
    counted_pieces: int
    note: str


class Watch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A camera's count or a lidar's estimate of its bin, queued with the figure its rule (R6,
    R1) compares with the book, so that reconciliation reads neither the reading nor its
    device back. A device's id, kind, warehouse and bins never change once registered."""

    device_id: str
    kind: Literal["camera", "lidar"]
    warehouse: bytes
    bin: str
    figure: int  # pieces counted (camera), kilograms estimated (lidar)


class Pending(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """New evidence waiting for the checkpoint's reconciliation (the `q` queue)."""

    kind: Literal["reading", "stocktake", "issuance"]
    ref: bytes  # the event id, the stocktake's entry, or the warehouse
    height: int
    stocktake: Stocktake | None = None
    watch: Watch | None = None  # a reading whose only rule is R6 or R1


# --- finance: prices, facilities, valuations (`finance.py`) ----------------------------------------

MarkKind = Literal["spot", "settlement"]
MarkStatus = Literal["usable", "unconfirmed"]
FacilityState = Literal["performing", "watch", "margin_call", "cured", "default", "enforcement", "closed"]

MARK_KINDS: Final = get_args(MarkKind)
FACILITY_STATES: Final = get_args(FacilityState)


class Publisher(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A price publisher the council appointed, for these sources and specs only."""

    key: bytes
    name: str
    sources: tuple[str, ...]
    specs: tuple[str, ...]
    appointed_entry: bytes
    appointed_height: int


class Mark(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One published price of a spec on a trading day; `net_price` is ex-VAT, per tonne."""

    spec: str
    source: str
    kind: MarkKind
    day: str
    price: int  # as published, minor units per tonne
    currency: str
    vat_included: bool
    net_price: int
    publisher: bytes
    entry: bytes
    height: int
    status: MarkStatus = "usable"
    confirmed_by: str = ""  # the second source that confirmed a move beyond the daily limit


class KindRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The latest usable day's price of one kind of mark, and the trading day's before it."""

    kind: MarkKind
    day: str
    price: int
    prev_day: str = ""
    prev_price: int = 0


class SpecHead(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A spec's latest good price (the minimum of its latest day's usable marks)."""

    spec: str
    day: str
    price: int
    source: str
    refs: tuple[KindRef, ...] = ()


class DayPrice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    spec: str
    day: str
    price: int
    source: str
    kind: MarkKind


class Calendar(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The as-of day (the latest day a usable mark names) and its trading-day number."""

    day: str = ""
    ordinal: int = 0  # 1 for the first trading day


class SpecLimit(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    spec: str
    limit_bp: int


class FinanceBounds(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The council's bounds on facility terms, and the daily move limit of prices."""

    min_haircut_bp: int = 0
    max_haircut_bp: int = 5000
    max_initial_ltv_bp: int = 8000
    max_liquidation_bp: int = 9500
    min_cure_days: int = 0
    max_cure_days: int = 10
    daily_limit_bp: int = 300
    spec_limits: tuple[SpecLimit, ...] = ()

    def limit_of(self, spec: str) -> int:
        for item in self.spec_limits:
            if item.spec == spec:
                return item.limit_bp
        return self.daily_limit_bp


class FacilityEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One state change of a facility: when, at what LTV, and why."""

    day: str
    height: int
    state: FacilityState
    ltv_bp: int
    cause: str


class Facility(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A bank's credit line to a borrower, secured by the receipts pledged under its name."""

    bank: bytes
    name: str
    borrower: bytes
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
    opened_entry: bytes
    opened_height: int
    state: FacilityState = "performing"
    outstanding: int = 0
    outstanding_day: str = ""
    cash: int = 0
    deadline_ordinal: int = 0  # while in margin_call: the number of the last trading day to cure
    last_day: str = ""
    last_ltv_bp: int = 0
    last_collateral: int = 0
    events: tuple[FacilityEvent, ...] = ()


class ValuationLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    receipt: bytes
    spec: str
    warehouse: bytes
    quantity_kg: int
    price: int  # per tonne, ex-VAT; 0 when the spec has no price
    source: str
    price_day: str
    stale: bool
    haircut_bp: int
    value: int


class Held(msgspec.Struct, frozen=True):
    """What a valuation line values, its price aside: the next valuation of a facility whose
    collateral has not changed reprices these. Decoded from a stored `ValuationLine` (the
    priced fields skipped, so no forbid_unknown_fields)."""

    receipt: bytes
    spec: str
    warehouse: bytes
    quantity_kg: int


class HeldLines(msgspec.Struct, frozen=True):
    """A stored `Valuation` read for its lines' `Held` parts only."""

    lines: tuple[Held, ...]


class Share(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str  # a warehouse's address bytes as hex, or a spec
    value: int
    share_bp: int
    breach: bool


class Valuation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A facility's daily valuation statement (the last of the day stands)."""

    bank: bytes
    facility: str
    day: str
    height: int
    outstanding: int
    cash: int
    collateral: int
    ltv_bp: int
    state: FacilityState
    headroom_warning: int
    headroom_call: int
    headroom_liquidation: int
    stale: bool
    concentration_breach: bool
    lines: tuple[ValuationLine, ...]
    warehouses: tuple[Share, ...]
    specs: tuple[Share, ...]

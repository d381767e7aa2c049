"""The warehouse application's operations: one struct per transition, each with its stateless rules.

They follow `bilayer/ledger/operations.py`: a frozen struct subclassing `Operation`, with
`KIND` and `check(payload_size, params)` that raises an `InvalidOperation` (here
`EvidenceInvalid` and its EPCIS subclasses, each with its code). The package registers
`OPERATIONS` on the module API (`__init__.py`). Who may sign each one, and what it needs of
the state, is in `transitions.py`.

`parties(author)` names the author and every key the operation hands rights to or appoints
(a transferee, a pledgee, a depositor, an appointed party, a device key), so the compliance
gate refuses it while any of them is frozen.

None carries a payload: everything execution needs is in the body, so a redacted payload
can never change an outcome.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar, Final

from ...errors import PayloadTooLarge
from ...genesis import ChainParams
from ...ledger.operations import Operation
from .epcis import MAX_URI, Reading, check_reading
from .errors import EvidenceInvalid
from .records import (
    DEVICE_KINDS,
    MARK_KINDS,
    RESOLUTION_CODES,
    ROLES,
    Calibration,
    DeviceKind,
    Goods,
    MarkKind,
    ResolutionCode,
    Role,
    SpecLimit,
    Terms,
    to_view,
)

KEY_SIZE: Final = 32
HASH_SIZE: Final = 32
MAX_NAME: Final = 200
MAX_TEXT: Final = 500
MAX_BINS: Final = 256
MAX_LOTS: Final = 64
MAX_PARTS: Final = 16
MAX_MERGE: Final = 16
MAX_CURE_MS: Final = 90 * 24 * 3600 * 1000
MAX_SHRINKAGE_PERMILLE: Final = 1000
MAX_HEARTBEAT_MS: Final = 7 * 24 * 3600 * 1000
MAX_STOCK_KG: Final = 10**12
MINUTES_PER_DAY: Final = 24 * 60

_IDENT = re.compile(r"[A-Z0-9][A-Z0-9-]{0,31}")  # mill, heat and coil numbers: one spelling each
_BIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_USCC = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")
_DATE = re.compile(r"[0-9]{4}-[01][0-9]-[0-3][0-9]")
_CURRENCY = re.compile(r"[A-Z]{3}")
_REASON_CODE = re.compile(r"[a-z0-9_]{1,48}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!-~]+")


def _ensure(condition: bool, message: str) -> None:
    if not condition:
        raise EvidenceInvalid(message)


def _key(value: bytes, what: str, *, optional: bool = False) -> None:
    _ensure(len(value) == KEY_SIZE or (optional and not value), f"{what} is a {KEY_SIZE}-byte public key")


def _hash(value: bytes, what: str, *, optional: bool = False) -> None:
    _ensure(len(value) == HASH_SIZE or (optional and not value), f"{what} is a {HASH_SIZE}-byte SHA-256 digest")


def _text(value: str, what: str, limit: int = MAX_NAME, *, optional: bool = False) -> None:
    _ensure((optional or value.strip() != "") and len(value) <= limit and value.isprintable(),
            f"{what}: {'up to' if optional else '1 to'} {limit} printable characters")


def _uri(value: str, what: str) -> None:
    _ensure(len(value) <= MAX_URI and bool(_URI.fullmatch(value)), f"{what} is a URI of at most {MAX_URI} characters")


def _bins(bins: tuple[str, ...]) -> None:
    _ensure(0 < len(bins) <= MAX_BINS and len(set(bins)) == len(bins) and all(_BIN.fullmatch(b) for b in bins),
            f"bins: 1-{MAX_BINS} distinct names of letters, digits, '.', '_' and '-'")


def _distinct(values: tuple[bytes, ...], what: str, limit: int, size: int = HASH_SIZE) -> None:
    _ensure(0 < len(values) <= limit and len(set(values)) == len(values) and all(len(v) == size for v in values),
            f"{what}: 1-{limit} distinct ids of {size} bytes")


class WarehouseOperation(Operation, frozen=True, forbid_unknown_fields=True):
    """Shared by every warehouse operation: no payload, then the operation's own rules."""

    def check(self, payload_size: int, params: ChainParams) -> None:
        if payload_size > params.max_memo_bytes:
            raise PayloadTooLarge(f"a warehouse operation's payload holds at most {params.max_memo_bytes} bytes")
        self.check_body()

    def check_body(self) -> None:
        """The rules of this operation's fields; raise `EvidenceInvalid`."""

    def view(self) -> dict[str, Any]:
        return {"kind": self.KIND, **to_view(self)}

    def parties(self, author: bytes) -> tuple[bytes, ...]:
        return (author, *self.counterparties())

    def counterparties(self) -> tuple[bytes, ...]:
        """The keys besides the author this operation hands rights to or appoints."""
        return ()


class _OnReceipt(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    receipt: bytes

    def check_body(self) -> None:
        _hash(self.receipt, "receipt")


class _OnOffer(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    receipt: bytes
    offer: bytes  # the entry that made the offer: one signs exactly the offer one has seen

    def check_body(self) -> None:
        _hash(self.receipt, "receipt")
        _hash(self.offer, "offer")


# --- parties -------------------------------------------------------------------------------------


class RegisterWarehouse(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """The council appoints a bailee, with its storage place, bins and supervisor."""

    KIND: ClassVar[str] = "warehouse.register_warehouse"
    key: bytes
    name: str
    uscc: str
    domicile: str
    location: str
    supervisor: bytes
    bins: tuple[str, ...]
    require_signoff: bool = True

    def check_body(self) -> None:
        _key(self.key, "key")
        _key(self.supervisor, "supervisor")
        _ensure(self.key != self.supervisor, "a warehouse does not supervise itself")
        _text(self.name, "name")
        _ensure(bool(_USCC.fullmatch(self.uscc)), "uscc is an 18-character unified social credit code")
        _text(self.domicile, "domicile")
        _uri(self.location, "location")
        _bins(self.bins)

    def counterparties(self) -> tuple[bytes, ...]:
        return (self.key, self.supervisor)


class RegisterParty(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """Appoint a bank or supervisor (council), a depositor (a warehouse or bank after its
    KYC, or the council), or an inspector (a supervisor, or the council)."""

    KIND: ClassVar[str] = "warehouse.register_party"
    key: bytes
    role: Role
    name: str
    uscc: str
    domicile: str

    def check_body(self) -> None:
        _key(self.key, "key")
        _ensure(self.role in ROLES and self.role != "warehouse", "warehouses are registered with register_warehouse")
        _text(self.name, "name")
        _ensure(bool(_USCC.fullmatch(self.uscc)), "uscc is an 18-character unified social credit code")
        _text(self.domicile, "domicile")

    def counterparties(self) -> tuple[bytes, ...]:
        return (self.key,)


class RevokeParty(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """Whoever appointed a party (or the council) ends its appointment; its records stay."""

    KIND: ClassVar[str] = "warehouse.revoke_party"
    key: bytes
    reason: str

    def check_body(self) -> None:
        _key(self.key, "key")
        _text(self.reason, "reason", MAX_TEXT)


# --- devices and their evidence --------------------------------------------------------------------


def _calibration(c: Calibration, kind: str) -> None:
    _hash(c.certificate, "calibration certificate")
    _ensure(c.expires_ms > 0, "a calibration certificate expires")
    if kind == "weighbridge":
        _ensure(c.accuracy_class in ("I", "II", "III", "IIII") and 0 < c.scale_interval_g <= 1_000_000,
                "a weighbridge's certificate names its OIML class and scale interval e")
    else:
        _ensure(c.accuracy_class == "" and c.scale_interval_g == 0, "only weighing devices have a scale class")


class ProposeDevice(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """A warehouse proposes a device; it reports nothing until its supervisor approves it."""

    KIND: ClassVar[str] = "warehouse.propose_device"
    device_id: str
    kind: DeviceKind
    bins: tuple[str, ...]
    public_key: bytes
    read_point: str
    calibration: Calibration
    heartbeat_ms: int = 60_000  # how often it reports at least; 0: it sends no heartbeats

    def check_body(self) -> None:
        _uri(self.device_id, "device_id")
        _ensure(self.kind in DEVICE_KINDS, f"kind is one of {', '.join(DEVICE_KINDS)}")
        _bins(self.bins)
        _key(self.public_key, "public_key")
        _uri(self.read_point, "read_point")
        _calibration(self.calibration, self.kind)
        _ensure(self.heartbeat_ms == 0 or 1_000 <= self.heartbeat_ms <= MAX_HEARTBEAT_MS,
                f"heartbeat_ms: 0 (none) or 1000-{MAX_HEARTBEAT_MS}")

    def counterparties(self) -> tuple[bytes, ...]:
        return (self.public_key,)


class ApproveDevice(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.approve_device"
    device_id: str

    def check_body(self) -> None:
        _uri(self.device_id, "device_id")


class RenewCalibration(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.renew_calibration"
    device_id: str
    calibration: Calibration

    def check_body(self) -> None:
        _uri(self.device_id, "device_id")
        _hash(self.calibration.certificate, "calibration certificate")
        _ensure(self.calibration.expires_ms > 0, "a calibration certificate expires")


class RevokeDevice(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.revoke_device"
    device_id: str
    reason: str

    def check_body(self) -> None:
        _uri(self.device_id, "device_id")
        _text(self.reason, "reason", MAX_TEXT)


class RecordReading(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """A device reports one EPCIS ObjectEvent, signing the entry with its own key."""

    KIND: ClassVar[str] = "warehouse.reading"
    reading: Reading

    def check_body(self) -> None:
        check_reading(self.reading)


# --- lots ----------------------------------------------------------------------------------------


class RegisterLot(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """A warehouse books a weighed coil or bundle into a bin, citing its intake weighing."""

    KIND: ClassVar[str] = "warehouse.register_lot"
    mill: str
    heat: str
    coil: str
    form: str
    grade: str
    spec: str
    pieces: int
    intake_event: bytes
    mill_cert: bytes
    production_date: str
    bin: str

    def check_body(self) -> None:
        _ensure(all(_IDENT.fullmatch(v) for v in (self.mill, self.heat, self.coil)),
                "mill, heat and coil: 1-32 characters of A-Z, 0-9 and '-' (one spelling per coil)")
        for value, what in ((self.form, "form"), (self.grade, "grade"), (self.spec, "spec")):
            _text(value, what, 64)
        _ensure(0 < self.pieces <= 100_000, "pieces: 1-100000")
        _hash(self.intake_event, "intake_event")
        _hash(self.mill_cert, "mill_cert")
        _ensure(bool(_DATE.fullmatch(self.production_date)), "production_date is YYYY-MM-DD")
        _ensure(bool(_BIN.fullmatch(self.bin)), "bin is a bin name")


class InspectLot(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """An inspector attaches the hash of a quality inspection report to a lot."""

    KIND: ClassVar[str] = "warehouse.inspect_lot"
    lot: bytes
    report: bytes

    def check_body(self) -> None:
        _hash(self.lot, "lot")
        _hash(self.report, "report")


# --- receipts ------------------------------------------------------------------------------------


class ProposeReceipt(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """A warehouse proposes the next receipt of its series over booked lots."""

    KIND: ClassVar[str] = "warehouse.propose_receipt"
    number: int
    depositor: bytes
    lots: tuple[bytes, ...]
    goods: Goods
    terms: Terms
    negotiable: bool
    rights_notice: bytes
    issue_place: str
    signer: str
    replaces_paper: bytes = b""  # the paper receipt this one brings back to the chain

    def check_body(self) -> None:
        _ensure(self.number >= 1, "receipt numbers start at 1")
        _key(self.depositor, "depositor")
        _distinct(self.lots, "lots", MAX_LOTS)
        g = self.goods
        for value, what in ((g.commodity, "commodity"), (g.spec, "spec"), (g.grade, "grade"),
                            (g.producer, "producer"), (g.packaging, "packaging"), (g.marks, "marks")):
            _text(value, what, 64)
        _ensure(g.pieces > 0 and g.quantity_kg > 0, "a receipt states positive pieces and net quantity")
        t = self.terms
        _ensure(0 <= t.shrinkage_permille <= MAX_SHRINKAGE_PERMILLE, "shrinkage_permille: 0-1000")
        _ensure(t.storage_until_ms > 0 and t.fee_per_tonne_day >= 0 and bool(_CURRENCY.fullmatch(t.currency)),
                "terms: a storage period end, a non-negative fee and an ISO 4217 currency")
        if t.insurance is not None:
            _text(t.insurance.insurer, "insurer")
            _ensure(t.insurance.sum_insured > 0 and t.insurance.until_ms > 0
                    and bool(_CURRENCY.fullmatch(t.insurance.currency)), "insurance: sum, currency and period")
        _hash(self.rights_notice, "rights_notice")
        _text(self.issue_place, "issue_place")
        _text(self.signer, "signer")
        _hash(self.replaces_paper, "replaces_paper", optional=True)

    def counterparties(self) -> tuple[bytes, ...]:
        return (self.depositor,)


class AcceptReceipt(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    """The depositor accepts a proposed receipt; the supervisor signs it off with the same act."""

    KIND: ClassVar[str] = "warehouse.accept_receipt"


class RejectReceipt(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    """The depositor or supervisor refuses a proposal, or the warehouse withdraws it: void."""

    KIND: ClassVar[str] = "warehouse.reject_receipt"
    reason: str = ""

    def check_body(self) -> None:
        super().check_body()
        _text(self.reason, "reason", MAX_TEXT, optional=True)


class OfferTransfer(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.offer_transfer"
    to: bytes

    def check_body(self) -> None:
        super().check_body()
        _key(self.to, "to")

    def counterparties(self) -> tuple[bytes, ...]:
        return (self.to,)


class AcceptTransfer(_OnOffer, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.accept_transfer"


class RequestPledge(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.request_pledge"
    pledgee: bytes
    facility: str
    registration: str = ""

    def check_body(self) -> None:
        super().check_body()
        _key(self.pledgee, "pledgee")
        _text(self.facility, "facility", 64)
        _text(self.registration, "registration", 64, optional=True)

    def counterparties(self) -> tuple[bytes, ...]:
        return (self.pledgee,)


class ConfirmPledge(_OnOffer, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.confirm_pledge"


class Countersign(_OnOffer, frozen=True, forbid_unknown_fields=True):
    """The bailee's signature or seal on a transfer or a pledge."""

    KIND: ClassVar[str] = "warehouse.countersign"


class CancelOffer(_OnOffer, frozen=True, forbid_unknown_fields=True):
    """The offeror withdraws, or the counterparty or the bailee refuses."""

    KIND: ClassVar[str] = "warehouse.cancel_offer"


class ReleasePledge(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    """The pledgee releases all (no lots named) or the named lots (a partial release)."""

    KIND: ClassVar[str] = "warehouse.release_pledge"
    lots: tuple[bytes, ...] = ()

    def check_body(self) -> None:
        super().check_body()
        if self.lots:
            _distinct(self.lots, "lots", MAX_LOTS)


class DeclareDefault(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.declare_default"
    cure_ms: int

    def check_body(self) -> None:
        super().check_body()
        _ensure(0 <= self.cure_ms <= MAX_CURE_MS, f"cure_ms: 0-{MAX_CURE_MS}")


class CureDefault(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.cure_default"


class InvokePledge(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.invoke_pledge"


class Surrender(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    """The holder hands the receipt back for delivery of all lots, or of the named ones."""

    KIND: ClassVar[str] = "warehouse.surrender"
    collector_ref: bytes
    lots: tuple[bytes, ...] = ()

    def check_body(self) -> None:
        super().check_body()
        _hash(self.collector_ref, "collector_ref")
        if self.lots:
            _distinct(self.lots, "lots", MAX_LOTS)


class CancelReceipt(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    """The warehouse cancels a surrendered receipt once outbound evidence covers every lot."""

    KIND: ClassVar[str] = "warehouse.cancel_receipt"


class SplitReceipt(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.split_receipt"
    parts: tuple[tuple[bytes, ...], ...]

    def check_body(self) -> None:
        super().check_body()
        _ensure(2 <= len(self.parts) <= MAX_PARTS, f"a split makes 2-{MAX_PARTS} receipts")
        for part in self.parts:
            _distinct(part, "a part's lots", MAX_LOTS)


class MergeReceipts(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.merge_receipts"
    receipts: tuple[bytes, ...]

    def check_body(self) -> None:
        _distinct(self.receipts, "receipts", MAX_MERGE)
        _ensure(len(self.receipts) >= 2, "a merge takes at least two receipts")


class ExpireReceipt(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    """Anyone records that a receipt's storage period is over."""

    KIND: ClassVar[str] = "warehouse.expire_receipt"


class ExtendReceipt(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.extend_receipt"
    until_ms: int

    def check_body(self) -> None:
        super().check_body()
        _ensure(self.until_ms > 0, "until_ms is a time")


class ConvertToPaper(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.convert_to_paper"
    paper_ref: str

    def check_body(self) -> None:
        super().check_body()
        _text(self.paper_ref, "paper_ref", 64)


# --- the regulator and the council ------------------------------------------------------------------


class OpenCase(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.open_case"
    reason_code: str
    legal_ref: str
    summary: str

    def check_body(self) -> None:
        _ensure(bool(_REASON_CODE.fullmatch(self.reason_code)), "reason_code: 1-48 characters of a-z, 0-9 and '_'")
        _text(self.legal_ref, "legal_ref")
        _text(self.summary, "summary", MAX_TEXT)


class _UnderCase(_OnReceipt, frozen=True, forbid_unknown_fields=True):
    case: int

    def check_body(self) -> None:
        super().check_body()
        _ensure(self.case >= 1, "case numbers start at 1")


class FreezeReceipt(_UnderCase, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.freeze_receipt"


class UnfreezeReceipt(_UnderCase, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.unfreeze_receipt"


class VoidReceipt(_UnderCase, frozen=True, forbid_unknown_fields=True):
    """The council invalidates a receipt on the evidence of a case (like the LME's nickel warrants)."""

    KIND: ClassVar[str] = "warehouse.void_receipt"


# --- monitoring -------------------------------------------------------------------------------------


class ResolveAlert(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """The warehouse's supervisor closes an alert with a reason; the holds it set are lifted."""

    KIND: ClassVar[str] = "warehouse.resolve_alert"
    alert: bytes
    code: ResolutionCode
    note: str

    def check_body(self) -> None:
        _hash(self.alert, "alert")
        _ensure(self.code in RESOLUTION_CODES, f"code is one of {', '.join(RESOLUTION_CODES)}")
        _text(self.note, "note", MAX_TEXT)


class RecordStocktake(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """The warehouse's supervisor counts a bin: its net kilograms and pieces (rule R9)."""

    KIND: ClassVar[str] = "warehouse.record_stocktake"
    warehouse: bytes
    bin: str
    counted_kg: int
    counted_pieces: int
    note: str = ""

    def check_body(self) -> None:
        _key(self.warehouse, "warehouse")
        _ensure(bool(_BIN.fullmatch(self.bin)), "bin is a bin name")
        _ensure(0 <= self.counted_kg <= MAX_STOCK_KG and 0 <= self.counted_pieces <= 10**7,
                f"counted_kg: 0-{MAX_STOCK_KG}; counted_pieces: 0-10000000")
        _text(self.note, "note", MAX_TEXT, optional=True)


class SetMonitoring(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """The council sets the reconciliation policy for every warehouse."""

    KIND: ClassVar[str] = "warehouse.set_monitoring"
    tolerance_permille: int  # 0: the default, max(3 per mille, 2e)
    business_hours_start_min: int  # minutes after local midnight, UTC+8
    business_hours_end_min: int
    heartbeat_factor: int
    ageing_days: int
    expiry_notice_days: int

    def check_body(self) -> None:
        _ensure(0 <= self.tolerance_permille <= 100, "tolerance_permille: 0 (the default rule) to 100")
        _ensure(0 <= self.business_hours_start_min < self.business_hours_end_min <= MINUTES_PER_DAY,
                "business hours: 0 <= start < end <= 1440 minutes after local midnight")
        _ensure(2 <= self.heartbeat_factor <= 100, "heartbeat_factor: 2-100")
        _ensure(1 <= self.ageing_days <= 3650 and 0 <= self.expiry_notice_days <= 365,
                "ageing_days: 1-3650; expiry_notice_days: 0-365")


# --- finance: prices and facilities (`finance.py`) -------------------------------------------------------

BP: Final = 10_000
MAX_SOURCES: Final = 16
MAX_SPECS: Final = 64
MAX_AMOUNT: Final = 10**15  # minor units: beyond any facility, and far from overflowing anything
MAX_PRICE: Final = 10**9  # minor units per tonne
CURRENCY: Final = "CNY"


def _day(value: str, what: str = "day") -> None:
    """A trading day as YYYY-MM-DD, a real calendar date."""
    try:
        real = bool(_DATE.fullmatch(value)) and date.fromisoformat(value).isoformat() == value
    except ValueError:
        real = False
    _ensure(real, f"{what} is a date YYYY-MM-DD")


def _source(value: str) -> None:
    _ensure(bool(_REASON_CODE.fullmatch(value)), "a price source: 1-48 characters of a-z, 0-9 and '_'")


def _bp(value: int, what: str) -> None:
    _ensure(0 <= value <= BP, f"{what}: 0-{BP} basis points")


class AppointPublisher(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """The council appoints a price publisher for named sources and specs."""

    KIND: ClassVar[str] = "warehouse.appoint_publisher"
    publisher: bytes
    name: str
    sources: tuple[str, ...]
    specs: tuple[str, ...]

    def check_body(self) -> None:
        _key(self.publisher, "publisher")
        _text(self.name, "name")
        _ensure(0 < len(self.sources) <= MAX_SOURCES and len(set(self.sources)) == len(self.sources),
                f"sources: 1-{MAX_SOURCES} distinct names")
        for source in self.sources:
            _source(source)
        _ensure(0 < len(self.specs) <= MAX_SPECS and len(set(self.specs)) == len(self.specs),
                f"specs: 1-{MAX_SPECS} distinct specs")
        for spec in self.specs:
            _text(spec, "spec", 64)

    def counterparties(self) -> tuple[bytes, ...]:
        return (self.publisher,)


class PublishPrice(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """A publisher's price of a spec on a trading day, per tonne in minor units."""

    KIND: ClassVar[str] = "warehouse.publish_price"
    spec: str
    source: str
    kind: MarkKind
    day: str
    price: int
    currency: str = CURRENCY
    vat_included: bool = False

    def check_body(self) -> None:
        _text(self.spec, "spec", 64)
        _source(self.source)
        _ensure(self.kind in MARK_KINDS, f"kind is one of {', '.join(MARK_KINDS)}")
        _day(self.day)
        _ensure(0 < self.price <= MAX_PRICE, f"price: 1-{MAX_PRICE} minor units per tonne")
        _ensure(self.currency == CURRENCY, f"prices are quoted in {CURRENCY}")


class OpenFacility(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """A bank opens a credit facility to a borrower; pledges name it to secure it."""

    KIND: ClassVar[str] = "warehouse.open_facility"
    facility: str
    borrower: bytes
    limit: int
    currency: str = CURRENCY
    haircut_bp: int = 0
    initial_ltv_bp: int = 7000
    warning_bp: int = 7700
    call_bp: int = 8000
    liquidation_bp: int = 8700
    cure_days: int = 1
    max_warehouse_bp: int = BP
    max_spec_bp: int = BP

    def check_body(self) -> None:
        _text(self.facility, "facility", 64)
        _key(self.borrower, "borrower")
        _ensure(0 < self.limit <= MAX_AMOUNT, f"limit: 1-{MAX_AMOUNT} minor units")
        _ensure(self.currency == CURRENCY, f"facilities are in {CURRENCY}")
        for value, what in ((self.haircut_bp, "haircut_bp"), (self.initial_ltv_bp, "initial_ltv_bp"),
                            (self.warning_bp, "warning_bp"), (self.call_bp, "call_bp"),
                            (self.liquidation_bp, "liquidation_bp"), (self.max_warehouse_bp, "max_warehouse_bp"),
                            (self.max_spec_bp, "max_spec_bp")):
            _bp(value, what)
        _ensure(self.haircut_bp < BP, "a haircut leaves some value")
        _ensure(0 <= self.cure_days <= 30, "cure_days: 0-30 trading days")

    def counterparties(self) -> tuple[bytes, ...]:
        return (self.borrower,)


class ReportOutstanding(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """The facility's bank reports the balance owed (principal, interest and fees) as of a day."""

    KIND: ClassVar[str] = "warehouse.report_outstanding"
    facility: str
    outstanding: int
    day: str
    bank: bytes = b""  # the facility's bank; empty: the author

    def check_body(self) -> None:
        _text(self.facility, "facility", 64)
        _ensure(0 <= self.outstanding <= MAX_AMOUNT, f"outstanding: 0-{MAX_AMOUNT} minor units")
        _day(self.day)
        _key(self.bank, "bank", optional=True)


class TopUp(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """The facility's bank records cash collateral received from the borrower."""

    KIND: ClassVar[str] = "warehouse.top_up"
    facility: str
    amount: int
    bank: bytes = b""  # the facility's bank; empty: the author

    def check_body(self) -> None:
        _text(self.facility, "facility", 64)
        _ensure(0 < self.amount <= MAX_AMOUNT, f"amount: 1-{MAX_AMOUNT} minor units")
        _key(self.bank, "bank", optional=True)


class CloseFacility(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "warehouse.close_facility"
    facility: str
    bank: bytes = b""  # the facility's bank; empty: the author

    def check_body(self) -> None:
        _text(self.facility, "facility", 64)
        _key(self.bank, "bank", optional=True)


class SetFinanceBounds(WarehouseOperation, frozen=True, forbid_unknown_fields=True):
    """The council bounds facility terms and sets the daily move limit of prices (per spec)."""

    KIND: ClassVar[str] = "warehouse.set_finance_bounds"
    min_haircut_bp: int = 0
    max_haircut_bp: int = 5000
    max_initial_ltv_bp: int = 8000
    max_liquidation_bp: int = 9500
    min_cure_days: int = 0
    max_cure_days: int = 10
    daily_limit_bp: int = 300
    spec_limits: tuple[SpecLimit, ...] = ()

    def check_body(self) -> None:
        for value, what in ((self.min_haircut_bp, "min_haircut_bp"), (self.max_haircut_bp, "max_haircut_bp"),
                            (self.max_initial_ltv_bp, "max_initial_ltv_bp"),
                            (self.max_liquidation_bp, "max_liquidation_bp"), (self.daily_limit_bp, "daily_limit_bp")):
            _bp(value, what)
        _ensure(self.min_haircut_bp <= self.max_haircut_bp < BP, "min_haircut_bp <= max_haircut_bp < 10000")
        _ensure(0 <= self.min_cure_days <= self.max_cure_days <= 30, "0 <= min_cure_days <= max_cure_days <= 30")
        _ensure(self.daily_limit_bp > 0, "a daily limit above 0")
        _ensure(len(self.spec_limits) <= MAX_SPECS and len({s.spec for s in self.spec_limits}) == len(self.spec_limits),
                f"spec_limits: up to {MAX_SPECS} distinct specs")
        for item in self.spec_limits:
            _text(item.spec, "spec", 64)
            _ensure(0 < item.limit_bp <= BP, "a spec's limit: 1-10000 basis points")


OPERATIONS: Final[tuple[type[WarehouseOperation], ...]] = (
    RegisterWarehouse, RegisterParty, RevokeParty,
    ProposeDevice, ApproveDevice, RenewCalibration, RevokeDevice, RecordReading,
    RegisterLot, InspectLot,
    ProposeReceipt, AcceptReceipt, RejectReceipt,
    OfferTransfer, AcceptTransfer, RequestPledge, ConfirmPledge, Countersign, CancelOffer,
    ReleasePledge, DeclareDefault, CureDefault, InvokePledge,
    Surrender, CancelReceipt, SplitReceipt, MergeReceipts,
    ExpireReceipt, ExtendReceipt, ConvertToPaper,
    OpenCase, FreezeReceipt, UnfreezeReceipt, VoidReceipt,
    ResolveAlert, RecordStocktake, SetMonitoring,
    AppointPublisher, PublishPrice, OpenFacility, ReportOutstanding, TopUp, CloseFacility, SetFinanceBounds,
)
"""Every operation of the application, for the chain wiring to register."""

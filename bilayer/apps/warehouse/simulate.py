"""A seeded world of supervised steel warehouses, and faults injected into it.

`plan(seed, ...)` is pure: from the seed alone it lays out the parties, the devices and a
list of `Step`s (who signs which operation, at which simulated instant, after which other
steps are final), and the `Fault`s it injected, each with the rules it must trigger. Same
seed, same plan. The world is honest unless a fault says otherwise: every coil is weighed in
over a weighbridge (gross minus the truck's tare), booked, receipted and often pledged;
deliveries go surrender → outbound weighing → gate → cancel; every device sends heartbeats;
cameras count exactly what the book says and lidars agree with it within 0.2%; the door opens
in business hours on a work order; a publisher prints one settlement price per spec and
trading day, a random walk inside the exchange's daily limit.

Time is compressed: a simulated day is `day_ms` of wall time (the chain refuses readings
whose clock is more than five minutes off its own, so devices carry the real clock), and a
step's `at_ms` is measured from the run's start. Trading days are the `day` strings of the
price marks, consecutive dates. Values that only exist once the run starts (keys, entry and
event ids, wall-clock times, dates, the chain's last prices) are placeholders (`Key`,
`Entry`, `Event`, `Receipt`, `At`, `Date`, `Scaled`) that `materialize` resolves.

`Driver` plays the steps in time order through a network and `score`s what the nodes report
(alerts, holds, facility states) against the faults. `rehearse` plays them through this
build's state machine and rules alone, with no network, and scores itself the same way.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final, Literal, get_args
from urllib.parse import urlencode

import msgspec

from ...api.client import NodeClient
from ...errors import BadRequest, BilayerError, RemoteError
from ...keys.address import address_from_public_key
from ...keys.keystore import Keystore
from ...keys.signing import Signer
from ...ledger.entry import build_entry
from . import epcis
from .operations import OPERATIONS
from .records import lot_key, lot_urn, receipt_id

FaultKind = Literal["theft", "substitution", "drift", "blackout", "unauthorised_exit", "price_crash"]
FAULT_KINDS: Final = get_args(FaultKind)

EXPECTED: Final[dict[str, tuple[str, ...]]] = {
    "theft": ("R2", "R5", "R6"),
    "substitution": ("R1", "R9"),
    "drift": ("R3",),
    "blackout": ("R7",),
    "unauthorised_exit": ("R2",),
    "price_crash": ("WATCH", "MARGIN_CALL"),
}
"""The rules (or facility states) each fault must bring about."""

CONSEQUENCES: Final[dict[str, tuple[str, ...]]] = {
    "theft": ("R1", "R12"),  # the lidar sees the bin short; the warehouse's receipts exceed what it holds
    "substitution": ("R12",),
    "drift": ("R1", "R6", "R12"),  # if the receipt is never cancelled, the book still holds the coils
    "blackout": (),
    "unauthorised_exit": ("R1", "R6", "R12"),  # the coils are gone: the bin's count and mass are short
    "price_crash": (),
}
"""Alerts a fault may also raise, which are then explained rather than false positives."""

DAY_FRACTION: Final = 10_000
"""Times of day are in 1/10000 of a day; the simulated day starts at 08:00 local (UTC+8)."""

TRAFFIC_END: Final = 3000  # intake and deliveries start before 15:12
COUNTS: Final = (4500, 9500)  # camera counts and lidar scans at 18:48 and 06:48
HEARTBEATS: Final = (1000, 6000)
NIGHT: Final = 7500  # 02:00
PRICE_CRASH_DAYS: Final = 7
CRASH_TOTAL_BP: Final = 1200  # -12% over five trading days, then -2.9% on the sixth
CRASH_LAST_BP: Final = 290
DAILY_LIMIT_BP: Final = 300
HONEST_MOVE_BP: Final = 100
CRASH_LTV_BP: Final = 6990
HONEST_LTV_BP: Final = 4000
HAIRCUT_BP: Final = 1000
BINS: Final = ("A1", "A2", "B1")  # A: hot-rolled coil, B: rebar bundles
COMPANY: Final = "6901234"
USCC: Final = "91310000MA1FL0000X"
MILLS: Final = ("BAOSTEEL", "SHAGANG", "HBIS", "ANSTEEL", "SHOUGANG", "RIZHAO")
HRC_SPECS: Final = ("5.75x1500",)
HRC_GRADES: Final = ("Q235B", "SS400")
REBAR_SPEC: Final = "HRB400E-20"
SPECS: Final = (*HRC_SPECS, REBAR_SPEC)
START_PRICE: Final = {"5.75x1500": 390_000, REBAR_SPEC: 362_000}  # fen per tonne
YEAR_MS: Final = 365 * 24 * 3600 * 1000


class SimulationInvalid(BadRequest):
    """A simulation asked for something its world cannot hold."""

    code = "warehouse.simulation_invalid"


# --- placeholders: what only the run knows -----------------------------------------------------


class Key(msgspec.Struct, frozen=True, tag=True):
    """The public key of a named party or device."""

    name: str


class Entry(msgspec.Struct, frozen=True, tag=True):
    """The entry id of an earlier step (an offer is named by its entry)."""

    step: int


class Event(msgspec.Struct, frozen=True, tag=True):
    """The EPCIS event id of an earlier reading step."""

    step: int


class Receipt(msgspec.Struct, frozen=True, tag=True):
    """A warehouse's receipt by its number in the warehouse's series."""

    warehouse: str
    number: int


class At(msgspec.Struct, frozen=True, tag=True):
    """Wall-clock milliseconds: the run's start plus an offset."""

    offset_ms: int


class Date(msgspec.Struct, frozen=True, tag=True):
    """A calendar date (YYYY-MM-DD) counted in days from the run's first trading day."""

    days: int


class Scaled(msgspec.Struct, frozen=True, tag=True):
    """An amount in the plan's prices of a spec, scaled to the price the chain last had for it
    (so a run continues a chain's price history inside the daily limit)."""

    spec: str
    amount: int


# --- the plan ---------------------------------------------------------------------------------------


class Step(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One signed operation: `signer` names the key, `after` the steps that must be final first."""

    n: int
    at_ms: int
    day: int
    signer: str
    kind: str
    body: dict[str, Any]
    after: tuple[int, ...] = ()
    fault: str = ""
    optional: tuple[str, ...] = ()  # fields dropped when this build's operation does not declare them
    reading_time: bool = False  # a device reading: its seq and eventTime are stamped when it is sent
    waits: tuple[int, ...] = ()  # steps it waits for, decided either way (not necessarily final)


class Fault(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An injected fault, the rules it must trigger, and where to look for them."""

    kind: FaultKind
    warehouse: str
    rules: tuple[str, ...]
    explains: tuple[str, ...]
    entry_step: int  # the first step through which the fault can be seen
    entry_ms: int  # the simulated instant it can first be detected
    day: int
    bin: str = ""
    lots: tuple[str, ...] = ()  # lot URNs
    device: str = ""
    facility: str = ""  # "bank name/facility name"
    note: str = ""


class DeviceSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    device_id: str
    kind: str
    warehouse: str
    bins: tuple[str, ...]
    read_point: str
    heartbeat_ms: int


class Plan(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seed: int
    warehouses: int
    days: int
    day_ms: int
    faults: tuple[Fault, ...]
    parties: dict[str, str]  # name -> role
    devices: tuple[DeviceSpec, ...]
    steps: tuple[Step, ...]

    def digest(self) -> str:
        """The SHA-256 of the plan's JSON encoding: the same plan, the same digest."""
        return hashlib.sha256(msgspec.json.encode(self)).hexdigest()


# --- the world model while it is laid out ---------------------------------------------------------


@dataclass
class _Lot:
    urn: str
    mill: str
    heat: str
    coil: str
    form: str
    grade: str
    spec: str
    net_kg: int
    warehouse: str
    bin: str
    intake_step: int = -1
    booked_step: int = -1
    receipt: int = 0
    in_stock: bool = True  # physically in the bin
    actual_kg: int = 0  # what is physically there (0: its weighed net)
    booked: bool = False  # in stock on the book
    tag: str = ""  # a GNSS tag riding on it


@dataclass
class _Receipt:
    warehouse: str
    number: int
    depositor: str
    lots: list[_Lot]
    proposed_step: int
    accepted: tuple[int, ...] = ()
    status: str = "active"  # active | pledged | delivering | cancelled | gone (out with no instruction)
    facility: str = ""
    reserved: str = ""  # why honest traffic leaves it alone
    pledged_steps: tuple[int, ...] = ()  # the bank's confirmation and the warehouse's countersignature


@dataclass
class _Warehouse:
    name: str
    index: int
    depositor: str
    next_number: int = 1
    quarantined: set[str] = field(default_factory=set)  # bins honest traffic avoids
    closed: bool = False  # no more traffic: a fault holds its goods, or its weighbridge drifted
    drifting: bool = False
    outbound_since_drift: int = 0
    dark: set[str] = field(default_factory=set)  # devices that stopped reporting
    bin_changed: dict[str, list[int]] = field(default_factory=dict)  # bin -> book changes since it was observed
    bin_seen: dict[str, int] = field(default_factory=dict)  # bin -> its last observation (count or scan)
    gnss_free: list[str] = field(default_factory=list)
    last_proposal: int = -1


class _Builder:
    """Lays out the world and its steps; every choice comes from one seeded generator."""

    def __init__(self, seed: int, warehouses: int, days: int, day_ms: int, faults: tuple[str, ...]) -> None:
        self.rng = random.Random(seed)
        self.seed, self.days, self.day_ms, self.faults_wanted = seed, days, day_ms, faults
        self.steps: list[Step] = []
        self.faults: list[Fault] = []
        self.parties: dict[str, str] = {}
        self.devices: dict[str, DeviceSpec] = {}
        self.lots: list[_Lot] = []
        self.receipts: list[_Receipt] = []
        self.coils_used: set[tuple[str, str, str]] = set()
        self.heartbeat_ms = day_ms // 2
        self.warehouses = [_Warehouse(f"wh{i + 1}", i, f"dep{i + 1}") for i in range(warehouses)]
        self.prices: dict[str, list[int]] = {}
        self.facilities: dict[str, tuple[str, str]] = {}  # facility name -> (bank, borrower)
        self.crash_facility = ""
        self.crash_collateral: list[int] = []
        self.opened: dict[str, int] = {}  # facility -> the step that opens it
        self.approved: dict[str, int] = {}  # device -> the step that approves it
        self.reported: list[int] = []  # the banks' reports of the day: the next day's prices wait for them
        self.crash_outstanding = 0
        self.last_lidar: dict[tuple[str, str], int] = {}
        self.pending_substitution: list[tuple[_Warehouse, str, _Lot, int, int]] = []
        self.drift_at: list[tuple[_Warehouse, int, _Receipt]] = []

    # --- step emission ---

    def emit(self, at_ms: int, signer: str, kind: str, body: dict[str, Any], *, after: Iterable[int] = (),
             fault: str = "", optional: tuple[str, ...] = (), reading: bool = False, waits: Iterable[int] = ()) -> int:
        n = len(self.steps)
        deps = tuple(sorted({a for a in after if a >= 0}))
        waited = tuple(sorted({w for w in waits if w >= 0} - set(deps)))
        at_ms = max([at_ms, *(self.steps[a].at_ms + 10 for a in (*deps, *waited))])  # never before what it follows
        day = max(-1, at_ms // self.day_ms - 1)
        self.steps.append(Step(n, at_ms, day, signer, kind, body, deps, fault, optional, reading, waited))
        return n

    def t(self, day: int, fraction: int, jitter: int = 0) -> int:
        """The simulated instant of a time of day (day -1 is the setup)."""
        spread = self.rng.randrange(jitter) if jitter else 0
        return (day + 1) * self.day_ms + (fraction + spread) * self.day_ms // DAY_FRACTION

    def device_id(self, warehouse: str, name: str) -> str:
        return f"urn:epc:id:giai:{COMPANY}.S{self.seed}.{warehouse.upper()}.{name.upper()}"

    def location(self, warehouse: str) -> str:
        return f"urn:epc:id:sgln:{COMPANY}.S{self.seed}{warehouse.upper()}.0"

    def read_point(self, warehouse: str, name: str) -> str:
        return f"urn:epc:id:sgln:{COMPANY}.S{self.seed}{warehouse.upper()}.{name.upper()}"

    def reading(self, at_ms: int, device: str, biz_step: str, *, disposition: str = "", epcs: tuple[str, ...] = (),
                reports: tuple[dict[str, str], ...] = (), transactions: tuple[dict[str, str], ...] = (),
                after: Iterable[int] = (), fault: str = "", waits: Iterable[int] = ()) -> int:
        spec = self.devices[device]
        body = {"reading": {
            "device_id": spec.device_id, "tz_offset": "+08:00", "action": "OBSERVE", "biz_step": biz_step,
            "disposition": disposition, "epcs": list(epcs), "read_point": spec.read_point,
            "biz_location": self.location(spec.warehouse), "transactions": list(transactions),
            "reports": list(reports)}}
        return self.emit(at_ms, device, "warehouse.reading", body, after=(*after, self.approved[device]), fault=fault,
                         reading=True, waits=waits)

    # --- setup ---

    def setup(self) -> dict[str, int]:
        """The council appoints the parties; warehouses propose their devices, the supervisor approves."""
        done: dict[str, int] = {}
        done["sup"] = self.party("sup", "supervisor", "Port Steel Supervision Co", "Qingdao")
        for name, title in (("bank1", "Bank of Qingdao Trade Finance"), ("bank2", "Harbour Commercial Bank")):
            done[name] = self.party(name, "bank", title, "Beijing")
        for wh in self.warehouses:
            done[wh.name] = self.emit(0, "council", "warehouse.register_warehouse", {
                "key": Key(wh.name), "name": f"Qingdao Steel Store No. {wh.index + 1}", "uscc": USCC,
                "domicile": "Qingdao", "location": self.location(wh.name), "supervisor": Key("sup"),
                "bins": list(BINS), "require_signoff": True}, after=(done["sup"],))
            self.parties[wh.name] = "warehouse"
            done[wh.depositor] = self.party(wh.depositor, "depositor", f"Steel Trader {wh.index + 1} Ltd", "Tianjin",
                                            appointer=wh.name, after=(done[wh.name],))
        self.parties["pub"] = "publisher"
        done["pub"] = self.emit(0, "council", "warehouse.appoint_publisher", {
            "publisher": Key("pub"), "name": "Exchange settlement feed", "sources": ["shfe_settlement"],
            "specs": list(SPECS)})
        done["bounds"] = self.emit(0, "council", "warehouse.set_finance_bounds", {
            "daily_limit_bp": DAILY_LIMIT_BP})
        for wh in self.warehouses:
            approvals = []
            for name, kind, bins in self.device_layout(wh):
                device_id = self.device_id(wh.name, name)
                self.devices[f"{wh.name}-{name}"] = DeviceSpec(
                    f"{wh.name}-{name}", device_id, kind, wh.name, bins, self.read_point(wh.name, name),
                    self.heartbeat_ms)
                weighs = kind == "weighbridge"
                proposed = self.emit(0, wh.name, "warehouse.propose_device", {
                    "device_id": device_id, "kind": kind, "bins": list(bins), "public_key": Key(f"{wh.name}-{name}"),
                    "read_point": self.read_point(wh.name, name),
                    "calibration": {"certificate": _digest(f"CAL-{device_id}"), "accuracy_class": "III" if weighs
                                    else "", "scale_interval_g": 20_000 if weighs else 0,
                                    "expires_ms": At(YEAR_MS)},
                    "heartbeat_ms": self.heartbeat_ms}, after=(done[wh.name],), optional=("heartbeat_ms",))
                approvals.append(self.emit(0, "sup", "warehouse.approve_device", {"device_id": device_id},
                                           after=(proposed, done["sup"])))
                self.approved[f"{wh.name}-{name}"] = approvals[-1]
                if kind == "gnss_tag":
                    wh.gnss_free.append(f"{wh.name}-{name}")
            done[f"{wh.name}-devices"] = max(approvals)
            for a in approvals:
                done[f"approve-{a}"] = a
            facility = f"F-{wh.depositor.upper()}"
            self.facilities[facility] = ("bank1", wh.depositor)
            done[facility] = self.open_facility("bank1", facility, wh.depositor, after=(done["bank1"],
                                                                                          done[wh.depositor]))
        if "price_crash" in self.faults_wanted:
            borrower = self.warehouses[0].depositor
            self.crash_facility = f"CRASH-{borrower.upper()}"
            self.facilities[self.crash_facility] = ("bank2", borrower)
            done[self.crash_facility] = self.open_facility("bank2", self.crash_facility, borrower,
                                                           after=(done["bank2"], done[borrower]))
        return done

    def party(self, name: str, role: str, title: str, domicile: str, *, appointer: str = "council",
              after: Iterable[int] = ()) -> int:
        self.parties[name] = role
        return self.emit(0, appointer, "warehouse.register_party", {
            "key": Key(name), "role": role, "name": title, "uscc": USCC, "domicile": domicile}, after=after)

    def open_facility(self, bank: str, facility: str, borrower: str, after: Iterable[int]) -> int:
        self.opened[facility] = len(self.steps)
        return self.emit(0, bank, "warehouse.open_facility", {
            "facility": facility, "borrower": Key(borrower), "limit": 500_000_000_00, "currency": "CNY",
            "haircut_bp": HAIRCUT_BP, "initial_ltv_bp": 7000, "warning_bp": 7700, "call_bp": 8000,
            "liquidation_bp": 8700, "cure_days": 1, "max_warehouse_bp": 10_000, "max_spec_bp": 10_000},
            after=after)

    @staticmethod
    def device_layout(wh: _Warehouse) -> list[tuple[str, str, tuple[str, ...]]]:
        layout: list[tuple[str, str, tuple[str, ...]]] = [
            ("wb", "weighbridge", BINS), ("gate", "gate_reader", BINS), ("door", "door", BINS)]
        for b in BINS:
            layout += [(f"cam-{b}", "camera", (b,)), (f"lidar-{b}", "lidar", (b,))]
        layout += [("gnss1", "gnss_tag", ("A1",)), ("gnss2", "gnss_tag", ("A2",))]
        return layout

    # --- goods ---

    def new_lot(self, wh: _Warehouse, bin_name: str, mill: str = "", grade: str = "") -> _Lot:
        """A coil (A bins) or a rebar bundle (B bins) with a mill, heat and coil number never used."""
        while True:
            mill = mill or self.rng.choice(MILLS)
            heat = f"{self.rng.choice('ABCDEFGH')}{self.seed % 1000:03d}{self.rng.randrange(10_000):04d}"
            coil = f"{heat}-{self.rng.randrange(1, 100):02d}"
            if (mill, heat, coil) not in self.coils_used:
                break
        self.coils_used.add((mill, heat, coil))
        if bin_name.startswith("A"):
            lot = _Lot(lot_urn(mill, heat, coil), mill, heat, coil, "coil", grade or self.rng.choice(HRC_GRADES),
                       HRC_SPECS[0], self.rng.randrange(18_000, 28_001), wh.name, bin_name)
        else:
            lot = _Lot(lot_urn(mill, heat, coil), mill, heat, coil, "bundle", "HRB400E", REBAR_SPEC,
                       self.rng.randrange(2_000, 3_001), wh.name, bin_name)
        self.lots.append(lot)
        return lot

    def intake(self, wh: _Warehouse, at_ms: int, bin_name: str, pieces: int, after: Iterable[int]) -> _Receipt:
        """Coils weighed in one by one, booked, and proposed as one receipt to the depositor."""
        lots: list[_Lot] = []
        booked: list[int] = []
        device = f"{wh.name}-wb"
        for i in range(pieces):  # one receipt, one producer and grade
            lot = self.new_lot(wh, bin_name, lots[0].mill if lots else "", lots[0].grade if lots else "")
            tare = self.rng.randrange(15_000, 19_001)
            lot.intake_step = self.reading(at_ms + i * 50, device, "receiving", disposition="in_progress",
                                           epcs=(lot.urn,), reports=_weighing(tare + lot.net_kg, tare), after=after,
                                           waits=(wh.bin_seen.get(bin_name, -1),))
            lot.booked_step = self.emit(at_ms + i * 50 + 10, wh.name, "warehouse.register_lot", {
                "mill": lot.mill, "heat": lot.heat, "coil": lot.coil, "form": lot.form, "grade": lot.grade,
                "spec": lot.spec, "pieces": 1, "intake_event": Event(lot.intake_step),
                "mill_cert": _digest(f"MC-{lot.mill}-{lot.heat}-{lot.coil}"), "production_date":
                Date(-self.rng.randrange(20, 90)), "bin": bin_name}, after=(lot.intake_step,))
            lot.booked = True
            wh.bin_changed.setdefault(bin_name, []).append(lot.booked_step)
            lots.append(lot)
            booked.append(lot.booked_step)
        # the bin is scanned before the receipt is proposed: what is issued has been verified (R12)
        scanned = self.scan(wh, bin_name, at_ms + 150)
        number = wh.next_number
        wh.next_number += 1
        hrc = lots[0].form == "coil"
        proposed = self.emit(at_ms + 200, wh.name, "warehouse.propose_receipt", {
            "number": number, "depositor": Key(wh.depositor), "lots": [lot_key(x.mill, x.heat, x.coil) for x in lots],
            "goods": {"commodity": "hot-rolled coil" if hrc else "rebar", "spec": lots[0].spec,
                      "grade": lots[0].grade, "producer": f"{lots[0].mill} Steel", "packaging":
                      "bare coil" if hrc else "bundled, 2 ties", "marks": "heat/coil stencil", "pieces": len(lots),
                      "quantity_kg": sum(x.net_kg for x in lots)},
            "terms": {"shrinkage_permille": 0, "storage_until_ms": At(180 * 24 * 3600 * 1000),
                      "fee_per_tonne_day": 150, "currency": "CNY"},
            "negotiable": True, "rights_notice": _digest("凭证权利提示"), "issue_place": "Qingdao",
            "signer": f"clerk {wh.index + 1}"}, after=(*booked, scanned, wh.last_proposal))  # numbers in order
        wh.last_proposal = proposed
        accepted = (self.emit(at_ms + 300, wh.depositor, "warehouse.accept_receipt",
                              {"receipt": Receipt(wh.name, number)}, after=(proposed,)),
                    self.emit(at_ms + 300, "sup", "warehouse.accept_receipt", {"receipt": Receipt(wh.name, number)},
                              after=(proposed,)))
        receipt = _Receipt(wh.name, number, wh.depositor, lots, proposed, accepted)
        for lot in lots:
            lot.receipt = number
        self.receipts.append(receipt)
        return receipt

    def pledge(self, receipt: _Receipt, at_ms: int, bank: str, facility: str) -> int:
        requested = self.emit(at_ms, receipt.depositor, "warehouse.request_pledge", {
            "receipt": Receipt(receipt.warehouse, receipt.number), "pledgee": Key(bank), "facility": facility},
            after=(*receipt.accepted, self.opened.get(facility, -1)))
        offer = {"receipt": Receipt(receipt.warehouse, receipt.number), "offer": Entry(requested)}
        confirmed = self.emit(at_ms + 100, bank, "warehouse.confirm_pledge", offer, after=(requested,))
        countersigned = self.emit(at_ms + 100, receipt.warehouse, "warehouse.countersign", offer, after=(requested,))
        receipt.status, receipt.facility = "pledged", facility
        receipt.pledged_steps = (confirmed, countersigned)  # in either order: pledged once both are in
        return max(confirmed, countersigned)

    def deliver(self, receipt: _Receipt, at_ms: int, *, drift_bp: int = 0, fault: str = "") -> int:
        """Surrender, then the outbound weighing of the truck, the gate, and the cancellation."""
        wh = self._wh(receipt.warehouse)
        ref = Receipt(receipt.warehouse, receipt.number)
        surrendered = self.emit(at_ms, receipt.depositor, "warehouse.surrender", {
            "receipt": ref, "collector_ref": _digest(f"ID-{self.seed}-{receipt.warehouse}-{receipt.number}")},
            after=receipt.accepted, waits=(wh.bin_seen.get(x.bin, -1) for x in receipt.lots))
        net = sum(x.net_kg for x in receipt.lots)
        noise = self.rng.randrange(-20, 21)
        weighed = net + noise + net * drift_bp // 10_000
        tare = self.rng.randrange(15_000, 19_001)
        urns = tuple(x.urn for x in receipt.lots)
        shipped = self.reading(at_ms + 400, f"{wh.name}-wb", "shipping", disposition="in_transit", epcs=urns,
                               reports=_weighing(tare + weighed, tare), after=(surrendered,), fault=fault)
        for lot in receipt.lots:
            lot.in_stock = False
        receipt.status = "delivering"
        gate = self.reading(at_ms + 800, f"{wh.name}-gate", "departing", disposition="in_transit", epcs=urns,
                            after=(shipped,))
        cancelled = self.emit(at_ms + 1200, receipt.warehouse, "warehouse.cancel_receipt", {"receipt": ref},
                              after=(shipped, gate))
        for lot in receipt.lots:
            lot.booked = False
            wh.bin_changed.setdefault(lot.bin, []).append(cancelled)
        receipt.status = "cancelled"
        return shipped

    def _wh(self, name: str) -> _Warehouse:
        return next(w for w in self.warehouses if w.name == name)

    def in_bin(self, wh: _Warehouse, bin_name: str, *, physical: bool) -> list[_Lot]:
        return [x for x in self.lots if x.warehouse == wh.name and x.bin == bin_name
                and (x.in_stock if physical else x.booked)]

    # --- daily life ---

    def initial_stock(self, done: dict[str, int]) -> None:
        """The setup day: each warehouse takes in its first coils and bundles; some receipts are pledged."""
        for wh in self.warehouses:
            after = (done[f"{wh.name}-devices"], done[wh.depositor])
            at = self.t(-1, 4000, 500)
            for bin_name, pieces in (("A1", 2), ("A2", 2), ("B1", 3), ("A1", 1), ("A2", 1)):
                receipt = self.intake(wh, at, bin_name, pieces, after)
                at += self.day_ms // 40
                if bin_name.startswith("A") and pieces == 2:
                    facility = self.crash_facility if (self.crash_facility and wh.index == 0 and bin_name == "A1") \
                        else f"F-{wh.depositor.upper()}"
                    bank = self.facilities[facility][0]
                    self.pledge(receipt, at, bank, facility)
                    if facility == self.crash_facility:
                        receipt.reserved = "price_crash collateral"
                    for lot in receipt.lots:
                        if wh.gnss_free and lot.bin == self.devices[wh.gnss_free[0]].bins[0]:
                            lot.tag = wh.gnss_free.pop(0)

    def traffic(self, wh: _Warehouse, d: int) -> None:
        """The door opens on a work order; a truck of coils comes in, a receipt goes out."""
        start = self.t(d, 50, 300)
        door = f"{wh.name}-door"
        order = {"type": "work_order", "id": f"urn:bl:wo:S{self.seed}:{wh.name.upper()}:{d:03d}"}
        if door not in wh.dark:
            self.reading(start, door, "sensor_reporting", reports=(_report("Contact", "1", "C62"),),
                         transactions=(order,))
        bin_name = ""
        if not wh.drifting:
            open_bins = [b for b in BINS if b not in wh.quarantined]
            if open_bins:
                bin_name = self.rng.choice(open_bins)
                receipt = self.intake(wh, start + 500, bin_name, self.rng.randrange(1, 3) if bin_name[0] == "A"
                                      else self.rng.randrange(2, 5), ())
                if bin_name[0] == "A" and self.rng.randrange(2):
                    self.pledge(receipt, start + self.day_ms // 20, "bank1", f"F-{wh.depositor.upper()}")
        deliverable = [r for r in self.deliverable(wh) if all(x.bin != bin_name for x in r.lots)]
        if deliverable and (wh.drifting or self.rng.randrange(3)):
            drift = 0
            if wh.drifting:
                wh.outbound_since_drift += 1
                drift = 10 * wh.outbound_since_drift
            self.deliver(deliverable[0], start + self.day_ms // 10, drift_bp=drift)
        if door not in wh.dark:
            self.reading(self.t(d, TRAFFIC_END + 500), door, "sensor_reporting",
                         reports=(_report("Contact", "0", "C62"),), transactions=(order,))

    def deliverable(self, wh: _Warehouse) -> list[_Receipt]:
        return [r for r in self.receipts if r.warehouse == wh.name and r.status == "active" and not r.reserved
                and not any(x.bin in wh.quarantined or x.tag for x in r.lots)]

    def heartbeats(self, wh: _Warehouse, d: int) -> None:
        """Every device reports that it is alive, twice a day (once for cameras and lidars,
        whose counts are heartbeats as well)."""
        for name, spec in self.devices.items():
            if spec.warehouse != wh.name or name in wh.dark:
                continue
            counting = spec.kind in ("camera", "lidar")  # a count is a heartbeat too
            for fraction in HEARTBEATS[:1] if counting else HEARTBEATS:
                self.reading(self.t(d, fraction, 200), name, "sensor_reporting",
                             reports=(_report("Tamper", "0", "C62"),))

    def counts(self, wh: _Warehouse, d: int, fraction: int) -> None:
        for bin_name in BINS:
            self.count(wh, bin_name, self.t(d, fraction, 100))

    def observation_after(self, wh: _Warehouse, bin_name: str) -> tuple[int, ...]:
        """An observation of a bin waits for every change of its book since the last one (and
        for that one), whatever became of them; what changes the bin next waits for it. So an
        honest count meets the book however late the network decides."""
        return (*wh.bin_changed.get(bin_name, ()), wh.bin_seen.get(bin_name, -1))

    def observed(self, wh: _Warehouse, bin_name: str, step: int) -> None:
        wh.bin_changed[bin_name] = []
        wh.bin_seen[bin_name] = step

    def count(self, wh: _Warehouse, bin_name: str, at_ms: int) -> int:
        """The camera counts the coils physically in the bin; the lidar estimates their mass."""
        after = self.observation_after(wh, bin_name)
        present = self.in_bin(wh, bin_name, physical=True)
        last = -1
        camera = f"{wh.name}-cam-{bin_name}"
        if camera not in wh.dark:
            last = self.reading(at_ms, camera, "cycle_counting", reports=(_report("Count", str(len(present)), "H87"),),
                                waits=after)
        last = max(last, self.scan(wh, bin_name, at_ms + 20, after))
        if last >= 0:
            self.observed(wh, bin_name, last)
        return last

    def scan(self, wh: _Warehouse, bin_name: str, at_ms: int, after: tuple[int, ...] | None = None) -> int:
        """The lidar's estimate of the mass in the bin: what is there, within 0.2%."""
        lidar = f"{wh.name}-lidar-{bin_name}"
        if lidar in wh.dark:
            return -1
        mass = sum(x.actual_kg or x.net_kg for x in self.in_bin(wh, bin_name, physical=True))
        spread = self.rng.randrange(-20, 21)  # basis points, rounded toward zero: inside 0.2%
        noise = (mass * abs(spread) // 10_000) * (1 if spread >= 0 else -1)
        scanned = self.reading(at_ms, lidar, "cycle_counting",
                               reports=(_report("Mass", str(max(0, mass + noise)), "KGM", "net"),),
                               waits=self.observation_after(wh, bin_name) if after is None else after)
        self.last_lidar[(wh.name, bin_name)] = scanned
        if after is None:
            self.observed(wh, bin_name, scanned)
        return scanned

    def prices_for(self, days: int, crash: bool) -> None:
        for spec in SPECS:
            path = [START_PRICE[spec]]
            for _ in range(days - 1):
                move = self.rng.randrange(-HONEST_MOVE_BP, HONEST_MOVE_BP + 1)
                path.append(path[-1] * (10_000 + move) // 10_000)
            self.prices[spec] = path
        if crash:
            spec = HRC_SPECS[0]
            path = self.prices[spec]
            base_day = days - PRICE_CRASH_DAYS
            base = path[base_day]
            target = base * (10_000 - CRASH_TOTAL_BP) // 10_000
            for i in range(1, 6):  # geometric steps to exactly -12%, each inside the daily limit
                path[base_day + i] = round(base * (target / base) ** (i / 5))
            path[base_day + 5] = target
            path[base_day + 6] = target * (10_000 - CRASH_LAST_BP) // 10_000

    def publish(self, d: int) -> dict[str, int]:
        """The day's settlement prices, once yesterday's balances are reported against yesterday's."""
        marks = {}
        for spec in SPECS:
            marks[spec] = self.emit(self.t(d, 0), "pub", "warehouse.publish_price", {
                "spec": spec, "source": "shfe_settlement", "kind": "settlement", "day": Date(d),
                "price": Scaled(spec, self.prices[spec][d]), "currency": "CNY", "vat_included": False},
                waits=self.reported)
        self.reported = []
        return marks

    def outstanding(self, d: int, marks: dict[str, int]) -> None:
        """Each bank reports what its borrower owes: a share of the collateral's value that day."""
        for facility, (bank, _) in self.facilities.items():
            pledged = [r for r in self.receipts if r.facility == facility and r.status == "pledged"]
            if not pledged:
                continue
            if facility == self.crash_facility and d != self.days - PRICE_CRASH_DAYS:
                continue
            share = CRASH_LTV_BP if facility == self.crash_facility else HONEST_LTV_BP
            value = sum(collateral_value(sum(x.net_kg for x in r.lots), self.prices[r.lots[0].spec][d], HAIRCUT_BP)
                        for r in pledged)
            if facility == self.crash_facility:
                self.crash_collateral = [sum(x.net_kg for x in r.lots) for r in pledged]
                self.crash_outstanding = value * share // 10_000
            self.reported.append(len(self.steps))
            self.emit(self.t(d, 50), bank, "warehouse.report_outstanding", {  # pledges are of coil: one spec
                "facility": facility, "outstanding": Scaled(HRC_SPECS[0], value * share // 10_000), "day": Date(d)},
                after=(*marks.values(), *(s for r in pledged for s in r.pledged_steps)))  # valued with its pledges

    # --- faults ---

    def choose_day(self) -> int:
        return 1 if self.days <= 3 else self.rng.randrange(1, self.days - 1)

    def fault_warehouse(self, i: int) -> _Warehouse:
        return self.warehouses[(i + 1) % len(self.warehouses)] if len(self.warehouses) > 1 else self.warehouses[0]

    def fault_bin(self, wh: _Warehouse, wanted: Callable[[str], bool]) -> str:
        reserved = {x.bin for r in self.receipts if r.warehouse == wh.name and r.reserved for x in r.lots}
        choices = [b for b in BINS if wanted(b) and b not in wh.quarantined and b not in reserved] or [
            b for b in BINS if wanted(b) and b not in reserved]
        if not choices:
            raise SimulationInvalid(f"{wh.name} has no bin left for another fault; give it more warehouses")
        return self.rng.choice(choices)

    def settled(self, wh: _Warehouse, lots: list[_Lot]) -> tuple[int, ...]:
        """What a fault on these lots waits for: their booking, their receipt's pledge, and the
        last observation of their bins (so the goods it takes are there, on the book, first)."""
        receipts = [r for r in self.receipts if r.warehouse == wh.name and r.number in {x.receipt for x in lots}]
        return (*(x.booked_step for x in lots), *(s for r in receipts for s in r.pledged_steps),
                *(wh.bin_seen.get(x.bin, -1) for x in lots))

    def theft(self, wh: _Warehouse, d: int) -> None:
        reserved = {x.urn for r in self.receipts if r.reserved for x in r.lots}
        tagged = sorted((x for x in self.lots if x.warehouse == wh.name and x.tag and x.in_stock and x.booked
                         and x.urn not in reserved), key=lambda x: x.bin in wh.quarantined)
        if not tagged:
            raise SimulationInvalid(f"{wh.name} has no tagged coil left to steal")
        lot = tagged[0]
        wh.quarantined.add(lot.bin)
        wh.closed = True  # the warehouse's receipts are held until the alert is resolved
        at = self.t(d, NIGHT)
        gate = self.reading(at, f"{wh.name}-gate", "departing", disposition="in_transit", epcs=(lot.urn,),
                            fault="theft", waits=self.settled(wh, [lot]))
        self.reading(at + 200, lot.tag, "departing", disposition="in_transit", epcs=(lot.urn,), fault="theft",
                     waits=(gate,))
        wh.bin_changed.setdefault(lot.bin, []).append(gate)  # the next count sees the bin after the theft
        lot.in_stock = False
        self.faults.append(Fault("theft", wh.name, EXPECTED["theft"], CONSEQUENCES["theft"], gate, at, d, lot.bin,
                                 (lot.urn,), note=f"coil {lot.coil} ({lot.net_kg} kg) driven out at night"))

    def substitution(self, wh: _Warehouse, d: int) -> None:
        """At night a coil is swapped for a lighter one of the same look: only mass shows it."""
        bin_name = self.fault_bin(wh, lambda b: b.startswith("A"))
        present = [x for x in self.in_bin(wh, bin_name, physical=True) if x.booked]
        if not present:
            raise SimulationInvalid(f"{wh.name} bin {bin_name} is empty: nothing to substitute")
        wh.quarantined.add(bin_name)
        wh.closed = True
        lot = present[0]
        short = lot.net_kg * 35 // 100
        lot.actual_kg = lot.net_kg - short
        self.pending_substitution.append((wh, bin_name, lot, short, d))

    def substitution_seen(self, wh: _Warehouse, bin_name: str, lot: _Lot, short: int, d: int) -> None:
        seen = self.last_lidar[(wh.name, bin_name)]
        book = sum(x.net_kg for x in self.in_bin(wh, bin_name, physical=False))
        pieces = len(self.in_bin(wh, bin_name, physical=True))
        counted = self.emit(self.t(d + 1, 200), "sup", "warehouse.record_stocktake", {
            "warehouse": Key(wh.name), "bin": bin_name, "counted_kg": book - short, "counted_pieces": pieces,
            "note": "coil weighed on the crane scale: lighter than its ticket"}, fault="substitution",
            waits=self.observation_after(wh, bin_name))  # the supervisor counts after the lidar scan
        self.observed(wh, bin_name, counted)
        self.faults.append(Fault("substitution", wh.name, EXPECTED["substitution"], CONSEQUENCES["substitution"],
                                 seen, self.steps[seen].at_ms, d, bin_name, (lot.urn,),
                                 note=f"coil {lot.coil} swapped for one {short} kg lighter"))

    def drift(self, wh: _Warehouse, d: int) -> None:
        """Before the scale starts to drift a coil comes in for the delivery that will show it."""
        bin_name = self.fault_bin(wh, lambda b: b.startswith("A"))
        receipt = self.intake(wh, self.t(d, 20), bin_name, 1, ())
        receipt.reserved = "drift"
        wh.drifting = True
        self.drift_at.append((wh, d, receipt))

    def finish_drift(self, wh: _Warehouse, d: int, receipt: _Receipt) -> None:
        """The weighbridge has drifted 2%: the outbound weighing exceeds the instruction."""
        at = self.t(d, 1500)
        shipped = self.deliver(receipt, at, drift_bp=200, fault="drift")
        wh.quarantined.update(x.bin for x in receipt.lots)
        wh.closed = True
        self.faults.append(Fault("drift", wh.name, EXPECTED["drift"], CONSEQUENCES["drift"], shipped,
                                 self.steps[shipped].at_ms, d, receipt.lots[0].bin,
                                 tuple(x.urn for x in receipt.lots), device=f"{wh.name}-wb",
                                 note="weighbridge drifting +0.1% per weighing, then 2% over the instruction"))

    def blackout(self, wh: _Warehouse, d: int) -> None:
        bin_name = self.fault_bin(wh, lambda _: True)
        device = f"{wh.name}-cam-{bin_name}"
        wh.dark.add(device)
        wh.quarantined.add(bin_name)
        last = max((s for s in self.steps if s.signer == device), key=lambda s: s.at_ms)
        detectable = last.at_ms + 3 * self.heartbeat_ms
        self.faults.append(Fault("blackout", wh.name, EXPECTED["blackout"], CONSEQUENCES["blackout"], last.n,
                                 detectable, d, bin_name, device=device,
                                 note="camera stops sending anything, heartbeats included"))

    def unauthorised_exit(self, wh: _Warehouse, d: int) -> None:
        pledged = [r for r in self.receipts if r.warehouse == wh.name and r.status == "pledged" and not r.reserved
                   and not any(x.bin in wh.quarantined or x.tag for x in r.lots)]
        pledged = pledged or [r for r in self.receipts if r.warehouse == wh.name and r.status == "pledged"
                              and not r.reserved and all(x.in_stock for x in r.lots)]
        if not pledged:
            raise SimulationInvalid(f"{wh.name} has no pledged receipt left for a truck to leave with")
        receipt = pledged[0]
        at = self.t(d, TRAFFIC_END + 200)
        urns = tuple(x.urn for x in receipt.lots)
        net = sum(x.net_kg for x in receipt.lots)
        tare = self.rng.randrange(15_000, 19_001)
        shipped = self.reading(at, f"{wh.name}-wb", "shipping", disposition="in_transit", epcs=urns,
                               reports=_weighing(tare + net, tare), fault="unauthorised_exit",
                               waits=self.settled(wh, receipt.lots))
        for bin_name in {x.bin for x in receipt.lots}:  # the next count sees the bin after the truck left
            wh.bin_changed.setdefault(bin_name, []).append(shipped)
        for lot in receipt.lots:
            lot.in_stock = False
        receipt.status = "gone"
        wh.quarantined.update(x.bin for x in receipt.lots)
        wh.closed = True
        self.faults.append(Fault("unauthorised_exit", wh.name, EXPECTED["unauthorised_exit"],
                                 CONSEQUENCES["unauthorised_exit"], shipped, at, d, receipt.lots[0].bin, urns,
                                 note=f"a truck weighed out {_coils(len(urns))}, pledged, with no surrender"))

    def price_crash(self, marks: dict[int, dict[str, int]]) -> None:
        """The facility goes to WATCH on the first day its LTV reaches 77%, to MARGIN_CALL on
        the first it reaches 80% (LTV = ceil(outstanding / collateral), as valued that day)."""
        spec = HRC_SPECS[0]
        bank, _ = self.facilities[self.crash_facility]
        first: dict[str, int] = {}
        for d in range(self.days - PRICE_CRASH_DAYS, self.days):
            collateral = sum(collateral_value(kg, self.prices[spec][d], HAIRCUT_BP) for kg in self.crash_collateral)
            ltv = -(-self.crash_outstanding * 10_000 // collateral)
            for rule, line in (("WATCH", 7700), ("MARGIN_CALL", 8000)):
                if ltv >= line:
                    first.setdefault(rule, d)
        for rule, d in sorted(first.items(), key=lambda kv: kv[1]):
            step = marks[d][spec]
            self.faults.append(Fault("price_crash", "", (rule,), (), step, self.steps[step].at_ms, d,
                                     facility=f"{bank}/{self.crash_facility}",
                                     note=f"{spec} settlement {self.prices[spec][d - 1]} → {self.prices[spec][d]}"))

    def build(self) -> Plan:
        crash = "price_crash" in self.faults_wanted
        self.prices_for(self.days, crash)
        done = self.setup()
        self.initial_stock(done)
        schedule: dict[int, list[tuple[str, _Warehouse]]] = {}
        for i, kind in enumerate(k for k in self.faults_wanted if k != "price_crash"):
            schedule.setdefault(self.choose_day(), []).append((kind, self.fault_warehouse(i)))
        marks: dict[int, dict[str, int]] = {}
        for d in range(self.days + 1):  # the last day is quiet: devices report, the last faults show
            today = schedule.get(d, [])
            quiet = d == self.days
            if not quiet:
                marks[d] = self.publish(d)
                self.outstanding(d, marks[d])
            for kind, wh in today:
                if kind == "blackout":
                    self.blackout(wh, d)
            for wh, started, receipt in self.drift_at:
                if d == started + 1 and not wh.closed:
                    self.finish_drift(wh, d, receipt)
            for kind, wh in today:
                if kind == "drift":
                    self.drift(wh, d)
            for wh in self.warehouses:
                if not quiet and not wh.closed:
                    self.traffic(wh, d)
            for kind, wh in today:
                if kind == "unauthorised_exit":
                    self.unauthorised_exit(wh, d)
            for wh in self.warehouses:
                self.heartbeats(wh, d)
                self.counts(wh, d, COUNTS[0])
            for kind, wh in today:
                if kind == "theft":
                    self.theft(wh, d)
                elif kind == "substitution":
                    self.substitution(wh, d)
            for wh in self.warehouses:
                self.counts(wh, d, COUNTS[1])
            for args in self.pending_substitution:
                self.substitution_seen(*args)
            self.pending_substitution.clear()
        if crash:
            self.price_crash(marks)
        ordered = sorted(self.steps, key=lambda s: (s.at_ms, s.n))
        renumber = {s.n: i for i, s in enumerate(ordered)}
        steps = tuple(_renumbered(s, renumber) for s in ordered)
        faults = tuple(msgspec.structs.replace(f, entry_step=renumber[f.entry_step]) for f in self.faults)
        return Plan(self.seed, len(self.warehouses), self.days, self.day_ms, faults, dict(sorted(self.parties.items())),
                    tuple(self.devices[name] for name in sorted(self.devices)), steps)


def _renumbered(step: Step, renumber: dict[int, int]) -> Step:
    def swap(value: Any) -> Any:
        if isinstance(value, Entry | Event):
            return type(value)(renumber[value.step])
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    return msgspec.structs.replace(step, n=renumber[step.n], body=swap(step.body),
                                   after=tuple(sorted(renumber[a] for a in step.after)),
                                   waits=tuple(sorted(renumber[w] for w in step.waits)))


def _coils(n: int) -> str:
    return f"{n} coil{'s' if n != 1 else ''}"


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _report(kind: str, value: str, uom: str, weighing: str = "") -> dict[str, str]:
    return {"type": kind, "value": value, "uom": uom, "weighing": weighing}


def _weighing(gross: int, tare: int) -> tuple[dict[str, str], ...]:
    return _report("Mass", str(gross), "KGM", "gross"), _report("Mass", str(tare), "KGM", "tare")


def collateral_value(quantity_kg: int, price_per_tonne: int, haircut_bp: int) -> int:
    """The value a bank lends against: quantity * price * (1 - haircut), in minor units."""
    return quantity_kg * price_per_tonne * (10_000 - haircut_bp) // (1000 * 10_000)


def parse_faults(text: str) -> tuple[FaultKind, ...]:
    """`theft,drift` or `all` (or empty: none), in the canonical order."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    if "all" in names:
        names = (names - {"all"}) | set(FAULT_KINDS)
    unknown = sorted(names - set(FAULT_KINDS))
    if unknown:
        raise SimulationInvalid(f"unknown fault kinds {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}, all")
    return tuple(kind for kind in FAULT_KINDS if kind in names)


def plan(seed: int, *, warehouses: int = 3, days: int = 10, day_seconds: float = 20.0,
         faults: tuple[str, ...] = ()) -> Plan:
    """The whole run, from the seed alone."""
    if not 1 <= warehouses <= 20:
        raise SimulationInvalid("warehouses: 1-20")
    if not 2 <= days <= 60:
        raise SimulationInvalid("days: 2-60")
    if not 4 <= day_seconds <= 3600:
        raise SimulationInvalid("day seconds: 4-3600 (a device's heartbeat is half a day)")
    if seed < 0 or seed >= 2**63:
        raise SimulationInvalid("the seed is a non-negative 63-bit integer")
    wanted = parse_faults(",".join(faults))
    if "price_crash" in wanted and days < PRICE_CRASH_DAYS:
        raise SimulationInvalid(f"a price crash takes {PRICE_CRASH_DAYS} trading days: one to lend at 70%, five "
                                "to fall 12% inside the daily limit, one more to fall 2.9%")
    slots = sum(1 for k in wanted if k != "price_crash")
    if slots > 2 * warehouses:
        raise SimulationInvalid(f"{slots} faults need at least {(slots + 1) // 2} warehouses")
    return _Builder(seed, warehouses, days, int(day_seconds * 1000), wanted).build()


# --- materializing a step: placeholders resolved into an operation's fields -------------------------


@dataclass
class Resolver:
    """What a run knows: keys by name, entry ids and event ids of the steps sent, its clock."""

    keys: dict[str, bytes]
    start_ms: int
    first_day: str  # YYYY-MM-DD of trading day 0
    entries: dict[int, bytes] = field(default_factory=dict)
    events: dict[int, bytes] = field(default_factory=dict)
    device_seq: dict[str, int] = field(default_factory=dict)
    price_base: dict[str, int] = field(default_factory=dict)  # spec -> the chain's last price of it

    def value(self, value: Any) -> Any:
        if isinstance(value, Key):
            return self.keys[value.name]
        if isinstance(value, Entry):
            return self.entries[value.step]
        if isinstance(value, Event):
            return self.events[value.step]
        if isinstance(value, Receipt):
            return receipt_id(self.keys[value.warehouse], value.number)
        if isinstance(value, At):
            return self.start_ms + value.offset_ms
        if isinstance(value, Date):
            return _add_days(self.first_day, value.days)
        if isinstance(value, Scaled):
            base = self.price_base.get(value.spec, START_PRICE[value.spec])
            return value.amount * base // START_PRICE[value.spec]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


def _add_days(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def materialize(step: Step, resolver: Resolver, operations: dict[str, type[Any]], now_ms: int) -> Any:
    """The operation of a step, built from its body; a reading gets the device's next seq and
    the real clock. Fields this build's operation does not declare and the step marks
    optional are dropped. Returns None when the build has no such operation kind."""
    struct = operations.get(step.kind)
    if struct is None:
        return None
    body = resolver.value(step.body)
    declared = set(struct.__struct_fields__)
    for name in step.optional:
        if name not in declared:
            body.pop(name, None)
    if step.reading_time:
        reading = body["reading"]
        seq = resolver.device_seq.get(reading["device_id"], -1) + 1
        resolver.device_seq[reading["device_id"]] = seq
        reading.update(seq=seq, event_time_ms=now_ms)
    op = msgspec.convert(body, type=struct)
    if step.reading_time:
        resolver.events[step.n] = epcis.event_hash(op.reading)
    return op


# --- the driver: the plan played through a running network ---------------------------------------

@dataclass
class Outcome:
    """What became of a step: FINAL or REJECTED (with its code) on the chain, REFUSED at
    ingress, SKIPPED (a step it follows was not final), UNSUPPORTED (a kind this build lacks,
    or following one), TIMEOUT."""

    status: str
    reason: str = ""
    sent_ms: int = 0  # wall clock when it was submitted
    done_ms: int = 0  # wall clock when its outcome was known
    entry: str = ""


@dataclass
class Sighting:
    """Something the nodes reported (an alert, a hold, a facility state) and when it was first seen."""

    what: str  # the rule, "HELD", or the facility state
    warehouse: str  # the warehouse's name in the plan ("" for facilities)
    first_seen_ms: int
    record: dict[str, Any]


def keystore_names(seed: int, plan_: Plan) -> dict[str, str]:
    """The keystore name of every simulated party and device."""
    names = [*plan_.parties, *(d.name for d in plan_.devices)]
    return {name: f"sim-{seed}-{name}" for name in names}


@dataclass
class _Author:
    signer: Signer
    client: NodeClient
    seq: int = -1  # -1: not yet read from the node
    head: bytes = b""


class Driver:
    """Sets the world up on a running network and plays the plan in time order.

    Each step waits for its time and for the steps it names in `after` to be final, is
    signed by its key with the author's next sequence, and goes to the author's node (authors
    are spread over the nodes round-robin, so an author's entries reach one node in order).
    A step whose prerequisite was refused is SKIPPED; a kind this build does not know is
    UNSUPPORTED. A watcher polls the nodes for alerts, holds and facility states."""

    def __init__(self, plan_: Plan, nodes: list[str], keystore: Keystore, council: Signer, *,
                 first_day: str | None = None, timeout_s: float = 90.0, poll_s: float = 1.0,
                 progress: Callable[[Driver], None] | None = None) -> None:
        if not nodes:
            raise SimulationInvalid("give at least one --node")
        self.plan = plan_
        self.clients = [NodeClient(url) for url in nodes]
        self.keystore, self.council = keystore, council
        self.timeout_s, self.poll_s, self.progress = timeout_s, poll_s, progress
        self.first_day = first_day
        self.outcomes: dict[int, Outcome] = {}
        self.sightings: dict[str, Sighting] = {}
        self.authors: dict[str, _Author] = {}
        self.start_ms = 0
        self.sent = 0
        self.day = -1
        self.monitoring: bool | None = None
        self.finance: bool | None = None
        self.max_lag_ms = 0
        self._tips: dict[str, tuple[float, list[bytes]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.operations = {op.KIND: op for op in OPERATIONS}

    # --- keys ---

    def create_keys(self) -> dict[str, bytes]:
        """A plaintext key per simulated party and device, named sim-<seed>-<name>; a seed
        runs once per keystore (its coils and receipts would exist on the chain already)."""
        names = keystore_names(self.plan.seed, self.plan)
        taken = sorted(n for n in names.values() if (self.keystore.path / f"{n}.json").exists())
        if taken:
            raise SimulationInvalid(f"the keystore holds keys of seed {self.plan.seed} already ({taken[0]}, ...): "
                                    "this seed has run; choose another --seed")
        keys: dict[str, bytes] = {}
        for i, (name, stored) in enumerate(names.items()):
            self.keystore.create(stored)
            signer = self.keystore.load(stored)
            keys[name] = signer.public_key
            self.authors[name] = _Author(signer, self.clients[(i + 1) % len(self.clients)])
        self.authors["council"] = _Author(self.council, self.clients[0])
        keys["council"] = self.council.public_key
        return keys

    # --- sending ---

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def tips(self, client: NodeClient) -> list[bytes]:
        cached = self._tips.get(client.url)
        if cached is not None and time.monotonic() - cached[0] < 0.25:
            return cached[1]
        tips = client.tips()
        self._tips[client.url] = (time.monotonic(), tips)
        return tips

    def send(self, step: Step, resolver: Resolver, pool: ThreadPoolExecutor) -> None:
        author = self.authors[step.signer]
        now = self.now_ms()
        ready_ms = max([self.start_ms + step.at_ms, *(self.outcomes[d].done_ms for d in (*step.after, *step.waits))])
        self.max_lag_ms = max(self.max_lag_ms, now - ready_ms)  # behind schedule, not waiting for a prerequisite
        try:
            op = materialize(step, resolver, self.operations, now)
        except (msgspec.ValidationError, KeyError) as exc:
            self.outcomes[step.n] = Outcome("REFUSED", f"simulator: {exc}", now, now)
            return
        if op is None:
            self.outcomes[step.n] = Outcome("UNSUPPORTED", step.kind, now, now)
            return
        client = author.client
        try:
            if author.seq < 0:
                known = client.author(author.signer.address)
                author.seq = int(known["next_seq"])
                author.head = bytes.fromhex(known["head"]) if known["head"] else b""
            parents = [author.head] if author.head else []
            for tip in self.tips(client):
                if len(parents) >= min(4, self.max_parents):
                    break
                if tip not in parents:
                    parents.append(tip)
            entry_id, signed = build_entry(author.signer, chain_id=self.chain_id, seq=author.seq,
                                           parents=parents or [self.genesis_root], op=op, payload=b"",
                                           time_ms=self.now_ms(), pow_bits=self.pow_bits)
            client.submit(signed)
        except RemoteError as exc:
            self.outcomes[step.n] = Outcome("REFUSED", exc.remote_code, now, self.now_ms())
            return
        except BilayerError as exc:
            self.outcomes[step.n] = Outcome("REFUSED", exc.code, now, self.now_ms())
            return
        author.seq += 1
        author.head = entry_id
        resolver.entries[step.n] = entry_id
        self.sent += 1
        self.outcomes.pop(step.n, None)
        pool.submit(self._await, step.n, client, entry_id.hex(), now)

    def _await(self, n: int, client: NodeClient, entry: str, sent_ms: int) -> None:
        try:
            view = client.wait_for_outcome(entry, self.timeout_s)
            outcome = Outcome(str(view["status"]), str(view.get("reason") or ""), sent_ms, self.now_ms(), entry)
        except BilayerError as exc:
            outcome = Outcome("TIMEOUT", exc.code, sent_ms, self.now_ms(), entry)
        with self._lock:
            self.outcomes[n] = outcome

    def readiness(self, step: Step, waited_ms: int) -> str:
        """"ready", "wait", "UNSUPPORTED", or why the step cannot be sent."""
        if any(w not in self.outcomes for w in step.waits):
            return "dependency_timeout" if waited_ms > self.timeout_s * 1000 else "wait"
        for dep in step.after:
            outcome = self.outcomes.get(dep)
            if outcome is None:
                return "dependency_timeout" if waited_ms > self.timeout_s * 1000 else "wait"
            if outcome.status == "UNSUPPORTED":
                return "UNSUPPORTED"
            if outcome.status != "FINAL":
                return "dependency_not_final"
        return "ready"

    # --- watching ---

    def watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.observe()

    def observe(self) -> None:
        """Alerts, holds and facility states as a node reports them now."""
        client = self.clients[0]
        now = self.now_ms()
        if self.monitoring is not False:
            for wh in (name for name, role in self.plan.parties.items() if role == "warehouse"):
                address = address_from_public_key(self.keys[wh])
                # holds first: an alert that set a hold exists by then, so it is seen in the same poll
                holds = self._query(client, "holds", warehouse=address)
                alerts = self._query(client, "alerts", warehouse=address)
                if alerts is None:
                    self.monitoring = False
                    break
                self.monitoring = True
                for alert in _items(alerts, "alerts"):
                    self._saw(f"alert:{alert.get('id')}", str(alert.get("rule", "")), wh, now, alert)
                for receipt in _items(holds or {}, "receipts"):  # each hold with the alerts that set it
                    for alert_id in receipt.get("held", []):
                        self._saw(f"hold:{alert_id}:receipt:{receipt.get('id')}", "HELD", wh, now,
                                  {"alert": alert_id, "receipt": receipt.get("id")})
                for held_bin in _items(holds or {}, "bins"):
                    for alert_id in held_bin.get("alerts", []):
                        self._saw(f"hold:{alert_id}:bin:{held_bin.get('bin')}", "HELD", wh, now,
                                  {"alert": alert_id, "bin": held_bin.get("bin")})
        if self.finance is not False:
            for bank, facility in self.facilities():
                view = self._query(client, "facility", bank=address_from_public_key(self.keys[bank]), name=facility)
                if view is None:
                    if self.finance is None:
                        self.finance = False
                    continue
                self.finance = True
                for state in _facility_states(view):  # every state it went through, as the node keeps them
                    self._saw(f"facility:{bank}/{facility}:{state}", state, "", now,
                              {"facility": f"{bank}/{facility}", "state": state})

    def facilities(self) -> list[tuple[str, str]]:
        found = []
        for step in self.plan.steps:
            if step.kind == "warehouse.open_facility" and self.outcomes.get(step.n, Outcome("")).status == "FINAL":
                found.append((step.signer, str(step.body["facility"])))
        return found

    def _query(self, client: NodeClient, query: str, **params: str) -> dict[str, Any] | None:
        try:
            return dict(client.get(f"/v1/apps/warehouse/{query}?{urlencode(params)}"))
        except RemoteError as exc:
            if exc.remote_status == 404 or exc.remote_code in ("not_found", "unknown_query"):
                return None
            return {}
        except BilayerError:
            return {}

    def _saw(self, key: str, what: str, warehouse: str, now: int, record: dict[str, Any]) -> None:
        if key not in self.sightings:
            self.sightings[key] = Sighting(what, warehouse, now, record)

    # --- the run ---

    def run(self) -> dict[str, Any]:
        status = self.clients[0].status()
        self.chain_id = str(status["chain_id"])
        self.pow_bits = int(status["params"]["pow_bits"])
        self.max_parents = int(status["params"]["max_parents"])
        self.genesis_root = bytes.fromhex(status["genesis_root"])
        self.keys = self.create_keys()
        self.start_ms = self.now_ms() + 500
        today = time.strftime("%Y-%m-%d", time.gmtime(self.start_ms / 1000))
        first_day, bases = self.first_day or today, {}
        prices = self._query(self.clients[0], "prices")
        if prices:  # trading days and prices go on from where the chain's are
            if prices.get("as_of"):
                first_day = max(first_day, _add_days(str(prices["as_of"]), 1))
            bases = {str(h["spec"]): int(h["price"]) for h in _items(prices, "specs") if h.get("spec") in SPECS}
        resolver = Resolver(self.keys, self.start_ms, first_day, price_base=bases)
        watcher = threading.Thread(target=self.watch, name="simulate-watch", daemon=True)
        watcher.start()
        steps = list(self.plan.steps)
        due: list[tuple[Step, int]] = []
        i = 0
        with ThreadPoolExecutor(max_workers=48, thread_name_prefix="simulate-wait") as pool:
            while i < len(steps) or due:
                elapsed = self.now_ms() - self.start_ms
                while i < len(steps) and steps[i].at_ms <= elapsed:
                    due.append((steps[i], self.now_ms()))
                    i += 1
                waiting, moved = [], False
                for step, since in due:
                    ready = self.readiness(step, self.now_ms() - since)
                    if ready == "ready":
                        self.day = max(self.day, step.day)
                        self.send(step, resolver, pool)
                        moved = True
                    elif ready == "wait":
                        waiting.append((step, since))
                    elif ready == "UNSUPPORTED":  # it follows a step of a kind this build lacks
                        self.outcomes[step.n] = Outcome("UNSUPPORTED", "follows_unsupported", self.now_ms(),
                                                        self.now_ms())
                    else:
                        self.outcomes[step.n] = Outcome("SKIPPED", ready, self.now_ms(), self.now_ms())
                due = waiting
                if self.progress is not None:
                    self.progress(self)
                if not moved:
                    upcoming = steps[i].at_ms - (self.now_ms() - self.start_ms) if i < len(steps) else 50
                    time.sleep(max(0.005, min(0.05, upcoming / 1000)))
            deadline = time.monotonic() + self.timeout_s
            while len(self.outcomes) < len(steps) and time.monotonic() < deadline:
                if self.progress is not None:
                    self.progress(self)
                time.sleep(0.1)
        self._stop.set()
        watcher.join(timeout=self.poll_s + 20)
        self.observe()
        if self.progress is not None:
            self.progress(self)
        return score(self.plan, self.outcomes, list(self.sightings.values()), self.start_ms,
                     monitoring=bool(self.monitoring), finance=bool(self.finance), max_lag_ms=self.max_lag_ms)

    def counts(self) -> dict[str, int]:
        with self._lock:
            tally: dict[str, int] = {}
            for outcome in self.outcomes.values():
                tally[outcome.status] = tally.get(outcome.status, 0) + 1
        return tally


def _items(view: dict[str, Any], field_name: str) -> list[dict[str, Any]]:
    items = view.get(field_name, [])
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _facility_states(view: dict[str, Any]) -> list[str]:
    """The states a facility's view shows: each recorded change, then the current one."""
    states = [str(e.get("state") or e.get("to") or "").upper() for e in _items(view, "events")]
    facility = view.get("facility", {})
    if isinstance(facility, dict):
        states.append(str(facility.get("state", "")).upper())
    return [s for s in states if s]


# --- scoring ---------------------------------------------------------------------------------------


def score(plan_: Plan, outcomes: dict[int, Outcome], sightings: list[Sighting], start_ms: int, *,
          monitoring: bool, finance: bool, max_lag_ms: int = 0) -> dict[str, Any]:
    """Per fault kind: injected, detected by its rules, seconds from its entry to the alert
    and to a hold (or to the facility state); alerts no fault explains; refusals by code."""
    grace_ms = 2000
    entries: dict[int, int] = {}
    for f in plan_.faults:
        outcome = outcomes.get(f.entry_step)
        sent = outcome.sent_ms if outcome is not None and outcome.sent_ms else start_ms + plan_.steps[
            f.entry_step].at_ms
        entries[id(f)] = sent + f.entry_ms - plan_.steps[f.entry_step].at_ms
    def caused_by(f: Fault, entry: int) -> list[Sighting]:
        return [s for s in sightings if s.what in (*f.rules, *f.explains) and s.first_seen_ms >= entry - grace_ms
                and s.warehouse == f.warehouse]

    rows: dict[str, dict[str, Any]] = {}
    for f in plan_.faults:
        entry = entries[id(f)]
        row = rows.setdefault(f.kind, {"fault": f.kind, "injected": 0, "rules": [], "detected": [], "missed": [],
                                       "alert_s": [], "held_s": [], "where": []})
        if f.kind != "price_crash" or not row["injected"]:
            row["injected"] += 1
        row["where"].append(f.warehouse or f.facility)
        for rule in f.rules:
            row["rules"].append(rule)
            seen = [s for s in sightings if s.what == rule and s.first_seen_ms >= entry - grace_ms and (
                s.warehouse == f.warehouse if f.warehouse else s.record.get("facility") == f.facility)]
            if seen:
                first = min(s.first_seen_ms for s in seen)
                row["detected"].append(rule)
                row["alert_s"].append(round((first - entry) / 1000, 1))
            else:
                row["missed"].append(rule)
        if f.warehouse:  # a hold set by one of the alerts the fault raised
            own = {str(s.record.get("id")): s.first_seen_ms for s in caused_by(f, entry)}
            held = [max(s.first_seen_ms, own[s.record["alert"]]) for s in sightings  # never before its alert
                    if s.what == "HELD" and s.record.get("alert") in own]
            if held:
                row["held_s"].append(round((min(held) - entry) / 1000, 1))
    false_positives = []
    for s in sightings:
        if s.what == "HELD":
            continue
        explained = any(
            (s.warehouse == f.warehouse and s.what in (*f.rules, *f.explains)) if s.warehouse else
            (s.record.get("facility") == f.facility and s.what in (*f.rules, "WATCH", "MARGIN_CALL"))
            for f in plan_.faults if s.first_seen_ms >= entries[id(f)] - grace_ms)
        if not explained and s.what not in ("PERFORMING", "CURED", "CLOSED", ""):
            false_positives.append({"rule": s.what, "warehouse": s.warehouse or s.record.get("facility", ""),
                                    "record": s.record})
    alerts: dict[str, int] = {}
    for s in sightings:
        if s.warehouse and s.what != "HELD":
            alerts[s.what] = alerts.get(s.what, 0) + 1
    rejected: dict[str, int] = {}
    tally: dict[str, int] = {}
    for outcome in outcomes.values():
        tally[outcome.status] = tally.get(outcome.status, 0) + 1
        if outcome.status not in ("FINAL", "UNSUPPORTED"):
            code = f"{outcome.status}: {outcome.reason or '-'}"
            rejected[code] = rejected.get(code, 0) + 1
    unsupported = sorted({o.reason for o in outcomes.values() if o.status == "UNSUPPORTED"} - {"follows_unsupported"})
    return {
        "seed": plan_.seed, "plan": plan_.digest(), "warehouses": plan_.warehouses, "days": plan_.days,
        "day_seconds": plan_.day_ms / 1000, "steps": len(plan_.steps), "outcomes": dict(sorted(tally.items())),
        "monitoring": monitoring, "finance": finance, "max_lag_s": round(max_lag_ms / 1000, 1),
        "faults": list(rows.values()), "alerts": dict(sorted(alerts.items(), key=lambda kv: (len(kv[0]), kv[0]))),
        "false_positives": false_positives,
        "rejected": dict(sorted(rejected.items())), "unsupported_kinds": unsupported,
    }


def summary(plan_: Plan) -> dict[str, Any]:
    """What a plan holds, by kind, with its faults, and how its rehearsal (this build's state
    machine and rules, no network) scores it: for `--plan-only`."""
    kinds: dict[str, int] = {}
    for step in plan_.steps:
        kinds[step.kind] = kinds.get(step.kind, 0) + 1
    rehearsed = rehearse(plan_).score(plan_)
    return {
        "seed": plan_.seed, "digest": plan_.digest(), "warehouses": plan_.warehouses, "days": plan_.days,
        "day_seconds": plan_.day_ms / 1000, "steps": len(plan_.steps), "devices": len(plan_.devices),
        "parties": len(plan_.parties), "wall_seconds": round(plan_.steps[-1].at_ms / 1000, 1),
        "kinds": dict(sorted(kinds.items())),
        "faults": [{"kind": f.kind, "where": f.warehouse or f.facility, "day": f.day, "rules": list(f.rules),
                    "bin": f.bin, "note": f.note} for f in plan_.faults],
        "rehearsal": {"outcomes": rehearsed["outcomes"], "rejected": rehearsed["rejected"],
                      "detected": {row["fault"]: row["detected"] for row in rehearsed["faults"]},
                      "missed": {row["fault"]: row["missed"] for row in rehearsed["faults"] if row["missed"]},
                      "alerts": rehearsed["alerts"], "false_positives": len(rehearsed["false_positives"]),
                      "monitoring": rehearsed["monitoring"], "finance": rehearsed["finance"]},
    }


REHEARSAL_START_MS: Final = 1_796_000_000_000  # a fixed clock for rehearsals (late November 2026)


def rehearsal_key(name: str) -> bytes:
    return hashlib.sha256(b"bilayer.warehouse.simulate:" + name.encode()).digest()


@dataclass
class Rehearsal:
    outcomes: dict[int, str]  # step -> "FINAL", a refusal's code, "SKIPPED" or "UNSUPPORTED"
    keeper: Any  # the application's state at the end
    times: dict[int, int]  # checkpoint height -> its time
    decided_at: dict[int, int]  # step -> the time it was decided

    def sightings(self, plan_: Plan) -> list[Sighting]:
        """The alerts, holds and facility states the rehearsal raised, as a watcher would have
        seen them, each at the time of the checkpoint that raised it."""
        names = {rehearsal_key(name): name for name in plan_.parties}
        found: list[Sighting] = []
        for alert in getattr(self.keeper, "alerts", list)():
            wh = names.get(alert.warehouse, "")
            found.append(Sighting(alert.rule, wh, alert.time_ms, {"id": alert.id.hex()}))
            for held in (*alert.held_receipts, *alert.held_bins):
                found.append(Sighting("HELD", wh, alert.time_ms, {"alert": alert.id.hex(), "held": str(held)}))
        for facility in getattr(self.keeper, "facilities", list)():
            label = f"{names.get(facility.bank, '')}/{facility.name}"
            for event in facility.events:
                state = str(event.state).upper()
                found.append(Sighting(state, "", self.times.get(event.height, 0), {"facility": label, "state": state}))
        return found

    def score(self, plan_: Plan) -> dict[str, Any]:
        """The run's table, as the rehearsal's own state machine and rules would give it."""
        outcomes = {n: Outcome(code if code in ("FINAL", "SKIPPED", "UNSUPPORTED") else "REJECTED",
                               "" if code in ("FINAL", "SKIPPED", "UNSUPPORTED") else code,
                               self.decided_at.get(n, REHEARSAL_START_MS + plan_.steps[n].at_ms))
                    for n, code in self.outcomes.items()}
        keeper = self.keeper
        return score(plan_, outcomes, self.sightings(plan_), REHEARSAL_START_MS,
                     monitoring=hasattr(keeper, "alerts"), finance=hasattr(keeper, "facilities"))


def rehearse(plan_: Plan, on_applied: Callable[[Step, Any, Any], None] | None = None, *,
             latency_ms: tuple[int, int] = (0, 0), latency_seed: int = 0) -> Rehearsal:
    """The plan through this build's state machine alone, no network: each step sent at its
    time once the steps it follows are decided, and decided `latency_ms` (drawn from the
    range with `latency_seed`) later as its own checkpoint, with the application's
    end-of-checkpoint work. With latency, steps are decided in whatever order a network with
    that spread of finality times might decide them, within what the plan orders.
    `on_applied(step, op, keeper)` sees the state after each applied step."""
    import heapq

    from ...execution.executor import end_checkpoint
    from ...execution.governance.context import ExecContext
    from ...execution.state import State
    from ...genesis import GovernanceParams
    from .errors import WarehouseRejected
    from .keeper import Keeper
    from .transitions import APPLY, Context, apply

    state = State()
    keeper = Keeper(state)
    governance = GovernanceParams()
    names = {*plan_.parties, *(d.name for d in plan_.devices), "council"}
    resolver = Resolver({name: rehearsal_key(name) for name in names}, REHEARSAL_START_MS, "2026-12-01")
    operations = {op.KIND: op for op in OPERATIONS if op in APPLY}
    rng = random.Random(latency_seed)
    outcomes: dict[int, str] = {}
    times: dict[int, int] = {}  # checkpoint height -> its time
    decided_at: dict[int, int] = {}
    waiting_on = {step.n: len(set(step.after) | set(step.waits)) for step in plan_.steps}
    dependents: dict[int, list[int]] = {}
    for step in plan_.steps:
        for dep in set(step.after) | set(step.waits):
            dependents.setdefault(dep, []).append(step.n)
    queue: list[tuple[int, int]] = []

    def release(n: int) -> None:
        step = plan_.steps[n]
        sent = max([REHEARSAL_START_MS + step.at_ms, *(decided_at[d] for d in (*step.after, *step.waits))])
        low, high = latency_ms
        heapq.heappush(queue, (sent + (rng.randint(low, high) if high else 0), n))

    def decide(n: int, outcome: str, at: int) -> None:
        outcomes[n], decided_at[n] = outcome, at
        for later in dependents.get(n, ()):
            waiting_on[later] -= 1
            if waiting_on[later] == 0:
                release(later)

    for step in plan_.steps:
        if waiting_on[step.n] == 0:
            release(step.n)
    height = 0
    while queue:
        clock, n = heapq.heappop(queue)
        step = plan_.steps[n]
        if any(outcomes[dep] != "FINAL" for dep in step.after):
            unsupported = step.kind not in operations or any(outcomes[dep] == "UNSUPPORTED" for dep in step.after)
            decide(n, "UNSUPPORTED" if unsupported else "SKIPPED", clock)
            continue
        op = materialize(step, resolver, operations, clock)
        if op is None:
            decide(n, "UNSUPPORTED", clock)
            continue
        height += 1
        entry = hashlib.sha256(b"rehearsal entry" + n.to_bytes(8, "big")).digest()
        resolver.entries[n] = entry
        ctx = Context(entry, resolver.keys[step.signer], height, clock, council=step.signer == "council")
        try:
            apply(keeper, ctx, op)
            outcome = "FINAL"
        except WarehouseRejected as exc:
            outcome = exc.code
        end_checkpoint(ExecContext(height, clock, governance), state)
        times[height] = clock
        if outcome == "FINAL" and on_applied is not None:
            on_applied(step, op, keeper)
        decide(n, outcome, clock)
    for step in plan_.steps:
        outcomes.setdefault(step.n, "SKIPPED")
    return Rehearsal(outcomes, keeper, times, decided_at)

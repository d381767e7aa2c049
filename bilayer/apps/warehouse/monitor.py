"""Goods against receipts: reconciliation at each checkpoint, alerts, and the HELD overlay.

A receipt is only as good as the steel behind it. Devices keep reporting after intake
(`epcis.py`; the vocabulary is in the package docstring), a supervisor counts bins, and at
the end of every checkpoint `reconcile(keeper, ctx)` (called from `checkpoint.py`) compares
that evidence with the book, on every node alike:

1. the event rules, over the evidence queued (`q`) by this checkpoint's entries, in order
   (only the readings some rule reads are queued: `watched`);
2. the time rules, over the device deadlines (`D`) and ageing notices (`y`) now due;
3. R12 for every warehouse whose issued quantity or verified stock changed.

Each finding is an `Alert` record (`records.py`) with what was compared, the tolerance and
its inputs, the evidence, and the holds it set. The rules (WAREHOUSE.md §6.8):

    R1  lidar estimate of a bin vs its book (Σ net of in-stock lots)      HIGH; CRITICAL if short > 1% -> HELD bin
    R2  shipping/departing of a lot no live instruction covers            CRITICAL -> HELD receipt
    R3  shipping weighed net > the instruction's lots' nets + tol         CRITICAL -> HELD receipt
    R4  proposed quantity != Σ intake nets: impossible, INV-3 refuses the proposal (`quantity_mismatch`)
    R5  a GNSS-tagged lot leaves the geofence without an instruction      CRITICAL -> HELD receipt
    R6  camera count of a bin != its book pieces, twice in a row          HIGH -> HELD bin
    R7  heartbeat gap > factor x interval, tamper, calibration expired    MEDIUM; HIGH over pledged goods
    R8  a door opened outside business hours without a work order         MEDIUM
    R9  a supervisor's stocktake differs from the book                    as R1
    R10 a receiving at one warehouse of a lot in stock at another         CRITICAL -> HELD receipt
    R11 a coil past its shelf life, or a receipt's storage period ending  LOW
    R12 Σ live receipts > Σ verified stock + tol, all bins verified         CRITICAL -> HELD every bin
        (a bin's verified stock is its last count rolled forward by the weighed lots booked
        in or out since, so goods weighed in after a count do not look over-issued)

"No live instruction" means the lot's receipt is not surrendered for delivery
(`delivery_pending`): a surrender is the instruction. The tolerance is
`tol(q) = max(p x q / 1000, 2e)`, p = 3 per mille unless the council set another
(`warehouse.set_monitoring`), e the scale interval of the weighbridge that weighed (for a
lidar or a stocktake, the warehouse's largest e). A held receipt refuses transfers,
pledges, releases, split, merge and surrender (`warehouse.receipt_held`); a held bin refuses
new receipts over its goods (`warehouse.bin_held`) and holds every receipt with goods in it.
Valuation and alerts go on. `warehouse.resolve_alert` by the warehouse's supervisor lifts
the holds of that alert.

Every figure is an integer (kilograms, pieces, milliseconds); alert ids are
H(rule, height, warehouse, n), n counting the checkpoint's alerts in the order above.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol

import msgspec

from ... import codec
from .epcis import Reading
from .keeper import AGEING, DEADLINE, Keeper
from .records import (
    SEVERITIES,
    Alert,
    Device,
    Evidence,
    Lot,
    Pending,
    Policy,
    Receipt,
    Resolution,
    Severity,
    WarehouseStock,
    Watch,
    lot_key_of_urn,
)

RULE_VERSION: Final = 1
RULES: Final = tuple(f"R{n}" for n in range(1, 13))
DAY_MS: Final = 24 * 3600 * 1000
LOCAL_OFFSET_MS: Final = 8 * 3600 * 1000  # business hours are local time, UTC+8
PLEDGED_SILENCE_MS: Final = 15 * 60 * 1000  # R7 is HIGH when pledged goods go unwatched this long
DEFAULT_PERMILLE: Final = 3
AGEING_FORMS: Final = frozenset({"coil", "hrc", "hot-rolled coil", "rebar"})  # the HRC and rebar families
HEARTBEAT: Final = b"h"
CALIBRATION: Final = b"c"
LOT_AGEING: Final = b"l"
RECEIPT_EXPIRY: Final = b"r"
GATES: Final = frozenset({"weighbridge", "gate_reader", "rfid_gate"})
WATCHING: Final = frozenset({"door", "camera", "lidar"})
"""The kinds whose readings the event rules compare with the book on their own (R1, R6, R8)."""


class When(Protocol):
    """The checkpoint being closed (an `ExecContext`, or a `transitions.Context`)."""

    @property
    def height(self) -> int: ...

    @property
    def time_ms(self) -> int: ...


def tolerance(policy: Policy, quantity_kg: int, scale_interval_g: int) -> tuple[int, tuple[tuple[str, int], ...]]:
    """tol(q) = max(p x q / 1000, 2e) in kilograms, with its inputs."""
    permille = policy.tolerance_permille or DEFAULT_PERMILLE
    tol = max(quantity_kg * permille // 1000, 2 * scale_interval_g // 1000)
    return tol, (("quantity_kg", quantity_kg), ("permille", permille), ("scale_interval_g", scale_interval_g))


def _whole(value: str) -> int | None:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return int(number) if number == number.to_integral_value() else None


def report(reading: Reading, kind: str) -> int | None:
    """The first sensor report of this type as a whole number (a count, a flag), if any."""
    for item in reading.reports:
        if item.type == kind:
            return _whole(item.value)
    return None


def _report(evidence: Evidence, kind: str) -> int | None:
    return report(evidence.reading, kind)


def alert_id(rule: str, height: int, warehouse: bytes, n: int) -> bytes:
    """H(rule, height, warehouse, n): n counts the checkpoint's alerts in the order they are raised."""
    return hashlib.sha256(codec.encode(("bilayer.warehouse.alert", rule, height, warehouse, n))).digest()


def local_minute(event_time_ms: int) -> int:
    """The minute of the local (UTC+8) day an event happened in, as R8 compares it."""
    return (event_time_ms + LOCAL_OFFSET_MS) % DAY_MS // 60_000


def _day_ms(date: str) -> int | None:
    try:
        when = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(when.timestamp()) * 1000


# --- hooks: the transitions call these as evidence and records arrive ---------------------------


def device_active(k: Keeper, device: Device, time_ms: int) -> Device:
    """An approved device: its first heartbeat falls due, its calibration expiry is watched."""
    device = _watch(k, device, time_ms)
    k.set_deadline(DEADLINE, device.calibration.expires_ms, CALIBRATION, device.device_id.encode())
    _note_scale(k, device)
    return device


def calibration_renewed(k: Keeper, old: Device, new: Device) -> None:
    k.set_deadline(DEADLINE, old.calibration.expires_ms, CALIBRATION, old.device_id.encode(), on=False)
    if new.status == "active":
        k.set_deadline(DEADLINE, new.calibration.expires_ms, CALIBRATION, new.device_id.encode())
        _note_scale(k, new)


def watched(ev: Evidence) -> bool:
    """Whether an event rule reads this reading: a tamper flag, a watching device's report, an
    outbound event, a weighbridge's intake. The others are heartbeats and arrivals, which no
    rule compares with the book."""
    step = ev.reading.biz_step
    return (ev.device_kind in WATCHING or step in ("shipping", "departing")
            or (step == "receiving" and ev.device_kind == "weighbridge") or _report(ev, "Tamper") == 1)


def watch_of(device: Device, ev: Evidence) -> Watch | None:
    """The bin figure of a camera count or a lidar scan, which R6 or R1 compares with the book."""
    if ev.reading.biz_step != "cycle_counting":
        return None
    if device.kind == "camera":
        count = _report(ev, "Count")
        return None if count is None else Watch(device.device_id, "camera", ev.warehouse, device.bins[0], count)
    if device.kind == "lidar" and ev.net_kg >= 0:
        return Watch(device.device_id, "lidar", ev.warehouse, device.bins[0], ev.net_kg)
    return None


def reading_recorded(k: Keeper, device: Device, evidence: Evidence, height: int) -> Device:
    """Every reading is a heartbeat; a reading a rule reads waits for the checkpoint's
    reconciliation, a bin count or scan with its figure (`watch_of`)."""
    if watched(evidence):
        # with a tamper flag, R7 comes first: such a reading waits whole
        watch = None if _report(evidence, "Tamper") == 1 else watch_of(device, evidence)
        k.enqueue(Pending("reading", evidence.event_id, height, watch=watch))
    return _watch(k, device, evidence.reading.event_time_ms)


def _watch(k: Keeper, device: Device, seen_ms: int) -> Device:
    if device.heartbeat_due_ms:
        k.set_deadline(DEADLINE, device.heartbeat_due_ms, HEARTBEAT, device.device_id.encode(), on=False)
    due = 0
    if device.heartbeat_ms:
        due = seen_ms + k.policy().heartbeat_factor * device.heartbeat_ms
        k.set_deadline(DEADLINE, due, HEARTBEAT, device.device_id.encode())
    return msgspec.structs.replace(device, last_seen_ms=seen_ms, heartbeat_due_ms=due)


def _note_scale(k: Keeper, device: Device) -> None:
    totals = k.warehouse_stock(device.warehouse)
    if device.calibration.scale_interval_g > totals.max_scale_interval_g:
        k.put_warehouse_stock(device.warehouse, msgspec.structs.replace(
            totals, max_scale_interval_g=device.calibration.scale_interval_g))


def lot_booked(k: Keeper, lot: Lot) -> None:
    """R11: a coil of the HRC or rebar families ages from its production date."""
    produced = _day_ms(lot.production_date)
    if lot.form.lower() in AGEING_FORMS and produced is not None:
        k.set_deadline(AGEING, produced + k.policy().ageing_days * DAY_MS, LOT_AGEING, lot.key)


def receipt_issued(k: Keeper, receipt: Receipt) -> None:
    """R11: a notice falls due N days before the storage period ends (again on each extension)."""
    notice = receipt.terms.storage_until_ms - k.policy().expiry_notice_days * DAY_MS
    k.set_deadline(AGEING, notice, RECEIPT_EXPIRY, receipt.id)


def bin_held(k: Keeper, warehouse: bytes, bins: tuple[str, ...]) -> str | None:
    """The first of these bins an open alert holds."""
    return next((b for b in bins if k.bin_holds(warehouse, b)), None)


def resolve(k: Keeper, alert: Alert, resolution: Resolution) -> None:
    """Close the alert and lift the holds it set (other alerts' holds stay)."""
    for rid in alert.held_receipts:
        receipt = k.receipt(rid)
        if receipt is not None and alert.id in receipt.held:
            k.put_receipt(msgspec.structs.replace(receipt, held=tuple(a for a in receipt.held if a != alert.id)))
    for bin_name in alert.held_bins:
        k.put_bin_holds(alert.warehouse, bin_name, tuple(a for a in k.bin_holds(alert.warehouse, bin_name)
                                                         if a != alert.id))
    k.put_alert(msgspec.structs.replace(alert, status="resolved", resolution=resolution))


# --- the checkpoint's reconciliation ------------------------------------------------------------


def reconcile(k: Keeper, ctx: When) -> list[Alert]:
    """Run the event rules over the queued evidence, then the time rules now due, then R12."""
    run = _Run(k, ctx.height, ctx.time_ms, k.policy())
    for item in k.drain():
        if item.kind == "reading" and item.watch is not None:
            run.compare(item.ref, item.watch)
        elif item.kind == "reading":
            evidence = k.evidence(item.ref)
            if evidence is not None:
                run.reading(evidence)
        elif item.kind == "stocktake":
            run.stocktake(item)
        else:
            run.touched.add(item.ref)
    run.settle()
    for ms, kind, subject in k.due(DEADLINE, ctx.time_ms):
        run.device_due(ms, kind, subject.decode())
    for _, kind, subject in k.due(AGEING, ctx.time_ms):
        run.ageing(kind, subject)
    for warehouse in sorted(run.touched):
        run.over_issuance(warehouse)
    return run.raised


@dataclass
class _Run:
    k: Keeper
    height: int
    time_ms: int
    policy: Policy
    raised: list[Alert] = field(default_factory=list)
    touched: set[bytes] = field(default_factory=set)
    totals: dict[bytes, WarehouseStock] = field(default_factory=dict)
    """Each warehouse's totals as the event rules move them, written once by `settle`."""

    def settle(self) -> None:
        for warehouse in sorted(self.totals):
            self.k.put_warehouse_stock(warehouse, self.totals[warehouse])
        self.totals.clear()

    def alert(self, rule: str, severity: Severity, warehouse: bytes, summary: str, *, hold_receipts: bool = False,
              hold_bins: tuple[str, ...] = (), **fields: Any) -> Alert:
        """Record an alert, and hold what it names when its rule holds."""
        n = len(self.raised)
        aid = alert_id(rule, self.height, warehouse, n)
        held: list[bytes] = []
        if hold_receipts:
            for rid in fields.get("receipts", ()):
                receipt = self.k.receipt(rid)
                if receipt is not None and receipt.live and aid not in receipt.held:
                    self.k.put_receipt(msgspec.structs.replace(receipt, held=(*receipt.held, aid)))
                    held.append(rid)
        for bin_name in hold_bins:
            self.k.put_bin_holds(warehouse, bin_name, (*self.k.bin_holds(warehouse, bin_name), aid))
        alert = Alert(id=aid, rule=rule, rule_version=RULE_VERSION, severity=severity, warehouse=warehouse,
                      summary=summary, height=self.height, time_ms=self.time_ms, held_receipts=tuple(held),
                      held_bins=hold_bins, **fields)
        self.k.put_alert(alert)
        self.raised.append(alert)
        return alert

    def open(self, rule: str, warehouse: bytes, *, bin_name: str = "", severity: Severity = "LOW") -> bool:
        """An alert of this rule on this bin, at least this severe, is open already (no repeats while
        it is; a worse finding is raised)."""
        rank = SEVERITIES.index(severity)
        return any(a.rule == rule and (not bin_name or bin_name in a.bins) and SEVERITIES.index(a.severity) >= rank
                   for a in self.k.open_alerts(warehouse))

    # --- event rules ---

    def reading(self, ev: Evidence) -> None:
        """The event rules over one reading `watched` queued."""
        step = ev.reading.biz_step
        tamper = _report(ev, "Tamper") == 1
        device = self.k.device(ev.reading.device_id)
        if device is None:
            return
        if tamper:
            self.device_fault(device, "tamper flag raised", ev)
        if device.kind == "door" and step == "sensor_reporting" and _report(ev, "Contact") == 1:
            self.access(device, ev)
        watch = watch_of(device, ev)
        if watch is not None:
            self.compare(ev.event_id, watch)
        if step == "receiving" and device.kind == "weighbridge":
            self.duplicate_identity(ev)
        if step in ("shipping", "departing"):
            self.outbound(device, ev)

    def access(self, device: Device, ev: Evidence) -> None:
        """R8: a door opened outside business hours with no work order."""
        minute = local_minute(ev.reading.event_time_ms)
        inside = self.policy.business_hours_start_min <= minute < self.policy.business_hours_end_min
        if inside or any(t.type == "work_order" for t in ev.reading.transactions):
            return
        self.alert("R8", "MEDIUM", ev.warehouse, f"door opened at {minute // 60:02d}:{minute % 60:02d} local time "
                   "outside business hours without a work order", bins=device.bins, devices=(device.device_id,),
                   unit="min", expected=self.policy.business_hours_start_min, observed=minute,
                   delta=minute - self.policy.business_hours_start_min, evidence=(ev.event_id,))

    def compare(self, event_id: bytes, watch: Watch) -> None:
        """A bin's count (R6) or scan (R1) against its book."""
        if watch.kind == "camera":
            self.count(event_id, watch)
        else:
            self.verified(watch.warehouse, watch.bin, watch.figure, "lidar", "R1", (event_id,), -1,
                          devices=(watch.device_id,))

    def count(self, event_id: bytes, watch: Watch) -> None:
        """R6: the camera's count of its bin against the book, confirmed by a second mismatch."""
        warehouse, bin_name, count = watch.warehouse, watch.bin, watch.figure
        book = self.k.bin_stock(warehouse, bin_name).book_pieces
        if count == book:
            if self.k.mismatches(warehouse, bin_name):
                self.k.put_mismatches(warehouse, bin_name, 0)
            return
        seen = self.k.mismatches(warehouse, bin_name) + 1
        self.k.put_mismatches(warehouse, bin_name, seen)
        if seen >= 2 and not self.open("R6", warehouse, bin_name=bin_name):
            self.alert("R6", "HIGH", warehouse, f"bin {bin_name}: counted {count} coils, the book has {book}, "
                       f"{seen} counts in a row", hold_bins=(bin_name,), bins=(bin_name,),
                       devices=(watch.device_id,), unit="pieces", expected=book, observed=count, delta=count - book,
                       evidence=(event_id,))

    def verified(self, warehouse: bytes, bin_name: str, observed_kg: int, source: str, rule: str,
                 evidence: tuple[bytes, ...], pieces: int, devices: tuple[str, ...] = ()) -> None:
        """R1 and R9: a verified figure for a bin replaces the last one and is compared with the book."""
        stock = self.k.bin_stock(warehouse, bin_name)
        totals = self.totals.get(warehouse) or self.k.warehouse_stock(warehouse)
        first = stock.verified_kg < 0
        self.totals[warehouse] = msgspec.structs.replace(
            totals, verified_kg=totals.verified_kg + observed_kg - (0 if first else stock.verified_kg),
            verified_bins=totals.verified_bins + (1 if first else 0))
        self.k.put_bin_stock(warehouse, bin_name, msgspec.structs.replace(
            stock, verified_kg=observed_kg, verified_height=self.height, verified_source=source))
        self.touched.add(warehouse)
        tol, inputs = tolerance(self.policy, stock.book_kg, totals.max_scale_interval_g)
        short = stock.book_kg - observed_kg
        pieces_differ = pieces >= 0 and pieces != stock.book_pieces
        if abs(short) <= tol and not pieces_differ:
            return
        critical = short * 100 > stock.book_kg
        if self.open(rule, warehouse, bin_name=bin_name, severity="CRITICAL" if critical else "HIGH"):
            return
        counted = f", {pieces} pieces against {stock.book_pieces}" if pieces >= 0 else ""
        self.alert(rule, "CRITICAL" if critical else "HIGH", warehouse,
                   f"bin {bin_name}: {source} {observed_kg} kg against a book of {stock.book_kg} kg{counted}",
                   hold_bins=(bin_name,) if critical else (), bins=(bin_name,), devices=devices, unit="kg",
                   expected=stock.book_kg, observed=observed_kg, delta=observed_kg - stock.book_kg, tolerance=tol,
                   tolerance_inputs=inputs, evidence=evidence)

    def stocktake(self, item: Pending) -> None:
        count = item.stocktake
        assert count is not None
        self.verified(count.warehouse, count.bin, count.counted_kg, "stocktake", "R9", (item.ref,),
                      count.counted_pieces)

    def duplicate_identity(self, ev: Evidence) -> None:
        """R10: a lot weighed in here while the book has it in stock at another warehouse."""
        for lot in self.lots(ev):
            if lot.status == "in_stock" and lot.warehouse != ev.warehouse:
                receipts = (lot.receipt,) if lot.receipt else ()
                self.alert("R10", "CRITICAL", lot.warehouse, f"coil {lot.mill}:{lot.heat}:{lot.coil}, in stock "
                           "here, was weighed in at another warehouse", hold_receipts=True, bins=(lot.bin,),
                           receipts=receipts, lots=(lot.key,), devices=(ev.reading.device_id,), unit="kg",
                           expected=lot.net_kg, observed=ev.net_kg, delta=ev.net_kg - lot.net_kg,
                           evidence=(ev.event_id, lot.intake_event))

    def lots(self, ev: Evidence) -> list[Lot]:
        keys = (lot_key_of_urn(epc) for epc in ev.reading.epcs)
        found = (self.k.lot(key) for key in keys if key is not None)
        return [lot for lot in found if lot is not None]

    def outbound(self, device: Device, ev: Evidence) -> None:
        """R2 and R5: goods leaving with no instruction; R3: more weighed out than instructed."""
        leaving = [lot for lot in self.lots(ev) if lot.warehouse == ev.warehouse and lot.status == "in_stock"
                   and lot.outbound_event == ev.event_id]
        if not leaving:
            return
        uncovered = [lot for lot in leaving if not self.instructed(lot)]
        if uncovered and (device.kind in GATES or device.kind == "gnss_tag"):
            rule = "R5" if device.kind == "gnss_tag" else "R2"
            what = "left the geofence" if rule == "R5" else f"passed {device.kind} outward"
            names = ", ".join(f"{lot.mill}:{lot.heat}:{lot.coil}" for lot in uncovered)
            self.alert(rule, "CRITICAL", ev.warehouse, f"{names} {what} with no delivery instruction",
                       hold_receipts=True, bins=tuple(sorted({lot.bin for lot in uncovered})),
                       receipts=tuple(sorted({lot.receipt for lot in uncovered if lot.receipt})),
                       lots=tuple(lot.key for lot in uncovered), devices=(device.device_id,), unit="kg",
                       expected=0, observed=sum(lot.net_kg for lot in uncovered),
                       delta=sum(lot.net_kg for lot in uncovered), evidence=(ev.event_id,))
            return
        if device.kind == "weighbridge" and ev.reading.biz_step == "shipping" and ev.net_kg > 0:
            booked = sum(lot.net_kg for lot in leaving)
            tol, inputs = tolerance(self.policy, booked, device.calibration.scale_interval_g)
            if ev.net_kg > booked + tol:
                self.alert("R3", "CRITICAL", ev.warehouse, f"weighed out {ev.net_kg} kg against {booked} kg "
                           "instructed", hold_receipts=True, bins=tuple(sorted({lot.bin for lot in leaving})),
                           receipts=tuple(sorted({lot.receipt for lot in leaving if lot.receipt})),
                           lots=tuple(lot.key for lot in leaving), devices=(device.device_id,), unit="kg",
                           expected=booked, observed=ev.net_kg, delta=ev.net_kg - booked, tolerance=tol,
                           tolerance_inputs=inputs, evidence=(ev.event_id,))

    def instructed(self, lot: Lot) -> bool:
        """A surrender for delivery is the instruction that lets a lot out."""
        receipt = self.k.receipt(lot.receipt) if lot.receipt else None
        return receipt is not None and receipt.status == "delivery_pending"

    def pledged(self, device: Device) -> bool:
        return any(self.k.bin_stock(device.warehouse, b).pledged_kg > 0 for b in device.bins)

    def device_fault(self, device: Device, what: str, ev: Evidence | None = None, *, silent_ms: int = -1) -> None:
        """R7: MEDIUM; HIGH when the device watches pledged goods (and, for silence, 15 minutes or more)."""
        high = self.pledged(device) and (silent_ms < 0 or silent_ms >= PLEDGED_SILENCE_MS)
        expected = self.policy.heartbeat_factor * device.heartbeat_ms if silent_ms >= 0 else 0
        self.alert("R7", "HIGH" if high else "MEDIUM", device.warehouse, f"device {device.device_id}: {what}",
                   bins=device.bins, devices=(device.device_id,), unit="ms" if silent_ms >= 0 else "",
                   expected=expected, observed=max(silent_ms, 0), delta=max(silent_ms, 0) - expected,
                   evidence=(ev.event_id,) if ev is not None else ())

    # --- time rules ---

    def device_due(self, ms: int, kind: bytes, device_id: str) -> None:
        device = self.k.device(device_id)
        if device is None or device.status != "active":
            return
        if kind == HEARTBEAT and device.heartbeat_due_ms == ms:
            silent = self.time_ms - device.last_seen_ms
            self.k.put_device(msgspec.structs.replace(device, heartbeat_due_ms=0))  # once, until it reports again
            self.device_fault(device, f"no reading for {silent} ms (heartbeat every {device.heartbeat_ms} ms)",
                              silent_ms=silent)
        elif kind == CALIBRATION and device.calibration.expires_ms == ms:
            self.device_fault(device, "its calibration has expired; its readings are refused until it is renewed")

    def ageing(self, kind: bytes, subject: bytes) -> None:
        if kind == LOT_AGEING:
            lot = self.k.lot(subject)
            produced = None if lot is None else _day_ms(lot.production_date)
            if lot is None or produced is None or lot.status != "in_stock":
                return
            age_days = (self.time_ms - produced) // DAY_MS
            if age_days >= self.policy.ageing_days:
                self.alert("R11", "LOW", lot.warehouse, f"coil {lot.mill}:{lot.heat}:{lot.coil} is {age_days} days "
                           "from production", bins=(lot.bin,), receipts=(lot.receipt,) if lot.receipt else (),
                           lots=(lot.key,), unit="days", expected=self.policy.ageing_days, observed=age_days,
                           delta=age_days - self.policy.ageing_days)
            return
        receipt = self.k.receipt(subject)
        if receipt is None or not receipt.live:
            return
        left = receipt.terms.storage_until_ms - self.time_ms
        if left <= self.policy.expiry_notice_days * DAY_MS:
            self.alert("R11", "LOW", receipt.warehouse, f"receipt {receipt.number}'s storage period ends in "
                       f"{max(left, 0) // DAY_MS} days", bins=receipt.bins, receipts=(receipt.id,), unit="ms",
                       expected=self.policy.expiry_notice_days * DAY_MS, observed=left)

    def over_issuance(self, warehouse: bytes) -> None:
        """R12: live receipts beyond what every bin's last verified figure holds."""
        info = self.k.warehouse(warehouse)
        totals = self.k.warehouse_stock(warehouse)
        if info is None or totals.verified_bins < len(info.bins) or self.open("R12", warehouse):
            return
        tol, inputs = tolerance(self.policy, totals.verified_kg, totals.max_scale_interval_g)
        if totals.live_kg > totals.verified_kg + tol:
            self.alert("R12", "CRITICAL", warehouse, f"live receipts state {totals.live_kg} kg; verified stock is "
                       f"{totals.verified_kg} kg", hold_bins=info.bins, bins=info.bins, unit="kg",
                       expected=totals.verified_kg, observed=totals.live_kg, delta=totals.live_kg - totals.verified_kg,
                       tolerance=tol, tolerance_inputs=inputs)

"""The keeper: the one owner of every warehouse key in the state, all under the
application's prefix (`b"Zwarehouse\\x00"`, `execution/application.py`); keys below are
relative to it.

    b"p" + key                  -> Party
    b"w" + key                  -> WarehouseInfo (the bailee's place, bins, supervisor, series)
    b"d" + device id            -> Device
    b"k" + public key           -> the device id that key reports for (one device per key)
    b"e" + event id             -> Evidence (a finalized EPCIS reading)
    b"l" + lot key              -> Lot
    b"r" + receipt id           -> Receipt
    b"g" + pledge id            -> Pledge
    b"c" + number (8 bytes)     -> Case
    b"n"                        -> the last case number
    b"h" + holder + receipt id  -> b"" (index: live receipts by holder)
    b"i" + warehouse + receipt id -> b"" (index: every receipt of a warehouse)
    b"t" + status byte + receipt id -> b"" (index: receipts by lifecycle state)
    b"x" + receipt id + version (4 bytes) -> the entry that wrote that version (its history)

Monitoring (`monitor.py`):

    b"a" + alert id             -> Alert
    b"o" + warehouse + alert id -> b"" (index: open alerts by warehouse)
    b"H" + warehouse + bin      -> the open alerts holding the bin (a tuple of ids)
    b"q\x00"                   -> the next queue number (absent: 0; the queue numbers from 0 again
                                   once drained, at every checkpoint's end)
    b"q\x01" + number (8 bytes) -> Pending (evidence waiting for the checkpoint's reconciliation)
    b"D" + ms (8 bytes) + b"h"|b"c" + device id -> b"" (heartbeat due, calibration expiry)
    b"s" + warehouse + b"\x00"  -> WarehouseStock (live receipts' kg, verified kg, largest e)
    b"s" + warehouse + b"\x01" + bin -> BinStock (book and last verified figure)
    b"j" + warehouse + bin      -> consecutive camera count mismatches
    b"y" + ms (8 bytes) + b"l"|b"r" + lot key or receipt id -> b"" (ageing and expiry notices)
    b"L" + b"D"|b"y"            -> no entry of that time index falls due before this ms (so a
                                   checkpoint with nothing due does not walk the index); absent
                                   while the index is empty or not yet walked
    b"A"                        -> Policy (the council's monitoring policy)


Finance (`finance.py`); F = bank + facility name + b"\\0" names a facility:

    b"b" + key                  -> Publisher (a price publisher and its appointment)
    b"m" + spec + 0 + day + source -> Mark (one per spec, source and day)
    b"M" + b"h" + spec          -> SpecHead (the spec's latest good price and limit references)
    b"M" + b"d" + spec + 0 + day -> DayPrice (the spec's price of that day)
    b"T" + b"a"                 -> Calendar (the as-of day and its trading-day number)
    b"T" + b"d" + day           -> its trading-day number (days usable marks name)
    b"T" + b"n"                 -> b"" while a new as-of day waits for every facility's revaluation
    b"B"                        -> FinanceBounds (the council's)
    b"f" + F                    -> Facility
    b"F" + b"p" + F + pledge id -> b"" (index: the facility's live pledges)
    b"F" + b"s" + spec + 0 + F + pledge id -> b"" (index: facilities holding a spec)
    b"Q" + F                    -> flags (work queue: facilities to revalue; b"c" its collateral
                                   changed, b"e" enforcement seen; emptied at every checkpoint's end)
    b"V" + F + day              -> Valuation (one per facility and day)

`put_pledge` keeps the facility indexes and the work queue in step with the pledge
records, as `put_receipt` does the receipt indexes; both flag a change of what a facility's
collateral is made of (which receipts, their goods), so that a valuation without that flag
may reprice the lines of the facility's last valuation instead of reading every pledge.

Writes go straight to the state: an operation runs inside a state transaction (the entry's,
on the chain; `transitions.apply` opens a nested one), so a refusal after a write leaves
nothing behind. The indexes are maintained by `put_receipt` alone, so they cannot drift from
the records. Listings are ordered prefix scans of the keeper's own keys, never of the state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Final, NamedTuple, Protocol, TypeVar

import msgspec

from ... import codec
from ...execution.application import AppKeeper, app_prefix
from .records import (
    STATUSES,
    Alert,
    BinStock,
    Calendar,
    Case,
    DayPrice,
    Device,
    Evidence,
    Facility,
    FinanceBounds,
    HeldLines,
    Lot,
    Mark,
    Party,
    Pending,
    Pledge,
    Policy,
    Publisher,
    Receipt,
    SpecHead,
    Status,
    Valuation,
    WarehouseInfo,
    WarehouseStock,
    under_pledge,
)

APP = "warehouse"
PARTY = b"p"
WAREHOUSE = b"w"
DEVICE = b"d"
DEVICE_KEY = b"k"
EVIDENCE = b"e"
LOT = b"l"
RECEIPT = b"r"
PLEDGE = b"g"
CASE = b"c"
LAST_CASE = b"n"
BY_HOLDER = b"h"
BY_WAREHOUSE = b"i"
BY_STATUS = b"t"
HISTORY = b"x"
ALERT = b"a"
OPEN_ALERT = b"o"
HOLD = b"H"
QUEUE = b"q"
DEADLINE = b"D"
STOCK = b"s"
MISMATCHES = b"j"
AGEING = b"y"
DUE_FLOOR = b"L"
NEVER = 2**63 - 1
POLICY = b"A"
_QUEUE_NEXT = QUEUE + b"\x00"
_QUEUE_ITEM = QUEUE + b"\x01"
PUBLISHER = b"b"
MARK = b"m"
PRICES = b"M"
CALENDAR = b"T"
BOUNDS = b"B"
FACILITY = b"f"
FACILITY_INDEX = b"F"
FACILITY_QUEUE = b"Q"
VALUATION = b"V"

T = TypeVar("T")

QUEUED_COLLATERAL: Final = b"c"
QUEUED_ENFORCED: Final = b"e"


class Queued(NamedTuple):
    """A facility in the revaluation queue, and what queued it."""

    facility: bytes  # F
    enforced: bool  # the bank declared default on, or invoked, a pledge of it
    collateral: bool  # which receipts its live pledges hold, or their goods, changed


OWN: Final = app_prefix(APP)
VALUED: Final = "warehouse.valued"
VALUED_LINES: Final = 50_000


class Holding(Protocol):
    """A valuation line's receipt, spec, warehouse and quantity: a `Held`, or a whole line."""

    @property
    def receipt(self) -> bytes: ...

    @property
    def spec(self) -> str: ...

    @property
    def warehouse(self) -> bytes: ...

    @property
    def quantity_kg(self) -> int: ...


class ValuedMemory:
    """Stored valuations' lines, decoded, by the very bytes object stored (`State.derived`,
    outside the state): the next trading day reprices what the last valuation valued without
    decoding it again. An entry holds its bytes, so their identity cannot be reused while it
    lives, and it is used only for those bytes, whatever was rolled back since (a state that
    hands back copies only misses). At most `VALUED_LINES` lines; past it the memory starts again."""

    def __init__(self) -> None:
        self.by_identity: dict[int, tuple[bytes, Sequence[Holding]]] = {}
        self.count = 0

    def recall(self, raw: bytes) -> Sequence[Holding] | None:
        known = self.by_identity.get(id(raw))
        return known[1] if known is not None and known[0] is raw else None

    def remember(self, raw: bytes, lines: Sequence[Holding]) -> None:
        if self.count + len(lines) > VALUED_LINES:
            self.by_identity.clear()
            self.count = 0
        self.by_identity[id(raw)] = (raw, lines)
        self.count += len(lines)


def status_byte(status: Status) -> bytes:
    return bytes([STATUSES.index(status)])


class Keeper(AppKeeper):
    __slots__ = ()
    APP: ClassVar[str] = APP

    # the application's prefix, joined once rather than on every access
    def _get(self, key: bytes) -> bytes | None:
        return self.state.get(OWN + key)

    def _put(self, key: bytes, value: bytes) -> None:
        self.state.set(OWN + key, value)

    def _delete(self, key: bytes) -> None:
        self.state.delete(OWN + key)

    def _scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        size = len(OWN)
        for key, value in self.state.scan(OWN + prefix):
            yield key[size:], value

    def _keys(self, prefix: bytes) -> list[bytes]:
        return [key for key, _ in self._scan(prefix)]

    def _read(self, key: bytes, kind: type[T]) -> T | None:
        raw = self.state.get(OWN + key)
        return None if raw is None else codec.decode(raw, kind)

    def _write(self, key: bytes, value: Any) -> None:
        self.state.set(OWN + key, codec.encode(value))

    # --- typed reads ---------------------------------------------------------------------------

    def party(self, key: bytes) -> Party | None:
        return self._read(PARTY + key, Party)

    def warehouse(self, key: bytes) -> WarehouseInfo | None:
        return self._read(WAREHOUSE + key, WarehouseInfo)

    def device(self, device_id: str) -> Device | None:
        return self._read(DEVICE + device_id.encode(), Device)

    def device_for_key(self, public_key: bytes) -> str | None:
        raw = self._get(DEVICE_KEY + public_key)
        return None if raw is None else raw.decode()

    def evidence(self, event_id: bytes) -> Evidence | None:
        return self._read(EVIDENCE + event_id, Evidence)

    def lot(self, key: bytes) -> Lot | None:
        return self._read(LOT + key, Lot)

    def receipt(self, receipt_id: bytes) -> Receipt | None:
        return self._read(RECEIPT + receipt_id, Receipt)

    def pledge(self, pledge_id: bytes) -> Pledge | None:
        return self._read(PLEDGE + pledge_id, Pledge)

    def case(self, number: int) -> Case | None:
        return self._read(CASE + number.to_bytes(8, "big"), Case)

    def last_case(self) -> int:
        raw = self._get(LAST_CASE)
        return 0 if raw is None else codec.decode(raw, int)

    # --- listings (the register) -----------------------------------------------------------------

    def _receipts_under(self, prefix: bytes) -> list[Receipt]:
        found = (self.receipt(key[-32:]) for key in self._keys(prefix))
        return [r for r in found if r is not None]

    def receipts_of_warehouse(self, warehouse: bytes) -> list[Receipt]:
        """Every receipt the warehouse issued, in id order (history included)."""
        return self._receipts_under(BY_WAREHOUSE + warehouse)

    def receipts_of_holder(self, holder: bytes) -> list[Receipt]:
        """The live receipts a key holds."""
        return self._receipts_under(BY_HOLDER + holder)

    def receipts_in(self, status: Status) -> list[Receipt]:
        return self._receipts_under(BY_STATUS + status_byte(status))

    def register(self, *, warehouse: bytes | None = None, holder: bytes | None = None,
                 status: Status | None = None, frozen: bool | None = None) -> list[Receipt]:
        """The receipt register, filtered by any of warehouse, holder, state and freeze."""
        if holder is not None:
            receipts = self.receipts_of_holder(holder)
        elif warehouse is not None:
            receipts = self.receipts_of_warehouse(warehouse)
        elif status is not None:
            receipts = self.receipts_in(status)
        else:
            receipts = self._receipts_under(RECEIPT)
        return [r for r in receipts
                if (warehouse is None or r.warehouse == warehouse) and (holder is None or r.holder == holder)
                and (status is None or r.status == status) and (frozen is None or (r.frozen_case > 0) == frozen)]

    def history(self, receipt_id: bytes) -> list[bytes]:
        """The entries that wrote the receipt, oldest first (issue, every move, its supersession)."""
        entries: list[bytes] = []
        for _, entry in self._scan(HISTORY + receipt_id):
            if not entries or entries[-1] != entry:
                entries.append(entry)
        return entries

    def holdings(self) -> list[tuple[bytes, bytes]]:
        """The holder index as (holder, receipt id) pairs, for checking it against the records."""
        return [(key[len(BY_HOLDER):-32], key[-32:]) for key in self._keys(BY_HOLDER)]

    def parties(self) -> list[Party]:
        found = (self._read(key, Party) for key in self._keys(PARTY))
        return [p for p in found if p is not None]

    def devices(self, warehouse: bytes | None = None) -> list[Device]:
        found = (self._read(key, Device) for key in self._keys(DEVICE))
        return [d for d in found if d is not None and (warehouse is None or d.warehouse == warehouse)]

    def lots(self, warehouse: bytes | None = None) -> list[Lot]:
        found = (self._read(key, Lot) for key in self._keys(LOT))
        return [lot for lot in found if lot is not None and (warehouse is None or lot.warehouse == warehouse)]

    def pledges(self) -> list[Pledge]:
        found = (self._read(key, Pledge) for key in self._keys(PLEDGE))
        return [p for p in found if p is not None]

    def warehouses(self) -> list[WarehouseInfo]:
        found = (self._read(key, WarehouseInfo) for key in self._keys(WAREHOUSE))
        return [w for w in found if w is not None]

    # --- writes ---------------------------------------------------------------------------------

    def put_party(self, party: Party) -> None:
        self._write(PARTY + party.key, party)

    def put_warehouse(self, info: WarehouseInfo) -> None:
        self._write(WAREHOUSE + info.key, info)

    def put_device(self, device: Device) -> None:
        self._write(DEVICE + device.device_id.encode(), device)
        self._put(DEVICE_KEY + device.public_key, device.device_id.encode())

    def put_evidence(self, evidence: Evidence) -> None:
        self._write(EVIDENCE + evidence.event_id, evidence)

    def put_lot(self, lot: Lot) -> None:
        """Write a lot and move its bin's book to match it."""
        old = self.lot(lot.key)
        if old is not None and old.status == "in_stock":
            self._book(old, -1)
        self._write(LOT + lot.key, lot)
        if lot.status == "in_stock":
            self._book(lot, 1)

    def _book(self, lot: Lot, sign: int) -> None:
        """Move the bin's book by a weighed lot; a verified figure moves with it, since a lot
        is booked in or out only on a weighbridge reading: the verified stock is the last count
        rolled forward by weighed movements (so R12 compares receipts with that, not with a
        count taken before the goods came in)."""
        stock = self.bin_stock(lot.warehouse, lot.bin)
        verified = stock.verified_kg
        if verified >= 0:
            verified = max(0, verified + sign * lot.net_kg)
            totals = self.warehouse_stock(lot.warehouse)
            self.put_warehouse_stock(lot.warehouse, msgspec.structs.replace(
                totals, verified_kg=totals.verified_kg + verified - stock.verified_kg))
        self.put_bin_stock(lot.warehouse, lot.bin, msgspec.structs.replace(
            stock, book_kg=stock.book_kg + sign * lot.net_kg, book_pieces=stock.book_pieces + sign * lot.pieces,
            lots=stock.lots + sign, verified_kg=verified))

    def put_pledge(self, pledge: Pledge) -> None:
        """Write a pledge; when it secures a facility, move the facility's indexes to match
        and queue the facility for revaluation."""
        old = self.pledge(pledge.id)
        self._write(PLEDGE + pledge.id, pledge)
        fkey = facility_key(pledge.pledgee, pledge.facility)
        if self._get(FACILITY + fkey) is None:
            return
        first = self.receipt(pledge.receipts[0]) if pledge.receipts else None
        spec = first.goods.spec.encode() if first is not None else b""
        live = (FACILITY_INDEX + b"p" + fkey + pledge.id, FACILITY_INDEX + b"s" + spec + b"\0" + fkey + pledge.id)
        for key in live:
            if pledge.status == "live":
                self._put(key, b"")
            else:
                self._delete(key)
        enforced = old is not None and ((pledge.cure_deadline_ms > 0 and old.cure_deadline_ms == 0)
                                        or (pledge.status == "invoked" and old.status != "invoked"))
        collateral = old is None or old.status != pledge.status or old.receipts != pledge.receipts
        self.queue_facility(fkey, enforced=enforced, collateral=collateral)

    # --- finance ------------------------------------------------------------------------------------

    def publisher(self, key: bytes) -> Publisher | None:
        return self._read(PUBLISHER + key, Publisher)

    def put_publisher(self, publisher: Publisher) -> None:
        self._write(PUBLISHER + publisher.key, publisher)

    def mark(self, spec: str, day: str, source: str) -> Mark | None:
        return self._read(_mark_key(spec, day, source), Mark)

    def marks_of_day(self, spec: str, day: str) -> list[Mark]:
        """Every mark of a spec on a day, in source order."""
        found = (codec.decode(raw, Mark) for _, raw in self._scan(MARK + spec.encode() + b"\0" + day.encode()))
        return list(found)

    def marks_of_spec(self, spec: str) -> list[Mark]:
        return [codec.decode(raw, Mark) for _, raw in self._scan(MARK + spec.encode() + b"\0")]

    def put_mark(self, mark: Mark) -> None:
        self._write(_mark_key(mark.spec, mark.day, mark.source), mark)

    def spec_head(self, spec: str) -> SpecHead | None:
        return self._read(PRICES + b"h" + spec.encode(), SpecHead)

    def spec_heads(self) -> list[SpecHead]:
        return [codec.decode(raw, SpecHead) for _, raw in self._scan(PRICES + b"h")]

    def put_spec_head(self, head: SpecHead) -> None:
        self._write(PRICES + b"h" + head.spec.encode(), head)

    def day_price(self, spec: str, day: str) -> DayPrice | None:
        return self._read(PRICES + b"d" + spec.encode() + b"\0" + day.encode(), DayPrice)

    def put_day_price(self, price: DayPrice) -> None:
        self._write(PRICES + b"d" + price.spec.encode() + b"\0" + price.day.encode(), price)

    def calendar(self) -> Calendar:
        return self._read(CALENDAR + b"a", Calendar) or Calendar()

    def trading_day(self, day: str) -> int:
        """The day's trading-day number, 0 when no usable mark names it."""
        raw = self._get(CALENDAR + b"d" + day.encode())
        return 0 if raw is None else codec.decode(raw, int)

    def add_trading_day(self, day: str) -> None:
        """A usable mark names `day`: a day later than the as-of day becomes the as-of day,
        and every open facility is due for revaluation."""
        if self.trading_day(day):
            return
        calendar = self.calendar()
        assert day > calendar.day, "the calendar only grows forward"
        ordinal = calendar.ordinal + 1
        self._write(CALENDAR + b"d" + day.encode(), ordinal)
        self._write(CALENDAR + b"a", Calendar(day, ordinal))
        self._put(CALENDAR + b"n", b"")

    def take_new_day(self) -> bool:
        """Whether a new as-of day arrived since the last revaluation; clears the flag."""
        if self._get(CALENDAR + b"n") is None:
            return False
        self._delete(CALENDAR + b"n")
        return True

    def bounds(self) -> FinanceBounds:
        return self._read(BOUNDS, FinanceBounds) or FinanceBounds()

    def put_bounds(self, bounds: FinanceBounds) -> None:
        self._write(BOUNDS, bounds)

    def facility(self, bank: bytes, name: str) -> Facility | None:
        return self._read(FACILITY + facility_key(bank, name), Facility)

    def facilities(self, bank: bytes | None = None) -> list[Facility]:
        return [codec.decode(raw, Facility) for _, raw in self._scan(FACILITY + (bank or b""))]

    def has_facilities(self, bank: bytes) -> bool:
        return next(self._scan(FACILITY + bank), None) is not None

    def put_facility(self, facility: Facility) -> None:
        self._write(FACILITY + facility_key(facility.bank, facility.name), facility)

    def facility_pledges(self, bank: bytes, name: str) -> list[Pledge]:
        """The facility's live pledges, in id order."""
        prefix = FACILITY_INDEX + b"p" + facility_key(bank, name)
        found = (self.pledge(key[len(prefix):]) for key in self._keys(prefix))
        return [p for p in found if p is not None]

    def pledge_ids_by_facility(self) -> dict[bytes, list[bytes]]:
        """Every facility's live pledge ids, in id order, from one walk of the index (for
        revaluing many facilities at once)."""
        prefix = FACILITY_INDEX + b"p"
        found: dict[bytes, list[bytes]] = {}
        for key in self._keys(prefix):
            found.setdefault(key[len(prefix):-32], []).append(key[-32:])
        return found

    def facilities_holding(self, spec: str) -> list[bytes]:
        """The facility keys with a live pledge of this spec (distinct, in order)."""
        prefix = FACILITY_INDEX + b"s" + spec.encode() + b"\0"
        keys: list[bytes] = []
        for key in self._keys(prefix):
            fkey = key[len(prefix):-32]
            if not keys or keys[-1] != fkey:
                keys.append(fkey)
        return keys

    def queue_facility(self, fkey: bytes, *, enforced: bool = False, collateral: bool = False) -> None:
        """Queue a facility for revaluation at the end of the checkpoint, with what was seen."""
        key = FACILITY_QUEUE + fkey
        had = self._get(key)
        flags = bytes(sorted({*(had or b""), *(QUEUED_COLLATERAL if collateral else b""),
                              *(QUEUED_ENFORCED if enforced else b"")}))
        if flags != had:
            self._put(key, flags)

    def take_queue(self) -> list[Queued]:
        """The queued facilities, in key order, emptying the queue."""
        prefix = FACILITY_QUEUE
        queued = [Queued(key[len(prefix):], QUEUED_ENFORCED in flags, QUEUED_COLLATERAL in flags)
                  for key, flags in self._scan(prefix)]
        for item in queued:
            self._delete(prefix + item.facility)
        return queued

    def facility_by_key(self, fkey: bytes) -> Facility | None:
        return self._read(FACILITY + fkey, Facility)

    def valuation(self, bank: bytes, name: str, day: str) -> Valuation | None:
        return self._read(VALUATION + facility_key(bank, name) + day.encode(), Valuation)

    def valued(self, bank: bytes, name: str, day: str) -> Sequence[Holding] | None:
        """What the facility's valuation of that day valued, line by line (its prices aside)."""
        raw = self._get(VALUATION + facility_key(bank, name) + day.encode())
        if raw is None:
            return None
        memory = self._valued_memory()
        lines = memory.recall(raw)
        if lines is None:
            lines = codec.decode(raw, HeldLines).lines
            memory.remember(raw, lines)
        return lines

    def _valued_memory(self) -> ValuedMemory:
        memory = self.state.derived.get(VALUED)
        if not isinstance(memory, ValuedMemory):
            memory = self.state.derived[VALUED] = ValuedMemory()
        return memory

    def valuations(self, bank: bytes, name: str) -> list[Valuation]:
        """The facility's daily valuations, oldest first."""
        return [codec.decode(raw, Valuation) for _, raw in self._scan(VALUATION + facility_key(bank, name))]

    def put_valuation(self, valuation: Valuation) -> None:
        raw = codec.encode(valuation)
        self._put(VALUATION + facility_key(valuation.bank, valuation.facility) + valuation.day.encode(), raw)
        self._valued_memory().remember(raw, valuation.lines)

    def put_case(self, case: Case) -> None:
        self._write(CASE + case.number.to_bytes(8, "big"), case)
        self._write(LAST_CASE, case.number)

    def put_receipt(self, receipt: Receipt) -> None:
        """Write a receipt and move its index entries to match it."""
        old = self.receipt(receipt.id)
        if old is not None:
            self._delete(BY_HOLDER + old.holder + old.id)
            self._delete(BY_STATUS + status_byte(old.status) + old.id)
        was = old.goods.quantity_kg if old is not None and old.live else 0
        now = receipt.goods.quantity_kg if receipt.live else 0
        if now != was:
            totals = self.warehouse_stock(receipt.warehouse)
            self.put_warehouse_stock(receipt.warehouse,
                                     msgspec.structs.replace(totals, live_kg=totals.live_kg + now - was))
            if now > was:
                self.enqueue(Pending("issuance", receipt.warehouse, -1))
        if (old is None or old.live != receipt.live or old.goods != receipt.goods or old.warehouse != receipt.warehouse
                or old.pledge != receipt.pledge):
            self._collateral_changed(old, receipt)
        pledged_before = old is not None and under_pledge(old.status, old.expired_from)
        if pledged_before != under_pledge(receipt.status, receipt.expired_from):
            sign = -1 if pledged_before else 1
            for key in receipt.lots:
                lot = self.lot(key)
                if lot is not None and lot.warehouse == receipt.warehouse:
                    stock = self.bin_stock(lot.warehouse, lot.bin)
                    self.put_bin_stock(lot.warehouse, lot.bin, msgspec.structs.replace(
                        stock, pledged_kg=stock.pledged_kg + sign * lot.net_kg))
        self._write(RECEIPT + receipt.id, receipt)
        self._put(HISTORY + receipt.id + receipt.version.to_bytes(4, "big"), receipt.last_entry)
        self._put(BY_WAREHOUSE + receipt.warehouse + receipt.id, b"")
        self._put(BY_STATUS + status_byte(receipt.status) + receipt.id, b"")
        if receipt.live:
            self._put(BY_HOLDER + receipt.holder + receipt.id, b"")

    def _collateral_changed(self, old: Receipt | None, receipt: Receipt) -> None:
        """A receipt a pledge names came or went, or its goods changed: flag the facility of
        that pledge (one not yet written, or not of a facility, is flagged by `put_pledge`)."""
        for pledge_id in {old.pledge if old is not None else b"", receipt.pledge} - {b""}:
            pledge = self.pledge(pledge_id)
            if pledge is not None and pledge.status == "live":
                fkey = facility_key(pledge.pledgee, pledge.facility)
                if self._get(FACILITY + fkey) is not None:
                    self.queue_facility(fkey, collateral=True)

    # --- monitoring -----------------------------------------------------------------------------

    def alert(self, alert_id: bytes) -> Alert | None:
        return self._read(ALERT + alert_id, Alert)

    def put_alert(self, alert: Alert) -> None:
        """Write an alert and keep the open-alert index in step with its status."""
        self._write(ALERT + alert.id, alert)
        if alert.status == "open":
            self._put(OPEN_ALERT + alert.warehouse + alert.id, b"")
        else:
            self._delete(OPEN_ALERT + alert.warehouse + alert.id)

    def open_alerts(self, warehouse: bytes | None = None) -> list[Alert]:
        found = (self.alert(key[-32:]) for key in self._keys(OPEN_ALERT + (warehouse or b"")))
        return [a for a in found if a is not None]

    def alerts(self) -> list[Alert]:
        found = (self._read(key, Alert) for key in self._keys(ALERT))
        return [a for a in found if a is not None]

    def bin_holds(self, warehouse: bytes, bin_name: str) -> tuple[bytes, ...]:
        return self._read(HOLD + warehouse + bin_name.encode(), tuple[bytes, ...]) or ()

    def put_bin_holds(self, warehouse: bytes, bin_name: str, alerts: tuple[bytes, ...]) -> None:
        if alerts:
            self._write(HOLD + warehouse + bin_name.encode(), alerts)
        else:
            self._delete(HOLD + warehouse + bin_name.encode())

    def held_bins(self, warehouse: bytes | None = None) -> list[tuple[bytes, str, tuple[bytes, ...]]]:
        """(warehouse, bin, alerts) for every held bin."""
        return [(key[1:33], key[33:].decode(), codec.decode(value, tuple[bytes, ...]))
                for key, value in self._scan(HOLD + (warehouse or b""))]

    def held(self, receipt: Receipt) -> bool:
        """HELD: an open alert holds the receipt or a bin its lots lie in."""
        return bool(receipt.held) or any(self.bin_holds(receipt.warehouse, b) for b in receipt.bins)

    def policy(self) -> Policy:
        return self._read(POLICY, Policy) or Policy()

    def put_policy(self, policy: Policy) -> None:
        self._write(POLICY, policy)

    def bin_stock(self, warehouse: bytes, bin_name: str) -> BinStock:
        return self._read(STOCK + warehouse + b"\x01" + bin_name.encode(), BinStock) or BinStock()

    def put_bin_stock(self, warehouse: bytes, bin_name: str, stock: BinStock) -> None:
        self._write(STOCK + warehouse + b"\x01" + bin_name.encode(), stock)

    def warehouse_stock(self, warehouse: bytes) -> WarehouseStock:
        return self._read(STOCK + warehouse + b"\x00", WarehouseStock) or WarehouseStock()

    def put_warehouse_stock(self, warehouse: bytes, stock: WarehouseStock) -> None:
        self._write(STOCK + warehouse + b"\x00", stock)

    def mismatches(self, warehouse: bytes, bin_name: str) -> int:
        return self._read(MISMATCHES + warehouse + bin_name.encode(), int) or 0

    def put_mismatches(self, warehouse: bytes, bin_name: str, count: int) -> None:
        if count:
            self._write(MISMATCHES + warehouse + bin_name.encode(), count)
        else:
            self._delete(MISMATCHES + warehouse + bin_name.encode())

    def enqueue(self, item: Pending) -> None:
        number = self._read(_QUEUE_NEXT, int) or 0
        self._write(_QUEUE_ITEM + number.to_bytes(8, "big"), item)
        self._write(_QUEUE_NEXT, number + 1)

    def drain(self) -> list[Pending]:
        """Every queued item in arrival order, removed from the queue, which numbers from 0 again.
        The items are numbered 0 .. next - 1, so they are read by number, with no scan."""
        count = self._read(_QUEUE_NEXT, int)
        if count is None:
            return []
        items = []
        for number in range(count):
            key = _QUEUE_ITEM + number.to_bytes(8, "big")
            raw = self._get(key)
            if raw is not None:
                items.append(codec.decode(raw, Pending))
                self._delete(key)
        self._delete(_QUEUE_NEXT)
        return items

    def set_deadline(self, prefix: bytes, ms: int, kind: bytes, subject: bytes, *, on: bool = True) -> None:
        """Add (or remove) a time-index entry: `D` for devices, `y` for ageing and expiry."""
        key = prefix + max(ms, 0).to_bytes(8, "big") + kind + subject
        if on:
            self._put(key, b"")
            if max(ms, 0) < self._floor(prefix):
                self._write(DUE_FLOOR + prefix, max(ms, 0))
        else:
            self._delete(key)  # the floor stays: it is a lower bound, not the earliest entry

    def _floor(self, prefix: bytes) -> int:
        """No entry of the index falls due before this (0 when unknown: look)."""
        return self._read(DUE_FLOOR + prefix, int) or 0

    def due(self, prefix: bytes, now_ms: int) -> list[tuple[int, bytes, bytes]]:
        """(ms, kind, subject) of every time-index entry at or before now, removed from the index;
        the index is walked only once its floor is reached, and the floor then moves to the
        earliest entry left."""
        if self._floor(prefix) > now_ms:
            return []
        keys = []
        following = NEVER
        for key, _ in self._scan(prefix):
            if int.from_bytes(key[1:9], "big") > now_ms:
                following = int.from_bytes(key[1:9], "big")
                break
            keys.append(key)
        for key in keys:
            self._delete(key)
        if following == NEVER:  # an empty index has nothing to skip: no floor, no write
            if self._get(DUE_FLOOR + prefix) is not None:
                self._delete(DUE_FLOOR + prefix)
        elif following != self._floor(prefix):
            self._write(DUE_FLOOR + prefix, following)
        return [(int.from_bytes(key[1:9], "big"), key[9:10], key[10:]) for key in keys]

    def deadlines(self, prefix: bytes) -> list[tuple[int, bytes, bytes]]:
        return [(int.from_bytes(key[1:9], "big"), key[9:10], key[10:]) for key, _ in self._scan(prefix)]



def facility_key(bank: bytes, name: str) -> bytes:
    """A facility is named by its bank and its name (a name never holds a NUL)."""
    return bank + name.encode() + b"\0"


def _mark_key(spec: str, day: str, source: str) -> bytes:
    return MARK + spec.encode() + b"\0" + day.encode() + source.encode()

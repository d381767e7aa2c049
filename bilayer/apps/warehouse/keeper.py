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

Writes go straight to the state: an operation runs inside a state transaction (the entry's,
on the chain; `transitions.apply` opens a nested one), so a refusal after a write leaves
nothing behind. The indexes are maintained by `put_receipt` alone, so they cannot drift from
the records. Listings are ordered prefix scans of the keeper's own keys, never of the state.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from ... import codec
from ...execution.application import AppKeeper
from .records import STATUSES, Case, Device, Evidence, Lot, Party, Pledge, Receipt, Status, WarehouseInfo

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

T = TypeVar("T")


def status_byte(status: Status) -> bytes:
    return bytes([STATUSES.index(status)])


class Keeper(AppKeeper):
    __slots__ = ()
    APP: ClassVar[str] = APP

    def _keys(self, prefix: bytes) -> list[bytes]:
        return [key for key, _ in self._scan(prefix)]

    def _read(self, key: bytes, kind: type[T]) -> T | None:
        raw = self._get(key)
        return None if raw is None else codec.decode(raw, kind)

    def _write(self, key: bytes, value: Any) -> None:
        self._put(key, codec.encode(value))

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
        self._write(LOT + lot.key, lot)

    def put_pledge(self, pledge: Pledge) -> None:
        self._write(PLEDGE + pledge.id, pledge)

    def put_case(self, case: Case) -> None:
        self._write(CASE + case.number.to_bytes(8, "big"), case)
        self._write(LAST_CASE, case.number)

    def put_receipt(self, receipt: Receipt) -> None:
        """Write a receipt and move its index entries to match it."""
        old = self.receipt(receipt.id)
        if old is not None:
            self._delete(BY_HOLDER + old.holder + old.id)
            self._delete(BY_STATUS + status_byte(old.status) + old.id)
        self._write(RECEIPT + receipt.id, receipt)
        self._put(HISTORY + receipt.id + receipt.version.to_bytes(4, "big"), receipt.last_entry)
        self._put(BY_WAREHOUSE + receipt.warehouse + receipt.id, b"")
        self._put(BY_STATUS + status_byte(receipt.status) + receipt.id, b"")
        if receipt.live:
            self._put(BY_HOLDER + receipt.holder + receipt.id, b"")

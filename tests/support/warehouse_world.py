"""A simulated warehouse world: coils, weighings, read points."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from bilayer.apps.warehouse import epcis
from bilayer.apps.warehouse.errors import WarehouseRejected
from bilayer.apps.warehouse.keeper import Keeper
from bilayer.apps.warehouse.operations import (
    AcceptReceipt,
    ApproveDevice,
    ConfirmPledge,
    Countersign,
    ProposeDevice,
    ProposeReceipt,
    RecordReading,
    RegisterLot,
    RegisterParty,
    RegisterWarehouse,
    RequestPledge,
    WarehouseOperation,
)
from bilayer.apps.warehouse.records import Calibration, Goods, Receipt, Terms, lot_key, lot_urn, receipt_id
from bilayer.apps.warehouse.transitions import Context, apply
from bilayer.execution.state import State

T0 = 1_796_000_000_000  # late November 2026, in ms


DAY = 24 * 3600 * 1000


YEAR = 365 * DAY


USCC = "91310000MA1FL0000X"


def key(name: str) -> bytes:
    return hashlib.sha256(b"key:" + name.encode()).digest()


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class World:
    def __init__(self) -> None:
        self.state = State()
        self.k = Keeper(self.state)
        self.time = T0
        self.height = 1
        self.entries = 0
        self.seq: dict[str, int] = {}

    def ctx(self, signer: str | bytes, *, council: bool = False, regulator: bool = False) -> Context:
        self.entries += 1
        author = signer if isinstance(signer, bytes) else key(signer)
        return Context(digest(f"entry:{self.entries}"), author, self.height, self.time, council, regulator)

    def do(self, signer: str | bytes, op: WarehouseOperation, **flags: Any) -> bytes:
        """Apply one operation as `signer`; returns its entry id (offers are named by it)."""
        ctx = self.ctx(signer, **flags)
        apply(self.k, ctx, op)
        self.height += 1
        self.time += 1000
        return ctx.entry_id

    def refused(self, code: str, signer: str | bytes, op: WarehouseOperation, **flags: Any) -> None:
        """The operation is refused with `code`, and the state is exactly as before."""
        before = dict(self.state.items())
        with pytest.raises(WarehouseRejected) as info:
            self.do(signer, op, **flags)
        assert info.value.code == code, info.value
        assert dict(self.state.items()) == before

    # --- onboarding ------------------------------------------------------------------------------

    def party(self, name: str, role: Any, by: str | None = None) -> None:
        op = RegisterParty(key(name), role, name.title(), USCC, f"{name} street 1")
        if by is None:
            self.do("council", op, council=True)
        else:
            self.do(by, op)

    def warehouse(self, name: str, supervisor: str = "sup", *, signoff: bool = True) -> None:
        self.do("council", RegisterWarehouse(key(name), name.title(), USCC, "Qingdao port", location(name),
                                             key(supervisor), ("A1", "A2", "B1"), signoff), council=True)

    def weighbridge(self, warehouse: str, name: str | None = None, supervisor: str = "sup") -> str:
        device = f"urn:epc:id:giai:6901234.{name or warehouse + 'WB'}"
        self.do(warehouse, ProposeDevice(device, "weighbridge", ("A1", "A2", "B1"), key(device), read_point(device),
                                         Calibration(digest("cert"), "III", 20_000, T0 + YEAR)))
        self.do(supervisor, ApproveDevice(device))
        return device

    def reading(self, device: str, step: str, coils: tuple[tuple[str, str, str], ...], gross_kg: int,
                tare_kg: int, **fields: Any) -> epcis.Reading:
        seq = self.seq.get(device, 0) + 1
        self.seq[device] = seq
        values: dict[str, Any] = {
            "device_id": device, "seq": seq, "event_time_ms": self.time, "tz_offset": "+08:00",
            "action": "OBSERVE", "biz_step": step,
            "disposition": "in_progress" if step == "receiving" else "in_transit",
            "epcs": tuple(lot_urn(*c) for c in coils), "read_point": read_point(device),
            "reports": (epcis.SensorReport("Mass", str(gross_kg), "KGM", "gross"),
                        epcis.SensorReport("Mass", str(tare_kg), "KGM", "tare")),
        }
        values.update(fields)
        return epcis.Reading(**values)

    def weigh(self, device: str, step: str, coil: tuple[str, str, str], net_kg: int) -> bytes:
        reading = self.reading(device, step, (coil,), 18_000 + net_kg, 18_000)
        self.do(key(device), RecordReading(reading))
        return epcis.event_hash(reading)

    def intake(self, warehouse: str, device: str, coil: tuple[str, str, str], net_kg: int, bin: str = "A1") -> bytes:
        event = self.weigh(device, "receiving", coil, net_kg)
        self.do(warehouse, RegisterLot(*coil, "coil", "Q235B", "5.75x1500", 1, event, digest(f"mill:{coil}"),
                                       "2026-10-01", bin))
        return lot_key(*coil)

    def propose(self, warehouse: str, depositor: str, lots: tuple[bytes, ...], **changes: Any) -> bytes:
        info = self.k.warehouse(key(warehouse))
        assert info is not None
        listed = [self.k.lot(lot) for lot in lots]
        fields: dict[str, Any] = {
            "number": info.next_receipt_no, "depositor": key(depositor), "lots": lots,
            "goods": goods(sum(lot.net_kg for lot in listed if lot), sum(lot.pieces for lot in listed if lot)),
            "terms": Terms(3, T0 + YEAR, 50, "CNY"), "negotiable": True, "rights_notice": digest("notice"),
            "issue_place": "Qingdao", "signer": "clerk",
        }
        fields.update(changes)
        self.do(warehouse, ProposeReceipt(**fields))
        return receipt_id(key(warehouse), fields["number"])

    def issue(self, warehouse: str, depositor: str, lots: tuple[bytes, ...], supervisor: str = "sup") -> bytes:
        rid = self.propose(warehouse, depositor, lots)
        self.do(depositor, AcceptReceipt(rid))
        self.do(supervisor, AcceptReceipt(rid))
        return rid

    def pledge(self, rid: bytes, holder: str, bank: str, warehouse: str) -> bytes:
        offer = self.do(holder, RequestPledge(rid, key(bank), "facility-1"))
        self.do(bank, ConfirmPledge(rid, offer))
        self.do(warehouse, Countersign(rid, offer))
        return offer

    def receipt(self, rid: bytes) -> Receipt:
        r = self.k.receipt(rid)
        assert r is not None
        return r


def location(warehouse: str) -> str:
    return f"urn:epc:id:sgln:6901234.{warehouse}.0"


def read_point(device: str) -> str:
    return f"urn:epc:id:sgln:6901234.00001.{device.rsplit('.', 1)[-1]}"


def goods(quantity_kg: int, pieces: int) -> Goods:
    return Goods("hot-rolled coil", "5.75x1500", "Q235B", "MILL01 Steel", "bare coil", "heat/coil stencil",
                 pieces, quantity_kg)


def standard_world() -> World:
    """A council-appointed supervisor, two warehouses, two banks, a regulator's case desk,
    depositors onboarded by the first warehouse, and a weighbridge at each warehouse."""
    w = World()
    w.party("sup", "supervisor")
    w.warehouse("wh1")
    w.warehouse("wh2")
    w.party("bank_a", "bank")
    w.party("bank_b", "bank")
    w.party("dep", "depositor", by="wh1")
    w.party("buyer", "depositor", by="bank_a")
    w.party("insp", "inspector", by="sup")
    w.weighbridge("wh1")
    w.weighbridge("wh2")
    return w


COILS = tuple(("MILL01", "H24A1187", f"C{n:02d}") for n in range(1, 11))

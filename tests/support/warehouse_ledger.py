"""A ledger with the warehouse module and its parties, for the warehouse tests."""

from __future__ import annotations

import hashlib

from bilayer.apps.warehouse import epcis
from bilayer.apps.warehouse.keeper import Keeper
from bilayer.apps.warehouse.operations import (
    AcceptReceipt,
    ApproveDevice,
    ProposeDevice,
    ProposeReceipt,
    RecordReading,
    RegisterLot,
    RegisterParty,
    RegisterWarehouse,
)
from bilayer.apps.warehouse.records import Calibration, Goods, Terms, lot_key, lot_urn, receipt_id
from bilayer.execution.application import app_prefix
from bilayer.keys.signing import Signer
from bilayer.ledger.operations import Operation
from tests.support.builders import seeded_signer
from tests.support.ledger import FINAL, A, Ledger

T0 = 1_796_000_000_000


YEAR = 365 * 24 * 3600 * 1000


USCC = "91310000MA1FL0000X"


SUP, WH, BANK, BANK_B, DEP, BUYER = (seeded_signer(n) for n in range(30, 36))


WB = seeded_signer(40)  # the weighbridge's own key


WB_ID = "urn:epc:id:giai:6901234.WB1"


WB_POINT = "urn:epc:id:sgln:6901234.00001.WB1"


LOCATION = "urn:epc:id:sgln:6901234.00001.0"


COILS = tuple(("MILL01", "H24A1187", f"C{n:02d}") for n in range(1, 4))


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class WarehouseLedger(Ledger):
    """The rules test's ledger (council A, B, C; one regulator), with a clock and a warehouse world."""

    def __init__(self) -> None:
        super().__init__()
        self.time = T0
        self.device_seq = 0

    def step(self, *writes: tuple[Signer, Operation]) -> list[tuple[str, str]]:
        self.time += 1_000
        return self.run(self.time, *writes)

    def ok(self, *writes: tuple[Signer, Operation]) -> None:
        assert self.step(*writes) == [FINAL] * len(writes)

    def app_state(self) -> dict[bytes, bytes]:
        return {k: v for k, v in self.state.items() if k.startswith(app_prefix("warehouse"))}

    def reading(self, step: str, coil: tuple[str, str, str], net_kg: int) -> epcis.Reading:
        self.device_seq += 1
        return epcis.Reading(
            WB_ID, self.device_seq, self.time + 1_000, "+08:00", "OBSERVE", step,
            "in_progress" if step == "receiving" else "in_transit", (lot_urn(*coil),), read_point=WB_POINT,
            reports=(epcis.SensorReport("Mass", str(18_000 + net_kg), "KGM", "gross"),
                     epcis.SensorReport("Mass", "18000", "KGM", "tare")))

    def onboard(self) -> None:
        self.ok((A, RegisterParty(SUP.public_key, "supervisor", "Supervisor", USCC, "Shanghai")))
        self.ok((A, RegisterWarehouse(WH.public_key, "Qingdao Steel Store", USCC, "Qingdao", LOCATION,
                                      SUP.public_key, ("A1", "A2"))),
                (A, RegisterParty(BANK.public_key, "bank", "Bank A", USCC, "Beijing")),
                (A, RegisterParty(BANK_B.public_key, "bank", "Bank B", USCC, "Beijing")))
        self.ok((WH, RegisterParty(DEP.public_key, "depositor", "Trader", USCC, "Tianjin")),
                (WH, RegisterParty(BUYER.public_key, "depositor", "Buyer", USCC, "Tianjin")),
                (WH, ProposeDevice(WB_ID, "weighbridge", ("A1", "A2"), WB.public_key, WB_POINT,
                                   Calibration(digest("cert"), "III", 20_000, T0 + YEAR), heartbeat_ms=0)))
        self.ok((SUP, ApproveDevice(WB_ID)))

    def intake(self, coil: tuple[str, str, str], net_kg: int) -> bytes:
        reading = self.reading("receiving", coil, net_kg)
        self.ok((WB, RecordReading(reading)))
        self.ok((WH, RegisterLot(*coil, "coil", "Q235B", "5.75x1500", 1, epcis.event_hash(reading),
                                 digest(f"mill:{coil}"), "2026-10-01", "A1")))
        return lot_key(*coil)

    def issue(self, lots: tuple[bytes, ...], net_kg: int) -> bytes:
        number = Keeper(self.state).warehouse(WH.public_key).next_receipt_no  # type: ignore[union-attr]
        goods = Goods("hot-rolled coil", "5.75x1500", "Q235B", "MILL01", "bare coil", "stencil", len(lots), net_kg)
        self.ok((WH, ProposeReceipt(number, DEP.public_key, lots, goods, Terms(3, T0 + YEAR, 50, "CNY"), True,
                                    digest("notice"), "Qingdao", "clerk")))
        rid = receipt_id(WH.public_key, number)
        self.ok((DEP, AcceptReceipt(rid)), (SUP, AcceptReceipt(rid)))
        return rid

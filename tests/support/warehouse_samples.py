"""One well-formed operation of every warehouse kind, for the tests that cover every registered
kind (decoders, guard properties): their fields pass the stateless rules, so what execution
does with them depends on the state alone."""

from __future__ import annotations

import hashlib

from bilayer.apps.warehouse import epcis
from bilayer.apps.warehouse.operations import (
    OPERATIONS,
    AcceptReceipt,
    AcceptTransfer,
    AppointPublisher,
    ApproveDevice,
    CancelOffer,
    CancelReceipt,
    CloseFacility,
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
    OpenFacility,
    ProposeDevice,
    ProposeReceipt,
    PublishPrice,
    RecordReading,
    RecordStocktake,
    RegisterLot,
    RegisterParty,
    RegisterWarehouse,
    RejectReceipt,
    ReleasePledge,
    RenewCalibration,
    ReportOutstanding,
    RequestPledge,
    ResolveAlert,
    RevokeDevice,
    RevokeParty,
    SetFinanceBounds,
    SetMonitoring,
    SplitReceipt,
    Surrender,
    TopUp,
    UnfreezeReceipt,
    VoidReceipt,
    WarehouseOperation,
)
from bilayer.apps.warehouse.records import Calibration, Goods, SpecLimit, Terms, lot_key, lot_urn


def _h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


KEY, OTHER, RECEIPT, OFFER = _h("key"), _h("other"), _h("receipt"), _h("offer")
DEVICE = "urn:epc:id:giai:6901234.WB1"
POINT = "urn:epc:id:sgln:6901234.00001.WB1"
USCC = "91310000MA1FL0000X"
LOT, LOT2 = lot_key("MILL01", "H1", "C01"), lot_key("MILL01", "H1", "C02")
CALIBRATION = Calibration(_h("cert"), "III", 20_000, 1_900_000_000_000)
READING = epcis.Reading(DEVICE, 1, 1_796_000_000_000, "+08:00", "OBSERVE", "receiving", "in_progress",
                        (lot_urn("MILL01", "H1", "C01"),), read_point=POINT,
                        reports=(epcis.SensorReport("Mass", "41000", "KGM", "gross"),
                                 epcis.SensorReport("Mass", "18000", "KGM", "tare")))
GOODS = Goods("hot-rolled coil", "5.75x1500", "Q235B", "MILL01", "bare coil", "stencil", 1, 23_000)

SAMPLES: dict[str, WarehouseOperation] = {op.KIND: op for op in (
    RegisterWarehouse(KEY, "Store", USCC, "Qingdao", "urn:epc:id:sgln:6901234.00001.0", OTHER, ("A1",)),
    RegisterParty(KEY, "bank", "Bank", USCC, "Beijing"),
    RevokeParty(KEY, "licence withdrawn"),
    ProposeDevice(DEVICE, "weighbridge", ("A1",), KEY, POINT, CALIBRATION),
    ApproveDevice(DEVICE),
    RenewCalibration(DEVICE, CALIBRATION),
    RevokeDevice(DEVICE, "tampered"),
    RecordReading(READING),
    RegisterLot("MILL01", "H1", "C01", "coil", "Q235B", "5.75x1500", 1, _h("event"), _h("mill cert"), "2026-10-01",
                "A1"),
    InspectLot(LOT, _h("report")),
    ProposeReceipt(1, KEY, (LOT,), GOODS, Terms(3, 1_900_000_000_000, 50, "CNY"), True, _h("notice"), "Qingdao",
                   "clerk"),
    AcceptReceipt(RECEIPT),
    RejectReceipt(RECEIPT, "wrong weight"),
    OfferTransfer(RECEIPT, KEY),
    AcceptTransfer(RECEIPT, OFFER),
    RequestPledge(RECEIPT, KEY, "facility-1"),
    ConfirmPledge(RECEIPT, OFFER),
    Countersign(RECEIPT, OFFER),
    CancelOffer(RECEIPT, OFFER),
    ReleasePledge(RECEIPT),
    DeclareDefault(RECEIPT, 24 * 3600 * 1000),
    CureDefault(RECEIPT),
    InvokePledge(RECEIPT),
    Surrender(RECEIPT, _h("collector")),
    CancelReceipt(RECEIPT),
    SplitReceipt(RECEIPT, ((LOT,), (LOT2,))),
    MergeReceipts((RECEIPT, OFFER)),
    ExpireReceipt(RECEIPT),
    ExtendReceipt(RECEIPT, 1_900_000_000_000),
    ConvertToPaper(RECEIPT, "P-2026-1"),
    OpenCase("suspected_fraud", "order 1", "duplicate receipts"),
    FreezeReceipt(RECEIPT, 1),
    UnfreezeReceipt(RECEIPT, 1),
    VoidReceipt(RECEIPT, 1),
    ResolveAlert(_h("alert"), "false_positive", "the camera's view was blocked by a crane"),
    RecordStocktake(KEY, "A1", 46_000, 2, "quarterly count"),
    SetMonitoring(5, 8 * 60, 18 * 60, 3, 360, 30),
    AppointPublisher(KEY, "Mysteel", ("mysteel_spot",), ("5.75x1500",)),
    PublishPrice("5.75x1500", "mysteel_spot", "spot", "2026-11-02", 4_200_00, "CNY", True),
    OpenFacility("facility-1", KEY, 10_000_000_00),
    ReportOutstanding("facility-1", 5_000_000_00, "2026-11-02"),
    TopUp("facility-1", 100_000_00),
    CloseFacility("facility-1"),
    SetFinanceBounds(spec_limits=(SpecLimit("5.75x1500", 400),)),
)}
assert set(SAMPLES) == {op.KIND for op in OPERATIONS}, "a warehouse kind has no sample"

"""A ledger where every application query has something to answer: a receipt over three lots,
pledged to a bank's facility that a published price values, a coil through the gate with no
instruction (an R2 alert holding the receipt), a stocktake short by a coil (an R9 alert holding
the bin), and a notarized document handed on; with the parameters each query is asked with."""

from __future__ import annotations

from collections.abc import Mapping

from bilayer.apps.notary.operations import NotaryRegister, NotaryTransfer
from bilayer.apps.warehouse import epcis
from bilayer.apps.warehouse.keeper import Keeper
from bilayer.apps.warehouse.operations import (
    AppointPublisher,
    ApproveDevice,
    ConfirmPledge,
    Countersign,
    OpenFacility,
    ProposeDevice,
    PublishPrice,
    RecordReading,
    RecordStocktake,
    ReportOutstanding,
    RequestPledge,
)
from bilayer.apps.warehouse.records import Calibration, lot_urn
from tests.support.builders import seeded_signer
from tests.support.ledger import A
from tests.support.warehouse_ledger import BANK, COILS, DEP, SUP, T0, WB_ID, WH, YEAR, WarehouseLedger, digest

DOCUMENT = bytes(range(32))
SPEC = "5.75x1500"
NET_KG = 23_000
PUBLISHER, GATE = seeded_signer(50), seeded_signer(52)
GATE_ID = "urn:epc:id:giai:6901234.GATE1"
GATE_POINT = "urn:epc:id:sgln:6901234.00001.GATE1"


def answering_ledger() -> tuple[WarehouseLedger, dict[tuple[str, str], Mapping[str, str]]]:
    """The ledger, and for each (application, query) the parameters that find its records."""
    ledger = WarehouseLedger()
    ledger.onboard()
    lots = tuple(ledger.intake(coil, NET_KG) for coil in COILS)
    rid = ledger.issue(lots, NET_KG * len(lots))
    ledger.ok((A, AppointPublisher(PUBLISHER.public_key, "Mysteel", ("mysteel_spot",), (SPEC,))),
              (BANK, OpenFacility("F1", DEP.public_key, 50_000_000)))
    ledger.ok((PUBLISHER, PublishPrice(SPEC, "mysteel_spot", "spot", "2026-11-03", 400_000)))
    ledger.ok((DEP, RequestPledge(rid, BANK.public_key, "F1")))
    offer = ledger.ids[-1]
    ledger.ok((BANK, ConfirmPledge(rid, offer)), (WH, Countersign(rid, offer)))
    ledger.ok((BANK, ReportOutstanding("F1", 19_320_000, "2026-11-03")))
    ledger.ok((DEP, NotaryRegister(document=DOCUMENT, title="bill of lading")))
    ledger.ok((DEP, NotaryTransfer(document=DOCUMENT, to=BANK.public_key)))
    ledger.ok((WH, ProposeDevice(GATE_ID, "gate_reader", ("A1", "A2"), GATE.public_key, GATE_POINT,
                                 Calibration(digest("gate"), "", 0, T0 + YEAR), heartbeat_ms=0)))
    ledger.ok((SUP, ApproveDevice(GATE_ID)))
    departing = epcis.Reading(GATE_ID, 1, ledger.time + 1_000, "+08:00", "OBSERVE", "departing", "in_transit",
                              (lot_urn(*COILS[0]),), read_point=GATE_POINT)
    ledger.ok((GATE, RecordReading(departing)))
    ledger.ok((SUP, RecordStocktake(WH.public_key, "A1", 2 * NET_KG, 2, "a coil missing")))
    alerts = sorted(Keeper(ledger.state).alerts(), key=lambda a: (a.height, a.id))
    assert [a.rule for a in alerts] == ["R2", "R9"], [a.rule for a in alerts]
    bank, warehouse, facility = BANK.address, WH.address, {"bank": BANK.address, "name": "F1"}
    asked: dict[tuple[str, str], Mapping[str, str]] = {
        ("notary", "document"): {"hash": DOCUMENT.hex()},
        ("notary", "owned"): {"owner": bank},
        ("warehouse", "register"): {},
        ("warehouse", "receipt"): {"id": rid.hex()},
        ("warehouse", "lot"): {"key": lots[0].hex()},
        ("warehouse", "history"): {"id": rid.hex()},
        ("warehouse", "evidence"): {"id": rid.hex()},
        ("warehouse", "trail"): {"id": rid.hex()},
        ("warehouse", "party"): {"key": warehouse},
        ("warehouse", "device"): {"id": WB_ID},
        ("warehouse", "alerts"): {"warehouse": warehouse},
        ("warehouse", "alert"): {"id": alerts[1].id.hex()},
        ("warehouse", "alert_trail"): {"id": alerts[0].id.hex()},
        ("warehouse", "holds"): {"warehouse": warehouse},
        ("warehouse", "devices"): {"warehouse": warehouse},
        ("warehouse", "stock"): {"warehouse": warehouse},
        ("warehouse", "prices"): {"spec": SPEC},
        ("warehouse", "facilities"): {"bank": bank},
        ("warehouse", "facility"): facility,
        ("warehouse", "valuation"): facility,
        ("warehouse", "exposure"): {},
    }
    return ledger, asked

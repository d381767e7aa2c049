"""The warehouse application executed as every node executes it: entries signed by their
parties (devices by their own keys), ordered into checkpoints, through the executor and its
compliance gate, with council and regulator decided by the governance keepers."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from bilayer.api.openapi import openapi_document
from bilayer.apps.warehouse.chain import query_evidence, query_history, query_lot, query_receipt, query_register
from bilayer.apps.warehouse.invariants import violations
from bilayer.apps.warehouse.keeper import Keeper
from bilayer.apps.warehouse.operations import (
    CancelReceipt,
    ConfirmPledge,
    Countersign,
    FreezeReceipt,
    OfferTransfer,
    OpenCase,
    RecordReading,
    RegisterParty,
    ReleasePledge,
    RequestPledge,
    Surrender,
)
from bilayer.errors import BilayerError
from bilayer.execution.application import app_prefix, installed_applications
from bilayer.ledger.operations import BanKey, FreezeAccount, ResumeService, SuspendService, UnfreezeAccount
from bilayer.ledger.validation import check_entry
from tests.support.builders import make_entry, seeded_signer
from tests.support.ledger import FINAL, GENESIS, REGULATOR, A, rejected
from tests.support.warehouse_ledger import BANK, BANK_B, BUYER, COILS, DEP, USCC, WB, WH, WarehouseLedger, digest


def issued(net_kg: int = 23_000) -> tuple[WarehouseLedger, bytes, tuple[bytes, ...]]:
    ledger = WarehouseLedger()
    ledger.onboard()
    lots = tuple(ledger.intake(coil, net_kg) for coil in COILS)
    return ledger, ledger.issue(lots, net_kg * len(lots)), lots


def test_the_warehouse_is_an_installed_application_with_every_operation() -> None:
    app = {a.name: a for a in installed_applications()}["warehouse"]
    assert len(app.operations) == 44 and all(o.struct.KIND.startswith("warehouse.") for o in app.operations)
    assert set(app.queries) >= {"register", "receipt", "lot", "history", "evidence"}
    described = openapi_document("x", [])["paths"]["/v1/apps/{app}/{query}"]["get"]["description"]
    assert all(f"`GET /v1/apps/warehouse/{name}" in described for name in app.queries)
    assert "/v1/apps/warehouse/register?warehouse=&holder=&status=" in described


def test_a_whole_lifecycle_through_the_executor() -> None:
    ledger, rid, lots = issued()
    k = Keeper(ledger.state)
    receipt = k.receipt(rid)
    assert receipt is not None and (receipt.status, receipt.holder) == ("active", DEP.public_key)
    assert ledger.step((DEP, RequestPledge(rid, BANK.public_key, "facility-1"))) == [FINAL]
    offer_id = ledger.ids[-1]
    ledger.ok((BANK, ConfirmPledge(rid, offer_id)), (WH, Countersign(rid, offer_id)))
    assert Keeper(ledger.state).receipt(rid).status == "pledged"  # type: ignore[union-attr]
    ledger.ok((BANK, ReleasePledge(rid)))
    ledger.ok((DEP, Surrender(rid, digest("collector id"))))
    for coil in COILS:
        ledger.ok((WB, RecordReading(ledger.reading("shipping", coil, 23_000))))
    ledger.ok((WH, CancelReceipt(rid)))
    receipt = Keeper(ledger.state).receipt(rid)
    assert receipt is not None and receipt.status == "cancelled"
    assert all(Keeper(ledger.state).lot(lot).status == "shipped" for lot in lots)  # type: ignore[union-attr]
    history = Keeper(ledger.state).history(rid)
    assert len(history) == 9 and history[0] == receipt.issue_entry and history[-1] == ledger.ids[-1]
    assert violations(Keeper(ledger.state)) == []
    assert all(key.startswith(app_prefix("warehouse")) for key, _ in ledger.state.scan(b"Z")
               if not key.startswith(app_prefix("notary")))
    # the reads the API serves
    assert query_register(ledger.state, {"status": "cancelled"})["count"] == 1
    view = query_receipt(ledger.state, {"id": rid.hex()})
    assert view["history"] == [e.hex() for e in history]
    assert view["receipt"]["lots"] == sorted(lot.hex() for lot in lots)  # ids in hex, inside lists too
    assert query_history(ledger.state, {"id": rid.hex()})["lineage"][0]["id"] == rid.hex()
    view = query_lot(ledger.state, {"mill": "MILL01", "heat": "H24A1187", "coil": "C01"})
    assert [e["biz_step"] for e in view["evidence"]] == ["receiving", "shipping"]
    events = query_evidence(ledger.state, {"id": rid.hex()})["epcis"]["epcisBody"]["eventList"]
    assert len(events) == 6 and events[0]["sensorElementList"][0]["sensorReport"][0]["value"] == 41_000


def test_council_and_regulator_are_decided_by_the_governance_keepers() -> None:
    ledger, rid, _ = issued()
    before = ledger.app_state()
    assert ledger.step((DEP, RegisterParty(seeded_signer(50).public_key, "bank", "Shadow bank", USCC, "x"))) == [
        rejected("warehouse.not_council")]
    assert ledger.step((BANK, OpenCase("suspected_fraud", "order 1", "duplicate receipts"))) == [
        rejected("warehouse.not_regulator")]
    ledger.ok((REGULATOR, OpenCase("suspected_fraud", "order 1", "duplicate receipts")))
    assert ledger.step((A, FreezeReceipt(rid, 1))) == [rejected("warehouse.not_regulator")]  # council, not regulator
    assert len(ledger.app_state()) == len(before) + 2  # the case and its counter
    ledger.ok((REGULATOR, FreezeReceipt(rid, 1)))
    assert ledger.step((DEP, RequestPledge(rid, BANK.public_key, "facility-1"))) == [
        rejected("warehouse.receipt_frozen")]


def test_a_reading_is_signed_by_its_device_and_no_one_else() -> None:
    ledger, _, _ = issued()
    reading = ledger.reading("receiving", ("MILL01", "H24A1187", "C99"), 20_000)
    assert ledger.step((WH, RecordReading(reading))) == [rejected("warehouse.wrong_signer")]
    assert ledger.step((WB, RecordReading(reading))) == [FINAL]


def _attempts(ledger: WarehouseLedger, rid: bytes) -> list[Any]:
    return ledger.step((DEP, RequestPledge(rid, BANK.public_key, "facility-1")))


def test_the_gate_applies_to_warehouse_kinds_without_warehouse_code() -> None:
    ledger, rid, _ = issued()
    before = ledger.app_state()

    ledger.decide(ledger.time + 1_000, SuspendService("warehouse.request_pledge"))
    ledger.time += 100_000
    assert _attempts(ledger, rid) == [rejected("service_suspended")]
    ledger.decide(ledger.time + 1_000, ResumeService("warehouse.request_pledge"))
    ledger.time += 100_000

    ledger.decide(ledger.time + 1_000, FreezeAccount(DEP.public_key))  # a frozen holder moves nothing
    ledger.time += 100_000
    assert _attempts(ledger, rid) == [rejected("account_frozen")]
    ledger.decide(ledger.time + 1_000, UnfreezeAccount(DEP.public_key))
    ledger.time += 100_000

    ledger.decide(ledger.time + 1_000, FreezeAccount(BUYER.public_key))  # nor is anything handed to a frozen key
    ledger.time += 100_000
    assert ledger.step((DEP, OfferTransfer(rid, BUYER.public_key))) == [rejected("account_frozen")]

    ledger.decide(ledger.time + 1_000, BanKey(BANK.public_key))  # a banned bank confirms nothing
    ledger.time += 100_000
    assert ledger.step((BANK, ConfirmPledge(rid, digest("any offer")))) == [rejected("identity_banned")]
    assert ledger.app_state() == before
    assert ledger.step((DEP, RequestPledge(rid, BANK_B.public_key, "facility-2"))) == [FINAL]  # lifted: it works


def test_a_malformed_reading_is_refused_at_ingress_with_its_code() -> None:
    """What a node checks before storing anything: NaN, negative or wrong-unit weighings, a
    reading with no device, each refused with its code (execution never sees them)."""
    ledger = WarehouseLedger()
    good = ledger.reading("receiving", COILS[0], 23_000)
    mass = good.reports[0]
    for bad, code in (
            (msgspec.structs.replace(good, reports=(msgspec.structs.replace(mass, value="NaN"), good.reports[1])),
             "warehouse.epcis_bad_quantity"),
            (msgspec.structs.replace(good, reports=(msgspec.structs.replace(mass, value="-5"), good.reports[1])),
             "warehouse.epcis_bad_quantity"),
            (msgspec.structs.replace(good, reports=(msgspec.structs.replace(mass, uom="LBR"), good.reports[1])),
             "warehouse.epcis_wrong_unit"),
            (msgspec.structs.replace(good, device_id=""), "warehouse.epcis_invalid")):
        _, signed = make_entry(WB, GENESIS, op=RecordReading(bad), pow_bits=0)
        with pytest.raises(BilayerError) as refused:
            check_entry(signed, chain_id=GENESIS.chain_id, params=GENESIS.params, now_ms=int(time.time() * 1000))
        assert refused.value.code == code, (bad, refused.value)
    _, signed = make_entry(WB, GENESIS, op=RecordReading(good), pow_bits=0)
    check_entry(signed, chain_id=GENESIS.chain_id, params=GENESIS.params, now_ms=int(time.time() * 1000))

"""Parties, devices and device evidence: who appoints whom, and every refusal of a reading."""

from __future__ import annotations

import msgspec
import pytest

from bilayer.apps.warehouse import epcis
from bilayer.apps.warehouse.operations import (
    ApproveDevice,
    InspectLot,
    ProposeDevice,
    RecordReading,
    RegisterLot,
    RegisterParty,
    RegisterWarehouse,
    RenewCalibration,
    RevokeDevice,
    RevokeParty,
)
from bilayer.apps.warehouse.records import Calibration, lot_key
from bilayer.apps.warehouse.transitions import MAX_CLOCK_SKEW_MS
from tests.support.warehouse_receipts import proposal
from tests.support.warehouse_world import (
    COILS,
    DAY,
    T0,
    USCC,
    YEAR,
    World,
    digest,
    key,
    location,
    read_point,
    standard_world,
)

WB1 = "urn:epc:id:giai:6901234.wh1WB"


def test_the_council_appoints_warehouses_banks_and_supervisors() -> None:
    w = World()
    w.refused("warehouse.not_council", "someone", RegisterParty(key("bank"), "bank", "Bank", USCC, "x"))
    w.refused("warehouse.not_council", "someone", RegisterParty(key("sup"), "supervisor", "Sup", USCC, "x"))
    w.refused("warehouse.not_council", "someone", RegisterWarehouse(key("wh"), "Wh", USCC, "x", location("wh"),
                                                                  key("sup"), ("A1",)))
    w.refused("warehouse.party_unknown", "council", RegisterWarehouse(key("wh"), "Wh", USCC, "x", location("wh"),
                                                                     key("sup"), ("A1",)), council=True)
    w.party("sup", "supervisor")
    w.warehouse("wh1")
    w.refused("warehouse.party_exists", "council", RegisterParty(key("wh1"), "bank", "Bank", USCC, "x"), council=True)
    party = w.k.party(key("wh1"))
    assert party is not None and party.role == "warehouse" and party.appointed_by == b""


def test_depositors_are_onboarded_by_a_warehouse_or_bank_and_inspectors_by_a_supervisor() -> None:
    w = standard_world()
    dep = w.k.party(key("dep"))
    assert dep is not None and dep.appointed_by == key("wh1")
    w.refused("warehouse.not_appointer", "dep", RegisterParty(key("d2"), "depositor", "D2", USCC, "x"))
    w.refused("warehouse.not_appointer", "wh1", RegisterParty(key("i2"), "inspector", "I2", USCC, "x"))
    w.refused("warehouse.not_appointer", "stranger", RegisterParty(key("d2"), "depositor", "D2", USCC, "x"))
    w.do("sup", RegisterParty(key("i2"), "inspector", "I2", USCC, "x"))
    # a revoked appointer appoints no more
    w.do("council", RevokeParty(key("bank_b"), "licence withdrawn"), council=True)
    w.refused("warehouse.not_appointer", "bank_b", RegisterParty(key("d3"), "depositor", "D3", USCC, "x"))


def test_a_party_is_revoked_by_its_appointer_or_the_council_and_then_signs_nothing() -> None:
    w = standard_world()
    w.refused("warehouse.not_appointer", "wh2", RevokeParty(key("dep"), "not yours"))
    w.refused("warehouse.not_appointer", "sup", RevokeParty(key("wh1"), "council-appointed"))
    w.do("wh1", RevokeParty(key("dep"), "KYC lapsed"))
    w.refused("warehouse.party_revoked", "wh1", RevokeParty(key("dep"), "again"))
    lot = w.intake("wh1", WB1, COILS[0], 23_000)
    w.refused("warehouse.ineligible_holder", "wh1", proposal(w, (lot,)))
    w.do("council", RevokeParty(key("insp"), "conflict of interest"), council=True)
    w.refused("warehouse.party_revoked", "insp", InspectLot(lot, digest("report")))


def test_a_device_reports_only_once_its_supervisor_approves_it_while_calibrated() -> None:
    w = standard_world()
    cam = "urn:epc:id:giai:6901234.CAM1"
    propose = ProposeDevice(cam, "camera", ("A1",), key(cam), read_point(cam), Calibration(digest("c"), "", 0,
                                                                                           T0 + DAY))
    w.refused("warehouse.wrong_role", "dep", propose)
    w.refused("warehouse.unknown_bin", "wh1", msgspec.structs.replace(propose, bins=("Z9",)))
    w.refused("warehouse.device_key_in_use", "wh1", msgspec.structs.replace(propose, public_key=key(WB1)))
    w.refused("warehouse.device_key_in_use", "wh1", msgspec.structs.replace(propose, public_key=key("dep")))
    w.do("wh1", propose)
    w.refused("warehouse.device_exists", "wh1", propose)
    reading = w.reading(cam, "inspecting", (COILS[0],), 0, 0, reports=(epcis.SensorReport("Count", "1", "H87"),))
    w.refused("warehouse.device_not_active", key(cam), RecordReading(reading))
    w.refused("warehouse.wrong_signer", "wh1", ApproveDevice(cam))
    w.do("sup", ApproveDevice(cam))
    w.refused("warehouse.device_not_active", "sup", ApproveDevice(cam))
    w.do(key(cam), RecordReading(reading))
    w.time = T0 + DAY
    late = w.reading(cam, "inspecting", (COILS[0],), 0, 0, reports=(epcis.SensorReport("Count", "1", "H87"),))
    w.refused("warehouse.device_uncalibrated", key(cam), RecordReading(late))
    w.refused("warehouse.wrong_device_kind", "sup", RenewCalibration(cam, Calibration(digest("c2"), "III", 20_000,
                                                                                     T0 + YEAR)))
    w.refused("warehouse.device_uncalibrated", "sup", RenewCalibration(cam, Calibration(digest("c2"), "", 0, T0)))
    w.do("sup", RenewCalibration(cam, Calibration(digest("c2"), "", 0, T0 + YEAR)))
    w.do(key(cam), RecordReading(late))
    w.refused("warehouse.wrong_signer", "wh2", RevokeDevice(cam, "not mine"))
    w.do("wh1", RevokeDevice(cam, "replaced"))
    again = w.reading(cam, "inspecting", (COILS[0],), 0, 0, reports=(epcis.SensorReport("Count", "1", "H87"),))
    w.refused("warehouse.device_revoked", key(cam), RecordReading(again))
    w.refused("warehouse.device_revoked", "sup", RenewCalibration(cam, Calibration(digest("c3"), "", 0, T0 + YEAR)))


def test_an_unapproved_device_whose_certificate_expired_cannot_be_approved() -> None:
    w = standard_world()
    door = "urn:epc:id:giai:6901234.DOOR1"
    w.do("wh1", ProposeDevice(door, "door", ("A1",), key(door), read_point(door), Calibration(digest("c"), "", 0,
                                                                                              w.time + 10)))
    w.time += 60_000
    w.refused("warehouse.device_uncalibrated", "sup", ApproveDevice(door))


@pytest.mark.parametrize("case", ["unknown", "signer", "read_point", "location", "sequence", "replay", "skew_past",
                                  "skew_future", "no_weighing"])
def test_a_reading_is_refused_with_its_code(case: str) -> None:
    w = standard_world()
    w.weigh(WB1, "receiving", COILS[0], 23_000)  # seq 1 accepted
    reading = w.reading(WB1, "receiving", (COILS[1],), 41_000, 18_000)
    signer = key(WB1)
    code = {
        "unknown": "warehouse.device_unknown", "signer": "warehouse.wrong_signer",
        "read_point": "warehouse.location_not_covered", "location": "warehouse.location_not_covered",
        "sequence": "warehouse.out_of_sequence", "replay": "warehouse.out_of_sequence",
        "skew_past": "warehouse.clock_skew", "skew_future": "warehouse.clock_skew",
        "no_weighing": "warehouse.weighing_required",
    }[case]
    if case == "unknown":
        reading = msgspec.structs.replace(reading, device_id="urn:epc:id:giai:6901234.GHOST")
    elif case == "signer":
        signer = key("urn:epc:id:giai:6901234.wh2WB")  # another warehouse's weighbridge key
    elif case == "read_point":
        reading = msgspec.structs.replace(reading, read_point=read_point("urn:epc:id:giai:6901234.wh2WB"))
    elif case == "location":
        reading = msgspec.structs.replace(reading, biz_location=location("wh2"))
    elif case == "sequence":
        reading = msgspec.structs.replace(reading, seq=1)
    elif case == "replay":
        reading = msgspec.structs.replace(reading, seq=0)
    elif case == "skew_past":
        reading = msgspec.structs.replace(reading, event_time_ms=w.time - MAX_CLOCK_SKEW_MS - 1)
    elif case == "skew_future":
        reading = msgspec.structs.replace(reading, event_time_ms=w.time + MAX_CLOCK_SKEW_MS + 1)
    elif case == "no_weighing":
        reading = msgspec.structs.replace(reading, reports=())
    w.refused(code, signer, RecordReading(reading))


def test_readings_at_the_skew_limit_and_with_gaps_in_sequence_are_accepted() -> None:
    w = standard_world()
    reading = w.reading(WB1, "receiving", (COILS[1],), 41_000, 18_000)
    reading = msgspec.structs.replace(reading, seq=7, event_time_ms=w.time - MAX_CLOCK_SKEW_MS)
    w.do(key(WB1), RecordReading(reading))
    device = w.k.device(WB1)
    assert device is not None and device.last_seq == 7
    evidence = w.k.evidence(epcis.event_hash(reading))
    assert evidence is not None and evidence.net_kg == 23_000 and evidence.warehouse == key("wh1")
    assert evidence.reading == reading


def test_a_lot_is_booked_only_against_its_own_weighbridge_intake() -> None:
    w = standard_world()
    event = w.weigh(WB1, "receiving", COILS[0], 23_000)
    book = RegisterLot(*COILS[0], "coil", "Q235B", "5.75x1500", 1, event, digest("mill"), "2026-10-01", "A1")
    w.refused("warehouse.unknown_bin", "wh1", msgspec.structs.replace(book, bin="Z9"))
    w.refused("warehouse.evidence_unknown", "wh1", msgspec.structs.replace(book, intake_event=digest("nothing")))
    w.refused("warehouse.not_intake_evidence", "wh1", msgspec.structs.replace(book, coil="C99"))
    w.refused("warehouse.not_intake_evidence", "wh2", book)  # wh1's weighing booked at wh2
    shipped = w.weigh(WB1, "shipping", COILS[1], 23_000)
    w.refused("warehouse.not_intake_evidence", "wh1", msgspec.structs.replace(book, coil="C02",
                                                                              intake_event=shipped))
    w.refused("warehouse.wrong_role", "dep", book)
    w.do("wh1", book)
    lot = w.k.lot(lot_key(*COILS[0]))
    assert lot is not None and (lot.net_kg, lot.warehouse, lot.bin, lot.status) == (23_000, key("wh1"), "A1",
                                                                                    "in_stock")
    w.refused("warehouse.evidence_used", "wh1", book)
    w.refused("warehouse.wrong_role", "dep", InspectLot(lot.key, digest("report")))
    w.refused("warehouse.lot_unknown", "insp", InspectLot(digest("none"), digest("report")))
    w.do("insp", InspectLot(lot.key, digest("report")))
    inspected = w.k.lot(lot.key)
    assert inspected is not None and inspected.inspection == digest("report")

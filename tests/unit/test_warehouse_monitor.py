"""Reconciliation of goods against receipts, as every node runs it at the end of a checkpoint:
entries signed by their parties and devices go through the executor, whose end-of-checkpoint
hook runs `monitor.reconcile`. For every rule, a case that raises it and one within tolerance
that must not; the HELD overlay refuses each move it blocks and the supervisor's resolution
lifts it; two independent executions of the same entries agree on every alert and state root."""

from __future__ import annotations

from typing import Any

import pytest

from bilayer.apps.warehouse import epcis
from bilayer.apps.warehouse.chain import query_alert, query_alerts, query_devices, query_holds, query_stock
from bilayer.apps.warehouse.invariants import violations
from bilayer.apps.warehouse.keeper import Keeper
from bilayer.apps.warehouse.operations import (
    AcceptTransfer,
    ApproveDevice,
    CancelOffer,
    ConfirmPledge,
    Countersign,
    MergeReceipts,
    OfferTransfer,
    ProposeDevice,
    ProposeReceipt,
    RecordReading,
    RecordStocktake,
    RegisterLot,
    RegisterParty,
    RegisterWarehouse,
    ReleasePledge,
    RequestPledge,
    ResolveAlert,
    SetMonitoring,
    SplitReceipt,
    Surrender,
)
from bilayer.apps.warehouse.records import Alert, Calibration, Goods, Terms, lot_key, lot_urn, receipt_id
from bilayer.errors import BilayerError
from bilayer.execution.executor import execute, genesis_state
from bilayer.execution.governance.context import ExecContext
from bilayer.execution.state import State
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import EntryHeader
from tests.support.builders import seeded_signer
from tests.support.governance import PARAMS
from tests.support.ledger import FINAL, GENESIS, A, rejected
from tests.support.warehouse_ledger import BANK, BUYER, COILS, DEP, SUP, T0, USCC, WB, WH, YEAR, WarehouseLedger, digest

DAY = 24 * 3600 * 1000
WH2, SUP2, WB2 = seeded_signer(60), seeded_signer(61), seeded_signer(62)
NET = 23_000  # each coil's weighed net; the book of bin A1 is 3 x 23,000 kg after `world()`
HELD = rejected("warehouse.receipt_held")


class MonitorLedger(WarehouseLedger):
    """The chain test's warehouse (bins A1, A2; three coils in A1 on one receipt) with more devices."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: dict[str, tuple[Signer, str]] = {}
        self.seqs: dict[str, int] = {}
        self.checkpoints: list[tuple[ExecContext, list[tuple[bytes, EntryHeader]]]] = []

    def run(self, time_ms: int, *writes: Any, keywords: dict[int, tuple[str, ...]] | None = None,
            ) -> list[tuple[str, str]]:
        """One checkpoint through the executor, kept so that it can be executed again elsewhere."""
        self.height += 1
        ordered = [self.entry(*write) for write in writes]
        ctx = ExecContext(self.height, time_ms, PARAMS, {})
        self.checkpoints.append((ctx, ordered))
        return [(str(r.outcome), r.code) for r in execute(ctx, self.state, ordered)]

    def replay(self) -> State:
        """The same checkpoints executed on a fresh state from the same genesis."""
        state = genesis_state(GENESIS)
        for ctx, ordered in self.checkpoints:
            execute(ctx, state, ordered)
        return state

    def device(self, name: str, kind: str, bins: tuple[str, ...], *, heartbeat_ms: int = 0,
               expires_ms: int = T0 + YEAR, warehouse: Signer = WH, supervisor: Signer = SUP) -> str:
        signer = seeded_signer(100 + len(self.devices))
        device_id = f"urn:epc:id:giai:6901234.{name}"
        point = f"urn:epc:id:sgln:6901234.00001.{name}"
        weighs = kind == "weighbridge"
        calibration = Calibration(digest(name), "III" if weighs else "", 20_000 if weighs else 0, expires_ms)
        self.ok((warehouse, ProposeDevice(device_id, kind, bins, signer.public_key, point, calibration,  # type: ignore[arg-type]
                                          heartbeat_ms=heartbeat_ms)))
        self.ok((supervisor, ApproveDevice(device_id)))
        self.devices[device_id] = (signer, point)
        return device_id

    def event(self, device_id: str, step: str, *, epcs: tuple[str, ...] = (), disposition: str = "",
              reports: tuple[epcis.SensorReport, ...] = (), transactions: tuple[epcis.BizTransaction, ...] = (),
              at: int | None = None) -> epcis.Reading:
        self.seqs[device_id] = self.seqs.get(device_id, 0) + 1
        _, point = self.devices[device_id]
        return epcis.Reading(device_id, self.seqs[device_id], self.time + 1_000 if at is None else at, "+08:00",
                             "OBSERVE", step, disposition, epcs, read_point=point, transactions=transactions,
                             reports=reports)

    def report(self, device_id: str, step: str, **fields: Any) -> list[tuple[str, str]]:
        """One reading in its own checkpoint; the checkpoint's reconciliation runs after it."""
        signer, _ = self.devices[device_id]
        return self.step((signer, RecordReading(self.event(device_id, step, **fields))))

    def alerts(self, rule: str | None = None) -> list[Alert]:
        found = sorted(Keeper(self.state).alerts(), key=lambda a: (a.height, a.id))
        return [a for a in found if rule is None or a.rule == rule]

    def receipt(self, rid: bytes) -> Any:
        return Keeper(self.state).receipt(rid)


def world() -> tuple[MonitorLedger, bytes, tuple[bytes, ...]]:
    ledger = MonitorLedger()
    ledger.onboard()
    lots = tuple(ledger.intake(coil, NET) for coil in COILS)
    return ledger, ledger.issue(lots, NET * len(lots)), lots


def urn(n: int) -> str:
    return lot_urn(*COILS[n])


def mass(kg: int) -> tuple[epcis.SensorReport, ...]:
    return (epcis.SensorReport("Mass", str(kg), "KGM"),)


def weighed(net_kg: int) -> tuple[epcis.SensorReport, ...]:
    return (epcis.SensorReport("Mass", str(18_000 + net_kg), "KGM", "gross"),
            epcis.SensorReport("Mass", "18000", "KGM", "tare"))


def count(n: int) -> tuple[epcis.SensorReport, ...]:
    return (epcis.SensorReport("Count", str(n), "H87"),)


def flag(kind: str, value: int) -> tuple[epcis.SensorReport, ...]:
    return (epcis.SensorReport(kind, str(value), "C62"),)


def resolve(ledger: MonitorLedger, alert: Alert, code: str = "explained") -> None:
    ledger.ok((SUP, ResolveAlert(alert.id, code, "checked on site")))  # type: ignore[arg-type]


# --- R1 stock vs book (lidar) ------------------------------------------------------------------------


def test_r1_a_lidar_estimate_short_of_the_book_beyond_tolerance_raises_an_alert() -> None:
    ledger, rid, _ = world()
    lidar = ledger.device("LIDAR1", "lidar", ("A1",))
    book = 3 * NET  # tol = max(3 per mille x 69,000, 2 x 20 kg) = 207 kg
    assert ledger.report(lidar, "cycle_counting", reports=mass(book - 207)) == [FINAL]
    assert ledger.alerts("R1") == []
    ledger.report(lidar, "cycle_counting", reports=mass(book - 500))  # 0.7% short: HIGH, no hold
    [high] = ledger.alerts("R1")
    assert (high.severity, high.expected, high.observed, high.delta, high.tolerance, high.unit) == (
        "HIGH", book, book - 500, -500, 207, "kg")
    assert dict(high.tolerance_inputs) == {"quantity_kg": book, "permille": 3, "scale_interval_g": 20_000}
    assert high.held_bins == () and ledger.receipt(rid).held == ()
    ledger.report(lidar, "cycle_counting", reports=mass(book - 1_000))  # 1.4% short: CRITICAL, the bin is held
    critical = ledger.alerts("R1")[-1]
    assert (critical.severity, critical.held_bins, critical.bins) == ("CRITICAL", ("A1",), ("A1",))
    assert Keeper(ledger.state).held(ledger.receipt(rid))
    assert ledger.step((DEP, OfferTransfer(rid, BUYER.public_key))) == [HELD]
    ledger.report(lidar, "cycle_counting", reports=mass(book - 1_200))  # the same finding again: no new alert
    assert len(ledger.alerts("R1")) == 2
    assert violations(Keeper(ledger.state)) == []


def test_r1_the_councils_tolerance_replaces_the_default() -> None:
    ledger, _, _ = world()
    lidar = ledger.device("LIDAR1", "lidar", ("A1",))
    ledger.ok((A, SetMonitoring(10, 8 * 60, 18 * 60, 3, 360, 30)))  # 10 per mille: 690 kg
    ledger.report(lidar, "cycle_counting", reports=mass(3 * NET - 600))
    assert ledger.alerts("R1") == []
    ledger.report(lidar, "cycle_counting", reports=mass(3 * NET - 700))
    assert [a.tolerance for a in ledger.alerts("R1")] == [690]


# --- R2, R3, R5: goods leaving ----------------------------------------------------------------------


def test_r2_goods_through_the_gate_without_an_instruction_hold_their_receipt() -> None:
    ledger, rid, lots = world()
    gate = ledger.device("GATE1", "gate_reader", ("A1", "A2"))
    assert ledger.report(gate, "departing", epcs=(urn(0),)) == [FINAL]
    [alert] = ledger.alerts("R2")
    assert (alert.severity, alert.receipts, alert.lots, alert.held_receipts) == ("CRITICAL", (rid,), (lots[0],),
                                                                                 (rid,))
    assert ledger.receipt(rid).held == (alert.id,)


def test_r2_goods_leaving_under_a_surrender_raise_nothing() -> None:
    ledger, rid, _ = world()
    gate = ledger.device("GATE1", "gate_reader", ("A1", "A2"))
    ledger.ok((DEP, Surrender(rid, digest("collector"))))
    ledger.report(gate, "departing", epcs=(urn(0), urn(1), urn(2)))
    assert ledger.alerts() == []


def test_r3_more_weighed_out_than_instructed_beyond_tolerance() -> None:
    ledger, rid, _ = world()
    ledger.ok((DEP, Surrender(rid, digest("collector"))))
    wb = ledger.device("WB9", "weighbridge", ("A1",))
    ledger.report(wb, "shipping", epcs=(urn(0),), reports=weighed(NET + 69))  # tol max(69, 40) = 69 kg
    assert ledger.alerts() == []
    ledger.report(wb, "shipping", epcs=(urn(1),), reports=weighed(NET + 70))
    [alert] = ledger.alerts("R3")
    assert (alert.severity, alert.expected, alert.observed, alert.tolerance) == ("CRITICAL", NET, NET + 70, 69)
    assert ledger.receipt(rid).held == (alert.id,)


def test_r5_a_tagged_coil_leaving_the_geofence_without_an_instruction() -> None:
    ledger, rid, _ = world()
    tag = ledger.device("TAG1", "gnss_tag", ("A1",))
    ledger.report(tag, "departing", epcs=(urn(2),), disposition="in_transit")
    [alert] = ledger.alerts("R5")
    assert alert.severity == "CRITICAL" and ledger.receipt(rid).held == (alert.id,)
    assert ledger.alerts("R2") == []


def test_r5_a_tagged_coil_leaving_under_a_surrender_raises_nothing() -> None:
    ledger, rid, _ = world()
    tag = ledger.device("TAG1", "gnss_tag", ("A1",))
    ledger.ok((DEP, Surrender(rid, digest("collector"))))
    ledger.report(tag, "departing", epcs=(urn(2),), disposition="in_transit")
    assert ledger.alerts() == []


# --- R6 count mismatch ----------------------------------------------------------------------------


def test_r6_two_consecutive_count_mismatches_hold_the_bin() -> None:
    ledger, rid, _ = world()
    camera = ledger.device("CAM1", "camera", ("A1",))
    ledger.report(camera, "cycle_counting", reports=count(3))
    ledger.report(camera, "cycle_counting", reports=count(2))  # one mismatch is not confirmed
    ledger.report(camera, "cycle_counting", reports=count(3))  # and a match starts again
    ledger.report(camera, "cycle_counting", reports=count(2))
    assert ledger.alerts() == []
    ledger.report(camera, "cycle_counting", reports=count(2))
    [alert] = ledger.alerts("R6")
    assert (alert.severity, alert.expected, alert.observed, alert.unit, alert.held_bins) == (
        "HIGH", 3, 2, "pieces", ("A1",))
    assert ledger.step((DEP, RequestPledge(rid, BANK.public_key, "facility-1"))) == [HELD]


def test_r6_a_tampered_camera_raises_its_fault_and_its_counts_still_count() -> None:
    """A camera count with a tamper flag goes through every rule (R7, then R6); without one it
    waits with its count alone: both paths keep the same run of mismatches."""
    ledger, _, _ = world()
    camera = ledger.device("CAM1", "camera", ("A1",))
    ledger.report(camera, "cycle_counting", reports=(*flag("Tamper", 1), *count(2)))
    assert [a.rule for a in ledger.alerts()] == ["R7"]
    ledger.report(camera, "cycle_counting", reports=count(2))  # the second mismatch in a row
    [r6] = ledger.alerts("R6")
    assert (r6.expected, r6.observed, r6.devices, r6.held_bins) == (3, 2, (camera,), ("A1",))
    ledger.report(camera, "cycle_counting", reports=(*flag("Tamper", 1), *count(3)))  # a match ends the run
    assert len(ledger.alerts("R7")) == 2
    ledger.report(camera, "cycle_counting", reports=count(2))
    assert len(ledger.alerts("R6")) == 1


# --- R7 device health -----------------------------------------------------------------------------


def test_r7_a_heartbeat_gap_beyond_the_factor_raises_once() -> None:
    ledger, _, _ = world()
    door = ledger.device("DOOR1", "door", ("A1",), heartbeat_ms=60_000)
    for _ in range(4):  # every 60 s: never late
        ledger.time += 59_000
        assert ledger.report(door, "sensor_reporting", reports=flag("Tamper", 0)) == [FINAL]
    assert ledger.alerts() == []
    ledger.time += 3 * 60_000
    ledger.step()
    [alert] = ledger.alerts("R7")
    assert alert.severity == "MEDIUM" and alert.unit == "ms" and alert.expected == 180_000 and alert.observed > 180_000
    ledger.time += 10 * 60_000
    ledger.step()
    assert len(ledger.alerts("R7")) == 1  # once, until the device reports again


def test_r7_a_tamper_flag_and_an_expired_calibration() -> None:
    ledger, _, _ = world()
    door = ledger.device("DOOR1", "door", ("A1",), expires_ms=ledger.time + 60_000)
    ledger.report(door, "sensor_reporting", reports=flag("Tamper", 1))
    [tamper] = ledger.alerts("R7")
    assert "tamper" in tamper.summary and tamper.evidence
    ledger.time += 60_000
    ledger.step()
    expired = ledger.alerts("R7")[-1]
    assert "calibration" in expired.summary and expired.devices == (door,)
    assert ledger.report(door, "sensor_reporting", reports=flag("Tamper", 0)) == [
        rejected("warehouse.device_uncalibrated")]


def test_r7_is_high_when_the_device_watches_pledged_goods() -> None:
    ledger, rid, _ = world()
    door = ledger.device("DOOR1", "door", ("A1",))
    ledger.ok((DEP, RequestPledge(rid, BANK.public_key, "facility-1")))
    offer = ledger.ids[-1]
    ledger.ok((BANK, ConfirmPledge(rid, offer)), (WH, Countersign(rid, offer)))
    ledger.report(door, "sensor_reporting", reports=flag("Tamper", 1))
    assert [a.severity for a in ledger.alerts("R7")] == ["HIGH"]


# --- R8 access ------------------------------------------------------------------------------------


def _local(ledger: MonitorLedger, hour: int) -> None:
    """Move the clock so that the next checkpoint falls at this hour, local time (UTC+8)."""
    day_start = (ledger.time + 8 * 3600_000) // DAY * DAY - 8 * 3600_000 + DAY
    ledger.time = day_start + hour * 3600_000 - 1_000


def test_r8_a_door_opened_at_night_without_a_work_order() -> None:
    ledger, _, _ = world()
    door = ledger.device("DOOR1", "door", ("A1",))
    _local(ledger, 10)
    ledger.report(door, "sensor_reporting", reports=flag("Contact", 1))  # in business hours
    _local(ledger, 3)
    ledger.report(door, "sensor_reporting", reports=flag("Contact", 0))  # closed
    ledger.report(door, "sensor_reporting", reports=flag("Contact", 1),
                  transactions=(epcis.BizTransaction("work_order", "urn:bl:wo:2026-118"),))
    assert ledger.alerts() == []
    ledger.report(door, "sensor_reporting", reports=flag("Contact", 1))
    [alert] = ledger.alerts("R8")
    assert (alert.severity, alert.observed) == ("MEDIUM", 3 * 60)


# --- R9 stocktake ------------------------------------------------------------------------------------


def test_r9_a_stocktake_that_differs_from_the_book() -> None:
    ledger, rid, _ = world()
    assert ledger.step((WH, RecordStocktake(WH.public_key, "A1", 3 * NET, 3))) == [
        rejected("warehouse.not_supervisor")]
    ledger.ok((SUP, RecordStocktake(WH.public_key, "A1", 3 * NET - 100, 3, "quarterly")))
    assert ledger.alerts() == []
    ledger.ok((SUP, RecordStocktake(WH.public_key, "A1", 3 * NET, 2)))  # a coil missing by count
    [high] = ledger.alerts("R9")
    assert high.severity == "HIGH" and high.evidence == (ledger.ids[-1],)
    ledger.ok((SUP, RecordStocktake(WH.public_key, "A1", 2 * NET, 2)))
    critical = ledger.alerts("R9")[-1]
    assert critical.severity == "CRITICAL" and critical.held_bins == ("A1",)
    assert ledger.step((DEP, Surrender(rid, digest("collector")))) == [HELD]


# --- R10 duplicate identity -----------------------------------------------------------------------------


def _second_warehouse(ledger: MonitorLedger) -> str:
    ledger.ok((A, RegisterParty(SUP2.public_key, "supervisor", "Supervisor 2", USCC, "Shanghai")))
    ledger.ok((A, RegisterWarehouse(WH2.public_key, "Tianjin Steel Store", USCC, "Tianjin",
                                    "urn:epc:id:sgln:6901234.00002.0", SUP2.public_key, ("B1",))))
    return ledger.device("WB2", "weighbridge", ("B1",), warehouse=WH2, supervisor=SUP2)


def test_r10_a_coil_weighed_in_at_a_second_warehouse_holds_its_receipt_at_the_first() -> None:
    ledger, rid, lots = world()
    wb2 = _second_warehouse(ledger)
    ledger.report(wb2, "receiving", epcs=(lot_urn("MILL01", "H24A1187", "C77"),), reports=weighed(NET))
    assert ledger.alerts() == []
    ledger.report(wb2, "receiving", epcs=(urn(1),), reports=weighed(NET))
    [alert] = ledger.alerts("R10")
    assert (alert.severity, alert.warehouse, alert.lots, alert.held_receipts) == ("CRITICAL", WH.public_key,
                                                                                  (lots[1],), (rid,))


# --- R11 ageing --------------------------------------------------------------------------------------------


def test_r11_a_coil_past_its_shelf_life_and_a_receipt_near_its_end() -> None:
    ledger = MonitorLedger()
    ledger.onboard()
    ledger.ok((A, SetMonitoring(0, 8 * 60, 18 * 60, 3, 90, 30)))
    old = ledger.intake(COILS[0], NET)  # produced 2026-10-01: 90 days on 2026-12-30
    reading = ledger.reading("receiving", COILS[1], NET)
    ledger.ok((WB, RecordReading(reading)))
    ledger.ok((WH, RegisterLot(*COILS[1], "coil", "Q235B", "5.75x1500", 1, epcis.event_hash(reading),
                               digest("mill"), "2026-11-20", "A1")))
    goods = Goods("hot-rolled coil", "5.75x1500", "Q235B", "MILL01", "bare coil", "stencil", 1, NET)
    ledger.ok((WH, ProposeReceipt(1, DEP.public_key, (old,), goods, Terms(3, T0 + 50 * DAY, 50, "CNY"), True,
                                  digest("notice"), "Qingdao", "clerk")))
    ledger.ok((WH, ProposeReceipt(2, DEP.public_key, (lot_key(*COILS[1]),), goods, Terms(3, T0 + YEAR, 50, "CNY"),
                                  True, digest("notice"), "Qingdao", "clerk")))
    ledger.time += 15 * DAY
    ledger.step()
    assert ledger.alerts() == []
    ledger.time += 17 * DAY  # past 2026-12-30, and within 30 days of receipt 1's end
    ledger.step()
    found = ledger.alerts("R11")
    first = receipt_id(WH.public_key, 1)
    assert sorted((a.severity, a.lots, a.receipts) for a in found) == sorted([
        ("LOW", (old,), (first,)), ("LOW", (), (first,))])
    assert all(a.held_receipts == () and a.held_bins == () for a in found)


# --- R12 over-issuance -------------------------------------------------------------------------------------


def test_r12_receipts_beyond_every_bins_verified_stock_hold_the_warehouse() -> None:
    ledger, _, _ = world()
    ledger.ok((SUP, RecordStocktake(WH.public_key, "A1", 3 * NET, 3)))
    ledger.ok((SUP, RecordStocktake(WH.public_key, "A2", 0, 0)))
    assert ledger.alerts() == []  # every bin verified, and the receipts are covered
    ledger.ok((SUP, RecordStocktake(WH.public_key, "A1", 2 * NET, 2)))
    [alert] = ledger.alerts("R12")
    assert (alert.severity, alert.expected, alert.observed, alert.held_bins) == ("CRITICAL", 2 * NET, 3 * NET,
                                                                                  ("A1", "A2"))
    assert sorted(a.rule for a in ledger.alerts()) == ["R12", "R9"]


def test_r12_goods_weighed_in_after_a_count_are_verified_by_their_weighing() -> None:
    """A count is rolled forward by the weighed lots booked since: intake after a stocktake and
    a receipt over it are no over-issuance; a shortage found by the next count still is."""
    ledger, _, _ = world()
    ledger.ok((SUP, RecordStocktake(WH.public_key, "A1", 3 * NET, 3)))
    ledger.ok((SUP, RecordStocktake(WH.public_key, "A2", 0, 0)))
    more = (("MILL01", "H24A1187", "C21"), ("MILL01", "H24A1187", "C22"))
    ledger.issue(tuple(ledger.intake(coil, NET) for coil in more), 2 * NET)
    assert ledger.alerts("R12") == []
    stock = Keeper(ledger.state).bin_stock(WH.public_key, "A1")
    assert stock.verified_kg == stock.book_kg == 5 * NET
    ledger.ok((SUP, RecordStocktake(WH.public_key, "A1", 4 * NET, 4)))  # one coil gone
    [alert] = ledger.alerts("R12")
    assert (alert.expected, alert.observed) == (4 * NET, 5 * NET)


def test_r4_is_impossible_a_proposal_states_the_sum_of_its_lots() -> None:
    ledger = MonitorLedger()
    ledger.onboard()
    lot = ledger.intake(COILS[0], NET)
    goods = Goods("hot-rolled coil", "5.75x1500", "Q235B", "MILL01", "bare coil", "stencil", 1, NET + 1)
    assert ledger.step((WH, ProposeReceipt(1, DEP.public_key, (lot,), goods, Terms(3, T0 + YEAR, 50, "CNY"), True,
                                           digest("notice"), "Qingdao", "clerk"))) == [
        rejected("warehouse.quantity_mismatch")]


# --- HELD: what it blocks, and the supervisor's resolution -----------------------------------------------


def _hold(ledger: MonitorLedger, rid: bytes) -> Alert:
    gate = "urn:epc:id:giai:6901234.GATE1"
    ledger.report(gate, "departing", epcs=(urn(0),))
    alert = ledger.alerts("R2")[-1]
    assert ledger.receipt(rid).held == (alert.id,)
    return alert


def test_held_refuses_every_move_it_blocks_and_resolution_lifts_it() -> None:
    ledger, rid, lots = world()
    ledger.device("GATE1", "gate_reader", ("A1", "A2"))
    other = ledger.issue((ledger.intake(("MILL01", "H24A1187", "C08"), NET),), NET)
    ledger.ok((DEP, OfferTransfer(rid, BUYER.public_key)))
    offer = ledger.ids[-1]
    alert = _hold(ledger, rid)
    assert ledger.step((BUYER, AcceptTransfer(rid, offer))) == [HELD]
    assert ledger.step((WH, Countersign(rid, offer))) == [HELD]
    ledger.ok((DEP, CancelOffer(rid, offer)))  # withdrawing is not a move of the goods
    for op in (OfferTransfer(rid, BUYER.public_key), RequestPledge(rid, BANK.public_key, "facility-1"),
               SplitReceipt(rid, ((lots[0],), (lots[1], lots[2]))), Surrender(rid, digest("collector")),
               MergeReceipts((rid, other))):
        assert ledger.step((DEP, op)) == [HELD], op
    ledger.intake(("MILL01", "H24A1187", "C09"), NET)  # a new coil in the same bin: A1 itself is not held by R2
    assert query_holds(ledger.state, {"warehouse": WH.public_key.hex()})["receipts"][0]["held"] == [alert.id.hex()]
    assert ledger.step((BUYER, ResolveAlert(alert.id, "explained", "x"))) == [rejected("warehouse.not_supervisor")]
    assert ledger.step((SUP, ResolveAlert(digest("none"), "explained", "x"))) == [rejected("warehouse.alert_unknown")]
    resolve(ledger, alert, "false_positive")
    assert ledger.step((SUP, ResolveAlert(alert.id, "explained", "x"))) == [rejected("warehouse.alert_resolved")]
    assert ledger.receipt(rid).held == ()
    resolved = Keeper(ledger.state).alert(alert.id)
    assert resolved is not None and resolved.status == "resolved" and resolved.resolution is not None
    assert (resolved.resolution.by, resolved.resolution.code) == (SUP.public_key, "false_positive")
    ledger.ok((DEP, OfferTransfer(rid, BUYER.public_key)))
    offer = ledger.ids[-1]
    ledger.ok((BUYER, AcceptTransfer(rid, offer)), (WH, Countersign(rid, offer)))
    assert ledger.receipt(rid).holder == BUYER.public_key
    assert violations(Keeper(ledger.state)) == []


def test_held_blocks_confirming_and_releasing_a_pledge() -> None:
    ledger, rid, _ = world()
    ledger.device("GATE1", "gate_reader", ("A1", "A2"))
    ledger.ok((DEP, RequestPledge(rid, BANK.public_key, "facility-1")))
    offer = ledger.ids[-1]
    alert = _hold(ledger, rid)
    assert ledger.step((BANK, ConfirmPledge(rid, offer))) == [HELD]
    resolve(ledger, alert)
    ledger.ok((BANK, ConfirmPledge(rid, offer)), (WH, Countersign(rid, offer)))
    alert = _hold(ledger, rid)
    assert ledger.step((BANK, ReleasePledge(rid))) == [HELD]
    resolve(ledger, alert)
    ledger.ok((BANK, ReleasePledge(rid)))


def test_a_held_bin_refuses_a_new_receipt_over_its_goods() -> None:
    ledger = MonitorLedger()
    ledger.onboard()
    lot = ledger.intake(COILS[0], NET)
    ledger.ok((SUP, RecordStocktake(WH.public_key, "A1", 0, 0)))  # all of it missing: CRITICAL, A1 held
    [alert] = ledger.alerts("R9")
    goods = Goods("hot-rolled coil", "5.75x1500", "Q235B", "MILL01", "bare coil", "stencil", 1, NET)
    propose = ProposeReceipt(1, DEP.public_key, (lot,), goods, Terms(3, T0 + YEAR, 50, "CNY"), True,
                             digest("notice"), "Qingdao", "clerk")
    assert ledger.step((WH, propose)) == [rejected("warehouse.bin_held")]
    assert violations(Keeper(ledger.state)) == []
    resolve(ledger, alert, "device_fault")
    ledger.ok((WH, propose))
    assert violations(Keeper(ledger.state)) == []


# --- hostile inputs ---------------------------------------------------------------------------------------


def test_a_device_reports_only_on_the_bins_it_covers() -> None:
    ledger, _, _ = world()
    wb2 = _second_warehouse(ledger)
    camera_a2 = ledger.device("CAM2", "camera", ("A2",))
    # another warehouse's gate key names this warehouse's coil; this warehouse's A2 camera names a coil in A1
    assert ledger.step((ledger.devices[wb2][0], RecordReading(ledger.event(wb2, "shipping", epcs=(urn(0),),
                                                                           reports=weighed(NET))))) == [
        rejected("warehouse.location_not_covered")]
    assert ledger.report(camera_a2, "departing", epcs=(urn(0),)) == [rejected("warehouse.location_not_covered")]
    assert ledger.alerts() == []


def test_replayed_and_back_dated_readings_are_refused() -> None:
    ledger, _, _ = world()
    door = ledger.device("DOOR1", "door", ("A1",))
    signer, _ = ledger.devices[door]
    first = ledger.event(door, "sensor_reporting", reports=flag("Tamper", 1))
    assert ledger.step((signer, RecordReading(first))) == [FINAL]
    assert ledger.step((signer, RecordReading(first))) == [rejected("warehouse.out_of_sequence")]
    old = ledger.event(door, "sensor_reporting", reports=flag("Tamper", 1), at=ledger.time - 10 * 60_000)
    assert ledger.step((signer, RecordReading(old))) == [rejected("warehouse.clock_skew")]
    assert len(ledger.alerts("R7")) == 1  # the replay and the back-dated copy raised nothing


# --- determinism and the reads -----------------------------------------------------------------------------


def _scenario() -> MonitorLedger:
    ledger, rid, _ = world()
    lidar = ledger.device("LIDAR1", "lidar", ("A1",))
    gate = ledger.device("GATE1", "gate_reader", ("A1", "A2"))
    door = ledger.device("DOOR1", "door", ("A1",), heartbeat_ms=30_000)
    signers = {d: ledger.devices[d][0] for d in (lidar, gate, door)}
    ledger.step((signers[lidar], RecordReading(ledger.event(lidar, "cycle_counting", reports=mass(50_000)))),
                (signers[gate], RecordReading(ledger.event(gate, "departing", epcs=(urn(1),)))),
                (SUP, RecordStocktake(WH.public_key, "A2", 0, 0)),
                (signers[door], RecordReading(ledger.event(door, "sensor_reporting", reports=flag("Tamper", 1)))))
    ledger.time += 5 * 60_000
    ledger.step((DEP, OfferTransfer(rid, BUYER.public_key)))
    return ledger


def test_two_executions_of_the_same_entries_agree_on_every_alert_and_state_root() -> None:
    ledger = _scenario()
    again = ledger.replay()
    assert sorted(a.rule for a in ledger.alerts()) == ["R1", "R12", "R2", "R7", "R7"]
    assert sorted(Keeper(again).alerts(), key=lambda a: a.id) == sorted(ledger.alerts(), key=lambda a: a.id)
    assert again.root() == ledger.state.root()


def test_the_reads_alerts_alert_holds_devices_stock() -> None:
    ledger = _scenario()
    wh = WH.public_key.hex()
    listed = query_alerts(ledger.state, {"warehouse": wh, "status": "open"})
    assert listed["count"] == len(ledger.alerts()) and listed["count"] >= 3
    critical = query_alerts(ledger.state, {"severity": "CRITICAL", "rule": "R2"})["alerts"]
    assert len(critical) == 1 and critical[0]["held_receipts"] == [ledger.alerts("R2")[0].held_receipts[0].hex()]
    one = query_alert(ledger.state, {"id": critical[0]["id"]})["alert"]
    assert one["rule"] == "R2" and one["rule_version"] == 1 and one["status"] == "open"
    devices = {d["device_id"]: d for d in query_devices(ledger.state, {"warehouse": wh})["devices"]}
    assert devices["urn:epc:id:giai:6901234.DOOR1"]["open_alerts"] == 2  # tamper, then silence
    stock = query_stock(ledger.state, {"warehouse": wh})
    a1 = stock["bins"][0]
    assert (a1["bin"], a1["book_kg"], a1["verified_kg"], a1["verified_source"]) == ("A1", 3 * NET, 50_000, "lidar")
    assert a1["held_by"] and stock["owners"][0]["held_kg"] == 3 * NET
    assert violations(Keeper(ledger.state)) == []
    for bad in ({"status": "closed"}, {"severity": "SEVERE"}, {"rule": "R13"}, {"warehouse": "nope"}):
        with pytest.raises(BilayerError):
            query_alerts(ledger.state, bad)
    with pytest.raises(BilayerError):
        query_stock(ledger.state, {})
    with pytest.raises(BilayerError):
        query_alert(ledger.state, {"id": "00" * 32})


def test_inv13_a_hold_without_its_open_alert_is_a_violation() -> None:
    import msgspec

    ledger, rid, _ = world()
    k = Keeper(ledger.state)
    k.put_receipt(msgspec.structs.replace(ledger.receipt(rid), held=(digest("no such alert"),)))
    assert [v.split(":")[0] for v in violations(k)] == ["INV-13"]




def test_only_the_council_sets_the_policy_and_stocktakes_name_a_bin_of_the_warehouse() -> None:
    ledger, _, _ = world()
    assert ledger.step((WH, SetMonitoring(5, 8 * 60, 18 * 60, 3, 360, 30))) == [rejected("warehouse.not_council")]
    assert ledger.step((SUP, RecordStocktake(WH.public_key, "Z9", 0, 0))) == [rejected("warehouse.unknown_bin")]
    assert ledger.step((SUP, RecordStocktake(DEP.public_key, "A1", 0, 0))) == [rejected("warehouse.wrong_role")]
    assert Keeper(ledger.state).policy().tolerance_permille == 0
    ledger.ok((A, SetMonitoring(5, 7 * 60, 19 * 60, 4, 180, 14)))
    assert Keeper(ledger.state).policy().heartbeat_factor == 4


def test_the_time_index_is_walked_only_once_something_can_be_due(monkeypatch: pytest.MonkeyPatch) -> None:
    """`due` returns exactly the entries at or before now, in time order, whether or not its floor
    let it skip the walk; a removed entry leaves the floor as a lower bound, never later."""
    from bilayer.apps.warehouse.keeper import DEADLINE, DUE_FLOOR

    k = Keeper(State())
    assert k.due(DEADLINE, 10**12) == []
    for ms, subject in ((5_000, b"b"), (3_000, b"a"), (9_000, b"c")):
        k.set_deadline(DEADLINE, ms, b"h", subject)
    assert k._read(DUE_FLOOR + DEADLINE, int) is None  # not walked yet: the next `due` walks
    k.set_deadline(DEADLINE, 3_000, b"h", b"a", on=False)
    assert k.due(DEADLINE, 2_999) == []
    assert k._read(DUE_FLOOR + DEADLINE, int) == 5_000  # the earliest left
    assert k.due(DEADLINE, 5_000) == [(5_000, b"h", b"b")]
    assert k._read(DUE_FLOOR + DEADLINE, int) == 9_000  # the walk moved it to the earliest left
    walked: list[bytes] = []
    scan = State.scan
    monkeypatch.setattr(State, "scan", lambda state, prefix: walked.append(prefix[-1:]) or scan(state, prefix))
    assert k.due(DEADLINE, 8_999) == [] and walked == []  # nothing can be due: no walk
    k.set_deadline(DEADLINE, 7_000, b"c", b"d")  # an earlier entry lowers the floor
    assert k.due(DEADLINE, 9_000) == [(7_000, b"c", b"d"), (9_000, b"h", b"c")] and walked == [DEADLINE]
    assert k._read(DUE_FLOOR + DEADLINE, int) is None  # the index is empty: no floor is kept
    before = k.state.root()
    assert k.due(DEADLINE, 10**12) == [] and k.state.root() == before  # nothing due writes nothing

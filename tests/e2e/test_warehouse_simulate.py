"""The warehouse simulator: a plan follows from its seed alone, every fault is planned with the
rule it must trigger, the honest world agrees with its own book and passes every rule of the
operations, the whole plan runs through the state machine, the score reads what the nodes
report; and one seeded run on a 4-validator localnet of real processes."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bilayer.apps.warehouse import epcis
from bilayer.apps.warehouse import simulate as sim
from bilayer.apps.warehouse.epcis import net_weight
from bilayer.apps.warehouse.keeper import Keeper
from bilayer.apps.warehouse.operations import OPERATIONS, RecordReading
from bilayer.apps.warehouse.records import lot_key_of_urn
from bilayer.node.config import LimitsConfig
from tests.support.cli import UNREACHABLE, bilayer
from tests.support.localnet import running_localnet

ALL = ("all",)


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    first = sim.plan(5, warehouses=3, days=7, day_seconds=10, faults=ALL)
    time.sleep(0.01)  # the plan reads no clock
    again = sim.plan(5, warehouses=3, days=7, day_seconds=10, faults=ALL)
    other = sim.plan(6, warehouses=3, days=7, day_seconds=10, faults=ALL)
    assert first.steps == again.steps and first.faults == again.faults and first.digest() == again.digest()
    assert first.digest() != other.digest()
    assert [s.body for s in first.steps[:200]] != [s.body for s in other.steps[:200]]
    assert [s.at_ms for s in first.steps] == sorted(s.at_ms for s in first.steps)
    assert all(dep < step.n for step in first.steps for dep in (*step.after, *step.waits)), "only earlier steps"


def test_every_fault_kind_is_planned_with_the_rule_it_must_trigger() -> None:
    plan = sim.plan(5, warehouses=3, days=7, day_seconds=10, faults=ALL)
    by_kind: dict[str, list[sim.Fault]] = {}
    for fault in plan.faults:
        by_kind.setdefault(fault.kind, []).append(fault)
    assert set(by_kind) == set(sim.FAULT_KINDS)
    assert by_kind["theft"][0].rules == ("R2", "R5", "R6")
    assert by_kind["substitution"][0].rules == ("R1", "R9")
    assert by_kind["drift"][0].rules == ("R3",)
    assert by_kind["blackout"][0].rules == ("R7",)
    assert by_kind["unauthorised_exit"][0].rules == ("R2",)
    assert [f.rules for f in by_kind["price_crash"]] == [("WATCH",), ("MARGIN_CALL",)]
    steps = plan.steps

    def readings(device_id: str) -> list[sim.Step]:
        return [s for s in steps if s.kind == "warehouse.reading" and s.body["reading"]["device_id"] == device_id]

    theft = by_kind["theft"][0]
    stolen = theft.lots[0]
    departures = [s for s in steps if s.fault == "theft"]
    assert {s.signer.split("-")[1][:4] for s in departures} == {"gate", "gnss"}
    assert all(s.body["reading"]["epcs"] == [stolen] and s.body["reading"]["biz_step"] == "departing"
               for s in departures)
    assert not [s for s in steps if s.kind == "warehouse.surrender" and s.at_ms < departures[0].at_ms
                and s.signer == "dep" + theft.warehouse[2:] and _receipt_lots(plan, s) & {stolen}]
    camera = next(d for d in plan.devices if d.name == f"{theft.warehouse}-cam-{theft.bin}")
    counts = [int(s.body["reading"]["reports"][0]["value"]) for s in readings(camera.device_id)]
    after = [s for s in readings(camera.device_id) if s.at_ms > theft.entry_ms]
    assert len(after) >= 2 and counts[-1] < max(counts), "the camera counts the bin short twice after the theft"

    exit_ = by_kind["unauthorised_exit"][0]
    shipped = steps[exit_.entry_step]
    assert shipped.fault == "unauthorised_exit" and shipped.body["reading"]["biz_step"] == "shipping"
    assert not [s for s in steps if s.kind == "warehouse.surrender" and _receipt_lots(plan, s) & set(exit_.lots)]

    drift = by_kind["drift"][0]
    weighing = steps[drift.entry_step].body["reading"]
    net = _net(weighing)
    booked = sum(_booked(plan, urn) for urn in drift.lots)
    assert net > booked * 1003 // 1000 + 40, "2% over the instruction, beyond 0.3% and twice the scale interval"

    blackout = by_kind["blackout"][0]
    dark = next(d for d in plan.devices if d.name == blackout.device)
    last = max(s.at_ms for s in readings(dark.device_id))
    assert last == steps[blackout.entry_step].at_ms and blackout.entry_ms == last + 3 * dark.heartbeat_ms
    assert steps[-1].at_ms > blackout.entry_ms, "the run lasts past the moment the gap shows"

    substitution = by_kind["substitution"][0]
    scan = steps[substitution.entry_step].body["reading"]
    lidar_book = sum(_booked_in_bin_before(plan, substitution.warehouse, substitution.bin, substitution.entry_step))
    assert _net(scan) < lidar_book * 98 // 100
    stocktake = next(s for s in steps if s.kind == "warehouse.record_stocktake")
    assert stocktake.fault == "substitution" and stocktake.body["counted_kg"] < lidar_book

    prices = {d: s.body["price"].amount for s in steps if s.kind == "warehouse.publish_price"
              and s.body["spec"] == sim.HRC_SPECS[0] for d in [s.body["day"].days]}
    moves = [abs(prices[d] - prices[d - 1]) * 10_000 / prices[d - 1] for d in range(1, plan.days)]
    assert max(moves) <= sim.DAILY_LIMIT_BP, "every daily move inside the exchange's limit"
    watch, call = by_kind["price_crash"]
    base = prices[plan.days - 7]
    assert prices[plan.days - 2] == base * 88 // 100 and prices[plan.days - 1] < prices[plan.days - 2] * 98 // 100
    assert plan.days - 7 < watch.day < call.day == plan.days - 1, "WATCH on the way down, the call at the end"


def _net(reading: dict[str, Any]) -> int:
    masses = {r["weighing"]: int(r["value"]) for r in reading["reports"] if r["type"] == "Mass"}
    return masses["net"] if "net" in masses else masses["gross"] - masses["tare"]


def _booked(plan: sim.Plan, urn: str) -> int:
    lot = next(s for s in plan.steps if s.kind == "warehouse.register_lot" and
               f"urn:bl:lot:{s.body['mill']}:{s.body['heat']}:{s.body['coil']}" == urn)
    intake = plan.steps[lot.body["intake_event"].step].body["reading"]
    return _net(intake)


def _booked_in_bin_before(plan: sim.Plan, warehouse: str, bin_name: str, before: int) -> list[int]:
    """The nets of the lots booked into a bin and not shipped before a step (from the plan alone)."""
    booked: dict[str, int] = {}
    for s in plan.steps[:before]:
        if s.kind == "warehouse.register_lot" and s.signer == warehouse and s.body["bin"] == bin_name:
            urn = f"urn:bl:lot:{s.body['mill']}:{s.body['heat']}:{s.body['coil']}"
            booked[urn] = _net(plan.steps[s.body["intake_event"].step].body["reading"])
        if s.kind == "warehouse.cancel_receipt" and s.signer == warehouse:
            for urn in _receipt_lots(plan, s):
                booked.pop(urn, None)
    return list(booked.values())


def _receipt_lots(plan: sim.Plan, step: sim.Step) -> set[str]:
    ref = step.body["receipt"]
    proposal = next(s for s in plan.steps if s.kind == "warehouse.propose_receipt" and s.signer == ref.warehouse
                    and s.body["number"] == ref.number)
    urns = set()
    for key in proposal.body["lots"]:
        lot = next(s for s in plan.steps if s.kind == "warehouse.register_lot" and s.signer == ref.warehouse
                   and sim.lot_key(s.body["mill"], s.body["heat"], s.body["coil"]) == key)
        urns.add(f"urn:bl:lot:{lot.body['mill']}:{lot.body['heat']}:{lot.body['coil']}")
    return urns


@pytest.mark.parametrize(("seed", "warehouses", "days"), [(9, 2, 4), (10, 3, 3), (11, 1, 6)])
def test_the_honest_world_passes_every_rule_and_agrees_with_its_book(seed: int, warehouses: int, days: int) -> None:
    """No faults: every operation of this build passes its stateless rules and executes; cameras
    count exactly the in-stock coils of their bin, lidars agree within 0.2%, outbound weighings
    within the scale interval, the door opens on a work order, every device reports within its
    heartbeat interval."""
    plan = sim.plan(seed, warehouses=warehouses, days=days, day_seconds=10)
    assert not plan.faults and not [s for s in plan.steps if s.fault]
    devices = {d.device_id: d for d in plan.devices}
    kinds = {op.KIND for op in OPERATIONS}
    seen = {"camera": 0, "lidar": 0, "shipping": 0, "door": 0}

    def check(step: sim.Step, op: Any, keeper: Keeper) -> None:
        op.check_body()
        if not isinstance(op, RecordReading):
            return
        reading = op.reading
        epcis.check_reading(reading)
        device = devices[reading.device_id]
        warehouse = sim.rehearsal_key(device.warehouse)
        if reading.biz_step == "cycle_counting":
            lots = [x for x in keeper.lots(warehouse) if x.bin == device.bins[0] and x.status == "in_stock"]
            value = int(reading.reports[0].value)
            if device.kind == "camera":
                assert value == sum(x.pieces for x in lots), step
                seen["camera"] += 1
            else:
                book = sum(x.net_kg for x in lots)
                assert abs(value - book) * 1000 <= 2 * book, (step, value, book)
                seen["lidar"] += 1
        if reading.biz_step == "shipping":
            nets = [keeper.lot(k).net_kg for k in (lot_key_of_urn(e) for e in reading.epcs) if k]  # type: ignore[union-attr]
            assert abs((net_weight(reading) or 0) - sum(nets)) <= 20
            seen["shipping"] += 1
        if device.kind == "door" and reading.reports[0].type == "Contact" and reading.reports[0].value == "1":
            assert [t.type for t in reading.transactions] == ["work_order"]
            seen["door"] += 1

    outcomes = sim.rehearse(plan, check).outcomes
    assert all(seen.values()), seen
    lacking: set[int] = set()  # steps of a kind this build lacks, and the steps that follow them
    for step in plan.steps:
        if step.kind not in kinds or lacking & set(step.after):
            lacking.add(step.n)
        assert outcomes[step.n] == ("UNSUPPORTED" if step.n in lacking else "FINAL"), (step, outcomes[step.n])
    for device in plan.devices:
        times = [s.at_ms for s in plan.steps if s.signer == device.name]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert times and max(gaps) <= device.heartbeat_ms * 3 // 2, (device.name, max(gaps))


def test_faults_are_evidence_the_state_machine_accepts() -> None:
    """A fault is something the devices see, not a refused operation: the state machine
    takes every step of a plan with all faults (what notices them is reconciliation)."""
    plan = sim.plan(5, warehouses=3, days=7, day_seconds=10, faults=ALL)
    kinds = {op.KIND for op in OPERATIONS}
    outcomes = sim.rehearse(plan).outcomes
    refused = {n: code for n, code in outcomes.items() if code not in ("FINAL", "UNSUPPORTED")}
    assert not refused, [(plan.steps[n], code) for n, code in list(refused.items())[:5]]
    assert {plan.steps[n].kind for n, code in outcomes.items() if code == "FINAL"} <= kinds


@pytest.mark.parametrize(("seed", "days"), [(21, 7), (5, 8), (33, 9)])
def test_a_rehearsal_catches_every_fault_by_its_rule_and_nothing_else(seed: int, days: int) -> None:
    """This build's own rules, no network: every fault of every kind is caught by each of the
    rules it must trigger, every alert is explained by a fault, every step is FINAL; the
    physical faults hold goods, and the price crash takes its facility to WATCH, then to
    MARGIN_CALL, on the days the plan says."""
    plan = sim.plan(seed, warehouses=3, days=days, day_seconds=8, faults=ALL)
    rehearsal = sim.rehearse(plan)
    result = rehearsal.score(plan)
    assert result["monitoring"] and result["finance"]
    assert result["outcomes"] == {"FINAL": len(plan.steps)}, result["rejected"]
    assert {row["fault"] for row in result["faults"]} == set(sim.FAULT_KINDS)
    for row in result["faults"]:
        assert row["missed"] == [] and sorted(row["detected"]) == sorted(row["rules"]), row
        if row["fault"] in ("theft", "unauthorised_exit", "drift", "substitution"):
            assert row["held_s"], row
    assert result["false_positives"] == []
    crash = [f for f in plan.faults if f.kind == "price_crash"]
    bank, name = crash[0].facility.split("/")
    facility = rehearsal.keeper.facility(sim.rehearsal_key(bank), name)
    changes = [(e.state, e.day) for e in facility.events]
    first_day = "2026-12-01"
    assert changes == [("watch", sim._add_days(first_day, crash[0].day)),
                       ("margin_call", sim._add_days(first_day, crash[1].day))]


HOLD_CODES = {"REJECTED: warehouse.bin_held", "REJECTED: warehouse.receipt_held", "SKIPPED: -"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_whatever_order_the_network_decides_in_the_honest_world_stays_quiet(seed: int) -> None:
    """Steps decided after a random finality time (0.1-3 s, with 10 s days), so in any order
    the plan allows: counts and scans still meet the book, balances are reported against
    valued pledges, devices report in time: no alert, no refusal. With every fault, each is
    still caught by its rules and nothing else; what is refused is refused by a hold."""
    honest = sim.plan(seed, warehouses=1 + seed % 3, days=4, day_seconds=10)
    quiet = sim.rehearse(honest, latency_ms=(100, 3000), latency_seed=seed).score(honest)
    assert quiet["alerts"] == {} and quiet["rejected"] == {}, (quiet["alerts"], quiet["rejected"])
    faulty = sim.plan(seed, warehouses=3, days=7, day_seconds=10, faults=ALL)
    result = sim.rehearse(faulty, latency_ms=(100, 3000), latency_seed=seed).score(faulty)
    assert [row["missed"] for row in result["faults"]] == [[]] * len(result["faults"])
    assert result["false_positives"] == []
    assert set(result["rejected"]) <= HOLD_CODES, result["rejected"]


def test_an_honest_rehearsal_raises_no_alert_and_no_facility_moves() -> None:
    plan = sim.plan(12, warehouses=3, days=7, day_seconds=8)
    rehearsal = sim.rehearse(plan)
    result = rehearsal.score(plan)
    assert result["outcomes"] == {"FINAL": len(plan.steps)}
    assert result["alerts"] == {} and result["false_positives"] == []
    assert all(f.state == "performing" and f.outstanding > 0 for f in rehearsal.keeper.facilities())


def test_bad_simulation_input_is_a_coded_error(tmp_path: Path) -> None:
    with pytest.raises(sim.SimulationInvalid, match="meteor"):
        sim.parse_faults("theft,meteor")
    assert sim.parse_faults("all") == sim.FAULT_KINDS and sim.parse_faults("") == ()
    with pytest.raises(sim.SimulationInvalid, match="7 trading days"):
        sim.plan(1, days=3, faults=("price_crash",))
    with pytest.raises(sim.SimulationInvalid, match="warehouses"):
        sim.plan(1, warehouses=1, days=3, faults=("theft", "substitution", "drift", "blackout"))
    base = ["warehouse", "simulate", "--plan-only", "--json"]
    for args, message in ((["--faults", "meteor"], "meteor"), (["--days", "0"], "days"),
                          (["--day-seconds", "1"], "day seconds")):
        refused = bilayer(*base, *args)
        assert refused.code != 0, refused
        error = refused.json()["error"]
        assert error["code"] == "warehouse.simulation_invalid" and message in error["message"], refused
    shown = bilayer(*base, "--seed", "4", "--days", "7", "--faults", "all")
    assert shown.code == 0, shown
    summary = shown.json()
    assert summary["digest"] == sim.plan(4, days=7, faults=ALL).digest()
    assert sorted(f["kind"] for f in summary["faults"]) == sorted([*sim.FAULT_KINDS, "price_crash"])
    no_node = bilayer("warehouse", "simulate", "--council-key", "c", "--days", "2", "--json")
    assert no_node.code != 0 and "--node" in no_node.json()["error"]["message"]
    unreachable = bilayer("warehouse", "simulate", "--node", UNREACHABLE, "--council-key", "c", "--days", "2",
                          "--json", keystore=tmp_path)
    assert unreachable.code != 0 and unreachable.json()["error"]["code"] in ("key_not_found", "node_unreachable")


def test_the_score_counts_detections_latency_and_false_positives() -> None:
    plan = sim.plan(5, warehouses=3, days=7, day_seconds=10, faults=("theft", "blackout"))
    theft = next(f for f in plan.faults if f.kind == "theft")
    blackout = next(f for f in plan.faults if f.kind == "blackout")
    start = 1_000_000
    outcomes = {s.n: sim.Outcome("FINAL", "", start + s.at_ms, start + s.at_ms + 900) for s in plan.steps}
    outcomes[3] = sim.Outcome("REJECTED", "warehouse.wrong_role", start, start)
    theft_at = start + theft.entry_ms
    sightings = [
        sim.Sighting("R2", theft.warehouse, theft_at + 1500, {"id": "a1"}),
        sim.Sighting("R5", theft.warehouse, theft_at + 2500, {"id": "a2"}),
        sim.Sighting("HELD", theft.warehouse, theft_at + 1200, {"alert": "a0", "bin": "A1"}),  # held before
        sim.Sighting("HELD", theft.warehouse, theft_at + 1600, {"alert": "a1", "bin": "A1"}),
        sim.Sighting("R1", theft.warehouse, theft_at + 9000, {"id": "a3"}),  # a consequence: explained
        sim.Sighting("R8", "wh1", start + 500, {"id": "a4"}),  # explained by nothing
        sim.Sighting("R7", blackout.warehouse, start + blackout.entry_ms - 60_000, {"id": "a5"}),  # too early
    ]
    result = sim.score(plan, outcomes, sightings, start, monitoring=True, finance=False)
    rows = {row["fault"]: row for row in result["faults"]}
    assert rows["theft"]["detected"] == ["R2", "R5"] and rows["theft"]["missed"] == ["R6"]
    assert rows["theft"]["alert_s"] == [1.5, 2.5] and rows["theft"]["held_s"] == [1.6]
    assert rows["blackout"]["missed"] == ["R7"]
    assert sorted(f["rule"] for f in result["false_positives"]) == ["R7", "R8"]
    assert result["rejected"] == {"REJECTED: warehouse.wrong_role": 1}
    assert result["alerts"] == {"R1": 1, "R2": 1, "R5": 1, "R7": 1, "R8": 1}
    assert result["outcomes"]["FINAL"] == len(plan.steps) - 1


@pytest.mark.slow
def test_a_seeded_run_with_faults_on_a_localnet(tmp_path: Path) -> None:
    """Real processes: 4 validators and a ledger node. The simulator sets the world up with the
    council key and plays seven compressed days with every fault through two nodes; then a
    second seed runs on the same network, its trading days and prices going on from the
    first's."""
    with running_localnet(tmp_path / "net", validators=4, ledger_nodes=1, pow_bits=4,
                          limits=LimitsConfig(author_rate=0)) as manifest:
        urls = [n["api_url"] for n in manifest["nodes"]]
        keystore = str(manifest["keystore"])
        started = time.monotonic()
        out = tmp_path / "result.json"
        run = subprocess.run(
            [sys.executable, "-m", "bilayer", "warehouse", "simulate", "--node", urls[-1], "--node", urls[0],
             "--keystore", keystore, "--council-key", "council1", "--seed", "21", "--warehouses", "3", "--days", "7",
             "--day-seconds", "8", "--faults", "all", "--out", str(out)],
            capture_output=True, text=True, timeout=150)
        assert run.returncode == 0, run.stderr[-3000:]
        assert time.monotonic() - started < 130
        result = json.loads(out.read_text())
        plan = sim.plan(21, warehouses=3, days=7, day_seconds=8, faults=ALL)
        assert result["plan"] == plan.digest() and result["steps"] == len(plan.steps)
        outcomes = result["outcomes"]
        assert sum(outcomes.values()) == len(plan.steps)
        assert outcomes == {"FINAL": len(plan.steps)}, result["rejected"]
        assert result["max_lag_s"] < 4, "the driver kept to the schedule: heartbeats came in time"
        assert {row["fault"] for row in result["faults"]} == set(sim.FAULT_KINDS)
        table = run.stdout  # the table a person reads says the same
        for row in result["faults"]:
            assert row["fault"] in table
        assert f"false positives: {len(result['false_positives'])}" in table
        assert f"FINAL {outcomes['FINAL']}" in table
        assert result["monitoring"] and result["finance"]
        for row in result["faults"]:  # every fault caught by each of its rules, nothing else raised
            assert row["missed"] == [] and sorted(row["detected"]) == sorted(row["rules"]), row
        assert result["false_positives"] == []
        assert next(r for r in result["faults"] if r["fault"] == "unauthorised_exit")["held_s"]

        again = subprocess.run(
            [sys.executable, "-m", "bilayer", "warehouse", "simulate", "--node", urls[-1], "--keystore", keystore,
             "--council-key", "council1", "--seed", "21", "--days", "3", "--json"],
            capture_output=True, text=True, timeout=60)
        assert again.returncode != 0
        assert json.loads(again.stdout)["error"]["code"] == "warehouse.simulation_invalid", "a seed runs once"
        second = subprocess.run(
            [sys.executable, "-m", "bilayer", "warehouse", "simulate", "--node", urls[1], "--keystore", keystore,
             "--council-key", "council2", "--seed", "22", "--warehouses", "1", "--days", "2", "--day-seconds", "6",
             "--json"], capture_output=True, text=True, timeout=90)
        assert second.returncode == 0, second.stderr[-3000:]
        quiet = json.loads(second.stdout)
        assert set(quiet["outcomes"]) == {"FINAL"}, quiet["rejected"]
        assert quiet["faults"] == [] and quiet["false_positives"] == [] and quiet["alerts"] == {}

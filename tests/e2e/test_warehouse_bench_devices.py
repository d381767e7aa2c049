"""`bilayer bench warehouse --devices`: device readings of every kind that agree with the book
go through reconciliation FINAL and raise nothing, and the end-of-checkpoint share is measured
on a state built through the executor."""

from __future__ import annotations

from typing import Any

import pytest

from bilayer.bench.warehouse import DeviceBenchConfig, measure_checkpoint_cost
from tests.support.warehouse_net import cli


def quiet(what: str, total: int | None) -> Any:
    return lambda n: None


def test_the_timed_checkpoint_executes_final_raises_nothing_and_revalues_every_facility() -> None:
    cost = measure_checkpoint_cost(DeviceBenchConfig(live_receipts=300, state_devices=100, checkpoint_entries=160,
                                                     repeats=2), quiet)
    assert (cost["live_receipts"], cost["pledged_receipts"], cost["devices"], cost["warehouses"]) == (300, 100, 100, 2)
    for name, revalued in (("typical", 2), ("new_trading_day", 2)):
        timed = cost[f"{name}_checkpoint"]
        assert timed["entries"] == 160 and timed["outcomes"] == {"FINAL": 160}, name
        assert set(timed["checkpoint_readings"]) == {"weighbridge", "gate_reader", "camera", "lidar", "env"}
        assert timed["alerts_raised"] == 0  # every reading agrees with the book, within tolerance
        assert timed["facilities_revalued"] == revalued  # the reported balances; every facility on a new day
        assert timed["end_of_checkpoint_ms"] > 0 and 0 < timed["end_of_checkpoint_share"] < 1


@pytest.mark.slow
def test_the_device_bench_on_a_localnet() -> None:
    report = cli("bench", "warehouse", "--devices", "60", "--events", "300", "--live-receipts", "120",
                 "--state-devices", "60", "--checkpoint-entries", "60", "--repeats", "1", "--pow-bits", "4")
    results = report["results"]
    assert results["readings_final"] == 300 and results["readings_not_final"] == {}
    assert results["alerts_raised"] == 0
    assert results["supervised_devices_at_one_reading_per_minute"] == int(results["readings_finalized_per_s"] * 60) > 0
    assert report["config"]["warehouses"] == 2
    assert results["checkpoint_cost"]["new_trading_day_checkpoint"]["outcomes"] == {"FINAL": 60}


def test_cost_only_measures_the_checkpoint_in_process_with_no_network() -> None:
    report = cli("bench", "warehouse", "--devices", "60", "--cost-only", "--live-receipts", "120",
                 "--state-devices", "60", "--checkpoint-entries", "60", "--repeats", "1")
    assert list(report["results"]) == ["checkpoint_cost"] and report["config"]["network"] is False
    cost = report["results"]["checkpoint_cost"]
    assert (cost["live_receipts"], cost["devices"], cost["facilities"]) == (120, 60, 2)
    new_day = cost["new_trading_day_checkpoint"]
    assert new_day["outcomes"] == {"FINAL": 60} and new_day["facilities_revalued"] == 2
    assert new_day["alerts_raised"] == 0 and 0 < new_day["end_of_checkpoint_share"] < 1

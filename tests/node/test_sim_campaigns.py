"""Sampled simulation campaigns: many seeds of many-validator worlds under every fault, too long for the fast tier."""

from __future__ import annotations

from bilayer.sim.campaign import run_campaign
from bilayer.sim.world import SimConfig


def test_sampled_campaign_four_validators_one_byzantine() -> None:
    report = run_campaign(range(250), SimConfig(validators=4, byzantine=1))
    assert report.seeds == 250
    assert report.safety_violations == 0, [f.violations for f in report.failures][:3]
    assert report.liveness_failures == 0, [(f.seed, f.liveness_failures) for f in report.failures][:3]
    assert report.checkpoints > 150
    injected = set(report.faults)
    assert {"loss", "delay", "reorder", "duplicate", "partition", "partition_one_way", "crash", "skew"} <= injected
    assert set(report.byzantine) >= {"equivocate", "double_vote", "split_brain", "silent", "garbage", "withhold",
                                     "replay"}


def test_sampled_campaign_seven_validators_two_byzantine() -> None:
    report = run_campaign(range(1000, 1050), SimConfig(validators=7, byzantine=2))
    assert report.safety_violations == 0, [f.violations for f in report.failures][:3]
    assert report.liveness_failures == 0, [(f.seed, f.liveness_failures) for f in report.failures][:3]


def test_the_council_adds_and_removes_a_validator_under_faults() -> None:
    report = run_campaign(range(2000, 2060), SimConfig(validators=4, byzantine=1, reconfigure=True))
    assert report.safety_violations == 0, [f.violations for f in report.failures][:3]
    assert report.liveness_failures == 0, [(f.seed, f.liveness_failures) for f in report.failures][:3]

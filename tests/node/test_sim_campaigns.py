"""Sampled simulation campaigns: many seeds of many-validator worlds under every fault, and the
simulator's longest fixed sets of worlds (hostile authors, disk faults), too long for the fast tier."""

from __future__ import annotations

from bilayer.sim.byzantine import byzantine_node
from bilayer.sim.campaign import run_campaign
from bilayer.sim.world import SimConfig, World

DISK_FAULTS = ("refused_commit", "torn_commit", "lost_fsync", "crash", "loss")


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


def test_hostile_authors_fork_replay_and_withhold_and_every_node_ends_with_the_evidence() -> None:
    """Forks raced to two nodes at one instant, replays and withheld parents, under every fault:
    no safety violation, and every fork any node found is evidence on every honest node."""
    worlds = []
    for seed in range(12):
        world = World(seed, SimConfig(byzantine=1, hostile_actions=30), byzantine_factory=byzantine_node)
        world.run()
        assert not world.violations, (seed, world.violations[:3])
        assert not world.checker.liveness_failures, (seed, world.checker.liveness_failures[:3])
        worlds.append(world)
    assert sum(w.stats.author_forks for w in worlds) > 50
    assert sum(w.stats.author_replays for w in worlds) > 50 and sum(w.stats.author_withheld for w in worlds) > 50
    assert sum(len(w.nodes[0].evidence) for w in worlds) > 50
    codes = {code for w in worlds for _, code in w.checker.outcomes.values()}
    assert "sequence_conflict" in codes


def test_disk_faults_are_injected_and_every_node_recovers_from_its_disk() -> None:
    """Refused commits are retried, a torn commit rolls back at restart, and a node that lost
    acknowledged commits catches up from its peers: no safety violation, no liveness failure."""
    refused = torn = lost = 0
    for seed in range(40):
        world = World(seed, SimConfig(byzantine=1, faults=DISK_FAULTS), byzantine_factory=byzantine_node)
        world.run()
        assert not world.violations, (seed, world.violations)
        assert not world.checker.liveness_failures, (seed, world.checker.liveness_failures)
        refused += world.stats.commits_refused
        torn += world.stats.commits_torn
        lost += world.stats.commits_lost
        if refused and torn and lost:
            break
    assert refused and torn and lost, (refused, torn, lost)

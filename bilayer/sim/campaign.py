"""Campaigns: many seeds, one table, and for every failure the command that replays it."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..replica.finality import CoreFactory, default_core
from .byzantine import byzantine_node
from .world import FAULT_KINDS, SimConfig, World


@dataclass(frozen=True)
class SeedResult:
    seed: int
    checkpoints: int
    violations: tuple[str, ...]
    liveness_failures: tuple[str, ...]
    faults: tuple[str, ...]
    byzantine: tuple[str, ...]
    disk: tuple[tuple[str, int], ...]  # commits the simulated disks refused, tore and lost
    hostile: tuple[tuple[str, int], ...]  # what the hostile authors did, and the forks found
    events: int
    seconds: float
    trace: bytes  # the digest of every message delivered, in order


@dataclass
class CampaignReport:
    config: SimConfig
    seeds: int = 0
    checkpoints: int = 0
    events: int = 0
    seconds: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    byzantine: Counter[str] = field(default_factory=Counter)
    hostile: Counter[str] = field(default_factory=Counter)
    disk: Counter[str] = field(default_factory=Counter)
    failures: list[SeedResult] = field(default_factory=list)
    trace: hashlib._Hash = field(default_factory=hashlib.sha256)

    @property
    def safety_violations(self) -> int:
        return sum(1 for f in self.failures if f.violations)

    @property
    def liveness_failures(self) -> int:
        return sum(1 for f in self.failures if f.liveness_failures and not f.violations)

    def replay_command(self, seed: int) -> str:
        faults = ",".join(self.config.faults) if self.config.faults else "none"
        return (f"bilayer sim --seed {seed} --validators {self.config.validators}"
                f" --byzantine {self.config.byzantine} --faults {faults}"
                + (" --reconfigure" if self.config.reconfigure else ""))

    def to_json(self) -> dict[str, Any]:
        return {
            "config": {"validators": self.config.validators, "byzantine": self.config.byzantine,
                       "faults": list(self.config.faults), "fault_window_ms": self.config.fault_window_ms,
                       "liveness_window_ms": self.config.liveness_window_ms, "entries": self.config.entries,
                       "reconfigure": self.config.reconfigure, "hostile_authors": self.config.hostile_authors,
                       "hostile_actions": self.config.hostile_actions},
            "seeds": self.seeds,
            "checkpoints": self.checkpoints,
            "faults_injected": dict(sorted(self.faults.items())),
            "byzantine_behaviours": dict(sorted(self.byzantine.items())),
            "hostile_authors": dict(sorted(self.hostile.items())),
            "disk": dict(sorted(self.disk.items())),
            "safety_violations": self.safety_violations,
            "liveness_failures": self.liveness_failures,
            "seconds": round(self.seconds, 2),
            "checkpoints_per_second": round(self.checkpoints / self.seconds, 1) if self.seconds else None,
            "events": self.events,
            "trace": self.trace.hexdigest(),
            "failures": [
                {"seed": f.seed, "violations": list(f.violations), "liveness": list(f.liveness_failures),
                 "faults": list(f.faults), "byzantine": list(f.byzantine), "replay": self.replay_command(f.seed)}
                for f in self.failures
            ],
        }


def _fault_names(world: World) -> list[str]:
    plan = world.plan
    names = []
    if plan.loss:
        names.append("loss")
    if plan.duplicate:
        names.append("duplicate")
    if plan.delay_ms[1] > 5:
        names.append("delay")
    if plan.delay_ms[1] >= 50:
        names.append("reorder")
    for _, _, _, one_way in plan.partitions:
        names.append("partition_one_way" if one_way else "partition")
    names.extend("crash" for _ in plan.crashes)
    if plan.skew:
        names.append("skew")
    names.extend("refused_commit" for _ in plan.refused_commits)
    names.extend("lost_fsync" for _ in plan.lost_fsyncs)
    names.extend("torn_commit" for _ in range(world.stats.commits_torn))
    return names


def run_seed(seed: int, config: SimConfig, core_factory: CoreFactory = default_core) -> SeedResult:
    started = time.perf_counter()
    world = World(seed, config, core_factory=core_factory, byzantine_factory=byzantine_node)
    world.run()
    return SeedResult(
        seed=seed,
        checkpoints=world.checker.max_height,
        violations=tuple(world.violations),
        liveness_failures=tuple(world.checker.liveness_failures),
        faults=tuple(_fault_names(world)),
        byzantine=tuple(sorted(world.byzantine_kinds.values())),
        disk=(("commits_refused", world.stats.commits_refused), ("commits_torn", world.stats.commits_torn),
              ("acknowledged_commits_lost", world.stats.commits_lost),
              ("stalled_beyond_fault_budget", int(world.checker.liveness_waived))),
        hostile=(("forks_raced", world.stats.author_forks), ("replays", world.stats.author_replays),
                 ("parents_withheld", world.stats.author_withheld),
                 ("forks_in_evidence", len(set().union(*(n.evidence for n in world.nodes if n.honest))))),
        events=world.stats.events,
        seconds=time.perf_counter() - started,
        trace=world.trace.digest(),
    )


def run_campaign(seeds: Iterable[int], config: SimConfig, core_factory: CoreFactory = default_core,
                 tick: Callable[[SeedResult], None] = lambda result: None) -> CampaignReport:
    report = CampaignReport(config)
    for seed in seeds:
        result = run_seed(seed, config, core_factory)
        report.seeds += 1
        report.checkpoints += result.checkpoints
        report.events += result.events
        report.seconds += result.seconds
        report.faults.update(result.faults)
        report.byzantine.update(result.byzantine)
        report.hostile.update(dict(result.hostile))
        report.disk.update(dict(result.disk))
        report.trace.update(result.trace)
        if result.violations or result.liveness_failures:
            report.failures.append(result)
        tick(result)
    return report


def parse_faults(text: str) -> tuple[str, ...]:
    if text in ("all", ""):
        return FAULT_KINDS
    if text == "none":
        return ()
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; choose from {', '.join(FAULT_KINDS)}, all or none")
    return kinds

"""Snapshot sync of the versioned state at scale: a fresh store restored from a source of N accounts.

The source is built as `bench state` builds its state (the same accounts, the same batches):
the time that takes is what rebuilding the state by applying every key costs, the floor of a
replay from genesis (which also executes and checks every transaction that wrote those keys).
Then a fresh store on disk is restored from the source's latest version, every request and
chunk encoded and decoded as they would cross the network, every node verified against the
certified root, written in durable batches. Both sides run in this process, so the sync's
CPU time is the serving and the joining together; the serving part is also given alone.
After the clock stops, the restored store's root and a sample of proofs are compared with
the source's.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..node.state_store import StateStore
from ..node.state_sync import SnapshotTarget, StoreSource, SyncReport, restore
from .state import Progress, StateBenchConfig, _file_mib, _peak_rss_mib, _rss_mib, account_key, build


@dataclass(frozen=True)
class StateSyncBenchConfig:
    accounts: int = 100_000
    chunk_nodes: int = 4000
    subtrees: int = 256  # pending subtrees one request may name
    batch_nodes: int = 20_000  # nodes per durable write
    build_batch: int = 200_000
    checks: int = 200  # accounts whose proofs are compared after the sync
    seed: int = 1


SOURCE_FILE = "state-sync-source.sqlite"
SOURCE_INFO = "state-sync-source.json"  # beside the source: its accounts and the time its build took
TARGET_FILE = "state-sync-joined.sqlite"


def reusable(workdir: Path) -> bool:
    return (workdir / SOURCE_FILE).exists() and (workdir / SOURCE_INFO).exists()


class _TimedSource:
    """The source, with the time spent serving it counted apart from the joining side's."""

    def __init__(self, inner: StoreSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.wall = 0.0
        self.cpu = 0.0

    def fetch(self, request: bytes) -> bytes:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            return self.inner.fetch(request)
        finally:
            self.wall += time.perf_counter() - started
            self.cpu += time.process_time() - cpu_started


def _fresh(path: Path) -> None:
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)


def run_state_sync_bench(config: StateSyncBenchConfig, progress: Progress, workdir: Path | None,
                         reuse: bool = False) -> dict[str, Any]:
    """With `reuse`, the source is the one an earlier run left in `workdir`, not built again."""
    with tempfile.TemporaryDirectory(prefix="bilayer-bench-state-sync-") as scratch:
        base = workdir if workdir is not None else Path(scratch)
        source_path, target_path = base / SOURCE_FILE, base / TARGET_FILE
        if reuse:
            info = json.loads((base / SOURCE_INFO).read_text())
            config = StateSyncBenchConfig(**{**asdict(config), "accounts": int(info["accounts"])})
            built: dict[str, Any] = {"rebuild_s": info["build_s"], "rebuild_cpu_s": info.get("build_cpu_s"),
                                     "rebuild_from": "an earlier run"}
        else:
            _fresh(source_path)
            cpu_started = time.process_time()
            with StateStore(source_path) as source:
                figures = build(source, StateBenchConfig(accounts=config.accounts, build_batch=config.build_batch),
                                progress)
            built = {"rebuild_s": figures["build_s"], "rebuild_cpu_s": round(time.process_time() - cpu_started, 1),
                     "rebuild_from": "this run"}
            (base / SOURCE_INFO).write_text(json.dumps({"accounts": config.accounts, "build_s": built["rebuild_s"],
                                                        "build_cpu_s": built["rebuild_cpu_s"]}))
        _fresh(target_path)
        with StateStore(source_path) as source, StateStore(target_path) as joined:
            version = source.latest_version
            assert version is not None
            snapshot = SnapshotTarget(version, source.root(version))
            total = source.node_count()
            advance = progress("syncing nodes", total)
            synced = 0

            def on_batch(report: SyncReport) -> None:
                nonlocal synced
                advance(report.nodes - synced)
                synced = report.nodes

            served = _TimedSource(StoreSource(source, version, "source"))
            rss_before = _rss_mib()
            started, cpu_started = time.perf_counter(), time.process_time()
            report = restore(joined, snapshot, [served], chunk_nodes=config.chunk_nodes, subtrees=config.subtrees,
                             batch_nodes=config.batch_nodes, on_batch=on_batch)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            rss_after = _rss_mib()
            # after the clock: the same root, and the same proofs, present and absent
            if joined.root(version) != snapshot.root_hash or joined.node_count() != total:
                raise AssertionError("the restored state is not the source's")
            rng = random.Random(config.seed)
            for n in [rng.randrange(config.accounts) for _ in range(config.checks)] + [config.accounts + 10**9]:
                if joined.prove(account_key(n), version) != source.prove(account_key(n), version):
                    raise AssertionError(f"the proofs of account {n} differ after the sync")
            joined.checkpoint_wal()
        size = _file_mib(target_path)
    rebuild = float(built["rebuild_s"])
    return {
        "config": {**asdict(config), "reuse": reuse,
                   "transfer": "in process, every request and chunk encoded and decoded; SQLite, WAL, "
                               "synchronous=FULL"},
        "results": {
            "accounts": config.accounts,
            "nodes": report.nodes,
            "leaves": report.leaves,
            "bytes": report.bytes,
            "mib": round(report.bytes / 2**20, 1),
            "chunks": report.chunks,
            "nodes_per_chunk": round(report.nodes / max(1, report.chunks)),
            "batches": report.batches,
            "sync_wall_s": round(wall, 1),
            "sync_cpu_s": round(cpu, 1),
            "serve_cpu_s": round(served.cpu, 1),
            "join_cpu_s": round(cpu - served.cpu, 1),
            "nodes_per_s": round(report.nodes / wall),
            "nodes_per_cpu_s": round(report.nodes / cpu),
            **built,
            "rebuild_over_sync_wall": round(rebuild / wall, 2),
            "rebuild_over_sync_cpu": None if built["rebuild_cpu_s"] is None else round(built["rebuild_cpu_s"] / cpu, 2),
            "joined_file_mib": round(size, 1),
            "rss_sync_growth_mib": round(rss_after - rss_before, 1),
            "rss_peak_mib": round(_peak_rss_mib(), 1),
        },
    }

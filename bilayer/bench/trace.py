"""Fund tracing on a large history: build it, then time many random traces.

The history is made as the chain makes it, except for signatures: transfers are generated
(many accounts with genesis allocations, a few heavy hubs that take in and pay out a large
share of the traffic; half the payments pass on most of the sender's balance, half are
small, drawn log-uniformly), executed by
the real executor checkpoint by checkpoint, and indexed by the same function a node calls
inside each checkpoint commit, into a real SQLite file on disk (WAL, synchronous=FULL).
Entries are not signed nor stamped (ids are hashes of a counter): signing a million entries
would time PyNaCl, not the index; execution and indexing are the node's own code.

Then traces of `hops` hops start at random transfers, forward and backward, and at random
addresses, each on a fresh read connection as the API opens one; the report gives p50 and
p99 per kind of start (also from the hubs, where the bounds cut traces short), the build
rate and the size of the index on disk.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import statistics
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import codec
from ..audit import index as audit_index
from ..audit.trace import TraceLimits, TraceRequest, trace
from ..execution.executor import execute, genesis_state
from ..execution.governance.context import ExecContext
from ..genesis import Allocation, ChainParams, Genesis, GovernanceParams
from ..keys.address import address_from_public_key
from ..ledger.entry import EntryHeader
from ..ledger.operations import Transfer
from ..node.storage import Storage

Progress = Callable[[str, int], Callable[[int], None]]
EMPTY_HASH = hashlib.sha256(b"").digest()


@dataclass(frozen=True)
class TraceBenchConfig:
    transfers: int = 1_000_000
    accounts: int = 100_000
    hubs: int = 50
    hub_share: float = 0.25  # of senders and of recipients that are hubs
    per_checkpoint: int = 2000
    starts: int = 300  # per kind of start
    hops: int = 5
    seed: int = 1


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _account(seed: int, n: int) -> bytes:
    return hashlib.sha256(f"bench-trace/{seed}/{n}".encode()).digest()


def build_history(config: TraceBenchConfig, path: Path, progress: Progress) -> dict[str, Any]:
    """Generate, execute and index the history into the SQLite file at `path`."""
    rng = random.Random(config.seed)
    accounts = [_account(config.seed, n) for n in range(config.accounts)]
    hubs = accounts[:config.hubs]
    allocations = tuple(Allocation(address_from_public_key(a), "BLY", int(10 ** rng.uniform(4, 8))) for a in accounts)
    genesis = Genesis("bench-trace", 1_700_000_000_000, ChainParams(pow_bits=0), allocations=allocations)
    state = genesis_state(genesis)
    state.take_dirty()
    balances = {a: state.balance(a, "BLY") for a in accounts}
    heads: dict[bytes, tuple[int, bytes]] = {}
    root = genesis.root
    storage = Storage(path)
    started = time.perf_counter()
    storage.with_writer(lambda conn: audit_index.rebuild(conn, genesis, state))  # genesis allocations
    advance = progress("building and indexing transfers", config.transfers)
    applied = rejected = counter = 0
    height = 0
    time_ms = genesis.genesis_time_ms
    while counter < config.transfers:
        height += 1
        time_ms += 1000
        ordered: list[tuple[bytes, EntryHeader]] = []
        for _ in range(min(config.per_checkpoint, config.transfers - counter)):
            sender = rng.choice(hubs) if rng.random() < config.hub_share else rng.choice(accounts)
            while balances[sender] < 1:
                sender = rng.choice(accounts)
            recipient = rng.choice(hubs) if rng.random() < config.hub_share else rng.choice(accounts)
            # half the payments pass most of the balance on (mules, exchanges), half are small
            share = rng.uniform(0.5, 1.0) if rng.random() < 0.5 else 10 ** rng.uniform(-3, 0)
            amount = max(1, int(balances[sender] * share))
            if recipient != sender:
                balances[sender] -= amount
                balances[recipient] += amount
            seq, head = heads.get(sender, (0, root))
            entry_id = hashlib.sha256(counter.to_bytes(8, "big") + b"bench-trace").digest()
            header = EntryHeader(1, genesis.chain_id, sender, seq, (head,), time_ms, "transfer",
                                 codec.encode(Transfer("BLY", amount, recipient)), EMPTY_HASH, 0, bytes(8))
            heads[sender] = (seq + 1, entry_id)
            ordered.append((entry_id, header))
            counter += 1
        results = execute(ExecContext(height, time_ms, GovernanceParams()), state, ordered)
        state.take_dirty()
        applied += sum(1 for r in results if r.outcome == "FINAL")
        rejected += sum(1 for r in results if r.outcome != "FINAL")
        batch = audit_index.CheckpointEntries(height, time_ms, [
            audit_index.OrderedEntry(entry_id, header, str(result.outcome), result.code, result.cause)
            for (entry_id, header), result in zip(ordered, results, strict=True)])

        def commit(conn: Any, batch: audit_index.CheckpointEntries = batch) -> None:
            conn.execute("BEGIN")
            try:
                audit_index.maintain(conn, batch, state)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        storage.with_writer(commit)
        advance(len(ordered))
    build_s = time.perf_counter() - started
    storage.with_writer(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    storage.close()
    size = sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())
    return {"build_s": round(build_s, 1), "indexed_per_s": round(config.transfers / build_s, 1),
            "applied": applied, "rejected": rejected, "checkpoints": height, "index_bytes": size,
            "index_mib": round(size / 2**20, 1), "bytes_per_transfer": round(size / config.transfers, 1)}


def time_traces(config: TraceBenchConfig, path: Path, progress: Progress) -> dict[str, Any]:
    rng = random.Random(config.seed + 1)
    storage = Storage(path)
    try:
        with closing(storage.read_connection()) as conn:
            flows = int(conn.execute("SELECT max(flow) FROM audit_flows").fetchone()[0])
            picks: list[str] = []
            while len(picks) < config.starts:
                row = conn.execute("SELECT entry_id FROM audit_flows WHERE flow = ? AND kind = 'transfer'",
                                   (rng.randint(1, flows),)).fetchone()
                if row is not None:
                    picks.append(bytes(row[0]).hex())
            accounts = [address_from_public_key(_account(config.seed, rng.randrange(config.accounts)))
                        for _ in range(config.starts)]
            hubs = [address_from_public_key(_account(config.seed, n % config.hubs)) for n in range(config.starts)]
        kinds = {"entry_forward": (picks, "forward"), "entry_backward": (picks, "backward"),
                 "address_forward": (accounts, "forward"), "address_backward": (accounts, "backward"),
                 "hub_forward": (hubs, "forward"), "hub_backward": (hubs, "backward")}
        report: dict[str, Any] = {}
        for name, (starts, direction) in kinds.items():
            advance = progress(f"tracing {name.replace('_', ' ')}", len(starts))
            times, edges, truncated = [], [], 0
            for start in starts:
                began = time.perf_counter()
                with closing(storage.read_connection()) as conn:
                    found = trace(conn, TraceRequest(start, direction, config.hops, "BLY", TraceLimits()))
                times.append((time.perf_counter() - began) * 1000)
                edges.append(len(found.edges))
                truncated += found.truncated
                advance(1)
            report[name] = {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(_percentile(times, 0.99), 2),
                            "max_ms": round(max(times), 2), "median_edges": statistics.median(edges),
                            "truncated": f"{truncated}/{len(starts)}"}
        return report
    finally:
        storage.close()


def run_trace_bench(config: TraceBenchConfig, progress: Progress, workdir: Path | None) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bilayer-bench-trace-") as scratch:
        base = workdir if workdir is not None else Path(scratch)
        base.mkdir(parents=True, exist_ok=True)
        path = base / "audit-bench.sqlite"
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        built = build_history(config, path, progress)
        traced = time_traces(config, path, progress)
    limits = TraceLimits()
    return {
        "config": {**asdict(config), "signing": "bypassed: unsigned, unstamped entries (ids hash a counter);"
                                                " executed by the real executor, indexed by the node's own code",
                   "bounds": f"max_edges={limits.max_edges} max_nodes={limits.max_nodes} max_rows={limits.max_rows}"
                             " dust=1e-6 of the start"},
        "results": {**built, **{f"{kind}_{key}": value for kind, figures in traced.items()
                                for key, value in figures.items()}},
    }

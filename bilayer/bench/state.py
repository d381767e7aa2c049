"""The versioned state on disk at scale: build N accounts, then time checkpoints and proofs.

Accounts are balance keys as execution writes them (`b"B" + public key + asset`, the value
the canonical encoding of an amount); the public keys are hashes of a counter, since no
signature is involved. The build commits them in batches, one version per batch, keeping
only the latest version (the build is set-up, not what is measured).

Then K checkpoints, one version each, of `checkpoint_keys` changed keys: mostly balances of
random existing accounts, a few new accounts (as transfers to new addresses make them),
every version kept (archive mode), each timed from the changes to the durable commit (the
tree's update, the SQLite transaction and its fsync; also in this process's CPU time, which
other work on a shared machine does not skew). Then proofs of inclusion (random
accounts) and of absence (accounts never made) at the latest version and at the first
checkpoint's, each checked against its version's root after the clock stops.

With `node`, the same accounts are built in the node's format instead (ledger.sqlite: the
`state` table beside the tree, written in one transaction per version, as a checkpoint's
commit writes them), the checkpoints run through a `State` that reads its values from that
table (its bounded cache, its overlay of writes not yet durable), and what is measured is the
process's peak RSS while building and updating, and the time a node takes to start on that
store (open it, compare the tree's root at the last version, ready to execute). With
`legacy_start`, the start as it was before the values moved to disk (every value read into
memory and the whole tree re-hashed) is timed after it, with the peak RSS it reaches.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import resource
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .. import codec
from ..execution.smt import Child, TreeUpdate, apply
from ..execution.smt_proof import encode_proof, verify_proof
from ..execution.state import State, StateTree, balance_key
from ..node import state_store
from ..node.state_store import StateStore
from ..node.storage import Storage

Progress = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True)
class StateBenchConfig:
    accounts: int = 100_000
    checkpoint_keys: int = 1000
    checkpoints: int = 20
    new_account_share: float = 0.02  # of a checkpoint's changed keys
    build_batch: int = 200_000
    proofs: int = 500  # per kind (inclusion, absence) and version
    cache_nodes: int = 65_536
    seed: int = 1
    node: bool = False  # build the node's format and measure its memory and start-up
    legacy_start: bool = False  # with `node`: also time the start that loads every value


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def account_key(n: int) -> bytes:
    return balance_key(hashlib.sha256(b"bench-state/%d" % n).digest(), "BLY")


def _rss_mib() -> float:
    """The resident set now (Linux /proc), in MiB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * resource.getpagesize() / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _file_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()) / 2**20


def build(store: StateStore, config: StateBenchConfig, progress: Progress) -> dict[str, Any]:
    advance = progress("building accounts", config.accounts)
    started = time.perf_counter()
    version = 0
    for first in range(0, config.accounts, config.build_batch):
        last = min(config.accounts, first + config.build_batch)
        version += 1
        store.commit(version, [(account_key(n), codec.encode(1_000_000 + n)) for n in range(first, last)])
        store.prune(version)
        advance(last - first)
    store.checkpoint_wal()
    elapsed = time.perf_counter() - started
    return {"build_s": round(elapsed, 1), "build_accounts_per_s": round(config.accounts / elapsed),
            "build_versions": version, "rss_after_build_mib": round(_rss_mib(), 1)}


def run_checkpoints(store: StateStore, config: StateBenchConfig, rng: random.Random, accounts: int,
                    progress: Progress) -> tuple[dict[str, Any], int]:
    """Time the checkpoints over a state of `accounts` accounts; returns the figures and how
    many accounts exist after them."""
    advance = progress("checkpoints", config.checkpoints)
    times: list[float] = []
    cpu: list[float] = []  # this process's CPU time: what other work on the machine does not skew
    latest = store.latest_version or 0
    for version in range(latest + 1, latest + 1 + config.checkpoints):
        new = round(config.checkpoint_keys * config.new_account_share)
        changed = {account_key(rng.randrange(accounts)): codec.encode(rng.randrange(10**9))
                   for _ in range(config.checkpoint_keys - new)}
        for n in range(accounts, accounts + new):
            changed[account_key(n)] = codec.encode(rng.randrange(10**9))
        accounts += new
        changes = list(changed.items())
        started, cpu_started = time.perf_counter(), time.process_time()
        store.commit(version, changes)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        advance(1)
    ms = [t * 1000 for t in times]
    cpu_ms = [t * 1000 for t in cpu]
    return {
        "root_update_ms_p50": round(_percentile(ms, 0.5), 1),
        "root_update_ms_p99": round(_percentile(ms, 0.99), 1),
        "root_update_ms_mean": round(sum(ms) / len(ms), 1),
        "root_update_cpu_ms_p50": round(_percentile(cpu_ms, 0.5), 1),
        "changed_keys_per_s": round(config.checkpoint_keys * len(ms) / sum(times)),
    }, accounts


def time_proofs(store: StateStore, config: StateBenchConfig, rng: random.Random, built: int, accounts: int,
                progress: Progress) -> dict[str, Any]:
    latest = store.latest_version
    assert latest is not None
    older = latest - config.checkpoints + 1
    figures: dict[str, Any] = {}
    sizes: list[int] = []
    depths: list[int] = []
    for label, version in (("latest", latest), ("older", older)):
        root = store.root(version)
        for kind in ("inclusion", "absence"):
            advance = progress(f"{kind} proofs at the {label} version", config.proofs)
            times: list[float] = []
            for _ in range(config.proofs):
                # the accounts of the build exist at every checkpoint; those far above, at none
                n = rng.randrange(built) if kind == "inclusion" else accounts + 10**9 + rng.randrange(10**9)
                key = account_key(n)
                started = time.perf_counter()
                value, proof = store.prove(key, version)
                times.append(time.perf_counter() - started)
                if (value is None) != (kind == "absence") or not verify_proof(root, key, value, proof):
                    raise AssertionError(f"the {kind} proof of account {n} at version {version} does not verify")
                sizes.append(len(encode_proof(proof)))
                depths.append(len(proof.siblings))
                advance(1)
            ms = [t * 1000 for t in times]
            figures[f"proof_{kind}_{label}_ms_p50"] = round(_percentile(ms, 0.5), 3)
            figures[f"proof_{kind}_{label}_ms_p99"] = round(_percentile(ms, 0.99), 3)
    figures["proof_bytes_mean"] = round(sum(sizes) / len(sizes))
    figures["proof_siblings_mean"] = round(sum(depths) / len(depths), 1)
    return figures


STORE_FILE = "state-bench.sqlite"
ACCOUNTS_FILE = "state-bench.json"  # beside the store: the accounts it holds, for a run that reuses it


def reusable(workdir: Path) -> bool:
    return (workdir / STORE_FILE).exists() and (workdir / ACCOUNTS_FILE).exists()


def run_state_bench(config: StateBenchConfig, progress: Progress, workdir: Path | None,
                    reuse: bool = False) -> dict[str, Any]:
    """With `reuse`, the checkpoints and proofs run on the state an earlier run left in
    `workdir` (as a node restarted on its data would), with no build in this process."""
    rng = random.Random(config.seed + (1 if reuse else 0))
    with tempfile.TemporaryDirectory(prefix="bilayer-bench-state-") as scratch:
        base = workdir if workdir is not None else Path(scratch)
        path = base / STORE_FILE
        if reuse:
            held = json.loads((base / ACCOUNTS_FILE).read_text())
            built_accounts, accounts = int(held["built"]), int(held["accounts"])
            built: dict[str, Any] = {"reused_accounts": accounts}
            config = replace(config, accounts=built_accounts)
        else:
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
            built_accounts = accounts = config.accounts
        with StateStore(path, cache_nodes=config.cache_nodes) as store:
            if not reuse:
                built = build(store, config, progress)
            checkpoints, accounts = run_checkpoints(store, config, rng, accounts, progress)
            (base / ACCOUNTS_FILE).write_text(json.dumps({"built": built_accounts, "accounts": accounts}))
            proofs = time_proofs(store, config, rng, built_accounts, accounts, progress)
            store.checkpoint_wal()
            nodes = store.node_count()
        size = _file_mib(path)
    return {
        "config": {**asdict(config), "store": "SQLite, WAL, synchronous=FULL; checkpoints in archive mode",
                   "reuse": reuse},
        "results": {
            "accounts_after": accounts,
            **built,
            **checkpoints,
            **proofs,
            "nodes_stored": nodes,
            "file_mib": round(size, 1),
            "rss_end_mib": round(_rss_mib(), 1),
            "rss_peak_mib": round(_peak_rss_mib(), 1),
        },
    }


NODE_FILE = "ledger.sqlite"


def _write_state(storage: Storage, changes: list[tuple[bytes, bytes | None]], update: TreeUpdate) -> None:
    """One version's rows and tree nodes in one transaction, as a checkpoint's commit writes them."""

    def transaction(conn: sqlite3.Connection) -> None:
        with state_store.immediate(conn):
            conn.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                             [(k, v) for k, v in changes if v is not None])
            conn.executemany("DELETE FROM state WHERE key = ?", [(k,) for k, v in changes if v is None])
            state_store.write_version(conn, update)

    storage.with_writer(transaction)


def build_node_store(storage: Storage, config: StateBenchConfig, progress: Progress) -> tuple[dict[str, Any], int]:
    """The accounts in the node's format, a version per batch, older versions pruned; returns
    the figures and the last version."""
    advance = progress("building accounts (node format)", config.accounts)
    started = time.perf_counter()
    root: Child | None = None
    version = 0
    for first in range(0, config.accounts, config.build_batch):
        last = min(config.accounts, first + config.build_batch)
        version += 1
        changes: list[tuple[bytes, bytes | None]] = [(account_key(n), codec.encode(1_000_000 + n))
                                                     for n in range(first, last)]
        update = apply(storage.tree, root, version, changes)
        _write_state(storage, changes, update)
        for key, node in update.nodes.items():
            storage.tree.remember(key, node)
        root = update.root
        storage.prune_state(version)
        advance(last - first)
    storage.with_writer(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    elapsed = time.perf_counter() - started
    return {"build_s": round(elapsed, 1), "build_accounts_per_s": round(config.accounts / elapsed),
            "rss_after_build_mib": round(_rss_mib(), 1), "rss_peak_build_mib": round(_peak_rss_mib(), 1)}, version


def open_node_state(storage: Storage) -> State:
    """What a node's start does with its state (node/chain.py `Chain.load`): the tree's root at
    the last version, the values left on disk."""
    version = storage.tree.latest_version
    assert version is not None
    state = State(tree=StateTree(storage.tree, storage.tree.root_ref(version), version), source=storage.values)
    state.root()
    return state


def update_node_state(storage: Storage, config: StateBenchConfig, rng: random.Random, accounts: int,
                      progress: Progress) -> tuple[dict[str, Any], int]:
    """Checkpoints through the node's `State`: each changed balance read (cache or disk) and
    written, the version made and written durably, then the writes leave memory."""
    state = open_node_state(storage)
    advance = progress("checkpoints (node format)", config.checkpoints)
    times: list[float] = []
    overlay = 0
    for _ in range(config.checkpoints):
        new = round(config.checkpoint_keys * config.new_account_share)
        started = time.perf_counter()
        for _ in range(config.checkpoint_keys - new):
            key = account_key(rng.randrange(accounts))
            raw = state.get(key)
            state.set(key, codec.encode((0 if raw is None else codec.decode(raw, int)) + 1))
        for n in range(accounts, accounts + new):
            state.set(account_key(n), codec.encode(rng.randrange(10**9)))
        accounts += new
        changes = state.take_dirty()
        version = state.tree.version + 1
        update = state.commit_version(version)
        state.tree.take_unwritten()
        _write_state(storage, changes, update)
        state.tree.written(version)
        overlay = max(overlay, state.overlay_size)
        state.durable(changes)
        times.append(time.perf_counter() - started)
        advance(1)
    ms = [t * 1000 for t in times]
    return {"node_checkpoint_ms_p50": round(_percentile(ms, 0.5), 1),
            "node_overlay_keys_max": overlay, "node_cached_values": state.cached_values,
            "rss_peak_build_and_update_mib": round(_peak_rss_mib(), 1)}, accounts


def node_reusable(workdir: Path) -> bool:
    return (workdir / NODE_FILE).exists()


def run_node_state_bench(config: StateBenchConfig, progress: Progress, workdir: Path | None,
                         reuse: bool = False) -> dict[str, Any]:
    """With `reuse`, a fresh process on the store an earlier run left in `workdir`: the node's
    start first, then the checkpoints, so the peak RSS is a node's on that state alone."""
    rng = random.Random(config.seed + (1 if reuse else 0))
    with tempfile.TemporaryDirectory(prefix="bilayer-bench-state-") as scratch:
        path = (workdir if workdir is not None else Path(scratch)) / NODE_FILE
        built: dict[str, Any] = {}
        updated: dict[str, Any] = {}
        if reuse:
            accounts = -1
        else:
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
            storage = Storage(path)
            try:
                built, _ = build_node_store(storage, config, progress)
                updated, accounts = update_node_state(storage, config, rng, config.accounts, progress)
            finally:
                storage.close()
        started = time.perf_counter()
        storage = Storage(path)
        try:
            state = open_node_state(storage)
            start_s = time.perf_counter() - started
            if reuse:
                rss_started = _rss_mib()
                accounts = len(storage.values)
                built = {"reused_accounts": accounts, "rss_after_start_fresh_mib": round(rss_started, 1)}
                updated, accounts = update_node_state(storage, config, rng, accounts, progress)
                state = open_node_state(storage)
            assert state.overlay_size == 0
            figures: dict[str, Any] = {"node_start_s": round(start_s, 4), "rss_after_start_mib": round(_rss_mib(), 1),
                                       "rss_peak_mib": round(_peak_rss_mib(), 1)}
            if config.legacy_start:
                advance = progress("the start that loads every value (before)", 1)
                started = time.perf_counter()
                loaded = State(storage.state_items())
                if loaded.root() != state.root():
                    raise AssertionError("the state loaded in memory hashes to another root than the stored tree's")
                figures["legacy_start_s"] = round(time.perf_counter() - started, 3)
                figures["legacy_rss_mib"] = round(_rss_mib(), 1)
                figures["legacy_rss_peak_mib"] = round(_peak_rss_mib(), 1)
                advance(1)
        finally:
            storage.close()
        size = _file_mib(path)
    return {
        "config": {**asdict(config), "store": "the node's ledger.sqlite (state table and tree), WAL, synchronous=FULL",
                   "reuse": reuse},
        "results": {"accounts_after": accounts, **built, **updated, **figures, "file_mib": round(size, 1)},
    }

"""`bilayer bench state --node`, run as a real process on a small state: the node's format
built and updated through the node's State, its memory and start-up reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bilayer import codec
from bilayer.bench.state import NODE_FILE, account_key
from bilayer.execution.state import State, StateTree
from bilayer.node.storage import Storage


def test_the_node_format_bench_reports_memory_and_start_up(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bilayer", "bench", "state", "--node", "--legacy-start", "--accounts", "3000",
         "--build-batch", "1000", "--checkpoint-keys", "100", "--checkpoints", "4", "--workdir", str(tmp_path),
         "--json"], capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert results["accounts_after"] == 3000 + 4 * 2
    assert 0 < results["rss_peak_build_mib"] <= results["rss_peak_build_and_update_mib"] <= results["rss_peak_mib"]
    assert 0 < results["node_overlay_keys_max"] <= 100  # a checkpoint's writes, never the state
    assert results["node_start_s"] > 0 and results["legacy_start_s"] > 0
    # the store it leaves holds the state in the node's format: values in the table, the tree beside
    storage = Storage(tmp_path / NODE_FILE)
    try:
        version = storage.tree.latest_version
        assert version == 3 + 4
        assert len(storage.values) == 3008
        state = State(tree=StateTree(storage.tree, storage.tree.root_ref(version), version), source=storage.values)
        assert state.get(account_key(3000)) is not None and state.get(account_key(5000)) is None
        value = storage.tree.get(account_key(17), version)
        assert value is not None and state.get(account_key(17)) == value and codec.decode(value, int) > 0
    finally:
        storage.close()
    # a fresh process starts on that store and runs checkpoints on it, without building
    again = subprocess.run(
        [sys.executable, "-m", "bilayer", "bench", "state", "--node", "--reuse", "--checkpoint-keys", "100",
         "--checkpoints", "2", "--workdir", str(tmp_path), "--json"], capture_output=True, text=True, timeout=240,
        check=False)
    assert again.returncode == 0, again.stderr
    reused = json.loads(again.stdout)["results"]
    assert reused["reused_accounts"] == 3008 and reused["accounts_after"] == 3012
    assert "build_s" not in reused and reused["node_overlay_keys_max"] <= 100


def test_legacy_start_goes_with_node() -> None:
    done = subprocess.run([sys.executable, "-m", "bilayer", "bench", "state", "--legacy-start", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert json.loads(done.stdout)["error"]["code"] == "usage"

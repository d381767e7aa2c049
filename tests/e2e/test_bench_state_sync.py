"""`bilayer bench state-sync`, run as a real process on a small state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bilayer.bench.state import account_key
from bilayer.execution.smt_proof import verify_proof
from bilayer.node.state_store import StateStore


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bilayer", "bench", "state-sync", *args], capture_output=True,
                          text=True, timeout=240, check=False)


def test_the_state_sync_bench_restores_a_store_equal_to_its_source(tmp_path: Path) -> None:
    done = bench("--accounts", "3000", "--chunk-nodes", "300", "--batch-nodes", "800", "--workdir", str(tmp_path),
                 "--json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert results["leaves"] == 3000 and results["nodes"] > 3000
    assert results["chunks"] >= results["nodes"] // 300 and results["batches"] >= results["nodes"] // 800
    assert results["bytes"] > 0 and results["sync_cpu_s"] >= results["serve_cpu_s"] >= 0
    assert results["rebuild_from"] == "this run"
    with StateStore(tmp_path / "state-sync-source.sqlite") as source, \
            StateStore(tmp_path / "state-sync-joined.sqlite") as joined:
        version = source.latest_version
        assert version is not None and joined.latest_version == joined.oldest_version == version
        assert joined.root(version) == source.root(version)
        assert joined.node_count() == source.node_count() == results["nodes"]
        value, proof = joined.prove(account_key(17), version)
        assert value is not None and verify_proof(source.root(version), account_key(17), value, proof)
    again = bench("--reuse", "--workdir", str(tmp_path), "--json")
    assert again.returncode == 0, again.stderr
    reused = json.loads(again.stdout)
    assert reused["config"]["accounts"] == 3000 and reused["results"]["rebuild_from"] == "an earlier run"
    assert reused["results"]["nodes"] == results["nodes"]


def test_the_state_sync_bench_refuses_bad_input_with_a_code(tmp_path: Path) -> None:
    for args in (("--accounts", "5"), ("--reuse",), ("--reuse", "--workdir", str(tmp_path))):
        done = bench(*args, "--json")
        assert done.returncode != 0, args
        assert json.loads(done.stdout)["error"]["code"] == "usage", args

"""`bilayer bench state`, run as a real process on a small state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bilayer.bench.state import account_key
from bilayer.execution.smt_proof import verify_proof
from bilayer.node.state_store import StateStore


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bilayer", "bench", "state", *args], capture_output=True, text=True,
                          timeout=240, check=False)


def test_the_state_bench_builds_updates_and_proves(tmp_path: Path) -> None:
    done = bench("--accounts", "3000", "--build-batch", "1000", "--checkpoint-keys", "100", "--checkpoints", "4",
                 "--proofs", "25", "--workdir", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["config"]["accounts"] == 3000
    results = report["results"]
    assert results["build_versions"] == 3
    assert results["accounts_after"] == 3000 + 4 * 2  # 2% of each checkpoint's keys are new accounts
    for kind in ("inclusion", "absence"):
        for label in ("latest", "older"):
            assert 0 < results[f"proof_{kind}_{label}_ms_p50"] <= results[f"proof_{kind}_{label}_ms_p99"]
    assert 0 < results["root_update_ms_p50"] <= results["root_update_ms_p99"]
    assert results["proof_siblings_mean"] > 8  # about log2 of 3,000 keys
    assert results["rss_peak_mib"] > 0 and results["file_mib"] > 0
    # the file it leaves is a store whose versions (the build's last and four checkpoints) prove
    with StateStore(tmp_path / "state-bench.sqlite") as store:
        assert (store.oldest_version, store.latest_version) == (3, 7)
        assert store.node_count() == results["nodes_stored"]
        value, proof = store.prove(account_key(12), 3)
        assert value is not None and verify_proof(store.root(3), account_key(12), value, proof)
    # a second process runs checkpoints and proofs on that state, without building it again
    again = bench("--reuse", "--checkpoint-keys", "100", "--checkpoints", "2", "--proofs", "10",
                  "--workdir", str(tmp_path), "--json")
    assert again.returncode == 0, again.stderr
    reused = json.loads(again.stdout)
    assert reused["config"]["accounts"] == 3000 and reused["config"]["reuse"] is True
    assert reused["results"]["reused_accounts"] == 3008 and reused["results"]["accounts_after"] == 3012
    assert "build_s" not in reused["results"]
    with StateStore(tmp_path / "state-bench.sqlite") as store:
        assert store.latest_version == 9


def test_the_state_bench_refuses_bad_input_with_a_code(tmp_path: Path) -> None:
    for args in (("--accounts", "5"), ("--reuse",), ("--reuse", "--workdir", str(tmp_path))):
        done = bench(*args, "--json")
        assert done.returncode != 0, args
        assert json.loads(done.stdout)["error"]["code"] == "usage", args

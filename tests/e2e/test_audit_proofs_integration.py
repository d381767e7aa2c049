"""Audit proofs through real processes: proofs and an evidence export fetched from a ledger node
of a 4-validator localnet, then checked by the CLI after the whole network is stopped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bilayer.devnet import localnet
from tests.support.cli import assert_error, bilayer
from tests.support.governance_net import (
    actors,
    cli,
)

pytestmark = pytest.mark.slow


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bilayer", *args], capture_output=True, text=True, timeout=180,
                          check=False)


def test_proofs_and_an_export_from_a_live_network_verify_with_the_network_stopped(
    network: dict[str, Any], tmp_path: Path
) -> None:
    node, _, _, tx = actors(network)
    carol = cli("keys", "show", "carol", "--keystore", network["keystore"])["address"]
    started = datetime.now(UTC).isoformat()

    paid = tx("alice", "tx", "transfer", "--to", carol, "--amount", "25")
    assert paid["status"] == "FINAL", paid
    freeze = tx("regulator", "reg", "freeze", "--account", carol, "--reason", "court order 7", "--legal-ref", "s.9")
    assert freeze["status"] == "FINAL", freeze
    refused = tx("bob", "tx", "transfer", "--to", carol, "--amount", "3")
    assert (refused["status"], refused["reason"], refused["cause"]) == ("REJECTED", "account_frozen", "emergency:1")
    later = tx("dave", "tx", "data", "--text", "a later entry, so the one before is certified")
    assert later["status"] == "FINAL" and later["height"] > refused["height"]

    # the latest checkpoint's own entries are not provable yet: its results root is signed by the next one
    status = cli("query", "status", "--node", node)
    assert status["height"] >= later["height"]
    if status["height"] == later["height"]:
        early = run("audit", "proof", later["id"], "--node", node)
        assert early.returncode == 1 and "[not_yet_provable]" in early.stderr, early

    proof_file, account_file, evidence = tmp_path / "proof.json", tmp_path / "account.json", tmp_path / "evidence"
    fetched = run("audit", "proof", refused["id"], "--node", node, "--out", str(proof_file))
    assert fetched.returncode == 0, fetched.stderr
    fetched = run("audit", "proof", "--account", carol, "--asset", "BLY", "--node", node, "--out", str(account_file))
    assert fetched.returncode == 0, fetched.stderr
    exported = run("audit", "export", "--account", carol, "--from", started, "--to", str(int(time.time() * 1000)),
                   "--out", str(evidence), "--node", node, "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["entries"] >= 2

    localnet.down(tmp_path / "net")  # from here on, nothing but the files and genesis.json
    genesis = network["genesis"]

    entry = bilayer("audit", "verify", str(proof_file), "--genesis", genesis, "--json").json()
    assert (entry["entry"], entry["outcome"], entry["reason"], entry["cause"]) == (
        refused["id"], "REJECTED", "account_frozen", "emergency:1")
    assert entry["height"] == refused["height"]

    account = bilayer("audit", "verify", str(account_file), "--genesis", genesis, "--json").json()
    assert account["address"] == carol and account["balances"]["BLY"] >= 25
    assert account["emergency_freeze"] == "emergency:1"

    package = bilayer("audit", "verify", str(evidence), "--json").json()
    manifest = json.loads((evidence / "manifest.json").read_text())
    listed = {item["id"]: item["role"] for item in manifest["entries"]}
    assert listed[paid["id"]] == "received" and listed[refused["id"]] == "received"
    acts = {item["id"]: item["role"] for item in manifest["acts"]}
    assert acts[freeze["id"]] == "emergency:1 ordered"  # the decision behind the refusal travels with it
    assert package["entries"] == len(manifest["entries"]) and package["acts"] == len(manifest["acts"])

    # an edited outcome is caught offline, by the manifest's hashes
    victim = evidence / manifest["entries"][0]["file"]
    victim.write_text(victim.read_text().replace("FINAL", "REJECTED").replace("account_frozen", "insufficient_funds"))
    assert_error(bilayer("audit", "verify", str(evidence)), "export_hash_mismatch")
    other = tmp_path / "other-genesis.json"
    other.write_text(Path(genesis).read_text().replace(network["chain_id"], "another-chain"))
    assert_error(bilayer("audit", "verify", str(proof_file), "--genesis", str(other)), "genesis_mismatch")

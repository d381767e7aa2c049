"""Four validator processes and a ledger node on loopback: finality, double spends, crashes."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bilayer.audit.verify import decode_proof, verify_proof
from bilayer.devnet import localnet
from bilayer.genesis import load_genesis
from bilayer.keys.address import address_from_public_key
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import SignedEntry
from bilayer.node.config import ConsensusConfig, LimitsConfig
from tests.support.finality import Wallets, checkpoints, funded, height, http, outcomes, submit, wait_until
from tests.support.localnet import running_localnet

pytestmark = pytest.mark.slow


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while localnet.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with running_localnet(tmp_path / "net", validators=4, ledger_nodes=1, pow_bits=4,
                          limits=LimitsConfig(author_rate=0, connection_rate=0),
                          consensus=ConsensusConfig(propose_ms=800, propose_delta_ms=200)) as manifest:
        yield manifest


def test_transfers_and_double_spends_end_final_or_rejected_with_one_history(network: dict[str, Any]) -> None:
    genesis = load_genesis(Path(network["genesis"]))
    ledger = next(n["api_url"] for n in network["nodes"] if n["role"] == "ledger")
    rng = random.Random(5)
    alice, bob, carol, dave = funded(network)
    wallets = Wallets(genesis)
    spenders = [Signer(bytes([7, i]) * 16) for i in range(100)]
    sinks = [Signer(bytes([9, i]) * 16) for i in range(20)]
    entries: list[tuple[bytes, SignedEntry]] = []
    funding: dict[bytes, bytes] = {}
    for spender in spenders:  # 100 fundings of 10 BLY
        id_, signed = wallets.transfer(alice, spender, 10)
        funding[spender.public_key] = id_
        entries.append((id_, signed))
    pairs = []
    for spender in spenders:  # 100 double-spend pairs: two transfers of the whole balance
        first = wallets.transfer(spender, rng.choice(sinks), 10, extra_parent=funding[spender.public_key])
        second = wallets.transfer(spender, rng.choice(sinks), 10)
        pairs.append((first[0], second[0]))
        entries.extend([first, second])
    payers = [bob, carol, dave]
    while len(entries) < 2000:  # ordinary traffic, referencing earlier entries across authors
        payer = payers[len(entries) % 3]
        entries.append(wallets.transfer(payer, rng.choice(sinks), rng.randint(1, 50),
                                        extra_parent=rng.choice(entries)[0]))
    assert len(entries) == 2000
    shuffled = entries[:]
    rng.shuffle(shuffled)  # children often arrive before parents
    submit(ledger, shuffled)

    results = outcomes(ledger, [i for i, _ in entries])
    assert {v["status"] for v in results.values()} <= {"FINAL", "REJECTED"}
    for first, second in pairs:
        won = [results[first]["status"], results[second]["status"]]
        assert sorted(won) == ["FINAL", "REJECTED"], (won, results[second].get("reason"))
        assert results[second]["reason"] == "insufficient_funds"
    assert all(results[i]["status"] == "FINAL" for i in funding.values())

    top = height(ledger)
    for node in network["nodes"]:
        wait_until(lambda node=node: height(node["api_url"]) >= top, 30, f"{node['name']} at height {top}")
    histories = [checkpoints(node["api_url"])[:top] for node in network["nodes"]]
    assert all(h == histories[0] for h in histories), "nodes disagree on checkpoints or roots"
    balances = [http("GET", f"{n['api_url']}/v1/accounts/{sinks[0].address}")[1]["balances"] for n in network["nodes"]]
    assert all(b == balances[0] for b in balances)


def test_validators_crash_and_recover_under_load(network: dict[str, Any]) -> None:
    genesis = load_genesis(Path(network["genesis"]))
    nodes = network["nodes"]
    validators = [n for n in nodes if n["role"] == "validator"]
    ledger = next(n["api_url"] for n in nodes if n["role"] == "ledger")
    alice, bob, *_ = funded(network)
    wallets = Wallets(genesis)
    submitted: list[bytes] = []
    stop = threading.Event()
    failures: list[str] = []

    def load() -> None:
        while not stop.is_set():
            batch = [wallets.transfer(alice, bob, 1) for _ in range(20)]
            try:
                submit(ledger, batch)
                submitted.extend(i for i, _ in batch)
            except (AssertionError, OSError) as exc:
                failures.append(str(exc))
                return
            time.sleep(0.05)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        wait_until(lambda: height(ledger) >= 3, 30, "first checkpoints")
        # f = 1: one validator down, finality goes on
        kill9(validators[1]["pid"])
        at_kill = height(ledger)
        wait_until(lambda: height(ledger) >= at_kill + 3, 40, "checkpoints with one validator down")
        localnet.up(network["dir"])
        wait_until(lambda: height(validators[1]["api_url"]) >= height(ledger), 40, "restarted validator catching up")

        # f + 1 = 2 down: nothing more is finalized
        kill9(validators[2]["pid"])
        kill9(validators[3]["pid"])
        time.sleep(1.5)
        survivors = [ledger, validators[0]["api_url"], validators[1]["api_url"]]
        # what was finalized before the crash may still reach a lagging node; nothing after it may
        stalled = max(height(url) for url in survivors)
        wait_until(lambda: min(height(url) for url in survivors) == stalled, 30, "survivors agreeing on the height")
        time.sleep(4)
        assert [height(url) for url in survivors] == [stalled] * 3, "finalized without a quorum"

        localnet.up(network["dir"])
        wait_until(lambda: height(ledger) >= stalled + 2, 60, "finality resuming after restart")
    finally:
        stop.set()
        loader.join(30)
    assert not failures, failures[:2]

    results = outcomes(ledger, submitted)
    assert all(v["status"] == "FINAL" for v in results.values())
    top = height(ledger)
    for node in nodes:
        wait_until(lambda node=node: height(node["api_url"]) >= top, 40, f"{node['name']} at height {top}")
    histories = [checkpoints(node["api_url"])[:top] for node in nodes]
    assert all(h == histories[0] for h in histories), "nodes disagree on checkpoints or roots"
    # the state trees of the validators killed mid-run answer from their stores as the others do:
    # the same proofs of bob's balance and of his not being frozen, at a height before the kills
    bob_address = address_from_public_key(bob.public_key)
    proofs = [http("GET", f"{node['api_url']}/v1/audit/state-proof/{bob_address}?height=2")[1] for node in nodes]
    assert all(proof["items"] == proofs[0]["items"] for proof in proofs)
    summary = verify_proof(decode_proof(json.dumps(proofs[1]).encode()), genesis)
    assert summary["height"] == 2 and summary["frozen_by"] is None and "frozen_by" in summary["proven_absent"]
    # no equivocation was ever recorded by anyone
    for node in nodes:
        assert http("GET", f"{node['api_url']}/v1/evidence")[1]["equivocations"] == []

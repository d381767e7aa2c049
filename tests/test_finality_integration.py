"""Four validator processes and a ledger node on loopback: finality, double spends, crashes."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bilayer import codec
from bilayer.devnet import localnet
from bilayer.genesis import Genesis, load_genesis
from bilayer.keys.keystore import Keystore
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import SignedEntry
from bilayer.ledger.operations import Transfer
from bilayer.node.config import ConsensusConfig, LimitsConfig

from .conftest import make_entry, running_localnet

pytestmark = pytest.mark.slow


def http(method: str, url: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/msgpack")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def submit(url: str, entries: list[tuple[bytes, SignedEntry]], attempts: int = 30) -> None:
    """As a client should: a batch refused early (503/429 with Retry-After) is sent again after that wait."""
    for start in range(0, len(entries), 500):
        for _ in range(attempts):
            request = urllib.request.Request(f"{url}/v1/entries/batch", method="POST",
                                             data=codec.encode([s for _, s in entries[start:start + 500]]))
            request.add_header("Content-Type", "application/msgpack")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, body = response.status, json.loads(response.read())
                break
            except urllib.error.HTTPError as exc:
                status, body = exc.code, json.loads(exc.read())
                if status not in (429, 503) or "Retry-After" not in exc.headers:
                    break
                time.sleep(float(exc.headers["Retry-After"]))
        assert status == 200, body
        errors = [r for r in body["results"] if "error" in r]
        assert not errors, errors[:3]


def height(url: str) -> int:
    return int(http("GET", f"{url}/v1/status", timeout=5)[1]["height"])


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def outcomes(url: str, ids: list[bytes], timeout: float = 120) -> dict[bytes, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found: dict[bytes, dict[str, Any]] = {}
    for entry_id in ids:
        while True:
            _, view = http("GET", f"{url}/v1/entries/{entry_id.hex()}?wait=5")
            if view.get("status") in ("FINAL", "REJECTED"):
                found[entry_id] = view
                break
            assert time.monotonic() < deadline, f"{entry_id.hex()} has no outcome: {view}"
    return found


def checkpoints(url: str) -> list[tuple[int, str, str, str]]:
    top = height(url)
    rows = []
    for h in range(1, top + 1):
        _, view = http("GET", f"{url}/v1/checkpoints/{h}")
        rows.append((h, view["id"], view["state_root"], view["results_root"]))
    return rows


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


class Wallets:
    """Client-side author chains: each signer's next sequence number and previous entry."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.heads: dict[bytes, tuple[int, bytes]] = {}

    def transfer(self, signer: Signer, to: Signer, amount: int, extra_parent: bytes | None = None,
                 ) -> tuple[bytes, SignedEntry]:
        seq, prev = self.heads.get(signer.public_key, (0, self.genesis.root))
        parents = [prev] if seq > 0 else [self.genesis.root]
        if extra_parent is not None and extra_parent not in parents:
            parents.append(extra_parent)
        id_, signed = make_entry(signer, self.genesis, seq=seq, parents=parents,
                                 op=Transfer(asset="BLY", amount=amount, to=to.public_key))
        self.heads[signer.public_key] = (seq + 1, id_)
        return id_, signed


def funded(manifest: dict[str, Any]) -> list[Signer]:
    store = Keystore(Path(manifest["keystore"]))
    return [store.load(name) for name in manifest["funded_keys"]]


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
    # no equivocation was ever recorded by anyone
    for node in nodes:
        assert http("GET", f"{node['api_url']}/v1/evidence")[1]["equivocations"] == []

"""Nodes join a running localnet by state snapshot over their peer links (real processes): under
load, then a validator by proposal; with a hostile peer serving corrupted chunks and a kill -9
in the middle of the sync."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from bilayer.devnet import localnet
from bilayer.genesis import Allocation, GovernanceParams, load_genesis
from bilayer.keys.signing import Signer
from bilayer.node.config import LimitsConfig, NodeHome, SyncConfig, load_config, write_config
from tests.support.finality import Wallets, funded, height, http, submit, wait_until
from tests.support.governance_net import cli
from tests.support.localnet import running_localnet


def checkpoint(url: str, at: int) -> dict[str, Any]:
    return dict(http("GET", f"{url}/v1/checkpoints/{at}", timeout=5)[1])


def joined_at(log: str) -> int:
    found = re.search(r"snapshot join done: state after height (\d+),", log)
    assert found is not None, log[-2000:]
    return int(found.group(1))


@contextmanager
def load(url: str, manifest: dict[str, Any], wallets: Wallets) -> Iterator[None]:
    """Transfers to `url` in the background for the block (bounded: 400 batches at most)."""
    signers = funded(manifest)
    stop = threading.Event()

    def run() -> None:
        for _ in range(400):
            if stop.is_set():
                return
            submit(url, [wallets.transfer(s, signers[0], 1) for s in signers[1:] for _ in range(3)])
            stop.wait(0.3)

    loader = threading.Thread(target=run, daemon=True)
    loader.start()
    try:
        yield
    finally:
        stop.set()
        loader.join(60)


def same_roots(urls: list[str], timeout: float = 60) -> int:
    """Wait until every node holds the height the first one is at; all roots there agree."""
    target = height(urls[0])
    wait_until(lambda: all(height(u) >= target for u in urls), timeout, "every node to reach the height")
    roots = {checkpoint(u, target)["state_root"] for u in urls}
    assert len(roots) == 1, roots
    return target


def decide_set_validator(network: dict[str, Any], node: str, *action: str) -> int:
    """A council decision through the CLI (propose, two votes, execute after the timelock)."""
    def tx(key: str, *args: str) -> dict[str, Any]:
        return cli(*args, "--key", key, "--node", node, "--keystore", network["keystore"], "--wait")

    proposed = tx("council1", "gov", "propose", "--action", "set-validator", *action, "--reason", "rotation")
    assert proposed["status"] == "FINAL", proposed
    number = "1"  # the network's first proposal
    assert tx("council1", "gov", "vote", number, "yes")["status"] == "FINAL"
    assert tx("council2", "gov", "vote", number, "yes")["status"] == "FINAL"
    deadline = time.monotonic() + 30
    while (executed := tx("council3", "gov", "execute", number))["status"] != "FINAL":
        assert executed["reason"] == "timelock_not_expired", executed
        assert time.monotonic() < deadline, "the proposal never became executable"
        time.sleep(0.5)
    return int(executed["height"])


def test_a_fifth_node_joins_by_snapshot_under_load_then_validates_and_all_roots_agree(tmp_path: Path) -> None:
    with running_localnet(tmp_path / "net", validators=4, ledger_nodes=0, pow_bits=0,
                          limits=LimitsConfig(author_rate=0, connection_rate=0),
                          governance=GovernanceParams(voting_period_ms=60_000, timelock_ms=1_500)) as network:
        urls = [node["api_url"] for node in network["nodes"]]
        wallets = Wallets(load_genesis(Path(network["genesis"])))
        with load(urls[1], network, wallets):
            wait_until(lambda: height(urls[0]) >= 5, 90, "a few checkpoints")
            joiner = cli("localnet", "add-node", "--name", "joiner", "--dir", str(network["dir"]), "--sync",
                         "snapshot", "--timeout", "90")
            url = joiner["api_url"]
            start = joined_at(Path(joiner["log"]).read_text())
            assert start >= 4  # the state of a recent height, not genesis
            wait_until(lambda: height(url) >= start + 3, 120, "the joined node to execute checkpoints")
            assert http("GET", f"{url}/v1/status")[1]["role"] == "ledger"
            # no checkpoint before the snapshot was executed here
            assert http("GET", f"{url}/v1/checkpoints/{start - 1}")[0] == 404

            added = decide_set_validator(network, urls[0], "--target", joiner["address"], "--power", "1",
                                         "--name", "joiner")
            wait_until(lambda: height(urls[0]) >= added + 2, 60, "the change to govern")
            wait_until(lambda: http("GET", f"{url}/v1/status")[1]["role"] == "validator", 30,
                       "the joined node to become a validator")

            def signed() -> bool:
                top = height(urls[0])
                return any(s["validator"] == joiner["public_key"]
                           for h in range(added + 2, top + 1)
                           for s in checkpoint(urls[0], h)["certificate"]["signatures"])

            wait_until(signed, 90, "the joined validator to sign a certificate")
        same_roots([*urls, url])

        # restarted, the joined node goes on from its own store (no second join)
        localnet.restart_node(network["dir"], "joiner")
        assert Path(joiner["log"]).read_text().count("snapshot join done") == 1
        with load(urls[2], network, wallets):
            top = height(urls[0])
            wait_until(lambda: height(url) >= top + 2, 90, "the restarted node to follow")
        same_roots([*urls, url])


def test_a_hostile_peer_is_dropped_and_a_sync_killed_midway_resumes(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    # a state of some 20,000 accounts, so a sync takes many chunks
    extra = tuple(Allocation(Signer(i.to_bytes(32, "big")).address, "BLY", 1) for i in range(1, 20_001))
    localnet.create(directory, validators=4, ledger_nodes=0, pow_bits=0, extra_allocations=extra,
                    limits=LimitsConfig(author_rate=0, connection_rate=0))
    manifest = localnet.read_manifest(directory)
    for index, node in enumerate(manifest["nodes"]):
        home = NodeHome(Path(node["home"]))
        config = load_config(home)
        # slow serving, so the kill lands mid-sync; validator3 corrupts every chunk it serves
        config = msgspec.structs.replace(config, sync=SyncConfig(chunk_rate=4, chunk_burst=2),
                                         testing=msgspec.structs.replace(config.testing,
                                                                         corrupt_snapshot_chunks=index == 3))
        write_config(home, config)
    try:
        network = localnet.up(directory, timeout=120)
        urls = [node["api_url"] for node in network["nodes"]]
        with load(urls[0], network, Wallets(load_genesis(Path(network["genesis"])))):
            wait_until(lambda: height(urls[0]) >= 3, 90, "a few checkpoints")
            joiner = localnet.add_node(directory, "joiner", sync=SyncConfig(mode="snapshot", chunk_nodes=300),
                                       wait=False)
            log = Path(joiner["log"])
            ledger = NodeHome(Path(joiner["home"])).ledger_db

            def nodes_on_disk() -> int:
                if not ledger.exists():
                    return 0
                with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5) as conn:
                    try:
                        return int(conn.execute("SELECT count(*) FROM smt_nodes").fetchone()[0])
                    except sqlite3.OperationalError:
                        return 0

            wait_until(lambda: nodes_on_disk() > 0, 90, "the first verified batch on disk")
            # SIGTERM mid-sync: the node stops promptly, keeping what it verified
            os.kill(joiner["pid"], signal.SIGTERM)
            wait_until(lambda: not localnet.pid_alive(joiner["pid"]), 20, "the joining node to stop")
            assert "stopping during start" in log.read_text()
            stopped_with = nodes_on_disk()
            joiner["pid"] = localnet.start_node(joiner)
            wait_until(lambda: nodes_on_disk() > stopped_with, 90, "another verified batch on disk")
            # kill -9 mid-sync
            os.kill(joiner["pid"], signal.SIGKILL)
            wait_until(lambda: not localnet.pid_alive(joiner["pid"]), 20, "the killed node to be gone")
            kept = nodes_on_disk()
            assert "snapshot join done" not in log.read_text()

            node = localnet.restart_node(directory, "joiner", timeout=180)
            text = log.read_text()
            assert text.count(", resuming") == 2
            assert re.search(r"peer:\w+ sent a chunk that does not verify \(snapshot_chunk_\w+\): dropped", text)
            start = joined_at(text)
            assert nodes_on_disk() > kept
            wait_until(lambda: height(node["api_url"]) >= start + 2, 120, "the joined node to follow")
        same_roots([*urls, node["api_url"]])
        metrics = http_text(f"{node['api_url']}/metrics")
        assert "bilayer_snapshot_sources_dropped_total{code=\"snapshot_chunk" in metrics
    finally:
        localnet.down(directory)


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())

"""A node joins a running localnet by state snapshot over its peer links (real processes)."""

from __future__ import annotations

import threading
from pathlib import Path

from bilayer.devnet import localnet
from bilayer.genesis import load_genesis
from tests.support.finality import Wallets, funded, height, http, submit, wait_until
from tests.support.localnet import running_localnet


def status(url: str) -> dict[str, object]:
    return http("GET", f"{url}/v1/status", timeout=5)[1]

def checkpoint(url: str, at: int) -> dict[str, object]:
    return http("GET", f"{url}/v1/checkpoints/{at}", timeout=5)[1]

def test_a_fifth_node_joins_by_snapshot_under_load_and_follows_to_the_same_state(tmp_path: Path) -> None:
    with running_localnet(tmp_path / "net", validators=4, ledger_nodes=0, pow_bits=0) as manifest:
        urls = [node["api_url"] for node in manifest["nodes"]]
        genesis = load_genesis(Path(manifest["genesis"]))
        wallets, signers = Wallets(genesis), funded(manifest)
        stop = threading.Event()

        def load() -> None:  # bounded: stops when the test says, or after 300 batches
            for _ in range(300):
                if stop.is_set():
                    return
                submit(urls[1], [wallets.transfer(s, signers[0], 1) for s in signers[1:] for _ in range(3)])
                stop.wait(0.3)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        try:
            wait_until(lambda: height(urls[0]) >= 5, 90, "a few checkpoints")
            joined = localnet.add_node(tmp_path / "net", "joiner", timeout=90, sync="snapshot")
            url = joined["api_url"]
            log = Path(joined["log"]).read_text()
            assert "snapshot join done" in log
            start = int(log.split("snapshot join done: state after height ")[1].split(",")[0])
            assert start >= 3
            wait_until(lambda: height(url) >= start + 3, 120, "the joined node to execute checkpoints")
        finally:
            stop.set()
            loader.join(60)
        target = height(url)
        wait_until(lambda: all(height(u) >= target for u in urls), 60, "the validators to reach the height")
        mine = checkpoint(url, target)
        for other in urls:
            assert checkpoint(other, target)["state_root"] == mine["state_root"]
        assert status(url)["healthy"] is True

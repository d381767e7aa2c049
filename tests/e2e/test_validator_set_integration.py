"""Validator set changes through real processes: a fifth node joins the set by proposal and signs
certificates, an original validator leaves it and is stopped, finality goes on, and a node that
starts from genesis afterwards verifies every checkpoint with the set of its own height."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bilayer.devnet import localnet
from bilayer.genesis import GovernanceParams, load_genesis
from bilayer.node.config import LimitsConfig
from tests.support.finality import Wallets, checkpoints, funded, height, http, submit, wait_until
from tests.support.governance_net import cli
from tests.support.localnet import running_localnet

pytestmark = pytest.mark.slow


@pytest.fixture
def network(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with running_localnet(tmp_path / "net", validators=4, ledger_nodes=1, pow_bits=4,
                          limits=LimitsConfig(author_rate=0, connection_rate=0),
                          governance=GovernanceParams(voting_period_ms=60_000, timelock_ms=1_500)) as manifest:
        yield manifest


class Council:
    """Proposals through the CLI with the localnet's council keys, via the ledger node."""

    def __init__(self, network: dict[str, Any], node: str) -> None:
        self.keys = network["keystore"]
        self.node = node
        self.proposals = 0

    def tx(self, key: str, *args: str) -> dict[str, Any]:
        return cli(*args, "--key", key, "--node", self.node, "--keystore", self.keys, "--wait")

    def decide(self, *action: str) -> int:
        """Propose, vote twice, execute once the timelock ran out; the height it executed at."""
        proposed = self.tx("council1", "gov", "propose", "--action", "set-validator", *action,
                           "--reason", "validator rotation")
        assert proposed["status"] == "FINAL", proposed
        self.proposals += 1
        number = str(self.proposals)
        assert self.tx("council1", "gov", "vote", number, "yes")["status"] == "FINAL"
        assert self.tx("council2", "gov", "vote", number, "yes")["status"] == "FINAL"
        deadline = time.monotonic() + 30
        while (executed := self.tx("council3", "gov", "execute", number))["status"] != "FINAL":
            assert executed["reason"] == "timelock_not_expired", executed
            assert time.monotonic() < deadline, "the proposal never became executable"
            time.sleep(0.5)
        return int(executed["height"])


class Traffic:
    """Transfers straight to a node's API: every one makes the validators finalize a checkpoint."""

    def __init__(self, network: dict[str, Any], node: str) -> None:
        self.wallets = Wallets(load_genesis(Path(network["genesis"])))
        self.alice, self.bob, *_ = funded(network)
        self.node = node

    def until_height(self, target: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while height(self.node) < target:
            assert time.monotonic() < deadline, f"finality stalled below height {target}"
            entry_id, signed = self.wallets.transfer(self.alice, self.bob, 1)
            submit(self.node, [(entry_id, signed)])
            url = f"{self.node}/v1/entries/{entry_id.hex()}?wait=5"
            wait_until(lambda url=url: http("GET", url)[1].get("status") == "FINAL", 30, "a transfer to be final")


def signers_of(node: str, heights: range) -> dict[int, set[str]]:
    return {h: {s["validator"] for s in http("GET", f"{node}/v1/checkpoints/{h}")[1]["certificate"]["signatures"]}
            for h in heights}


def test_a_validator_joins_and_one_leaves_by_proposal(network: dict[str, Any]) -> None:
    nodes = network["nodes"]
    ledger = next(n["api_url"] for n in nodes if n["role"] == "ledger")
    validator0 = nodes[0]
    council, traffic = Council(network, ledger), Traffic(network, ledger)

    # a fifth node, not in genesis, follows the chain as a ledger node
    joiner = cli("localnet", "add-node", "--name", "validator4", "--dir", str(network["dir"]))
    assert http("GET", f"{joiner['api_url']}/v1/status")[1]["role"] == "ledger"
    added = council.decide("--target", joiner["address"], "--power", "1", "--name", "validator4")
    assert council.proposals == 1

    # the set of the next height is unchanged; two heights after the execution the joiner votes
    shown = http("GET", f"{ledger}/v1/validators?height={added + 1}")[1]
    assert len(shown["validators"]) == 4 and shown["since_height"] == 1
    traffic.until_height(added + 2)
    wait_until(lambda: http("GET", f"{joiner['api_url']}/v1/status")[1]["role"] == "validator", 30,
               "the joiner to become a validator")
    current = http("GET", f"{ledger}/v1/validators")[1]
    assert len(current["validators"]) == 5 and current["since_height"] == added + 2 and current["proposals"] == [1]
    assert {"validator4", *(f"validator{i}" for i in range(4))} == {v["name"] for v in current["validators"]}

    # it signs commit certificates (a quorum is 4 of 5: within a few heights its precommit is in one)
    deadline = time.monotonic() + 60
    while not any(joiner["public_key"] in keys for keys in signers_of(ledger, range(added + 2, height(ledger) + 1))
                  .values()):
        assert time.monotonic() < deadline, "the new validator never signed a certificate"
        traffic.until_height(height(ledger) + 1)
    assert all(joiner["public_key"] not in keys for keys in signers_of(ledger, range(1, added + 2)).values())

    # an original validator leaves; once the change governs, it is stopped and finality goes on
    removed = council.decide("--target", http("GET", f"{validator0['api_url']}/v1/status")[1]["node_key"],
                             "--power", "0")
    traffic.until_height(removed + 2)
    wait_until(lambda: http("GET", f"{validator0['api_url']}/v1/status")[1]["role"] == "ledger", 30,
               "the removed validator to become a ledger node")
    key0 = http("GET", f"{validator0['api_url']}/v1/status")[1]["node_key"]
    localnet.stop_pids([validator0["pid"]])
    top = height(ledger)
    traffic.until_height(top + 3)
    assert all(key0 not in keys for keys in signers_of(ledger, range(removed + 2, height(ledger) + 1)).values())

    history = http("GET", f"{ledger}/v1/validators/history")[1]["changes"]
    assert [(c["change"], c["height"], c["executed_height"], c["proposals"], len(c["validators"]))
            for c in history] == [(1, 1, None, [], 4), (2, added + 2, added, [1], 5), (3, removed + 2, removed, [2], 4)]

    # a node that starts from genesis now verifies every checkpoint, old ones with the old sets
    late = cli("localnet", "add-node", "--name", "late", "--dir", str(network["dir"]))
    top = height(ledger)
    wait_until(lambda: height(late["api_url"]) >= top, 60, "the late node to catch up")
    assert http("GET", f"{late['api_url']}/v1/validators/history")[1]["changes"] == history

    # restarted, the joiner is a validator again and the removed one a ledger node (3 of 4 vote meanwhile)
    localnet.stop_pids([joiner["pid"]])
    traffic.until_height(height(ledger) + 1)
    localnet.up(network["dir"])  # starts what is not running: the joiner and validator0
    for node, role in ((joiner, "validator"), (validator0, "ledger")):
        wait_until(lambda node=node, role=role: http("GET", f"{node['api_url']}/v1/status")[1]["role"] == role, 30,
                   f"{node['name']} to restart as a {role}")
    top = height(ledger) + 2
    traffic.until_height(top)

    running = [n["api_url"] for n in nodes] + [joiner["api_url"], late["api_url"]]
    for url in running:
        wait_until(lambda url=url: height(url) >= top, 30, f"{url} at height {top}")
    views = [checkpoints(url)[:top] for url in running]
    assert all(view == views[0] for view in views), "nodes disagree on checkpoints or roots"

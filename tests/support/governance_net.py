"""A 4-validator localnet with a council, and the CLI calls its actors make."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bilayer.genesis import GovernanceParams
from bilayer.node.config import LimitsConfig
from tests.support.localnet import running_localnet


@pytest.fixture
def network(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with running_localnet(tmp_path / "net", validators=4, ledger_nodes=1, pow_bits=4,
                          limits=LimitsConfig(author_rate=0),
                          governance=GovernanceParams(voting_period_ms=60_000, timelock_ms=1_500,
                                                      emergency_ratify_ms=15_000)) as manifest:
        yield manifest


def cli(*args: str) -> dict[str, Any]:
    run = subprocess.run([sys.executable, "-m", "bilayer", *args, "--json"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    return dict(json.loads(run.stdout))


Tx = Callable[..., dict[str, Any]]


def actors(network: dict[str, Any]) -> tuple[str, str, str, Tx]:
    """The ledger node's URL, alice's and bob's addresses, and a way to submit as any key (and wait)."""
    node = next(n["api_url"] for n in network["nodes"] if n["role"] == "ledger")
    keys = network["keystore"]
    alice = cli("keys", "show", "alice", "--keystore", keys)["address"]
    bob = cli("keys", "show", "bob", "--keystore", keys)["address"]

    def tx(key: str, *args: str) -> dict[str, Any]:
        return cli(*args, "--key", key, "--node", node, "--keystore", keys, "--wait")

    return node, alice, bob, tx

"""The README's examples run as written against a localnet of real processes, so they cannot rot:
every Python block of the SDK section, and the governance CLI example (propose, two votes,
execute) of "Using it"."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bilayer.genesis import GovernanceParams
from bilayer.node.config import LimitsConfig
from tests.support.localnet import running_localnet
from tests.support.paths import REPO

pytestmark = pytest.mark.slow

README = REPO / "README.md"
EXAMPLE_TIMEOUT_S = 120


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def governance_cli_lines(text: str) -> list[str]:
    """The first freeze proposal of "Using it" and the vote and execute lines after it."""
    lines = [line.split("#", 1)[0].strip() for line in section(text, "Using it").splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("bilayer gov propose --action freeze"))
    return [line for line in lines[start:start + 4] if line]


def test_the_readme_has_the_examples_this_test_runs() -> None:
    text = README.read_text()
    blocks = python_blocks(section(text, "SDK"))
    assert len(blocks) == 5
    for needle in ("client.status()", "ops.transfer", "ops.propose", 'app_query("warehouse"', "AsyncClient"):
        assert any(needle in block for block in blocks), needle
    assert [shlex.split(line)[1:3] for line in governance_cli_lines(text)] == [
        ["gov", "propose"], ["gov", "vote"], ["gov", "vote"], ["gov", "execute"]]


@pytest.fixture
def network(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with running_localnet(tmp_path / "net", validators=4, ledger_nodes=1, pow_bits=4,
                          limits=LimitsConfig(author_rate=0),
                          governance=GovernanceParams(voting_period_ms=60_000, timelock_ms=1_500)) as manifest:
        yield manifest


def _env(network: dict[str, Any]) -> dict[str, str]:
    urls = [node["api_url"] for node in network["nodes"]]
    ledger = next(node["api_url"] for node in network["nodes"] if node["role"] == "ledger")
    # the ledger node first: the examples fail over to the validators only if it does not answer
    return {**os.environ, "BILAYER_NODE": ",".join([ledger, *[u for u in urls if u != ledger]]),
            "BILAYER_KEYSTORE": str(network["keystore"])}


def _cli(env: dict[str, str], args: list[str]) -> dict[str, Any]:
    env = {**env, "BILAYER_NODE": env["BILAYER_NODE"].split(",")[0]}
    run = subprocess.run([sys.executable, "-m", "bilayer", *args, "--json"], capture_output=True, text=True,
                         timeout=EXAMPLE_TIMEOUT_S, env=env)
    assert run.returncode == 0, run.stderr + run.stdout
    return dict(json.loads(run.stdout))


def test_readme_examples_run_against_a_localnet(network: dict[str, Any]) -> None:
    text = README.read_text()
    env = _env(network)
    dave = _cli(env, ["keys", "show", "dave"])["address"]

    # the governance CLI example, first, so that its proposal is number 1 as the README says
    for line in governance_cli_lines(text):
        args = [dave if arg == "ADDRESS" else arg for arg in shlex.split(line)[1:]]
        if args[:2] == ["gov", "execute"]:  # "once the timelock has run out"
            shown = _cli(env, ["gov", "show", args[2]])
            assert shown["status"] == "passed" and len(shown["votes"]) == 2
            time.sleep(max(0.0, shown["executable_from_ms"] / 1000 - time.time()) + 1.0)
        assert _cli(env, args)["status"] == "FINAL", line
    assert _cli(env, ["gov", "show", "1"])["status"] == "executed"
    assert _cli(env, ["compliance", "list"])["frozen_accounts"] == [{"address": dave, "decision": 1}]

    # every Python block of the SDK section, in order, each in a fresh interpreter
    for number, block in enumerate(python_blocks(section(text, "SDK")), 1):
        run = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                             timeout=EXAMPLE_TIMEOUT_S, env=env)
        assert run.returncode == 0, f"SDK example {number} failed:\n{block}\n{run.stderr}{run.stdout}"
        assert run.stdout.strip(), f"SDK example {number} printed nothing"
    # what the examples did is on the chain
    proposals = _cli(env, ["gov", "list"])["proposals"]
    assert [(p["number"], p["status"]) for p in proposals] == [(2, "executed"), (1, "executed")]

"""Fixtures every tier may use; the helpers behind them live in `tests/support`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bilayer.genesis import ChainParams, Genesis
from bilayer.node.config import LimitsConfig
from tests.support.builders import TEST_POW_BITS
from tests.support.localnet import running_localnet

# fixtures several modules share, defined next to their helpers
pytest_plugins = [
    "tests.support.browser",
    "tests.support.chain",
    "tests.support.cli",
    "tests.support.governance_net",
    "tests.support.warehouse_net",
]


@pytest.fixture
def genesis() -> Genesis:
    return Genesis(chain_id="test-chain", genesis_time_ms=1_700_000_000_000, params=ChainParams(pow_bits=TEST_POW_BITS))


@pytest.fixture
def single_node(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """One real ledger node process (pow 4 bits, no rate limits); yields its manifest."""
    with running_localnet(tmp_path / "net", validators=0, ledger_nodes=1, pow_bits=TEST_POW_BITS,
                          limits=LimitsConfig(author_rate=0, connection_rate=0)) as manifest:
        yield manifest

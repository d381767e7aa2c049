"""Shared fixtures: keys, genesis, entry builders and real node processes on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bilayer.devnet import localnet
from bilayer.genesis import ChainParams, Genesis
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import SignedEntry, build_entry
from bilayer.ledger.operations import Data, Operation, Transfer
from bilayer.node.config import LimitsConfig

TEST_POW_BITS = 4


def seeded_signer(n: int) -> Signer:
    return Signer(n.to_bytes(32, "big"))


@pytest.fixture
def genesis() -> Genesis:
    return Genesis(chain_id="test-chain", genesis_time_ms=1_700_000_000_000, params=ChainParams(pow_bits=TEST_POW_BITS))


def make_entry(
    signer: Signer,
    genesis: Genesis,
    *,
    seq: int = 0,
    parents: list[bytes] | None = None,
    op: Operation | None = None,
    payload: bytes = b"",
    time_ms: int | None = None,
    chain_id: str | None = None,
    pow_bits: int | None = None,
) -> tuple[bytes, SignedEntry]:
    return build_entry(
        signer,
        chain_id=chain_id or genesis.chain_id,
        seq=seq,
        parents=parents if parents is not None else [genesis.root],
        op=op or Data(media_type="text/plain"),
        payload=payload,
        time_ms=time_ms if time_ms is not None else int(time.time() * 1000),
        pow_bits=genesis.params.pow_bits if pow_bits is None else pow_bits,
    )


def transfer_to(recipient: Signer, amount: int = 1) -> Transfer:
    return Transfer(asset="BLY", amount=amount, to=recipient.public_key)


@contextmanager
def running_localnet(directory: Path, timeout: float = 30.0, **options: Any) -> Iterator[dict[str, Any]]:
    """A localnet of real processes made with `localnet.create(directory, **options)`, up for the
    block; its manifest also names its `dir`. Every process is stopped afterwards."""
    localnet.create(directory, **options)
    try:
        manifest = localnet.up(directory, timeout=timeout)
        manifest["dir"] = directory
        yield manifest
    finally:
        localnet.down(directory)


@pytest.fixture
def single_node(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """One real ledger node process (pow 4 bits, no rate limits); yields its manifest."""
    with running_localnet(tmp_path / "net", validators=0, ledger_nodes=1, pow_bits=TEST_POW_BITS,
                          limits=LimitsConfig(author_rate=0, connection_rate=0)) as manifest:
        yield manifest

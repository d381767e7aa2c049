"""A node's state values stay on disk: a restart reads none of them up front, memory holds a
bounded cache and the writes not yet durable, a commit the disk refuses leaves memory exactly
what the disk holds, and `bilayer node check-state` finds a damaged value with its code."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from bilayer import codec
from bilayer.cli.main import cli
from bilayer.execution.state import balance_key
from bilayer.genesis import Allocation, ChainParams, Genesis, GenesisValidator
from bilayer.node.chain import Chain, check_state
from bilayer.node.config import NodeHome
from bilayer.node.ingest import Ingest
from bilayer.node.metrics import NodeMetrics
from bilayer.node.process import HomeLock
from bilayer.node.state_store import StateStoreCorrupt
from bilayer.node.storage import Storage
from tests.support.builders import make_entry, seeded_signer, transfer_to
from tests.support.chain import GENESIS_TIME, VALIDATORS, Node, finalize, next_checkpoint

ACCOUNTS = 2000
CACHE = 64
ALICE = seeded_signer(11)
HOLDERS = [seeded_signer(1000 + n) for n in range(ACCOUNTS)]

GENESIS = Genesis(
    chain_id="chain-test",
    genesis_time_ms=GENESIS_TIME,
    params=ChainParams(pow_bits=0),
    allocations=(Allocation(ALICE.address, "BLY", 10_000),
                 *(Allocation(h.address, "BLY", 1 + n) for n, h in enumerate(HOLDERS))),
    validators=tuple(GenesisValidator(f"v{i}", s.public_key.hex(), 1) for i, s in enumerate(VALIDATORS)),
)


def open_node(path: Path) -> Node:
    storage = Storage(path)
    chain = Chain(storage, GENESIS, cache_values=CACHE)
    chain.load()
    return Node(path, storage, chain, Ingest(storage, GENESIS, NodeMetrics()))


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    node = open_node(NodeHome(tmp_path).ledger_db)
    node.storage.close()
    yield tmp_path


def pay(node: Node, seq: int, to: int, after: bytes | None = None) -> bytes:
    """One transfer from Alice to a holder (after her entry `after`), in the next checkpoint."""
    entry = make_entry(ALICE, GENESIS, seq=seq, parents=None if after is None else [after],
                       op=transfer_to(HOLDERS[to], 5), time_ms=GENESIS_TIME + 1 + seq)
    node.add(entry)
    applied = node.apply(finalize(next_checkpoint(node.chain, [entry[0]])))
    assert [r.code for r in applied.results] == [""]
    return entry[0]


def disk_values(storage: Storage) -> dict[bytes, bytes]:
    return dict(storage.state_items())


def test_a_restart_reads_no_value_up_front_and_the_cache_stays_bounded(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def whole_table(self: Storage) -> Iterator[tuple[bytes, bytes]]:
        raise AssertionError("the start read the whole state table")

    monkeypatch.setattr(Storage, "state_items", whole_table)
    node = open_node(NodeHome(home).ledger_db)
    monkeypatch.undo()
    try:
        state = node.chain.state
        assert state.overlay_size == 0 and state.cached_values <= CACHE
        assert len(state) == len(disk_values(node.storage)) > ACCOUNTS
        for n, holder in enumerate(HOLDERS):  # every account read once: the cache keeps the last few
            assert state.balance(holder.public_key, "BLY") == 1 + n
        assert state.cached_values == CACHE
        pay(node, 1, 1500, pay(node, 0, 7))
        assert node.chain.height == 2
        assert state.overlay_size == 0  # what the commits wrote is read from disk now
        assert state.balance(HOLDERS[1500].public_key, "BLY") == 1501 + 5
        assert dict(state.scan(b"B")) == {k: v for k, v in disk_values(node.storage).items() if k[:1] == b"B"}
        assert check_state(node.storage).keys == len(state)
    finally:
        node.storage.close()


def test_a_refused_commit_leaves_memory_what_the_disk_holds(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = open_node(NodeHome(home).ledger_db)
    try:
        first = pay(node, 0, 3)
        root = node.chain.state_root
        entry = make_entry(ALICE, GENESIS, seq=1, parents=[first], op=transfer_to(HOLDERS[4], 5),
                           time_ms=GENESIS_TIME + 2)
        node.add(entry)

        def disk_error(*args: object, **kwargs: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(node.storage, "commit_checkpoint", disk_error)
        finalized = finalize(next_checkpoint(node.chain, [entry[0]]))
        with pytest.raises(sqlite3.OperationalError):
            node.apply(finalized)
        monkeypatch.undo()
        state = node.chain.state
        assert node.chain.height == 1 and node.chain.state_root == root == state.root()
        assert state.overlay_size == 0
        assert dict(state.items()) == disk_values(node.storage)
        assert state.balance(HOLDERS[4].public_key, "BLY") == 5
        node.apply(finalized)  # the disk is back: the same checkpoint is recorded
        assert node.chain.height == 2 and node.chain.state.overlay_size == 0
        assert node.chain.state.balance(HOLDERS[4].public_key, "BLY") == 10
    finally:
        node.storage.close()


def test_check_state_reports_a_whole_state_and_names_a_damaged_value(home: Path) -> None:
    runner = CliRunner()
    whole = runner.invoke(cli, ["node", "check-state", "--home", str(home), "--json"])
    assert whole.exit_code == 0, whole.output
    report = json.loads(whole.output)
    assert report["height"] == 0 and report["keys"] > ACCOUNTS
    with closing(sqlite3.connect(NodeHome(home).ledger_db)) as db:
        db.execute("UPDATE state SET value = ? WHERE key = ?",
                   (codec.encode(999), balance_key(HOLDERS[1234].public_key, "BLY")))
        db.commit()
    damaged = runner.invoke(cli, ["node", "check-state", "--home", str(home), "--json"])
    assert isinstance(damaged.exception, StateStoreCorrupt)
    assert damaged.exception.code == "state_store_corrupt"
    assert HOLDERS[1234].public_key.hex() in str(damaged.exception)


def test_check_state_never_runs_under_a_running_node(home: Path) -> None:
    with HomeLock(NodeHome(home).data_dir).acquire("node run"):
        refused = CliRunner().invoke(cli, ["node", "check-state", "--home", str(home), "--json"])
    assert getattr(refused.exception, "code", None) == "node_running"

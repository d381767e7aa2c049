"""Chain format 2: a data directory the previous format wrote (bucketed-tree roots in its
signed checkpoints, no recorded format) is refused by `node run` with a code, a message that
names the way forward, and nothing written; that way forward, `genesis export`, carries the
state of its last checkpoint into a new chain's genesis that names the chain it continues."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bilayer.bench.proof import ChainBuilder
from bilayer.genesis import load_genesis, write_genesis
from bilayer.ledger.operations import FreezeAccount
from tests.support.cli import assert_error, bilayer

pytestmark = pytest.mark.slow


def format_one_home(tmp_path: Path) -> tuple[Path, ChainBuilder]:
    """A node home whose store holds three checkpoints, then made to look as format 1 left it."""
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    builder = ChainBuilder(home / "data" / "ledger.sqlite")
    builder.transfer(250)
    builder.checkpoint()
    builder.decide(FreezeAccount(account=builder.bob.public_key))
    builder.transfer(50)
    builder.checkpoint()
    builder.checkpoint()
    builder.close()
    genesis_file = tmp_path / "genesis.json"
    write_genesis(builder.genesis, genesis_file)
    result = bilayer("node", "init", "--home", str(home), "--genesis", str(genesis_file), "--json")
    assert result.code == 0, result
    with closing(sqlite3.connect(home / "data" / "ledger.sqlite")) as db:
        db.execute("DELETE FROM meta WHERE key = 'chain_format'")
        db.execute("INSERT INTO meta (key, value) VALUES ('state_includes_genesis', x'31')")
        for table in ("smt_nodes", "smt_stale", "smt_roots", "smt_meta", "validator_changes"):
            db.execute(f"DROP TABLE {table}")
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return home, builder


def test_a_store_of_the_previous_format_is_refused_untouched_and_exported_into_a_new_genesis(tmp_path: Path) -> None:
    home, builder = format_one_home(tmp_path)
    store = home / "data" / "ledger.sqlite"
    before = hashlib.sha256(store.read_bytes()).hexdigest()

    message = assert_error(bilayer("node", "run", "--home", str(home)), "chain_format_old")
    assert "format 1" in message and "chain format 2" in message and "bilayer genesis export" in message
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert not (home / "data" / "ledger.sqlite-journal").exists()
    assert_error(bilayer("audit", "reindex", "--data-dir", str(home)), "chain_format_old")
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before

    out = tmp_path / "next.json"
    assert_error(bilayer("genesis", "export", "--home", str(home), "--chain-id", builder.genesis.chain_id,
                         "--out", str(out)), "config_error")
    result = bilayer("genesis", "export", "--home", str(home), "--chain-id", "bilayer-next", "--out", str(out),
                     "--time-ms", "1800000000000", "--json")
    assert result.code == 0, result
    summary = json.loads(result.out)
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before  # read, never written
    made = load_genesis(out)
    assert summary["root"] == made.root.hex()
    assert made.previous is not None
    assert (made.previous.chain_id, made.previous.height, made.previous.chain_format) == \
        (builder.genesis.chain_id, 3, 1)
    assert made.previous.genesis_root == builder.genesis.root.hex()
    balances = {(a.address, a.asset): a.amount for a in made.allocations}
    assert balances == {(builder.alice.address, "BLY"): 10**12 - 250, (builder.bob.address, "BLY"): 250}
    assert sorted(v.public_key for v in made.validators) == sorted(v.public_key for v in builder.genesis.validators)
    assert set(made.council) == set(builder.genesis.council) and made.regulators == builder.genesis.regulators
    assert summary["left_behind"] >= 1  # bob's freeze (and the proposal) has no place in a genesis
    shown = bilayer("genesis", "show", str(out), "--json")
    assert shown.code == 0 and json.loads(shown.out)["root"] == made.root.hex()


def test_a_store_of_this_format_is_accepted_and_a_newer_one_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    builder = ChainBuilder(home / "data" / "ledger.sqlite")
    builder.transfer(1)
    builder.checkpoint()
    builder.close()
    with closing(sqlite3.connect(home / "data" / "ledger.sqlite")) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'chain_format'").fetchone()[0] == b"2"
        assert db.execute("SELECT count(*) FROM smt_roots").fetchone()[0] == 2  # genesis and height 1
        db.execute("UPDATE meta SET value = x'33' WHERE key = 'chain_format'")
        db.commit()
    genesis_file = tmp_path / "genesis.json"
    write_genesis(builder.genesis, genesis_file)
    assert bilayer("node", "init", "--home", str(home), "--genesis", str(genesis_file), "--json").code == 0
    assert "format 3" in assert_error(bilayer("node", "run", "--home", str(home)), "chain_format_unknown")

"""The chain's state tree on SQLite, as the node runs it: `State` over the store's nodes, each
version written in its own transaction, against a plain dict model of every version."""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bilayer.execution.smt_proof import verify_proof
from bilayer.execution.state import State, StateTree
from bilayer.node import state_store
from bilayer.node.state_store import TreeReader

KEYS = st.binary(min_size=1, max_size=3)
CHANGE = st.tuples(KEYS, st.one_of(st.none(), st.binary(max_size=4)))
VERSIONS = st.lists(st.lists(CHANGE, max_size=12), min_size=1, max_size=8)


def commit(conn: sqlite3.Connection, state: State, version: int) -> None:
    """As a node's checkpoint commit does: the version's nodes in one transaction, then read from disk."""
    state.commit_version(version)
    conn.execute("BEGIN")
    for update in state.tree.take_unwritten():
        state_store.write_version(conn, update)
    conn.execute("COMMIT")
    state.tree.written(version)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VERSIONS)
def test_the_stored_tree_matches_a_dict_model_at_every_version_and_across_a_reopen(versions: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tree.sqlite"
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            state_store.create_tables(conn)
            reader = TreeReader(conn, cache_nodes=4)
            state = State(tree=StateTree(reader))
            commit(conn, state, 0)
            model: dict[bytes, bytes] = {}
            models = [dict(model)]
            for version, changes in enumerate(versions, start=1):
                state.begin_transaction()
                for key, value in changes:
                    if value is None:
                        state.delete(key)
                        model.pop(key, None)
                    else:
                        state.set(key, value)
                        model[key] = value
                if version % 3 == 0:  # a refused entry: its writes are undone and change no root
                    state.set(b"undone", b"x")
                if version % 3 == 0:
                    state.rollback_transaction()
                    model = dict(models[-1])
                else:
                    state.commit_transaction()
                commit(conn, state, version)
                models.append(dict(model))
                assert state.tree.root_hash == State(model.items()).root()
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:  # a restart: only the file
            reader = TreeReader(conn)
            for version, expected in enumerate(models):
                root = reader.root(version)
                assert root == State(expected.items()).root()
                for key in {*expected, b"\xff\xff\xff\xff"}:
                    value, proof = reader.prove(key, version)
                    assert value == expected.get(key) and verify_proof(root, key, value, proof)

"""Chain format 2 is frozen by committed vectors: the state roots of a sequence of versions,
and proofs of presence and absence against them (execution/smt_proof.py), byte for byte. A
change to any of them is a change of the chain format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bilayer.execution.smt_proof import EMPTY_HASH, decode_proof, encode_proof, verify_proof
from bilayer.execution.state import State
from tests.support.paths import VECTORS

CASES: dict[str, Any] = json.loads((VECTORS / "state_root_v2.json").read_text())


def test_the_empty_state_root() -> None:
    assert State().root().hex() == CASES["empty_root"] == EMPTY_HASH.hex()


def test_each_version_reaches_its_committed_root_and_proofs() -> None:
    state = State()
    for version in CASES["versions"]:
        for key, value in version["set"]:
            state.set(bytes.fromhex(key), bytes.fromhex(value))
        for key in version["delete"]:
            state.delete(bytes.fromhex(key))
        root = state.root()
        assert root.hex() == version["root"]
        for key, expected in version["proofs"].items():
            value, proof = state.prove(bytes.fromhex(key))
            assert (None if value is None else value.hex()) == expected["value"]
            assert encode_proof(proof).hex() == expected["proof"]


@pytest.mark.parametrize("index", range(4))
def test_the_committed_proofs_verify_offline_and_only_for_what_they_say(index: int) -> None:
    version = CASES["versions"][index]
    root = bytes.fromhex(version["root"])
    for key, expected in version["proofs"].items():
        proof = decode_proof(bytes.fromhex(expected["proof"]))
        assert proof is not None
        value = None if expected["value"] is None else bytes.fromhex(expected["value"])
        assert verify_proof(root, bytes.fromhex(key), value, proof)
        assert not verify_proof(root, bytes.fromhex(key), b"other" if value is None else None, proof)

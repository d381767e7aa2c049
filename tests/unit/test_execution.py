"""Execution rules, Merkle trees (RFC 6962 vectors) and the state commitment."""

from __future__ import annotations

import pytest

from bilayer import codec
from bilayer.execution.executor import Outcome, execute, genesis_state, results_root
from bilayer.execution.governance.context import ExecContext
from bilayer.execution.merkle import (
    EMPTY_ROOT,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    root_of_hashes,
    verify_inclusion,
)
from bilayer.execution.smt_proof import verify_proof
from bilayer.execution.state import State, balance_key
from bilayer.genesis import Allocation, Genesis, GovernanceParams
from bilayer.ledger.entry import EntryHeader
from bilayer.ledger.operations import Data, Transfer
from tests.support.builders import make_entry, seeded_signer

ALICE, BOB, CAROL = seeded_signer(1), seeded_signer(2), seeded_signer(3)
CTX = ExecContext(1, 1_000, GovernanceParams())

# RFC 6962 reference data (as used by Certificate Transparency's own tests)
CT_LEAVES = [bytes.fromhex(x) for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                        "606162636465666768696a6b6c6d6e6f"]]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATHS = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]


@pytest.mark.parametrize("size", range(9))
def test_rfc6962_tree_heads(size: int) -> None:
    assert merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), CT_PATHS)
def test_rfc6962_audit_paths(index: int, size: int, path: list[str]) -> None:
    hashes = [leaf_hash(x) for x in CT_LEAVES[:size]]
    assert [p.hex() for p in inclusion_proof(hashes, index)] == path
    assert verify_inclusion(hashes[index], index, size, [bytes.fromhex(p) for p in path], bytes.fromhex(CT_ROOTS[size]))


def test_inclusion_proofs_for_every_leaf_and_tree_size() -> None:
    for size in range(1, 34):
        leaves = [leaf_hash(bytes([i, size])) for i in range(size)]
        root = root_of_hashes(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            assert verify_inclusion(leaves[index], index, size, proof, root)
            assert not verify_inclusion(leaf_hash(b"other"), index, size, proof, root)
            if size > 1:
                assert not verify_inclusion(leaves[index], (index + 1) % size, size, proof, root)
    assert root_of_hashes([]) == EMPTY_ROOT


def genesis_for(*allocations: tuple[object, int]) -> Genesis:
    return Genesis("exec-test", 0, allocations=tuple(Allocation(s.address, "BLY", amount)  # type: ignore[attr-defined]
                                                     for s, amount in allocations))


def header(signed: object) -> EntryHeader:
    return codec.decode(signed.header, EntryHeader)  # type: ignore[attr-defined]


def test_transfers_move_funds_and_overspending_is_rejected() -> None:
    genesis = genesis_for((ALICE, 100))
    state = genesis_state(genesis)
    a0, s0 = make_entry(ALICE, genesis, op=Transfer("BLY", 60, BOB.public_key))
    a1, s1 = make_entry(ALICE, genesis, seq=1, parents=[a0], op=Transfer("BLY", 60, CAROL.public_key))
    a2, s2 = make_entry(ALICE, genesis, seq=2, parents=[a1], op=Transfer("BLY", 40, CAROL.public_key))
    results = execute(CTX, state, [(a0, header(s0)), (a1, header(s1)), (a2, header(s2))])
    assert [(r.outcome, r.code) for r in results] == [
        (Outcome.FINAL, ""), (Outcome.REJECTED, "insufficient_funds"), (Outcome.FINAL, "")]
    assert state.balance(ALICE.public_key, "BLY") == 0
    assert state.balance(BOB.public_key, "BLY") == 60
    assert state.balance(CAROL.public_key, "BLY") == 40
    assert state.author_head(ALICE.public_key) == (3, a2)


def test_sequence_is_enforced_and_the_fork_loser_is_rejected() -> None:
    genesis = genesis_for((ALICE, 100))
    state = genesis_state(genesis)
    a0, s0 = make_entry(ALICE, genesis, op=Data("text/plain"), payload=b"one")
    fork, sf = make_entry(ALICE, genesis, op=Data("text/plain"), payload=b"two")
    child, sc = make_entry(ALICE, genesis, seq=1, parents=[fork], op=Data("text/plain"))
    skip, ss = make_entry(ALICE, genesis, seq=5, parents=[a0], op=Data("text/plain"))
    results = execute(CTX, state, [(a0, header(s0)), (fork, header(sf)), (child, header(sc)), (skip, header(ss))])
    assert [r.outcome for r in results] == [Outcome.FINAL, Outcome.REJECTED, Outcome.REJECTED, Outcome.REJECTED]
    assert {r.code for r in results[1:]} == {"sequence_conflict"}


def test_results_root_commits_to_outcomes() -> None:
    genesis = genesis_for((ALICE, 10))
    a0, s0 = make_entry(ALICE, genesis, op=Transfer("BLY", 5, BOB.public_key))
    ok = execute(CTX, genesis_state(genesis), [(a0, header(s0))])
    poor = execute(CTX, State(), [(a0, header(s0))])
    assert results_root(ok) != results_root(poor)


def test_state_root_is_order_independent_and_proofs_verify() -> None:
    one, two = State(), State()
    items = [(balance_key(i.to_bytes(2, "big") * 16, "BLY"), codec.encode(i * 10)) for i in range(300)]
    for key, value in items:
        one.set(key, value)
    for key, value in reversed(items):
        two.set(key, value)
    assert one.root() == two.root()
    root = one.root()
    for key, value in items[::37]:
        proven, proof = one.prove(key)
        assert proven == value and verify_proof(root, key, value, proof)
        assert not verify_proof(root, key, codec.encode(999), proof)
        assert not verify_proof(root, key, None, proof)  # present: no absence proof can be read from it
    absent = balance_key(b"\xff" * 32, "BLY")
    proven, proof = one.prove(absent)
    assert proven is None and verify_proof(root, absent, None, proof)
    assert not verify_proof(root, absent, codec.encode(0), proof)
    one.set(items[0][0], codec.encode(1))
    assert one.root() != root
    assert not verify_proof(one.root(), absent, None, proof)  # a proof holds for its root only

"""A validator that skips the compliance gate cannot get its checkpoint accepted: its roots
differ from what every honest validator computes, and honest validators refuse to prevote."""

from __future__ import annotations

import pytest

from bilayer import codec
from bilayer.consensus.core import Invalid, Valid
from bilayer.consensus.messages import (
    Checkpoint,
    CommitCertificate,
    CommitSignature,
    FinalizedCheckpoint,
    VoteType,
    sign_vote,
)
from bilayer.execution.governance.gate import Gate
from bilayer.genesis import Allocation, ChainParams, Genesis, GenesisCouncilMember, GenesisValidator, GovernanceParams
from bilayer.keys.signing import Signer
from bilayer.ledger.dag import Dag
from bilayer.ledger.entry import EntryHeader
from bilayer.ledger.operations import BanKey, GovExecute, GovPropose, GovVote, Operation, Transfer
from bilayer.replica.app import ChainApp
from bilayer.replica.chain import ChainState
from tests.support.builders import TEST_POW_BITS, make_entry, seeded_signer

VALIDATORS = [Signer(bytes([i + 1]) * 32) for i in range(4)]
A, B = seeded_signer(11), seeded_signer(12)
BOB, ALICE = seeded_signer(2), seeded_signer(1)
GENESIS = Genesis(
    "gate-test", 1_000, params=ChainParams(pow_bits=TEST_POW_BITS),  # the work stamp is not under test here
    allocations=(Allocation(BOB.address, "BLY", 100),),
    validators=tuple(GenesisValidator(f"v{i}", s.public_key.hex(), 1) for i, s in enumerate(VALIDATORS)),
    council=(GenesisCouncilMember("a", A.public_key.hex(), 1), GenesisCouncilMember("b", B.public_key.hex(), 1)),
    governance=GovernanceParams(timelock_ms=0),
)


class Node:
    def __init__(self) -> None:
        self.chain = ChainState(GENESIS)
        self.dag = Dag(GENESIS.root)
        self.headers: dict[bytes, EntryHeader] = {}

    def add(self, entry_id: bytes, header: EntryHeader) -> None:
        self.dag.add(entry_id, header)
        self.headers[entry_id] = header

    def next_checkpoint(self, time_ms: int) -> Checkpoint:
        frontier = tuple(self.chain.uncovered_tips(self.dag))
        return Checkpoint(GENESIS.chain_id, self.chain.height + 1, self.chain.prev_id, VALIDATORS[0].public_key,
                          frontier, self.chain.state_root, self.chain.results_root, time_ms)

    def apply(self, checkpoint: Checkpoint) -> None:
        signatures = tuple(
            CommitSignature(v.public_key, sign_vote(v, GENESIS.chain_id, checkpoint.height, 0, VoteType.PRECOMMIT,
                                                    checkpoint.id).signature)
            for v in VALIDATORS[:3])
        certificate = CommitCertificate(checkpoint.height, 0, checkpoint.id, signatures)
        self.chain.execute_next(FinalizedCheckpoint(checkpoint, certificate), self.dag, self.headers.__getitem__)


def writes() -> list[tuple[bytes, EntryHeader]]:
    chains: dict[bytes, bytes] = {}
    seqs: dict[bytes, int] = {}
    made = []
    steps: list[tuple[Signer, Operation]] = [
        (A, GovPropose(action=BanKey(BOB.public_key), reason="fraud", legal_ref="")),
        (A, GovVote(1, "yes")), (B, GovVote(1, "yes")), (A, GovExecute(1)),
        (BOB, Transfer("BLY", 10, ALICE.public_key)),
    ]
    previous: bytes | None = None
    for signer, op in steps:
        seq = seqs.get(signer.public_key, 0)
        parents = [chains[signer.public_key]] if seq else [GENESIS.root]
        if previous is not None and previous not in parents:
            parents.append(previous)  # one causal chain: linearization keeps this order
        entry_id, signed = make_entry(signer, GENESIS, seq=seq, parents=parents, op=op, pow_bits=0)
        chains[signer.public_key], seqs[signer.public_key] = entry_id, seq + 1
        previous = entry_id
        made.append((entry_id, codec.decode(signed.header, EntryHeader)))
    return made


def test_a_checkpoint_built_without_the_gate_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    honest, cheater = Node(), Node()
    for entry_id, header in writes():
        honest.add(entry_id, header)
        cheater.add(entry_id, header)
    first = honest.next_checkpoint(2_000)
    honest.apply(first)
    with monkeypatch.context() as patch:
        patch.setattr(Gate, "check", lambda *args: None)  # the cheater lets the banned key through
        cheater.apply(first)
    assert honest.chain.state.balance(BOB.public_key, "BLY") == 100
    assert cheater.chain.state.balance(BOB.public_key, "BLY") == 90
    assert honest.chain.state_root != cheater.chain.state_root

    # the cheater proposes the next height on top of its own roots; honest validators refuse it
    app = ChainApp(honest.chain, honest, VALIDATORS[1].public_key, lambda: 3_000, heartbeat_ms=0)
    forged = Checkpoint(GENESIS.chain_id, 2, cheater.chain.prev_id, VALIDATORS[0].public_key, (),
                        cheater.chain.state_root, cheater.chain.results_root, 2_500)
    verdict = app.check_value(forged)
    assert isinstance(verdict, Invalid) and "root" in verdict.reason
    honest_value = Checkpoint(GENESIS.chain_id, 2, honest.chain.prev_id, VALIDATORS[0].public_key, (),
                              honest.chain.state_root, honest.chain.results_root, 2_500)
    assert isinstance(app.check_value(honest_value), Valid)

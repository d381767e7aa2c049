"""Validator set changes by council proposal: the action's rules, its execution, the boundary
rule (a change executed in checkpoint h governs from h+2) and the persisted history."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bilayer import codec
from bilayer.consensus.messages import (
    CertificateInvalid,
    Checkpoint,
    CommitCertificate,
    CommitSignature,
    FinalizedCheckpoint,
    VoteType,
    sign_vote,
)
from bilayer.devnet import localnet
from bilayer.errors import InvalidOperation
from bilayer.execution.errors import ExecutionRejected
from bilayer.execution.executor import execute, genesis_state
from bilayer.execution.governance.context import ExecContext
from bilayer.execution.governance.council import Council
from bilayer.execution.governance.validator_set import MAX_VALIDATORS, Validators, ValidatorSetWouldBeEmpty
from bilayer.execution.state import State
from bilayer.genesis import ChainParams, Genesis, GenesisCouncilMember, GenesisValidator, GovernanceParams
from bilayer.keys.keystore import Keystore
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import EntryHeader, SignedEntry
from bilayer.ledger.operations import GovExecute, GovPropose, GovVote, Operation, SetValidator
from bilayer.node.chain import Chain
from bilayer.node.ingest import Ingest
from bilayer.node.metrics import NodeMetrics
from bilayer.node.storage import Storage
from tests.support.builders import make_entry, seeded_signer
from tests.support.cli import UNREACHABLE, assert_error, bilayer, bilayer_all

VALIDATORS = [Signer(bytes([i + 1]) * 32) for i in range(4)]
NEWCOMER = Signer(bytes([42]) * 32)
A, B = seeded_signer(11), seeded_signer(12)
PARAMS = GovernanceParams(timelock_ms=0)


def make_genesis(validators: Sequence[Signer] = VALIDATORS) -> Genesis:
    return Genesis(
        "validators-test", 1_000, params=ChainParams(pow_bits=0),
        validators=tuple(GenesisValidator(f"v{i}", s.public_key.hex(), 1) for i, s in enumerate(validators)),
        council=(GenesisCouncilMember("a", A.public_key.hex(), 1), GenesisCouncilMember("b", B.public_key.hex(), 1)),
        governance=PARAMS,
    )


GENESIS = make_genesis()


def propose(action: SetValidator) -> GovPropose:
    return GovPropose(action=action, reason="validator rotation", legal_ref="")


class Author:
    """Entries as authors write them, each the child of the one before (one causal chain)."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.heads: dict[bytes, tuple[int, bytes]] = {}
        self.previous: bytes | None = None

    def write(self, signer: Signer, op: Operation) -> tuple[bytes, SignedEntry]:
        seq, head = self.heads.get(signer.public_key, (0, self.genesis.root))
        parents = [head] if self.previous is None or self.previous == head else [head, self.previous]
        made = make_entry(signer, self.genesis, seq=seq, parents=parents, op=op, pow_bits=0,
                          time_ms=self.genesis.genesis_time_ms + 1)
        self.heads[signer.public_key] = (seq + 1, made[0])
        self.previous = made[0]
        return made

    def decide(self, action: SetValidator, number: int) -> list[tuple[bytes, SignedEntry]]:
        """Propose, two yes votes and the execution of proposal `number`."""
        return [self.write(A, propose(action)), self.write(A, GovVote(number, "yes")),
                self.write(B, GovVote(number, "yes")), self.write(B, GovExecute(number))]


def run(genesis: Genesis, height: int, *decisions: tuple[SetValidator, int]) -> tuple[list[tuple[str, str]], State]:
    """Execute the decisions in one checkpoint at `height`; the results and the state."""
    state = genesis_state(genesis)
    author = Author(genesis)
    ordered = []
    for action, number in decisions:
        for entry_id, signed in author.decide(action, number):
            ordered.append((entry_id, codec.decode(signed.header, EntryHeader)))
    results = execute(ExecContext(height, 2_000, PARAMS), state, ordered)
    return [(str(r.outcome), r.code) for r in results], state


# --- the action -------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [
    SetValidator(b"k" * 31, 1),
    SetValidator(NEWCOMER.public_key, -1),
    SetValidator(NEWCOMER.public_key, 1001),
    SetValidator(NEWCOMER.public_key, 1, name="Upper"),
    SetValidator(NEWCOMER.public_key, 1, name="-dash"),
    SetValidator(NEWCOMER.public_key, 1, name="x" * 33),
])
def test_stateless_checks_refuse_bad_actions(action: SetValidator) -> None:
    with pytest.raises(InvalidOperation) as caught:
        propose(action).check(0, ChainParams())
    assert caught.value.code == "invalid_operation"


def test_valid_actions_pass_and_render_the_target() -> None:
    for action in (SetValidator(NEWCOMER.public_key, 0), SetValidator(NEWCOMER.public_key, 1000, "validator4")):
        propose(action).check(0, ChainParams())
    view = propose(SetValidator(NEWCOMER.public_key, 3, "v9")).view()["action"]
    assert view == {"type": "set_validator", "target": NEWCOMER.address, "public_key": NEWCOMER.public_key.hex(),
                    "power": 3, "name": "v9"}


# --- execution ---------------------------------------------------------------------------------


def test_genesis_set_is_in_state_as_the_first_change() -> None:
    state = genesis_state(GENESIS)
    assert [(m.key, m.name, m.power) for m in Validators(state).members()] == sorted(
        (s.public_key, f"v{i}", 1) for i, s in enumerate(VALIDATORS))
    assert Validators(state).change_count() == 1
    first = Validators(state).change(1)
    assert first is not None and first.height == 1 and first.executed_height == 0 and first.proposals == ()


def test_adding_reweighting_and_removing_record_each_change_for_two_heights_later() -> None:
    results, state = run(GENESIS, 5, (SetValidator(NEWCOMER.public_key, 2), 1))
    assert results == [("FINAL", "")] * 4
    members = {m.key: (m.name, m.power) for m in Validators(state).members()}
    assert members[NEWCOMER.public_key] == (NEWCOMER.address[:12], 2)
    change = Validators(state).change(2)
    assert change is not None and (change.height, change.executed_height, change.proposals) == (7, 5, (1,))
    assert Council(state).proposal(1).status == "executed"

    # two decisions executed in one checkpoint make one change; a reweight keeps the name
    results, state = run(GENESIS, 9, (SetValidator(VALIDATORS[0].public_key, 0), 1),
                         (SetValidator(VALIDATORS[1].public_key, 5), 2))
    assert results == [("FINAL", "")] * 8
    assert Validators(state).change_count() == 2
    change = Validators(state).change(2)
    assert change is not None and change.height == 11 and change.proposals == (1, 2)
    assert {m.name: m.power for m in change.members} == {"v1": 5, "v2": 1, "v3": 1}
    assert [m.key for m in change.members] == sorted(m.key for m in change.members)


def test_the_last_validator_cannot_be_removed() -> None:
    alone = make_genesis(VALIDATORS[:1])
    results, state = run(alone, 3, (SetValidator(VALIDATORS[0].public_key, 0), 1))
    assert results[-1] == ("REJECTED", "validator_set_would_be_empty")
    assert issubclass(ValidatorSetWouldBeEmpty, ExecutionRejected)
    assert [m.key for m in Validators(state).members()] == [VALIDATORS[0].public_key]
    assert Validators(state).change_count() == 1
    assert Council(state).proposal(1).status == "passed"  # not executed: it may not be carried out


def test_removing_a_key_that_is_no_validator_is_refused() -> None:
    results, state = run(GENESIS, 3, (SetValidator(NEWCOMER.public_key, 0), 1))
    assert results[-1] == ("REJECTED", "validator_not_found")
    assert Validators(state).change_count() == 1


def test_the_set_is_bounded() -> None:
    many = make_genesis([Signer(bytes([i + 100]) * 32) for i in range(MAX_VALIDATORS)])
    results, _ = run(many, 3, (SetValidator(NEWCOMER.public_key, 1), 1))
    assert results[-1] == ("REJECTED", "validator_set_full")


# --- the boundary rule and the history, on a node's chain ---------------------------------------


class Node:
    def __init__(self, path: Path) -> None:
        self.storage = Storage(path)
        self.chain = Chain(self.storage, GENESIS)
        self.chain.load()
        self.ingest = Ingest(self.storage, GENESIS, NodeMetrics())
        self.headers: dict[bytes, EntryHeader] = {}

    def add(self, *entries: tuple[bytes, SignedEntry]) -> None:
        for entry_id, signed in entries:
            header = codec.decode(signed.header, EntryHeader)
            self.headers[entry_id] = header
            self.ingest.dag.add(entry_id, header)

    def next_checkpoint(self) -> Checkpoint:
        chain = self.chain
        return Checkpoint(GENESIS.chain_id, chain.height + 1, chain.prev_id, VALIDATORS[1].public_key,
                          tuple(chain.uncovered_tips(self.ingest.dag)), chain.state_root, chain.results_root,
                          chain.last_time_ms + 1000)

    def apply(self, finalized: FinalizedCheckpoint) -> None:
        self.chain.apply(finalized, self.ingest.dag, self.headers.__getitem__)


def signed_by(checkpoint: Checkpoint, signers: Sequence[Signer]) -> FinalizedCheckpoint:
    signatures = tuple(
        CommitSignature(s.public_key, sign_vote(s, checkpoint.chain, checkpoint.height, 0, VoteType.PRECOMMIT,
                                                checkpoint.id).signature)
        for s in sorted(signers, key=lambda s: s.public_key))
    return FinalizedCheckpoint(checkpoint, CommitCertificate(checkpoint.height, 0, checkpoint.id, signatures))


OLD_QUORUM = VALIDATORS[:3]  # 3 of 4
NEW_QUORUM = [*VALIDATORS[1:], NEWCOMER]  # 4 of 5 (without v0)


def build_history(node: Node) -> list[FinalizedCheckpoint]:
    """Height 1 executes "add NEWCOMER"; heights 2.. follow. Returns every finalized checkpoint."""
    author = Author(GENESIS)
    node.add(*author.decide(SetValidator(NEWCOMER.public_key, 1, "newcomer"), 1))
    history = [signed_by(node.next_checkpoint(), OLD_QUORUM)]
    node.apply(history[-1])
    assert node.chain.validators_at(2) is node.chain.validators_at(1)  # h+1: still the genesis set
    assert NEWCOMER.public_key in node.chain.validators_at(3)

    # height 2 is certified by the old set: the newcomer's signature does not count yet
    node.add(author.write(A, GovVote(1, "no")))
    early = node.next_checkpoint()
    with pytest.raises(CertificateInvalid):
        node.apply(signed_by(early, [NEWCOMER, *VALIDATORS[:2]]))
    history.append(signed_by(early, OLD_QUORUM))
    node.apply(history[-1])

    # from height 3 the new set: three of the old four are no quorum of five any more
    node.add(author.write(B, GovVote(1, "no")))
    late = node.next_checkpoint()
    with pytest.raises(CertificateInvalid):
        node.apply(signed_by(late, OLD_QUORUM))
    history.append(signed_by(late, NEW_QUORUM))
    node.apply(history[-1])
    return history


def test_a_change_governs_from_two_heights_after_its_execution(tmp_path: Path) -> None:
    node = Node(tmp_path / "a.sqlite")
    build_history(node)
    assert node.chain.height == 3 and len(node.chain.validators) == 5
    assert [(e.height, e.change.proposals) for e in node.chain.epochs] == [(1, ()), (3, (1,))]
    assert node.chain.validators.by_key[NEWCOMER.public_key].name == "newcomer"
    node.storage.close()


def test_history_survives_a_restart_and_a_node_from_genesis_verifies_old_certificates(tmp_path: Path) -> None:
    first = Node(tmp_path / "first.sqlite")
    history = build_history(first)
    epochs = [(e.height, e.change) for e in first.chain.epochs]
    first.storage.close()

    restarted = Node(tmp_path / "first.sqlite")
    assert [(e.height, e.change) for e in restarted.chain.epochs] == epochs
    assert restarted.chain.height == 3 and NEWCOMER.public_key in restarted.chain.validators
    restarted.storage.close()

    # a node that catches up from genesis applies the same certificates: old ones with the old set
    fresh = Node(tmp_path / "fresh.sqlite")
    for entry_id, header in first.headers.items():
        fresh.headers[entry_id] = header
        fresh.ingest.dag.add(entry_id, header)
    for finalized in history:
        fresh.apply(finalized)
    assert fresh.chain.state_root == first.chain.state_root
    assert [(e.height, e.change) for e in fresh.chain.epochs] == epochs
    fresh.storage.close()



def test_a_removed_genesis_validator_stays_removed_after_a_restart(tmp_path: Path) -> None:
    """Removing deletes a key the genesis state wrote: the store must not bring it back."""
    node = Node(tmp_path / "node.sqlite")
    node.add(*Author(GENESIS).decide(SetValidator(VALIDATORS[3].public_key, 0), 1))
    node.apply(signed_by(node.next_checkpoint(), OLD_QUORUM))
    assert VALIDATORS[3].public_key not in node.chain.validators_at(3)
    root = node.chain.state_root
    node.storage.close()

    restarted = Node(tmp_path / "node.sqlite")  # would raise RootMismatch if the key came back
    assert restarted.chain.state_root == root and restarted.chain.height == 1
    assert VALIDATORS[3].public_key not in restarted.chain.validators_at(3)
    assert VALIDATORS[3].public_key in restarted.chain.validators_at(2)
    restarted.storage.close()


# --- the command line ------------------------------------------------------------------------


def test_cli_set_validator_proposals_refuse_bad_input_with_a_code(tmp_path: Path) -> None:
    keystore = tmp_path / "keys"
    Keystore(keystore).create("council1")
    propose_args = ("gov", "propose", "--action", "set-validator", "--reason", "rotation", "--key", "council1",
                    "--node", UNREACHABLE)
    no_power, bad_target, short_hex, by_hex, by_address, too_strong = bilayer_all([
        (*propose_args, "--target", NEWCOMER.address),
        (*propose_args, "--target", "bl1nope", "--power", "1"),
        (*propose_args, "--target", NEWCOMER.public_key.hex()[:-1], "--power", "1"),
        (*propose_args, "--target", NEWCOMER.public_key.hex(), "--power", "1"),
        (*propose_args, "--target", NEWCOMER.address, "--power", "0"),
        (*propose_args, "--target", NEWCOMER.address, "--power", "1001"),
    ], keystore=keystore)
    assert "--power" in assert_error(no_power, "bad_request")
    assert_error(bad_target, "invalid_address")
    assert_error(short_hex, "invalid_address")
    assert_error(by_hex, "node_unreachable")  # accepted: it got as far as the node
    assert_error(by_address, "node_unreachable")
    assert too_strong.code == 2 and too_strong.err.startswith("error [usage]: ")


def test_cli_add_node_refuses_bad_names_before_starting_anything(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    missing = bilayer("localnet", "add-node", "--name", "validator4", "--dir", str(directory))
    assert "localnet up" in assert_error(missing, "localnet_error")
    localnet.create(directory, validators=1, ledger_nodes=0, pow_bits=0)
    taken, bad = bilayer_all([("localnet", "add-node", "--name", name, "--dir", str(directory))
                              for name in ("validator0", "Bad Name")])
    assert "already has a node" in assert_error(taken, "localnet_error")
    assert_error(bad, "localnet_error")
    assert [n["name"] for n in localnet.read_manifest(directory)["nodes"]] == ["validator0"]

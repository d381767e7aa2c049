"""A node's chain in this process: fixed validators and wallets, checkpoints certified by hand."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bilayer import codec
from bilayer.consensus.messages import (
    Checkpoint,
    CommitCertificate,
    CommitSignature,
    FinalizedCheckpoint,
    VoteType,
    sign_vote,
)
from bilayer.genesis import Allocation, ChainParams, Genesis, GenesisValidator
from bilayer.keys.signing import Signer
from bilayer.ledger.dag import Dag
from bilayer.ledger.entry import EntryHeader, SignedEntry
from bilayer.node.chain import Chain
from bilayer.node.ingest import Ingest
from bilayer.node.metrics import NodeMetrics
from bilayer.node.storage import Storage
from bilayer.replica.app import ChainApp
from bilayer.replica.chain import Applied
from tests.support.builders import make_entry, seeded_signer, transfer_to

VALIDATORS = [Signer(bytes([i + 1]) * 32) for i in range(4)]


QUORUM = VALIDATORS[:3]


ALICE, BOB, CAROL = seeded_signer(11), seeded_signer(12), seeded_signer(13)


GENESIS_TIME = 1_700_000_000_000


NOW = GENESIS_TIME + 60_000


def make_genesis() -> Genesis:
    return Genesis(
        chain_id="chain-test",
        genesis_time_ms=GENESIS_TIME,
        params=ChainParams(pow_bits=0),
        allocations=(Allocation(ALICE.address, "BLY", 100), Allocation(CAROL.address, "GLD", 7)),
        validators=tuple(GenesisValidator(f"v{i}", s.public_key.hex(), 1) for i, s in enumerate(VALIDATORS)),
    )


GENESIS = make_genesis()


@dataclass
class Clock:
    now: int = NOW

    def __call__(self) -> int:
        return self.now


@dataclass
class Node:
    """One node's finality state: storage, chain, the ingest DAG and a header lookup."""

    path: Path
    storage: Storage
    chain: Chain
    ingest: Ingest
    headers: dict[bytes, EntryHeader] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)

    @property
    def dag(self) -> Dag:
        return self.ingest.dag

    def add(self, *entries: tuple[bytes, SignedEntry]) -> None:
        for id_, signed in entries:
            header = codec.decode(signed.header, EntryHeader)
            self.headers[id_] = header
            self.dag.add(id_, header)

    def apply(self, finalized: FinalizedCheckpoint) -> Applied:
        return self.chain.apply(finalized, self.dag, self.headers.__getitem__)

    def app(self, me: bytes = VALIDATORS[0].public_key, heartbeat_ms: int = 0) -> ChainApp:
        return ChainApp(self.chain, self.ingest, me, self.clock, heartbeat_ms)


def open_node(path: Path) -> Node:
    storage = Storage(path)
    chain = Chain(storage, GENESIS)
    chain.load()
    return Node(path, storage, chain, Ingest(storage, GENESIS, NodeMetrics()))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    opened = open_node(tmp_path / "node.sqlite")
    yield opened
    opened.storage.close()


def next_checkpoint(chain: Chain, frontier: Sequence[bytes], time_ms: int | None = None,
                    proposer: bytes = VALIDATORS[0].public_key) -> Checkpoint:
    """The checkpoint an honest proposer would make on top of `chain`."""
    return Checkpoint(
        chain=GENESIS.chain_id,
        height=chain.height + 1,
        prev_id=chain.prev_id,
        proposer=proposer,
        frontier=tuple(sorted(frontier)),
        state_root=chain.state_root,
        results_root=chain.results_root,
        time_ms=time_ms if time_ms is not None else chain.last_time_ms + 1000,
    )


def certificate(checkpoint: Checkpoint, signers: Sequence[Signer] = QUORUM, *, round_: int = 0,
                vote_chain: str | None = None, vote_height: int | None = None, vote_value: bytes | None = None,
                vote_type: VoteType = VoteType.PRECOMMIT) -> CommitCertificate:
    """Precommits of `signers` for `checkpoint` at `round_`; the vote_* arguments make them sign something else."""
    signatures = []
    for signer in signers:
        vote = sign_vote(signer, vote_chain or checkpoint.chain, vote_height or checkpoint.height, round_, vote_type,
                         vote_value or checkpoint.id)
        signatures.append(CommitSignature(vote.validator, vote.signature))
    return CommitCertificate(checkpoint.height, round_, checkpoint.id, tuple(signatures))


def finalize(checkpoint: Checkpoint, signers: Sequence[Signer] = QUORUM, round_: int = 0) -> FinalizedCheckpoint:
    return FinalizedCheckpoint(checkpoint, certificate(checkpoint, signers, round_=round_))


@dataclass(frozen=True)
class Scenario:
    fund: tuple[bytes, SignedEntry]  # alice -> bob 30 (seq 0): FINAL
    overspend: tuple[bytes, SignedEntry]  # bob -> carol 50 (seq 0, after fund): REJECTED insufficient_funds
    spend: tuple[bytes, SignedEntry]  # bob -> carol 10 (seq 1): FINAL
    pay: tuple[bytes, SignedEntry]  # alice -> carol 5 (seq 1): FINAL


def scenario() -> Scenario:
    t = GENESIS_TIME + 1
    fund = make_entry(ALICE, GENESIS, seq=0, op=transfer_to(BOB, 30), time_ms=t)
    overspend = make_entry(BOB, GENESIS, seq=0, parents=[fund[0]], op=transfer_to(CAROL, 50), time_ms=t)
    spend = make_entry(BOB, GENESIS, seq=1, parents=[overspend[0]], op=transfer_to(CAROL, 10), time_ms=t)
    pay = make_entry(ALICE, GENESIS, seq=1, parents=[fund[0]], op=transfer_to(CAROL, 5), time_ms=t)
    return Scenario(fund, overspend, spend, pay)


S = scenario()


FUND, OVERSPEND, SPEND, PAY = S.fund[0], S.overspend[0], S.spend[0], S.pay[0]

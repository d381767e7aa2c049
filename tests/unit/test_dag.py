"""Placement rules that need the DAG: orphans, the author's chain, forks, tips."""

from __future__ import annotations

import pytest

from bilayer import codec
from bilayer.errors import MissingAuthorParent, SequenceGap, SequenceReused
from bilayer.genesis import Genesis
from bilayer.ledger.dag import Dag, ForkDetected, Known, Orphan, Placed
from bilayer.ledger.entry import EntryHeader, SignedEntry
from tests.support.builders import make_entry, seeded_signer

ALICE = seeded_signer(1)
BOB = seeded_signer(2)


def header(signed: SignedEntry) -> EntryHeader:
    return codec.decode(signed.header, EntryHeader)


def place(dag: Dag, id_: bytes, signed: SignedEntry) -> object:
    placement = dag.placement(id_, header(signed))
    if isinstance(placement, Placed):
        dag.add(id_, header(signed))
    return placement


def test_first_entries_and_tips(genesis: Genesis) -> None:
    dag = Dag(genesis.root)
    assert dag.tips == {genesis.root}
    a0, sa0 = make_entry(ALICE, genesis)
    b0, sb0 = make_entry(BOB, genesis)
    assert isinstance(place(dag, a0, sa0), Placed)
    assert isinstance(place(dag, b0, sb0), Placed)
    assert dag.tips == {a0, b0}
    a1, sa1 = make_entry(ALICE, genesis, seq=1, parents=[a0, b0])
    assert isinstance(place(dag, a1, sa1), Placed)
    assert dag.tips == {a1}
    assert dag.next_seq(ALICE.public_key) == (2, a1)
    assert dag.next_seq(BOB.public_key) == (1, b0)
    assert isinstance(place(dag, a1, sa1), Known)


def test_unknown_parent_makes_an_orphan(genesis: Genesis) -> None:
    dag = Dag(genesis.root)
    a0, sa0 = make_entry(ALICE, genesis)
    a1, sa1 = make_entry(ALICE, genesis, seq=1, parents=[a0])
    placement = dag.placement(a1, header(sa1))
    assert placement == Orphan((a0,))
    place(dag, a0, sa0)
    assert isinstance(place(dag, a1, sa1), Placed)


def test_first_parent_must_be_the_authors_previous_entry(genesis: Genesis) -> None:
    dag = Dag(genesis.root)
    a0, sa0 = make_entry(ALICE, genesis)
    b0, sb0 = make_entry(BOB, genesis)
    place(dag, a0, sa0)
    place(dag, b0, sb0)
    _, wrong_author = make_entry(ALICE, genesis, seq=1, parents=[b0, a0])
    with pytest.raises(MissingAuthorParent):
        dag.placement(b"\x01" * 32, header(wrong_author))
    _, root_first = make_entry(ALICE, genesis, seq=1, parents=[genesis.root])
    with pytest.raises(MissingAuthorParent):
        dag.placement(b"\x02" * 32, header(root_first))


def test_sequence_gap(genesis: Genesis) -> None:
    dag = Dag(genesis.root)
    a0, sa0 = make_entry(ALICE, genesis)
    place(dag, a0, sa0)
    _, skip = make_entry(ALICE, genesis, seq=2, parents=[a0])
    with pytest.raises(SequenceGap):
        dag.placement(b"\x03" * 32, header(skip))


def test_fork_is_detected_with_the_existing_entry(genesis: Genesis) -> None:
    dag = Dag(genesis.root)
    a0, sa0 = make_entry(ALICE, genesis, payload=b"one")
    place(dag, a0, sa0)
    other, sother = make_entry(ALICE, genesis, payload=b"two")
    with pytest.raises(ForkDetected) as info:
        dag.placement(other, header(sother))
    assert info.value.existing_id == a0
    assert isinstance(info.value, SequenceReused)
    assert info.value.code == "sequence_reused"

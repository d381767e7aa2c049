"""`Chain` (applying finalized checkpoints) and `ChainApp` (what a validator proposes and accepts)
against a real SQLite store, with checkpoints and commit certificates built by hand."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from bilayer import codec
from bilayer.api.status import error_status
from bilayer.consensus.core import Invalid, Missing, Valid
from bilayer.consensus.linearize import MissingEntry
from bilayer.consensus.messages import (
    MAX_FRONTIER,
    CertificateInvalid,
    Checkpoint,
    CommitCertificate,
    CommitSignature,
    FinalizedCheckpoint,
    VoteType,
)
from bilayer.execution.executor import Outcome, genesis_state, results_root
from bilayer.execution.state import author_key, balance_key
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import Entry, EntryHeader
from bilayer.ledger.operations import decode_operation
from bilayer.node.chain import Chain, check_state
from bilayer.node.finality import Finality
from bilayer.node.ingest import Ingest
from bilayer.node.metrics import NodeMetrics
from bilayer.node.state_store import StateStoreCorrupt
from bilayer.node.storage import Storage, StoredResult
from bilayer.replica.app import MAX_CLOCK_SKEW_MS
from bilayer.replica.chain import Applied, NotNext, RootMismatch
from tests.support.builders import make_entry, seeded_signer, transfer_to
from tests.support.chain import (
    ALICE,
    BOB,
    CAROL,
    FUND,
    GENESIS,
    GENESIS_TIME,
    NOW,
    OVERSPEND,
    PAY,
    SPEND,
    VALIDATORS,
    Node,
    S,
    certificate,
    finalize,
    next_checkpoint,
    open_node,
)

NO_RESULTS = results_root([])
OUTSIDER = Signer(bytes([99]) * 32)


def apply_two_heights(node: Node) -> tuple[FinalizedCheckpoint, FinalizedCheckpoint]:
    node.add(S.fund, S.overspend)
    first = finalize(next_checkpoint(node.chain, node.chain.uncovered_tips(node.dag)))
    node.apply(first)
    node.add(S.spend, S.pay)
    second = finalize(next_checkpoint(node.chain, node.chain.uncovered_tips(node.dag)))
    node.apply(second)
    return first, second


def assert_nothing_stored(node: Node, genesis_root: bytes) -> None:
    assert node.chain.height == 0
    assert node.chain.last is None
    assert node.chain.state_root == genesis_root == node.chain.state.root()
    assert node.chain.results_root == NO_RESULTS
    assert node.chain.ordered == set()
    assert node.storage.latest_checkpoint() is None
    assert node.storage.results_at(1) == []
    assert dict(node.storage.state_items()) == dict(genesis_state(GENESIS).items())


# --- applying checkpoints ---------------------------------------------------------------


def test_two_heights_execute_store_and_commit_to_new_roots(node: Node) -> None:
    genesis_root = node.chain.state_root

    node.add(S.fund, S.overspend)
    assert node.chain.uncovered_tips(node.dag) == [OVERSPEND]
    cp1 = next_checkpoint(node.chain, [OVERSPEND])
    assert cp1.prev_id == GENESIS.root and cp1.state_root == genesis_root and cp1.results_root == results_root([])
    applied1 = node.apply(finalize(cp1))

    assert [(r.entry_id, r.outcome, r.code) for r in applied1.results] == [
        (FUND, Outcome.FINAL, ""),
        (OVERSPEND, Outcome.REJECTED, "insufficient_funds"),
    ]
    root1 = node.chain.state_root
    assert root1 != genesis_root and root1 == applied1.state_root == node.chain.state.root()
    assert node.chain.results_root == applied1.results_root == results_root(applied1.results) != results_root([])
    assert node.chain.height == 1 and node.chain.last == cp1 and node.chain.prev_id == cp1.id
    assert node.chain.last_time_ms == cp1.time_ms
    assert node.chain.ordered == {FUND, OVERSPEND}
    assert node.chain.uncovered_tips(node.dag) == []
    assert node.chain.state.balance(ALICE.public_key, "BLY") == 70
    assert node.chain.state.balance(BOB.public_key, "BLY") == 30
    assert node.chain.state.balance(CAROL.public_key, "BLY") == 0
    # the rejected entry still advanced bob's author chain
    assert node.chain.state.author_head(BOB.public_key) == (1, OVERSPEND)

    node.add(S.spend, S.pay)
    assert node.chain.uncovered_tips(node.dag) == sorted([SPEND, PAY])
    cp2 = next_checkpoint(node.chain, [SPEND, PAY])
    assert cp2.state_root == root1 and cp2.results_root == applied1.results_root  # the roots after height 1
    applied2 = node.apply(finalize(cp2))
    assert [(r.entry_id, r.outcome) for r in applied2.results] == [(i, Outcome.FINAL) for i in sorted([SPEND, PAY])]
    root2 = node.chain.state_root
    assert root2 not in (root1, genesis_root)
    assert node.chain.results_root == results_root(applied2.results) != applied1.results_root
    assert node.chain.state.balances_of(ALICE.public_key) == {"BLY": 65}
    assert node.chain.state.balances_of(BOB.public_key) == {"BLY": 20}
    assert node.chain.state.balances_of(CAROL.public_key) == {"BLY": 15, "GLD": 7}

    storage = node.storage
    stored1, stored2 = storage.checkpoint(1), storage.checkpoint(2)
    assert stored1 is not None and stored2 is not None
    assert (stored1.id, stored1.state_root, stored1.results_root, stored1.entry_count) == (
        cp1.id, root1, applied1.results_root, 2)
    assert (stored2.id, stored2.state_root, stored2.results_root, stored2.entry_count) == (
        cp2.id, root2, applied2.results_root, 2)
    assert codec.decode(stored2.finalized, FinalizedCheckpoint) == finalize(cp2)
    assert storage.latest_checkpoint() == stored2
    assert storage.results_at(1) == [
        StoredResult(FUND, 1, 0, "FINAL", "", "", "transfer"),
        StoredResult(OVERSPEND, 1, 1, "REJECTED", "insufficient_funds", "", "transfer"),
    ]
    assert [(r.entry_id, r.height, r.position, r.outcome) for r in storage.results_at(2)] == [
        (i, 2, n, "FINAL") for n, i in enumerate(sorted([SPEND, PAY]))
    ]
    assert storage.result(OVERSPEND) == StoredResult(OVERSPEND, 1, 1, "REJECTED", "insufficient_funds", "", "transfer")
    stored_state = dict(storage.state_items())
    assert stored_state[balance_key(BOB.public_key, "BLY")] == codec.encode(20)
    assert stored_state[balance_key(CAROL.public_key, "BLY")] == codec.encode(15)
    assert stored_state[author_key(ALICE.public_key)] == codec.encode((2, PAY))
    assert all(node.chain.state.get(k) == v for k, v in stored_state.items())


def test_the_committed_head_is_the_last_checkpoint_on_disk_while_the_next_is_written(node: Node) -> None:
    """A node writes a checkpoint after executing it (on a worker thread): until the write is
    done, the head clients are shown stays at the last checkpoint they can fetch."""
    apply_two_heights(node)
    assert node.chain.committed == node.chain.head()
    assert node.chain.committed.height == 2 and node.storage.latest_checkpoint().height == 2

    node.add(make_entry(CAROL, GENESIS, seq=0, op=transfer_to(ALICE, 1), time_ms=GENESIS_TIME + 1))
    third = finalize(next_checkpoint(node.chain, node.chain.uncovered_tips(node.dag)))
    applied = node.chain.execute_next(third, node.dag, node.headers.__getitem__)
    prepared = node.chain.prepare(third, applied)
    assert node.chain.height == 3  # memory is ahead ...
    assert node.chain.committed.height == 2  # ... of what a client may fetch
    assert node.chain.committed.checkpoint_id == node.storage.latest_checkpoint().id

    node.chain.write(prepared)
    node.chain.written(prepared)
    assert node.chain.committed == node.chain.head()
    assert node.chain.committed.height == 3 and node.chain.committed.time_ms == third.checkpoint.time_ms

    reopened = open_node(node.path)
    assert reopened.chain.committed == node.chain.committed
    reopened.storage.close()


def test_reload_restores_height_roots_and_ordered_set(node: Node) -> None:
    _, second = apply_two_heights(node)
    before = node.chain
    before_items = dict(before.state.items())  # the state's values are read from the store: before it closes
    node.storage.close()

    reopened = open_node(node.path)  # a restart: new connections, new Chain, load()
    try:
        chain = reopened.chain
        assert chain.height == 2
        assert chain.state_root == before.state_root == chain.state.root()
        assert chain.results_root == before.results_root
        assert chain.ordered == {FUND, OVERSPEND, SPEND, PAY}
        assert chain.last == second.checkpoint and chain.prev_id == second.checkpoint.id
        assert chain.last_time_ms == second.checkpoint.time_ms
        assert dict(chain.state.items()) == before_items

        # and it goes on from there: the next checkpoint applies on the reloaded state
        reopened.add(S.fund, S.overspend, S.spend, S.pay)
        assert chain.uncovered_tips(reopened.dag) == []
        more = make_entry(BOB, GENESIS, seq=2, parents=[SPEND], op=transfer_to(ALICE, 20), time_ms=GENESIS_TIME)
        reopened.add(more)
        applied = reopened.apply(finalize(next_checkpoint(chain, [more[0]])))
        assert [(r.entry_id, r.outcome) for r in applied.results] == [(more[0], Outcome.FINAL)]
        assert chain.height == 3 and chain.state.balance(BOB.public_key, "BLY") == 0
    finally:
        reopened.storage.close()


def test_two_nodes_applying_the_same_checkpoints_agree(node: Node, tmp_path: Path) -> None:
    first, second = apply_two_heights(node)
    other = open_node(tmp_path / "other.sqlite")
    try:
        other.add(S.pay, S.spend, S.overspend, S.fund)
        other.apply(first)
        other.apply(second)
        assert other.chain.state_root == node.chain.state_root
        assert other.chain.results_root == node.chain.results_root
        assert other.storage.results_at(2) == node.storage.results_at(2)
        assert dict(other.storage.state_items()) == dict(node.storage.state_items())
    finally:
        other.storage.close()


def test_quorum_at_any_round_is_accepted(node: Node) -> None:
    node.add(S.fund)
    cp = next_checkpoint(node.chain, [FUND])
    applied = node.apply(finalize(cp, signers=VALIDATORS[1:], round_=3))
    assert applied.height == 1
    stored = node.storage.checkpoint(1)
    assert stored is not None and codec.decode(stored.finalized, FinalizedCheckpoint).certificate.round == 3


def test_empty_heartbeat_checkpoint_applies_without_results(node: Node) -> None:
    root = node.chain.state_root
    applied = node.apply(finalize(next_checkpoint(node.chain, [])))
    assert applied.results == [] and node.chain.height == 1
    assert node.chain.state_root == root and node.chain.results_root == NO_RESULTS
    stored = node.storage.checkpoint(1)
    assert stored is not None and stored.entry_count == 0


# --- refusals ---------------------------------------------------------------------------

OTHER_VALUE = bytes(32)

CertificateMaker = Callable[[Checkpoint], CommitCertificate]
BAD_CERTIFICATES: dict[str, tuple[CertificateMaker, str]] = {
    "two_of_four": (lambda cp: certificate(cp, VALIDATORS[:2]), "quorum"),
    "no_signatures": (lambda cp: certificate(cp, []), "quorum"),
    "non_validator": (lambda cp: certificate(cp, [*VALIDATORS, OUTSIDER]), "not a validator"),
    "non_validator_fills_quorum": (lambda cp: certificate(cp, [*VALIDATORS[:2], OUTSIDER]), "not a validator"),
    "duplicated_validator": (lambda cp: certificate(cp, [VALIDATORS[0], VALIDATORS[1], VALIDATORS[1]]), "twice"),
    "signed_other_value": (lambda cp: certificate(cp, vote_value=OTHER_VALUE), "does not verify"),
    "signed_other_round": (
        lambda cp: msgspec.structs.replace(certificate(cp, round_=1), round=0), "does not verify"),
    "signed_other_chain": (lambda cp: certificate(cp, vote_chain="other-chain"), "does not verify"),
    "signed_other_height": (lambda cp: certificate(cp, vote_height=cp.height + 1), "does not verify"),
    "signed_prevotes": (lambda cp: certificate(cp, vote_type=VoteType.PREVOTE), "does not verify"),
    "one_forged_signature": (
        lambda cp: msgspec.structs.replace(certificate(cp, VALIDATORS), signatures=(
            *certificate(cp, VALIDATORS[:3]).signatures,
            CommitSignature(VALIDATORS[3].public_key, bytes(64)))), "does not verify"),
    "certificate_for_other_height": (
        lambda cp: msgspec.structs.replace(certificate(cp), height=cp.height + 1), "another checkpoint"),
    "certificate_for_other_value": (
        lambda cp: msgspec.structs.replace(certificate(cp, vote_value=OTHER_VALUE), value_id=OTHER_VALUE),
        "another checkpoint"),
}


@pytest.mark.parametrize("case", list(BAD_CERTIFICATES))
def test_certificate_problems_are_refused_and_nothing_is_applied(node: Node, case: str) -> None:
    make, message = BAD_CERTIFICATES[case]
    genesis_root = node.chain.state_root
    node.add(S.fund)
    cp = next_checkpoint(node.chain, [FUND])
    with pytest.raises(CertificateInvalid, match=message):
        node.apply(FinalizedCheckpoint(cp, make(cp)))
    assert_nothing_stored(node, genesis_root)
    # the very same checkpoint with a good certificate still applies
    assert node.apply(finalize(cp)).height == 1


def test_checkpoint_for_another_chain_is_refused(node: Node) -> None:
    node.add(S.fund)
    cp = msgspec.structs.replace(next_checkpoint(node.chain, [FUND]), chain="other-chain")
    with pytest.raises(CertificateInvalid, match="another chain"):
        node.apply(finalize(cp))  # validly signed, but on the other chain
    assert node.chain.height == 0 and node.storage.latest_checkpoint() is None


def test_checkpoints_that_do_not_extend_the_chain_are_not_next(node: Node) -> None:
    genesis_root = node.chain.state_root
    node.add(S.fund)
    good = next_checkpoint(node.chain, [FUND])
    for bad in (
        msgspec.structs.replace(good, height=2),
        msgspec.structs.replace(good, height=0),
        msgspec.structs.replace(good, prev_id=OTHER_VALUE),
    ):
        with pytest.raises(NotNext):
            node.apply(finalize(bad))
    assert_nothing_stored(node, genesis_root)

    first = finalize(good)
    node.apply(first)
    with pytest.raises(NotNext, match="height 1"):
        node.apply(first)  # exactly once
    node.add(S.overspend)
    on_genesis = msgspec.structs.replace(next_checkpoint(node.chain, [OVERSPEND]), prev_id=GENESIS.root)
    with pytest.raises(NotNext, match="does not extend"):
        node.apply(finalize(on_genesis))
    assert node.chain.height == 1 and node.storage.checkpoint(2) is None


@pytest.mark.parametrize("forged_field", ["state_root", "results_root"])
def test_quorum_signed_foreign_root_halts_with_a_diagnostic(node: Node, forged_field: str) -> None:
    genesis_root = node.chain.state_root
    node.add(S.fund, S.overspend)
    forged_root = codec.sha256(b"forged")
    cp = msgspec.structs.replace(next_checkpoint(node.chain, [OVERSPEND]), **{forged_field: forged_root})
    with pytest.raises(RootMismatch) as raised:
        node.apply(finalize(cp))
    assert raised.value.code == "state_diverged"
    diagnostic = str(raised.value)
    assert forged_root.hex() in diagnostic
    assert node.chain.state_root.hex() in diagnostic and node.chain.results_root.hex() in diagnostic
    assert_nothing_stored(node, genesis_root)


def test_root_mismatch_after_the_first_height_names_both_roots(node: Node) -> None:
    node.add(S.fund, S.overspend)
    node.apply(finalize(next_checkpoint(node.chain, [OVERSPEND])))
    mine = node.chain.state_root
    node.add(S.spend)
    stale = msgspec.structs.replace(next_checkpoint(node.chain, [SPEND]), state_root=node.chain.state.root()[::-1])
    with pytest.raises(RootMismatch) as raised:
        node.apply(finalize(stale))
    assert mine.hex() in str(raised.value) and stale.state_root.hex() in str(raised.value)
    assert node.chain.height == 1 and node.storage.checkpoint(2) is None and node.storage.result(SPEND) is None


def test_missing_frontier_entry_then_retry(node: Node) -> None:
    genesis_root = node.chain.state_root
    node.add(S.fund)
    finalized = finalize(next_checkpoint(node.chain, [OVERSPEND]))  # overspend is not held yet
    assert node.chain.missing_entries(finalized.checkpoint, node.dag) == (OVERSPEND,)
    with pytest.raises(MissingEntry) as raised:
        node.apply(finalized)
    assert raised.value.entry_id == OVERSPEND
    assert_nothing_stored(node, genesis_root)
    node.add(S.overspend)
    assert [r.entry_id for r in node.apply(finalized).results] == [FUND, OVERSPEND]


def test_missing_entry_below_the_frontier_then_retry(node: Node) -> None:
    genesis_root = node.chain.state_root
    node.add(S.overspend)  # held, but its parent `fund` is not
    finalized = finalize(next_checkpoint(node.chain, [OVERSPEND]))
    with pytest.raises(MissingEntry) as raised:
        node.apply(finalized)
    assert raised.value.entry_id == FUND
    assert_nothing_stored(node, genesis_root)
    node.add(S.fund)
    assert node.apply(finalized).height == 1


def damage_update(db: sqlite3.Connection) -> None:
    db.execute("UPDATE state SET value = ? WHERE key = ?",
               (codec.encode(1_000_000), balance_key(BOB.public_key, "BLY")))


def damage_delete(db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM state WHERE key = ?", (balance_key(ALICE.public_key, "BLY"),))


def damage_insert(db: sqlite3.Connection) -> None:
    db.execute("INSERT INTO state (key, value) VALUES (?, ?)",
               (balance_key(OUTSIDER.public_key, "BLY"), codec.encode(5)))


@pytest.mark.parametrize("damage", [damage_update, damage_delete, damage_insert])
def test_damaged_state_table_is_caught_by_the_full_check_not_the_start(
    node: Node, damage: Callable[[sqlite3.Connection], None]
) -> None:
    """The start compares roots only (the values stay on disk); the operator's full check
    re-hashes the stored values against the tree and names the damage with its code."""
    node.add(S.fund, S.overspend)
    node.apply(finalize(next_checkpoint(node.chain, [OVERSPEND])))
    assert check_state(node.storage).keys == len(node.chain.state)
    node.storage.close()
    with closing(sqlite3.connect(node.path)) as db:
        damage(db)
        assert db.total_changes == 1
        db.commit()
    storage = Storage(node.path)
    try:
        Chain(storage, GENESIS).load()  # the cheap check passes: the tree is whole
        with pytest.raises(StateStoreCorrupt, match=r"damaged|not the tree's") as raised:
            check_state(storage)
        assert raised.value.code == "state_store_corrupt"
    finally:
        storage.close()


def test_a_tree_root_other_than_the_recorded_one_is_refused_at_start(node: Node) -> None:
    node.add(S.fund, S.overspend)
    node.apply(finalize(next_checkpoint(node.chain, [OVERSPEND])))
    recorded = node.chain.state_root
    node.storage.close()
    with closing(sqlite3.connect(node.path)) as db:
        db.execute("UPDATE smt_roots SET root = (SELECT root FROM smt_roots WHERE version = 0) WHERE version = 1")
        assert db.total_changes == 1
        db.commit()
    storage = Storage(node.path)
    try:
        with pytest.raises(RootMismatch, match="damaged") as raised:
            Chain(storage, GENESIS).load()
        assert raised.value.code == "state_diverged"
        assert recorded.hex() in str(raised.value)
        with pytest.raises(RootMismatch):
            check_state(storage)
    finally:
        storage.close()


# --- ChainApp: what a validator accepts ---------------------------------------------------


def test_check_value_accepts_an_honest_proposal(node: Node) -> None:
    node.add(S.fund, S.overspend, S.pay)
    app = node.app()
    value = next_checkpoint(node.chain, node.chain.uncovered_tips(node.dag), time_ms=NOW)
    assert value.frontier == tuple(sorted([OVERSPEND, PAY]))
    assert app.check_value(value) == Valid()
    assert app.check_value(msgspec.structs.replace(value, frontier=())) == Valid()  # heartbeat
    assert app.check_value(msgspec.structs.replace(value, proposer=VALIDATORS[3].public_key)) == Valid()
    # the timestamp bounds, inclusive
    assert app.check_value(msgspec.structs.replace(value, time_ms=GENESIS_TIME + 1)) == Valid()
    assert app.check_value(msgspec.structs.replace(value, time_ms=NOW + MAX_CLOCK_SKEW_MS)) == Valid()


def test_check_value_refusals(node: Node) -> None:
    node.add(S.fund, S.overspend, S.pay)
    app = node.app()
    value = next_checkpoint(node.chain, [OVERSPEND, PAY], time_ms=NOW)
    low, high = value.frontier
    bad = {
        "height": msgspec.structs.replace(value, height=2),
        "prev_id": msgspec.structs.replace(value, prev_id=OTHER_VALUE),
        "state_root": msgspec.structs.replace(value, state_root=codec.sha256(b"x")),
        "results_root": msgspec.structs.replace(value, results_root=codec.sha256(b"x")),
        "proposer": msgspec.structs.replace(value, proposer=OUTSIDER.public_key),
        "unsorted": msgspec.structs.replace(value, frontier=(high, low)),
        "duplicate": msgspec.structs.replace(value, frontier=(low, low, high)),
        "too_many": msgspec.structs.replace(
            value, frontier=tuple(sorted(codec.sha256(bytes([i % 256, i // 256])) for i in range(MAX_FRONTIER + 1)))),
        "time_at_genesis": msgspec.structs.replace(value, time_ms=GENESIS_TIME),
        "time_before_genesis": msgspec.structs.replace(value, time_ms=GENESIS_TIME - 5),
        "time_too_far_ahead": msgspec.structs.replace(value, time_ms=NOW + MAX_CLOCK_SKEW_MS + 1),
    }
    verdicts = {name: app.check_value(v) for name, v in bad.items()}
    assert all(isinstance(v, Invalid) for v in verdicts.values()), verdicts
    assert "timestamp" in verdicts["time_too_far_ahead"].reason  # type: ignore[union-attr]
    assert "proposer" in verdicts["proposer"].reason  # type: ignore[union-attr]
    assert "frontier" in verdicts["unsorted"].reason  # type: ignore[union-attr]


def test_check_value_after_a_checkpoint(node: Node) -> None:
    node.add(S.fund, S.overspend)
    cp1 = next_checkpoint(node.chain, [OVERSPEND], time_ms=NOW - 10_000)
    node.apply(finalize(cp1))
    node.add(S.spend)
    app = node.app()
    value = next_checkpoint(node.chain, [SPEND], time_ms=NOW)
    assert app.check_value(value) == Valid()
    assert isinstance(app.check_value(msgspec.structs.replace(value, time_ms=cp1.time_ms)), Invalid)
    assert app.check_value(msgspec.structs.replace(value, time_ms=cp1.time_ms + 1)) == Valid()
    # built on genesis (stale prev id and roots) or re-proposing height 1
    assert isinstance(app.check_value(msgspec.structs.replace(value, prev_id=GENESIS.root)), Invalid)
    assert isinstance(app.check_value(msgspec.structs.replace(value, state_root=cp1.state_root)), Invalid)
    assert isinstance(app.check_value(cp1), Invalid)


def test_check_value_reports_exactly_the_missing_entries(node: Node) -> None:
    node.add(S.fund, S.spend)
    app = node.app()
    value = next_checkpoint(node.chain, [FUND, OVERSPEND, SPEND, PAY], time_ms=NOW)
    verdict = app.check_value(value)
    assert isinstance(verdict, Missing)
    assert verdict.entry_ids == tuple(i for i in value.frontier if i in (OVERSPEND, PAY))
    node.add(S.overspend, S.pay)
    assert app.check_value(value) == Valid()


# --- ChainApp: what a validator proposes --------------------------------------------------


def test_propose_nothing_when_idle_without_heartbeat(node: Node) -> None:
    app = node.app()
    node.clock.now = GENESIS_TIME + 10**9
    assert app.propose_value(1, None) is None
    assert not app.has_work(1)


def test_propose_covers_the_uncovered_tips(node: Node) -> None:
    app = node.app(me=VALIDATORS[2].public_key)
    node.add(S.fund, S.overspend, S.pay)
    assert app.has_work(1)
    assert app.propose_value(2, None) is None  # not the next height
    value = app.propose_value(1, None)
    assert value == Checkpoint(GENESIS.chain_id, 1, GENESIS.root, VALIDATORS[2].public_key,
                               tuple(sorted([OVERSPEND, PAY])), node.chain.state_root, NO_RESULTS, NOW)
    assert app.check_value(value) == Valid()

    node.apply(finalize(value))
    assert app.propose_value(2, value) is None  # everything is covered
    assert not app.has_work(2)
    node.add(S.spend)
    node.clock.now = value.time_ms - 5_000  # a clock behind the last checkpoint
    second = app.propose_value(2, value)
    assert second is not None
    assert (second.height, second.prev_id, second.frontier) == (2, value.id, (SPEND,))
    assert (second.state_root, second.results_root) == (node.chain.state_root, node.chain.results_root)
    assert second.time_ms == value.time_ms + 1
    assert app.check_value(second) == Valid()
    assert [r.entry_id for r in node.apply(finalize(second)).results] == [SPEND]


def test_proposed_frontier_is_bounded(node: Node) -> None:
    author = seeded_signer(50)
    ids = [codec.sha256(i.to_bytes(4, "big")) for i in range(MAX_FRONTIER + 40)]
    for seq, id_ in enumerate(ids):  # many independent tips (headers need not be real to be indexed)
        node.dag.add(id_, EntryHeader(1, GENESIS.chain_id, author.public_key + bytes([seq % 256]), seq // 256,
                                      (GENESIS.root,), GENESIS_TIME, "data", b"", b"", 0, b""))
    value = node.app().propose_value(1, None)
    assert value is not None
    assert value.frontier == tuple(sorted(ids)[:MAX_FRONTIER])
    assert node.app().check_value(value) == Valid()


def test_heartbeat_proposes_an_empty_checkpoint_once_due(node: Node) -> None:
    heartbeat = 5_000
    app = node.app(heartbeat_ms=heartbeat)
    node.clock.now = GENESIS_TIME + heartbeat - 1
    assert app.propose_value(1, None) is None
    node.clock.now = GENESIS_TIME + heartbeat
    value = app.propose_value(1, None)
    assert value is not None
    assert (value.height, value.frontier, value.time_ms) == (1, (), GENESIS_TIME + heartbeat)
    assert app.check_value(value) == Valid()
    node.apply(finalize(value))

    # the next heartbeat counts from the last checkpoint's time
    node.clock.now = value.time_ms + heartbeat - 1
    assert app.propose_value(2, value) is None
    node.clock.now = value.time_ms + heartbeat
    nxt = app.propose_value(2, value)
    assert nxt is not None and nxt.frontier == () and nxt.prev_id == value.id
    # with work waiting, no need to wait for the heartbeat
    node.add(S.fund)
    node.clock.now = value.time_ms + 1
    busy = app.propose_value(2, value)
    assert busy is not None and busy.frontier == (FUND,)


# --- failures that must not corrupt or block finality ----


def test_a_failed_commit_leaves_the_chain_unchanged(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    genesis_root = node.chain.state_root
    node.add(S.fund, S.overspend)
    finalized = finalize(next_checkpoint(node.chain, [OVERSPEND]))

    def disk_error(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(node.storage, "commit_checkpoint", disk_error)
    with pytest.raises(sqlite3.OperationalError):
        node.apply(finalized)
    monkeypatch.undo()
    assert node.chain.height == 0
    assert node.chain.state.root() == node.chain.state_root == genesis_root
    # a retry once the disk is back must give what every other node computed
    applied = node.apply(finalized)
    assert [(r.entry_id, r.code) for r in applied.results] == [(FUND, ""), (OVERSPEND, "insufficient_funds")]
    node.storage.close()
    open_node(node.path).storage.close()  # and the store is consistent


def test_a_checkpoint_the_disk_refuses_is_kept_and_recorded_once_the_disk_works(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk fault is reported (status, log) and retried every second; it never halts the node."""
    node.add(S.fund, S.overspend)
    finalized = finalize(next_checkpoint(node.chain, [OVERSPEND]))
    node.ingest.header_of = node.headers.get  # type: ignore[method-assign]
    real_commit = node.storage.commit_checkpoint

    def disk_error(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    async def scenario() -> None:
        finality = Finality(node.chain, node.ingest, OUTSIDER, lambda message: None, lambda start, count: None)
        monkeypatch.setattr(node.storage, "commit_checkpoint", disk_error)
        finality.on_finalized(finalized)
        await finality.idle(10)
        assert node.chain.height == 0 and finality.halted is None
        assert "disk is full" in (finality.status().storage_error or "")
        monkeypatch.setattr(node.storage, "commit_checkpoint", real_commit)
        for _ in range(100):  # bounded: the retry comes within a second (5 s for a loaded machine)
            await asyncio.sleep(0.05)
            if node.chain.committed.height == 1 and finality.status().storage_error is None:
                break  # memory runs ahead of the disk while a checkpoint is written: wait for both
        assert node.chain.committed.height == 1 == node.chain.height
        assert finality.status().storage_error is None

    asyncio.run(scenario())


def test_a_checkpoint_written_on_a_thread_is_announced_and_acknowledged_only_once_durable(node: Node) -> None:
    """The node's finality writes on a worker thread: peers hear of the checkpoint, and the
    post-commit effects run, only after its transaction is in the store."""
    node.add(S.fund, S.overspend)
    finalized = finalize(next_checkpoint(node.chain, [OVERSPEND]))
    node.ingest.header_of = node.headers.get  # type: ignore[method-assign]
    seen: list[str] = []

    def send(message: object) -> None:
        assert node.storage.checkpoint(1) is not None
        seen.append("sent")

    def after_commit(applied: Applied) -> None:
        assert node.storage.checkpoint(applied.height) is not None
        seen.append(f"effects {applied.height}")

    async def scenario() -> None:
        finality = Finality(node.chain, node.ingest, OUTSIDER, send, lambda start, count: None,
                            after_commit=after_commit)
        finality.on_finalized(finalized)
        assert node.storage.checkpoint(1) is None  # queued: the loop is not blocked by the write
        await finality.idle(10)
        assert node.chain.height == 1 and seen == ["sent", "effects 1"]

    asyncio.run(scenario())


def test_junk_checkpoint_from_a_peer_does_not_block_the_real_one(node: Node) -> None:
    node.add(S.fund, S.overspend)
    real = finalize(next_checkpoint(node.chain, [OVERSPEND]))
    node.ingest.header_of = node.headers.get  # type: ignore[method-assign]
    junk = msgspec.structs.replace(real.checkpoint, prev_id=OTHER_VALUE)

    async def scenario() -> None:
        finality = Finality(node.chain, node.ingest, OUTSIDER, lambda message: None, lambda start, count: None)
        finality.on_finalized(FinalizedCheckpoint(junk, CommitCertificate(1, 0, junk.id, ())))  # no signatures at all
        finality.on_finalized(real)
        await finality.idle(10)
        assert node.chain.height == 1

    asyncio.run(scenario())


def test_a_quorum_certified_checkpoint_with_other_roots_halts_the_node_loudly(node: Node) -> None:
    node.add(S.fund, S.overspend)
    real = next_checkpoint(node.chain, [OVERSPEND])
    diverged = finalize(msgspec.structs.replace(real, state_root=OTHER_VALUE))  # a quorum signed other roots
    node.ingest.header_of = node.headers.get  # type: ignore[method-assign]

    async def scenario() -> Finality:
        finality = Finality(node.chain, node.ingest, OUTSIDER, lambda message: None, lambda start, count: None)
        finality.on_finalized(diverged)
        await finality.idle(10)
        return finality

    finality = asyncio.run(scenario())
    assert finality.halted is not None and OTHER_VALUE.hex() in finality.halted
    assert node.chain.height == 0
    marker = node.storage.path.parent / "HALTED"
    assert OTHER_VALUE.hex() in marker.read_text()
    assert finality.status().halted == finality.halted


# --- the audit index written after the commit ----------------------------------------------


def _index_rows(storage: Storage) -> list[tuple[object, ...]]:
    with closing(storage.read_connection()) as conn:
        rows = conn.execute("SELECT height, position, entry_id, kind, asset, amount, outcome, code FROM audit_entries"
                            " ORDER BY height, position").fetchall()
        flows = conn.execute("SELECT * FROM audit_flows ORDER BY rowid").fetchall()
    return [tuple(r) for r in rows + flows]


def test_audit_index_written_after_the_commit_matches_the_one_written_inside_it(tmp_path: Path) -> None:
    from bilayer.audit.index import checkpoint_entries, indexed_height
    from bilayer.node.chain import AuditIndexer

    inline = open_node(tmp_path / "inline.sqlite")
    storage = Storage(tmp_path / "after.sqlite")
    indexer = AuditIndexer(storage)
    chain = Chain(storage, GENESIS, indexer)
    chain.load()
    after = Node(tmp_path / "after.sqlite", storage, chain, Ingest(storage, GENESIS, NodeMetrics()))
    first, second = apply_two_heights(inline)
    after.add(S.fund, S.overspend, S.spend, S.pay)
    for finalized in (first, second):  # fed after each commit, as the node's "audit index" subscriber does
        indexer.submit(checkpoint_entries(after.apply(finalized)), chain.state)
    indexer.wait(30)
    with closing(storage.read_connection()) as conn:
        assert indexed_height(conn) == 2
    assert _index_rows(storage) == _index_rows(inline.storage) != []
    indexer.close()
    storage.close()
    inline.storage.close()


def test_an_audit_index_left_behind_is_caught_up_at_the_next_start(tmp_path: Path) -> None:
    from bilayer.audit.index import CheckpointEntries, indexed_height
    from bilayer.execution.state import State
    from bilayer.node.chain import AuditIndexer

    class Stopped(AuditIndexer):
        """The node stops after each commit, before its index thread writes anything."""

        def submit(self, checkpoint: CheckpointEntries, state: State) -> None:
            pass

    inline = open_node(tmp_path / "inline.sqlite")
    first, second = apply_two_heights(inline)
    storage = Storage(tmp_path / "node.sqlite")
    indexer = Stopped(storage)
    chain = Chain(storage, GENESIS, indexer)
    chain.load()
    node = Node(tmp_path / "node.sqlite", storage, chain, Ingest(storage, GENESIS, NodeMetrics()))
    node.add(S.fund, S.overspend, S.spend, S.pay)
    storage.store_entries([Entry(id_, node.headers[id_], signed, decode_operation(node.headers[id_].kind,
                                                                                    node.headers[id_].body))
                           for id_, signed in (S.fund, S.overspend, S.spend, S.pay)], NOW)  # a rebuild reads them
    node.apply(first)
    node.apply(second)
    with closing(storage.read_connection()) as conn:
        assert indexed_height(conn) == 0
    indexer.close()
    storage.close()
    reopened = open_node(tmp_path / "node.sqlite")
    with closing(reopened.storage.read_connection()) as conn:
        assert indexed_height(conn) == 2
    assert _index_rows(reopened.storage) == _index_rows(inline.storage) != []
    reopened.storage.close()
    inline.storage.close()


# --- the state tree in the store: one transaction with the checkpoint, retention, format ------------


def test_a_checkpoint_and_its_state_tree_version_are_one_transaction(node: Node) -> None:
    """A commit that fails inside its transaction (after the tree's rows, at the audit index)
    leaves neither the checkpoint nor the tree's version: the store stays at one height."""
    node.add(S.fund, S.overspend)
    finalized = finalize(next_checkpoint(node.chain, [OVERSPEND]))
    real_commit = node.storage.commit_checkpoint

    def dies_in_the_middle(*args: object, **kwargs: object) -> None:
        def index(conn: sqlite3.Connection) -> None:
            assert conn.execute("SELECT count(*) FROM smt_roots WHERE version = 1").fetchone()[0] == 1
            raise sqlite3.OperationalError("disk I/O error")
        real_commit(*args[:4], index, *args[5:], **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(node.storage, "commit_checkpoint", dies_in_the_middle)
        with pytest.raises(sqlite3.OperationalError):
            node.apply(finalized)
    assert node.storage.latest_checkpoint() is None and node.storage.tree.latest_version == 0
    applied = node.apply(finalized)
    assert node.storage.tree.latest_version == 1 and node.storage.tree.root(1) == applied.state_root


def test_the_stored_tree_proves_each_height_and_the_replica_reads_it_after_a_restart(node: Node) -> None:
    _, second = apply_two_heights(node)
    tree = node.storage.tree
    assert tree.root(1) == second.checkpoint.state_root  # checkpoint 2 signs the root after height 1
    assert tree.root(2) == node.chain.state_root
    value, _ = tree.prove(balance_key(BOB.public_key, "BLY"), 1)
    assert codec.decode(value, int) == 30
    assert tree.prove(balance_key(OUTSIDER.public_key, "BLY"), 2)[0] is None
    root2 = tree.root(2)
    node.storage.close()
    reopened = open_node(node.path)
    try:  # the restarted replica's tree is the stored one: no rebuild of its versions
        assert reopened.chain.state.tree.version == 2 and reopened.chain.state_root == root2
    finally:
        reopened.storage.close()


def test_retention_prunes_old_state_versions_and_refuses_them_with_a_code(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "node.sqlite")
    chain = Chain(storage, GENESIS, keep_heights=2)
    chain.load()
    node = Node(tmp_path / "node.sqlite", storage, chain, Ingest(storage, GENESIS, NodeMetrics()))
    try:
        apply_two_heights(node)
        for heartbeat in range(2):
            node.apply(finalize(next_checkpoint(chain, [], time_ms=NOW + 1000 * (heartbeat + 1))))
        assert chain.height == 4
        assert storage.tree.oldest_version == 3
        from bilayer.node.state_store import StateVersionPruned

        with pytest.raises(StateVersionPruned) as caught:
            storage.tree.prove(balance_key(BOB.public_key, "BLY"), 2)
        assert caught.value.code == "state_version_pruned" and error_status(caught.value.code) == 410
        key = balance_key(ALICE.public_key, "BLY")
        assert storage.tree.get(key, 3) == storage.tree.get(key, 4) == chain.state.get(key) is not None
    finally:
        storage.close()


def test_a_data_directory_of_the_previous_chain_format_is_refused_and_left_untouched(node: Node) -> None:
    apply_two_heights(node)
    node.storage.close()
    with closing(sqlite3.connect(node.path)) as db:  # what format 1 wrote: no format, no tree
        db.execute("DELETE FROM meta WHERE key = 'chain_format'")
        for table in ("smt_nodes", "smt_stale", "smt_roots", "smt_meta", "validator_changes"):
            db.execute(f"DROP TABLE {table}")
        db.commit()
    before = node.path.read_bytes()
    from bilayer.node.storage import ChainFormatOld

    with pytest.raises(ChainFormatOld) as caught:
        Storage(node.path)
    assert caught.value.code == "chain_format_old"
    assert "format 1" in caught.value.message and "bilayer genesis export" in caught.value.message
    assert node.path.read_bytes() == before

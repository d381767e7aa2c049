"""Content rules, the review queue, redaction, asset recovery and chain parameters, executed
as every node executes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bilayer import codec
from bilayer.consensus.messages import Checkpoint
from bilayer.errors import BadEncoding, InvalidOperation, PayloadHashMismatch
from bilayer.execution.executor import execute
from bilayer.execution.governance.context import ExecContext
from bilayer.execution.governance.params import Params
from bilayer.execution.governance.redaction import Redactions
from bilayer.execution.governance.review import ReviewQueue
from bilayer.execution.governance.rules import Rules, keywords_in
from bilayer.genesis import ChainParams
from bilayer.keys.signing import Signer
from bilayer.ledger.dag import Dag
from bilayer.ledger.entry import EntryHeader, SignedEntry, Tombstone
from bilayer.ledger.operations import (
    Data,
    FreezeAccount,
    GovCancel,
    GovExecute,
    GovPropose,
    GovVote,
    IdAttest,
    Operation,
    RatifyEmergency,
    RecoverAssets,
    RedactEntries,
    RegFreeze,
    RegIntercept,
    RegReview,
    RemoveContentRule,
    SetChainParams,
    SetContentRule,
    SetInterceptionRule,
    Transfer,
)
from bilayer.ledger.validation import check_entry
from bilayer.node.storage import Storage, StoredCheckpoint
from bilayer.replica.app import ChainApp
from bilayer.replica.chain import ChainState, withheld_payloads
from tests.support.builders import make_entry
from tests.support.governance import PARAMS
from tests.support.ledger import ALICE, BOB, FINAL, GENESIS, OUTSIDER, REGULATOR, VALIDATORS, A, B, C, Ledger, rejected


def test_content_rules_block_by_hash_media_type_size_and_keyword() -> None:
    ledger = Ledger()
    bad = b"leaked passport scans"
    ledger.decide(0, SetContentRule("hash", payload_hash=codec.sha256(bad)))
    ledger.decide(10_000, SetContentRule("exe", media_type="application/x-msdownload"))
    ledger.decide(20_000, SetContentRule("big", max_size=100))
    ledger.decide(30_000, SetContentRule("words", keyword="Passport"))
    assert Rules(ledger.state).content_keywords() == ("passport",)
    assert keywords_in(b"my PASSPORT number", Rules(ledger.state).content_keywords()) == ("passport",)
    assert ledger.run(40_000, (ALICE, Data("text/plain"), bad),
                      (ALICE, Data("application/x-msdownload"), b"MZ"),
                      (ALICE, Data("text/plain"), b"x" * 101),
                      (ALICE, Data("text/plain"), b"my passport"),
                      (ALICE, Data("text/plain"), b"x" * 100),
                      keywords={3: ("passport",)}) == [rejected("content_blocked")] * 4 + [FINAL]
    ledger.decide(50_000, RemoveContentRule("words"))
    assert Rules(ledger.state).content_keywords() == ()
    assert ledger.run(60_000, (ALICE, Data("text/plain"), b"my passport"), keywords={0: ("passport",)}) == [FINAL]


def test_a_content_rule_names_at_least_one_criterion() -> None:
    with pytest.raises(InvalidOperation):
        GovPropose(action=SetContentRule("empty"), reason="r", legal_ref="").check(0, ChainParams())
    with pytest.raises(InvalidOperation):
        GovPropose(action=SetContentRule("k", keyword="ü"), reason="r", legal_ref="").check(0, ChainParams())


def test_checkpoints_carry_keywords_and_validators_check_them() -> None:
    chain = ChainState(GENESIS)
    ledger = Ledger()
    ledger.state = chain.state
    ledger.decide(0, SetContentRule("words", keyword="passport"))
    dag, headers, payloads = Dag(GENESIS.root), dict[bytes, EntryHeader](), dict[bytes, bytes]()
    for text in (b"a PASSPORT scan", b"holiday photos"):
        entry_id, signed = make_entry(OUTSIDER, GENESIS, seq=len(headers),
                                      parents=[*list(headers)[-1:]] or [GENESIS.root], op=Data("text/plain"),
                                      payload=text)
        header = codec.decode(signed.header, EntryHeader)
        dag.add(entry_id, header)
        headers[entry_id], payloads[entry_id] = header, text
    first = next(iter(headers))

    class Holder:
        def __init__(self, dag: Dag) -> None:
            self.dag = dag

    holder = Holder(dag)
    app = ChainApp(chain, holder, VALIDATORS[0].public_key, lambda: 1_000_000, 0, headers.get, payloads.get)
    value = app.propose_value(1, None)
    assert value is not None and value.keywords == ((first, ("passport",)),)
    assert app.check_value(value).__class__.__name__ == "Valid"
    hidden = Checkpoint(value.chain, value.height, value.prev_id, value.proposer, value.frontier, value.state_root,
                        value.results_root, value.time_ms)  # a proposer that hides what the payloads hold
    assert app.check_value(hidden).__class__.__name__ == "Invalid"


def test_a_held_transfer_waits_in_escrow_until_a_regulator_releases_it() -> None:
    ledger = Ledger()
    ledger.decide(0, SetInterceptionRule("large", min_amount=500, outcome="hold", review_ms=60_000))
    assert ledger.run(10_000, (ALICE, Transfer("BLY", 600, BOB.public_key)),
                      (ALICE, Transfer("BLY", 600, BOB.public_key))) == [
        ("HELD", "held_for_review"), rejected("insufficient_funds")]  # the first's funds are in escrow
    held_id = ledger.ids[-2]
    assert ledger.state.balance(ALICE.public_key, "BLY") == 400
    assert [entry for _, entry in ReviewQueue(ledger.state).queue()] == [held_id]
    assert ledger.run(11_000, (BOB, RegReview(held_id, "release", "checked"))) == [rejected("not_regulator")]
    assert ledger.run(11_000, (REGULATOR, RegReview(b"\x01" * 32, "release", "checked"))) == [
        rejected("held_entry_not_found")]
    assert ledger.run(12_000, (REGULATOR, RegReview(held_id, "release", "invoice checked"))) == [FINAL]
    assert ledger.state.balance(BOB.public_key, "BLY") == 1600
    record = ReviewQueue(ledger.state).held(held_id)
    assert record is not None and record.status == "released" and record.decided_height == ledger.height
    assert ledger.run(13_000, (REGULATOR, RegReview(held_id, "reject", "again"))) == [rejected("review_closed")]
    assert ReviewQueue(ledger.state).queue() == []


def test_a_rejected_or_expired_hold_returns_the_funds() -> None:
    ledger = Ledger()
    ledger.decide(0, SetInterceptionRule("large", min_amount=500, outcome="hold", review_ms=60_000))
    ledger.run(10_000, (ALICE, Transfer("BLY", 500, BOB.public_key)), (BOB, Transfer("BLY", 700, ALICE.public_key)))
    to_reject, to_expire = ledger.ids[-2:]
    assert ledger.run(20_000, (REGULATOR, RegReview(to_reject, "reject", "sanctioned party"))) == [FINAL]
    assert ledger.state.balance(ALICE.public_key, "BLY") == 1000
    assert ledger.run(69_999, (OUTSIDER, Data("text/plain"))) == [FINAL]
    assert ReviewQueue(ledger.state).held(to_expire).status == "held"  # type: ignore[union-attr]
    ledger.run(70_000, (OUTSIDER, Data("text/plain")))  # the deadline passes at the start of this checkpoint
    record = ReviewQueue(ledger.state).held(to_expire)
    assert record is not None and record.status == "expired"
    assert ledger.state.balance(BOB.public_key, "BLY") == 1000 and ReviewQueue(ledger.state).queue() == []
    assert ledger.run(71_000, (REGULATOR, RegReview(to_expire, "release", "late"))) == [rejected("review_closed")]


def test_a_release_does_not_bypass_a_freeze() -> None:
    ledger = Ledger()
    ledger.decide(0, SetInterceptionRule("large", min_amount=500, outcome="hold"))
    ledger.run(10_000, (ALICE, Transfer("BLY", 500, BOB.public_key)))
    held_id = ledger.ids[-1]
    ledger.decide(20_000, FreezeAccount(BOB.public_key))
    assert ledger.run(30_000, (REGULATOR, RegReview(held_id, "release", "ok"))) == [rejected("account_frozen")]
    assert ledger.run(30_001, (REGULATOR, RegReview(held_id, "reject", "frozen"))) == [FINAL]
    assert ledger.state.balance(ALICE.public_key, "BLY") == 1000


def test_redaction_records_a_tombstone_and_the_node_deletes_the_bytes(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.run(0, (ALICE, Data("text/plain"), b"home address of a witness"))
    target = ledger.ids[-1]
    ledger.decide(1_000, RedactEntries((target,), "personal_data"))
    record = Redactions(ledger.state).of(target)
    assert record is not None and record.reason_code == "personal_data" and record.decision == 1

    storage = Storage(tmp_path / "ledger.db")
    _, signed = make_entry(ALICE, GENESIS, op=Data("text/plain"), payload=b"home address of a witness")
    entry = check_entry(signed, chain_id=GENESIS.chain_id, params=GENESIS.params, now_ms=10**13)
    storage.store_entries([entry], 1)
    assert storage.get(entry.id).signed.payload == b"home address of a witness"  # type: ignore[union-attr]
    changes: list[tuple[bytes, bytes | None]] = [(b"D" + entry.id, codec.encode(record))]
    checkpoint = Checkpoint(GENESIS.chain_id, 3, b"p" * 32, b"v" * 32, (), b"", b"", 6_000)
    tombstones = withheld_payloads(checkpoint, [], changes)
    assert tombstones == [(entry.id, Tombstone("proposal:1", "personal_data", record.time_ms, record.height))]
    storage.commit_checkpoint(StoredCheckpoint(3, b"3" * 32, b"", b"", b"", 0, 0), [], changes, tombstones)
    stored = storage.get(entry.id)
    assert stored is not None and stored.signed.payload == b"" and stored.tombstone == tombstones[0][1]
    storage.close()

    late = Storage(tmp_path / "late.db")  # a node that learns of the redaction before the entry
    late.commit_checkpoint(StoredCheckpoint(3, b"3" * 32, b"", b"", b"", 0, 0), [], changes, tombstones)
    late.store_entries([entry], 2)
    assert late.get(entry.id).signed.payload == b""  # type: ignore[union-attr]
    late.close()


def test_an_entry_without_its_payload_is_checked_but_the_payload() -> None:
    _, signed = make_entry(ALICE, GENESIS, op=Data("text/plain"), payload=b"gone")
    tombstone = Tombstone("proposal:1", "personal_data", 1, 1)
    bare = SignedEntry(signed.header, signed.signature, b"")
    with pytest.raises(PayloadHashMismatch):
        check_entry(bare, chain_id=GENESIS.chain_id, params=GENESIS.params, now_ms=10**13)
    entry = check_entry(bare, chain_id=GENESIS.chain_id, params=GENESIS.params, now_ms=10**13, tombstone=tombstone)
    assert entry.tombstone == tombstone
    with pytest.raises(BadEncoding):
        check_entry(signed, chain_id=GENESIS.chain_id, params=GENESIS.params, now_ms=10**13, tombstone=tombstone)


def test_assets_of_a_lost_key_are_reissued_only_by_a_passed_proposal_after_its_timelock() -> None:
    ledger = Ledger()
    action = RecoverAssets(lost=ALICE.public_key, to=OUTSIDER.public_key, assets=("BLY",))
    propose = GovPropose(action=action, reason="key stolen, police report 99", legal_ref="")
    assert ledger.run(0, (A, propose), (A, GovVote(1, "yes")), (B, GovVote(1, "yes")), (C, GovVote(1, "yes"))) == [
        FINAL] * 4
    assert ledger.run(PARAMS.timelock_ms - 1, (C, GovExecute(1))) == [rejected("timelock_not_expired")]
    assert ledger.state.balance(ALICE.public_key, "BLY") == 1000
    assert ledger.run(PARAMS.timelock_ms, (C, GovExecute(1))) == [FINAL]
    assert ledger.state.balance(ALICE.public_key, "BLY") == 0
    assert ledger.state.balance(OUTSIDER.public_key, "BLY") == 1000
    assert ledger.run(PARAMS.timelock_ms + 1, (ALICE, Transfer("BLY", 1, BOB.public_key))) == [
        rejected("identity_banned")]  # whoever holds the old key can do nothing more
    with pytest.raises(InvalidOperation):
        GovPropose(action=RecoverAssets(ALICE.public_key, ALICE.public_key, ("BLY",)), reason="r",
                   legal_ref="").check(0, ChainParams())


def test_chain_parameters_change_by_proposal_and_old_entries_stay_acceptable() -> None:
    ledger = Ledger()
    assert Params(ledger.state).current() == GENESIS.params
    tighter = ChainParams(pow_bits=0, max_data_bytes=10, max_memo_bytes=4)
    ledger.decide(0, SetChainParams(tighter))
    assert Params(ledger.state).current() == tighter
    assert Params(ledger.state).loosest().max_data_bytes == GENESIS.params.max_data_bytes
    assert ledger.run(10_000, (ALICE, Data("text/plain"), b"x" * 11), (ALICE, Data("text/plain"), b"x" * 10),
                      (ALICE, Transfer("BLY", 1, BOB.public_key), b"memo!")) == [
        rejected("payload_too_large"), FINAL, rejected("payload_too_large")]
    with pytest.raises(InvalidOperation):
        GovPropose(action=SetChainParams(ChainParams(max_parents=0)), reason="r", legal_ref="").check(0, tighter)


def test_no_single_member_regulator_or_validator_exceeds_its_role() -> None:
    """Every unauthorized management act, one by one, with its own reason code."""
    ledger = Ledger()
    validator = VALIDATORS[0]
    freeze = GovPropose(action=FreezeAccount(BOB.public_key), reason="r", legal_ref="")
    ledger.run(0, (ALICE, Transfer("BLY", 600, BOB.public_key)))
    some_entry = ledger.ids[-1]
    acts: list[tuple[str, Signer, Operation, str]] = [
        ("an outsider proposes", OUTSIDER, freeze, "not_council_member"),
        ("a validator proposes", validator, freeze, "not_council_member"),
        ("a regulator proposes", REGULATOR, freeze, "not_council_member"),
        ("a regulator votes", REGULATOR, GovVote(1, "yes"), "not_council_member"),
        ("an outsider uses emergency powers", OUTSIDER, RegFreeze(BOB.public_key, "r", ""), "not_regulator"),
        ("a council member uses emergency powers", A, RegFreeze(BOB.public_key, "r", ""), "not_regulator"),
        ("a validator decides a review", validator, RegReview(some_entry, "release", "r"), "not_regulator"),
        ("a regulator reviews what is not held", REGULATOR, RegReview(some_entry, "release", "r"),
         "held_entry_not_found"),
        ("an outsider attests an identity", OUTSIDER,
         IdAttest(BOB.public_key, b"\x01" * 16, 2, 10**13), "not_identity_provider"),
        ("a regulator attests an identity", REGULATOR,
         IdAttest(BOB.public_key, b"\x01" * 16, 2, 10**13), "not_identity_provider"),
    ]
    for what, signer, op, code in acts:
        assert ledger.run(1_000, (signer, op)) == [rejected(code)], what

    # one council member alone: proposes, votes, and still cannot pass or execute anything
    assert ledger.run(2_000, (A, freeze), (A, GovVote(1, "yes"))) == [FINAL, FINAL]
    assert ledger.run(2_000 + PARAMS.timelock_ms, (A, GovExecute(1))) == [rejected("proposal_not_passed")]
    assert ledger.run(2_001 + PARAMS.timelock_ms, (A, GovVote(1, "yes"))) == [rejected("double_vote")]
    assert ledger.run(2_002 + PARAMS.timelock_ms, (B, GovCancel(1))) == [rejected("not_proposer")]
    assert ledger.run(2_003 + PARAMS.voting_period_ms, (B, GovVote(1, "yes"))) == [rejected("vote_after_deadline")]
    assert ledger.state.balance(BOB.public_key, "BLY") == 1600  # nothing was frozen


def test_a_regulators_interception_rule_acts_at_once_and_lapses_unless_ratified() -> None:
    ledger = Ledger()
    rule = SetInterceptionRule("sanctioned", counterparties=(BOB.public_key,))
    assert ledger.run(0, (A, RegIntercept(rule, "r", ""))) == [rejected("not_regulator")]
    assert ledger.run(1_000, (REGULATOR, RegIntercept(rule, "sanctions list update", "Reg 7"))) == [FINAL]
    results = ledger.run(2_000, (ALICE, Transfer("BLY", 5, BOB.public_key)))
    assert results == [rejected("transaction_intercepted")]
    lapse = 1_000 + PARAMS.emergency_ratify_ms
    assert ledger.run(lapse, (ALICE, Transfer("BLY", 5, BOB.public_key))) == [FINAL]  # lapsed unratified
    # a lapsed emergency rule may be set again; a second one is ratified and stays
    assert ledger.run(lapse + 1, (REGULATOR, RegIntercept(rule, "again", ""))) == [FINAL]
    ledger.proposals = 0
    ledger.decide(lapse + 2, RatifyEmergency(2))
    later = lapse + 2 + PARAMS.timelock_ms + 10 * PARAMS.emergency_ratify_ms
    assert ledger.run(later, (ALICE, Transfer("BLY", 5, BOB.public_key))) == [rejected("transaction_intercepted")]
    # the regulator cannot replace a rule the council made
    assert ledger.run(later, (REGULATOR, RegIntercept(SetInterceptionRule("sanctioned"), "r", ""))) == [
        rejected("interception_rule_exists")]


def test_an_emergency_rule_names_its_emergency_as_the_cause() -> None:
    ledger = Ledger()
    ledger.run(0, (REGULATOR, RegIntercept(SetInterceptionRule("big", min_amount=900, outcome="hold"), "r", "")))
    ordered = [ledger.entry(ALICE, Transfer("BLY", 950, BOB.public_key))]
    results = execute(ExecContext(2, 1_000, PARAMS), ledger.state, ordered)
    assert (results[0].outcome, results[0].code, results[0].cause) == ("HELD", "held_for_review", "emergency:1")

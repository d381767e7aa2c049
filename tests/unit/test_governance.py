"""Council governance and the compliance gate, executed as the chain executes them."""

from __future__ import annotations

from pathlib import Path

from bilayer import codec
from bilayer.errors import InvalidOperation
from bilayer.execution.executor import execute, genesis_state
from bilayer.execution.governance.context import ExecContext
from bilayer.execution.governance.council import Council
from bilayer.execution.governance.freezes import Freezes
from bilayer.execution.state import State
from bilayer.genesis import Allocation, ChainParams, Genesis, GenesisCouncilMember, GenesisRegulator
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import EntryHeader
from bilayer.ledger.operations import (
    AppointIdentityProvider,
    AppointOperator,
    AppPause,
    AppResume,
    BanIdentity,
    BanKey,
    Data,
    FreezeAccount,
    GovCancel,
    GovExecute,
    GovPropose,
    GovVote,
    IdAttest,
    Operation,
    RatifyEmergency,
    RegFreeze,
    ResumeService,
    RevokeIdentityProvider,
    RevokeOperator,
    SetIdentityRule,
    SuspendService,
    Transfer,
    UnfreezeAccount,
)
from bilayer.node.storage import Storage, StoredCheckpoint
from tests.support.builders import TEST_POW_BITS, make_entry, seeded_signer
from tests.support.governance import PARAMS

A, B, C = seeded_signer(11), seeded_signer(12), seeded_signer(13)  # council: weights 2, 1, 1
ALICE, BOB, OUTSIDER = seeded_signer(1), seeded_signer(2), seeded_signer(3)
REGULATOR = seeded_signer(20)
GENESIS = Genesis(
    "gov-test", 0, params=ChainParams(pow_bits=TEST_POW_BITS),  # the work stamp is not under test here
    allocations=tuple(Allocation(s.address, "BLY", 1000) for s in (ALICE, BOB)),
    council=(GenesisCouncilMember("a", A.public_key.hex(), 2), GenesisCouncilMember("b", B.public_key.hex(), 1),
             GenesisCouncilMember("c", C.public_key.hex(), 1)),
    regulators=(GenesisRegulator("regulator", REGULATOR.public_key.hex()),),
    governance=PARAMS,
)


class Ledger:
    """Entries as authors write them; each `run` is one checkpoint at a given time."""

    def __init__(self) -> None:
        self.state = genesis_state(GENESIS)
        self.heads: dict[bytes, tuple[int, bytes]] = {}
        self.height = 0

    def entry(self, signer: Signer, op: Operation) -> tuple[bytes, EntryHeader]:
        seq, head = self.heads.get(signer.public_key, (0, GENESIS.root))
        entry_id, signed = make_entry(signer, GENESIS, seq=seq, parents=[head], op=op)
        self.heads[signer.public_key] = (seq + 1, entry_id)
        return entry_id, codec.decode(signed.header, EntryHeader)

    def run(self, time_ms: int, *writes: tuple[Signer, Operation]) -> list[tuple[str, str]]:
        self.height += 1
        ordered = [self.entry(signer, op) for signer, op in writes]
        results = execute(ExecContext(self.height, time_ms, PARAMS), self.state, ordered)
        return [(str(r.outcome), r.code) for r in results]


FINAL = ("FINAL", "")


def rejected(code: str) -> tuple[str, str]:
    return ("REJECTED", code)


def propose(action: object) -> GovPropose:
    return GovPropose(action=action, reason="court order 17/2026", legal_ref="AML Act s.12")  # type: ignore[arg-type]


def test_freeze_by_proposal_then_unfreeze() -> None:
    ledger = Ledger()
    assert Council(ledger.state).total() == 4
    assert ledger.run(1000, (OUTSIDER, propose(FreezeAccount(BOB.public_key)))) == [rejected("not_council_member")]
    assert ledger.run(1000, (A, propose(FreezeAccount(BOB.public_key)))) == [FINAL]
    record = Council(ledger.state).proposal(1)
    assert record.status == "voting" and record.proposer == A.public_key and record.deadline_ms == 11_000
    assert ledger.run(2000, (B, GovVote(1, "yes"))) == [FINAL]
    assert Council(ledger.state).proposal(1).status == "voting"  # 1 of 4 is below two thirds
    assert ledger.run(3000, (A, GovVote(1, "yes")), (A, GovVote(1, "no"))) == [FINAL, rejected("double_vote")]
    assert Council(ledger.state).proposal(1).status == "passed" and Council(ledger.state).proposal(1).passed_ms == 3000
    assert ledger.run(7999, (OUTSIDER, GovExecute(1))) == [rejected("timelock_not_expired")]
    assert ledger.run(8000, (OUTSIDER, GovExecute(1))) == [FINAL]  # anyone may execute a passed proposal
    assert ledger.run(8001, (OUTSIDER, GovExecute(1))) == [rejected("proposal_already_executed")]
    assert ledger.run(9000, (BOB, Transfer("BLY", 5, ALICE.public_key)),
                      (ALICE, Transfer("BLY", 5, BOB.public_key)),
                      (ALICE, Transfer("BLY", 5, OUTSIDER.public_key))) == [
        rejected("account_frozen"), rejected("account_frozen"), FINAL]
    assert ledger.state.balance(BOB.public_key, "BLY") == 1000

    assert ledger.run(9500, (C, propose(UnfreezeAccount(BOB.public_key))), (A, GovVote(2, "yes")),
                      (C, GovVote(2, "yes"))) == [FINAL, FINAL, FINAL]
    assert ledger.run(14_500, (B, GovExecute(2))) == [FINAL]
    assert Freezes(ledger.state).decision(BOB.public_key) is None
    assert ledger.run(15_000, (BOB, Transfer("BLY", 5, ALICE.public_key))) == [FINAL]


def test_votes_close_at_the_deadline_and_quorum_decides() -> None:
    ledger = Ledger()
    ledger.run(0, (A, propose(BanKey(OUTSIDER.public_key))))
    ledger.run(1000, (B, GovVote(1, "yes")), (C, GovVote(1, "no")))
    assert ledger.run(10_000, (A, GovVote(1, "yes"))) == [rejected("vote_after_deadline")]
    # at the deadline: quorum 2 of 4 reached, but yes is 1 of 2 decided: below two thirds
    assert ledger.run(20_000, (B, GovExecute(1))) == [rejected("proposal_not_passed")]
    assert Council(ledger.state).proposal(1).status == "voting"  # stored record; decided lazily

    ledger.run(21_000, (A, propose(BanKey(OUTSIDER.public_key))))
    ledger.run(22_000, (B, GovVote(2, "yes")), (C, GovVote(2, "yes")))  # 2 of 4 cast: quorum; yes 2/2
    assert ledger.run(31_000 + 4_999, (B, GovExecute(2))) == [rejected("timelock_not_expired")]
    assert ledger.run(36_000, (B, GovExecute(2))) == [FINAL]
    assert ledger.run(36_001, (OUTSIDER, Data("text/plain")), (OUTSIDER, Transfer("BLY", 1, A.public_key))) == [
        rejected("identity_banned"), rejected("identity_banned")]


def test_only_the_proposer_cancels_and_a_cancelled_proposal_never_executes() -> None:
    ledger = Ledger()
    ledger.run(0, (A, propose(FreezeAccount(ALICE.public_key))), (A, GovVote(1, "yes")), (B, GovVote(1, "yes")))
    assert Council(ledger.state).proposal(1).status == "passed"
    assert ledger.run(100, (B, GovCancel(1))) == [rejected("not_proposer")]
    assert ledger.run(200, (A, GovCancel(1))) == [FINAL]
    assert ledger.run(9000, (B, GovExecute(1))) == [rejected("proposal_not_passed")]
    assert ledger.run(9001, (C, GovVote(1, "yes"))) == [rejected("proposal_closed")]
    assert ledger.run(9002, (B, GovExecute(99))) == [rejected("proposal_not_found")]
    assert ledger.run(9003, (ALICE, Transfer("BLY", 1, BOB.public_key))) == [FINAL]


def test_no_single_member_exceeds_its_weight() -> None:
    ledger = Ledger()
    ledger.run(0, (A, propose(FreezeAccount(ALICE.public_key))), (A, GovVote(1, "yes")))
    assert Council(ledger.state).proposal(1).status == "voting"  # the heaviest member alone cannot pass it
    assert ledger.run(20_000, (A, GovExecute(1))) == [rejected("proposal_not_passed")]


def test_deleted_state_keys_are_deleted_on_disk(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "db.sqlite")
    state = State()
    state.set(b"Fk", b"1")
    state.set(b"Bk", b"2")
    storage.commit_checkpoint(StoredCheckpoint(1, b"1" * 32, b"", b"", b"", 0, 0), [], state.take_dirty())
    state.delete(b"Fk")
    assert state.take_dirty() == [(b"Fk", None)]
    storage.commit_checkpoint(StoredCheckpoint(2, b"2" * 32, b"", b"", b"", 0, 0), [], [(b"Fk", None)])
    assert dict(storage.state_items()) == {b"Bk": b"2"}


def test_emergency_freeze_acts_at_once_and_lapses_unless_ratified() -> None:
    ledger = Ledger()
    freeze = RegFreeze(account=BOB.public_key, reason="ransom wallet", legal_ref="Emergency Powers s.3")
    assert ledger.run(0, (A, freeze), (OUTSIDER, freeze)) == [rejected("not_regulator"), rejected("not_regulator")]
    assert ledger.run(1000, (REGULATOR, freeze), (BOB, Transfer("BLY", 1, ALICE.public_key))) == [
        FINAL, rejected("account_frozen")]
    # not ratified: it lapses at 21 s
    assert ledger.run(20_999, (BOB, Transfer("BLY", 1, ALICE.public_key))) == [rejected("account_frozen")]
    assert ledger.run(21_000, (BOB, Transfer("BLY", 1, ALICE.public_key))) == [FINAL]
    # a ratification that comes too late is refused
    ledger.run(21_001, (A, propose(RatifyEmergency(1))), (A, GovVote(1, "yes")), (B, GovVote(1, "yes")))
    assert ledger.run(27_000, (C, GovExecute(1))) == [rejected("emergency_lapsed")]


def test_ratified_emergency_freeze_stays() -> None:
    ledger = Ledger()
    ledger.run(0, (REGULATOR, RegFreeze(account=BOB.public_key, reason="sanctions hit", legal_ref="")))
    ledger.run(1000, (A, propose(RatifyEmergency(1))), (A, GovVote(1, "yes")), (C, GovVote(1, "yes")))
    assert ledger.run(6000, (C, GovExecute(1))) == [FINAL]
    assert ledger.run(60_000, (BOB, Transfer("BLY", 1, ALICE.public_key))) == [rejected("account_frozen")]


def test_suspended_service_is_refused_until_resumed() -> None:
    ledger = Ledger()
    ledger.run(0, (A, propose(SuspendService("data"))), (A, GovVote(1, "yes")), (B, GovVote(1, "yes")))
    ledger.run(5000, (C, GovExecute(1)))
    assert ledger.run(5001, (ALICE, Data("text/plain")), (ALICE, Transfer("BLY", 1, BOB.public_key))) == [
        rejected("service_suspended"), FINAL]
    ledger.run(5002, (B, propose(ResumeService("data"))), (B, GovVote(2, "yes")), (A, GovVote(2, "yes")))
    ledger.run(10_002, (C, GovExecute(2)))
    assert ledger.run(10_003, (ALICE, Data("text/plain"))) == [FINAL]


OPERATOR = seeded_signer(31)


def test_an_application_operator_pauses_and_resumes_only_its_own_application() -> None:
    ledger = Ledger()
    pause = AppPause(kind="data", reason="a leak of customer files through data entries")
    assert ledger.run(0, (OPERATOR, pause)) == [rejected("not_application_operator")]
    passed(ledger, 1000, AppointOperator(OPERATOR.public_key, "data"))
    # only its own application: "transfer" is not the operator's
    assert ledger.run(7000, (OPERATOR, AppPause(kind="transfer", reason="not mine"))) == [
        rejected("not_application_operator")]
    assert ledger.run(7001, (OPERATOR, AppResume(kind="data", reason="nothing to end"))) == [
        rejected("service_not_paused")]
    # the pause acts in the checkpoint that orders it, and names the pause entry as the cause
    ledger.height += 1
    pause_entry = ledger.entry(OPERATOR, pause)
    results = execute(ExecContext(ledger.height, 7002, PARAMS), ledger.state,
                      [pause_entry, ledger.entry(ALICE, Data("text/plain")),
                       ledger.entry(ALICE, Transfer("BLY", 1, BOB.public_key))])
    assert [(str(r.outcome), r.code) for r in results] == [FINAL, rejected("service_suspended"), FINAL]
    assert results[1].cause == f"operator:{pause_entry[0].hex()}"
    assert ledger.run(7003, (OPERATOR, AppResume(kind="data", reason="leak closed")),
                      (ALICE, Data("text/plain"))) == [FINAL, FINAL]


def test_an_operator_cannot_lift_the_councils_suspension_but_the_council_ends_its_pause() -> None:
    ledger = Ledger()
    passed(ledger, 0, AppointOperator(OPERATOR.public_key, "data"))
    passed(ledger, 6000, SuspendService("data"))
    assert ledger.run(12_000, (OPERATOR, AppResume(kind="data", reason="we fixed it"))) == [
        rejected("suspended_by_council")]
    assert ledger.run(12_001, (OPERATOR, AppPause(kind="data", reason="also pausing"))) == [FINAL]
    passed(ledger, 13_000, ResumeService("data"))  # the council's resume ends the operator's pause too
    assert ledger.run(19_000, (ALICE, Data("text/plain"))) == [FINAL]
    # a revoked operator has no power left
    passed(ledger, 20_000, RevokeOperator(OPERATOR.public_key, "data"))
    assert ledger.run(26_000, (OPERATOR, AppPause(kind="data", reason="again"))) == [
        rejected("not_application_operator")]


def test_operators_are_appointed_for_applications_only() -> None:
    import pytest

    for kind in ("gov.vote", "app.pause", "no.such.kind"):
        with pytest.raises(InvalidOperation):
            propose(AppointOperator(OPERATOR.public_key, kind)).check(0, GENESIS.params)
        with pytest.raises(InvalidOperation):
            AppPause(kind=kind, reason="x").check(0, GENESIS.params)
    with pytest.raises(InvalidOperation):
        AppPause(kind="data", reason="").check(0, GENESIS.params)


def test_management_itself_cannot_be_suspended() -> None:
    import pytest

    for kind in ("gov.vote", "reg.freeze", "no.such.kind"):
        with pytest.raises(InvalidOperation):
            propose(SuspendService(kind)).check(0, GENESIS.params)


PROVIDER = seeded_signer(30)
ALICE_ID, BOB_ID = b"\xa1" * 16, b"\xb0" * 16


def passed(ledger: Ledger, time_ms: int, action: object) -> None:
    """Propose, vote with A and B (3 of 4: passes at once), execute after the timelock."""
    next_number = Council(ledger.state).proposal_count() + 1
    ledger.run(time_ms, (A, propose(action)), (A, GovVote(next_number, "yes")), (B, GovVote(next_number, "yes")))
    assert ledger.run(time_ms + PARAMS.timelock_ms, (C, GovExecute(next_number))) == [FINAL]


def test_identity_providers_attest_and_rules_require_levels() -> None:
    ledger = Ledger()
    attest = IdAttest(subject=ALICE.public_key, identity=ALICE_ID, level=1, expires_ms=100_000)
    assert ledger.run(0, (PROVIDER, attest)) == [rejected("not_identity_provider")]
    passed(ledger, 1000, AppointIdentityProvider(PROVIDER.public_key))
    assert ledger.run(7000, (PROVIDER, attest),
                      (PROVIDER, IdAttest(subject=BOB.public_key, identity=BOB_ID, level=0, expires_ms=100_000))) == [
        FINAL, FINAL]
    # transfers above 100 need a verified identity
    passed(ledger, 8000, SetIdentityRule(kind="transfer", min_level=1, above_amount=100))
    assert ledger.run(14_000, (ALICE, Transfer("BLY", 500, BOB.public_key)),
                      (BOB, Transfer("BLY", 500, ALICE.public_key)),
                      (BOB, Transfer("BLY", 100, ALICE.public_key)),
                      (OUTSIDER, Transfer("BLY", 101, ALICE.public_key))) == [
        FINAL, rejected("identity_level_too_low"), FINAL, rejected("identity_required")]
    # an expired identity no longer counts
    assert ledger.run(100_000, (ALICE, Transfer("BLY", 500, BOB.public_key))) == [rejected("identity_expired")]
    # the provider's appointment can be revoked; it then attests nothing
    passed(ledger, 101_000, RevokeIdentityProvider(PROVIDER.public_key))
    assert ledger.run(107_000, (PROVIDER, attest)) == [rejected("not_identity_provider")]


def test_banning_an_identity_denies_all_of_its_keys() -> None:
    ledger = Ledger()
    second_key = seeded_signer(31)
    passed(ledger, 0, AppointIdentityProvider(PROVIDER.public_key))
    ledger.run(6000, (PROVIDER, IdAttest(subject=ALICE.public_key, identity=ALICE_ID, level=1, expires_ms=10**9)),
               (PROVIDER, IdAttest(subject=second_key.public_key, identity=ALICE_ID, level=1, expires_ms=10**9)))
    passed(ledger, 7000, BanIdentity(ALICE_ID))
    assert ledger.run(13_000, (ALICE, Data("text/plain")), (second_key, Data("text/plain")),
                      (BOB, Data("text/plain"))) == [rejected("identity_banned"), rejected("identity_banned"), FINAL]


def test_every_gate_refusal_names_the_decision_behind_it() -> None:
    ledger = Ledger()
    passed(ledger, 0, FreezeAccount(BOB.public_key))
    ledger.run(6000, (REGULATOR, RegFreeze(account=ALICE.public_key, reason="r", legal_ref="")))
    ordered = [ledger.entry(BOB, Transfer("BLY", 1, OUTSIDER.public_key)),
               ledger.entry(ALICE, Transfer("BLY", 1, OUTSIDER.public_key)),
               ledger.entry(C, GovExecute(1))]
    results = execute(ExecContext(99, 7000, PARAMS), ledger.state, ordered)
    assert [(r.code, r.cause) for r in results] == [
        ("account_frozen", "proposal:1"), ("account_frozen", "emergency:1"), ("proposal_already_executed", "")]


def test_dry_run_reports_what_a_rule_would_have_refused_and_changes_nothing() -> None:
    from bilayer.execution.governance.gate import dry_run

    ledger = Ledger()
    history = [ledger.entry(BOB, Transfer("BLY", 5, ALICE.public_key)),
               ledger.entry(ALICE, Transfer("BLY", 5, BOB.public_key)),
               ledger.entry(ALICE, Transfer("BLY", 5, OUTSIDER.public_key)),
               ledger.entry(ALICE, Data("text/plain"))]
    execute(ExecContext(1, 0, PARAMS), ledger.state, history)
    root_before = ledger.state.root()
    ctx = ExecContext(2, 1000, PARAMS)
    ids = [i for i, _ in history]
    assert dry_run(ledger.state, FreezeAccount(BOB.public_key), ctx, history) == [
        (ids[0], "account_frozen"), (ids[1], "account_frozen")]
    assert dry_run(ledger.state, SuspendService("data"), ctx, history) == [(ids[3], "service_suspended")]
    assert dry_run(ledger.state, SetIdentityRule("transfer", 1, 0), ctx, history) == [
        (i, "identity_required") for i in ids[:3]]
    assert dry_run(ledger.state, UnfreezeAccount(BOB.public_key), ctx, history) == []
    assert ledger.state.root() == root_before


def test_the_council_changes_itself_by_proposal() -> None:
    from bilayer.ledger.operations import SetCouncilMember

    ledger = Ledger()
    newcomer = seeded_signer(40)
    passed(ledger, 0, SetCouncilMember(newcomer.public_key, 3))
    assert Council(ledger.state).total() == 7
    assert ledger.run(6000, (newcomer, propose(BanKey(OUTSIDER.public_key)))) == [FINAL]
    # the newcomer's weight counts at once: with A, 5 of 7 pass the removal of B
    ledger.run(7000, (A, propose(SetCouncilMember(B.public_key, 0))), (A, GovVote(3, "yes")),
               (newcomer, GovVote(3, "yes")))
    assert Council(ledger.state).proposal(3).status == "passed"
    assert ledger.run(12_000, (C, GovExecute(3))) == [FINAL]
    assert Council(ledger.state).total() == 6
    assert ledger.run(13_000, (B, GovVote(2, "yes"))) == [rejected("not_council_member")]


def test_interception_rules_are_data_and_reject_matching_transfers() -> None:
    from bilayer.ledger.operations import RemoveInterceptionRule, SetInterceptionRule

    ledger = Ledger()
    passed(ledger, 0, SetInterceptionRule(rule_id="large", min_amount=500, asset="BLY"))
    passed(ledger, 6000, SetInterceptionRule(rule_id="watchlist", counterparties=(OUTSIDER.public_key,)))
    assert ledger.run(12_000, (ALICE, Transfer("BLY", 499, BOB.public_key)),
                      (ALICE, Transfer("BLY", 500, BOB.public_key)),
                      (BOB, Transfer("BLY", 1, OUTSIDER.public_key))) == [
        FINAL, rejected("transaction_intercepted"), rejected("transaction_intercepted")]
    ordered = [ledger.entry(ALICE, Transfer("BLY", 900, BOB.public_key))]
    assert execute(ExecContext(50, 12_001, PARAMS), ledger.state, ordered)[0].cause == "proposal:1"
    passed(ledger, 13_000, RemoveInterceptionRule("large"))
    assert ledger.run(19_000, (ALICE, Transfer("BLY", 500, BOB.public_key))) == [FINAL]


def test_interception_by_identity_level() -> None:
    from bilayer.ledger.operations import SetInterceptionRule

    ledger = Ledger()
    passed(ledger, 0, AppointIdentityProvider(PROVIDER.public_key))
    ledger.run(6000, (PROVIDER, IdAttest(subject=ALICE.public_key, identity=ALICE_ID, level=2, expires_ms=10**9)))
    passed(ledger, 7000, SetInterceptionRule(rule_id="unverified-large", min_amount=100, max_identity_level=0))
    assert ledger.run(13_000, (ALICE, Transfer("BLY", 200, BOB.public_key)),
                      (BOB, Transfer("BLY", 200, ALICE.public_key))) == [FINAL, rejected("transaction_intercepted")]


def test_gate_bench_runs_with_many_rules() -> None:
    from bilayer.bench.gate import GateBenchConfig, run_gate_bench

    report = run_gate_bench(GateBenchConfig(transfers=200, rules=50, senders=10, repeats=1))
    results = report["results"]
    assert results["executed_per_s_no_rules"] > 0 and results["executed_per_s_50_rules"] > 0
    assert results["executed_per_s_50_rules_all_examined"] > 0

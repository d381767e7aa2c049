"""The notary application on the module API: its own rules, and the gate's, which it does not
re-implement (suspension, operator pause, identity rules, bans, freezes of its parties)."""

from __future__ import annotations

import pytest

from bilayer import codec
from bilayer.apps.notary.keeper import Documents, query_document, query_owned
from bilayer.apps.notary.operations import NotaryRegister, NotaryTransfer
from bilayer.errors import BadRequest, InvalidOperation, NotFound
from bilayer.execution.application import (
    AppKeeper,
    Application,
    ApplicationInvalid,
    AppOperation,
    app_prefix,
    installed_applications,
    register_application,
)
from bilayer.genesis import ChainParams
from bilayer.ledger.operations import (
    AppointIdentityProvider,
    AppointOperator,
    AppPause,
    BanKey,
    FreezeAccount,
    IdAttest,
    ResumeService,
    SetIdentityRule,
    SuspendService,
    Transfer,
)
from tests.support.ledger import ALICE, BOB, FINAL, OUTSIDER, A, Ledger, rejected

DEED, WILL = codec.sha256(b"deed of the house"), codec.sha256(b"last will")


def register(document: bytes = DEED, title: str = "deed") -> NotaryRegister:
    return NotaryRegister(document=document, title=title)


def test_the_owner_registers_and_hands_on_a_document_and_no_one_else_can() -> None:
    ledger = Ledger()
    assert ledger.run(1_000, (ALICE, register()), (BOB, register(title="mine")),
                      (BOB, NotaryTransfer(DEED, BOB.public_key)), (ALICE, NotaryTransfer(WILL, BOB.public_key))) == [
        FINAL, rejected("document_exists"), rejected("not_document_owner"), rejected("document_not_found")]
    assert ledger.run(2_000, (ALICE, NotaryTransfer(DEED, BOB.public_key))) == [FINAL]
    record = Documents(ledger.state).document(DEED)
    assert record is not None and record.owner == BOB.public_key and record.transfers == 1 and record.title == "deed"
    assert Documents(ledger.state).owned_by(ALICE.public_key) == []
    assert Documents(ledger.state).owned_by(BOB.public_key) == [DEED]
    assert all(key.startswith(app_prefix("notary")) for key, _ in ledger.state.scan(b"Z"))


def test_the_gate_applies_to_the_notary_without_notary_code() -> None:
    ledger = Ledger()
    assert ledger.run(1_000, (ALICE, register())) == [FINAL]

    ledger.decide(2_000, FreezeAccount(OUTSIDER.public_key))  # a frozen new owner: a party of the transfer
    assert ledger.run(20_000, (ALICE, NotaryTransfer(DEED, OUTSIDER.public_key))) == [rejected("account_frozen")]

    ledger.decide(30_000, SuspendService("notary.register"))  # the council stops registrations
    assert ledger.run(50_000, (BOB, register(WILL))) == [rejected("service_suspended")]
    ledger.decide(60_000, ResumeService("notary.register"))

    ledger.decide(80_000, AppointOperator(OUTSIDER.public_key, "notary.register"))  # its operator pauses it
    assert ledger.run(100_000, (OUTSIDER, AppPause("notary.register", "audit")), (BOB, register(WILL))) == [
        FINAL, rejected("service_suspended")]
    ledger.decide(110_000, ResumeService("notary.register"))

    ledger.decide(130_000, SetIdentityRule("notary.register", 1))  # registrations need a verified identity
    assert ledger.run(150_000, (BOB, register(WILL))) == [rejected("identity_required")]
    ledger.decide(160_000, AppointIdentityProvider(A.public_key))
    assert ledger.run(180_000, (A, IdAttest(BOB.public_key, b"\x07" * 16, 1, 10**13)), (BOB, register(WILL))) == [
        FINAL, FINAL]

    ledger.decide(190_000, BanKey(BOB.public_key))  # a banned key does nothing, notarial or not
    assert ledger.run(210_000, (BOB, NotaryTransfer(WILL, ALICE.public_key))) == [rejected("identity_banned")]
    assert Documents(ledger.state).document(WILL).owner == BOB.public_key  # type: ignore[union-attr]


def test_a_refused_notary_entry_changes_nothing() -> None:
    ledger = Ledger()
    assert ledger.run(1_000, (ALICE, register()), (ALICE, Transfer("BLY", 1, BOB.public_key))) == [FINAL, FINAL]
    before = {key: value for key, value in ledger.state.items() if not key.startswith(b"A")}
    assert ledger.run(2_000, (BOB, NotaryTransfer(DEED, BOB.public_key)), (ALICE, register(title="again"))) == [
        rejected("not_document_owner"), rejected("document_exists")]
    assert {key: value for key, value in ledger.state.items() if not key.startswith(b"A")} == before


def test_the_notarys_queries_and_stateless_checks() -> None:
    ledger = Ledger()
    ledger.run(1_000, (ALICE, register()))
    view = query_document(ledger.state, {"hash": DEED.hex()})
    assert view["owner"] == ALICE.address and view["title"] == "deed" and view["transfers"] == 0
    assert [d["document"] for d in query_owned(ledger.state, {"owner": ALICE.address})["documents"]] == [DEED.hex()]
    with pytest.raises(NotFound):
        query_document(ledger.state, {"hash": WILL.hex()})
    with pytest.raises(BadRequest):
        query_document(ledger.state, {"hash": "xyz"})
    for bad in (NotaryRegister(b"\x01", "deed"), NotaryRegister(DEED, ""), NotaryTransfer(DEED, b"\x02" * 31)):
        with pytest.raises(InvalidOperation):
            bad.check(0, ChainParams())


def test_the_module_api_refuses_a_declaration_that_breaks_it() -> None:
    class Stray(AppKeeper):
        __slots__ = ()
        APP = "other"

    def noop(*args: object) -> None:
        return None

    assert [app.name for app in installed_applications()] == ["notary", "warehouse"]
    with pytest.raises(ApplicationInvalid):  # a keeper of another application's keys
        register_application(Application("stray", "", (), Stray))
    with pytest.raises(ApplicationInvalid):  # an operation kind outside its name
        register_application(Application("other", "", (AppOperation(Transfer, noop),), Stray))
    with pytest.raises(ApplicationInvalid):  # taken
        register_application(Application("notary", "", (), Stray))

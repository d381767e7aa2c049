"""Keepers and the action registry: each power reads its own keys by prefix, the listings never
walk the whole state, and every governance action is one registered spec."""

from __future__ import annotations

import typing
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings

from bilayer.api.actions import ACTIONS, make_action
from bilayer.api.views import compliance_view, council_view
from bilayer.errors import BadRequest
from bilayer.execution.application import AppKeeper
from bilayer.execution.errors import ExecutionRejected
from bilayer.execution.governance.actions import action_specs, spec_of, unregistered_actions
from bilayer.execution.governance.freezes import Freezes
from bilayer.execution.governance.identity import Identities, IdentityRule
from bilayer.execution.governance.options import ActionOptions
from bilayer.execution.governance.redaction import RedactionRecord, Redactions, redactions_among
from bilayer.execution.governance.rules import HELD_CODE
from bilayer.execution.governance.services import Services
from bilayer.execution.state import ACCOUNT_KEYS, Keeper, State
from bilayer.genesis import ChainParams
from bilayer.ledger.operations import GovAction
from tests.support.builders import seeded_signer
from tests.support.guard import GENESIS, RICH_HISTORY, Runner, _subclasses, histories


def _state_with_records() -> State:
    runner = Runner()
    state = runner.state
    for index in range(1, 4):
        key = bytes([0x49]) + bytes([index]) * 31  # starts with b"I": a banned key must not pass for an identity
        Freezes(state).freeze(key, index)
        Identities(state).ban_key(key, index)
        Identities(state).set_provider(key, index)
        Identities(state).ban_identity(bytes([index]) * 16, index)
        Redactions(state).redact(bytes([index]) * 32, RedactionRecord(index, "court_order", 1, 1))
        Services(state).suspend(f"kind{index}", index)
    Identities(state).set_rule("transfer", IdentityRule(1, 10, 4))
    return state


def test_listings_read_only_their_keepers_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    state = _state_with_records()

    def whole_state(self: State) -> Iterator[tuple[bytes, bytes]]:
        raise AssertionError("a listing walked the whole state")

    monkeypatch.setattr(State, "items", whole_state)
    view = compliance_view(state, 1, 100)
    assert [row["decision"] for row in view["frozen_accounts"]] == [1, 2, 3]
    assert [row["decision"] for row in view["banned_keys"]] == [1, 2, 3]
    assert [row["decision"] for row in view["identity_providers"]] == [1, 2, 3]
    assert [row["identity"] for row in view["banned_identities"]] == [(bytes([i]) * 16).hex() for i in (1, 2, 3)]
    assert [row["kind"] for row in view["suspended_services"]] == ["kind1", "kind2", "kind3"]
    assert [row["entry"] for row in view["redactions"]] == [(bytes([i]) * 32).hex() for i in (1, 2, 3)]
    assert view["identity_rules"] == [{"kind": "transfer", "min_level": 1, "above_amount": 10, "decision": 4}]
    assert len(council_view(state, {})) == len(GENESIS.council)


def test_every_governance_action_has_a_registered_spec() -> None:
    assert unregistered_actions() == set()


def test_a_checkpoints_redactions_are_found_among_its_changes() -> None:
    record = RedactionRecord(7, "court_order", 1, 2)
    state = State()
    Redactions(state).redact(b"\x05" * 32, record)
    Freezes(state).freeze(b"\x05" * 32, 7)
    assert redactions_among(state.take_dirty()) == [(b"\x05" * 32, record)]


def test_every_action_is_built_from_the_words_users_give_and_checks() -> None:
    """The registry drives the CLI, the API and drafts: each name builds its own struct."""
    key = seeded_signer(5).address
    words = ActionOptions(target=key, service="data", emergency=1, identity="ab" * 16, min_level="verified",
                          weight=1, rule_id="r1", keyword="secret", entries=("cd" * 32,), reason_code="court_order",
                          to=seeded_signer(6).address, assets=("BLY",), params={"max_data_bytes": 4096}, power=1)
    specs = action_specs()
    assert {spec.struct for spec in specs} == set(typing.get_args(GovAction))
    assert tuple(spec.name for spec in specs) == ACTIONS
    for spec in specs:
        action = make_action(spec.name, words, ChainParams())
        assert type(action) is spec.struct and spec_of(action) is spec
        action.check()


def test_declared_refusals_are_codes_execution_gives() -> None:
    codes = {vars(cls)["code"] for cls in _subclasses(ExecutionRejected) if "code" in vars(cls)} | {HELD_CODE}
    for spec in action_specs():
        assert set(spec.refusals) <= codes, spec.name


def test_an_unknown_action_name_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        make_action("nationalise", ActionOptions())


def test_the_listing_bench_runs_on_a_small_state() -> None:
    from bilayer.bench.listing import ListingBenchConfig, run_listing_bench

    report = run_listing_bench(ListingBenchConfig(accounts=1000, records=5, repeats=1))
    # a balance and an author chain per account; per record a freeze, a ban, a provider, a redaction and
    # an interception rule, and the rules' index; an identity rule; five members, their total, the parameters
    assert report["results"]["state_keys"] == 2 * 1000 + 5 * 5 + 1 + 1 + 5 + 1 + 1
    assert report["results"]["compliance_ms"] > 0 and report["results"]["council_ms"] > 0


def _keepers() -> list[type[Keeper]]:
    found, todo = [], [Keeper]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return [k for k in found if k is not AppKeeper]


def _owners(key: bytes, keepers: list[type[Keeper]]) -> list[str]:
    shapes = [("state", shape) for shape in ACCOUNT_KEYS]
    shapes += [(keeper.__name__, shape) for keeper in keepers for shape in keeper.owned_keys()]
    return [name for name, (prefix, size) in shapes
            if key.startswith(prefix) and (size is None or len(key) == len(prefix) + size)]


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@example(RICH_HISTORY)
@given(histories)
def test_every_state_key_has_exactly_one_keeper(history: list[typing.Any]) -> None:
    """Each power owns its keys: no key is unclaimed, none is claimed twice."""
    runner = Runner()
    runner.run(history)
    keepers = [k for k in _keepers() if k.__module__.startswith(("bilayer.execution", "bilayer.apps"))]  # not tests'
    assert {k.__name__ for k in keepers} >= {"Council", "Emergencies", "Freezes", "Identities", "Rules",
                                              "ReviewQueue", "Services", "Validators", "Redactions", "Params",
                                              "Documents"}
    for key, _ in runner.state.items():
        assert len(_owners(key, keepers)) == 1, (key, _owners(key, keepers))

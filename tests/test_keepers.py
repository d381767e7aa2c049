"""Keepers: each power reads its own keys by prefix; the listings never walk the whole state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bilayer.api.views import compliance_view, council_view
from bilayer.execution.governance.actions import actions_without_effect
from bilayer.execution.governance.freezes import Freezes
from bilayer.execution.governance.identity import Identities, IdentityRule
from bilayer.execution.governance.redaction import RedactionRecord, Redactions, redactions_among
from bilayer.execution.governance.services import Services
from bilayer.execution.state import State

from .test_guard_properties import GENESIS, Runner


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
    assert len(council_view(state)) == len(GENESIS.council)


def test_every_governance_action_has_a_registered_effect() -> None:
    assert actions_without_effect() == set()


def test_a_checkpoints_redactions_are_found_among_its_changes() -> None:
    record = RedactionRecord(7, "court_order", 1, 2)
    state = State()
    Redactions(state).redact(b"\x05" * 32, record)
    Freezes(state).freeze(b"\x05" * 32, 7)
    assert redactions_among(state.take_dirty()) == [(b"\x05" * 32, record)]

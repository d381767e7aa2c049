"""Governance through real processes: a council freezes an account by proposal, then unfreezes it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.governance_net import (
    actors,
    cli,
)

pytestmark = pytest.mark.slow


def test_freeze_by_proposal_rejects_transfers_until_unfrozen(network: dict[str, Any]) -> None:
    node, alice, bob, tx = actors(network)

    # before anyone votes: what would a freeze of bob have refused? (his genesis-funded history is empty)
    assert tx("bob", "tx", "transfer", "--to", alice, "--amount", "7")["status"] == "FINAL"
    preview = cli("gov", "dry-run", "--action", "freeze", "--target", bob, "--node", node)
    assert preview["would_refuse"] == 1 and preview["entries"][0]["reason"] == "account_frozen"

    proposal = tx("council1", "gov", "propose", "--action", "freeze", "--target", bob, "--reason",
                  "suspected mule account", "--legal-ref", "AML Act s.12")
    assert proposal["status"] == "FINAL"
    assert tx("alice", "gov", "vote", "1", "yes")["reason"] == "not_council_member"
    assert tx("council1", "gov", "vote", "1", "yes")["status"] == "FINAL"
    assert tx("council2", "gov", "vote", "1", "yes")["status"] == "FINAL"
    assert tx("council2", "gov", "vote", "1", "no")["reason"] == "double_vote"
    passed = cli("gov", "show", "1", "--node", node)
    assert passed["status"] == "passed" and len(passed["votes"]) == 2
    early = tx("alice", "gov", "execute", "1")
    if early["status"] == "REJECTED":
        assert early["reason"] == "timelock_not_expired"
        time.sleep(max(0.0, (passed["executable_from_ms"] - time.time() * 1000) / 1000) + 0.5)
        assert tx("alice", "gov", "execute", "1")["status"] == "FINAL"
    assert tx("carol", "gov", "execute", "1")["reason"] == "proposal_already_executed"
    assert cli("compliance", "list", "--node", node)["frozen_accounts"] == [{"address": bob, "decision": 1}]

    refused = tx("bob", "tx", "transfer", "--to", alice, "--amount", "5")
    assert refused["status"] == "REJECTED" and refused["reason"] == "account_frozen"
    assert tx("alice", "tx", "transfer", "--to", bob, "--amount", "5")["reason"] == "account_frozen"

    tx("council3", "gov", "propose", "--action", "unfreeze", "--target", bob, "--reason", "cleared by review")
    tx("council3", "gov", "vote", "2", "yes")
    tx("council1", "gov", "vote", "2", "yes")
    deadline = time.monotonic() + 30
    while True:
        executed = tx("dave", "gov", "execute", "2")
        if executed["status"] == "FINAL" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert executed["status"] == "FINAL"
    assert tx("bob", "tx", "transfer", "--to", alice, "--amount", "5")["status"] == "FINAL"
    listed = cli("gov", "list", "--node", node)["proposals"]
    assert [(p["number"], p["status"]) for p in listed] == [(2, "executed"), (1, "executed")]
    # the audit trail: the decision lists the entries it affected, each with its cause
    shown = cli("gov", "show", "1", "--node", node)
    assert refused["id"] in {a["id"] for a in shown["affected"]}
    assert cli("query", "entry", refused["id"], "--node", node)["cause"] == "proposal:1"
    kinds = [a["kind"] for a in cli("audit", "actions", "--node", node)["actions"]]
    assert kinds.count("gov.propose") == 2 and kinds.count("gov.execute") >= 2 and "gov.vote" in kinds
    # every node agrees
    views = [cli("gov", "show", "1", "--node", n["api_url"]) for n in network["nodes"]]
    assert len({(v["status"], v["executed_height"]) for v in views}) == 1


def test_emergency_freeze_lapses_and_a_suspended_service_is_refused(network: dict[str, Any]) -> None:
    node, alice, bob, tx = actors(network)

    assert tx("council1", "reg", "freeze", "--account", bob, "--reason", "x")["reason"] == "not_regulator"
    assert tx("regulator", "reg", "freeze", "--account", bob, "--reason", "ransom payout")["status"] == "FINAL"
    assert tx("bob", "tx", "transfer", "--to", alice, "--amount", "1")["reason"] == "account_frozen"
    emergency = cli("compliance", "list", "--node", node)["emergencies"][0]
    assert emergency["status"] == "active" and emergency["account"] == bob
    # the regulator is no council member: it cannot make its action permanent by itself
    assert tx("regulator", "gov", "propose", "--action", "ratify", "--emergency", "1", "--reason",
              "keep it")["reason"] == "not_council_member"
    time.sleep(max(0.0, (emergency["expires_ms"] - time.time() * 1000) / 1000) + 0.5)
    assert tx("bob", "tx", "transfer", "--to", alice, "--amount", "1")["status"] == "FINAL"
    assert cli("compliance", "list", "--node", node)["emergencies"][0]["status"] == "lapsed"

    tx("council2", "gov", "propose", "--action", "suspend", "--service", "data", "--reason", "abuse wave")
    tx("council2", "gov", "vote", "1", "yes")
    tx("council3", "gov", "vote", "1", "yes")
    deadline = time.monotonic() + 30
    while tx("alice", "gov", "execute", "1")["status"] != "FINAL":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert tx("alice", "tx", "data", "--text", "hello")["reason"] == "service_suspended"
    assert tx("alice", "tx", "transfer", "--to", bob, "--amount", "1")["status"] == "FINAL"
    assert cli("compliance", "list", "--node", node)["suspended_services"] == [{"kind": "data", "decision": 1}]

"""Manageability through real processes (4 validators, 1 ledger node): content rules, the
review queue, redaction with a resync from genesis, asset recovery and chain parameters."""

from __future__ import annotations

import base64
import hashlib
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bilayer.devnet import localnet
from bilayer.node.config import NodeHome
from tests.support.governance_net import (
    actors,
    cli,
)
from tests.support.manageability import decide, http_status

pytestmark = pytest.mark.slow


def wait_until(predicate: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_content_rules_block_a_hash_and_a_keyword(network: dict[str, Any], tmp_path: Path) -> None:
    node, alice, _, tx = actors(network)
    banned = tmp_path / "banned.bin"
    banned.write_bytes(b"\x89PNG known abuse image")
    digest = hashlib.sha256(banned.read_bytes()).hexdigest()
    preview = tx("alice", "tx", "data", "--text", "the Secret plan")
    assert preview["status"] == "FINAL"
    dry = cli("gov", "dry-run", "--action", "content-rule", "--rule-id", "plans", "--keyword", "secret",
              "--node", node)
    assert dry["would_refuse"] == 1 and dry["entries"][0]["id"] == preview["id"]

    decide(tx, 1, "--action", "content-rule", "--rule-id", "abuse", "--payload-hash", digest)
    decide(tx, 2, "--action", "content-rule", "--rule-id", "plans", "--keyword", "secret")
    rules = cli("compliance", "list", "--node", node)["content_rules"]
    assert [(r["rule_id"], r["decision"]) for r in rules] == [("abuse", 1), ("plans", 2)]

    by_hash = tx("bob", "tx", "data", "--file", str(banned), "--media-type", "image/png")
    by_keyword = tx("bob", "tx", "data", "--text", "here is the SECRET plan")
    clean = tx("bob", "tx", "data", "--text", "nothing to see")
    assert (by_hash["status"], by_hash["reason"], by_hash["cause"]) == ("REJECTED", "content_blocked", "proposal:1")
    assert (by_keyword["status"], by_keyword["reason"], by_keyword["cause"]) == (
        "REJECTED", "content_blocked", "proposal:2")
    assert clean["status"] == "FINAL"
    for member in network["nodes"]:  # the blocked payloads are gone everywhere; the clean one is served
        url = member["api_url"]
        wait_until(lambda url=url: http_status(f"{url}/v1/entries/{by_keyword['id']}/payload") == 410,
                   "the blocked payload's tombstone")
        assert http_status(f"{url}/v1/entries/{by_hash['id']}/payload") == 410
        shown = cli("query", "entry", by_hash["id"], "--payload", "--node", url)
        assert "payload" not in shown and shown["tombstone"]["reason_code"] == "content_blocked"
        assert http_status(f"{url}/v1/entries/{clean['id']}/payload") == 200
    assert alice


def test_a_held_transfer_is_released_and_another_expires(network: dict[str, Any]) -> None:
    node, alice, bob, tx = actors(network)
    decide(tx, 1, "--action", "intercept", "--rule-id", "large", "--above", "500", "--outcome", "hold",
           "--review-hours", "0.01")  # a 36 s review window: the release must land inside it on a loaded machine
    before = cli("query", "account", alice, "--node", node)["balances"]["BLY"]
    released = tx("alice", "tx", "transfer", "--to", bob, "--amount", "600")
    expiring = tx("alice", "tx", "transfer", "--to", bob, "--amount", "700")
    small = tx("alice", "tx", "transfer", "--to", bob, "--amount", "5")
    assert (released["status"], released["reason"], released["cause"]) == ("HELD", "held_for_review", "proposal:1")
    assert expiring["status"] == "HELD" and small["status"] == "FINAL"
    queue = cli("compliance", "review", "--node", node)
    assert [row["entry"] for row in queue["held"]] == [released["id"], expiring["id"]]
    assert cli("query", "account", alice, "--node", node)["balances"]["BLY"] == before - 1305  # funds in escrow

    assert tx("alice", "compliance", "release", released["id"], "--reason", "mine")["reason"] == "not_regulator"
    decision = tx("regulator", "compliance", "release", released["id"], "--reason", "invoice checked")
    assert decision["status"] == "FINAL"
    shown = cli("query", "entry", released["id"], "--node", node)
    assert shown["status"] == "HELD" and shown["review"]["status"] == "released"
    assert shown["review"]["decided_by"] == decision["id"]
    assert tx("regulator", "compliance", "reject", released["id"], "--reason", "x")["reason"] == "review_closed"

    deadline_ms = cli("query", "entry", expiring["id"], "--node", node)["review"]["deadline_ms"]
    time.sleep(max(0.0, deadline_ms / 1000 - time.time()) + 0.5)
    tx("carol", "tx", "transfer", "--to", bob, "--amount", "1")  # a later checkpoint runs the expiry
    shown = cli("query", "entry", expiring["id"], "--node", node)
    assert shown["review"]["status"] == "expired"
    assert cli("query", "account", alice, "--node", node)["balances"]["BLY"] == before - 605  # 700 came back
    assert cli("compliance", "review", "--node", node)["count"] == 0
    kinds = [a["kind"] for a in cli("audit", "actions", "--node", node)["actions"]]
    assert "reg.review" in kinds


def test_a_redacted_payload_is_gone_from_every_node_and_the_chain_still_verifies(network: dict[str, Any]) -> None:
    node, _, _, tx = actors(network)
    secret = "name and home address of a protected witness"
    target = tx("alice", "tx", "data", "--text", secret)
    kept = tx("alice", "tx", "data", "--text", "public notice")
    assert target["status"] == "FINAL"
    decide(tx, 1, "--action", "redact", "--entry", target["id"], "--reason-code", "personal_data")
    for member in network["nodes"]:
        url = member["api_url"]
        wait_until(lambda url=url: http_status(f"{url}/v1/entries/{target['id']}/payload") == 410, "the tombstone")
        shown = cli("query", "entry", target["id"], "--payload", "--node", url)
        assert shown["tombstone"]["decision"] == "proposal:1" and shown["tombstone"]["reason_code"] == "personal_data"
        assert shown["status"] == "FINAL" and "payload" not in shown
    redactions = cli("compliance", "list", "--node", node)["redactions"]
    assert [(r["entry"], r["decision"]) for r in redactions] == [(target["id"], 1)]

    # the ledger node starts again from nothing: it syncs the DAG from its peers, the redacted
    # entry without its bytes, and re-executes every checkpoint from genesis to the same roots
    ledger = next(n for n in network["nodes"] if n["role"] == "ledger")
    height = cli("query", "checkpoint", "latest", "--node", node)["height"]
    localnet.restart_node(Path(network["dir"]), ledger["name"],
                          lambda stopped: shutil.rmtree(NodeHome(Path(stopped["home"])).data_dir))
    wait_until(lambda: cli("query", "status", "--node", node).get("height", 0) >= height, "the resync", 90)
    validator = next(n["api_url"] for n in network["nodes"] if n["role"] == "validator")
    for h in range(1, height + 1):
        ours = cli("query", "checkpoint", str(h), "--node", node)
        theirs = cli("query", "checkpoint", str(h), "--node", validator)
        assert (ours["id"], ours["state_root"], ours["results_root"]) == (
            theirs["id"], theirs["state_root"], theirs["results_root"])
    shown = cli("query", "entry", target["id"], "--payload", "--node", node)
    assert "payload" not in shown and shown["tombstone"]["reason_code"] == "personal_data"
    assert http_status(f"{node}/v1/entries/{target['id']}/payload") == 410
    fetched = cli("query", "entry", kept["id"], "--payload", "--node", node)
    assert base64.b64decode(fetched["payload"]) == b"public notice"
    for member in network["nodes"]:  # no route on any node returns the bytes
        for path in (f"/v1/entries/{target['id']}", f"/v1/entries/{target['id']}/payload", "/v1/entries?limit=1000",
                     "/v1/compliance", "/v1/audit/actions"):
            try:
                with urllib.request.urlopen(member["api_url"] + path, timeout=10) as response:
                    body = response.read()
            except urllib.error.HTTPError as error:
                body = error.read()
            assert secret.encode() not in body and base64.b64encode(secret.encode()) not in body


def test_assets_of_a_lost_key_are_recovered_and_chain_parameters_change(network: dict[str, Any]) -> None:
    node, alice, _, tx = actors(network)
    carol = cli("keys", "show", "carol", "--keystore", network["keystore"])["address"]
    fresh = cli("keys", "new", "carol-new", "--plaintext", "--keystore", network["keystore"])["address"]
    owned = cli("query", "account", carol, "--node", node)["balances"]["BLY"]
    decide(tx, 1, "--action", "recover", "--target", carol, "--to", fresh, "--asset", "BLY")
    assert cli("query", "account", carol, "--node", node)["balances"].get("BLY", 0) == 0
    assert cli("query", "account", fresh, "--node", node)["balances"]["BLY"] == owned
    assert tx("carol", "tx", "transfer", "--to", alice, "--amount", "1")["reason"] == "identity_banned"
    assert tx("carol-new", "tx", "transfer", "--to", alice, "--amount", "1")["status"] == "FINAL"

    decide(tx, 2, "--action", "chain-params", "--param", "max_data_bytes=16")
    params = cli("query", "params", "--node", node)
    assert params["params"]["max_data_bytes"] == 16 and params["loosest"]["max_data_bytes"] > 16
    wait_until(lambda: all(cli("query", "params", "--node", n["api_url"])["params"]["max_data_bytes"] == 16
                           for n in network["nodes"]), "every node to follow the new parameters")
    too_big = cli_error("tx", "data", "--text", "x" * 17, "--key", "alice", "--node", node, "--keystore",
                        network["keystore"])
    assert "payload_too_large" in too_big
    assert tx("alice", "tx", "data", "--text", "x" * 16)["status"] == "FINAL"


def cli_error(*args: str) -> str:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "bilayer", *args, "--json"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0
    return run.stdout + run.stderr


def test_an_identity_ban_an_emergency_interception_and_a_resumed_service(network: dict[str, Any]) -> None:
    node, alice, bob, tx = actors(network)
    keys = network["keystore"]
    provider = cli("keys", "new", "provider", "--plaintext", "--keystore", keys)["address"]
    carol = cli("keys", "show", "carol", "--keystore", keys)["address"]
    identity = "ab" * 16
    decide(tx, 1, "--action", "appoint-provider", "--target", provider)
    for subject in (alice, carol):  # two keys of one person
        attested = tx("provider", "identity", "attest", "--subject", subject, "--identity", identity, "--level",
                      "verified")
        assert attested["status"] == "FINAL", attested
    decide(tx, 2, "--action", "ban-identity", "--identity", identity)
    for key in ("alice", "carol"):
        refused = tx(key, "tx", "transfer", "--to", bob, "--amount", "1")
        assert (refused["status"], refused["reason"], refused["cause"]) == ("REJECTED", "identity_banned", "proposal:2")
    assert tx("dave", "tx", "transfer", "--to", bob, "--amount", "1")["status"] == "FINAL"
    assert cli("identity", "show", alice, "--node", node)["identity_banned"] is True

    assert tx("council1", "reg", "intercept", "--rule-id", "sanctions", "--counterparty", bob, "--reason",
              "x")["reason"] == "not_regulator"
    assert tx("regulator", "reg", "intercept", "--rule-id", "sanctions", "--counterparty", bob, "--reason",
              "sanctions list update")["status"] == "FINAL"
    intercepted = tx("dave", "tx", "transfer", "--to", bob, "--amount", "1")
    assert (intercepted["reason"], intercepted["cause"]) == ("transaction_intercepted", "emergency:1")
    emergency = cli("compliance", "list", "--node", node)["emergencies"][0]
    assert (emergency["action"], emergency["rule_id"], emergency["status"]) == ("intercept", "sanctions", "active")
    time.sleep(max(0.0, (emergency["expires_ms"] - time.time() * 1000) / 1000) + 0.5)
    assert tx("dave", "tx", "transfer", "--to", bob, "--amount", "1")["status"] == "FINAL"  # lapsed unratified
    rules = cli("compliance", "list", "--node", node)["interception_rules"]
    assert [(r["rule_id"], r["emergency"], r["in_force"]) for r in rules] == [("sanctions", 1, False)]

    decide(tx, 3, "--action", "suspend", "--service", "data")
    assert tx("dave", "tx", "data", "--text", "hello")["reason"] == "service_suspended"
    decide(tx, 4, "--action", "resume", "--service", "data")
    assert tx("dave", "tx", "data", "--text", "hello again")["status"] == "FINAL"
    assert cli("compliance", "list", "--node", node)["suspended_services"] == []

    # the council appoints an operator of the data application, who pauses and resumes it at once
    operator = cli("keys", "new", "operator", "--plaintext", "--keystore", keys)["address"]
    decide(tx, 5, "--action", "appoint-operator", "--target", operator, "--service", "data")
    assert tx("operator", "app", "pause", "transfer", "--reason", "not mine")["reason"] == "not_application_operator"
    paused = tx("operator", "app", "pause", "data", "--reason", "customer files leaking through data entries")
    assert paused["status"] == "FINAL", paused
    refused = tx("dave", "tx", "data", "--text", "during the pause")
    assert (refused["reason"], refused["cause"]) == ("service_suspended", f"operator:{paused['id']}")
    listed = cli("compliance", "list", "--node", node)
    assert [(p["kind"], p["operator"]) for p in listed["paused_services"]] == [("data", operator)]
    assert [(o["address"], o["kind"], o["decision"]) for o in listed["operators"]] == [(operator, "data", 5)]
    assert tx("operator", "app", "resume", "data", "--reason", "leak closed")["status"] == "FINAL"
    assert tx("dave", "tx", "data", "--text", "after the pause")["status"] == "FINAL"
    acts = cli("audit", "actions", "--node", node)["actions"]
    assert {"app.pause", "app.resume"} <= {a["kind"] for a in acts}

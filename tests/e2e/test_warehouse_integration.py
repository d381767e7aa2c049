"""The warehouse application on a 4-validator localnet of real processes, driven through the
CLI as its users drive it: a whole receipt lifecycle, the Qingdao fraud replayed (each
attempt REJECTED with its code and nothing changed), and a pledge raced through two ledger
nodes (exactly one pledge final, the same on every node)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

import pytest

from bilayer.api.client import NodeClient, RemoteError
from bilayer.apps.warehouse.operations import RequestPledge
from tests.support.browser import browser, shot, visit  # noqa: F401  (browser: a fixture)
from tests.support.finality import http, wait_until
from tests.support.warehouse_net import (
    Net,
    cli,
)

pytestmark = pytest.mark.slow


def test_a_receipt_lifecycle_through_the_cli(net: Net) -> None:
    coils = [f"MILL01:H24A1187:L{n:02d}" for n in range(1, 4)]
    for coil in coils:
        net.intake("wh1", "wb1", coil, 23_000)
    receipt = net.issue("wh1", *coils)
    shown = net.read("show", receipt)
    assert shown["receipt"]["status"] == "active" and shown["holder_address"] == net.address["dep"]
    assert shown["receipt"]["goods"]["quantity_kg"] == 69_000 and shown["receipt"]["signed_off"]

    net.pledge(receipt, "bank_a", "wh1")
    assert [r["id"] for r in net.read("register-list", "--status", "pledged")["receipts"]] == [receipt]
    net.ok("bank_a", "release", receipt)
    net.ok("dep", "deliver", "surrender", receipt, "--collector", "ID 110101199001011234")
    for coil in coils:
        net.ok("wb1", "intake", "--device", "urn:epc:id:giai:6901234.wb1", "--step", "shipping", "--lot", coil,
               "--gross-kg", "41000", "--tare-kg", "18000")
    net.ok("wh1", "deliver", "cancel", receipt)

    history = net.read("history", receipt)
    assert len(history["history"]) == 9  # propose, accept x2, request, confirm, countersign, release, surrender, cancel
    for node in net.nodes:  # every node, validators and ledger nodes, holds the same register
        assert net.read("show", receipt, node=node)["receipt"]["status"] == "cancelled"
    evidence = net.read("evidence", receipt)
    assert [e["biz_step"] for e in evidence["events"]].count("shipping") == 3
    assert net.read("lot-show", coils[0])["lot"]["status"] == "shipped"

    # every read prints for a person too (no --json)
    for args in (("show", receipt), ("history", receipt), ("register-list", "--status", "cancelled"),
                 ("lot-show", coils[0]), ("evidence", receipt), ("party", net.address["wh1"])):
        run = subprocess.run([sys.executable, "-m", "bilayer", "warehouse", *args, "--node", net.ledgers[0]],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and run.stderr == "" and run.stdout.strip(), (args, run)

    # the whole history as one document, checked offline against genesis alone (the last act is
    # provable once a later checkpoint signs its results root)
    later = cli("tx", "data", "--text", "a later entry", "--key", "alice", "--node", net.ledgers[0], "--keystore",
                net.keystore, "--wait")
    wait_until(lambda: cli("query", "status", "--node", net.ledgers[1])["height"] >= later["height"], 60,
               "the second ledger node to reach the later entry")
    document = net.manifest["dir"] / "receipt-proof.json"
    run = subprocess.run([sys.executable, "-m", "bilayer", "warehouse", "proof", receipt, "--node", net.ledgers[1],
                          "--out", str(document)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    verified = cli("audit", "verify", str(document), "--genesis", str(net.manifest["genesis"]))
    assert verified["valid"] and verified["receipt"] == receipt
    assert [t["kind"] for t in verified["history"]] == [
        "warehouse.propose_receipt", "warehouse.accept_receipt", "warehouse.accept_receipt",
        "warehouse.request_pledge", "warehouse.confirm_pledge", "warehouse.countersign", "warehouse.release_pledge",
        "warehouse.surrender", "warehouse.cancel_receipt"]
    assert sorted(lot["coil"] for lot in verified["lots"]) == coils
    assert sorted(e["biz_step"] for e in verified["evidence"]) == ["receiving"] * 3 + ["shipping"] * 3

    # a document with an act left out, or one that claims another receipt, does not verify
    body = json.loads(document.read_text())
    for name, change in (("gap", lambda d: d["history"].pop(0)), ("other", lambda d: d.update(receipt="ab" * 32))):
        tampered = net.manifest["dir"] / f"tampered-{name}.json"
        copy = json.loads(json.dumps(body))
        change(copy)
        tampered.write_text(json.dumps(copy))
        refused = subprocess.run([sys.executable, "-m", "bilayer", "audit", "verify", str(tampered), "--genesis",
                                  str(net.manifest["genesis"]), "--json"], capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0
        assert json.loads(refused.stdout)["error"]["code"] == "receipt_history_invalid", refused.stdout


def test_the_qingdao_fraud_is_refused_with_its_codes(net: Net) -> None:
    coils = [f"MILL01:H24B2001:Q{n:02d}" for n in range(1, 3)]
    for coil in coils:
        net.intake("wh1", "wb1", coil, 25_000)
    receipt = net.issue("wh1", *coils)
    net.pledge(receipt, "bank_a", "wh1")
    a = net.address

    # the same coils for a second receipt at the same warehouse
    before = net.register()
    done = net.propose("wh1", *coils)
    assert (done["status"], done["reason"]) == ("REJECTED", "warehouse.lot_already_receipted") and \
        net.register() == before
    # the same coils weighed in and booked at a second warehouse
    event = net.ok("wb2", "intake", "--device", "urn:epc:id:giai:6901234.wb2", "--lot", coils[0], "--gross-kg",
                   "43000", "--tare-kg", "18000")["event_id"]
    net.refused("warehouse.lot_held_elsewhere", "wh2", "lot", coils[0], "--event", event, "--bin", "A1",
                "--grade", "Q235B", "--spec", "5.75x1500", "--mill-cert", "MC-x", "--production-date", "2026-10-01")
    net.refused("warehouse.lot_not_in_warehouse", "wh2", *net.proposal(coils[0], quantity_kg=25_000))
    # the pledged receipt pledged again, to a second bank
    net.refused("warehouse.already_pledged", "dep", "pledge", "request", receipt, "--to", a["bank_b"],
                "--facility", "b-1")
    # the pledged receipt transferred, or split, by its holder alone
    net.refused("warehouse.receipt_pledged", "dep", "transfer", "offer", receipt, "--to", a["bank_b"])
    net.refused("warehouse.receipt_pledged", "dep", "split", receipt, "--part", coils[0], "--part", coils[1])
    # goods surrendered without the pledgee
    net.refused("warehouse.receipt_pledged", "dep", "deliver", "surrender", receipt, "--collector", "ID 1")
    # a receipt over a coil that was never weighed in, and a lot booked against no weighing
    net.refused("warehouse.lot_unknown", "wh2", *net.proposal("MILL01:H24B2001:GHOST", quantity_kg=25_000))
    net.refused("warehouse.evidence_unknown", "wh2", "lot", "MILL01:H24B2001:GHOST", "--event", "ab" * 32, "--bin",
                "A1", "--grade", "Q235B", "--spec", "5.75x1500", "--mill-cert", "MC-x", "--production-date",
                "2026-10-01")
    # nothing moved: still pledged to the first bank, held by the depositor
    shown = net.read("show", receipt)
    assert shown["receipt"]["status"] == "pledged" and shown["pledge"]["pledgee_address"] == a["bank_a"]
    assert shown["holder_address"] == a["dep"]
    # the second weighing-in of a coil in stock at wh1 is rule R10: the receipt is HELD until the supervisor resolves
    [duplicate] = net.read("alerts", "--warehouse", a["wh1"], "--rule", "R10", "--status", "open")["alerts"]
    assert duplicate["severity"] == "CRITICAL" and duplicate["held_receipts"] == [receipt]
    net.refused("warehouse.receipt_held", "bank_a", "release", receipt, "--lot", coils[0])
    net.ok("sup", "resolve", duplicate["id"], "--code", "explained", "--note", "weighed in at wh2, booking refused")

    # the bank releases one coil: two new receipts with lineage, the rest still pledged to it
    net.ok("bank_a", "release", receipt, "--lot", coils[0])
    parent = net.read("show", receipt)["receipt"]
    assert parent["status"] == "superseded" and len(parent["children"]) == 2
    children = {net.read("show", c)["receipt"]["status"]: c for c in parent["children"]}
    assert set(children) == {"active", "pledged"}
    # a child's history proves offline too, starting from the act on its parent that issued it
    later = cli("tx", "data", "--text", "a later entry", "--key", "bob", "--node", net.ledgers[0], "--keystore",
                net.keystore, "--wait")
    wait_until(lambda: cli("query", "status", "--node", net.ledgers[0])["height"] > later["height"] - 1, 60,
               "the later entry")
    document = net.manifest["dir"] / "child-proof.json"
    run = subprocess.run([sys.executable, "-m", "bilayer", "warehouse", "proof", children["pledged"], "--node",
                          net.ledgers[0], "--out", str(document)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    verified = cli("audit", "verify", str(document), "--genesis", str(net.manifest["genesis"]))
    assert verified["issued_from"] == [receipt] and verified["history"][0]["kind"] == "warehouse.release_pledge"
    assert [lot["coil"] for lot in verified["lots"]] == [coils[1]]


def settled(net: Net, entry_id: str) -> str:
    """The entry's one status on every node (FINAL, "REJECTED code", or ABSENT where no node took
    it), once all nodes agree on a settled one."""
    seen: dict[str, str] = {}

    def agreed() -> bool:
        for url in net.nodes:
            code, view = http("GET", f"{url}/v1/entries/{entry_id}", timeout=5)
            seen[url] = "ABSENT" if code == 404 else (
                f"REJECTED {view.get('reason')}" if view.get("status") == "REJECTED" else str(view.get("status")))
        values = set(seen.values())
        return len(values) == 1 and values.pop() != "PENDING"

    wait_until(agreed, 120, f"every node to settle {entry_id[:12]}: {seen}")
    return next(iter(seen.values()))


def test_a_pledge_raced_through_two_ledger_nodes_is_final_once(net: Net) -> None:
    coils = [f"MILL01:H24C3001:R{n:02d}" for n in range(1, 3)]
    for coil in coils:
        net.intake("wh1", "wb1", coil, 21_000)
    receipt = net.issue("wh1", *coils)
    holder = net.store.load("dep")
    submitted: dict[str, str] = {}  # bank -> the request's entry id
    refused: dict[str, str] = {}  # bank -> the ingress refusal
    start = threading.Barrier(2, timeout=30)

    def request(bank: str, node: str) -> None:
        """The holder asks two banks at the same instant, through two different ledger nodes."""
        op = RequestPledge(bytes.fromhex(receipt), net.store.load(bank).public_key, f"{bank}-race")
        start.wait()
        try:
            submitted[bank] = NodeClient(node).build_and_submit(holder, op)["id"]
        except RemoteError as exc:  # a node that already holds the other half refuses this one
            refused[bank] = exc.remote_code

    threads = [threading.Thread(target=request, args=("bank_a", net.ledgers[0])),
               threading.Thread(target=request, args=("bank_b", net.ledgers[1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    outcomes = {bank: settled(net, entry_id) for bank, entry_id in submitted.items()}
    assert list(outcomes.values()).count("FINAL") == 1, (outcomes, refused)
    bank = next(b for b, status in outcomes.items() if status == "FINAL")
    other = "bank_b" if bank == "bank_a" else "bank_a"
    assert outcomes.get(other, "refused") in ("refused", "ABSENT", "REJECTED sequence_conflict",
                                              "REJECTED warehouse.wrong_status"), (outcomes, refused)

    # both banks confirm at the same instant through different nodes: only the bank asked can
    confirmations: dict[str, dict[str, Any]] = {}
    start.reset()

    def confirm(name: str, node: str) -> None:
        start.wait()
        confirmations[name] = net.act(name, "pledge", "confirm", receipt, "--offer", submitted[bank], node=node)

    threads = [threading.Thread(target=confirm, args=(bank, net.ledgers[0])),
               threading.Thread(target=confirm, args=(other, net.ledgers[1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert confirmations[bank]["status"] == "FINAL", confirmations
    assert (confirmations[other]["status"], confirmations[other]["reason"]) == (
        "REJECTED", "warehouse.wrong_signer"), confirmations
    net.ok("wh1", "pledge", "countersign", receipt)
    for node in net.nodes:  # one pledge, to the same bank, on every node
        shown = net.read("show", receipt, node=node)
        assert shown["receipt"]["status"] == "pledged" and shown["pledge"]["pledgee_address"] == net.address[bank]
        pledged = net.read("register-list", "--status", "pledged", node=node)["receipts"]
        assert [r["id"] for r in pledged].count(receipt) == 1


def test_the_console_shows_the_register_and_a_receipts_timeline(net: Net, request: pytest.FixtureRequest) -> None:
    """In a real browser: the register filtered to pledged receipts, then one receipt's page
    with a timeline row per entry that wrote it and its lineage."""
    context = request.getfixturevalue("browser").new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        pledged = net.read("register-list", "--status", "pledged")["receipts"]
        assert len(pledged) >= 2  # the fraud replay's and the race's
        visit(page, net.ledgers[0], "warehouse?filter=pledged", "warehouse")
        rows = page.locator("main table tbody tr")
        assert rows.count() == len(pledged)
        shot(page, "warehouse-register")
        receipt = pledged[0]["id"]
        history = net.read("history", receipt)["history"]
        visit(page, net.ledgers[0], f"warehouse/receipt/{receipt}", "warehouse")
        items = page.locator("ol.timeline li")
        assert items.count() == len(history)
        # the act that issued it: a proposal, or a partial release that split it from its parent
        issued_by = NodeClient(net.ledgers[0]).entry(history[0])["kind"]
        assert issued_by in ("warehouse.propose_receipt", "warehouse.release_pledge")
        assert items.first.get_attribute("data-kind") == issued_by
        assert page.locator("ul.tree li").count() >= 1 and "pledged" in page.inner_text("main")
        shot(page, "warehouse-receipt")
    finally:
        context.close()
    assert not errors, f"script errors in the console: {errors}"

def test_the_warehouse_bench_finalizes_every_act() -> None:
    """`bilayer bench warehouse`, small: every reading and every lifecycle act FINAL, rates reported."""
    report = cli("bench", "warehouse", "--transfers", "400", "--readings", "200", "--receipts", "16", "--warehouses",
                 "4", "--banks", "2")["results"]
    assert report["transfers_finalized"] == 400 and report["readings_final"] == 200
    assert report["lifecycle_acts_final"] == 16 * 12 and report["lifecycle_rejected"] == {}
    assert report["lifecycle_acts_per_s"] > 0 and report["readings_ratio_to_transfers"] > 0

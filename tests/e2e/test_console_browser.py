"""The web console in a real browser (Debian's headless Chromium, driven by Playwright) against a real
localnet of 4 validators and a ledger node: every page, search, the live DAG, a council vote and a
regulator's release signed in the browser, and a fund trace.

Screenshots of each page go to `artifacts/console/` at the repository root (or `$BILAYER_CONSOLE_ARTIFACTS`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bilayer.api.client import NodeClient
from bilayer.genesis import GovernanceParams
from bilayer.keys.keystore import Keystore
from bilayer.ledger.operations import Data
from bilayer.node.config import LimitsConfig
from tests.support.browser import (
    shot,
    visit,
)
from tests.support.governance_net import actors, cli
from tests.support.localnet import running_localnet
from tests.support.manageability import decide

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One localnet for the module, as the governance integration tests make theirs (a 1.5 s timelock)."""
    with running_localnet(tmp_path_factory.mktemp("console") / "net", validators=4, ledger_nodes=1, pow_bits=4,
                          limits=LimitsConfig(author_rate=0),
                          governance=GovernanceParams(voting_period_ms=600_000, timelock_ms=1_500,
                                                      emergency_ratify_ms=60_000)) as manifest:
        yield manifest


def use_key(page: Any, keystore: str, name: str) -> str:
    """Paste the key's seed (as `bilayer keys export-seed` prints it) into the key panel; returns its address."""
    exported = cli("keys", "export-seed", name, "--keystore", keystore)
    page.click("#key-button")
    page.fill("#key-seed", exported["seed"])
    page.click("#key-form button[type=submit]")
    page.wait_for_function("address => document.body.dataset.key === address", arg=exported["address"])
    return str(exported["address"])


def get_json(url: str) -> Any:
    return NodeClient(url.rsplit("/v1/", 1)[0]).get("/v1/" + url.rsplit("/v1/", 1)[1])


def test_every_page_opens_and_search_reaches_an_entry(network: dict[str, Any], page: Any) -> None:
    node, alice, bob, tx = actors(network)
    sent = tx("alice", "tx", "transfer", "--to", bob, "--amount", "5", "--memo", "rent")
    assert sent["status"] == "FINAL"

    visit(page, node, "", "explorer")
    page.wait_for_selector("#dag circle")
    page.wait_for_selector("text=validator0")
    page.wait_for_selector("#live[data-state=open]")
    shot(page, "explorer")

    page.fill("#search-input", sent["id"])
    page.press("#search-input", "Enter")
    page.wait_for_selector("main[data-ready='entry']")
    main = page.inner_text("main")
    assert sent["id"] in main and "FINAL" in main and "transfer" in main
    assert page.locator(f"a[href='/v1/audit/proof/{sent['id']}']").count() == 1
    assert page.locator(f"a[href='/v1/entries/{sent['id']}/payload']").count() == 1
    shot(page, "entry")

    page.click(f"main a[href='#/account/{alice}']")
    page.wait_for_selector("main[data-ready='account']")
    page.wait_for_selector(f"main a[href='#/entry/{sent['id']}']")  # among alice's recent entries
    assert "in good standing" in page.inner_text("main") and "BLY" in page.inner_text("main")
    out = page.locator("section.panel:has(h2:text-is('Transfers out'))")
    out.locator(f"a[href='#/entry/{sent['id']}']").wait_for()
    assert "5 BLY" in out.inner_text() and out.locator(f"a[href='#/account/{bob}']").count() == 1
    assert all("," in text for text in page.locator("main .amount").all_inner_texts()
               if len(text.split()[0].replace(",", "")) > 3)  # thousands separators on large amounts
    shot(page, "account")

    visit(page, node, f"account/{bob}", "account")
    received = page.locator("section.panel:has(h2:text-is('Transfers in'))")
    received.locator(f"a[href='#/entry/{sent['id']}']").wait_for()
    assert received.locator(f"a[href='#/account/{alice}']").count() >= 1

    council = get_json(f"{node}/v1/gov/council")["members"]
    assert council and all(m["name"] for m in council)  # the localnet's genesis names them
    visit(page, node, f"account/{council[0]['address']}", "account")
    assert page.locator(f"main [data-council='{council[0]['name']}']").count() == 1

    page.fill("#search-input", str(sent["height"]))
    page.press("#search-input", "Enter")
    page.wait_for_selector("main[data-ready='checkpoint']")
    assert sent["id"][:10] in page.inner_text("main")
    checkpoint = get_json(f"{node}/v1/checkpoints/{sent['height']}")
    signers = len(checkpoint["certificate"]["signatures"])
    assert page.locator("main [data-proposer] a[data-validator^='validator']").count() == 1
    assert page.locator("main [data-signers] a[data-validator^='validator']").count() == signers >= 3
    shot(page, "checkpoint")

    page.fill("#search-input", "not-a-thing")
    page.press("#search-input", "Enter")
    assert page.wait_for_selector("main .error[data-code='bad_request']")
    visit(page, node, "entry/" + "ab" * 32, "entry")
    assert page.wait_for_selector("main .error[data-code='not_found']")

    pages = [("governance", "Council"), ("compliance", "Review queue"), ("audit", "Management log")]
    for section, expect in pages:
        visit(page, node, section, section)
        assert expect in page.inner_text("main")
        shot(page, section)


def test_the_live_dag_shows_a_new_entry_and_colours_it_covered(network: dict[str, Any], page: Any) -> None:
    node = actors(network)[0]
    visit(page, node, "", "explorer")
    page.wait_for_selector("#live[data-state=open]")
    signer = Keystore(Path(network["keystore"])).load("carol")
    submitted = NodeClient(node).build_and_submit(signer, Data(media_type="text/plain"), b"seen live")
    dot = f"#dag circle[data-id='{submitted['id']}']"
    page.wait_for_selector(dot)  # drawn from the stream's `entry` event
    page.wait_for_selector(f"{dot}.covered")  # and coloured by its `checkpoint` event
    shot(page, "dag-live")
    page.click(dot)
    page.wait_for_selector("main[data-ready='entry']")
    assert submitted["id"] in page.inner_text("main")


def test_a_council_member_votes_in_the_browser(network: dict[str, Any], page: Any) -> None:
    node, _, bob, tx = actors(network)
    proposed = tx("council1", "gov", "propose", "--action", "freeze", "--target", bob, "--reason", "console vote",
                  "--legal-ref", "Act s.1")
    assert proposed["status"] == "FINAL"
    number = next(p["number"] for p in get_json(f"{node}/v1/gov/proposals")["proposals"]
                  if p["entry"] == proposed["id"])

    visit(page, node, "governance", "governance")
    council2 = use_key(page, network["keystore"], "council2")
    page.click(f"tr[data-proposal='{number}'] button[data-vote='yes']")
    outcome = page.wait_for_selector("#flash [data-outcome]")  # kept above the page reloaded after the vote
    assert outcome.get_attribute("data-outcome") == "FINAL", page.inner_text("#flash")
    vote_id = outcome.get_attribute("data-entry")
    page.wait_for_selector(f"tr[data-proposal='{number}'] [data-voter='{council2}']")
    shot(page, "governance-vote")

    page.click(f"tr[data-proposal='{number}'] button[data-vote='no']")  # a second vote is refused on chain
    refused = page.wait_for_selector("#flash [data-outcome='REJECTED']")
    assert "double_vote" in refused.inner_text()

    shown = get_json(f"{node}/v1/gov/proposals/{number}")
    assert {"voter": council2, "weight": 1, "choice": "yes"} in shown["votes"]
    vote = get_json(f"{node}/v1/entries/{vote_id}")
    assert (vote["author"], vote["kind"], vote["op"]["proposal"]) == (council2, "gov.vote", number)


def test_a_regulator_releases_a_held_transfer_in_the_browser(network: dict[str, Any], page: Any) -> None:
    node, _, bob, tx = actors(network)
    number = len(get_json(f"{node}/v1/gov/proposals")["proposals"]) + 1
    decide(tx, number, "--action", "intercept", "--rule-id", "console-review", "--above", "500", "--outcome", "hold")
    held = tx("alice", "tx", "transfer", "--to", bob, "--amount", "600")
    assert (held["status"], held["reason"]) == ("HELD", "held_for_review")
    before = get_json(f"{node}/v1/accounts/{bob}")["balances"]["BLY"]

    visit(page, node, "compliance", "compliance")
    use_key(page, network["keystore"], "regulator")
    row = f"[data-held='{held['id']}']"
    page.fill(f"{row} input[name=reason]", "checked with the bank")
    page.click(f"{row} button[data-review='release']")
    outcome = page.wait_for_selector("#flash [data-outcome]")
    assert outcome.get_attribute("data-outcome") == "FINAL", page.inner_text("#flash")
    page.wait_for_selector("text=Nothing is held for review.")
    shot(page, "compliance-release")

    shown = get_json(f"{node}/v1/entries/{held['id']}")
    assert shown["review"]["status"] == "released"
    assert shown["review"]["decided_by"] == outcome.get_attribute("data-entry")
    assert shown["review"]["reason"] == "checked with the bank"
    assert get_json(f"{node}/v1/accounts/{bob}")["balances"]["BLY"] == before + 600


def test_a_trace_is_followed_in_the_browser(network: dict[str, Any], page: Any) -> None:
    node, alice, bob, tx = actors(network)
    carol = cli("keys", "show", "carol", "--keystore", network["keystore"])["address"]
    first = tx("alice", "tx", "transfer", "--to", bob, "--amount", "11")
    second = tx("bob", "tx", "transfer", "--to", carol, "--amount", "7")
    assert first["status"] == second["status"] == "FINAL"

    visit(page, node, f"audit?start={alice}", "audit")
    page.wait_for_selector("#trace-graph")
    page.wait_for_selector(f"#trace-graph circle[data-node='{bob}']")
    # a flat line has no height, which Playwright counts as hidden: it need only be drawn
    page.wait_for_selector(f"#trace-graph line[data-entry='{first['id']}']", state="attached")
    shot(page, "audit-trace")
    assert page.locator("#trace-result a[href*='format=svg']").count() == 1
    page.click(f"#trace-graph circle[data-node='{bob}']")
    page.wait_for_selector("main[data-ready='account']")
    assert bob in page.inner_text("main")


def test_the_browser_refuses_to_sign_a_draft_the_node_altered(network: dict[str, Any], page: Any) -> None:
    """A node that lies in its draft gets nothing signed: the page checks the id and the decoded header."""
    node, _, _, tx = actors(network)
    dave = cli("keys", "show", "dave", "--keystore", network["keystore"])["address"]
    proposed = tx("council1", "gov", "propose", "--action", "freeze", "--target", dave, "--reason", "console lie")
    number = next(p["number"] for p in get_json(f"{node}/v1/gov/proposals")["proposals"]
                  if p["entry"] == proposed["id"])
    visit(page, node, "governance", "governance")
    use_key(page, network["keystore"], "council3")
    other = cli("keys", "show", "alice", "--keystore", network["keystore"])["address"]
    submitted: list[str] = []
    page.on("request", lambda r: submitted.append(r.url) if r.method == "POST" and r.url.endswith("/v1/entries")
            else None)

    def another_author(route: Any) -> None:  # a well-formed draft, but for someone else's key
        body = json.loads(route.request.post_data)
        route.fulfill(response=route.fetch(post_data=json.dumps({**body, "author": other})))

    def wrong_id(route: Any) -> None:
        answer = route.fetch()
        draft = answer.json()
        route.fulfill(response=answer, json={**draft, "id": "00" * 32})

    for tamper, what in [(another_author, "another author"), (wrong_id, "not the SHA-256")]:
        page.route("**/v1/entries/draft", tamper)
        page.click(f"tr[data-proposal='{number}'] button[data-vote='abstain']")
        error = page.wait_for_selector("#gov-result .error[data-code='draft_mismatch']")
        assert what in error.inner_text()
        page.unroute("**/v1/entries/draft")
    assert submitted == []
    council3 = cli("keys", "show", "council3", "--keystore", network["keystore"])["address"]
    assert all(v["voter"] != council3 for v in get_json(f"{node}/v1/gov/proposals/{number}")["votes"])


def test_an_application_declares_its_console_page_and_the_console_links_it(network: dict[str, Any], page: Any) -> None:
    """The warehouse names its page in its declaration; the console finds it at GET /v1/apps, links it in
    the navigation and shows its register."""
    node = network["nodes"][0]["api_url"]
    listed = {app["name"]: app for app in get_json(f"{node}/v1/apps")["applications"]}
    assert listed["warehouse"]["console"] == "/static/warehouse.js" and listed["notary"]["console"] is None
    visit(page, node, "", "explorer")
    page.click("header nav a[data-nav='warehouse']")
    page.wait_for_selector("main[data-ready='warehouse']")
    assert "Warehouse receipts" in page.inner_text("main")
    assert page.locator("header nav a[data-nav='warehouse'].active").count() == 1
    shot(page, "warehouse-register")
    visit(page, node, "warehouse/receipt/" + "ab" * 32, "warehouse")
    assert page.wait_for_selector("main .error[data-code='not_found']")


def test_an_account_without_an_identity_is_an_answer_not_an_error(network: dict[str, Any], page: Any) -> None:
    node, alice, _, _ = actors(network)
    answer = get_json(f"{node}/v1/identities/{alice}")
    assert answer["identity"] is None and answer["address"] == alice
    visit(page, node, f"account/{alice}", "account")
    assert "No identity attested." in page.inner_text("main")

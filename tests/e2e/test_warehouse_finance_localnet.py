"""A margin call on a 4-validator localnet of real processes, driven through the CLI: a price
path crosses the warning line and then the call line, the bank takes cash collateral, and
every node (validators and ledger nodes) reports the same facility through
`GET /v1/apps/warehouse/facility`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.finality import http, wait_until
from tests.support.warehouse_net import Net, net  # noqa: F401  (net: the module's localnet fixture)

pytestmark = pytest.mark.slow

PRICE = 400_000  # fen per tonne
OWED = 19_320_000  # 70 % of 69 t at 4,000.00 CNY


def facility_on(node: str, bank: str, name: str) -> dict[str, Any]:
    status, body = http("GET", f"{node}/v1/apps/warehouse/facility?{urlencode({'bank': bank, 'name': name})}")
    assert status == 200, body
    return dict(body)


def test_a_margin_call_and_its_cure_on_every_node(net: Net) -> None:  # noqa: F811
    a = net.address
    net.store.create("pub")
    publisher = net.store.load("pub").address
    net.ok("council1", "publisher", "appoint", publisher, "--name", "Mysteel", "--source", "mysteel_spot", "--spec",
           "5.75x1500")
    net.ok("council1", "bounds", "--daily-limit-bp", "1500")
    coils = [f"MILL01:H25F0001:F{n:02d}" for n in range(1, 4)]
    for coil in coils:
        net.intake("wh1", "wb1", coil, 23_000)
    receipt = net.issue("wh1", *coils)
    facility = "bank_a-2026"  # the name `Net.pledge` gives
    net.ok("bank_a", "facility", "open", facility, "--borrower", a["dep"], "--limit", "50000000")

    def publish(day: str, price: int) -> None:
        net.ok("pub", "prices", "publish", "5.75x1500", "--source", "mysteel_spot", "--day", day, "--price",
               str(price))

    publish("2026-11-02", PRICE)
    net.pledge(receipt, "bank_a", "wh1")
    net.ok("bank_a", "facility", "outstanding", facility, "--amount", str(OWED), "--day", "2026-11-02")
    shown = net.read("facility", "show", a["bank_a"], facility)
    assert (shown["facility"]["state"], shown["facility"]["last_ltv_bp"]) == ("performing", 7000)

    publish("2026-11-03", PRICE * 88 // 100)  # 79.5 %: past the warning line
    assert net.read("facility", "show", a["bank_a"], facility)["facility"]["state"] == "watch"
    publish("2026-11-04", PRICE * 82 // 100)  # 85.4 %: past the call line
    called = net.read("facility", "show", a["bank_a"], facility)["facility"]
    assert (called["state"], called["last_ltv_bp"]) == ("margin_call", 8537)
    # a price of another bank's facility is not its to report
    done = net.act("bank_b", "facility", "outstanding", facility, "--amount", "0", "--day", "2026-11-04", "--bank",
                   a["bank_a"])
    assert (done["status"], done.get("reason")) == ("REJECTED", "warehouse.not_facility_bank"), done
    cured = net.ok("bank_a", "facility", "top-up", facility, "--amount", "5000000")

    wait_until(lambda: all(http("GET", f"{node}/v1/status")[1]["height"] >= cured["height"] for node in net.nodes),
               60, "every node to reach the top-up's checkpoint")
    views = [facility_on(node, a["bank_a"], facility) for node in net.nodes]
    assert all(view == views[0] for view in views)
    view = views[0]
    assert view["facility"]["state"] == "cured"
    assert [(e["day"], e["state"]) for e in view["events"]] == [
        ("2026-11-03", "watch"), ("2026-11-04", "margin_call"), ("2026-11-04", "cured")]
    assert [h["ltv_bp"] for h in view["ltv_history"]] == [7000, 7955, 6992]  # the last of each day stands
    assert view["valuation"]["cash"] == 5_000_000 and view["valuation"]["collateral"] == 22_632_000 + 5_000_000

    statement = net.read("valuation", a["bank_a"], facility, "--day", "2026-11-03")["valuation"]
    assert statement["ltv_bp"] == 7955 and statement["lines"][0]["receipt"] == receipt
    exposure = http("GET", f"{net.ledgers[1]}/v1/apps/warehouse/exposure")[1]
    assert exposure["banks"][0]["outstanding"] == OWED


def test_a_default_ends_with_the_bank_holding_the_receipt_on_every_node(net: Net) -> None:  # noqa: F811
    """A fall past the liquidation line: DEFAULT, the bank declares the pledgor in default with
    no cure period, invokes the pledge and becomes the receipt's holder; then closes."""
    a = net.address
    net.store.create("pub2")
    net.ok("council1", "publisher", "appoint", net.store.load("pub2").address, "--name", "SHFE", "--source",
           "shfe_settlement", "--spec", "5.75x1500")
    net.ok("council1", "bounds", "--daily-limit-bp", "2500")
    coils = [f"MILL02:H25F0002:G{n:02d}" for n in range(1, 4)]
    for coil in coils:
        net.intake("wh1", "wb1", coil, 23_000)
    receipt = net.issue("wh1", *coils)
    facility = "bank_b-2026"  # the name `Net.pledge` gives
    net.ok("bank_b", "facility", "open", facility, "--borrower", a["dep"], "--limit", "50000000")

    def settle(day: str, price: int) -> None:
        net.ok("pub2", "prices", "publish", "5.75x1500", "--source", "shfe_settlement", "--kind", "settlement",
               "--day", day, "--price", str(price))

    settle("2026-12-01", PRICE)
    net.pledge(receipt, "bank_b", "wh1")
    net.ok("bank_b", "facility", "outstanding", facility, "--amount", str(OWED), "--day", "2026-12-01")
    assert net.read("facility", "show", a["bank_b"], facility)["facility"]["last_ltv_bp"] == 7000
    settle("2026-12-02", PRICE * 80 // 100)  # 87.5 %: the liquidation line
    assert net.read("facility", "show", a["bank_b"], facility)["facility"]["state"] == "default"
    net.ok("bank_b", "default", receipt, "--cure-days", "0")
    invoked = net.ok("bank_b", "invoke", receipt)

    wait_until(lambda: all(http("GET", f"{node}/v1/status")[1]["height"] >= invoked["height"] for node in net.nodes),
               60, "every node to reach the invocation's checkpoint")
    for node in net.nodes:
        shown = http("GET", f"{node}/v1/apps/warehouse/receipt?id={receipt}")[1]
        assert (shown["receipt"]["status"], shown["holder_address"]) == ("active", a["bank_b"])
        assert shown["pledge"] is None  # the invoked pledge no longer binds it
        assert facility_on(node, a["bank_b"], facility)["facility"]["state"] == "enforcement"
    net.ok("bank_b", "facility", "outstanding", facility, "--amount", "0", "--day", "2026-12-02")
    net.ok("bank_b", "facility", "close", facility)
    events = net.read("facility", "show", a["bank_b"], facility)["events"]
    assert [e["state"] for e in events] == ["default", "enforcement", "closed"]

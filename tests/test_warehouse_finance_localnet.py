"""A margin call on a 4-validator localnet of real processes, driven through the CLI: a price
path crosses the warning line and then the call line, the bank takes cash collateral, and
every node (validators and ledger nodes) reports the same facility through
`GET /v1/apps/warehouse/facility`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from .test_finality_integration import http, wait_until
from .test_warehouse_integration import Net, net  # noqa: F401  (net: the module's localnet fixture)

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

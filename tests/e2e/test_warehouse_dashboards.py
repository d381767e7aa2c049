"""The warehouse dashboards of the web console in a real browser (Debian's Chromium, driven by
Playwright) against a 4-validator localnet of real processes: the bank risk officer's, the
warehouse operator's and the regulator's, first on an empty chain, then with a pledged
facility priced into WATCH and a gate reading that holds a receipt (rule R2), and live: a
new mark re-renders the risk page without a reload.

Full-page screenshots go to `artifacts/console/warehouse-{risk,operator,regulator}.png`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bilayer.node.config import LimitsConfig
from tests.support.browser import browser, shot, visit  # noqa: F401  (browser: a fixture)
from tests.support.finality import wait_until
from tests.support.localnet import running_localnet
from tests.support.warehouse_net import USCC, YEAR_AHEAD, Net

pytestmark = pytest.mark.slow

SPEC = "5.75x1500"
GATE = "urn:epc:id:giai:6901234.gate1"
WB = "urn:epc:id:giai:6901234.wb1"
FACILITY = "bank_a-2026"  # the name `Net.pledge` gives
OWED = 19_320_000  # 70 % of 69 t at 4,000.00 CNY a tonne
PRICES = (("2026-11-02", 400_000), ("2026-11-03", 390_000), ("2026-11-04", 359_000))  # 70.0 %, 71.8 %, 78.0 %
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """A localnet with nothing of the warehouse on it yet (the first test sees it empty)."""
    with running_localnet(tmp_path_factory.mktemp("dashboards") / "net", validators=4, ledger_nodes=1, pow_bits=4,
                          limits=LimitsConfig(author_rate=0)) as manifest:
        n = Net(manifest)
        for name in ("gate1", "pub"):
            n.store.create(name)
            n.address[name] = n.store.load(name).address
        yield n


def set_up(net: Net) -> dict[str, str]:
    """A supervised warehouse with a weighbridge and a gate reader; a facility of bank_a over a
    pledged 69 t receipt, priced for three days into WATCH; a second receipt held by an R2 alert."""
    a = net.address
    net.ok("council1", "register", "party", a["sup"], "--role", "supervisor", "--name", "Supervisor", "--uscc", USCC,
           "--domicile", "Shanghai")
    net.ok("council1", "register", "warehouse", a["wh1"], "--name", "WH1", "--uscc", USCC, "--domicile", "Qingdao",
           "--location", "urn:epc:id:sgln:6901234.wh1.0", "--supervisor", a["sup"], "--bins", "A1,A2")
    for device, kind, extra in ((WB, "weighbridge", ("--accuracy-class", "III", "--scale-interval-g", "20000")),
                                (GATE, "gate_reader", ())):
        net.ok("wh1", "device", "propose", device, "--kind", kind, "--bins", "A1,A2", "--public-key",
               a[device.rsplit(".", 1)[1]], "--read-point", f"{device}.point".replace("giai", "sgln"),
               "--certificate", f"CAL-{kind}", *extra, "--calibrated-until", YEAR_AHEAD, "--heartbeat-ms", "0")
        net.ok("sup", "device", "approve", device)
    net.ok("council1", "register", "party", a["bank_a"], "--role", "bank", "--name", "Bank A", "--uscc", USCC,
           "--domicile", "Beijing")
    net.ok("wh1", "register", "party", a["dep"], "--role", "depositor", "--name", "Trader", "--uscc", USCC,
           "--domicile", "Tianjin")
    net.ok("council1", "publisher", "appoint", a["pub"], "--name", "Mysteel", "--source", "mysteel_spot", "--spec",
           SPEC)
    net.ok("council1", "bounds", "--daily-limit-bp", "1500")

    coils = [f"MILL01:H25D0001:D{n:02d}" for n in range(1, 4)]
    for coil in coils:
        net.intake("wh1", "wb1", coil, 23_000)
    pledged = net.issue("wh1", *coils)
    net.ok("bank_a", "facility", "open", FACILITY, "--borrower", a["dep"], "--limit", "50000000")
    publish(net, *PRICES[0])
    net.pledge(pledged, "bank_a", "wh1")
    net.ok("bank_a", "facility", "outstanding", FACILITY, "--amount", str(OWED), "--day", PRICES[0][0])
    for day, price in PRICES[1:]:
        publish(net, day, price)

    coil = "MILL01:H25D0002:G01"
    net.intake("wh1", "wb1", coil, 23_000)
    held = net.issue("wh1", coil)
    departed = net.ok("gate1", "intake", "--device", GATE, "--step", "departing", "--lot", coil)
    wait_until(lambda: net.read("alerts", "--rule", "R2")["count"] == 1, 60, "the R2 alert")
    return {"pledged": pledged, "held": held, "departed": departed["event_id"]}


def publish(net: Net, day: str, price: int) -> None:
    net.ok("pub", "prices", "publish", SPEC, "--source", "mysteel_spot", "--day", day, "--price", str(price))


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Any]:
    context = request.getfixturevalue("browser").new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"script errors in the console: {errors}"


def test_every_dashboard_says_so_on_an_empty_chain(net: Net, page: Any) -> None:
    node = net.ledgers[0]
    visit(page, node, "warehouse/risk", "warehouse")
    assert page.locator("main [data-empty='facilities']").count() == 1 and page.locator("main .error").count() == 0
    visit(page, node, f"warehouse/risk?bank={net.address['bank_a']}", "warehouse")
    assert "This bank has no facility" in page.inner_text("main")
    visit(page, node, "warehouse/operator", "warehouse")
    assert page.locator("main [data-empty='warehouses']").count() == 1 and page.locator("main .error").count() == 0
    visit(page, node, "warehouse/regulator", "warehouse")
    assert page.locator("main [data-empty='exposure']").count() == 1 and "No alert matches." in page.inner_text("main")
    assert page.locator("main .error").count() == 0
    # a bad address gets the API's coded error in place, not a broken page
    visit(page, node, "warehouse/risk?bank=not-an-address", "warehouse")
    assert page.locator("main .error[data-code='bad_request']").count() == 1


def test_the_risk_operator_and_regulator_dashboards(net: Net, page: Any) -> None:
    made = set_up(net)
    node = net.ledgers[0]
    a = net.address

    visit(page, node, f"warehouse/risk?bank={a['bank_a']}", "warehouse")
    facility = page.locator("main table tbody tr:has([data-facility='bank_a-2026'])").first
    assert facility.locator("[data-state='watch']").count() == 1
    assert facility.locator("[data-ltv]").inner_text() == "78.0 %"
    assert "CNY 193,200.00" in facility.inner_text()  # the outstanding, from minor units
    chart = page.locator(".chart-box[data-facility='bank_a-2026'] svg.line-chart")
    assert sorted(chart.locator("g.threshold").evaluate_all("gs => gs.map(g => g.dataset.line)")) == [
        "call", "liquidation", "warning"]
    assert chart.locator("g.series circle").count() == len(PRICES)  # one point per valued day
    assert chart.locator("text.xlabel").all_text_contents() == [day for day, _ in PRICES]
    # the stress test from the latest valuation: -10 % takes 78.0 % to 86.7 % (a margin call), -20 % to 97.5 % (default)
    stress = page.locator("main [data-shock]")
    states = stress.evaluate_all("es => es.map(e => [e.dataset.shock, e.querySelector('[data-state]').dataset.state])")
    assert states == [["0", "watch"], ["-10", "margin_call"], ["-20", "default"]]
    assert "97.5 %" in page.locator("section.panel:has(h2:has-text('Stress test'))").inner_text()
    shot(page, "warehouse-risk")

    # live: a new mark revalues the facility; the page re-renders without a reload, the bank filter kept
    page.evaluate("() => { window.notReloaded = true; }")
    publish(net, "2026-11-05", 355_000)
    page.wait_for_function("n => document.querySelectorAll(\".chart-box[data-facility='bank_a-2026'] g.series circle\")"
                           ".length === n", arg=len(PRICES) + 1)
    assert page.evaluate("() => window.notReloaded === true")
    assert page.locator("main select[name='bank']").input_value() == a["bank_a"]
    assert page.locator("main table tbody tr [data-ltv]").first.inner_text() == "78.9 %"  # 355,000 a tonne
    page.select_option("main select[name='facility']", FACILITY)  # one facility: the bank filter stays
    page.wait_for_function("() => location.hash.includes('facility=') && location.hash.includes('bank=')")
    page.wait_for_selector("main[data-ready='warehouse'] .chart-box[data-facility='bank_a-2026']")
    assert page.locator("main .chart-box").count() == 1

    visit(page, node, f"warehouse/operator?warehouse={a['wh1']}", "warehouse")
    assert page.locator(f"main [data-receipt='{made['held']}']").get_attribute("data-part") == "held"
    assert page.locator(f"main [data-receipt='{made['pledged']}']").get_attribute("data-part") == "pledged"
    owner = page.locator("svg.bar-chart[aria-label='stock by owner'] g.bar")
    assert sorted(owner.locator("rect").evaluate_all("rs => rs.map(r => r.dataset.part)")) == ["held", "pledged"]
    assert "23.000 t" in (owner.locator("rect[data-part='held'] title").text_content() or "")
    devices = page.locator("section.panel:has(h2:text-is('Device health'))")
    assert [devices.locator(f"[data-device='{d}']").count() for d in (GATE, WB)] == [1, 1]
    tickets = page.locator("section.panel:has(h2:has-text('Inbound and outbound'))").inner_text()
    assert "41.000 t" in tickets and "18.000 t" in tickets and "departing" in tickets  # gross, tare, the gate
    bins = page.locator("section.panel:has(h2:has-text('Bins'))").inner_text()
    assert "92.000 t" in bins  # four coils of 23 t on the book of A1
    shot(page, "warehouse-operator")

    visit(page, node, "warehouse/regulator?rule=R2", "warehouse")
    [alert] = net.read("alerts", "--rule", "R2")["alerts"]
    row = page.locator(f"main [data-alert='{alert['id']}']")
    assert row.count() == 1 and "CRITICAL" in page.locator("main table tbody tr").first.inner_text()
    assert page.locator("main select[name='rule']").input_value() == "R2"
    assert page.locator("[data-chart='exposure-banks'] g.bar").count() == 1
    assert page.locator("[data-chart='exposure-warehouses'] g.bar").count() == 1
    assert page.locator("section.panel:has(h2:text-is('Held receipts'))").inner_text().count("23.000 t") == 1
    shot(page, "warehouse-regulator")
    page.select_option("main select[name='severity']", "LOW")  # a filter that matches nothing
    page.wait_for_function("() => location.hash.includes('severity=LOW') && location.hash.includes('rule=R2')")
    page.wait_for_selector("main[data-ready='warehouse'] :text('No alert matches.')")

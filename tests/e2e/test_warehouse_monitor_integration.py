"""Reconciliation on a 4-validator localnet of real processes, driven through the CLI: a truck
leaves with a coil no instruction covers, the gate reader reports it, and within the same
checkpoint every node holds a CRITICAL R2 alert and the receipt HELD, with identical alert
records and state roots; a transfer is refused until the supervisor resolves the alert."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bilayer.node.config import LimitsConfig
from tests.support.finality import http, wait_until
from tests.support.localnet import running_localnet
from tests.support.warehouse_net import USCC, YEAR_AHEAD, Net

pytestmark = pytest.mark.slow

GATE = "urn:epc:id:giai:6901234.gate1"
WB = "urn:epc:id:giai:6901234.wb1"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """One supervised warehouse with a weighbridge and a gate reader, a depositor and a buyer."""
    directory = tmp_path_factory.mktemp("monitor") / "net"
    with running_localnet(directory, validators=4, ledger_nodes=1, pow_bits=4,
                          limits=LimitsConfig(author_rate=0)) as manifest:
        n = Net(manifest)
        for name in ("gate1", "buyer"):
            n.store.create(name)
            n.address[name] = n.store.load(name).address
        a = n.address
        n.ok("council1", "register", "party", a["sup"], "--role", "supervisor", "--name", "Supervisor", "--uscc", USCC,
             "--domicile", "Shanghai")
        n.ok("council1", "register", "warehouse", a["wh1"], "--name", "WH1", "--uscc", USCC, "--domicile", "Qingdao",
             "--location", "urn:epc:id:sgln:6901234.wh1.0", "--supervisor", a["sup"], "--bins", "A1,A2")
        for device, kind, extra in ((WB, "weighbridge", ("--accuracy-class", "III", "--scale-interval-g", "20000")),
                                    (GATE, "gate_reader", ())):
            n.ok("wh1", "device", "propose", device, "--kind", kind, "--bins", "A1,A2", "--public-key",
                 a[device.rsplit(".", 1)[1]], "--read-point", f"{device}.point".replace("giai", "sgln"),
                 "--certificate", f"CAL-{kind}", *extra, "--calibrated-until", YEAR_AHEAD, "--heartbeat-ms", "0")
            n.ok("sup", "device", "approve", device)
        for name in ("dep", "buyer"):
            n.ok("wh1", "register", "party", a[name], "--role", "depositor", "--name", name, "--uscc", USCC,
                 "--domicile", "Tianjin")
        yield n


def test_a_truck_leaving_without_an_instruction_holds_the_receipt_on_every_node(net: Net) -> None:
    coil = "MILL01:H24D4001:T01"
    net.intake("wh1", "wb1", coil, 23_000)
    receipt = net.issue("wh1", coil)

    departed = net.ok("gate1", "intake", "--device", GATE, "--step", "departing", "--lot", coil)
    height = departed["height"]

    def every_node_holds() -> bool:
        return all(net.read("alerts", "--rule", "R2", node=node)["count"] == 1 for node in net.nodes)

    wait_until(every_node_holds, 60, "the R2 alert on every node")
    alerts = [net.read("alerts", "--rule", "R2", node=node)["alerts"] for node in net.nodes]
    assert all(found == alerts[0] for found in alerts)  # the same record, byte for byte as JSON
    [alert] = alerts[0]
    assert (alert["severity"], alert["status"], alert["height"]) == ("CRITICAL", "open", height)
    assert alert["held_receipts"] == [receipt] and alert["evidence"] == [departed["event_id"]]
    roots = {http("GET", f"{node}/v1/checkpoints/{height}")[1]["state_root"] for node in net.nodes}
    assert len(roots) == 1
    for node in net.nodes:
        shown = net.read("show", receipt, node=node)["receipt"]
        assert shown["held"] == [alert["id"]]

    net.refused("warehouse.receipt_held", "dep", "transfer", "offer", receipt, "--to", net.address["buyer"])
    refused = net.act("dep", "resolve", alert["id"], "--code", "explained", "--note", "not mine to resolve")
    assert (refused["status"], refused["reason"]) == ("REJECTED", "warehouse.not_supervisor")
    net.ok("sup", "resolve", alert["id"], "--code", "explained", "--note", "the truck was turned back at the gate")
    assert net.read("alert", alert["id"])["alert"]["status"] == "resolved"

    net.ok("dep", "transfer", "offer", receipt, "--to", net.address["buyer"])
    net.ok("buyer", "transfer", "accept", receipt)
    net.ok("wh1", "transfer", "countersign", receipt)
    for node in net.nodes:
        shown = net.read("show", receipt, node=node)
        assert shown["holder_address"] == net.address["buyer"] and shown["receipt"]["held"] == []

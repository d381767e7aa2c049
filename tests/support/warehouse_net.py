"""A localnet running the warehouse module, shared by a module's tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bilayer.keys.keystore import Keystore
from bilayer.node.config import LimitsConfig
from tests.support.localnet import running_localnet

USCC = "91310000MA1FL0000X"


ROLES = ("sup", "wh1", "wh2", "bank_a", "bank_b", "dep", "wb1", "wb2")


YEAR_AHEAD = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 365 * 24 * 3600))


def cli(*args: str) -> dict[str, Any]:
    run = subprocess.run([sys.executable, "-m", "bilayer", *args, "--json"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    return dict(json.loads(run.stdout))


class Net:
    """The network, its keystore and named keys; `act` signs and waits, `read` queries a node."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        self.manifest = manifest
        self.keystore = str(manifest["keystore"])
        self.ledgers = [n["api_url"] for n in manifest["nodes"] if n["role"] == "ledger"]
        self.nodes = [n["api_url"] for n in manifest["nodes"]]
        store = Keystore(Path(self.keystore))
        for name in ROLES:
            store.create(name)
        self.address = {name: store.load(name).address for name in (*ROLES, "council1", "regulator")}
        self.store = store

    def act(self, key: str, *args: str, node: str | None = None) -> dict[str, Any]:
        return cli("warehouse", *args, "--key", key, "--node", node or self.ledgers[0], "--keystore", self.keystore,
                   "--wait")

    def ok(self, key: str, *args: str) -> dict[str, Any]:
        done = self.act(key, *args)
        assert done["status"] == "FINAL", done
        return done

    def refused(self, code: str, key: str, *args: str) -> None:
        """REJECTED with `code`, and the application's state as every node reports it unchanged."""
        before = self.register()
        done = self.act(key, *args)
        assert (done["status"], done.get("reason")) == ("REJECTED", code), done
        assert self.register() == before

    def read(self, *args: str, node: str | None = None) -> dict[str, Any]:
        return cli("warehouse", *args, "--node", node or self.ledgers[0])

    def register(self) -> list[dict[str, Any]]:
        return list(self.read("register-list")["receipts"])

    def intake(self, warehouse: str, device: str, coil: str, net_kg: int) -> str:
        """A weighbridge weighs a coil in, and the warehouse books it: the lot's key."""
        event = self.ok(device, "intake", "--device", f"urn:epc:id:giai:6901234.{device}", "--lot", coil,
                        "--gross-kg", str(18_000 + net_kg), "--tare-kg", "18000")["event_id"]
        return str(self.ok(warehouse, "lot", coil, "--event", event, "--bin", "A1", "--grade", "Q235B", "--spec",
                           "5.75x1500", "--mill-cert", f"MC-{coil}", "--production-date", "2026-10-01")["lot"])

    def proposal(self, *coils: str, quantity_kg: int | None = None) -> list[str]:
        """The arguments of a receipt proposal over these coils (stating its quantity: not looked up)."""
        lots = [arg for coil in coils for arg in ("--lot", coil)]
        stated = [] if quantity_kg is None else ["--quantity-kg", str(quantity_kg), "--pieces", str(len(coils))]
        return ["receipt", "propose", "--depositor", self.address["dep"], *lots, *stated, "--spec", "5.75x1500",
                "--grade", "Q235B", "--producer", "MILL01 Steel", "--storage-until", YEAR_AHEAD, "--issue-place",
                "Qingdao", "--signer", "clerk"]

    def propose(self, warehouse: str, *coils: str) -> dict[str, Any]:
        return self.act(warehouse, *self.proposal(*coils))

    def issue(self, warehouse: str, *coils: str) -> str:
        proposed = self.propose(warehouse, *coils)
        assert proposed["status"] == "FINAL", proposed
        self.ok("dep", "receipt", "accept", proposed["receipt"])
        self.ok("sup", "receipt", "accept", proposed["receipt"])
        return str(proposed["receipt"])

    def pledge(self, receipt: str, bank: str, warehouse: str) -> None:
        self.ok("dep", "pledge", "request", receipt, "--to", self.address[bank], "--facility", f"{bank}-2026")
        self.ok(bank, "pledge", "confirm", receipt)
        self.ok(warehouse, "pledge", "countersign", receipt)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """Two supervised warehouses with a weighbridge each, two banks and a depositor, appointed on chain."""
    directory = tmp_path_factory.mktemp("warehouse") / "net"
    with running_localnet(directory, validators=4, ledger_nodes=2, pow_bits=4,
                          limits=LimitsConfig(author_rate=0)) as manifest:
        n = Net(manifest)
        a = n.address
        n.ok("council1", "register", "party", a["sup"], "--role", "supervisor", "--name", "Supervisor", "--uscc", USCC,
             "--domicile", "Shanghai")
        for wh, device in (("wh1", "wb1"), ("wh2", "wb2")):
            n.ok("council1", "register", "warehouse", a[wh], "--name", wh.upper(), "--uscc", USCC, "--domicile",
                 "Qingdao", "--location", f"urn:epc:id:sgln:6901234.{wh}.0", "--supervisor", a["sup"], "--bins",
                 "A1,A2")
            n.ok(wh, "device", "propose", f"urn:epc:id:giai:6901234.{device}", "--kind", "weighbridge", "--bins",
                 "A1,A2", "--public-key", a[device], "--read-point", f"urn:epc:id:sgln:6901234.00001.{device}",
                 "--certificate", f"CAL-{device}", "--accuracy-class", "III", "--scale-interval-g", "20000",
                 "--calibrated-until", YEAR_AHEAD)
            n.ok("sup", "device", "approve", f"urn:epc:id:giai:6901234.{device}")
        for bank in ("bank_a", "bank_b"):
            n.ok("council1", "register", "party", a[bank], "--role", "bank", "--name", bank, "--uscc", USCC,
                 "--domicile", "Beijing")
        n.ok("wh1", "register", "party", a["dep"], "--role", "depositor", "--name", "Trader", "--uscc", USCC,
             "--domicile", "Tianjin")
        yield n

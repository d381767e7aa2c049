"""Fund tracing through real processes (4 validators, 1 ledger node): transfers A -> B -> C -> D,
traced over HTTP and by the CLI; the audit index deleted, then rebuilt at start and offline,
answers the same."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bilayer.devnet import localnet
from bilayer.node.config import NodeHome
from tests.support.governance_net import (
    actors,
    cli,
)

pytestmark = pytest.mark.slow


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return dict(json.loads(response.read()))


def answers(node: str, first: str, last: str, mule: str) -> list[Any]:
    return [
        get_json(f"{node}/v1/audit/trace?" + urlencode({"start": first, "direction": "forward", "hops": 3})),
        get_json(f"{node}/v1/audit/trace?" + urlencode({"start": last, "direction": "backward", "hops": 4})),
        cli("audit", "trace", mule, "--direction", "backward", "--hops", "2", "--node", node),
        cli("audit", "entries", "--node", node),
        cli("audit", "entries", "--counterparty", mule, "--node", node),
    ]


def test_a_chain_of_transfers_is_traced_and_the_index_is_rebuilt(network: dict[str, Any], tmp_path: Path) -> None:
    node, alice, bob, tx = actors(network)
    keys = network["keystore"]
    mule1 = cli("keys", "new", "mule1", "--plaintext", "--keystore", keys)["address"]
    mule2 = cli("keys", "new", "mule2", "--plaintext", "--keystore", keys)["address"]
    first = tx("alice", "tx", "transfer", "--to", mule1, "--amount", "100")
    middle = tx("mule1", "tx", "transfer", "--to", mule2, "--amount", "60")
    last = tx("mule2", "tx", "transfer", "--to", bob, "--amount", "25")
    assert [t["status"] for t in (first, middle, last)] == ["FINAL"] * 3

    forward = get_json(f"{node}/v1/audit/trace?start={first['id']}&direction=forward&hops=3")
    assert (forward["start"], forward["direction"], forward["hops"], forward["asset"], forward["method"]) == (
        first["id"], "forward", 3, None, "fifo")
    assert [(e["entry"], e["from"], e["to"], e["asset"], e["amount"], e["traced"], e["hop"])
            for e in forward["edges"]] == [
        (first["id"], alice, mule1, "BLY", 100, 100, 1),
        (middle["id"], mule1, mule2, "BLY", 60, 60, 2),
        (last["id"], mule2, bob, "BLY", 25, 25, 3),
    ]
    assert [e["height"] for e in forward["edges"]] == [first["height"], middle["height"], last["height"]]
    assert [(n["id"], n["depth"], n["traced"]) for n in forward["nodes"]] == [
        (alice, 0, 100), (mule1, 1, 100), (mule2, 2, 60), (bob, 3, 25)]
    assert forward == cli("audit", "trace", first["id"], "--hops", "3", "--node", node)

    backward = cli("audit", "trace", last["id"], "--direction", "backward", "--hops", "4", "--node", node)
    assert [(e["from"], e["to"], e["traced"], e["hop"]) for e in backward["edges"]] == [
        (mule2, bob, 25, 1), (mule1, mule2, 25, 2), (alice, mule1, 25, 3), ("genesis", alice, 25, 4)]

    drawing = tmp_path / "flow.svg"
    cli("audit", "trace", first["id"], "--hops", "3", "--svg", str(drawing), "--node", node)
    assert drawing.read_text().startswith("<svg") and "60 BLY" in drawing.read_text()
    by_mule = cli("audit", "entries", "--author", mule1, "--node", node)["entries"]
    assert [(e["id"], e["counterparties"], e["amount"]) for e in by_mule] == [(middle["id"], [mule2], 60)]

    before = answers(node, first["id"], last["id"], mule2)
    ledger = next(n for n in network["nodes"] if n["role"] == "ledger")
    store = NodeHome(Path(ledger["home"])).ledger_db

    def restart(between: Any) -> None:
        localnet.restart_node(Path(network["dir"]), ledger["name"], lambda _: between())

    def drop_index() -> None:
        with closing(sqlite3.connect(store)) as conn:
            for table in ("audit_flows", "audit_entries", "audit_parties", "audit_totals", "audit_accounts"):
                conn.execute(f"DROP TABLE {table}")
            conn.commit()

    restart(drop_index)  # the node rebuilds the index from its chain before it serves
    assert answers(node, first["id"], last["id"], mule2) == before
    assert "audit index rebuilt" in Path(ledger["log"]).read_text()

    def reindex_offline() -> None:
        drop_index()
        rebuilt = cli("audit", "reindex", "--data-dir", ledger["home"])
        assert rebuilt["height"] >= last["height"] and rebuilt["flows"] >= 3

    restart(reindex_offline)
    assert answers(node, first["id"], last["id"], mule2) == before

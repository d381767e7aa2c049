"""`bilayer warehouse ...`: the warehouse application from the command line.

Reads go to `GET /v1/apps/warehouse/<query>`; every act is one signed entry, submitted as
`bilayer tx` submits (`--key`, `--wait`, `--json`). Keys are named by address, receipts,
lots, offers and events by their 64-hex ids; a lot may also be named `MILL:HEAT:COIL`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import click

from ...api.client import NodeClient
from ...cli.output import console, emit, json_option, kv_table
from ...cli.query_cmd import node_option
from ...errors import BadRequest
from .records import lot_key


def _hex32(text: str, what: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BadRequest(f"{what} is an id of 64 hex characters")
    return raw.hex()


def _lot(text: str) -> bytes:
    """A lot named by its key (64 hex) or as MILL:HEAT:COIL."""
    parts = text.split(":")
    if len(parts) == 3 and all(parts):
        return lot_key(*parts)
    return bytes.fromhex(_hex32(text, "a lot"))


def _get(node_url: str, query: str, **params: str) -> dict[str, Any]:
    given = {name: value for name, value in params.items() if value}
    return dict(NodeClient(node_url).get(f"/v1/apps/warehouse/{query}?{urlencode(given)}"))


@click.group()
def warehouse() -> None:
    """Supervised-warehouse finance: parties, devices, intake evidence, receipts and pledges."""


@warehouse.command("show")
@click.argument("receipt")
@node_option
@json_option
def warehouse_show(receipt: str, node_url: str, as_json: bool) -> None:
    """A receipt: its record, its pledge, the entries that wrote it."""
    data = _get(node_url, "receipt", id=_hex32(receipt, "RECEIPT"))

    def human(d: dict[str, Any]) -> None:
        r = d["receipt"]
        kv_table(f"receipt {r['id']}", {
            "number": str(r["number"]), "status": r["status"] + (f" FROZEN (case {r['frozen_case']})"
                                                                  if r["frozen_case"] else ""),
            "warehouse": d["warehouse_address"], "holder": d["holder_address"],
            "goods": f"{r['goods']['commodity']} {r['goods']['grade']} {r['goods']['spec']}",
            "quantity": f"{r['goods']['quantity_kg']} kg in {r['goods']['pieces']} pieces, {len(r['lots'])} lots",
            "pledgee": d["pledge"]["pledgee_address"] if d["pledge"] else "-",
            "entries": str(len(d["history"])), "parents": ", ".join(r["parents"]) or "-",
            "children": ", ".join(r["children"]) or "-"})

    emit(data, as_json, human)


@warehouse.command("history")
@click.argument("receipt")
@node_option
@json_option
def warehouse_history(receipt: str, node_url: str, as_json: bool) -> None:
    """A receipt's entries and its lineage (the receipts it came from and that came from it)."""
    data = _get(node_url, "history", id=_hex32(receipt, "RECEIPT"))

    def human(d: dict[str, Any]) -> None:
        console.print(f"receipt {d['receipt']}: {len(d['history'])} entries")
        for entry in d["history"]:
            console.print(f"  {entry}")
        console.print("lineage:")
        for r in d["lineage"]:
            console.print(f"  #{r['number']} {r['id'][:16]}… {r['status']} {r['quantity_kg']} kg")

    emit(data, as_json, human)


@warehouse.command("register-list")
@click.option("--warehouse", "warehouse_address", default="", help="Only this warehouse's receipts.")
@click.option("--holder", default="", help="Only the live receipts this address holds.")
@click.option("--status", default="", help="Only receipts in this state (active, pledged, ...).")
@click.option("--frozen/--not-frozen", default=None, help="Only frozen, or only unfrozen, receipts.")
@node_option
@json_option
def warehouse_register_list(warehouse_address: str, holder: str, status: str, frozen: bool | None, node_url: str,
                            as_json: bool) -> None:
    """The receipt register (free, pledged, frozen), filtered."""
    data = _get(node_url, "register", warehouse=warehouse_address, holder=holder, status=status,
                frozen="" if frozen is None else str(frozen).lower())

    def human(d: dict[str, Any]) -> None:
        console.print(f"{d['count']} receipts")
        for r in d["receipts"]:
            frozen_mark = f" FROZEN(case {r['frozen_case']})" if r["frozen_case"] else ""
            console.print(f"  #{r['number']:<5} {r['id'][:16]}… {r['status']:<18}{frozen_mark} "
                          f"{r['quantity_kg']:>9} kg  holder {r['holder']}")

    emit(data, as_json, human)


@warehouse.command("lot-show")
@click.argument("lot")
@node_option
@json_option
def warehouse_lot_show(lot: str, node_url: str, as_json: bool) -> None:
    """A lot (by key or MILL:HEAT:COIL) and its device evidence."""
    data = _get(node_url, "lot", key=_lot(lot).hex())
    emit(data, as_json, lambda d: kv_table(f"lot {d['lot']['key']}", {**d["lot"], "evidence": d["evidence"]}))


@warehouse.command("evidence")
@click.argument("receipt")
@node_option
@json_option
def warehouse_evidence(receipt: str, node_url: str, as_json: bool) -> None:
    """The device evidence of a receipt's lots, with the same as one EPCIS 2.0 document."""
    data = _get(node_url, "evidence", id=_hex32(receipt, "RECEIPT"))

    def human(d: dict[str, Any]) -> None:
        for e in d["events"]:
            console.print(f"  {e['event_id'][:16]}… {e['biz_step']:<10} {e['device']} {e['net_kg']} kg "
                          f"at height {e['height']}")

    emit(data, as_json, human)


@warehouse.command("party")
@click.argument("address")
@node_option
@json_option
def warehouse_party(address: str, node_url: str, as_json: bool) -> None:
    """A registered party; for a warehouse, its bins, supervisor, next receipt number and devices."""
    data = _get(node_url, "party", key=address)
    emit(data, as_json, lambda d: kv_table(f"party {address}", {**d["party"], "warehouse": d["warehouse"],
                                                                 "devices": len(d["devices"])}))

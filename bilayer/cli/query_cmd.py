from __future__ import annotations

from typing import Any

import click

from ..api.client import NodeClient
from ..errors import BadRequest
from ..execution.governance.options import parse_hex32
from ..keys.address import public_key_from_address
from .output import console, emit, json_option, kv_table

node_option = click.option(
    "--node",
    "node_url",
    default="http://127.0.0.1:8700",
    show_default=True,
    envvar="BILAYER_NODE",
    help="Node API URL (or $BILAYER_NODE).",
)


@click.group()
def query() -> None:
    """Read from a node."""


@query.command("status")
@node_option
@json_option
def query_status(node_url: str, as_json: bool) -> None:
    """Node and chain status."""
    emit(NodeClient(node_url).status(), as_json, lambda d: kv_table(f"status of {node_url}", d))


@query.command("entry")
@click.argument("entry_id")
@node_option
@click.option("--payload/--no-payload", default=False, help="Include the payload (base64).")
@json_option
def query_entry(entry_id: str, node_url: str, payload: bool, as_json: bool) -> None:
    """One entry by id."""
    data = NodeClient(node_url).entry(parse_hex32(entry_id, "an entry id").hex())
    if not payload:
        data.pop("payload", None)
        data.pop("header_bytes", None)
    emit(data, as_json, lambda d: kv_table(f"entry {entry_id[:16]}…", d))


@query.command("tips")
@node_option
@json_option
def query_tips(node_url: str, as_json: bool) -> None:
    """The DAG's tips (entries with no children yet)."""
    data = NodeClient(node_url).get("/v1/tips")

    def human(d: dict[str, Any]) -> None:
        console.print(f"{d['count']} tips")
        for tip in d["tips"]:
            console.print(tip)

    emit(data, as_json, human)


@query.command("author")
@click.argument("address")
@node_option
@json_option
def query_author(address: str, node_url: str, as_json: bool) -> None:
    """An author's next sequence number and latest entry."""
    public_key_from_address(address)
    emit(NodeClient(node_url).author(address), as_json, lambda d: kv_table(f"author {address}", d))


@query.command("evidence")
@node_option
@json_option
def query_evidence(node_url: str, as_json: bool) -> None:
    """Fork evidence: two signed entries by one author with one sequence number."""
    data = NodeClient(node_url).get("/v1/evidence")

    def human(d: dict[str, Any]) -> None:
        console.print(f"{len(d['forks'])} forks")
        for fork in d["forks"]:
            console.print(f"{fork['author']} seq {fork['seq']}: " + " vs ".join(e["id"] for e in fork["entries"]))

    emit(data, as_json, human)


@query.command("checkpoint")
@click.argument("height", default="latest")
@node_option
@click.option("--entries", is_flag=True, help="List the entries it ordered, with their outcomes.")
@json_option
def query_checkpoint(height: str, node_url: str, entries: bool, as_json: bool) -> None:
    """A finalized checkpoint (HEIGHT or 'latest') with its quorum certificate."""
    if height != "latest" and not (height.isascii() and height.isdigit()):
        raise BadRequest("HEIGHT is a positive integer or 'latest'")
    data = NodeClient(node_url).get(f"/v1/checkpoints/{height}" + ("?entries=1" if entries else ""))
    if not as_json:
        data.pop("finalized", None)

    def human(d: dict[str, Any]) -> None:
        summary = {k: v for k, v in d.items() if k not in ("certificate", "frontier", "entries")}
        summary["frontier"] = f"{len(d['frontier'])} entries"
        summary["signatures"] = len(d["certificate"]["signatures"])
        kv_table(f"checkpoint {d['height']}", summary)
        for entry in d.get("entries", []):
            console.print(f"{entry['outcome']:<9} {entry['id']}  {entry['reason'] or ''}")

    emit(data, as_json, human)


@query.command("account")
@click.argument("address")
@node_option
@json_option
def query_account(address: str, node_url: str, as_json: bool) -> None:
    """Balances and sequence of an address, as of the latest checkpoint."""
    public_key_from_address(address)
    emit(NodeClient(node_url).get(f"/v1/accounts/{address}"), as_json, lambda d: kv_table(f"account {address}", d))


@query.command("params")
@node_option
@json_option
def query_params(node_url: str, as_json: bool) -> None:
    """The chain parameters in force (the council changes them by proposal)."""
    data = NodeClient(node_url).get("/v1/params")
    emit(data, as_json, lambda d: kv_table(f"chain parameters at height {d['height']}", d["params"]))


@query.command("validators")
@click.option("--height", type=click.IntRange(min=1), default=None,
              help="The set that governed this height (default: the set voting now).")
@click.option("--history", is_flag=True, help="Every change of the set, with its height and proposals.")
@node_option
@json_option
def query_validators(height: int | None, history: bool, node_url: str, as_json: bool) -> None:
    """The validator set, and since which height it governs."""
    client = NodeClient(node_url)
    if history:
        changes = client.get("/v1/validators/history")

        def human_history(d: dict[str, Any]) -> None:
            for change in d["changes"]:
                why = ", ".join(f"#{n}" for n in change["proposals"]) or "genesis"
                console.print(f"from height {change['height']:<6} {len(change['validators'])} validators,"
                              f" total power {change['total_power']}  ({why})")
                for v in change["validators"]:
                    console.print(f"  {v['name']:<12} power {v['power']:<4} {v['address']}")

        emit(changes, as_json, human_history)
        return
    data = client.get("/v1/validators" + (f"?height={height}" if height is not None else ""))

    def human(d: dict[str, Any]) -> None:
        since = f" since height {d['since_height']}" if "since_height" in d else ""
        console.print(f"{len(d['validators'])} validators{since}, total power {d['total_power']},"
                      f" tolerates {d['max_faulty']} faulty")
        for v in d["validators"]:
            console.print(f"  {v['name']:<12} power {v['power']:<4} {v['address']}")
        if "next" in d:
            console.print(f"from height {d['next']['height']}: {len(d['next']['validators'])} validators"
                          f" (proposals {', '.join(str(n) for n in d['next']['proposals'])})")

    emit(data, as_json, human)

from __future__ import annotations

from typing import Any

import click

from ..api.client import NodeClient
from ..errors import BadRequest
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
    try:
        raw_id = bytes.fromhex(entry_id)
    except ValueError:
        raw_id = b""
    if len(raw_id) != 32:
        raise BadRequest("an entry id is 64 hex characters")
    data = NodeClient(node_url).entry(raw_id.hex())
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

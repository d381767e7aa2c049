from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..api.client import NodeClient
from ..errors import BadRequest, ConfigError
from ..node.config import NodeHome
from .output import console, emit, err_console, json_option
from .query_cmd import node_option


@click.group()
def audit() -> None:
    """Audit: the management log (every act, by whom, under which decision, with what effect)."""


@audit.command("actions")
@node_option
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--before", type=click.IntRange(min=1), default=None, help="Only acts finalized below this height.")
@json_option
def audit_actions(node_url: str, limit: int, before: int | None, as_json: bool) -> None:
    """Governance, regulator and identity entries, newest first, with outcomes and causes."""
    query = f"?limit={limit}" + (f"&before={before}" if before else "")
    data = NodeClient(node_url).get(f"/v1/audit/actions{query}")

    def human(d: dict[str, Any]) -> None:
        console.print(f"{len(d['actions'])} management acts (height {d['height']})")
        for act in d["actions"]:
            why = f" ({act['reason']})" if act["reason"] else ""
            console.print(f"h{act['height']:<6} {act['kind']:<12} {act['outcome']}{why:<28} by {act['author']}"
                          f"  {act['id'][:16]}…")
        for lapse in d["lapses"]:
            console.print(f"lapsed emergency #{lapse['emergency']} (freeze {lapse['account']}) at {lapse['time_ms']}")

    emit(data, as_json, human)


# --- the audit index: entries by party and fund tracing ----------------------------------------


def _short(text: str | None) -> str:
    if not text:
        return "-"
    return text if len(text) <= 18 else f"{text[:10]}…{text[-6:]}"


@audit.command("entries")
@node_option
@click.option("--author", default=None, help="Address that wrote the entries.")
@click.option("--counterparty", default=None, help="Address the entries name: a transfer's recipient, an action's"
                                                    " target.")
@click.option("--asset", default=None)
@click.option("--kind", default=None, help="Operation kind, e.g. transfer, gov.execute.")
@click.option("--outcome", default=None, help="FINAL, REJECTED or HELD.")
@click.option("--code", default=None, help="Reason code, e.g. insufficient_funds.")
@click.option("--from-height", type=int, default=None)
@click.option("--to-height", type=int, default=None)
@click.option("--from-time", type=int, default=None, help="Checkpoint time, ms since the epoch.")
@click.option("--to-time", type=int, default=None)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--before", default=None, help="HEIGHT or HEIGHT:POSITION (the `next` of a previous page).")
@json_option
def audit_entries(node_url: str, as_json: bool, **filters: Any) -> None:
    """Ordered entries from the audit index, newest first, filtered."""
    params = {name: str(value) for name, value in filters.items() if value is not None}
    data = NodeClient(node_url).get("/v1/audit/entries?" + urlencode(params))

    def human(d: dict[str, Any]) -> None:
        table = Table(title=f"{len(d['entries'])} entries (index at height {d['height']})", title_justify="left")
        for column in ("height", "pos", "kind", "author", "counterparties", "amount", "outcome", "entry"):
            table.add_column(column, justify="right" if column in ("height", "pos", "amount") else "left")
        for e in d["entries"]:
            amount = f"{e['amount']:,} {e['asset']}" if e["amount"] is not None else "-"
            outcome = e["outcome"] + (f" {e['reason']}" if e["reason"] else "")
            table.add_row(str(e["height"]), str(e["position"]), e["kind"], _short(e["author"]),
                          ", ".join(_short(c) for c in e["counterparties"]) or "-", amount, outcome, _short(e["id"]))
        console.print(table)
        if d["next"]:
            console.print(f"more: --before {d['next']}")

    emit(data, as_json, human)


@audit.command("trace")
@click.argument("start")
@node_option
@click.option("--direction", type=click.Choice(["forward", "backward"]), default="forward", show_default=True,
              help="forward: where the funds went; backward: where they came from.")
@click.option("--hops", type=int, default=3, show_default=True, help="Transfers to follow from the start (1-10).")
@click.option("--asset", default=None, help="Only this asset.")
@click.option("--max-edges", type=int, default=None, help="Stop after this many edges (default 2000).")
@click.option("--dust", type=int, default=None, help="Smallest traced amount followed (default: a millionth of the"
                                                     " starting amount).")
@click.option("--svg", "svg_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the flow graph as SVG to this file.")
@json_option
def audit_trace(start: str, node_url: str, direction: str, hops: int, asset: str | None, max_edges: int | None,
                dust: int | None, svg_file: Path | None, as_json: bool) -> None:
    """Follow funds from ADDRESS or ENTRY_ID through the chain, first in first out."""
    params: dict[str, str | int] = {"start": start, "direction": direction, "hops": hops}
    for name, value in (("asset", asset), ("max_edges", max_edges), ("dust", dust)):
        if value is not None:
            params[name] = value
    client = NodeClient(node_url)
    data = client.get("/v1/audit/trace?" + urlencode(params))
    if svg_file is not None:
        drawing = client.get_bytes("/v1/audit/trace?" + urlencode({**params, "format": "svg"}))
        try:
            svg_file.write_bytes(drawing)
        except OSError as exc:
            raise BadRequest(f"cannot write {svg_file}: {exc.strerror}") from None

    def human(d: dict[str, Any]) -> None:
        title = (f"{d['direction']} trace from {d['start']} ({d['method']}, {d['hops']} hops, index at height"
                 f" {d['height']}): {len(d['nodes'])} accounts, {len(d['edges'])} flows"
                 + (" [truncated by a bound]" if d["truncated"] else ""))
        table = Table(title=title, title_justify="left")
        for column in ("hop", "entry", "from", "to", "amount", "traced"):
            table.add_column(column, justify="right" if column in ("hop", "amount", "traced") else "left")
        for e in d["edges"]:
            table.add_row(str(e["hop"]), _short(e["entry"]), _short(e["from"]), _short(e["to"]),
                          f"{e['amount']:,} {e['asset']}", f"{e['traced']:,}")
        console.print(table)
        if svg_file is not None:
            console.print(f"flow graph written to {svg_file}")

    emit(data, as_json, human)


def _store_of(data_dir: Path) -> tuple[Path, Path]:
    """(the SQLite file, the node home) of a node home or of its data directory."""
    for home in (data_dir, data_dir.parent):
        store = NodeHome(home).ledger_db
        if store.is_file() and (home == data_dir or store.parent == data_dir):
            return store, home
    raise ConfigError(f"no node data in {data_dir} (expected ledger.sqlite there, or data/ledger.sqlite)")


@audit.command("reindex")
@click.option("--data-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True,
              help="The node's home, or its data directory. Stop the node first.")
@click.option("--genesis", "genesis_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="The chain's genesis (default: the one in the node's home).")
@json_option
def audit_reindex(data_dir: Path, genesis_file: Path | None, as_json: bool) -> None:
    """Rebuild the audit index of a stopped node from its stored chain."""
    from ..audit import index as audit_index
    from ..execution.executor import genesis_state
    from ..execution.state import State
    from ..genesis import load_genesis
    from ..node.config import load_config
    from ..node.storage import Storage

    store, home = _store_of(data_dir)
    if genesis_file is None:
        genesis_file = NodeHome(home).genesis_file(load_config(NodeHome(home)))
    genesis = load_genesis(genesis_file)
    storage = Storage(store)
    try:
        recorded = storage.get_meta("genesis_root")
        if recorded is not None and recorded != genesis.root:
            raise ConfigError(f"{store} belongs to another chain than {genesis_file}")
        has_chain = storage.latest_checkpoint() is not None
        state = State(storage.state_items()) if has_chain else genesis_state(genesis)
        started = time.monotonic()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, transient=True, disable=as_json) as bar:
            task = bar.add_task("indexing checkpoints", total=None)

            def report(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            def rebuild(conn: sqlite3.Connection) -> tuple[int, int]:
                conn.execute("BEGIN")
                audit_index.drop_tables(conn)
                conn.execute("COMMIT")
                return audit_index.rebuild(conn, genesis, state, progress=report)

            _, last = storage.with_writer(rebuild)
        with closing(storage.read_connection()) as conn:
            entries = int(conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0])
            flows = int(conn.execute("SELECT count(*) FROM audit_flows").fetchone()[0])
    finally:
        storage.close()
    report_data = {"store": str(store), "height": last, "entries": entries, "flows": flows,
                   "seconds": round(time.monotonic() - started, 3)}
    emit(report_data, as_json, lambda d: console.print(
        f"audit index rebuilt: {d['entries']} entries and {d['flows']} flows up to height {d['height']}"
        f" in {d['seconds']} s ({d['store']})"))

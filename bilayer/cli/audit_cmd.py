from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import click
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..api.client import NodeClient
from ..audit.export import ExportDirNotEmpty, parse_time_ms, write_package
from ..audit.verify import decode_proof, verify_proof
from ..audit.verify_export import (
    UNBOUNDED,
    ExportMalformed,
    Package,
    decode_package,
    verify_directory,
    verify_document,
)
from ..errors import BadRequest, ConfigError
from ..execution.application import proof_verifier
from ..genesis import load_genesis
from ..node.config import NodeHome
from .output import console, emit, err_console, json_option
from .query_cmd import node_option

PROOF_TIMEOUT_S = 120.0
EXPORT_TIMEOUT_S = 600.0


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


# --- proofs and evidence -----------------------------------------------------------------------


@audit.command("proof")
@node_option
@click.argument("entry_id", required=False)
@click.option("--account", default=None, help="Prove this account's state instead of an entry.")
@click.option("--asset", default=None, help="With --account: only this asset's balance.")
@click.option("--height", type=click.IntRange(min=0), default=None,
              help="With --account: the state after this height (default: the latest certified one).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the proof to this file instead of stdout.")
@json_option
def audit_proof(node_url: str, entry_id: str | None, account: str | None, asset: str | None,
                height: int | None, out: Path | None, as_json: bool) -> None:
    """A self-contained proof (JSON) of an entry's outcome, or of an account's state (each of
    its keys proven present or absent, so "not frozen" is proven too), that `bilayer audit
    verify` checks with no node running. The proof is always one JSON document (`--json` is
    accepted for uniformity, and makes errors JSON too)."""
    if (entry_id is None) == (account is None):
        raise BadRequest("give either an ENTRY_ID or --account ADDRESS")
    if account is None and (asset is not None or height is not None):
        raise BadRequest("--asset and --height go with --account")
    if account is not None:
        params = [f"asset={quote(asset, safe='')}"] if asset else []
        params += [f"height={height}"] if height is not None else []
        path = f"/v1/audit/state-proof/{quote(account, safe='')}" + ("?" + "&".join(params) if params else "")
    else:
        assert entry_id is not None
        path = f"/v1/audit/proof/{quote(entry_id, safe='')}"
    text = json.dumps(NodeClient(node_url, timeout=PROOF_TIMEOUT_S).get(path)) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)


def _print_verified(summary: dict[str, Any]) -> None:
    if summary["kind"] == "entry":
        why = f" {summary['reason']}" if summary["reason"] else ""
        cause = f" (cause {summary['cause']})" if summary["cause"] else ""
        console.print(f"VALID: entry {summary['entry']} by {summary['author']} ({summary['operation']})"
                      f" is {summary['outcome']}{why}{cause} at height {summary['height']}")
        console.print(f"  results root signed by checkpoint {summary['certified_by']}; payload {summary['payload']};"
                      f" {summary['validator_changes']} validator set change(s) walked from genesis")
    elif summary["kind"] == "account":
        console.print(f"VALID: {summary['address']} after height {summary['height']}: balances {summary['balances']},"
                      f" next seq {summary['next_seq']}")
        for name in ("frozen_by", "emergency_freeze", "banned_by", "identity"):
            value = summary.get(name)
            console.print(f"  {name.replace('_', ' ')}: " + ("none (proven absent)" if value is None else str(value)))
        console.print(f"  state root signed by checkpoint {summary['certified_by']};"
                      f" {summary['validator_changes']} validator set change(s) walked from genesis")
    elif "lines" in summary:  # an application's proof document says what it proved
        for line in summary["lines"]:
            console.print(line)
    else:
        window = summary["window"]
        console.print(f"VALID: evidence for {summary['account']} (times {window['from_ms']}..{window['to_ms']} ms,"
                      f" heights {window['from_height']}..{window['to_height']}):"
                      f" {summary['entries']} entries {summary['outcomes']}, {summary['acts']} management acts,"
                      f" {summary['unproven']} not yet provable; {summary['files']} files match the manifest")


@audit.command("verify")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--genesis", "genesis_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The genesis to trust (required for a single proof; an export carries its own).")
@json_option
def audit_verify(path: Path, genesis_path: Path | None, as_json: bool) -> None:
    """Check a proof file or an evidence export (directory or one JSON document) offline.
    Exit 0 when everything holds; otherwise an error code naming the part that fails."""
    genesis = load_genesis(genesis_path) if genesis_path is not None else None
    if path.is_dir():
        with _progress(not as_json, "verifying proofs", None) as step:
            summary = verify_directory(path, genesis, step)
    else:
        data = path.read_bytes()
        if _is_package(data):
            summary = verify_document(decode_package(data), genesis)
        else:
            app_verifier = proof_verifier(_document_type(data))
            if genesis is None:
                raise BadRequest("--genesis GENESIS.json is required to verify a single proof")
            summary = app_verifier(data, genesis) if app_verifier is not None else verify_proof(decode_proof(data),
                                                                                                 genesis)
    emit(summary, as_json, _print_verified)


def _document_type(data: bytes) -> str:
    """The `type` a proof document names (an application's proof is verified by its application)."""
    try:
        value = json.loads(data)
    except ValueError:
        return ""
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else ""


def _is_package(data: bytes) -> bool:
    try:
        value = json.loads(data)
    except ValueError:
        return False
    return isinstance(value, dict) and "manifest" in value


@contextmanager
def _progress(enabled: bool, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal's stderr; nothing at all when piped, so scripts see only results."""
    if not enabled or not err_console.is_terminal:
        yield lambda n: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


@audit.command("export")
@node_option
@click.option("--account", required=True, help="The account (address) the evidence is about.")
@click.option("--from", "start", default=None, help="Window start: ISO-8601 (UTC unless stated) or ms since epoch.")
@click.option("--to", "end", default=None, help="Window end, inclusive; same forms.")
@click.option("--from-height", type=click.IntRange(1, UNBOUNDED), default=None, help="First checkpoint height.")
@click.option("--to-height", type=click.IntRange(1, UNBOUNDED), default=None, help="Last checkpoint height.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="A new (or empty) directory for the package.")
@json_option
def audit_export(node_url: str, account: str, start: str | None, end: str | None, from_height: int | None,
                 to_height: int | None, out: Path, as_json: bool) -> None:
    """Every entry of the account ordered in the window (checkpoint times and/or heights), the
    management acts behind them, each with its proof, and a manifest hashing every file:
    `bilayer audit verify DIR` checks it."""
    window = {"from": None if start is None else parse_time_ms(start, "--from"),
              "to": None if end is None else parse_time_ms(end, "--to"),
              "from_height": from_height, "to_height": to_height}
    if all(value is None for value in window.values()):
        raise BadRequest("name a window: --from/--to (times) and/or --from-height/--to-height")
    if out.exists() and any(out.iterdir()):
        raise ExportDirNotEmpty(f"{out} is not empty")
    query = f"?account={quote(account, safe='')}" + "".join(
        f"&{name}={value}" for name, value in window.items() if value is not None)
    client = NodeClient(node_url, timeout=EXPORT_TIMEOUT_S)
    if as_json or not err_console.is_terminal:
        data = client.get(f"/v1/audit/export{query}")
    else:
        with err_console.status("the node is proving the entries in the window…"):
            data = client.get(f"/v1/audit/export{query}")
    try:
        package = msgspec.convert(data, type=Package)
    except (msgspec.MsgspecError, ValueError) as exc:  # ValueError: bytes that are not UTF-8
        raise ExportMalformed(f"the node sent no evidence package: {exc}") from None
    with _progress(not as_json, "writing files", len(package.files)) as step:
        write_package(package, out, step)
    manifest = package.manifest
    summary = {"out": str(out), "account": account, "window": msgspec.to_builtins(manifest.query),
               "entries": len(manifest.entries), "acts": len(manifest.acts), "unproven": len(manifest.unproven),
               "files": len(manifest.files) + 1, "height": manifest.height}

    def human(d: dict[str, Any]) -> None:
        console.print(f"wrote {d['files']} files to {d['out']}: {d['entries']} entries, {d['acts']} management acts,"
                      f" {d['unproven']} not yet provable (node at height {d['height']})")

    emit(summary, as_json, human)


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
    from ..node.process import HomeLock
    from ..node.storage import Storage

    store, home = _store_of(data_dir)
    if genesis_file is None:
        genesis_file = NodeHome(home).genesis_file(load_config(NodeHome(home)))
    genesis = load_genesis(genesis_file)
    lock = HomeLock(store.parent).acquire("audit reindex")  # never under a running node
    storage = Storage(store)
    try:
        recorded = storage.get_meta("genesis_root")
        if recorded is not None and recorded != genesis.root:
            raise ConfigError(f"{store} belongs to another chain than {genesis_file}")
        has_chain = storage.latest_checkpoint() is not None
        state = State(source=storage.values) if has_chain else genesis_state(genesis)
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
        lock.release()
    report_data = {"store": str(store), "height": last, "entries": entries, "flows": flows,
                   "seconds": round(time.monotonic() - started, 3)}
    emit(report_data, as_json, lambda d: console.print(
        f"audit index rebuilt: {d['entries']} entries and {d['flows']} flows up to height {d['height']}"
        f" in {d['seconds']} s ({d['store']})"))

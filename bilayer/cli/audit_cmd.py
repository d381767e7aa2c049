from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..api.client import NodeClient
from ..audit.export import (
    UNBOUNDED,
    ExportDirNotEmpty,
    ExportMalformed,
    Package,
    decode_package,
    parse_time_ms,
    verify_directory,
    verify_document,
    write_package,
)
from ..audit.proof import decode_proof, verify_proof
from ..errors import BadRequest
from ..genesis import load_genesis
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
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the proof to this file instead of stdout.")
@json_option
def audit_proof(node_url: str, entry_id: str | None, account: str | None, asset: str | None,
                out: Path | None, as_json: bool) -> None:
    """A self-contained proof (JSON) of an entry's outcome, or of an account's state, that
    `bilayer audit verify` checks with no node running. The proof is always one JSON document
    (`--json` is accepted for uniformity, and makes errors JSON too)."""
    if (entry_id is None) == (account is None):
        raise BadRequest("give either an ENTRY_ID or --account ADDRESS")
    if account is not None:
        path = f"/v1/audit/state-proof/{quote(account, safe='')}" + (f"?asset={quote(asset, safe='')}" if asset else "")
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
            if name in summary:
                console.print(f"  {name.replace('_', ' ')}: {summary[name]}")
        console.print(f"  state root signed by checkpoint {summary['certified_by']};"
                      f" {summary['validator_changes']} validator set change(s) walked from genesis")
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
            proof = decode_proof(data)
            if genesis is None:
                raise BadRequest("--genesis GENESIS.json is required to verify a single proof")
            summary = verify_proof(proof, genesis)
    emit(summary, as_json, _print_verified)


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

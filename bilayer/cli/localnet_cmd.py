from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import click
from rich.table import Table

from ..devnet import localnet as net
from ..node.config import SyncConfig
from .output import console, emit, err_console, json_option

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("localnet"),
    show_default=True,
    help="Directory of the local network.",
)


@click.group()
def localnet() -> None:
    """A network of real node processes on loopback."""


def _nodes_table(title: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=title, title_justify="left")
    columns = [
        c
        for c in ("name", "role", "api_url", "pid", "running", "height", "entries", "tips", "peers", "error")
        if any(c in r for r in rows)
    ]
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    console.print(table)


@localnet.command("up")
@click.option("--validators", type=click.IntRange(0, 32), default=4, show_default=True,
              help="Validator processes (BFT consensus); 0 runs the ledger layer alone.")
@click.option("--ledger-nodes", type=click.IntRange(0, 32), default=1, show_default=True,
              help="Ledger node processes (follow checkpoints, serve clients).")
@click.option("--consensus", type=click.Choice(["bft"]), default="bft", show_default=True,
              help="Consensus protocol of the validators (Tendermint BFT).")
@click.option("--pow-bits", type=click.IntRange(0, 32), default=16, show_default=True,
              help="Proof-of-work difficulty of the new chain.")
@click.option("--topology", type=click.Choice(["mesh", "line"]), default="mesh", show_default=True,
              help="How ledger nodes connect to each other.")
@click.option("--wan", type=click.Choice(sorted(net.WAN_PROFILES)), default=None,
              help="Place the nodes in the regions of this profile, in turn, and delay every peer link as"
                   " between them (one-way ms plus jitter).")
@dir_option
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for each node.")
@json_option
def localnet_up(validators: int, ledger_nodes: int, consensus: str, pow_bits: int, topology: str, wan: str | None,
                directory: Path, timeout: float, as_json: bool) -> None:
    """Create (if new) and start the network in --dir, in the background; print its endpoints."""
    if not net.manifest_path(directory).exists():
        if validators + ledger_nodes < 1:
            raise click.BadParameter("a network needs at least one node", param_hint="--validators/--ledger-nodes")
        net.create(directory, validators=validators, ledger_nodes=ledger_nodes, pow_bits=pow_bits,
                   topology=topology, wan=wan or "")
    progress = (lambda _: None) if as_json else (lambda line: err_console.print(f"[dim]{line}[/dim]"))
    manifest = net.up(directory, timeout=timeout, progress=progress)

    def human(m: dict[str, Any]) -> None:
        _nodes_table(f"localnet {m['chain_id']} in {directory}", m["nodes"])
        console.print(f"keystore: {m['keystore']}  funded keys: {', '.join(m['funded_keys'])}")
        console.print(
            f"try: bilayer tx data --node {m['nodes'][0]['api_url']} --keystore {m['keystore']}"
            f" --key alice --text hello"
        )
        console.print(f"stop: bilayer localnet down --dir {directory}")

    emit(manifest, as_json, human)


@localnet.command("add-node")
@click.option("--name", required=True, help="The new node's name (e.g. validator4).")
@dir_option
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for the node.")
@click.option("--sync", "sync_mode", type=click.Choice(["replay", "snapshot"]), default="replay", show_default=True,
              help="How it gets the chain so far: replay from genesis, or a verified state snapshot from its peers.")
@json_option
def localnet_add_node(name: str, directory: Path, timeout: float, sync_mode: Literal["replay", "snapshot"],
                      as_json: bool) -> None:
    """Create and start a node that is not in genesis, connected to every node of the network; it
    follows the chain until a council proposal (set-validator) makes it a validator."""
    node = net.add_node(directory, name, timeout=timeout, sync=SyncConfig(mode=sync_mode))

    def human(n: dict[str, Any]) -> None:
        console.print(f"started {n['name']} (pid {n['pid']}) at {n['api_url']}, peers on {n['p2p']}")
        console.print(f"public key: {n['public_key']}")
        console.print(f"address:    {n['address']}")
        console.print(f"make it a validator: bilayer gov propose --action set-validator --target {n['address']}"
                      f" --power 1 --name {n['name']} --reason ... --key COUNCIL_KEY")

    emit(node, as_json, human)


@localnet.command("status")
@dir_option
@json_option
def localnet_status(directory: Path, as_json: bool) -> None:
    """Show every node of the network and whether it answers."""
    data = net.status(directory)
    emit(data, as_json, lambda d: _nodes_table(f"localnet {d['chain_id']}", d["nodes"]))


@localnet.command("down")
@dir_option
@json_option
def localnet_down(directory: Path, as_json: bool) -> None:
    """Stop the processes of the network (data is kept; 'up' starts them again)."""
    data = net.down(directory)
    emit(data, as_json, lambda d: console.print(f"stopped {len(d['stopped'])} nodes: {', '.join(d['stopped']) or '-'}"))


@localnet.command("campaign")
@click.argument("manifest_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the network in this (new) directory instead of a temporary one.")
@json_option
def localnet_campaign(manifest_file: Path, directory: Path | None, as_json: bool) -> None:
    """Run a fault campaign (kill, pause, restart, disconnect, partition) from a TOML manifest
    against real processes under load, then check that everything reported FINAL is FINAL everywhere."""
    from ..devnet.perturb import load_manifest, run_campaign

    manifest = load_manifest(manifest_file)
    progress = (lambda _: None) if as_json else (lambda line: err_console.print(f"[dim]{line}[/dim]"))
    result = run_campaign(manifest, directory, progress)
    data = result.to_json()

    def human(d: dict[str, Any]) -> None:
        for key in ("submitted", "acknowledged", "unavailable", "reported_final", "final_everywhere", "height"):
            console.print(f"{key:>17}: {d[key]}")
        for part in d["partitions"]:
            console.print(f"{'partition':>17}: {' | '.join(' '.join(side) for side in part['sides'])}"
                          f" for {part['seconds']} s, height {part['height_at_start']} -> {part['height_at_heal']}")
        console.print("[green]ok[/green]" if d["ok"] else "[red]FAILED[/red]")
        for problem in d["problems"]:
            console.print(f"  {problem}")

    emit(data, as_json, human)
    if not data["ok"]:
        raise SystemExit(1)

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Literal

import click

from ..errors import BilayerError, ConfigError
from ..genesis import Allocation, ChainParams, Genesis, load_genesis, validate_genesis, write_genesis
from ..keys.keystore import Keystore
from ..node.config import ApiConfig, NodeConfig, NodeHome, P2PConfig, parse_retain, write_config
from ..node.logs import LOG_FORMATS, LogFormat, NodeLog
from ..node.runtime import NODE_KEY_NAME, run_forever
from .output import console, emit, json_option

home_option = click.option(
    "--home", type=click.Path(file_okay=False, path_type=Path), required=True, help="The node's home directory."
)


@click.group()
def node() -> None:
    """Initialise and run a node."""


def _parse_fund(text: str) -> Allocation:
    address, _, rest = text.partition("=")
    amount, _, asset = rest.partition(":")
    if not address or not (amount.isascii() and amount.isdigit()):
        raise ConfigError(f"--fund {text!r}: use ADDRESS=AMOUNT[:ASSET]")
    return Allocation(address=address, asset=asset or "BLY", amount=int(amount))


@node.command("init")
@home_option
@click.option("--name", default="node", show_default=True, help="Node name (in status and logs).")
@click.option(
    "--genesis",
    "genesis_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Join an existing chain with this genesis file (else a new chain is created).",
)
@click.option("--chain-id", default="bilayer-local", show_default=True, help="Chain id of a new chain.")
@click.option(
    "--pow-bits",
    type=click.IntRange(0, 32),
    default=16,
    show_default=True,
    help="Proof-of-work difficulty of a new chain.",
)
@click.option("--fund", multiple=True, help="Genesis allocation of a new chain: ADDRESS=AMOUNT[:ASSET].")
@click.option("--api-listen", default="127.0.0.1:8700", show_default=True)
@click.option("--p2p-listen", default="127.0.0.1:9700", show_default=True)
@click.option("--peer", "peers", multiple=True, help="HOST:PORT of a peer to dial (repeatable).")
@click.option("--force", is_flag=True, help="Overwrite an existing configuration (never the data).")
@json_option
def node_init(
    home: Path,
    name: str,
    genesis_file: Path | None,
    chain_id: str,
    pow_bits: int,
    fund: tuple[str, ...],
    api_listen: str,
    p2p_listen: str,
    peers: tuple[str, ...],
    force: bool,
    as_json: bool,
) -> None:
    """Create a node home: config, genesis and node key."""
    node_home = NodeHome(home)
    if node_home.config_file.exists() and not force:
        raise ConfigError(f"{node_home.config_file} exists; use --force to overwrite the configuration")
    node_home.config_dir.mkdir(parents=True, exist_ok=True)
    target = node_home.config_dir / "genesis.json"
    if genesis_file is not None:
        load_genesis(genesis_file)
        if genesis_file.resolve() != target.resolve():
            shutil.copyfile(genesis_file, target)
    elif not target.exists() or force:
        genesis = validate_genesis(
            Genesis(
                chain_id=chain_id,
                genesis_time_ms=int(time.time() * 1000),
                params=ChainParams(pow_bits=pow_bits),
                allocations=tuple(_parse_fund(f) for f in fund),
            )
        )
        write_genesis(genesis, target)
    keystore = Keystore(node_home.config_dir)
    try:
        key = keystore.info(NODE_KEY_NAME)
    except BilayerError:
        key = keystore.create(NODE_KEY_NAME)
    config = NodeConfig(
        name=name, api=ApiConfig(listen=api_listen), p2p=P2PConfig(listen=p2p_listen, peers=list(peers))
    )
    from ..node.config import load_config

    write_config(node_home, config)
    load_config(node_home)
    genesis = load_genesis(target)
    emit(
        {
            "home": str(home),
            "config": str(node_home.config_file),
            "chain_id": genesis.chain_id,
            "node_key": key.public_key.hex(),
            "api": api_listen,
            "p2p": p2p_listen,
        },
        as_json,
        lambda d: console.print(
            f"initialised node [bold]{name}[/bold] in {home} (chain {d['chain_id']});"
            f" start it with: bilayer node run --home {home}"
        ),
    )


@node.command("run")
@home_option
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True,
              help="text, or json: one JSON object per line.")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Append the log to this file (SIGHUP or SIGUSR1 reopens it) instead of standard error.")
@click.option("--retain", default=None, metavar="N|archive",
              help="Heights whose state stays provable (at least 2), or archive: all [config state.retain,"
                   " default 10000].")
@click.option("--sync", "sync_mode", type=click.Choice(["replay", "snapshot"]), default=None,
              help="With an empty data directory: replay the chain from genesis, or restore a recent certified"
                   " state from peers and execute from there [config sync.mode, default replay].")
def node_run(home: Path, log_level: str, log_format: LogFormat, log_file: Path | None, retain: str | None,
             sync_mode: Literal["replay", "snapshot"] | None) -> None:
    """Run the node in the foreground until SIGINT or SIGTERM."""
    retained = None if retain is None else parse_retain(retain)
    node_log = NodeLog(log_level, log_format, log_file)
    asyncio.run(run_forever(home, node_log, retained, sync_mode))


@node.command("check-state")
@home_option
@json_option
def node_check_state(home: Path, as_json: bool) -> None:
    """Check every stored state value against the state tree (the node stopped).

    A node's start compares only the stored tree's root with the root recorded with its last
    checkpoint; this re-hashes the tree at the last height from its nodes and checks each of
    its keys against the stored value, with progress. Damage ends with its code
    (state_store_corrupt, state_node_missing or state_diverged) and exit status 1."""
    import sqlite3

    import msgspec
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..node.chain import check_state
    from ..node.process import HomeLock
    from ..node.state_store import StateStoreCorrupt
    from ..node.storage import Storage
    from .output import err_console

    store = NodeHome(home).ledger_db
    if not store.is_file():
        raise ConfigError(f"no node data in {home} (expected {store})")
    started = time.monotonic()
    with HomeLock(store.parent).acquire("node check-state"):  # never under a running node
        storage = Storage(store)
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=err_console, transient=True, disable=as_json) as bar:
                task = bar.add_task("checking state keys", total=None)
                try:
                    checked = check_state(storage, lambda done, total: bar.update(task, completed=done, total=total))
                except (sqlite3.DatabaseError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise StateStoreCorrupt(f"{store}: {exc}") from exc
        finally:
            storage.close()
    emit(
        {"height": checked.height, "state_root": checked.state_root.hex(), "keys": checked.keys,
         "seconds": round(time.monotonic() - started, 1)},
        as_json,
        lambda d: console.print(f"state at height {d['height']} is whole: {d['keys']} keys match the tree of root"
                                f" {d['state_root']} ({d['seconds']} s)"),
    )

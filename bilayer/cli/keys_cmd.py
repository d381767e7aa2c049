from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import KeyExists, KeyNotFound, PassphraseRequired
from ..keys.keystore import ENV_KEYSTORE, ENV_PASSPHRASE, KeyInfo, Keystore, default_keystore
from .output import console, emit, json_option, kv_table

keystore_option = click.option(
    "--keystore",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Keystore directory (default: ${ENV_KEYSTORE}, else ~/.bilayer/keys).",
)


def open_keystore(path: Path | None) -> Keystore:
    return Keystore(path or default_keystore())


def _view(info: KeyInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "address": info.address,
        "public_key": info.public_key.hex(),
        "encrypted": info.encrypted,
    }


@click.group()
def keys() -> None:
    """Create and inspect Ed25519 keys in a keystore."""


@keys.command("new")
@click.argument("name")
@keystore_option
@click.option("--encrypt/--plaintext", default=True, show_default=True,
              help=f"Seal the seed under a passphrase (${ENV_PASSPHRASE}, else asked at a terminal), or store it"
                   " in the clear (throwaway keys only).")
@json_option
def keys_new(name: str, keystore: Path | None, encrypt: bool, as_json: bool) -> None:
    """Generate a key called NAME, encrypted unless --plaintext."""
    store = open_keystore(keystore)
    try:  # refuse a taken or invalid name before asking for a passphrase
        store.info(name)
        raise KeyExists(f"a key named {name!r} already exists in {store.path}")
    except KeyNotFound:
        pass
    passphrase = _new_passphrase() if encrypt else None
    info = store.create(name, passphrase=passphrase)
    emit(
        _view(info) | {"keystore": str(store.path)},
        as_json,
        lambda d: console.print(f"created key [bold]{d['name']}[/bold]  {d['address']}  in {d['keystore']}"
                                + ("" if d["encrypted"] else "  (plaintext)")),
    )


def _new_passphrase() -> str:
    """From the environment (scripts), else asked twice at a terminal; never empty."""
    from_env = os.environ.get(ENV_PASSPHRASE)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise PassphraseRequired(
            f"keys are encrypted by default: set ${ENV_PASSPHRASE}, run at a terminal to be asked,"
            " or pass --plaintext for a throwaway key"
        )
    return str(click.prompt("passphrase", hide_input=True, confirmation_prompt=True))


@keys.command("list")
@keystore_option
@json_option
def keys_list(keystore: Path | None, as_json: bool) -> None:
    """List the keys in the keystore."""
    from rich.table import Table

    store = open_keystore(keystore)
    infos = [_view(i) for i in store.list()]

    def human(rows: list[dict[str, Any]]) -> None:
        table = Table(title=f"keys in {store.path}", title_justify="left")
        table.add_column("name", overflow="fold")
        table.add_column("address", no_wrap=True)
        table.add_column("encrypted")
        for row in rows:
            table.add_row(row["name"], row["address"], "yes" if row["encrypted"] else "no")
        console.print(table)

    emit(infos, as_json, human)


@keys.command("show")
@click.argument("name")
@keystore_option
@json_option
def keys_show(name: str, keystore: Path | None, as_json: bool) -> None:
    """Show the address and public key of NAME (never the private key)."""
    emit(_view(open_keystore(keystore).info(name)), as_json, lambda d: kv_table(f"key {name}", d))


@keys.command("export-seed")
@click.argument("name")
@keystore_option
@json_option
def keys_export_seed(name: str, keystore: Path | None, as_json: bool) -> None:
    """Print the 32-byte Ed25519 seed of NAME in hex, to paste into the web console.

    Whoever holds the seed can sign as this key: show it only on a screen you trust.
    An encrypted key needs its passphrase ($BILAYER_PASSPHRASE)."""
    signer = open_keystore(keystore).load(name)
    emit({"name": name, "address": signer.address, "seed": signer.seed.hex()}, as_json,
         lambda d: console.print(d["seed"], highlight=False))

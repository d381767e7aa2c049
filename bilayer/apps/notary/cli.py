"""`bilayer notary register|transfer|show|owned`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import click

from ... import codec
from ...api.client import NodeClient
from ...cli.output import emit, json_option, kv_table
from ...cli.query_cmd import node_option
from ...cli.tx_cmd import _common, _submit
from ...keys.address import public_key_from_address
from .operations import NotaryRegister, NotaryTransfer


def _document(text: str) -> bytes:
    document = codec.from_hex(text, 32)
    if document is None:
        raise click.BadParameter("DOCUMENT is a SHA-256 of 64 hex characters")
    return document


@click.group()
def notary() -> None:
    """Notarised documents: register one by its hash, hand it on, look it up."""


@notary.command("register")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", required=True, help="What the document is (on chain).")
@_common
def notary_register(file: Path, title: str, node_url: str, key: str, keystore: Path | None, wait: bool,
                    timeout: float, as_json: bool) -> None:
    """Register FILE by its SHA-256 (the file itself stays with you)."""
    document = hashlib.sha256(file.read_bytes()).digest()
    _submit(node_url, keystore, key, NotaryRegister(document=document, title=title), b"", wait, timeout, as_json)


@notary.command("transfer")
@click.argument("document")
@click.option("--to", "to", required=True, help="The new owner's address.")
@_common
def notary_transfer(document: str, to: str, node_url: str, key: str, keystore: Path | None, wait: bool,
                    timeout: float, as_json: bool) -> None:
    """Hand DOCUMENT (its hash) to a new owner (owners only)."""
    op = NotaryTransfer(document=_document(document), to=public_key_from_address(to))
    _submit(node_url, keystore, key, op, b"", wait, timeout, as_json)


@notary.command("show")
@click.argument("document")
@node_option
@json_option
def notary_show(document: str, node_url: str, as_json: bool) -> None:
    """A registered document: owner, title, when registered, how often handed on."""
    data = NodeClient(node_url).get(f"/v1/apps/notary/document?hash={_document(document).hex()}")
    emit(data, as_json, lambda d: kv_table(f"document {document}", d))


@notary.command("owned")
@click.argument("address")
@node_option
@json_option
def notary_owned(address: str, node_url: str, as_json: bool) -> None:
    """The documents an address holds."""
    public_key_from_address(address)
    data = NodeClient(node_url).get(f"/v1/apps/notary/owned?owner={address}")

    def human(d: dict[str, Any]) -> None:
        click.echo(f"{len(d['documents'])} documents held by {d['owner']}")
        for row in d["documents"]:
            click.echo(f"  {row['document']}  {row['title']}")

    emit(data, as_json, human)

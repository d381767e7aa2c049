from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..api.client import NodeClient
from ..errors import BadRequest
from ..keys.address import public_key_from_address
from ..keys.signing import Signer
from ..ledger.operations import Data, Operation, Transfer
from .keys_cmd import keystore_option, open_keystore
from .output import console, emit, json_option
from .query_cmd import node_option


def _submit(
    node_url: str,
    keystore: Path | None,
    key: str,
    op: Operation,
    payload: bytes,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    signer: Signer = open_keystore(keystore).load(key)
    client = NodeClient(node_url)
    started = time.perf_counter()
    result: dict[str, Any] = client.build_and_submit(signer, op, payload)
    if wait:
        view = client.wait_for_outcome(result["id"], timeout)
        result["status"] = view["status"]
        for field in ("height", "reason", "cause"):
            if field in view:
                result[field] = view[field]
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    result["author"] = signer.address

    def human(d: dict[str, Any]) -> None:
        where = f" at height {d['height']}" if d.get("height") else ""
        why = f" ({d['reason']})" if d.get("reason") else ""
        console.print(f"{d['status']}{why}{where}  {d['id']}  {d['latency_ms']} ms")

    emit(result, as_json, human)


def _common(f: Any) -> Any:
    for option in reversed(
        [
            node_option,
            click.option("--key", required=True, help="Name of the signing key in the keystore."),
            keystore_option,
            click.option("--wait", is_flag=True,
                         help="Return only once the entry is FINAL or REJECTED (on a chain without validators:"
                              " once it is stored)."),
            click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds --wait waits."),
            json_option,
        ]
    ):
        f = option(f)
    return f


@click.group()
def tx() -> None:
    """Build, stamp, sign and submit entries."""


@tx.command("transfer")
@click.option("--to", "to_address", required=True, help="Recipient address.")
@click.option("--amount", type=click.IntRange(min=1), required=True)
@click.option("--asset", default="BLY", show_default=True)
@click.option("--memo", default="", help="A short note carried as the payload.")
@_common
def tx_transfer(
    to_address: str,
    amount: int,
    asset: str,
    memo: str,
    node_url: str,
    key: str,
    keystore: Path | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Transfer AMOUNT of ASSET to an address."""
    op = Transfer(asset=asset, amount=amount, to=public_key_from_address(to_address))
    _submit(node_url, keystore, key, op, memo.encode(), wait, timeout, as_json)


@tx.command("data")
@click.option("--text", help="The data, as text.")
@click.option(
    "--file", "file", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="The data, from a file."
)
@click.option(
    "--media-type", default=None, help="Media type (default text/plain for --text, else application/octet-stream)."
)
@_common
def tx_data(
    text: str | None,
    file: Path | None,
    media_type: str | None,
    node_url: str,
    key: str,
    keystore: Path | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Publish data bytes on the ledger."""
    if (text is None) == (file is None):
        raise BadRequest("give exactly one of --text or --file")
    payload = text.encode() if text is not None else file.read_bytes()  # type: ignore[union-attr]
    media = media_type or ("text/plain" if text is not None else "application/octet-stream")
    _submit(node_url, keystore, key, Data(media_type=media), payload, wait, timeout, as_json)

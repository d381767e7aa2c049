"""Talking to a running localnet over HTTP: submit, wait, read checkpoints and outcomes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bilayer import codec
from bilayer.genesis import Genesis
from bilayer.keys.keystore import Keystore
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import SignedEntry
from bilayer.ledger.operations import Transfer
from tests.support.builders import make_entry


def http(method: str, url: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/msgpack")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def submit(url: str, entries: list[tuple[bytes, SignedEntry]], attempts: int = 30) -> None:
    """As a client should: a batch refused early (503/429 with Retry-After) is sent again after that wait."""
    for start in range(0, len(entries), 500):
        for _ in range(attempts):
            request = urllib.request.Request(f"{url}/v1/entries/batch", method="POST",
                                             data=codec.encode([s for _, s in entries[start:start + 500]]))
            request.add_header("Content-Type", "application/msgpack")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, body = response.status, json.loads(response.read())
                break
            except urllib.error.HTTPError as exc:
                status, body = exc.code, json.loads(exc.read())
                if status not in (429, 503) or "Retry-After" not in exc.headers:
                    break
                time.sleep(float(exc.headers["Retry-After"]))
        assert status == 200, body
        errors = [r for r in body["results"] if "error" in r]
        assert not errors, errors[:3]


def height(url: str) -> int:
    return int(http("GET", f"{url}/v1/status", timeout=5)[1]["height"])


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def outcomes(url: str, ids: list[bytes], timeout: float = 120) -> dict[bytes, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found: dict[bytes, dict[str, Any]] = {}
    for entry_id in ids:
        while True:
            _, view = http("GET", f"{url}/v1/entries/{entry_id.hex()}?wait=5")
            if view.get("status") in ("FINAL", "REJECTED"):
                found[entry_id] = view
                break
            assert time.monotonic() < deadline, f"{entry_id.hex()} has no outcome: {view}"
    return found


def checkpoints(url: str) -> list[tuple[int, str, str, str]]:
    top = height(url)
    rows = []
    for h in range(1, top + 1):
        _, view = http("GET", f"{url}/v1/checkpoints/{h}")
        rows.append((h, view["id"], view["state_root"], view["results_root"]))
    return rows


class Wallets:
    """Client-side author chains: each signer's next sequence number and previous entry."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.heads: dict[bytes, tuple[int, bytes]] = {}

    def transfer(self, signer: Signer, to: Signer, amount: int, extra_parent: bytes | None = None,
                 ) -> tuple[bytes, SignedEntry]:
        seq, prev = self.heads.get(signer.public_key, (0, self.genesis.root))
        parents = [prev] if seq > 0 else [self.genesis.root]
        if extra_parent is not None and extra_parent not in parents:
            parents.append(extra_parent)
        id_, signed = make_entry(signer, self.genesis, seq=seq, parents=parents,
                                 op=Transfer(asset="BLY", amount=amount, to=to.public_key))
        self.heads[signer.public_key] = (seq + 1, id_)
        return id_, signed


def funded(manifest: dict[str, Any]) -> list[Signer]:
    store = Keystore(Path(manifest["keystore"]))
    return [store.load(name) for name in manifest["funded_keys"]]

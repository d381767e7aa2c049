"""A real node, in process (one validator on 127.0.0.1): its `/v1/status` answer is its typed
`Status`, valid against the generated document, and the audit index follows each checkpoint
as the composition root's first subscriber after the commit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import msgspec
import pytest

from bilayer import __version__
from bilayer.api.openapi import openapi_document
from bilayer.api.responses import Status
from bilayer.devnet.localnet import free_port
from bilayer.genesis import Allocation, ChainParams, Genesis, GenesisValidator
from bilayer.keys.signing import Signer
from bilayer.ledger.operations import operation_kinds
from bilayer.node.config import ApiConfig, NodeConfig, NodeHome, P2PConfig
from bilayer.node.runtime import Node
from tests.support.builders import make_entry, seeded_signer, transfer_to

VALIDATOR = seeded_signer(71)
ALICE, BOB = seeded_signer(72), seeded_signer(73)
DEADLINE_S = 60


def _node(home: Path) -> Node:
    genesis = Genesis(chain_id="status-test", genesis_time_ms=int(time.time() * 1000) - 1000,
                      params=ChainParams(pow_bits=0), allocations=(Allocation(ALICE.address, "BLY", 100),),
                      validators=(GenesisValidator("v0", VALIDATOR.public_key.hex(), 1),))
    config = NodeConfig(name="solo", api=ApiConfig(f"127.0.0.1:{free_port()}"),
                        p2p=P2PConfig(f"127.0.0.1:{free_port()}"))
    return Node(NodeHome(home), config, genesis, VALIDATOR)


def _validate(document: dict[str, Any], path: str, body: Any) -> None:
    schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": document["components"]},
                        cls=jsonschema.Draft202012Validator)


async def _run(node: Node, signer: Signer) -> tuple[list[dict[str, Any]], dict[str, Any], Status]:
    """Status before any checkpoint and after the transfer's, the audit page that shows it, and
    the node's own status object at the end."""
    base = f"http://{node.config.api.listen}"
    entry_id, signed = make_entry(signer, node.genesis, op=transfer_to(BOB, 3))
    await node.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE_S)) as http:
            async with http.get(f"{base}/v1/status") as response:
                first = await response.json()
            async with http.post(f"{base}/v1/entries", json=msgspec.to_builtins(signed)) as response:
                assert response.status in (200, 201, 202), await response.text()
            async with http.get(f"{base}/v1/entries/{entry_id.hex()}?wait=30") as response:
                assert (await response.json())["status"] == "FINAL"
            async with http.get(f"{base}/v1/status") as response:
                second = await response.json()
            async with http.get(f"{base}/v1/audit/entries?counterparty={BOB.address}") as response:
                audit = await response.json()
        return [first, second], audit, node.status()
    finally:
        await node.stop()


@pytest.mark.timeout(120)
def test_status_is_typed_and_the_audit_index_follows_the_commit(tmp_path: Path) -> None:
    node = _node(tmp_path)
    statuses, audit, own = asyncio.run(asyncio.wait_for(_run(node, ALICE), DEADLINE_S * 2))
    document = openapi_document(__version__, operation_kinds())
    for status in statuses:
        _validate(document, "/v1/status", status)
    first, second = statuses
    assert first["finality"] is True and first["height"] == 0 and first["last_checkpoint"] is None
    assert first["role"] == "validator" and first["node_key"] == VALIDATOR.public_key.hex()
    assert second["height"] >= 1 and second["last_checkpoint"] is not None and second["entries"] == 1
    assert list(second)[:3] == ["version", "name", "role"] and list(second)[-1] in ("phase", "halted")
    assert msgspec.json.decode(msgspec.json.encode(own), type=Status) == own  # the answer is exactly the type
    assert [e["kind"] for e in audit["entries"]] == ["transfer"] and audit["height"] >= 1
    assert node.after_checkpoint.names[0] == "audit index"
    _validate(document, "/v1/audit/entries", audit)


def test_a_chain_without_validators_reports_only_that_it_has_no_finality() -> None:
    status = Status(version=__version__, name="n", role="ledger", chain_id="c", genesis_root="00", node_key="11",
                    healthy=True, entries=0, tips=1, orphans=0, authors=0, peers=0, isolated=False,
                    catching_up=False, params=ChainParams(), api="127.0.0.1:1", p2p="127.0.0.1:2", uptime_s=0.0,
                    finality=False)
    encoded = msgspec.json.decode(msgspec.json.encode(status))
    assert encoded["finality"] is False and "height" not in encoded and "halted" not in encoded
    assert encoded["params"] == msgspec.to_builtins(ChainParams())
    _validate(openapi_document(__version__, operation_kinds()), "/v1/status", encoded)

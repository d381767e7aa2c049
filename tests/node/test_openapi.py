"""The OpenAPI document describes every route the node serves, and what those routes answer."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bilayer import __version__
from bilayer.node.metrics import NodeMetrics
from tests.support.chain import (
    ALICE,
    CAROL,
    FUND,
    OVERSPEND,
    S,
    finalize,
    next_checkpoint,
    open_node,
)
from tests.support.openapi import _check, app_for, document, documented


def routes(app: web.Application) -> set[tuple[str, str]]:
    """(path template, lower-case method) of every route, HEAD aside (aiohttp adds one per GET)."""
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        assert route.resource is not None
        found.add((route.resource.canonical, route.method.lower()))
    return found


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema, or the component it refers to."""
    if "$ref" in schema:
        resolved: dict[str, Any] = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        return resolved
    return schema


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    served = routes(app_for(object()))
    doc = documented(document())
    assert ("/v1/checkpoints/{height}", "get") in served  # the routes this document must now cover
    assert not served - doc, f"routes missing from the OpenAPI document: {sorted(served - doc)}"
    assert not doc - served, f"documented but not served: {sorted(doc - served)}"


def test_document_is_json_and_openapi_3_1() -> None:
    doc = document()
    assert json.loads(json.dumps(doc)) == doc
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    assert doc["info"]["version"] == __version__
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], (path, method)
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), (path, method)
            assert all(p["required"] for p in operation.get("parameters", []) if p["in"] == "path")


def test_new_routes_are_described() -> None:
    doc = document()
    paths, schemas = doc["paths"], doc["components"]["schemas"]

    checkpoint = paths["/v1/checkpoints/{height}"]["get"]
    assert {"200", "400", "404"} <= set(checkpoint["responses"])
    params = {p["name"]: p for p in checkpoint["parameters"]}
    assert {"type": "string", "enum": ["latest"]} in params["height"]["schema"]["oneOf"]
    assert params["entries"]["in"] == "query" and "1" in params["entries"]["schema"]["enum"]

    assert {"200", "400", "404"} <= set(paths["/v1/accounts/{address}"]["get"]["responses"])
    assert "200" in paths["/v1/validators"]["get"]["responses"]

    entry = paths["/v1/entries/{entry_id}"]["get"]
    wait = next(p for p in entry["parameters"] if p["name"] == "wait")
    assert wait["in"] == "query" and (wait["schema"]["minimum"], wait["schema"]["maximum"]) == (0, 30)
    entry_schema = schemas["Entry"]["properties"]
    assert set(entry_schema["status"]["enum"]) == {"PENDING", "FINAL", "REJECTED", "HELD"}
    assert {"tombstone", "review"} <= set(entry_schema)
    assert {"410", "451"} <= set(paths["/v1/entries/{entry_id}/payload"]["get"]["responses"])
    assert {"height", "index", "reason"} <= set(entry_schema)

    evidence = resolve(doc, paths["/v1/evidence"]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
    assert evidence["properties"]["equivocations"]["items"] == {"$ref": "#/components/schemas/Equivocation"}


def test_document_passes_the_openapi_validator() -> None:
    import openapi_spec_validator

    openapi_spec_validator.validate(document())


# --- what the routes answer matches what the document says ----------------------------------


def test_routes_answer_as_documented(tmp_path: Path) -> None:
    node = open_node(tmp_path / "node.sqlite")
    node.add(S.fund, S.overspend)
    node.apply(finalize(next_checkpoint(node.chain, [OVERSPEND])))
    fake = SimpleNamespace(metrics=NodeMetrics(), chain=node.chain, storage=node.storage, ingest=node.ingest,
                           validators=node.chain.validators)
    doc = document()

    async def scenario() -> list[tuple[str, int, Any]]:
        answers = []
        async with TestClient(TestServer(app_for(fake))) as client:
            for template, url in [
                ("/v1/checkpoints/{height}", "/v1/checkpoints/latest?entries=1"),
                ("/v1/checkpoints/{height}", "/v1/checkpoints/1"),
                ("/v1/checkpoints/{height}", "/v1/checkpoints/2"),
                ("/v1/checkpoints/{height}", "/v1/checkpoints/0"),
                ("/v1/checkpoints/{height}", "/v1/checkpoints/two"),
                ("/v1/accounts/{address}", f"/v1/accounts/{ALICE.address}"),
                ("/v1/accounts/{address}", f"/v1/accounts/{CAROL.address}"),
                ("/v1/accounts/{address}", "/v1/accounts/nobody"),
                ("/v1/validators", "/v1/validators"),
                ("/v1/evidence", "/v1/evidence"),
                ("/v1/validators/history", "/v1/validators/history"),
                ("/v1/validators", "/v1/validators?height=3"),
                ("/v1/validators", "/v1/validators?height=4"),
                ("/v1/validators", "/v1/validators?height=zero"),
                ("/v1/validators/history", "/v1/validators/history?limit=0"),
                ("/v1/entries/{entry_id}", f"/v1/entries/{FUND.hex()}?wait=31"),
                ("/v1/entries/{entry_id}", f"/v1/entries/{FUND.hex()}?wait=soon"),
                ("/v1/entries/{entry_id}", f"/v1/entries/{FUND.hex()}"),  # ordered, but not stored on this node
            ]:
                response = await client.get(url)
                answers.append((template, response.status, await response.json()))
        return answers

    try:
        answers = asyncio.run(asyncio.wait_for(scenario(), 20))
    finally:
        node.storage.close()
    for template, status, body in answers:
        _check(doc, template, status, body)
    statuses = [status for _, status, _ in answers]
    assert statuses == [200, 200, 404, 404, 400, 200, 200, 400, 200, 200, 200, 200, 404, 400, 400, 400, 400, 404]
    latest = answers[0][2]
    assert latest["height"] == 1 and [e["id"] for e in latest["entries"]] == [FUND.hex(), OVERSPEND.hex()]
    assert latest["entries"][1] == {"id": OVERSPEND.hex(), "outcome": "REJECTED", "reason": "insufficient_funds",
                                    "cause": None}
    assert "entries" not in answers[1][2]
    assert answers[5][2]["balances"] == {"BLY": 70} and answers[5][2]["next_seq"] == 1
    assert answers[6][2]["balances"] == {"GLD": 7} and answers[6][2]["last_entry"] is None
    assert len(answers[8][2]["validators"]) == 4 and answers[8][2]["quorum_power"] == 3
    assert answers[9][2] == {"forks": [], "equivocations": []}
    assert [(c["change"], c["height"], c["proposals"]) for c in answers[10][2]["changes"]] == [(1, 1, [])]
    assert answers[8][2]["height"] == 2 and answers[8][2]["since_height"] == 1
    assert answers[11][2]["height"] == 3 and len(answers[11][2]["validators"]) == 4


def test_the_node_serves_this_document() -> None:
    async def scenario() -> Any:
        async with TestClient(TestServer(app_for(SimpleNamespace(metrics=NodeMetrics())))) as client:
            response = await client.get("/openapi.json")
            assert response.status == 200
            return await response.json()

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == document()

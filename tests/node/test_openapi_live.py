"""What the routes answer is what `/openapi.json` says they answer: a node served in process over a
chain with transfers, proposals, a freeze, a redaction and a validator change, and one served over
a warehouse ledger where every application query has records to answer, answer every JSON route,
and each answer (success or error) validates against the schema the document gives for its route
and status. A new route, or a route whose answer drifts from its type, fails here."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import jsonschema
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bilayer import __version__
from bilayer.api.openapi import openapi_document
from bilayer.api.responses import Status
from bilayer.api.server import build_app
from bilayer.apps.notary.operations import NotaryRegister
from bilayer.bench.proof import ChainBuilder, seeded
from bilayer.execution.application import application
from bilayer.genesis import Genesis
from bilayer.ledger.operations import Data, FreezeAccount, RedactEntries, operation_kinds
from bilayer.node.ingest import Ingest
from bilayer.node.metrics import NodeMetrics
from tests.support.openapi import proof_source_of
from tests.support.warehouse_answers import answering_ledger

NEWCOMER = seeded(9, 4)
DOCUMENT = bytes(range(32))
PEER = {"node_key": "ab" * 32, "listen": "127.0.0.1:9", "direction": "inbound"}
NOT_EXERCISED = {
    ("/v1/stream", "get"): "an event stream, not a JSON answer",
    ("/", "get"): "HTML",
    ("/static/{filename}", "get"): "a file",
    ("/metrics", "get"): "Prometheus text",
    ("/v1/entries/{entry_id}/payload", "get"): "raw bytes (its errors are checked)",
    ("/v1/apps/{app}/{query}", "get"): "every installed query has a typed route of its own (its errors are checked)",
}


class Served:
    """h1 adds a validator and orders a transfer; h2 a transfer, two data entries, a notarized
    document and a freeze of bob; h3 a transfer the freeze refuses and the redaction of one data
    entry; h4 a transfer."""

    def __init__(self, path: Path) -> None:
        self.builder = builder = ChainBuilder(path)
        builder.add_validator(NEWCOMER)
        self.t1 = builder.transfer(5)
        builder.checkpoint()
        self.t2 = builder.transfer(7)
        self.data = builder.write(builder.alice, Data(media_type="text/plain"), b"the minutes of the meeting")
        self.personal = builder.write(builder.alice, Data(media_type="text/plain"), b"a home address")
        self.notarized = builder.write(builder.alice, NotaryRegister(document=DOCUMENT, title="the minutes"))
        builder.decide(FreezeAccount(account=builder.bob.public_key))
        builder.checkpoint()
        self.t3 = builder.transfer(11)
        builder.decide(RedactEntries(entries=(self.personal,), reason_code="personal_data"))
        builder.checkpoint()
        self.t4 = builder.transfer(13)
        builder.checkpoint()
        ingest = Ingest(builder.storage, builder.genesis, NodeMetrics())
        ingest.dag = builder.dag  # the DAG the chain was built over
        self.node = SimpleNamespace(
            metrics=NodeMetrics(), chain=builder.chain, storage=builder.storage, genesis=builder.genesis,
            ingest=ingest, peers=SimpleNamespace(peer_list=lambda: [PEER]), started_s=time.time(),
            status=lambda: _status(builder.genesis), not_ready=lambda: [], wait_for_entry=_no_wait,
            proof_source=proof_source_of(builder))


def _status(genesis: Genesis) -> Status:
    return Status(version=__version__, name="served", role="ledger", chain_id=genesis.chain_id,
                  genesis_root=genesis.root.hex(), node_key="ab" * 32, healthy=True, entries=9, tips=1, orphans=0,
                  authors=2, peers=1, isolated=False, catching_up=False, params=genesis.params, api="127.0.0.1:1",
                  p2p="127.0.0.1:2", uptime_s=1.5, finality=True, height=4, last_checkpoint="cd" * 32,
                  last_checkpoint_time_ms=genesis.genesis_time_ms, state_root="ef" * 32, results_root="01" * 32,
                  validators=2, halted=None, round=0, phase=0)


async def _no_wait(entry_id: bytes, timeout: float) -> None:
    return None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    chain = Served(tmp_path / "chain.sqlite")
    yield chain
    chain.builder.close()


def _asks(s: Served) -> list[tuple[str, str, str, Any]]:
    """(template, method, url, JSON body or None) of every question asked."""
    b = s.builder
    alice, bob = b.alice.address, b.bob.address
    get = [
        ("/health", "/health"), ("/ready", "/ready"), ("/v1/peers", "/v1/peers"), ("/v1/status", "/v1/status"),
        ("/openapi.json", "/openapi.json"),
        ("/v1/entries", "/v1/entries?after=0&limit=5"), ("/v1/entries", "/v1/entries?limit=0"),
        ("/v1/entries/{entry_id}", f"/v1/entries/{s.t3.hex()}"),
        ("/v1/entries/{entry_id}", f"/v1/entries/{s.personal.hex()}"),
        ("/v1/entries/{entry_id}", f"/v1/entries/{s.data.hex()}?wait=0"),
        ("/v1/entries/{entry_id}", f"/v1/entries/{'ab' * 32}"), ("/v1/entries/{entry_id}", "/v1/entries/xyz"),
        ("/v1/entries/{entry_id}/payload", f"/v1/entries/{s.personal.hex()}/payload"),
        ("/v1/entries/{entry_id}/payload", f"/v1/entries/{'ab' * 32}/payload"),
        ("/v1/authors/{address}", f"/v1/authors/{alice}"), ("/v1/authors/{address}", "/v1/authors/nobody"),
        ("/v1/tips", "/v1/tips"), ("/v1/evidence", "/v1/evidence"),
        ("/v1/checkpoints/{height}", "/v1/checkpoints/latest?entries=1"),
        ("/v1/checkpoints/{height}", "/v1/checkpoints/1"), ("/v1/checkpoints/{height}", "/v1/checkpoints/99"),
        ("/v1/accounts/{address}", f"/v1/accounts/{bob}"),
        ("/v1/validators", "/v1/validators"), ("/v1/validators", "/v1/validators?height=1"),
        ("/v1/validators/history", "/v1/validators/history"),
        ("/v1/gov/proposals", "/v1/gov/proposals"), ("/v1/gov/proposals", "/v1/gov/proposals?status=x"),
        ("/v1/gov/proposals/{number}", "/v1/gov/proposals/1"), ("/v1/gov/proposals/{number}", "/v1/gov/proposals/3"),
        ("/v1/gov/proposals/{number}", "/v1/gov/proposals/99"),
        ("/v1/gov/council", "/v1/gov/council"), ("/v1/compliance", "/v1/compliance"),
        ("/v1/compliance/review", "/v1/compliance/review"), ("/v1/params", "/v1/params"),
        ("/v1/gov/dry-run", f"/v1/gov/dry-run?action=freeze&target={alice}"),
        ("/v1/gov/dry-run", "/v1/gov/dry-run?action=nothing"),
        ("/v1/identities/{address}", f"/v1/identities/{bob}"),
        ("/v1/apps", "/v1/apps"), ("/v1/apps/notary/owned", "/v1/apps/notary/owned?owner=" + alice),
        ("/v1/apps/notary/document", f"/v1/apps/notary/document?hash={DOCUMENT.hex()}"),
        ("/v1/apps/notary/document", f"/v1/apps/notary/document?hash={'ab' * 32}"),
        ("/v1/apps/notary/document", "/v1/apps/notary/document?hash=x"),
        ("/v1/apps/warehouse/register", "/v1/apps/warehouse/register?status=pledged"),
        ("/v1/apps/warehouse/register", "/v1/apps/warehouse/register?status=lost"),
        ("/v1/apps/warehouse/history", f"/v1/apps/warehouse/history?id={'ab' * 32}"),
        ("/v1/apps/warehouse/trail", "/v1/apps/warehouse/trail?id=x"),
        ("/v1/apps/warehouse/alerts", "/v1/apps/warehouse/alerts"),
        ("/v1/apps/{app}/{query}", "/v1/apps/nothing/here"),
        ("/v1/audit/actions", "/v1/audit/actions"),
        ("/v1/audit/proof/{entry_id}", f"/v1/audit/proof/{s.t3.hex()}"),
        ("/v1/audit/proof/{entry_id}", f"/v1/audit/proof/{s.t4.hex()}"),
        ("/v1/audit/state-proof/{address}", f"/v1/audit/state-proof/{bob}"),
        ("/v1/audit/export", f"/v1/audit/export?account={bob}&from=0&to={10**13}"),
        ("/v1/audit/entries", "/v1/audit/entries?limit=3"), ("/v1/audit/entries", "/v1/audit/entries?outcome=x"),
        ("/v1/audit/trace", f"/v1/audit/trace?start={alice}"), ("/v1/audit/trace", "/v1/audit/trace?start=x"),
    ]
    stored = b.storage.get(s.t4)
    assert stored is not None
    posts = [
        ("/v1/entries/draft", {"author": alice, "kind": "transfer", "op": {"to": bob, "amount": 1, "asset": "BLY"}}),
        ("/v1/entries/draft", {"author": alice, "kind": "nothing", "op": {}}),
        ("/v1/entries", msgspec.to_builtins(stored.signed)), ("/v1/entries", {"header": 1}),
        ("/v1/entries/batch", {"entries": [msgspec.to_builtins(stored.signed), {"header": "", "signature": "",
                                                                                 "payload": ""}]}),
    ]
    return ([(template, "get", url, None) for template, url in get]
            + [(template, "post", template, body) for template, body in posts])


def _warehouse_asks() -> tuple[Any, list[tuple[str, str, str, Any]], dict[str, str]]:
    """A node view whose finalized chain is a warehouse ledger, the questions asked of it (every
    application query with parameters that find its records, and some that find nothing), and the
    JSON each query itself renders, by URL."""
    ledger, asked = answering_ledger()
    chain = SimpleNamespace(state=ledger.state, height=ledger.height)
    asks = [(f"/v1/apps/{app}/{query}", "get", f"/v1/apps/{app}/{query}?{urlencode(params)}", None)
            for (app, query), params in asked.items()]
    rendered = {}
    for (app, query), params in asked.items():
        found = application(app)
        assert found is not None
        answer = {"height": ledger.height, **found.queries[query](ledger.state, params)}
        rendered[f"/v1/apps/{app}/{query}?{urlencode(params)}"] = json.dumps(json.loads(msgspec.json.encode(answer)))
    asks += [(f"/v1/apps/warehouse/{query}", "get", f"/v1/apps/warehouse/{query}{params}", None) for query, params in (
        ("stock", ""), ("alert", f"?id={'ab' * 32}"), ("receipt", "?id=x"), ("lot", "?mill=M"),
        ("facility", f"?bank={ledger.ids[0].hex()}&name=F9"), ("valuation", ""), ("party", f"?key={'ab' * 32}"),
        ("device", "?id=nothing"), ("alerts", "?severity=GRAVE"), ("prices", "?spec=none"))]
    asks.append(("/v1/apps/{app}/{query}", "get", "/v1/apps/warehouse/nothing", None))
    return chain, asks, rendered


def _answers(app: web.Application, asks: list[tuple[str, str, str, Any]]) -> list[tuple[int, str, Any]]:
    async def scenario() -> list[tuple[int, str, Any]]:
        answers = []
        async with TestClient(TestServer(app)) as client:
            for _, method, url, body in asks:
                response = await (client.get(url) if method == "get" else client.post(url, json=body))
                media = response.content_type
                answers.append((response.status, media,
                                await response.json() if media == "application/json" else await response.read()))
        return answers

    return asyncio.run(asyncio.wait_for(scenario(), 120))


def test_every_answer_validates_against_the_generated_schema_of_its_route(served: Served) -> None:
    doc = openapi_document(__version__, operation_kinds())
    app = build_app(served.node,  # type: ignore[arg-type]
                    max_request_bytes=1 << 20, connection_rate=0, connection_burst=0)
    asks = _asks(served)
    answers = _answers(app, asks)
    chain, warehouse_asks, rendered = _warehouse_asks()
    warehouse = build_app(SimpleNamespace(**{**vars(served.node), "chain": chain}),  # type: ignore[arg-type]
                          max_request_bytes=1 << 20, connection_rate=0, connection_burst=0)
    warehouse_answers = _answers(warehouse, warehouse_asks)
    for (_, _, url, _), (status, _, body) in zip(warehouse_asks, warehouse_answers, strict=True):
        if url in rendered:  # the typed route answers the query's own JSON: the same fields, in the same order
            assert (status, json.dumps(body)) == (200, rendered[url]), url
    asks += warehouse_asks
    answers += warehouse_answers
    seen_ok: set[tuple[str, str]] = set()
    for (template, method, url, _), (status, media, body) in zip(asks, answers, strict=True):
        operation = doc["paths"][template][method]
        assert str(status) in operation["responses"], (url, status, body)
        content = operation["responses"][str(status)]["content"]
        assert media in content, (url, status, media)
        if media != "application/json":
            continue
        schema = {**content[media]["schema"], "components": doc["components"]}
        try:
            jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"{method.upper()} {url} answered {status} outside its schema: {exc.message}"
                                 f" at {list(exc.absolute_path)}") from None
        if status < 300:
            seen_ok.add((template, method))
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert documented - seen_ok == set(NOT_EXERCISED), "a route no answer here exercises"


def test_the_answers_say_what_the_chain_holds(served: Served) -> None:
    """The typed answers carry the chain's facts, not just the right shapes."""
    app = build_app(served.node,  # type: ignore[arg-type]
                    max_request_bytes=1 << 20, connection_rate=0, connection_burst=0)
    asks = _asks(served)
    by_url = {url: answer for (_, _, url, _), answer in zip(asks, _answers(app, asks), strict=True)}
    bob = served.builder.bob.address
    redacted = by_url[f"/v1/entries/{served.personal.hex()}"][2]
    assert redacted["tombstone"]["reason_code"] == "personal_data" and "payload" not in redacted
    assert by_url[f"/v1/entries/{served.t3.hex()}"][2]["status"] == "REJECTED"  # bob is frozen by then
    assert by_url[f"/v1/entries/{'ab' * 32}"][:1] == (404,)
    assert by_url[f"/v1/entries/{served.personal.hex()}/payload"][2]["error"]["code"] == "payload_withheld"
    assert [a["address"] for a in by_url["/v1/compliance"][2]["frozen_accounts"]] == [bob]
    assert by_url["/v1/checkpoints/latest?entries=1"][2]["height"] == 4
    assert len(by_url["/v1/validators/history"][2]["changes"]) == 2
    assert by_url[f"/v1/audit/proof/{served.t4.hex()}"][2]["error"]["code"] == "not_yet_provable"
    assert by_url["/v1/peers"][2] == {"peers": [PEER]}
    document = by_url[f"/v1/apps/notary/document?hash={DOCUMENT.hex()}"][2]
    assert document["height"] == 4 and document["title"] == "the minutes"
    assert document["registered_entry"] == served.notarized.hex() and document["registered_height"] == 2
    assert list(document)[:2] == ["height", "document"]  # as the query renders it, the height first
    owned = by_url["/v1/apps/notary/owned?owner=" + served.builder.alice.address][2]
    assert [d["document"] for d in owned["documents"]] == [DOCUMENT.hex()]
    assert by_url[f"/v1/apps/notary/document?hash={'ab' * 32}"][:1] == (404,)
    assert by_url["/v1/apps/warehouse/register?status=pledged"][2] == {"height": 4, "count": 0, "receipts": []}
    assert by_url["/v1/apps/warehouse/alerts"][2] == {"height": 4, "count": 0, "alerts": []}
    batch = by_url["/v1/entries/batch"][2]["results"]
    assert batch[0]["status"] == "known" and "error" in batch[1]

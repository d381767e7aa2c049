"""The typed application queries: over a ledger where the notary and the warehouse have records,
each typed query's answer converts strictly to its type, encodes to exactly the bytes the
query's own answer does (the same fields, in the same order), and validates against the
generated document; the general route's answers carry at least the envelope."""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping
from typing import Any

import jsonschema
import msgspec
import pytest

from bilayer import __version__
from bilayer.api import responses as r
from bilayer.api.openapi import openapi_document
from bilayer.api.routes.apps import TYPED_QUERIES
from bilayer.execution.application import application, installed_applications
from bilayer.ledger.operations import operation_kinds
from tests.support.warehouse_answers import answering_ledger
from tests.support.warehouse_ledger import WarehouseLedger

Asked = dict[tuple[str, str], Mapping[str, str]]


@pytest.fixture(scope="module")
def world() -> tuple[WarehouseLedger, Asked]:
    """A ledger where every query has records to answer with, and the parameters each is asked with."""
    return answering_ledger()


def _answer(ledger: WarehouseLedger, app: str, query: str, params: Mapping[str, str]) -> dict[str, Any]:
    found = application(app)
    assert found is not None
    return {"height": ledger.height, **found.queries[query](ledger.state, params)}


@functools.cache
def _document() -> dict[str, Any]:
    return openapi_document(__version__, operation_kinds())


def _schema(path: str) -> dict[str, Any]:
    document = _document()
    schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def test_every_query_of_the_installed_applications_is_typed() -> None:
    """A new query comes with its answer's type, or its answer is undocumented."""
    assert set(TYPED_QUERIES) == {(app.name, query) for app in installed_applications() for query in app.queries}


def test_every_typed_query_answers_exactly_its_type(world: tuple[WarehouseLedger, Asked]) -> None:
    ledger, asked = world
    assert set(asked) == set(TYPED_QUERIES)
    for (app, query), params in asked.items():
        answer = _answer(ledger, app, query, params)
        typed = msgspec.convert(answer, TYPED_QUERIES[app, query])
        assert msgspec.json.encode(typed) == msgspec.json.encode(answer), (app, query)
        jsonschema.validate(answer, _schema(f"/v1/apps/{app}/{query}"), cls=jsonschema.Draft202012Validator)
    register = _answer(ledger, "warehouse", "register", {})
    assert register["count"] == 1 and register["receipts"][0]["lots"] == 3
    assert _answer(ledger, "notary", "owned", asked["notary", "owned"])["documents"][0]["transfers"] == 1


def test_the_typed_answers_carry_the_records(world: tuple[WarehouseLedger, Asked]) -> None:
    """The world's records reach every nested part of the types: not only empty lists and nulls."""
    ledger, asked = world

    def typed(query: str) -> Any:
        return msgspec.convert(_answer(ledger, "warehouse", query, asked["warehouse", query]),
                               TYPED_QUERIES["warehouse", query])

    receipt = typed("receipt")
    assert receipt.pledge is not None and receipt.receipt.status == "pledged" and receipt.receipt.held
    assert [e.kind for e in receipt.receipt.endorsements] == ["issue", "pledge"]
    evidence = typed("evidence")
    events = evidence.epcis.epcisBody.eventList
    assert len(events) == len(evidence.events) == 4  # three intake weighings and the gate's departure
    reports = events[0].sensorElementList[0].sensorReport
    assert [(x.value, x.weighing) for x in reports] == [(41_000, "gross"), (18_000, "tare")]
    trail = typed("alert_trail")
    assert trail.alert.rule == "R2" and trail.lots and trail.intakes
    assert bytes.fromhex(trail.alert.id) == base64.b64decode(trail.record.id)
    holds = typed("holds")
    assert len(holds.receipts) == 1 and holds.receipts[0].held and [b.bin for b in holds.bins] == ["A1"]
    facility = typed("facility")
    assert facility.valuation is not None and facility.valuation.lines[0].value > 0 and facility.pledges
    assert typed("exposure").banks[0].outstanding == 19_320_000
    prices = typed("prices")
    assert prices.specs[0].price == 400_000 and len(prices.marks) == len(prices.daily) == 1
    assert typed("party").warehouse is not None and len(typed("party").devices) == 2


def test_a_field_the_type_lacks_fails_the_conversion(world: tuple[WarehouseLedger, Asked]) -> None:
    """What a typed route does with an answer that strayed from its type: refuse it."""
    ledger, asked = world
    answer = _answer(ledger, "warehouse", "trail", asked["warehouse", "trail"])
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({**answer, "new_field": 1}, TYPED_QUERIES["warehouse", "trail"])
    with pytest.raises(msgspec.ValidationError, match="missing required field `lots`"):
        msgspec.convert({k: v for k, v in answer.items() if k != "lots"}, TYPED_QUERIES["warehouse", "trail"])


def test_every_answer_carries_the_envelope_of_the_general_route(world: tuple[WarehouseLedger, Asked]) -> None:
    """The general route, for a query without a type of its own, checks its answer against the envelope."""
    ledger, _ = world
    answer = _answer(ledger, "warehouse", "devices", {})
    assert msgspec.convert(answer, r.AppAnswer).height == ledger.height and answer["count"] >= 1
    jsonschema.validate(answer, _schema("/v1/apps/{app}/{query}"), cls=jsonschema.Draft202012Validator)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**answer, "height": -1}, r.AppAnswer)

"""The typed application queries: over a ledger where the notary and the warehouse have records,
each typed query's answer converts strictly to its type, encodes to exactly the bytes the
query's own answer does (the same fields, in the same order), and validates against the
generated document; the general route's answers carry at least the envelope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
import msgspec
import pytest

from bilayer import __version__
from bilayer.api import responses as r
from bilayer.api.openapi import openapi_document
from bilayer.api.routes.apps import TYPED_QUERIES
from bilayer.apps.notary.operations import NotaryRegister, NotaryTransfer
from bilayer.execution.application import application
from bilayer.ledger.operations import operation_kinds
from tests.support.warehouse_ledger import BANK, COILS, DEP, WarehouseLedger

DOCUMENT = bytes(range(32))


@pytest.fixture(scope="module")
def world() -> tuple[WarehouseLedger, dict[tuple[str, str], Mapping[str, str]]]:
    """A receipt issued over three lots, and a document registered by the depositor and handed on;
    with the parameters each typed query is asked with."""
    ledger = WarehouseLedger()
    ledger.onboard()
    lots = tuple(ledger.intake(coil, 23_000) for coil in COILS)
    rid = ledger.issue(lots, 23_000 * len(lots))
    ledger.ok((DEP, NotaryRegister(document=DOCUMENT, title="bill of lading")))
    ledger.ok((DEP, NotaryTransfer(document=DOCUMENT, to=BANK.public_key)))
    asked = {
        ("notary", "document"): {"hash": DOCUMENT.hex()},
        ("notary", "owned"): {"owner": BANK.address},
        ("warehouse", "register"): {},
        ("warehouse", "history"): {"id": rid.hex()},
        ("warehouse", "trail"): {"id": rid.hex()},
    }
    return ledger, asked


def _answer(ledger: WarehouseLedger, app: str, query: str, params: Mapping[str, str]) -> dict[str, Any]:
    found = application(app)
    assert found is not None
    return {"height": ledger.height, **found.queries[query](ledger.state, params)}


def _schema(path: str) -> dict[str, Any]:
    document = openapi_document(__version__, operation_kinds())
    schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def test_every_typed_query_answers_exactly_its_type(
        world: tuple[WarehouseLedger, dict[tuple[str, str], Mapping[str, str]]]) -> None:
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


def test_a_field_the_type_lacks_fails_the_conversion(
        world: tuple[WarehouseLedger, dict[tuple[str, str], Mapping[str, str]]]) -> None:
    """What a typed route does with an answer that strayed from its type: refuse it."""
    ledger, asked = world
    answer = _answer(ledger, "warehouse", "trail", asked["warehouse", "trail"])
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({**answer, "new_field": 1}, TYPED_QUERIES["warehouse", "trail"])
    with pytest.raises(msgspec.ValidationError, match="missing required field `lots`"):
        msgspec.convert({k: v for k, v in answer.items() if k != "lots"}, TYPED_QUERIES["warehouse", "trail"])


def test_an_untyped_query_answers_the_envelope(
        world: tuple[WarehouseLedger, dict[tuple[str, str], Mapping[str, str]]]) -> None:
    ledger, _ = world
    answer = _answer(ledger, "warehouse", "devices", {})
    assert msgspec.convert(answer, r.AppAnswer).height == ledger.height and answer["count"] >= 1
    jsonschema.validate(answer, _schema("/v1/apps/{app}/{query}"), cls=jsonschema.Draft202012Validator)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**answer, "height": -1}, r.AppAnswer)

"""The HTTP app in this process and checks of its answers against /openapi.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bilayer import __version__
from bilayer.api.openapi import openapi_document
from bilayer.api.server import build_app
from bilayer.ledger.operations import operation_kinds

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def document() -> dict[str, Any]:
    return openapi_document(__version__, operation_kinds())


def app_for(node: object) -> web.Application:
    return build_app(node, max_request_bytes=1 << 20, connection_rate=0, connection_burst=0)  # type: ignore[arg-type]


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in doc["paths"].items() for method in item if method in HTTP_METHODS}


def _check(doc: dict[str, Any], template: str, status: int, body: Any) -> None:
    """`status` is a documented response; a 200 body carries its schema's required fields."""
    responses = doc["paths"][template]["get"]["responses"]
    assert str(status) in responses, (template, status, body)
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    missing = set(schema.get("required", ())) - set(body)
    assert not missing, (template, missing)
    for name, value in body.items():
        enum = schema.get("properties", {}).get(name, {}).get("enum")
        assert enum is None or value in enum, (template, name, value)

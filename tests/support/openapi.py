"""The HTTP app in this process and checks of its answers against /openapi.json."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

from bilayer import __version__
from bilayer.api.openapi import openapi_document
from bilayer.api.server import build_app
from bilayer.audit.proof import ChainSource
from bilayer.bench.proof import ChainBuilder
from bilayer.ledger.operations import operation_kinds
from bilayer.node.storage import Storage

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def document() -> dict[str, Any]:
    return openapi_document(__version__, operation_kinds())


def proof_source_of(builder: ChainBuilder) -> Callable[[], contextlib.AbstractContextManager[ChainSource]]:
    """A node's `proof_source` over a built chain: a store connection of the proof thread's own."""

    @contextlib.contextmanager
    def proof_source() -> Iterator[ChainSource]:
        storage = Storage(builder.storage.path)
        try:
            yield ChainSource(builder.genesis, storage, builder.dag, builder.headers.get)
        finally:
            storage.close()

    return proof_source


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

"""The route table's types: what each route is, takes and answers, in one place, so that the
server registers exactly the routes `/openapi.json` describes, and the document describes
exactly the types the routes answer with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    """A path or query parameter; `schema` is its JSON Schema. A repeated query parameter
    (`?x=a&x=b`) is an array of strings."""

    name: str
    where: Literal["path", "query"]
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False
    repeated: bool = False


@dataclass(frozen=True)
class Media:
    """An answer that is not JSON (HTML, a file, text, an event stream, SVG)."""

    media_type: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Route:
    """One route: `answers` maps each success status to the type of its JSON body (a Struct,
    `dict[str, Any]` for a body the route passes on from elsewhere, or `Media`); `also` are
    other media types the first success may come in; `errors` are the codes it may fail with
    (their statuses come from `status.py`)."""

    method: Literal["GET", "POST"]
    path: str
    handler: Handler
    summary: str
    answers: Mapping[int, Any]
    errors: tuple[str, ...] = ()
    description: str = ""
    params: tuple[Param, ...] = ()
    request: Any = None
    msgpack_body: bool = False
    also: tuple[Media, ...] = ()


def path_param(name: str, schema: Mapping[str, Any], description: str = "") -> Param:
    return Param(name, "path", schema, description, required=True)


def query(name: str, schema: Mapping[str, Any], description: str = "", *, required: bool = False) -> Param:
    return Param(name, "query", schema, description, required=required)


def int_query(name: str, low: int, high: int | None = None, description: str = "") -> Param:
    schema: dict[str, Any] = {"type": "integer", "minimum": low}
    if high is not None:
        schema["maximum"] = high
    return Param(name, "query", schema, description)


def limit_query(high: int = 1000) -> Param:
    return int_query("limit", 1, high)


ENTRY_ID = path_param("entry_id", {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "entry id, hex")
ADDRESS = path_param("address", {"type": "string", "pattern": "^bl1[a-z2-7]{58}$"}, "account address (bl1...)")

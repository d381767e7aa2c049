"""The OpenAPI 3.1 document the node serves at /openapi.json, generated from the route table
(`routes/`) and the types the routes answer with (`responses.py`, the proof documents), so it
cannot drift from what the node serves: msgspec writes the JSON Schema of every type."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from .responses import Error
from .spec import Media, Param, Route
from .status import error_status

REF_TEMPLATE = "#/components/schemas/{name}"


def _parameter(param: Param) -> dict[str, Any]:
    schema = {"type": "array", "items": {"type": "string"}} if param.repeated else dict(param.schema)
    out: dict[str, Any] = {"name": param.name, "in": param.where, "schema": schema}
    if param.required or param.where == "path":
        out["required"] = True
    if param.description:
        out["description"] = param.description
    if param.repeated:
        out["style"], out["explode"] = "form", True
    return out


def _types(routes: Iterable[Route]) -> list[Any]:
    """Every type the routes take or answer with (Media aside), once, in route order."""
    found: list[Any] = [Error]
    for route in routes:
        for answer in (route.request, *route.answers.values()):
            if answer is not None and not isinstance(answer, Media) and answer not in found:
                found.append(answer)
    return found


def _first_line(doc: str | None) -> str:
    return " ".join((doc or "").split("\n\n")[0].split())


def _operation(route: Route, schema_of: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": route.summary}
    if route.description:
        operation["description"] = route.description
    if route.params:
        operation["parameters"] = [_parameter(p) for p in route.params]
    if route.request is not None:
        content: dict[str, Any] = {"application/json": {"schema": schema_of[route.request]}}
        if route.msgpack_body:
            content["application/msgpack"] = {"schema": {"type": "string", "format": "binary"}}
        operation["requestBody"] = {"required": True, "content": content}
    responses: dict[str, Any] = {}
    for status, answer in route.answers.items():
        if isinstance(answer, Media):
            responses[str(status)] = {"description": answer.description,
                                      "content": {answer.media_type: {"schema": dict(answer.schema)}}}
            continue
        media = {"application/json": {"schema": schema_of[answer]}}
        for other in route.also if status == min(route.answers) else ():
            media[other.media_type] = {"schema": dict(other.schema)}
        responses[str(status)] = {"description": _first_line(getattr(answer, "__doc__", None)) or "the answer",
                                  "content": media}
    by_status: dict[int, list[str]] = {}
    for code in route.errors:
        by_status.setdefault(error_status(code), []).append(code)
    for status, codes in sorted(by_status.items()):
        responses[str(status)] = {"description": "an error; code " + ", ".join(f"`{c}`" for c in codes),
                                  "content": {"application/json": {"schema": schema_of[Error]}}}
    operation["responses"] = responses
    return operation


def generate(routes: Sequence[Route], version: str, operation_kinds: Sequence[str]) -> dict[str, Any]:
    types = _types(routes)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    schema_of = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schema_of)
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "bilayer node API",
            "version": version,
            "description": "Layer 1 (permissionless DAG ledger) and layer 2 (checkpoints finalized by BFT"
                           " validators) of a bilayer node. Every failure is an `Error` with a stable code;"
                           " statuses: 4xx for bad input, 5xx only for real faults. Operation kinds: "
                           + ", ".join(operation_kinds),
        },
        "components": {"schemas": components},
        "paths": paths,
    }
    plain: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(document))  # a default may be a tuple
    return plain


def openapi_document(version: str, operation_kinds: Sequence[str]) -> dict[str, Any]:
    """The document of every route a node serves (the node itself serves `generate` over the
    table its application registered, which is this one)."""
    from .routes import ROUTES  # imported here: the routes import `generate` to serve the document

    return generate(ROUTES, version, operation_kinds)

"""The OpenAPI 3.1 document the node serves at /openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _json(_ERROR, "error with a stable code") for s in statuses}


def _id_param() -> dict[str, Any]:
    return {
        "name": "entry_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "description": "entry id, hex",
    }


def openapi_document(version: str, operation_kinds: list[str]) -> dict[str, Any]:
    signed_entry = {
        "type": "object",
        "required": ["header", "signature", "payload"],
        "properties": {
            "header": {
                "type": "string",
                "format": "byte",
                "description": "canonical msgpack of the entry header (base64)",
            },
            "signature": {"type": "string", "format": "byte", "description": "Ed25519 signature (base64)"},
            "payload": {"type": "string", "format": "byte", "description": "payload bytes (base64)"},
        },
    }
    submit_result = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["stored", "known", "orphan"]},
            "missing": {"type": "array", "items": {"type": "string"}},
        },
    }
    entry_body = {
        "required": True,
        "content": {
            "application/json": {"schema": signed_entry},
            "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bilayer node API",
            "version": version,
            "description": "Layer 1 (permissionless DAG ledger) of a bilayer node. Operation kinds: "
            + ", ".join(operation_kinds),
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "details": {"type": "object"},
                            },
                        }
                    },
                },
                "SignedEntry": signed_entry,
                "SubmitResult": submit_result,
            }
        },
        "paths": {
            "/v1/status": {
                "get": {"summary": "Node and chain status", "responses": {"200": _json({"type": "object"}, "status")}}
            },
            "/v1/entries": {
                "post": {
                    "summary": "Submit one signed entry",
                    "description": "201 stored durably, 200 already known, 202 held while parents are fetched.",
                    "requestBody": entry_body,
                    "responses": {
                        "201": _json(submit_result, "stored"),
                        "200": _json(submit_result, "already known"),
                        "202": _json(submit_result, "held as an orphan"),
                        **_errors(400, 409, 413, 415, 429, 503),
                    },
                },
                "get": {
                    "summary": "List entries in this node's arrival order",
                    "parameters": [
                        {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    ],
                    "responses": {"200": _json({"type": "object"}, "a page of entries"), **_errors(400)},
                },
            },
            "/v1/entries/batch": {
                "post": {
                    "summary": "Submit up to 5000 entries; one result (or error) per entry, in order",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"entries": {"type": "array", "items": signed_entry}},
                                }
                            },
                            "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "responses": {"200": _json({"type": "object"}, "results"), **_errors(400, 413, 415, 429)},
                }
            },
            "/v1/entries/{entry_id}": {
                "get": {
                    "summary": "One entry with its header fields, signature and payload",
                    "parameters": [_id_param()],
                    "responses": {
                        "200": _json({"type": "object"}, "the entry"),
                        "202": _json({"type": "object"}, "held as an orphan"),
                        **_errors(400, 404),
                    },
                }
            },
            "/v1/entries/{entry_id}/payload": {
                "get": {
                    "summary": "The raw payload bytes (served as an attachment)",
                    "parameters": [_id_param()],
                    "responses": {"200": {"description": "payload bytes"}, **_errors(400, 404)},
                }
            },
            "/v1/authors/{address}": {
                "get": {
                    "summary": "An author's next sequence number and latest entry",
                    "parameters": [{"name": "address", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": _json({"type": "object"}, "author"), **_errors(400)},
                }
            },
            "/v1/tips": {
                "get": {
                    "summary": "Entries with no children yet",
                    "responses": {"200": _json({"type": "object"}, "tips")},
                }
            },
            "/v1/evidence": {
                "get": {
                    "summary": "Forks: two signed entries by one author with one sequence number",
                    "responses": {"200": _json({"type": "object"}, "evidence")},
                }
            },
            "/v1/peers": {
                "get": {"summary": "Authenticated peer links", "responses": {"200": _json({"type": "object"}, "peers")}}
            },
            "/metrics": {
                "get": {"summary": "Prometheus metrics (text format)", "responses": {"200": {"description": "metrics"}}}
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
        },
    }

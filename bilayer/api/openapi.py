"""The OpenAPI 3.1 document the node serves at /openapi.json."""

from __future__ import annotations

from typing import Any

from ..execution.application import installed_applications
from ..execution.governance.actions import action_specs

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _json(_ERROR, "error with a stable code") for s in statuses}


_B64 = {"type": "string", "contentEncoding": "base64"}
_FINALIZED = {"type": "object", "required": ["checkpoint", "certificate"],
              "description": "a checkpoint and its commit certificate (precommits of more than 2/3 of the power)"}
_VALIDATOR_CHAIN = {
    "type": "object", "required": ["changes", "count"],
    "description": "validator set changes 2..n, each its `Vh` record with a state proof against the root signed by"
                   " the checkpoint after its execution, and the change count in the anchor's state; `anchor`"
                   " (optional) is a certified checkpoint later than the one the proof rests on, whose state"
                   " the count is proven in",
}
_ENTRY_PROOF = {
    "type": "object",
    "required": ["type", "format", "chain_id", "genesis_root", "entry", "result", "ordered_in", "certified_by",
                 "validators"],
    "properties": {
        "type": {"type": "string", "enum": ["entry"]},
        "format": {"type": "integer"},
        "chain_id": {"type": "string"},
        "genesis_root": _B64,
        "entry": {"type": "object", "required": ["header", "signature"],
                  "properties": {"header": _B64, "signature": _B64, "payload": {"oneOf": [_B64, {"type": "null"}]},
                                 "tombstone": {"type": ["object", "null"]}}},
        "result": {"type": "object", "required": ["outcome", "code", "cause", "index", "size", "path"]},
        "ordered_in": _FINALIZED,
        "certified_by": _FINALIZED,
        "validators": _VALIDATOR_CHAIN,
    },
}
_ACCOUNT_PROOF = {
    "type": "object",
    "required": ["type", "format", "chain_id", "genesis_root", "address", "height", "items", "certified_by",
                 "validators"],
    "properties": {
        "type": {"type": "string", "enum": ["account"]},
        "address": {"type": "string"},
        "height": {"type": "integer", "description": "the state after this height"},
        "items": {"type": "array", "items": {"type": "object"}, "description": "state proofs of the account's keys"},
        "certified_by": _FINALIZED,
        "validators": _VALIDATOR_CHAIN,
    },
}
_EVIDENCE_PACKAGE = {
    "type": "object",
    "required": ["manifest", "files"],
    "properties": {
        "manifest": {"type": "object", "required": ["format", "chain_id", "genesis_root", "query", "height", "entries",
                                                    "acts", "unproven", "files"]},
        "files": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "file name -> exact file text (genesis.json, entries/ID.json, acts/ID.json)"},
    },
}


def _id_param() -> dict[str, Any]:
    return {
        "name": "entry_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "description": "entry id, hex",
    }


def _address_param() -> dict[str, Any]:
    return {
        "name": "address",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^bl1[a-z2-7]{58}$"},
        "description": "account address (bl1...)",
    }


def _hex(description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": "^[0-9a-f]*$", "description": description}


STREAM_DESCRIPTION = (
    "`hello` first (chain_id, height, entries), then `entry` when an entry is accepted into the DAG (id, author,"
    " seq, kind, parents, time_ms) and `checkpoint` when one is applied (height, id, time_ms, entry_count,"
    " entries: at most 5000 ids, counts by outcome, rejected and held ids, state_root); `heartbeat` every 15 s"
    " when idle. A client more than 2048 events behind gets `dropped` and is disconnected."
)
_TRACE_NODE = {
    "type": "object",
    "required": ["id", "depth", "traced", "asset"],
    "properties": {
        "id": {"type": "string", "description": "an address, or `genesis` (the source of genesis allocations)"},
        "depth": {"type": "integer", "description": "fewest hops from the start"},
        "traced": {"type": "integer", "description": "traced amount that reached it (the start: what it started"
                                                     " with)"},
        "asset": {"type": "string"},
    },
}
_TRACE_EDGE = {
    "type": "object",
    "required": ["entry", "from", "to", "asset", "amount", "traced", "height", "time_ms", "hop"],
    "properties": {
        "entry": {"type": "string", "description": "the entry that moved the funds (genesis: the genesis root)"},
        "kind": {"type": "string", "enum": ["genesis", "transfer", "release", "refund", "recovery"]},
        "from": {"type": "string"},
        "to": {"type": "string"},
        "asset": {"type": "string"},
        "amount": {"type": "integer", "description": "all the flow moved"},
        "traced": {"type": "integer", "description": "the traced part of it"},
        "height": {"type": "integer", "description": "the checkpoint at which the funds reached `to`"},
        "time_ms": {"type": "integer"},
        "hop": {"type": "integer"},
    },
}


def _query_params(doc: str | None) -> str:
    """The parameters a query's docstring names first (`?id=`, `?key=` ...), or nothing."""
    text = " ".join((doc or "").split())
    return text[1:text.index("`", 1)] if text.startswith("`?") and "`" in text[1:] else ""


def _query_summary(doc: str | None) -> str:
    """A query's docstring without the parameters it starts with."""
    text = " ".join((doc or "").split())
    if text.startswith("`?") and "`" in text[1:]:
        text = text[text.index("`", 1) + 1:].lstrip(" :")
    return text


def openapi_document(version: str, operation_kinds: list[str]) -> dict[str, Any]:
    audit_entries = {
        "type": "object",
        "required": ["height", "entries", "next"],
        "properties": {
            "height": {"type": "integer", "description": "the last checkpoint indexed"},
            "entries": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "height": {"type": "integer"}, "position": {"type": "integer"},
                "time_ms": {"type": "integer", "description": "the checkpoint's time"},
                "author": {"type": "string"}, "kind": {"type": "string"},
                "counterparties": {"type": "array", "items": {"type": "string"}},
                "asset": {"type": ["string", "null"]}, "amount": {"type": ["integer", "null"]},
                "outcome": {"type": "string", "enum": ["FINAL", "REJECTED", "HELD"]},
                "reason": {"type": ["string", "null"]}, "cause": {"type": ["string", "null"]}}}},
            "next": {"type": ["string", "null"], "description": "`before` of the next page; null on the last"},
        },
    }
    trace = {
        "type": "object",
        "required": ["start", "direction", "hops", "asset", "method", "height", "nodes", "edges", "truncated"],
        "properties": {
            "start": {"type": "string"},
            "direction": {"type": "string", "enum": ["forward", "backward"]},
            "hops": {"type": "integer"},
            "asset": {"type": ["string", "null"]},
            "method": {"type": "string", "enum": ["fifo"]},
            "height": {"type": "integer", "description": "the last checkpoint indexed"},
            "dust": {"type": "integer", "description": "smallest traced amount followed"},
            "nodes": {"type": "array", "items": _TRACE_NODE},
            "edges": {"type": "array", "items": _TRACE_EDGE},
            "truncated": {"type": "boolean", "description": "a bound (edges, nodes, rows read) cut the trace"},
        },
    }
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
    draft_request = {
        "type": "object",
        "required": ["author", "kind", "op"],
        "properties": {
            "author": {"type": "string", "description": "the author's address, or public key in hex"},
            "kind": {"type": "string", "enum": ["transfer", "data", "gov.propose", "gov.vote", "gov.execute",
                                                "gov.cancel", "reg.review", "reg.freeze"]},
            "op": {"type": "object", "description": "the operation's fields: transfer {to, amount, asset}; data"
                   " {media_type}; gov.vote {proposal, choice}; gov.execute and gov.cancel {proposal}; reg.review"
                   " {entry, decision, reason}; reg.freeze {account, reason, legal_ref}; gov.propose {action,"
                   " reason, legal_ref, and the action's options as the CLI names them: target, service, rule_id,"
                   " above, asset, counterparties, outcome, review_ms, ...}"},
            "payload": {"type": "string", "description": "text carried as the payload (memo or data), UTF-8"},
        },
    }
    draft_view = {
        "type": "object",
        "required": ["id", "header", "author", "seq", "parents", "kind", "op", "payload_hash", "pow_bits"],
        "properties": {
            "id": _hex("SHA-256 of the header bytes"),
            "header": _hex("the canonical header bytes, stamped"),
            "author": {"type": "string"},
            "chain": {"type": "string"},
            "seq": {"type": "integer", "minimum": 0},
            "parents": {"type": "array", "items": {"type": "string"}},
            "kind": {"type": "string"},
            "op": {"type": "object"},
            "payload_hash": _hex("SHA-256 of the payload"),
            "payload_size": {"type": "integer", "minimum": 0},
            "pow_bits": {"type": "integer", "minimum": 0},
            "time_ms": {"type": "integer"},
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
    entry_view = {
        "type": "object",
        "description": "An entry with its lifecycle: PENDING while stored but not yet ordered by a checkpoint,"
        " then FINAL (executed) or REJECTED (ordered, refused by the state machine).",
        "required": ["id", "status", "position", "received_ms"],
        "properties": {
            "id": _hex("entry id"),
            "chain": {"type": "string"},
            "author": {"type": "string", "description": "author address"},
            "seq": {"type": "integer", "minimum": 0},
            "parents": {"type": "array", "items": {"type": "string"}},
            "time_ms": {"type": "integer"},
            "kind": {"type": "string", "enum": operation_kinds},
            "op": {"type": "object", "description": "the decoded operation"},
            "payload_hash": _hex("SHA-256 of the payload"),
            "payload_size": {"type": "integer", "minimum": 0},
            "nonce": _hex("proof-of-work nonce"),
            "signature": _hex("Ed25519 signature"),
            "header_bytes": {"type": "string", "format": "byte", "description": "canonical header (base64)"},
            "payload": {"type": "string", "format": "byte", "description": "payload bytes (base64)"},
            "status": {"type": "string", "enum": ["PENDING", "FINAL", "REJECTED", "HELD"]},
            "tombstone": {
                "type": "object", "description": "present instead of `payload` when a decision deleted the payload",
                "properties": {"decision": {"type": "string", "description": "proposal:N"},
                               "reason_code": {"type": "string"}, "time_ms": {"type": "integer"},
                               "height": {"type": "integer"}},
            },
            "payload_refused": {"type": "string", "description": "present instead of `payload` when a content rule"
                                " in force blocks it (the entry is not yet ordered)"},
            "review": {"type": "object", "description": "HELD entries: the review record (status held, released,"
                       " rejected or expired; deadline; the regulator's decision entry)"},
            "height": {"type": "integer", "minimum": 1, "description": "checkpoint that ordered it (not PENDING)"},
            "index": {"type": "integer", "minimum": 0, "description": "position in that checkpoint's order"},
            "reason": {
                "type": ["string", "null"],
                "description": "why it was REJECTED (insufficient_funds, sequence_conflict, ...); null when FINAL",
            },
            "position": {"type": "integer", "description": "this node's arrival order"},
            "received_ms": {"type": "integer"},
        },
    }
    checkpoint = {
        "type": "object",
        "description": "A finalized checkpoint. state_root/results_root are the roots after executing it;"
        " prev_state_root/prev_results_root are the roots after the previous height, which the validators signed.",
        "required": ["height", "id", "round", "prev_id", "proposer", "frontier", "time_ms", "state_root",
                     "results_root", "entry_count", "certificate", "finalized"],
        "properties": {
            "height": {"type": "integer", "minimum": 1},
            "id": _hex("checkpoint id"),
            "round": {"type": "integer", "minimum": 0, "description": "consensus round that decided it"},
            "prev_id": _hex("previous checkpoint id (the genesis root at height 1)"),
            "proposer": _hex("proposer public key"),
            "frontier": {"type": "array", "items": {"type": "string"}, "description": "covered DAG tips, sorted"},
            "prev_state_root": _hex("state root after the previous height"),
            "prev_results_root": _hex("results root of the previous height"),
            "time_ms": {"type": "integer"},
            "state_root": _hex("state root after this checkpoint"),
            "results_root": _hex("Merkle root of this checkpoint's results"),
            "entry_count": {"type": "integer", "minimum": 0},
            "certificate": {
                "type": "object",
                "description": "precommits of more than two thirds of the voting power",
                "properties": {
                    "height": {"type": "integer"},
                    "round": {"type": "integer"},
                    "value_id": _hex("the checkpoint id"),
                    "signatures": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"validator": _hex("public key"), "signature": _hex("Ed25519")},
                        },
                    },
                },
            },
            "finalized": {
                "type": "string",
                "format": "byte",
                "description": "canonical msgpack of the finalized checkpoint (base64), to verify offline",
            },
            "entries": {
                "type": "array",
                "description": "only with entries=1: every entry it ordered, in execution order",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "outcome": {"type": "string", "enum": ["FINAL", "REJECTED"]},
                        "reason": {"type": ["string", "null"]},
                    },
                },
            },
        },
    }
    account = {
        "type": "object",
        "required": ["address", "height", "balances", "next_seq", "last_entry", "state_root"],
        "properties": {
            "address": {"type": "string"},
            "height": {"type": "integer", "minimum": 0, "description": "the finalized height this state is at"},
            "balances": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "by asset"},
            "next_seq": {"type": "integer", "minimum": 0, "description": "next sequence number the chain executes"},
            "last_entry": {"type": ["string", "null"], "description": "the author's last ordered entry"},
            "state_root": _hex("state root at that height"),
        },
    }
    validator_set = {
        "validators": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "public_key": _hex("Ed25519 public key"),
                    "address": {"type": "string"},
                    "power": {"type": "integer", "minimum": 1},
                },
            },
        },
        "total_power": {"type": "integer", "minimum": 0},
        "max_faulty": {"type": "integer", "minimum": 0},
        "quorum_power": {"type": "integer", "description": "absent when the chain has no validators"},
    }
    validator_change = {
        "type": "object",
        "description": "One change of the validator set: the set, the first height it governs (two after the"
                       " checkpoint that executed it) and the proposals that decided it (none: genesis).",
        "required": ["change", "height", "executed_height", "proposals", "validators", "total_power"],
        "properties": {
            "change": {"type": "integer", "minimum": 1, "description": "1 is the genesis set"},
            "height": {"type": "integer", "minimum": 1, "description": "first height this set governs"},
            "executed_height": {"type": ["integer", "null"], "description": "null for the genesis set"},
            "proposals": {"type": "array", "items": {"type": "integer"}},
            **validator_set,
        },
    }
    validators = {
        "type": "object",
        "required": ["validators", "total_power", "max_faulty"],
        "properties": {
            "height": {"type": "integer", "minimum": 1, "description": "the height this set votes on"},
            "since_height": {"type": "integer", "minimum": 1, "description": "the height the set took effect"},
            "proposals": {"type": "array", "items": {"type": "integer"},
                          "description": "the proposals that made this set (none: genesis)"},
            "next": {"$ref": "#/components/schemas/ValidatorChange",
                     "description": "a change already executed that takes effect at a later height"},
            **validator_set,
        },
    }
    equivocation = {
        "type": "object",
        "description": "A validator signed two different proposals or votes for one height, round and step.",
        "properties": {
            "kind": {"type": "string", "enum": ["duplicate_vote", "duplicate_proposal"]},
            "validator": _hex("validator public key"),
            "height": {"type": "integer"},
            "round": {"type": "integer"},
            "detected_ms": {"type": "integer"},
            "first": {"type": "string", "format": "byte", "description": "first signed message, msgpack (base64)"},
            "second": {"type": "string", "format": "byte", "description": "second signed message, msgpack (base64)"},
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
            "description": "Layer 1 (permissionless DAG ledger) and layer 2 (checkpoints finalized by BFT"
            " validators) of a bilayer node. Operation kinds: "
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
                "Entry": entry_view,
                "Checkpoint": checkpoint,
                "Account": account,
                "Validators": validators,
                "ValidatorChange": validator_change,
                "Equivocation": equivocation,
                "EntryProof": _ENTRY_PROOF,
                "AccountProof": _ACCOUNT_PROOF,
                "EvidencePackage": _EVIDENCE_PACKAGE,
                "AuditEntries": audit_entries,
                "Trace": trace,
            }
        },
        "paths": {
            "/": {
                "get": {"summary": "The web console (HTML; a single page whose routes are in the URL fragment)",
                        "responses": {"200": {"description": "HTML"}}}
            },
            "/static/{filename}": {
                "get": {
                    "summary": "The console's scripts (JavaScript modules) and style sheet",
                    "parameters": [{"name": "filename", "in": "path", "required": True,
                                    "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*[.](js|css)$"}}],
                    "responses": {"200": {"description": "the file"}, **_errors(404)},
                }
            },
            "/v1/stream": {
                "get": {
                    "summary": "Live events as server-sent events (text/event-stream)",
                    "description": STREAM_DESCRIPTION,
                    "responses": {"200": {"description": "an event stream",
                                          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                                  **_errors(503)},
                }
            },
            "/v1/entries/draft": {
                "post": {
                    "summary": "The header bytes to sign for an operation given as JSON (the key stays with"
                               " the client)",
                    "description": "The node picks the author's next seq, parents from its tips, hashes the payload"
                                   " and stamps the proof of work. The client checks that `id` is SHA-256 of `header`"
                                   " and that the decoded header is what it asked for, signs"
                                   " `bilayer/entry/v1` || id with Ed25519 and submits to POST /v1/entries.",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": draft_request}}},
                    "responses": {"200": _json(draft_view, "the draft"), **_errors(400, 413, 415, 429)},
                }
            },
            "/v1/status": {
                "get": {"summary": "Node and chain status",
                        "description": "`catching_up` is true while a peer reports checkpoints two or more heights"
                                       " ahead of this node.",
                        "responses": {"200": _json({"type": "object"}, "status")}}
            },
            "/v1/entries": {
                "post": {
                    "summary": "Submit one signed entry",
                    "description": "201 stored durably, 200 already known, 202 held while parents are fetched."
                                   " A node that is behind refuses it early: 503 `overloaded` (or 429"
                                   " `rate_limited`) with `Retry-After`; send the same entry again after that wait.",
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
                    "description": "A node that is behind refuses the whole batch before any work on it: 503"
                                   " `overloaded` (or 429 `rate_limited`) with `Retry-After`; send it again after"
                                   " that wait.",
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
                    "responses": {"200": _json({"type": "object"}, "results"), **_errors(400, 413, 415, 429, 503)},
                }
            },
            "/v1/entries/{entry_id}": {
                "get": {
                    "summary": "One entry with its header fields, signature, payload and finality status",
                    "parameters": [
                        _id_param(),
                        {
                            "name": "wait",
                            "in": "query",
                            "schema": {"type": "number", "minimum": 0, "maximum": 30},
                            "description": "seconds to wait, at most, for the entry to be held and ordered"
                            " (FINAL or REJECTED) before answering with its current status; 503 when too many"
                            " clients are waiting",
                        },
                    ],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Entry"}, "the entry"),
                        "202": _json(
                            {
                                "type": "object",
                                "properties": {"id": {"type": "string"}, "status": {"const": "orphan"}},
                            },
                            "held as an orphan",
                        ),
                        **_errors(400, 404, 503),
                    },
                }
            },
            "/v1/entries/{entry_id}/payload": {
                "get": {
                    "summary": "The raw payload bytes (served as an attachment)",
                    "description": "410 `payload_withheld` (with the tombstone in the error's details) when a"
                                   " redaction or a content rule deleted the payload; 451 `content_blocked` when a"
                                   " content rule in force blocks an entry not yet ordered.",
                    "parameters": [_id_param()],
                    "responses": {"200": {"description": "payload bytes"}, **_errors(400, 404, 410, 451)},
                }
            },
            "/v1/authors/{address}": {
                "get": {
                    "summary": "An author's next sequence number and latest entry",
                    "parameters": [_address_param()],
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
                    "summary": "Misbehaviour: author forks (layer 1) and validator equivocations (layer 2)",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["forks", "equivocations"],
                                "properties": {
                                    "forks": {
                                        "type": "array",
                                        "description": "two signed entries by one author with one sequence number",
                                        "items": {"type": "object"},
                                    },
                                    "equivocations": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Equivocation"},
                                    },
                                },
                            },
                            "evidence",
                        )
                    },
                }
            },
            "/v1/checkpoints/{height}": {
                "get": {
                    "summary": "A finalized checkpoint with its commit certificate",
                    "description": "404 when there is no checkpoint at that height yet, or when the chain has no"
                    " validators (nothing is finalized).",
                    "parameters": [
                        {
                            "name": "height",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": ["latest"]}]
                            },
                            "description": "a height (from 1) or 'latest'",
                        },
                        {
                            "name": "entries",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["0", "1", "true", "yes"], "default": "0"},
                            "description": "1 (or true, yes) to list the entries it ordered with their outcomes",
                        },
                    ],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Checkpoint"}, "the checkpoint"),
                        **_errors(400, 404),
                    },
                }
            },
            "/v1/accounts/{address}": {
                "get": {
                    "summary": "An account's finalized balances and author chain, at the latest checkpoint",
                    "description": "404 when the chain has no validators (there is no finalized state).",
                    "parameters": [_address_param()],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Account"}, "account"),
                        **_errors(400, 404),
                    },
                }
            },
            "/v1/validators": {
                "get": {
                    "summary": "The validator set: keys, voting power, quorum, and the height it took effect",
                    "description": "The set that votes on the next height, or the one that governed `height`."
                                   " 404 for a height whose set is not decided yet (sets are known two heights"
                                   " ahead).",
                    "parameters": [{"name": "height", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
                    "responses": {"200": _json({"$ref": "#/components/schemas/Validators"}, "validators"),
                                  **_errors(400, 404)},
                }
            },
            "/v1/validators/history": {
                "get": {
                    "summary": "Every validator set change, oldest first, with its height and the proposals behind it",
                    "parameters": [
                        {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0},
                         "description": "list the changes numbered after this one"},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    ],
                    "responses": {
                        "200": _json({
                            "type": "object", "required": ["height", "changes"],
                            "properties": {
                                "height": {"type": "integer", "minimum": 0},
                                "changes": {"type": "array",
                                            "items": {"$ref": "#/components/schemas/ValidatorChange"}},
                            },
                        }, "the changes"),
                        **_errors(400, 404),
                    },
                }
            },
            "/v1/gov/proposals": {
                "get": {
                    "summary": "Council proposals, newest first, with tallies and status as of now",
                    "parameters": [{"name": "status", "in": "query", "schema": {
                        "type": "string", "enum": ["voting", "passed", "rejected", "executed", "cancelled"]}}],
                    "responses": {"200": _json({"type": "object"}, "proposals"), **_errors(400, 404)},
                }
            },
            "/v1/gov/proposals/{number}": {
                "get": {
                    "summary": "One proposal: action, reason, legal reference, tally, votes, timelock",
                    "parameters": [{"name": "number", "in": "path", "required": True,
                                    "schema": {"type": "integer", "minimum": 1}}],
                    "responses": {"200": _json({"type": "object"}, "the proposal"), **_errors(400, 404)},
                }
            },
            "/v1/gov/council": {
                "get": {
                    "summary": "Council members (address, genesis name or null, weight), and the rules decisions"
                               " follow",
                    "responses": {"200": _json({"type": "object"}, "the council"), **_errors(404)},
                }
            },
            "/v1/compliance": {
                "get": {
                    "summary": "Freezes, bans, suspended services, application operators and the services they"
                               " paused, identity providers, banned identities, identity rules, interception and"
                               " content rules, the review queue, redactions and emergencies, each with the"
                               " decision behind it",
                    "responses": {"200": _json({"type": "object"}, "what is enforced"), **_errors(404)},
                }
            },
            "/v1/compliance/review": {
                "get": {
                    "summary": "Transfers held for review by an interception rule, soonest deadline first; a"
                               " regulator decides each with a `reg.review` entry",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    ],
                    "responses": {"200": _json({"type": "object"}, "the review queue"), **_errors(400, 404)},
                }
            },
            "/v1/apps": {
                "get": {
                    "summary": "The installed applications: name, summary, operation kinds, read queries and"
                               " console page (a script module the web console loads for `#/<name>`)",
                    "responses": {"200": _json({"type": "object", "required": ["applications"], "properties": {
                        "applications": {"type": "array", "items": {
                            "type": "object", "required": ["name", "summary", "kinds", "queries", "console"],
                            "properties": {
                                "name": {"type": "string"}, "summary": {"type": "string"},
                                "kinds": {"type": "array", "items": {"type": "string"}},
                                "queries": {"type": "array", "items": {"type": "string"}},
                                "console": {"type": ["string", "null"]},
                            }}}}}, "the installed applications")},
                }
            },
            "/v1/apps/{app}/{query}": {
                "get": {
                    "summary": "An installed application's read query, as of the latest checkpoint: "
                               + "; ".join(f"`{app.name}` ({app.summary}): "
                                           + ", ".join(f"`{name}`" for name in sorted(app.queries))
                                           for app in installed_applications()),
                    "description": "\n".join(
                        f"* `GET /v1/apps/{app.name}/{name}{_query_params(query.__doc__)}`:"
                        f" {_query_summary(query.__doc__)}"
                        for app in installed_applications() for name, query in sorted(app.queries.items())),
                    "parameters": [
                        {"name": "app", "in": "path", "required": True,
                         "schema": {"type": "string", "enum": [app.name for app in installed_applications()]}},
                        {"name": "query", "in": "path", "required": True, "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _json({"type": "object"}, "the query's answer"), **_errors(400, 404)},
                }
            },
            "/v1/params": {
                "get": {
                    "summary": "The chain parameters in force (changed by proposal), and the loosest the chain ever"
                               " had, which peers' older entries are checked against",
                    "responses": {"200": _json({"type": "object"}, "chain parameters"), **_errors(404)},
                }
            },
            "/v1/gov/dry-run": {
                "get": {
                    "summary": "Which already-final entries a proposed action would have refused (nothing is"
                               " written); identities and other rules are taken as they are now",
                    "parameters": [
                        {"name": "action", "in": "query", "required": True,
                         "description": "; ".join(f"`{s.name}`: {s.summary}" for s in action_specs()),
                         "schema": {"type": "string", "enum": [s.name for s in action_specs()]}},
                        {"name": "target", "in": "query", "schema": {"type": "string"}},
                        {"name": "service", "in": "query", "schema": {"type": "string"}},
                        {"name": "identity", "in": "query", "schema": {"type": "string"}},
                        {"name": "min_level", "in": "query", "schema": {"type": "string"}},
                        {"name": "above", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {"name": "emergency", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                        *({"name": name, "in": "query", "schema": {"type": "string"}} for name in (
                            "rule_id", "asset", "max_level", "outcome", "payload_hash", "keyword", "media_type",
                            "reason_code", "to")),
                        *({"name": name, "in": "query", "schema": {"type": "integer", "minimum": 0}}
                          for name in ("max_size", "review_ms", "weight")),
                        *({"name": name, "in": "query", "schema": {"type": "array", "items": {"type": "string"}},
                           "style": "form", "explode": True} for name in ("counterparties", "entries", "assets")),
                        {"name": "param", "in": "query", "description": "chain-params: NAME=VALUE, repeatable",
                         "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": True},
                        {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    ],
                    "responses": {"200": _json({"type": "object"}, "what it would have refused"),
                                  **_errors(400, 404)},
                }
            },
            "/v1/audit/actions": {
                "get": {
                    "summary": "The management audit log: governance, regulator and identity entries, newest first,"
                               " with outcomes and causes; lapsed emergencies listed as derived events",
                    "parameters": [
                        {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    ],
                    "responses": {"200": _json({"type": "object"}, "the log"), **_errors(400, 404)},
                }
            },
            "/v1/audit/proof/{entry_id}": {
                "get": {
                    "summary": "A self-contained proof of an entry's outcome that a light client checks offline"
                               " against genesis.json alone (`bilayer audit verify`)",
                    "description": "The signed entry (payload, or its tombstone), its result with the RFC 6962 audit"
                                   " path to the results root of its height h, checkpoint h and the certified"
                                   " checkpoint h+1 that signs that root, and the chain of validator set changes"
                                   " from genesis. 409 not_yet_provable until h+1 is final.",
                    "parameters": [_id_param()],
                    "responses": {"200": _json({"$ref": "#/components/schemas/EntryProof"}, "the proof"),
                                  **_errors(400, 404, 409)},
                }
            },
            "/v1/audit/state-proof/{address}": {
                "get": {
                    "summary": "An account's balances and author head, with state proofs against the latest"
                               " certified state root, its certificate and the validator set chain",
                    "parameters": [
                        _address_param(),
                        {"name": "asset", "in": "query", "schema": {"type": "string", "pattern": "^[A-Z0-9]{1,16}$"},
                         "description": "only this asset's balance"},
                    ],
                    "responses": {"200": _json({"$ref": "#/components/schemas/AccountProof"}, "the proof"),
                                  **_errors(400, 404, 409)},
                }
            },
            "/v1/audit/export": {
                "get": {
                    "summary": "An evidence package for an account and a window of checkpoint times and/or"
                               " heights: every entry"
                               " it authored or received, the management acts behind them, each with its proof,"
                               " and a manifest hashing every file",
                    "parameters": [
                        {"name": "account", "in": "query", "required": True, "schema": {"type": "string"}},
                        {"name": "from", "in": "query", "schema": {"type": "string"},
                         "description": "checkpoint time: ms since the epoch, or an ISO-8601 time (UTC unless"
                                        " stated); at least one bound of the window is required"},
                        {"name": "to", "in": "query", "schema": {"type": "string"},
                         "description": "inclusive; same forms"},
                        {"name": "from_height", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                        {"name": "to_height", "in": "query", "schema": {"type": "integer", "minimum": 1},
                         "description": "inclusive"},
                    ],
                    "responses": {"200": _json({"$ref": "#/components/schemas/EvidencePackage"}, "the package"),
                                  **_errors(400, 404, 413)},
                }
            },
            "/v1/audit/entries": {
                "get": {
                    "summary": "Ordered entries from the audit index, newest first, by author, counterparty, asset,"
                               " operation kind, outcome, reason code, height and checkpoint time; paged with `next`",
                    "parameters": [
                        *({"name": name, "in": "query", "schema": {"type": "string", "pattern": "^bl1[a-z2-7]{58}$"}}
                          for name in ("author", "counterparty")),
                        {"name": "asset", "in": "query", "schema": {"type": "string"}},
                        {"name": "kind", "in": "query", "schema": {"type": "string", "enum": operation_kinds}},
                        {"name": "outcome", "in": "query",
                         "schema": {"type": "string", "enum": ["FINAL", "REJECTED", "HELD"]}},
                        {"name": "code", "in": "query", "schema": {"type": "string"},
                         "description": "reason code, e.g. insufficient_funds"},
                        *({"name": name, "in": "query", "schema": {"type": "integer", "minimum": 0}}
                          for name in ("from_height", "to_height", "from_time", "to_time")),
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                        {"name": "before", "in": "query", "schema": {"type": "string", "pattern": r"^\d+(:-?\d+)?$"},
                         "description": "HEIGHT or HEIGHT:POSITION: only entries ordered before it (the `next` of"
                                        " the previous page)"},
                    ],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/AuditEntries"}, "a page of entries"),
                        **_errors(400, 404),
                    },
                }
            },
            "/v1/audit/trace": {
                "get": {
                    "summary": "Fund tracing, first in first out: where the funds of an address or of one entry"
                               " went (forward) or came from (backward), as a graph in JSON or drawn in SVG",
                    "parameters": [
                        {"name": "start", "in": "query", "required": True, "schema": {"type": "string"},
                         "description": "an address (bl1...) or the id of an entry that moved funds"},
                        {"name": "direction", "in": "query",
                         "schema": {"type": "string", "enum": ["forward", "backward"], "default": "forward"}},
                        {"name": "hops", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3}},
                        {"name": "asset", "in": "query", "schema": {"type": "string"}},
                        {"name": "format", "in": "query",
                         "schema": {"type": "string", "enum": ["json", "svg"], "default": "json"}},
                        {"name": "max_edges", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 2000}},
                        {"name": "dust", "in": "query", "schema": {"type": "integer", "minimum": 0},
                         "description": "smallest traced amount followed; 0: a millionth of the starting amount"},
                    ],
                    "responses": {
                        "200": {"description": "the trace", "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Trace"}},
                            "image/svg+xml": {"schema": {"type": "string"}}}},
                        **_errors(400, 404),
                    },
                }
            },
            "/v1/identities/{address}": {
                "get": {
                    "summary": "The identity attested for an address: id, level, expiry, provider; `identity` is"
                               " null when none is attested",
                    "parameters": [{"name": "address", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": _json({"type": "object"}, "the identity, or identity null"),
                                  **_errors(400)},
                }
            },
            "/v1/peers": {
                "get": {"summary": "Authenticated peer links: node key, advertised address, direction",
                        "responses": {"200": _json({"type": "object"}, "peers")}}
            },
            "/metrics": {
                "get": {"summary": "Prometheus metrics (text format)", "responses": {"200": {"description": "metrics"}}}
            },
            "/health": {
                "get": {
                    "summary": "Liveness: the process answers (a halted or lagging node is alive)",
                    "responses": {"200": _json({"type": "object", "required": ["status"],
                                                "properties": {"status": {"const": "ok"},
                                                               "uptime_s": {"type": "number"}}}, "alive")},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: caught up, linked to peers, not halted, storage working",
                    "description": "503 `not_ready` lists `details.reasons`: `catching_up`, `no_peers`, `isolated`,"
                                   " `halted`, `storage_failed`.",
                    "responses": {"200": _json({"type": "object", "required": ["status"],
                                                "properties": {"status": {"const": "ready"}}}, "ready"),
                                  **_errors(503)},
                }
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
        },
    }

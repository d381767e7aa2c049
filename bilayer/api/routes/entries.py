"""Layer 1 routes: submitting entries, reading them and their payloads, the DAG's tips and
authors, drafts to sign, and the misbehaviour evidence the node holds."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from ... import codec
from ...errors import BadEncoding, BadRequest, BilayerError, ContentRefused, NotFound, PayloadWithheld
from ...execution.governance.review import ReviewQueue
from ...execution.governance.rules import Rules, keywords_in
from ...keys.address import address_from_public_key, public_key_from_address
from ...ledger.entry import EntryHeader, SignedEntry
from ...ledger.operations import Data, decode_operation
from .. import responses as r
from ..context import (
    MAX_LIST,
    NODE,
    check_connection_rate,
    entry_id_param,
    int_query,
    json_response,
    read_body,
)
from ..draft import DraftRequest, make_draft
from ..spec import ADDRESS, ENTRY_ID, Media, Route, limit_query, query
from ..spec import int_query as int_param
from ..views import b64, entry_view, fork_view, held_view

if TYPE_CHECKING:
    from ...node.ingest import SubmitResult
    from ..nodeview import NodeView

MAX_BATCH = 5000
MAX_WAIT_S = 30.0
# A media type safe to echo in a Content-Type header (no CR/LF, no parameters).
_SAFE_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_STATUS_CODE = {"stored": 201, "known": 200, "orphan": 202}


class JsonBatch(msgspec.Struct, forbid_unknown_fields=True):
    """Entries to submit in one request, in order."""

    entries: list[SignedEntry]


def _result_view(result: SubmitResult) -> r.SubmitResult:
    return r.SubmitResult(id=result.id.hex(), status=str(result.status),  # type: ignore[arg-type]
                          missing=[m.hex() for m in result.missing] if result.missing else msgspec.UNSET)


def _batch_view(result: SubmitResult | BilayerError) -> r.BatchResult:
    if isinstance(result, BilayerError):
        return r.BatchResult(error=msgspec.convert(result.to_json()["error"], r.ErrorDetail))
    return r.BatchResult(id=result.id.hex(), status=str(result.status),  # type: ignore[arg-type]
                         missing=[m.hex() for m in result.missing] if result.missing else msgspec.UNSET)


async def post_entry(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body, is_msgpack = await read_body(request)
    check_connection_rate(request, 1)
    node.ingest.admit(1)
    if is_msgpack:
        signed = codec.decode_canonical(body, SignedEntry)
    else:
        try:
            signed = msgspec.json.decode(body, type=SignedEntry)
        except msgspec.MsgspecError as exc:
            raise BadEncoding(f"body is not an entry: {exc}") from None
    result = await node.ingest.submit(signed, f"api:{request.remote}")
    return json_response(_result_view(result), _STATUS_CODE[str(result.status)])


async def post_entries_batch(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body, is_msgpack = await read_body(request)
    try:
        if is_msgpack:
            items = msgspec.msgpack.decode(body, type=list[SignedEntry])
        else:
            items = msgspec.json.decode(body, type=JsonBatch).entries
    except msgspec.MsgspecError as exc:
        raise BadEncoding(f"body is not a list of entries: {exc}") from None
    if len(items) > MAX_BATCH:
        raise BadRequest(f"at most {MAX_BATCH} entries per batch")
    check_connection_rate(request, len(items))
    node.ingest.admit(len(items))
    results = await node.ingest.submit_many(items, f"api:{request.remote}")
    return json_response(r.BatchResults(results=[_batch_view(x) for x in results]))


async def get_entry(request: web.Request) -> web.Response:
    node = request.app[NODE]
    entry_id = entry_id_param(request)
    wait_text = request.query.get("wait")
    if wait_text is not None:
        try:
            wait = float(wait_text)
        except ValueError:
            raise BadRequest("query parameter 'wait' is a number of seconds") from None
        if not 0 <= wait <= MAX_WAIT_S:
            raise BadRequest(f"query parameter 'wait' must be between 0 and {MAX_WAIT_S:.0f} seconds")
        await node.wait_for_entry(entry_id, wait)
    stored = node.storage.get(entry_id)
    if stored is None:
        if entry_id in node.ingest.orphans:
            return json_response(r.Orphan(id=entry_id.hex(), status="orphan"), 202)
        raise NotFound(f"no entry {entry_id.hex()} on this node")
    result = node.storage.result(entry_id)
    held = None
    if result is not None and result.outcome == "HELD" and node.chain is not None:
        record = ReviewQueue(node.chain.state).held(entry_id)
        held = None if record is None else held_view(record)
    view = entry_view(stored, result, review=held)
    if stored.tombstone is None:
        try:
            _refuse_blocked_content(node, entry_id, codec.decode(stored.signed.header, EntryHeader),
                                    stored.signed.payload)
        except ContentRefused as refused:
            view = msgspec.structs.replace(view, payload=msgspec.UNSET, payload_refused=refused.message)
    return json_response(view)


async def get_entry_payload(request: web.Request) -> web.Response:
    node = request.app[NODE]
    entry_id = entry_id_param(request)
    stored = node.storage.get(entry_id)
    if stored is None:
        raise NotFound(f"no entry {entry_id.hex()} on this node")
    if stored.tombstone is not None:
        raise PayloadWithheld(f"the payload of {entry_id.hex()} was deleted by {stored.tombstone.decision}",
                              tombstone=msgspec.to_builtins(stored.tombstone))
    header = codec.decode(stored.signed.header, EntryHeader)
    _refuse_blocked_content(node, entry_id, header, stored.signed.payload)
    media_type = "application/octet-stream"
    if header.kind == "data":
        declared = msgspec.msgpack.decode(header.body, type=dict[str, str]).get("media_type", media_type)
        if _SAFE_MEDIA_TYPE.fullmatch(declared):
            media_type = declared
    return web.Response(
        body=stored.signed.payload,
        content_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{entry_id.hex()}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )


def _refuse_blocked_content(node: NodeView, entry_id: bytes, header: EntryHeader, payload: bytes) -> None:
    """An entry not yet ordered may already match a content rule: its payload is not served either."""
    chain = node.chain
    if chain is None or header.kind != "data" or node.storage.result(entry_id) is not None:
        return
    op = decode_operation(header.kind, header.body)
    assert isinstance(op, Data)
    rules = Rules(chain.state)
    rule = rules.blocking_content_rule(header, op, keywords_in(payload, rules.content_keywords()))
    if rule is not None:
        raise ContentRefused(f"content rule {rule.rule_id!r} (proposal {rule.decision}) blocks this payload")


async def list_entries(request: web.Request) -> web.Response:
    node = request.app[NODE]
    after = int_query(request, "after", 0, 0, 2**62)
    limit = int_query(request, "limit", 100, 1, MAX_LIST)
    rows = node.storage.list_after(after, limit)
    items = []
    for stored in rows:
        header = codec.decode(stored.signed.header, EntryHeader)
        items.append(r.EntryRow(id=codec.sha256(stored.signed.header).hex(), position=stored.seqno,
                                author=address_from_public_key(header.author), seq=header.seq,
                                parents=[p.hex() for p in header.parents], kind=header.kind, time_ms=header.time_ms))
    return json_response(r.EntryPage(entries=items, next=rows[-1].seqno if rows else after))


async def get_author(request: web.Request) -> web.Response:
    node = request.app[NODE]
    address = request.match_info["address"]
    author = public_key_from_address(address)
    next_seq, head = node.ingest.dag.next_seq(author)
    return json_response(r.Author(address=address, next_seq=next_seq, head=head.hex() if head else None))


async def get_tips(request: web.Request) -> web.Response:
    node = request.app[NODE]
    tips = sorted(node.ingest.dag.tips)
    limit = int_query(request, "limit", MAX_LIST, 1, MAX_LIST)
    return json_response(r.Tips(count=len(tips), tips=[t.hex() for t in tips[:limit]]))


async def get_evidence(request: web.Request) -> web.Response:
    node = request.app[NODE]
    equivocations = [
        r.Equivocation(kind=kind, validator=validator.hex(), height=height, round=round_,  # type: ignore[arg-type]
                       detected_ms=detected, first=b64(first), second=b64(second))
        for validator, height, round_, kind, first, second, detected in node.storage.equivocations()
    ]
    return json_response(r.Evidence(forks=[fork_view(e) for e in node.storage.fork_evidence()],
                                    equivocations=equivocations))


async def post_entry_draft(request: web.Request) -> web.Response:
    """The header bytes to sign for an operation given as JSON; the key stays with the client."""
    node = request.app[NODE]
    body, is_msgpack = await read_body(request)
    check_connection_rate(request, 1)
    try:
        draft = (msgspec.msgpack.decode if is_msgpack else msgspec.json.decode)(body, type=DraftRequest)
    except msgspec.MsgspecError as exc:
        raise BadRequest(f"body is not a draft request: {exc}") from None
    view = await make_draft(draft, node.ingest.dag, node.genesis.chain_id, node.genesis.root, node.ingest.params)
    return json_response(msgspec.convert(view, r.Draft))


_BUSY = ("rate_limited", "overloaded")
_ENTRY_REFUSED = ("bad_encoding", "entry_invalid", "bad_signature", "wrong_chain", "invalid_operation",
                  "sequence_reused", "entry_too_large", "payload_too_large", "request_too_large",
                  "unsupported_media_type")

ROUTES = (
    Route("POST", "/v1/entries/draft", post_entry_draft,
          "The header bytes to sign for an operation given as JSON (the key stays with the client)",
          {200: r.Draft}, ("bad_request", "invalid_address", "request_too_large", "unsupported_media_type",
                           "rate_limited"),
          description="The node picks the author's next seq, parents from its tips, hashes the payload and stamps"
                      " the proof of work. The client checks that `id` is SHA-256 of `header` and that the decoded"
                      " header is what it asked for, signs `bilayer/entry/v1` || id with Ed25519 and submits to"
                      " POST /v1/entries.",
          request=DraftRequest),
    Route("POST", "/v1/entries", post_entry, "Submit one signed entry",
          {201: r.SubmitResult, 200: r.SubmitResult, 202: r.SubmitResult}, (*_ENTRY_REFUSED, *_BUSY),
          description="201 stored durably, 200 already known, 202 held while parents are fetched. A node that is"
                      " behind refuses it early: 503 `overloaded` (or 429 `rate_limited`) with `Retry-After`;"
                      " send the same entry again after that wait.",
          request=SignedEntry, msgpack_body=True),
    Route("GET", "/v1/entries", list_entries, "List entries in this node's arrival order", {200: r.EntryPage},
          ("bad_request",), params=(int_param("after", 0), limit_query())),
    Route("POST", "/v1/entries/batch", post_entries_batch,
          "Submit up to 5000 entries; one result (or error) per entry, in order", {200: r.BatchResults},
          ("bad_encoding", "bad_request", "request_too_large", "unsupported_media_type", *_BUSY),
          description="A node that is behind refuses the whole batch before any work on it: 503 `overloaded` (or"
                      " 429 `rate_limited`) with `Retry-After`; send it again after that wait.",
          request=JsonBatch, msgpack_body=True),
    Route("GET", "/v1/entries/{entry_id}", get_entry,
          "One entry with its header fields, signature, payload and finality status",
          {200: r.Entry, 202: r.Orphan}, ("bad_request", "not_found", "overloaded"),
          params=(ENTRY_ID, query("wait", {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S},
                                  "seconds to wait, at most, for the entry to be held and ordered (FINAL or REJECTED)"
                                  " before answering with its current status; 503 when too many clients are"
                                  " waiting"))),
    Route("GET", "/v1/entries/{entry_id}/payload", get_entry_payload,
          "The raw payload bytes (served as an attachment)", {200: Media("application/octet-stream", "payload bytes")},
          ("bad_request", "not_found", "payload_withheld", "content_blocked"),
          description="410 `payload_withheld` (with the tombstone in the error's details) when a redaction or a"
                      " content rule deleted the payload; 451 `content_blocked` when a content rule in force blocks"
                      " an entry not yet ordered.",
          params=(ENTRY_ID,)),
    Route("GET", "/v1/authors/{address}", get_author, "An author's next sequence number and latest entry",
          {200: r.Author}, ("invalid_address",), params=(ADDRESS,)),
    Route("GET", "/v1/tips", get_tips, "Entries with no children yet", {200: r.Tips}, ("bad_request",),
          params=(limit_query(),)),
    Route("GET", "/v1/evidence", get_evidence,
          "Misbehaviour: author forks (layer 1) and validator equivocations (layer 2)", {200: r.Evidence}),
)

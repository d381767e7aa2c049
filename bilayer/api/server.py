"""HTTP routes of a node (aiohttp).

Every failure is `{"error": {"code": ..., "message": ...}}` with a 4xx status for bad input
and 5xx only for real faults; no route ever answers with a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware

from .. import __version__, codec
from ..audit.export import UNBOUNDED, ExportQuery, build_package, parse_height, parse_time_ms
from ..audit.proof import ChainSource, HistoryCache, prove_account, prove_entry
from ..audit.query import parse_entry_query, query_entries
from ..audit.svg import render_svg
from ..audit.trace import DEFAULT_LIMITS, MAX_HOPS, TraceLimits, TraceRequest, check_request, trace
from ..consensus.validators import ValidatorSet
from ..errors import (
    BadEncoding,
    BadRequest,
    BilayerError,
    ContentRefused,
    NotFound,
    NotReady,
    PayloadWithheld,
    RateLimited,
    TraceHopsInvalid,
)
from ..execution.application import application, installed_applications
from ..execution.errors import ExecutionRejected
from ..execution.governance.context import ExecContext
from ..execution.governance.council import Council, ProposalNotFound
from ..execution.governance.emergency import Emergencies
from ..execution.governance.gate import dry_run
from ..execution.governance.identity import Identities
from ..execution.governance.options import parse_hex32
from ..execution.governance.params import Params
from ..execution.governance.review import ReviewQueue
from ..execution.governance.rules import Rules, keywords_in
from ..execution.governance.validator_set import VALIDATOR_CHANGE_DELAY
from ..keys.address import address_from_public_key, public_key_from_address
from ..ledger.entry import EntryHeader, SignedEntry
from ..ledger.operations import (
    IDENTITY_LEVELS,
    INTERCEPTION_OUTCOMES,
    Data,
    GovPropose,
    SetContentRule,
    decode_operation,
    operation_kinds,
)
from ..node.ingest import Status, SubmitResult
from ..node.ratelimit import RateLimiter
from ..node.storage import Storage
from .actions import ACTIONS, make_action, options_from_query
from .draft import DraftRequest, make_draft
from .guard import ConnectionGuard
from .openapi import openapi_document
from .stream import serve_stream
from .views import (
    b64,
    compliance_view,
    council_view,
    emergency_target,
    finalized_view,
    fork_view,
    held_view,
    proposal_view,
    review_queue_view,
    stored_view,
)

T = TypeVar("T")
PROPOSAL_STATUSES = ("voting", "passed", "rejected", "executed", "cancelled")

if TYPE_CHECKING:
    from ..node.chain import Chain, ValidatorEpoch
    from ..node.runtime import Node as LedgerNode

log = logging.getLogger("bilayer.api")

MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
MAX_BATCH = 5000
MAX_LIST = 1000
MAX_TRACE_EDGES = 10_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NODE: web.AppKey[LedgerNode] = web.AppKey("node")
LIMITER: web.AppKey[RateLimiter] = web.AppKey("limiter")
MAX_BODY: web.AppKey[int] = web.AppKey("max_body")
PROOF_HISTORY: web.AppKey[HistoryCache] = web.AppKey("proof_history")
PROOF_WORKER: web.AppKey[ThreadPoolExecutor] = web.AppKey("proof_worker")
# A media type safe to echo in a Content-Type header (no CR/LF, no parameters).
_SAFE_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


def error_response(exc: BilayerError) -> web.Response:
    response = json_response(exc.to_json(), exc.http_status)
    retry_after = getattr(exc, "retry_after_s", None)
    if exc.http_status in (429, 503) and isinstance(retry_after, int):
        response.headers["Retry-After"] = str(max(1, retry_after))  # the CLI and the SDK wait that long
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    node = request.app[NODE]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    started = time.monotonic()
    try:
        response = await handler(request)
    except BilayerError as exc:
        response = error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        response = json_response({"error": {"code": code, "message": exc.reason}}, exc.status)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        response = json_response({"error": {"code": "internal", "message": "internal error; see the node log"}}, 500)
    node.metrics.http_requests.labels(route, str(response.status)).inc()
    node.metrics.http_seconds.labels(route).observe(time.monotonic() - started)
    return response


CORS_METHODS = "GET, POST, OPTIONS"
CORS_MAX_AGE_S = 600


def cors_middleware(allowed: Sequence[str]) -> Middleware:
    """Cross-origin access for browser apps on the listed origins ("*": any); preflights answered here."""
    any_origin = "*" in allowed
    origins = frozenset(allowed)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or not (any_origin or origin in origins):
            return await handler(request)
        allow = {"Access-Control-Allow-Origin": "*" if any_origin else origin, "Vary": "Origin"}
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return web.Response(status=204, headers={
                **allow, "Access-Control-Allow-Methods": CORS_METHODS,
                "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "Content-Type"),
                "Access-Control-Max-Age": str(CORS_MAX_AGE_S)})
        response = await handler(request)
        response.headers.update(allow)
        return response

    return cors


def _entry_id_param(request: web.Request) -> bytes:
    return parse_hex32(request.match_info["entry_id"], "an entry id")


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"query parameter {name!r} must be between {low} and {high}")
    return value


def _result_view(result: SubmitResult) -> dict[str, Any]:
    view: dict[str, Any] = {"id": result.id.hex(), "status": str(result.status)}
    if result.missing:
        view["missing"] = [m.hex() for m in result.missing]
    return view


_STATUS_CODE = {Status.STORED: 201, Status.KNOWN: 200, Status.ORPHAN: 202}


class _JsonBatch(msgspec.Struct, forbid_unknown_fields=True):
    entries: list[SignedEntry]


async def _read_body(request: web.Request) -> tuple[bytes, bool]:
    """The request body and whether it is msgpack (else JSON)."""
    content_type = request.content_type
    if content_type not in (*MSGPACK_TYPES, "application/json"):
        raise web.HTTPUnsupportedMediaType(reason="send application/json or application/msgpack")
    max_body = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > max_body:
        # refuse what the client announces as too large without waiting for it
        raise web.HTTPRequestEntityTooLarge(max_size=max_body, actual_size=request.content_length)
    try:
        body = await request.read()
    except web.RequestPayloadError:
        raise BadRequest("the request body cannot be read (broken chunking or Content-Encoding)") from None
    except ConnectionResetError:
        raise BadRequest("the connection closed before the whole body arrived") from None
    return body, content_type in MSGPACK_TYPES


def _check_connection_rate(request: web.Request, cost: int) -> None:
    limiter = request.app[LIMITER]
    if not limiter.allow(request.remote or "?", time.monotonic(), cost):
        request.app[NODE].metrics.entries_refused.labels("rate_limited").inc(cost)
        raise RateLimited("this connection is submitting faster than the node's per-connection limit")


async def post_entry(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body, is_msgpack = await _read_body(request)
    _check_connection_rate(request, 1)
    node.ingest.admit(1)
    if is_msgpack:
        signed = codec.decode_canonical(body, SignedEntry)
    else:
        try:
            signed = msgspec.json.decode(body, type=SignedEntry)
        except msgspec.MsgspecError as exc:
            raise BadEncoding(f"body is not an entry: {exc}") from None
    result = await node.ingest.submit(signed, f"api:{request.remote}")
    return json_response(_result_view(result), _STATUS_CODE[result.status])


async def post_entries_batch(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body, is_msgpack = await _read_body(request)
    try:
        if is_msgpack:
            items = msgspec.msgpack.decode(body, type=list[SignedEntry])
        else:
            items = msgspec.json.decode(body, type=_JsonBatch).entries
    except msgspec.MsgspecError as exc:
        raise BadEncoding(f"body is not a list of entries: {exc}") from None
    if len(items) > MAX_BATCH:
        raise BadRequest(f"at most {MAX_BATCH} entries per batch")
    _check_connection_rate(request, len(items))
    node.ingest.admit(len(items))
    results = await node.ingest.submit_many(items, f"api:{request.remote}")
    views = [r.to_json() if isinstance(r, BilayerError) else _result_view(r) for r in results]
    return json_response({"results": views})


MAX_WAIT_S = 30.0


async def get_entry(request: web.Request) -> web.Response:
    node = request.app[NODE]
    entry_id = _entry_id_param(request)
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
            return json_response({"id": entry_id.hex(), "status": "orphan"}, 202)
        raise NotFound(f"no entry {entry_id.hex()} on this node")
    result = node.storage.result(entry_id)
    held = None
    if result is not None and result.outcome == "HELD" and node.chain is not None:
        record = ReviewQueue(node.chain.state).held(entry_id)
        held = None if record is None else held_view(record)
    view = stored_view(stored, result, review=held)
    if stored.tombstone is None and "payload" in view:
        try:
            _refuse_blocked_content(node, entry_id, codec.decode(stored.signed.header, EntryHeader),
                                    stored.signed.payload)
        except ContentRefused as refused:
            del view["payload"]
            view["payload_refused"] = refused.message
    return json_response(view)


async def get_entry_payload(request: web.Request) -> web.Response:
    node = request.app[NODE]
    entry_id = _entry_id_param(request)
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


def _refuse_blocked_content(node: LedgerNode, entry_id: bytes, header: EntryHeader, payload: bytes) -> None:
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
    after = _int_query(request, "after", 0, 0, 2**62)
    limit = _int_query(request, "limit", 100, 1, MAX_LIST)
    rows = node.storage.list_after(after, limit)
    items = []
    for stored in rows:
        header = codec.decode(stored.signed.header, EntryHeader)
        items.append(
            {
                "id": codec.sha256(stored.signed.header).hex(),
                "position": stored.seqno,
                "author": address_from_public_key(header.author),
                "seq": header.seq,
                "parents": [p.hex() for p in header.parents],
                "kind": header.kind,
                "time_ms": header.time_ms,
            }
        )
    return json_response({"entries": items, "next": rows[-1].seqno if rows else after})


async def get_author(request: web.Request) -> web.Response:
    node = request.app[NODE]
    address = request.match_info["address"]
    author = public_key_from_address(address)
    next_seq, head = node.ingest.dag.next_seq(author)
    return json_response({"address": address, "next_seq": next_seq, "head": head.hex() if head else None})


async def get_tips(request: web.Request) -> web.Response:
    node = request.app[NODE]
    tips = sorted(node.ingest.dag.tips)
    limit = _int_query(request, "limit", MAX_LIST, 1, MAX_LIST)
    return json_response({"count": len(tips), "tips": [t.hex() for t in tips[:limit]]})


async def get_evidence(request: web.Request) -> web.Response:
    node = request.app[NODE]
    equivocations = [
        {"kind": kind, "validator": validator.hex(), "height": height, "round": round_, "detected_ms": detected,
         "first": b64(first), "second": b64(second)}
        for validator, height, round_, kind, first, second, detected in node.storage.equivocations()
    ]
    return json_response({"forks": [fork_view(e) for e in node.storage.fork_evidence()],
                          "equivocations": equivocations})


def _finality_chain(node: LedgerNode) -> Chain:
    if node.chain is None:
        raise NotFound("this chain has no validators, so nothing is finalized")
    return node.chain


async def get_checkpoint(request: web.Request) -> web.Response:
    node = request.app[NODE]
    chain = _finality_chain(node)
    text = request.match_info["height"]
    if text == "latest":
        height = chain.height
    else:
        try:
            height = int(text)
        except ValueError:
            raise BadRequest("a checkpoint height is a positive integer or 'latest'") from None
    if height < 1 or height > 2**62:
        raise NotFound(f"no checkpoint at height {height}" if height >= 0 else "heights start at 1")
    stored = node.storage.checkpoint(height)
    if stored is None:
        raise NotFound(f"no checkpoint at height {height} yet (this node is at {chain.height})")
    with_entries = request.query.get("entries", "0") in ("1", "true", "yes")
    return json_response(finalized_view(stored, node.storage.results_at(height) if with_entries else None))


async def get_account(request: web.Request) -> web.Response:
    node = request.app[NODE]
    address = request.match_info["address"]
    public_key = public_key_from_address(address)
    chain = _finality_chain(node)
    next_seq, last = chain.state.author_head(public_key)
    return json_response({
        "address": address,
        "height": chain.height,
        "balances": chain.state.balances_of(public_key),
        "next_seq": next_seq,
        "last_entry": last.hex() if last else None,
        "state_root": chain.state_root.hex(),
    })


def _now_ms() -> int:
    return int(time.time() * 1000)


async def list_proposals(request: web.Request) -> web.Response:
    node = request.app[NODE]
    chain = _finality_chain(node)
    wanted = request.query.get("status")
    if wanted is not None and wanted not in PROPOSAL_STATUSES:
        raise BadRequest(f"status is one of {', '.join(PROPOSAL_STATUSES)}")
    council = Council(chain.state)
    views = [proposal_view(council.proposal(n), chain.state, node.genesis.governance, _now_ms())
             for n in range(council.proposal_count(), 0, -1)]
    if wanted is not None:
        views = [v for v in views if v["status"] == wanted]
    return json_response({"height": chain.height, "proposals": views[:MAX_LIST]})


async def get_proposal_route(request: web.Request) -> web.Response:
    node = request.app[NODE]
    chain = _finality_chain(node)
    try:
        number = int(request.match_info["number"])
    except ValueError:
        raise BadRequest("a proposal number is a positive integer") from None
    if not 1 <= number <= 2**62:
        raise BadRequest("a proposal number is a positive integer")
    try:
        record = Council(chain.state).proposal(number)
    except ProposalNotFound:
        raise NotFound(f"no proposal {number} (as of height {chain.height})") from None
    view = proposal_view(record, chain.state, node.genesis.governance, _now_ms())
    votes = []
    council = Council(chain.state)
    for member, weight in council.members():
        choice = council.vote_of(number, member)
        if choice is not None:
            votes.append({"voter": address_from_public_key(member), "weight": weight, "choice": choice})
    view["votes"] = votes
    view["height"] = chain.height
    affected = node.storage.results_caused_by(f"proposal:{number}", MAX_LIST)
    view["affected"] = [{"id": r.entry_id.hex(), "height": r.height, "kind": r.kind, "outcome": r.outcome,
                         "reason": r.code or None} for r in affected]
    return json_response(view)


DRY_RUN_SCAN = 200_000


async def gov_dry_run(request: web.Request) -> web.Response:
    """Which already-final entries a proposed action would have refused, before anyone votes."""
    node = request.app[NODE]
    chain = _finality_chain(node)
    query = request.query
    action_name = query.get("action", "")
    if action_name not in ACTIONS:
        raise BadRequest(f"action is one of {', '.join(ACTIONS)}")
    options = options_from_query(query, query.getall)
    for name in ("min_level", "max_level"):
        level = getattr(options, name)
        if level is not None and level not in IDENTITY_LEVELS:
            raise BadRequest(f"{name} is one of {', '.join(IDENTITY_LEVELS)}")
    if options.outcome not in INTERCEPTION_OUTCOMES:
        raise BadRequest("outcome is reject or hold")
    try:
        params = Params(chain.state).current()
        action = make_action(action_name, options, params)
        GovPropose(action=action, reason="dry run", legal_ref="").check(0, params)
    except (TypeError, BilayerError) as exc:
        raise BadRequest(f"this action is not valid: {exc}") from None
    since = _int_query(request, "since", 1, 1, 2**62)
    limit = _int_query(request, "limit", 100, 1, MAX_LIST)
    scanned = node.storage.final_results_since(since, DRY_RUN_SCAN)
    headers = []
    for result in scanned:
        stored = node.storage.get(result.entry_id)
        if stored is not None:
            headers.append((result.entry_id, codec.decode(stored.signed.header, EntryHeader), result.height))
    found: dict[bytes, tuple[str, ...]] = {}
    if isinstance(action, SetContentRule) and action.keyword:  # the keyword is looked for in the stored payloads
        for entry_id, header, _ in headers:
            if header.kind == "data":
                hits = keywords_in(node.ingest.payload_of(entry_id) or b"", (action.keyword.lower(),))
                if hits:
                    found[entry_id] = hits
    context = ExecContext(chain.height + 1, _now_ms(), node.genesis.governance, found)
    try:
        refused = dry_run(chain.state, action, context, [(i, h) for i, h, _ in headers])
    except ExecutionRejected as exc:
        raise BadRequest(f"this action cannot be applied now: {exc.code}") from None
    heights = {i: height for i, _, height in headers}
    authors = {i: h.author for i, h, _ in headers}
    kinds = {i: h.kind for i, h, _ in headers}
    return json_response({
        "height": chain.height, "since": since, "examined": len(headers),
        "truncated": len(scanned) >= DRY_RUN_SCAN, "would_refuse": len(refused),
        "entries": [{"id": i.hex(), "height": heights[i], "kind": kinds[i],
                     "author": address_from_public_key(authors[i]), "reason": code} for i, code in refused[:limit]],
    })


async def list_management_actions(request: web.Request) -> web.Response:
    """The management audit log: every governance, regulator and identity entry, newest first."""
    node = request.app[NODE]
    chain = _finality_chain(node)
    before = _int_query(request, "before", chain.height + 1, 1, 2**62)
    limit = _int_query(request, "limit", 100, 1, MAX_LIST)
    actions = []
    for result in node.storage.management_results(before, limit):
        stored = node.storage.get(result.entry_id)
        if stored is None:
            continue
        header = codec.decode(stored.signed.header, EntryHeader)
        actions.append({
            "id": result.entry_id.hex(), "height": result.height, "index": result.position, "kind": result.kind,
            "author": address_from_public_key(header.author), "time_ms": header.time_ms,
            "op": decode_operation(header.kind, header.body).view(), "outcome": result.outcome,
            "reason": result.code or None, "cause": result.cause or None,
        })
    now = _now_ms()
    lapses = []
    for record in Emergencies(chain.state).newest_first():
        if record.status(now) == "lapsed":
            lapses.append({"kind": "reg.lapse", "emergency": record.number, "time_ms": record.expires_ms,
                           **emergency_target(record), "derived": True})
    return json_response({"height": chain.height, "actions": actions, "lapses": lapses[:MAX_LIST]})


_ASSET = re.compile(r"[A-Z0-9]{1,16}")


async def _with_history(request: web.Request, work: Callable[[ChainSource, HistoryCache], T]) -> T:
    """Run proof work on the proof thread with its own read connection: proofs re-execute history
    (see bilayer/audit/proof.py), which must stall neither this node's event loop nor the
    threads its storage commits run on; requests queue for that one thread."""
    node, cache = request.app[NODE], request.app[PROOF_HISTORY]
    _finality_chain(node)

    def run() -> T:
        with cache.lock:
            storage = Storage(node.storage.path)
            try:
                def header_of(entry_id: bytes) -> EntryHeader | None:
                    stored = storage.get(entry_id)
                    return None if stored is None else codec.decode(stored.signed.header, EntryHeader)

                return work(ChainSource(node.genesis, storage, node.ingest.dag, header_of), cache)
            except BaseException:
                cache.forget()  # a walk that stopped half-way is not kept
                raise
            finally:
                storage.close()

    return await asyncio.get_running_loop().run_in_executor(request.app[PROOF_WORKER], run)


async def get_entry_proof(request: web.Request) -> web.Response:
    """A self-contained proof of an entry's outcome, checkable offline against genesis alone."""
    entry_id = _entry_id_param(request)
    return json_response(await _with_history(request, lambda source, cache: prove_entry(source, entry_id, cache)))


async def get_state_proof(request: web.Request) -> web.Response:
    """An account's state keys with state proofs against the latest certified state root."""
    address = request.match_info["address"]
    public_key_from_address(address)
    asset = request.query.get("asset")
    if asset is not None and not _ASSET.fullmatch(asset):
        raise BadRequest("asset is 1 to 16 characters A-Z and 0-9")
    return json_response(await _with_history(request, lambda source, cache: prove_account(source, address, asset,
                                                                                         cache)))


async def get_evidence_export(request: web.Request) -> web.Response:
    """An account's evidence package in a time window, as one JSON document."""
    node = request.app[NODE]
    chain = _finality_chain(node)
    query = request.query
    account = query.get("account", "")
    public_key_from_address(account)
    if not {"from", "to", "from_height", "to_height"} & set(query):
        raise BadRequest("name a window: from and to (ms since the epoch or ISO-8601), from_height and to_height")
    window = ExportQuery(
        account,
        parse_time_ms(query["from"], "from") if "from" in query else 0,
        parse_time_ms(query["to"], "to") if "to" in query else UNBOUNDED,
        parse_height(query["from_height"], "from_height") if "from_height" in query else 1,
        parse_height(query["to_height"], "to_height") if "to_height" in query else UNBOUNDED,
    )
    return json_response(await _with_history(
        request, lambda source, cache: build_package(source, chain.state, window, cache=cache)))
AUDIT_CATCH_UP_S = 5.0


async def _audit_read(node: LedgerNode, work: Callable[[sqlite3.Connection], T]) -> T:
    """Audit queries read the index on a connection of their own in a worker thread, so a
    long trace never stalls the event loop. The index is written just after each commit:
    a query first waits (briefly) for it to hold every checkpoint committed so far, so an
    entry a client saw final is in the answer."""
    indexer = node.chain.indexer if node.chain is not None else None
    if indexer is not None:
        await indexer.caught_up(AUDIT_CATCH_UP_S)

    def run() -> T:
        with closing(node.storage.read_connection()) as conn:
            return work(conn)

    return await asyncio.to_thread(run)


async def list_audit_entries(request: web.Request) -> web.Response:
    """Ordered entries from the audit index by party, asset, kind, outcome, code, height and time."""
    node = request.app[NODE]
    _finality_chain(node)
    query = parse_entry_query({name: request.query[name] for name in request.query})
    return json_response(await _audit_read(node, lambda conn: query_entries(conn, query)))


TRACE_FORMATS = ("json", "svg")


async def get_audit_trace(request: web.Request) -> web.Response:
    """Where funds went (forward) or came from (backward), FIFO, as JSON or an SVG flow graph."""
    node = request.app[NODE]
    query = request.query
    try:
        hops = int(query.get("hops", "3"))
    except ValueError:
        raise TraceHopsInvalid(f"hops is an integer between 1 and {MAX_HOPS}") from None
    trace_request = TraceRequest(query.get("start", ""), query.get("direction", "forward"), hops, query.get("asset"),
                                 TraceLimits(max_edges=_int_query(request, "max_edges", DEFAULT_LIMITS.max_edges, 1,
                                                                  MAX_TRACE_EDGES),
                                             dust=_int_query(request, "dust", 0, 0, 2**63 - 1)))
    check_request(trace_request.start, trace_request.direction, trace_request.hops, trace_request.asset)
    output = query.get("format", "json")
    if output not in TRACE_FORMATS:
        raise BadRequest("format is json or svg")
    _finality_chain(node)
    found = await _audit_read(node, lambda conn: trace(conn, trace_request))
    if output == "svg":
        return web.Response(text=render_svg(found), content_type="image/svg+xml")
    return json_response(found.to_json())


async def get_council(request: web.Request) -> web.Response:
    node = request.app[NODE]
    chain = _finality_chain(node)
    params = node.genesis.governance
    names = {bytes.fromhex(m.public_key): m.name for m in node.genesis.council}
    return json_response({"height": chain.height, "members": council_view(chain.state, names),
                          "rules": msgspec.to_builtins(params)})


async def get_compliance(request: web.Request) -> web.Response:
    node = request.app[NODE]
    chain = _finality_chain(node)
    return json_response({"height": chain.height, **compliance_view(chain.state, _now_ms(), MAX_LIST)})


async def get_review_queue(request: web.Request) -> web.Response:
    """Transfers held for review, soonest deadline first."""
    node = request.app[NODE]
    chain = _finality_chain(node)
    limit = _int_query(request, "limit", 100, 1, MAX_LIST)
    queue = ReviewQueue(chain.state).queue()
    return json_response({"height": chain.height, "count": len(queue), "held": review_queue_view(chain.state, limit)})


async def get_apps(request: web.Request) -> web.Response:
    """The installed applications: what each is, its read queries and its console page."""
    return json_response({"applications": [
        {"name": app.name, "summary": app.summary, "kinds": sorted(app.handlers()), "queries": sorted(app.queries),
         "console": f"/static/{app.console}" if app.console else None}
        for app in installed_applications()]})


async def get_app_query(request: web.Request) -> web.Response:
    """An installed application's read query, over the state as of the latest checkpoint."""
    node = request.app[NODE]
    chain = _finality_chain(node)
    name, query_name = request.match_info["app"], request.match_info["query"]
    found = application(name)
    if found is None:
        raise NotFound(f"no application {name!r} is installed")
    query = found.queries.get(query_name)
    if query is None:
        raise NotFound(f"application {name!r} has no query {query_name!r}; it has {', '.join(sorted(found.queries))}")
    return json_response({"height": chain.height, **query(chain.state, request.query)})


async def get_params(request: web.Request) -> web.Response:
    """The chain parameters in force, and the loosest ever (what old entries were admitted by)."""
    node = request.app[NODE]
    chain = _finality_chain(node)
    params = Params(chain.state)
    return json_response({"height": chain.height, "params": msgspec.to_builtins(params.current()),
                          "loosest": msgspec.to_builtins(params.loosest())})


async def get_identity(request: web.Request) -> web.Response:
    """An account without an attested identity is an ordinary answer, not an error: `identity` is null."""
    node = request.app[NODE]
    address = request.match_info["address"]
    public_key = public_key_from_address(address)
    chain = _finality_chain(node)
    identities = Identities(chain.state)
    record = identities.identity_of(public_key)
    if record is None:
        return json_response({"address": address, "identity": None, "height": chain.height})
    banned = identities.identity_ban(record.identity) is not None
    return json_response({
        "address": address, "identity": record.identity.hex(), "level": record.level,
        "expires_ms": record.expires_ms, "expired": record.expires_ms <= _now_ms(),
        "provider": address_from_public_key(record.provider), "entry": record.entry_id.hex(),
        "identity_banned": banned, "height": chain.height,
    })


def _set_view(validators: ValidatorSet) -> dict[str, Any]:
    return {
        "validators": [
            {"name": v.name, "public_key": v.public_key.hex(), "address": address_from_public_key(v.public_key),
             "power": v.power}
            for v in validators.members
        ],
        "total_power": validators.total_power,
        "max_faulty": validators.max_faulty,
        "quorum_power": validators.total_power * 2 // 3 + 1,
    }


def _epoch_view(epoch: ValidatorEpoch) -> dict[str, Any]:
    change = epoch.change
    return {"change": change.number, "height": change.height, "executed_height": change.executed_height or None,
            "proposals": list(change.proposals), **_set_view(epoch.validators)}


async def get_validators(request: web.Request) -> web.Response:
    """The set that votes on the next height (or governed `?height=`), and since when."""
    node = request.app[NODE]
    chain = node.chain
    asked = _int_query(request, "height", 0, 1, 2**62) if "height" in request.query else None
    if chain is None:
        return json_response({"validators": [], "total_power": 0, "max_faulty": 0})
    height = asked if asked is not None else chain.height + 1
    if not chain.knows_validators_of(height):
        raise NotFound(f"the validator set of height {height} is not decided yet (this node is at height"
                       f" {chain.height}; sets are known {VALIDATOR_CHANGE_DELAY} heights ahead)")
    epoch = chain.epoch_at(height)
    view = {"height": height, "since_height": epoch.height, "proposals": list(epoch.change.proposals),
            **_set_view(epoch.validators)}
    following = chain.epoch_at(chain.height + VALIDATOR_CHANGE_DELAY)
    if following.height > height:
        view["next"] = _epoch_view(following)
    return json_response(view)


async def get_validator_history(request: web.Request) -> web.Response:
    """Every validator set change, oldest first: the height it governs from and the proposals behind it."""
    node = request.app[NODE]
    chain = _finality_chain(node)
    after = _int_query(request, "after", 0, 0, 2**62)
    limit = _int_query(request, "limit", 100, 1, MAX_LIST)
    epochs = [e for e in chain.epochs if e.change.number > after][:limit]
    return json_response({"height": chain.height, "changes": [_epoch_view(e) for e in epochs]})


async def get_status(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response(node.status())


async def get_peers(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response({"peers": node.peers.peer_list()})


async def get_metrics(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return web.Response(body=node.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})


async def get_health(request: web.Request) -> web.Response:
    """Liveness: the process answers. A halted or lagging node is alive; restarting it would not help."""
    node = request.app[NODE]
    return json_response({"status": "ok", "uptime_s": round(time.time() - node.started_s, 1)})


async def get_ready(request: web.Request) -> web.Response:
    """Readiness: caught up, linked to peers, not halted, storage working; else 503 with the reasons."""
    node = request.app[NODE]
    reasons = node.not_ready()
    if reasons:
        raise NotReady("not ready: " + ", ".join(reasons), reasons=reasons)
    return json_response({"status": "ready"})


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(__version__, operation_kinds()))


STATIC_DIR = Path(__file__).parent / "static"
# The console loads only its own files and talks only to this node: no inline script, nothing from elsewhere.
CONSOLE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
               " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


async def get_index(request: web.Request) -> web.StreamResponse:
    """The web console (a single page; its routes are in the URL fragment)."""
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


_STATIC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.(?:js|css)")


async def get_static(request: web.Request) -> web.StreamResponse:
    """The console's own scripts and styles; nothing else under this directory is served."""
    name = request.match_info["filename"]
    path = STATIC_DIR / name
    if not _STATIC_NAME.fullmatch(name) or not path.is_file():
        raise NotFound(f"no console file {name!r}")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def _console_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/" or request.path.startswith("/static/"):
        response.headers["Content-Security-Policy"] = CONSOLE_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"


async def post_entry_draft(request: web.Request) -> web.Response:
    """The header bytes to sign for an operation given as JSON; the key stays with the client."""
    node = request.app[NODE]
    body, is_msgpack = await _read_body(request)
    _check_connection_rate(request, 1)
    try:
        draft = (msgspec.msgpack.decode if is_msgpack else msgspec.json.decode)(body, type=DraftRequest)
    except msgspec.MsgspecError as exc:
        raise BadRequest(f"body is not a draft request: {exc}") from None
    view = await make_draft(draft, node.ingest.dag, node.genesis.chain_id, node.genesis.root, node.ingest.params)
    return json_response(view)


async def get_stream(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    chain = node.chain
    hello = {"chain_id": node.genesis.chain_id, "height": chain.height if chain is not None else None,
             "entries": len(node.ingest.dag), "time_ms": _now_ms()}
    return await serve_stream(request, node.stream, hello)


def build_app(
    node: LedgerNode,
    *,
    max_request_bytes: int,
    connection_rate: float,
    connection_burst: float,
    guard: ConnectionGuard | None = None,
    cors_allowed_origins: Sequence[str] = (),
) -> web.Application:
    middlewares: list[Middleware] = [] if guard is None else [guard.middleware()]
    if cors_allowed_origins:
        middlewares.append(cors_middleware(cors_allowed_origins))
    middlewares.append(errors_middleware)
    app = web.Application(middlewares=middlewares, client_max_size=max_request_bytes)
    app[NODE] = node
    app[LIMITER] = RateLimiter(connection_rate, connection_burst)
    app[MAX_BODY] = max_request_bytes
    app[PROOF_HISTORY] = HistoryCache()
    app[PROOF_WORKER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="proofs")

    async def stop_proof_worker(app: web.Application) -> None:
        app[PROOF_WORKER].shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(stop_proof_worker)
    app.on_response_prepare.append(_console_headers)
    app.router.add_get("/", get_index)
    app.router.add_get("/static/{filename}", get_static)
    app.router.add_get("/v1/stream", get_stream)
    app.router.add_post("/v1/entries/draft", post_entry_draft)
    app.router.add_get("/v1/status", get_status)
    app.router.add_post("/v1/entries", post_entry)
    app.router.add_post("/v1/entries/batch", post_entries_batch)
    app.router.add_get("/v1/entries", list_entries)
    app.router.add_get("/v1/entries/{entry_id}", get_entry)
    app.router.add_get("/v1/entries/{entry_id}/payload", get_entry_payload)
    app.router.add_get("/v1/authors/{address}", get_author)
    app.router.add_get("/v1/tips", get_tips)
    app.router.add_get("/v1/evidence", get_evidence)
    app.router.add_get("/v1/peers", get_peers)
    app.router.add_get("/v1/checkpoints/{height}", get_checkpoint)
    app.router.add_get("/v1/accounts/{address}", get_account)
    app.router.add_get("/v1/validators", get_validators)
    app.router.add_get("/v1/validators/history", get_validator_history)
    app.router.add_get("/v1/gov/proposals", list_proposals)
    app.router.add_get("/v1/gov/proposals/{number}", get_proposal_route)
    app.router.add_get("/v1/gov/council", get_council)
    app.router.add_get("/v1/compliance", get_compliance)
    app.router.add_get("/v1/compliance/review", get_review_queue)
    app.router.add_get("/v1/params", get_params)
    app.router.add_get("/v1/apps", get_apps)
    app.router.add_get("/v1/apps/{app}/{query}", get_app_query)
    app.router.add_get("/v1/identities/{address}", get_identity)
    app.router.add_get("/v1/audit/actions", list_management_actions)
    app.router.add_get("/v1/audit/proof/{entry_id}", get_entry_proof)
    app.router.add_get("/v1/audit/state-proof/{address}", get_state_proof)
    app.router.add_get("/v1/audit/export", get_evidence_export)
    app.router.add_get("/v1/audit/entries", list_audit_entries)
    app.router.add_get("/v1/audit/trace", get_audit_trace)
    app.router.add_get("/v1/gov/dry-run", gov_dry_run)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/health", get_health)
    app.router.add_get("/ready", get_ready)
    app.router.add_get("/openapi.json", get_openapi)
    return app

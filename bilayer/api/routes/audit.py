"""Audit routes: the management log, proofs a light client checks offline, evidence exports,
the audit index's entry queries and fund tracing."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from contextlib import closing
from typing import TYPE_CHECKING, TypeVar

import msgspec
from aiohttp import web

from ... import codec
from ...audit.export import UNBOUNDED, ExportQuery, Package, build_package, parse_height, parse_time_ms
from ...audit.proof import ChainSource, prove_account, prove_entry
from ...audit.query import parse_entry_query, query_entries
from ...audit.svg import render_svg
from ...audit.trace import (
    DEFAULT_LIMITS,
    MAX_HOPS,
    Trace,
    TraceLimits,
    TraceRequest,
    account_label,
    check_request,
    trace,
)
from ...audit.verify import AccountProof, EntryProof
from ...errors import BadRequest, TraceHopsInvalid
from ...execution.governance.emergency import Emergencies
from ...keys.address import address_from_public_key, public_key_from_address
from ...ledger.entry import EntryHeader
from ...ledger.operations import decode_operation, operation_kinds
from .. import responses as r
from ..context import (
    MAX_LIST,
    NODE,
    PROOF_HISTORY,
    PROOF_WORKER,
    entry_id_param,
    finality_chain,
    int_query,
    json_response,
    now_ms,
)
from ..spec import ADDRESS, ENTRY_ID, Media, Param, Route, limit_query, query
from ..spec import int_query as int_param
from ..views import emergency_target

if TYPE_CHECKING:
    from ..nodeview import NodeView

T = TypeVar("T")
MAX_TRACE_EDGES = 10_000
AUDIT_CATCH_UP_S = 5.0
TRACE_FORMATS = ("json", "svg")
_ASSET = re.compile(r"[A-Z0-9]{1,16}")


async def list_management_actions(request: web.Request) -> web.Response:
    """The management audit log: every governance, regulator and identity entry, newest first."""
    node = request.app[NODE]
    chain = finality_chain(node)
    before = int_query(request, "before", chain.height + 1, 1, 2**62)
    limit = int_query(request, "limit", 100, 1, MAX_LIST)
    actions = []
    for result in node.storage.management_results(before, limit):
        stored = node.storage.get(result.entry_id)
        if stored is None:
            continue
        header = codec.decode(stored.signed.header, EntryHeader)
        actions.append(r.ManagementAct(
            id=result.entry_id.hex(), height=result.height, index=result.position, kind=result.kind,
            author=address_from_public_key(header.author), time_ms=header.time_ms,
            op=decode_operation(header.kind, header.body).view(), outcome=result.outcome,
            reason=result.code or None, cause=result.cause or None))
    now = now_ms()
    lapses = [r.Lapse(kind="reg.lapse", emergency=record.number, time_ms=record.expires_ms,
                      **emergency_target(record), derived=True)
              for record in Emergencies(chain.state).newest_first() if record.status(now) == "lapsed"]
    return json_response(r.ManagementLog(height=chain.height, actions=actions, lapses=lapses[:MAX_LIST]))


async def _with_history(request: web.Request, work: Callable[[ChainSource], T]) -> T:
    """Run proof work on the proof thread with its own read connection: proofs walk the stored
    state tree (see bilayer/audit/proof.py), which must stall neither this node's event loop
    nor the threads its storage commits run on; requests queue for that one thread."""
    node, queue = request.app[NODE], request.app[PROOF_HISTORY]
    finality_chain(node)

    def run() -> T:
        with queue.lock, node.proof_source() as source:
            return work(source)

    return await asyncio.get_running_loop().run_in_executor(request.app[PROOF_WORKER], run)


async def get_entry_proof(request: web.Request) -> web.Response:
    """A self-contained proof of an entry's outcome, checkable offline against genesis alone."""
    entry_id = entry_id_param(request)
    return json_response(await _with_history(request, lambda source: prove_entry(source, entry_id)))


async def get_state_proof(request: web.Request) -> web.Response:
    """An account's state keys, present or absent, with state proofs against the state root
    after `height` (default: the latest certified one)."""
    address = request.match_info["address"]
    public_key_from_address(address)
    asset = request.query.get("asset")
    if asset is not None and not _ASSET.fullmatch(asset):
        raise BadRequest("asset is 1 to 16 characters A-Z and 0-9")
    height = int_query(request, "height", -1, 0, 2**62)
    at = None if height < 0 else height
    return json_response(await _with_history(request, lambda source: prove_account(source, address, asset, at)))


async def get_evidence_export(request: web.Request) -> web.Response:
    """An account's evidence package in a time window, as one JSON document."""
    node = request.app[NODE]
    chain = finality_chain(node)
    query_ = request.query
    account = query_.get("account", "")
    public_key_from_address(account)
    if not {"from", "to", "from_height", "to_height"} & set(query_):
        raise BadRequest("name a window: from and to (ms since the epoch or ISO-8601), from_height and to_height")
    window = ExportQuery(
        account,
        parse_time_ms(query_["from"], "from") if "from" in query_ else 0,
        parse_time_ms(query_["to"], "to") if "to" in query_ else UNBOUNDED,
        parse_height(query_["from_height"], "from_height") if "from_height" in query_ else 1,
        parse_height(query_["to_height"], "to_height") if "to_height" in query_ else UNBOUNDED,
    )
    return json_response(await _with_history(
        request, lambda source: build_package(source, chain.state, window)))


async def _audit_read(node: NodeView, work: Callable[[sqlite3.Connection], T]) -> T:
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
    finality_chain(node)
    query_ = parse_entry_query({name: request.query[name] for name in request.query})
    found = await _audit_read(node, lambda conn: query_entries(conn, query_))
    return json_response(msgspec.convert(found, r.AuditEntries))


def trace_view(found: Trace) -> r.Trace:
    return r.Trace(
        start=found.request.start, direction=found.request.direction,  # type: ignore[arg-type]
        hops=found.request.hops, asset=found.request.asset, method="fifo", height=found.height, dust=found.dust,
        nodes=[r.TraceNode(id=account_label(n.account), depth=n.depth, traced=n.traced, asset=n.asset)
               for n in found.nodes],
        edges=[r.TraceEdge(entry=e.entry.hex(), kind=e.kind, from_=account_label(e.source),  # type: ignore[arg-type]
                           to=account_label(e.target), asset=e.asset, amount=e.amount, traced=e.traced,
                           height=e.height, time_ms=e.time_ms, hop=e.hop) for e in found.edges],
        truncated=found.truncated)


async def get_audit_trace(request: web.Request) -> web.Response:
    """Where funds went (forward) or came from (backward), FIFO, as JSON or an SVG flow graph."""
    node = request.app[NODE]
    query_ = request.query
    try:
        hops = int(query_.get("hops", "3"))
    except ValueError:
        raise TraceHopsInvalid(f"hops is an integer between 1 and {MAX_HOPS}") from None
    trace_request = TraceRequest(query_.get("start", ""), query_.get("direction", "forward"), hops,
                                 query_.get("asset"),
                                 TraceLimits(max_edges=int_query(request, "max_edges", DEFAULT_LIMITS.max_edges, 1,
                                                                 MAX_TRACE_EDGES),
                                             dust=int_query(request, "dust", 0, 0, 2**63 - 1)))
    check_request(trace_request.start, trace_request.direction, trace_request.hops, trace_request.asset)
    output = query_.get("format", "json")
    if output not in TRACE_FORMATS:
        raise BadRequest("format is json or svg")
    finality_chain(node)
    found = await _audit_read(node, lambda conn: trace(conn, trace_request))
    if output == "svg":
        return web.Response(text=render_svg(found), content_type="image/svg+xml")
    return json_response(trace_view(found))


def _audit_entries_params() -> tuple[Param, ...]:
    return (
        *(query(name, {"type": "string", "pattern": "^bl1[a-z2-7]{58}$"}) for name in ("author", "counterparty")),
        query("asset", {"type": "string"}),
        query("kind", {"type": "string", "enum": operation_kinds()}),
        query("outcome", {"type": "string", "enum": ["FINAL", "REJECTED", "HELD"]}),
        query("code", {"type": "string"}, "reason code, e.g. insufficient_funds"),
        *(int_param(name, 0) for name in ("from_height", "to_height", "from_time", "to_time")),
        limit_query(),
        query("before", {"type": "string", "pattern": r"^\d+(:-?\d+)?$"},
              "HEIGHT or HEIGHT:POSITION: only entries ordered before it (the `next` of the previous page)"),
    )


ROUTES = (
    Route("GET", "/v1/audit/actions", list_management_actions,
          "The management audit log: governance, regulator and identity entries, newest first, with outcomes and"
          " causes; lapsed emergencies listed as derived events", {200: r.ManagementLog},
          ("bad_request", "not_found"), params=(int_param("before", 1), limit_query())),
    Route("GET", "/v1/audit/proof/{entry_id}", get_entry_proof,
          "A self-contained proof of an entry's outcome that a light client checks offline against genesis.json"
          " alone (`bilayer audit verify`)", {200: EntryProof}, ("bad_request", "not_found", "not_yet_provable"),
          description="The signed entry (payload, or its tombstone), its result with the RFC 6962 audit path to the"
                      " results root of its height h, checkpoint h and the certified checkpoint h+1 that signs that"
                      " root, and the chain of validator set changes from genesis. 409 not_yet_provable until h+1"
                      " is final.",
          params=(ENTRY_ID,)),
    Route("GET", "/v1/audit/state-proof/{address}", get_state_proof,
          "An account's balances, author head, freezes, ban and identity, each proven present or absent against"
          " the state root after a height (default: the latest certified one), with its certificate and the"
          " validator set chain", {200: AccountProof},
          ("invalid_address", "bad_request", "not_found", "not_yet_provable", "state_version_pruned",
           "state_version_unknown"),
          params=(ADDRESS, query("asset", {"type": "string", "pattern": "^[A-Z0-9]{1,16}$"},
                                 "only this asset's balance (zero is proven by absence)"),
                  int_param("height", 0, description="the state after this height; older than the node's"
                                                      " retained heights: 410 state_version_pruned"))),
    Route("GET", "/v1/audit/export", get_evidence_export,
          "An evidence package for an account and a window of checkpoint times and/or heights: every entry it"
          " authored or received, the management acts behind them, each with its proof, and a manifest hashing"
          " every file", {200: Package}, ("invalid_address", "bad_request", "not_found", "export_too_large"),
          params=(query("account", {"type": "string"}, required=True),
                  query("from", {"type": "string"}, "checkpoint time: ms since the epoch, or an ISO-8601 time (UTC"
                                                    " unless stated); at least one bound of the window is required"),
                  query("to", {"type": "string"}, "inclusive; same forms"),
                  int_param("from_height", 1), int_param("to_height", 1, description="inclusive"))),
    Route("GET", "/v1/audit/entries", list_audit_entries,
          "Ordered entries from the audit index, newest first, by author, counterparty, asset, operation kind,"
          " outcome, reason code, height and checkpoint time; paged with `next`", {200: r.AuditEntries},
          ("audit_filter_invalid", "invalid_address", "not_found"), params=_audit_entries_params()),
    Route("GET", "/v1/audit/trace", get_audit_trace,
          "Fund tracing, first in first out: where the funds of an address or of one entry went (forward) or came"
          " from (backward), as a graph in JSON or drawn in SVG", {200: r.Trace},
          ("trace_start_invalid", "trace_direction_invalid", "trace_hops_invalid", "trace_asset_invalid",
           "bad_request", "not_found"),
          params=(query("start", {"type": "string"}, "an address (bl1...) or the id of an entry that moved funds",
                        required=True),
                  query("direction", {"type": "string", "enum": ["forward", "backward"], "default": "forward"}),
                  query("hops", {"type": "integer", "minimum": 1, "maximum": MAX_HOPS, "default": 3}),
                  query("asset", {"type": "string"}),
                  query("format", {"type": "string", "enum": list(TRACE_FORMATS), "default": "json"}),
                  query("max_edges", {"type": "integer", "minimum": 1, "maximum": MAX_TRACE_EDGES,
                                      "default": DEFAULT_LIMITS.max_edges}),
                  int_param("dust", 0, description="smallest traced amount followed; 0: a millionth of the starting"
                                                   " amount")),
          also=(Media("image/svg+xml", "the trace drawn"),)),
)

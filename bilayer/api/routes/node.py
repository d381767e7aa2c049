"""The node's own routes: status, peers, health and readiness, metrics, the event stream, the
web console and the API document."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from ... import __version__
from ...errors import NotFound, NotReady
from ...ledger.operations import operation_kinds
from .. import responses as r
from ..context import DOCUMENT, NODE, ROUTE_TABLE, json_response, now_ms
from ..openapi import generate
from ..spec import Media, Route, path_param
from ..stream import serve_stream

STATIC_DIR = Path(__file__).parent.parent / "static"
_STATIC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.(?:js|css)")
STREAM_DESCRIPTION = (
    "`hello` first (chain_id, height, entries), then `entry` when an entry is accepted into the DAG (id, author,"
    " seq, kind, parents, time_ms) and `checkpoint` when one is applied (height, id, time_ms, entry_count,"
    " entries: at most 5000 ids, counts by outcome, rejected and held ids, state_root); `heartbeat` every 15 s"
    " when idle. A client more than 2048 events behind gets `dropped` and is disconnected."
)


async def get_status(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response(node.status())


async def get_peers(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response(r.Peers(peers=[r.Peer(node_key=p["node_key"], listen=p["listen"],
                                               direction=p["direction"])  # type: ignore[arg-type]
                                        for p in node.peers.peer_list()]))


async def get_metrics(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return web.Response(body=node.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})


async def get_health(request: web.Request) -> web.Response:
    """Liveness: the process answers. A halted or lagging node is alive; restarting it would not help."""
    node = request.app[NODE]
    return json_response(r.Health(status="ok", uptime_s=round(time.time() - node.started_s, 1)))


async def get_ready(request: web.Request) -> web.Response:
    """Readiness: caught up, linked to peers, not halted, storage working; else 503 with the reasons."""
    node = request.app[NODE]
    reasons = node.not_ready()
    if reasons:
        raise NotReady("not ready: " + ", ".join(reasons), reasons=reasons)
    return json_response(r.Ready(status="ready"))


async def get_openapi(request: web.Request) -> web.Response:
    """The document of exactly the routes this application serves, generated on the first
    request (it takes tens of milliseconds) and kept: the table does not change."""
    cache = request.app[DOCUMENT]
    if "json" not in cache:
        routes = request.app[ROUTE_TABLE]
        cache["json"] = msgspec.json.encode(generate(routes, __version__, operation_kinds()))
    return web.Response(body=cache["json"], content_type="application/json")


async def get_index(request: web.Request) -> web.StreamResponse:
    """The web console (a single page; its routes are in the URL fragment)."""
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def get_static(request: web.Request) -> web.StreamResponse:
    """The console's own scripts and styles; nothing else under this directory is served."""
    name = request.match_info["filename"]
    path = STATIC_DIR / name
    if not _STATIC_NAME.fullmatch(name) or not path.is_file():
        raise NotFound(f"no console file {name!r}")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def get_stream(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    chain = node.chain
    hello: dict[str, Any] = {"chain_id": node.genesis.chain_id, "height": chain.height if chain is not None else None,
                             "entries": len(node.ingest.dag), "time_ms": now_ms()}
    return await serve_stream(request, node.stream, hello)


ROUTES = (
    Route("GET", "/", get_index, "The web console (HTML; a single page whose routes are in the URL fragment)",
          {200: Media("text/html", "HTML")}),
    Route("GET", "/static/{filename}", get_static, "The console's scripts (JavaScript modules) and style sheet",
          {200: Media("text/javascript", "the file")}, ("not_found",),
          params=(path_param("filename", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*[.](js|css)$"}),),
          also=(Media("text/css", "the style sheet"),)),
    Route("GET", "/v1/stream", get_stream, "Live events as server-sent events (text/event-stream)",
          {200: Media("text/event-stream", "an event stream")}, ("overloaded",), description=STREAM_DESCRIPTION),
    Route("GET", "/v1/status", get_status, "Node and chain status", {200: r.Status},
          description="`catching_up` is true while a peer reports checkpoints two or more heights ahead of this"
                      " node."),
    Route("GET", "/v1/peers", get_peers, "Authenticated peer links: node key, advertised address, direction",
          {200: r.Peers}),
    Route("GET", "/metrics", get_metrics, "Prometheus metrics (text format)",
          {200: Media("text/plain", "metrics")}),
    Route("GET", "/health", get_health, "Liveness: the process answers (a halted or lagging node is alive)",
          {200: r.Health}),
    Route("GET", "/ready", get_ready, "Readiness: caught up, linked to peers, not halted, storage working",
          {200: r.Ready}, ("not_ready",),
          description="503 `not_ready` lists `details.reasons`: `catching_up`, `no_peers`, `isolated`, `halted`,"
                      " `storage_failed`."),
    Route("GET", "/openapi.json", get_openapi, "This document", {200: dict[str, Any]}),
)

"""What every route module shares: the application's keys, reading parameters and bodies,
and writing answers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from ..audit.proof import ProofQueue
from ..errors import BadRequest, BilayerError, NotFound, RateLimited
from ..execution.governance.options import parse_hex32
from ..ratelimit import RateLimiter
from .spec import Route
from .status import RETRY_AFTER_STATUSES, error_status

if TYPE_CHECKING:
    from .nodeview import ChainView, NodeView

NODE: web.AppKey[NodeView] = web.AppKey("node")
LIMITER: web.AppKey[RateLimiter] = web.AppKey("limiter")
MAX_BODY: web.AppKey[int] = web.AppKey("max_body")
PROOF_HISTORY: web.AppKey[ProofQueue] = web.AppKey("proof_history")
PROOF_WORKER: web.AppKey[ThreadPoolExecutor] = web.AppKey("proof_worker")
ROUTE_TABLE: web.AppKey[tuple[Route, ...]] = web.AppKey("route_table")
DOCUMENT: web.AppKey[dict[str, bytes]] = web.AppKey("document")  # /openapi.json, encoded once

MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
MAX_LIST = 1000

_encoder = msgspec.json.Encoder()


def json_response(body: Any, status: int = 200) -> web.Response:
    """A Struct (or a body passed on as it came) as JSON."""
    return web.Response(body=_encoder.encode(body), status=status, content_type="application/json")


def error_response(exc: BilayerError) -> web.Response:
    status = error_status(exc.code)
    response = json_response(exc.to_json(), status)
    retry_after = getattr(exc, "retry_after_s", None)
    if status in RETRY_AFTER_STATUSES and isinstance(retry_after, int):
        response.headers["Retry-After"] = str(max(1, retry_after))  # the CLI and the SDK wait that long
    return response


def entry_id_param(request: web.Request) -> bytes:
    return parse_hex32(request.match_info["entry_id"], "an entry id")


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
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


def finality_chain(node: NodeView) -> ChainView:
    if node.chain is None:
        raise NotFound("this chain has no validators, so nothing is finalized")
    return node.chain


def now_ms() -> int:
    return int(time.time() * 1000)


async def read_body(request: web.Request) -> tuple[bytes, bool]:
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


def check_connection_rate(request: web.Request, cost: int) -> None:
    limiter = request.app[LIMITER]
    if not limiter.allow(request.remote or "?", time.monotonic(), cost):
        request.app[NODE].metrics.entries_refused.labels("rate_limited").inc(cost)
        raise RateLimited("this connection is submitting faster than the node's per-connection limit")

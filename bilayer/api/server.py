"""The HTTP application of a node (aiohttp): the route table (`routes/`), and the middleware
every route runs behind.

Every failure is `{"error": {"code": ..., "message": ...}}` with the status `status.py` gives
its code: 4xx for bad input, 5xx only for real faults; no route ever answers with a stack trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..audit.proof import ProofQueue
from ..errors import BilayerError
from ..ratelimit import RateLimiter
from .context import (
    DOCUMENT,
    LIMITER,
    MAX_BODY,
    MAX_LIST,
    NODE,
    PROOF_HISTORY,
    PROOF_WORKER,
    ROUTE_TABLE,
    error_response,
    json_response,
)
from .guard import ConnectionGuard
from .nodeview import NodeView
from .routes import ROUTES
from .routes.entries import MAX_BATCH
from .spec import Handler
from .status import HTTP_CODES

log = logging.getLogger("bilayer.api")

__all__ = ["MAX_BATCH", "MAX_LIST", "build_app", "error_response"]


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
        code = HTTP_CODES.get(exc.status, "http_error")
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


# The console loads only its own files and talks only to this node: no inline script, nothing from elsewhere.
CONSOLE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
               " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


async def _console_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/" or request.path.startswith("/static/"):
        response.headers["Content-Security-Policy"] = CONSOLE_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"


def build_app(
    node: NodeView,
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
    app[PROOF_HISTORY] = ProofQueue()
    app[PROOF_WORKER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="proofs")
    app[ROUTE_TABLE] = ROUTES
    app[DOCUMENT] = {}

    async def stop_proof_worker(app: web.Application) -> None:
        app[PROOF_WORKER].shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(stop_proof_worker)
    app.on_response_prepare.append(_console_headers)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    return app

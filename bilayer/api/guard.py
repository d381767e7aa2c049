"""The HTTP port against hostile clients: connection caps, read deadlines, quiet accept errors.

Anyone may open connections to a node's API, so what one client can hold is bounded:

* **Caps.** At most `max_connections` connections in total and `max_per_ip` from one address.
  A connection over a cap first displaces the oldest connection (of that address, or of all)
  that has not yet delivered a complete request: such a connection costs the node a
  descriptor and gives it nothing, and an honest client sends its request at once. When
  every connection is busy with a request, the newcomer is refused with a fixed 503 answer
  written straight to the socket, before any HTTP machinery is built for it.
* **Deadlines.** A connection must deliver its request headers within `header_timeout_s`
  of opening (or of its previous response), and a request its whole body within
  `body_timeout_s` of its headers; otherwise the node closes it. A long-poll, once its
  request is complete, is not affected.
* **Accept errors.** When the process runs out of descriptors, `accept()` fails on every
  loop turn; the loop's default handler would log each failure with a traceback. Here
  they are logged one line at a time, at most once per `ACCEPT_LOG_INTERVAL_S`, with the
  count of failures suppressed in between.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

log = logging.getLogger("bilayer.api")

ACCEPT_LOG_INTERVAL_S = 10.0
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_REFUSAL_BODY = b'{"error": {"code": "overloaded", "message": "too many connections; retry later"}}'
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Retry-After: 1\r\nContent-Length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY
)

Dropped = Callable[[str], None]


class GuardedConnection(asyncio.Protocol):
    """One accepted connection: admitted or refused by the guard, then handed to aiohttp's
    protocol, which sees every byte unchanged; the guard only ever closes the transport."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]) -> None:
        self.guard = guard
        self._factory = factory
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.ip = "?"
        self.requests_open = 0
        self._deadline: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self.guard.admit(self):
            transport.write(REFUSAL)
            transport.close()
            return
        self.inner = self._factory()
        self.inner.connection_made(transport)
        self.await_request()

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self.inner is not None:
            self.guard.release(self)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # --- request life cycle (driven by the middleware) ----------------------------------

    @property
    def awaiting_request(self) -> bool:
        """True between requests: the headers of the next one have not all arrived."""
        return self.requests_open == 0

    def await_request(self) -> None:
        self._arm(self.guard.header_timeout_s, self._headers_overdue)

    def request_started(self) -> None:
        self.requests_open += 1
        self._cancel_deadline()

    def request_finished(self) -> None:
        self.requests_open -= 1
        if self.requests_open == 0:
            self.await_request()

    def drop(self, reason: str) -> None:
        self._cancel_deadline()
        if self.transport is not None and not self.transport.is_closing():
            self.guard.on_drop(reason)
            self.transport.abort()

    def _headers_overdue(self) -> None:
        self._deadline = None
        if not self.awaiting_request:
            return
        if self.transport is not None and self.transport.get_write_buffer_size() > 0:
            self.await_request()  # the previous response is still being written: not idle yet
            return
        self.drop("header_timeout")

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_deadline()
        if delay > 0:
            self._deadline = asyncio.get_running_loop().call_later(delay, callback)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


class ConnectionGuard:
    """Bookkeeping of the open connections and the policy over them (see the module doc)."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_per_ip: int,
        header_timeout_s: float,
        body_timeout_s: float,
        on_drop: Dropped = lambda reason: None,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.on_drop = on_drop
        # insertion-ordered: the oldest connection first
        self._all: dict[GuardedConnection, None] = {}
        self._by_ip: dict[str, dict[GuardedConnection, None]] = {}
        self._by_transport: dict[asyncio.BaseTransport, GuardedConnection] = {}

    def __len__(self) -> int:
        return len(self._all)

    def count_from(self, ip: str) -> int:
        return len(self._by_ip.get(ip, ()))

    def admit(self, conn: GuardedConnection) -> bool:
        """Make room for `conn` if a cap is reached, by displacing an idle connection; False if none is."""
        same_ip = self._by_ip.get(conn.ip, {})
        if len(same_ip) >= self.max_per_ip and not self._displace(same_ip):
            self.on_drop("refused_per_ip")
            return False
        if len(self._all) >= self.max_connections and not self._displace(self._all):
            self.on_drop("refused_total")
            return False
        self._all[conn] = None
        self._by_ip.setdefault(conn.ip, {})[conn] = None
        assert conn.transport is not None
        self._by_transport[conn.transport] = conn
        return True

    def _displace(self, pool: dict[GuardedConnection, None]) -> bool:
        victim = next((c for c in pool if c.awaiting_request), None)
        if victim is None:
            return False
        self.release(victim)
        victim.drop("displaced")
        return True

    def release(self, conn: GuardedConnection) -> None:
        self._all.pop(conn, None)
        same_ip = self._by_ip.get(conn.ip)
        if same_ip is not None:
            same_ip.pop(conn, None)
            if not same_ip:
                del self._by_ip[conn.ip]
        if conn.transport is not None:
            self._by_transport.pop(conn.transport, None)

    def connection_of(self, request: web.BaseRequest) -> GuardedConnection | None:
        transport = request.transport
        return None if transport is None else self._by_transport.get(transport)

    def middleware(self) -> Middleware:
        """Marks a connection busy while a request runs, and closes it if the body is not all
        there within `body_timeout_s` of the headers."""

        @web.middleware
        async def guard_requests(request: web.Request,
                                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            conn = self.connection_of(request)
            if conn is None:
                return await handler(request)
            conn.request_started()
            body_deadline: asyncio.TimerHandle | None = None
            if request.body_exists and not request.content.is_eof() and self.body_timeout_s > 0:

                def body_overdue() -> None:
                    if not request.content.is_eof():
                        conn.drop("body_timeout")

                body_deadline = asyncio.get_running_loop().call_later(self.body_timeout_s, body_overdue)
            try:
                return await handler(request)
            finally:
                if body_deadline is not None:
                    body_deadline.cancel()
                conn.request_finished()

        return guard_requests


class GuardedSite(web.TCPSite):
    """A TCP site whose every connection passes through a `ConnectionGuard`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, guard: ConnectionGuard,
                 backlog: int = 1024) -> None:
        super().__init__(runner, host, port, backlog=backlog)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        guard = self.guard
        factory: Callable[[], asyncio.Protocol] = server
        self._server = await asyncio.get_running_loop().create_server(
            lambda: GuardedConnection(guard, factory), self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
        )


class AcceptErrorLog:
    """A loop exception handler that reports running out of descriptors (or memory) in one
    line per interval instead of a traceback per failed accept; anything else goes to the
    loop's default handler."""

    def __init__(self, interval_s: float = ACCEPT_LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic,
                 on_error: Callable[[], None] = lambda: None) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.on_error = on_error
        self.suppressed = 0
        self._last_logged: float | None = None

    @staticmethod
    def is_resource_error(context: dict[str, Any]) -> bool:
        exc = context.get("exception")
        return isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not self.is_resource_error(context):
            loop.default_exception_handler(context)
            return
        self.on_error()
        now = self.clock()
        if self._last_logged is not None and now - self._last_logged < self.interval_s:
            self.suppressed += 1
            return
        exc = context["exception"]
        more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
        log.error("cannot accept connections: %s%s; raise the descriptor limit or lower the connection caps",
                  exc.strerror or exc, more)
        self._last_logged = now
        self.suppressed = 0

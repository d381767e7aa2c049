"""Live events for browsers: a server-sent-events stream of accepted entries and applied checkpoints.

The node publishes into a `StreamHub` from its runtime hooks; every client of `GET /v1/stream`
has its own bounded queue. A client that does not keep up is dropped (told so, then
disconnected) rather than letting its queue grow: a browser reconnects and reloads what it
shows, while an unbounded queue would let one slow reader exhaust the node's memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from ..errors import Overloaded
from ..keys.address import address_from_public_key

log = logging.getLogger("bilayer.api.stream")

if TYPE_CHECKING:
    from ..ledger.entry import Entry
    from ..node.chain import Applied

QUEUE_SIZE = 2048  # events a client may fall behind by before it is dropped
MAX_CLIENTS = 256
HEARTBEAT_S = 15.0
MAX_CHECKPOINT_IDS = 5000  # entry ids listed in one checkpoint event; `entry_count` says how many there were


@dataclass(eq=False)
class Subscriber:
    """One connected client: its queue, and whether the hub gave up on it."""

    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False


def sse_frame(event: str, data: Any) -> bytes:
    """One server-sent event: a name and a one-line JSON document."""
    return b"event: " + event.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


class StreamHub:
    """Fans events out to subscribers; never blocks the publisher and never grows without bound."""

    def __init__(self, queue_size: int = QUEUE_SIZE, max_clients: int = MAX_CLIENTS) -> None:
        self.queue_size = queue_size
        self.max_clients = max_clients
        self.subscribers: set[Subscriber] = set()
        self.dropped_total = 0
        self.closed = False

    def subscribe(self) -> Subscriber:
        if self.closed:
            raise Overloaded("the node is shutting down")
        if len(self.subscribers) >= self.max_clients:
            raise Overloaded(f"this node already streams to {self.max_clients} clients; try again later")
        subscriber = Subscriber(asyncio.Queue(self.queue_size))
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def publish(self, event: str, data: Any) -> None:
        if not self.subscribers:
            return
        frame = sse_frame(event, data)
        for subscriber in list(self.subscribers):
            try:
                subscriber.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._drop(subscriber)

    def _drop(self, subscriber: Subscriber) -> None:
        subscriber.dropped = True
        self.dropped_total += 1
        self.subscribers.discard(subscriber)
        _wake(subscriber)

    def close(self) -> None:
        """Shutdown: every open stream ends now, so the HTTP server need not wait for them."""
        self.closed = True
        for subscriber in list(self.subscribers):
            _wake(subscriber)
        self.subscribers.clear()

    # --- what the runtime publishes ------------------------------------------------------------

    def entries_accepted(self, entries: Sequence[Entry]) -> None:
        if not self.subscribers:
            return
        for entry in entries:
            self.publish("entry", {
                "id": entry.id.hex(), "author": address_from_public_key(entry.author), "seq": entry.seq,
                "kind": entry.header.kind, "parents": [p.hex() for p in entry.parents],
                "time_ms": entry.header.time_ms,
            })

    def checkpoint_applied(self, applied: Applied) -> None:
        if not self.subscribers:
            return
        ids = [r.entry_id.hex() for r in applied.results]
        self.publish("checkpoint", {
            "height": applied.height, "id": applied.checkpoint.id.hex(), "time_ms": applied.checkpoint.time_ms,
            "entry_count": len(ids), "entries": ids[:MAX_CHECKPOINT_IDS], "counts": _outcome_counts(applied),
            "rejected": _ids_with(applied, "REJECTED"), "held": _ids_with(applied, "HELD"),
            "state_root": applied.state_root.hex(),
        })


def _outcome_counts(applied: Applied) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in applied.results:
        counts[str(result.outcome)] = counts.get(str(result.outcome), 0) + 1
    return counts


def _ids_with(applied: Applied, outcome: str) -> list[str]:
    """The entries of a checkpoint that did not end FINAL, so a client can colour each without asking."""
    return [r.entry_id.hex() for r in applied.results if str(r.outcome) == outcome][:MAX_CHECKPOINT_IDS]


def _wake(subscriber: Subscriber) -> None:
    """Make the client's handler return: an end marker it reads before anything still queued."""
    while True:
        try:
            subscriber.queue.get_nowait()
        except asyncio.QueueEmpty:
            break
    subscriber.queue.put_nowait(None)


async def serve_stream(request: web.Request, hub: StreamHub, hello: dict[str, Any],
                       heartbeat_s: float = HEARTBEAT_S) -> web.StreamResponse:
    """`GET /v1/stream`: `hello` first (where the node stands), then events as they happen,
    a `heartbeat` when idle, and `dropped` before closing on a client that fell behind."""
    subscriber = hub.subscribe()
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n" + sse_frame("hello", hello))
        while True:
            try:
                frame = await asyncio.wait_for(subscriber.queue.get(), heartbeat_s)
            except TimeoutError:
                frame = sse_frame("heartbeat", {"time_ms": int(time.time() * 1000)})
            if frame is None:
                if subscriber.dropped:
                    await response.write(sse_frame("dropped", {"reason": "this client fell behind the stream"}))
                break
            await response.write(frame)
    except ConnectionResetError:
        log.debug("a stream client went away")
    finally:
        hub.unsubscribe(subscriber)
    return response

"""What the web console relies on, without a browser: the live stream and entry drafts, on a real node."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import urllib.error
import urllib.request
from typing import Any

import msgspec

from bilayer.api.stream import StreamHub
from bilayer.codec import decode
from bilayer.keys.keystore import Keystore
from bilayer.ledger.entry import EntryHeader, signing_message
from bilayer.ledger.operations import GovVote
from tests.support.builders import seeded_signer
from tests.support.cli import assert_error, bilayer


def post_json(url: str, body: Any, content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def read_events(sock_file: Any, wanted: int) -> list[tuple[str, dict[str, Any]]]:
    """Server-sent events from an open stream, until `wanted` named events were read (the socket has a timeout)."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = None
    for _ in range(10_000):
        line = sock_file.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: ") and name is not None:
            events.append((name, json.loads(line[len("data: "):])))
            name = None
            if len(events) >= wanted:
                return events
    raise AssertionError(f"the stream ended after {events}")


def open_stream(api_url: str) -> tuple[socket.socket, Any]:
    host, port = api_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=15)
    sock.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    stream = sock.makefile("rb")
    head = []
    while (line := stream.readline()) not in (b"\r\n", b""):
        head.append(line.decode().strip())
    assert head[0].startswith("HTTP/1.1 200"), head
    assert "content-type: text/event-stream" in [h.lower() for h in head]
    return sock, stream


def test_a_slow_client_is_dropped_and_closing_ends_every_stream() -> None:
    async def scenario() -> None:
        hub = StreamHub(queue_size=3, max_clients=2)
        slow, fast = hub.subscribe(), hub.subscribe()
        for n in range(3):
            hub.publish("entry", {"n": n})
        frames = [fast.queue.get_nowait() for _ in range(3)]
        assert frames == [b'event: entry\ndata: {"n":%d}\n\n' % n for n in range(3)]
        hub.publish("entry", {"n": 3})  # the slow client's queue is full: it is dropped, not grown
        assert slow.dropped and slow not in hub.subscribers and hub.dropped_total == 1
        assert slow.queue.qsize() == 1 and slow.queue.get_nowait() is None  # its handler wakes up and ends
        assert fast.queue.get_nowait() == b'event: entry\ndata: {"n":3}\n\n'
        hub.subscribe()
        try:
            hub.subscribe()
            raise AssertionError("a third client was accepted")
        except Exception as exc:
            assert getattr(exc, "code", None) == "overloaded"
        hub.close()
        assert fast.queue.get_nowait() is None and not hub.subscribers

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_draft_signed_outside_the_node_is_accepted_and_streamed(single_node: dict[str, Any]) -> None:
    url = single_node["nodes"][0]["api_url"]
    signer = seeded_signer(41)
    sock, stream = open_stream(url)
    try:
        [(name, hello)] = read_events(stream, 1)
        assert name == "hello" and hello["entries"] == 0

        status, draft = post_json(url + "/v1/entries/draft", {"author": signer.address, "kind": "data",
                                                              "op": {"media_type": "text/plain"}, "payload": "héllo"})
        assert status == 200, draft
        header_bytes = bytes.fromhex(draft["header"])
        assert hashlib.sha256(header_bytes).hexdigest() == draft["id"]
        header = decode(header_bytes, EntryHeader)
        assert (header.author, header.seq, header.kind) == (signer.public_key, 0, "data")
        assert header.payload_hash == hashlib.sha256("héllo".encode()).digest()
        assert int.from_bytes(bytes.fromhex(draft["id"])[:1], "big") >> 4 == 0  # the 4-bit stamp is made

        signature = signer.sign(signing_message(bytes.fromhex(draft["id"])))
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        status, stored = post_json(url + "/v1/entries", {"header": b64(header_bytes), "signature": b64(signature),
                                                        "payload": b64("héllo".encode())})
        assert (status, stored["status"]) == (201, "stored")

        [(name, event)] = read_events(stream, 1)
        assert name == "entry"
        assert event == {"id": draft["id"], "author": signer.address, "seq": 0, "kind": "data",
                         "parents": draft["parents"], "time_ms": header.time_ms}

        # the next draft continues the author's chain
        status, second = post_json(url + "/v1/entries/draft", {"author": signer.public_key.hex(), "kind": "gov.vote",
                                                               "op": {"proposal": 2, "choice": "yes"}})
        assert status == 200 and second["seq"] == 1 and second["parents"][0] == draft["id"]
        body = decode(bytes.fromhex(second["header"]), EntryHeader).body
        assert msgspec.msgpack.decode(body, type=GovVote) == GovVote(proposal=2, choice="yes")
    finally:
        sock.close()


def test_bad_drafts_get_stable_error_codes(single_node: dict[str, Any]) -> None:
    url = single_node["nodes"][0]["api_url"] + "/v1/entries/draft"
    author = seeded_signer(42).address
    cases = [
        ({"author": author, "kind": "mint", "op": {}}, 400, "bad_request"),
        ({"author": "bl1nothing", "kind": "data", "op": {}}, 400, "invalid_address"),
        ({"author": author, "kind": "gov.vote", "op": {"proposal": 1, "choice": "maybe"}}, 400, "invalid_operation"),
        ({"author": author, "kind": "gov.vote", "op": {"proposal": "one", "choice": "yes"}}, 400, "bad_request"),
        ({"author": author, "kind": "reg.review", "op": {"entry": "00", "decision": "release", "reason": "x"}}, 400,
         "bad_request"),
        ({"author": author, "kind": "gov.propose", "op": {"action": "freeze", "reason": "r"}}, 400, "bad_request"),
        ({"author": author, "kind": "gov.propose", "op": {"action": "explode", "reason": "r"}}, 400, "bad_request"),
        ({"author": author, "kind": "data", "op": {"media_type": "text/plain"}, "payload": "x" * 70_000}, 413,
         "payload_too_large"),
        ({"author": author, "op": {}}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        got_status, got = post_json(url, body)
        assert (got_status, got["error"]["code"]) == (status, code), (body, got)
    assert post_json(url, b"x", "text/plain")[1]["error"]["code"] == "unsupported_media_type"
    assert post_json(url, b"\x80", "application/msgpack")[1]["error"]["code"] == "bad_request"
    assert post_json(url, msgspec.msgpack.encode({"author": author, "kind": "data", "op": {}}),
                     "application/msgpack")[0] == 200
    assert post_json(url, b"{not json")[1]["error"]["code"] == "bad_request"


def test_the_console_is_served_with_a_content_security_policy(single_node: dict[str, Any]) -> None:
    url = single_node["nodes"][0]["api_url"]
    with urllib.request.urlopen(url + "/", timeout=10) as response:
        page = response.read().decode()
        policy = response.headers["Content-Security-Policy"]
    assert '<script type="module" src="/static/app.js">' in page and "<script>" not in page
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "'unsafe-inline'" not in policy
    with urllib.request.urlopen(url + "/static/sign.js", timeout=10) as response:
        assert "javascript" in response.headers["Content-Type"]
        assert "crypto.subtle" in response.read().decode()
    for name in ("index.html", "..%2Fserver.py", "nothing.js"):
        try:
            urllib.request.urlopen(f"{url}/static/{name}", timeout=10)
            raise AssertionError(f"/static/{name} was served")
        except urllib.error.HTTPError as error:
            assert error.code == 404 and json.loads(error.read())["error"]["code"] == "not_found"


def test_keys_export_seed_prints_the_seed_of_a_key(tmp_path: Any) -> None:
    store = Keystore(tmp_path / "keys")
    signer = seeded_signer(7)
    store.create("carol", signer)
    shown = bilayer("keys", "export-seed", "carol", "--keystore", str(tmp_path / "keys"), "--json").json()
    assert shown == {"name": "carol", "address": signer.address, "seed": signer.seed.hex()}
    assert_error(bilayer("keys", "export-seed", "nobody", "--keystore", str(tmp_path / "keys")), "key_not_found")

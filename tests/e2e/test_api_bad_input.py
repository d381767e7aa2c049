"""The HTTP API under malformed, truncated, oversized and hostile input, against a real node.

Every refusal must be a 4xx answer with the body `{"error": {"code": ..., "message": ...}}`
and no stack trace; afterwards the node still answers and every entry it stored before is
served byte for byte as it was.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bilayer import codec
from bilayer.api.routes.apps import TYPED_QUERIES
from bilayer.api.server import MAX_BATCH, MAX_LIST, build_app
from bilayer.devnet import localnet
from bilayer.genesis import Genesis, load_genesis
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import ENTRY_VERSION, EntryHeader, SignedEntry, entry_id, signing_message
from bilayer.ledger.operations import Data, Transfer
from bilayer.ledger.pow import NONCE_SIZE, find_nonce, has_work
from bilayer.node.config import LimitsConfig
from tests.support.builders import TEST_POW_BITS, make_entry, transfer_to

TIMEOUT_S = 10.0
ZERO_ID = "00" * 32


# --- talking to the node ----------------------------------------------------------------


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    def __init__(self, manifest: dict[str, Any]) -> None:
        info = manifest["nodes"][0]
        url = urllib.parse.urlsplit(info["api_url"])
        assert url.hostname == "127.0.0.1" and url.port is not None
        self.host, self.port = url.hostname, url.port
        self.log = Path(info["log"])
        self.genesis: Genesis = load_genesis(Path(manifest["genesis"]))

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)
        try:
            all_headers = dict(headers or {})
            if content_type is not None:
                all_headers["Content-Type"] = content_type
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            return Reply(response.status, response.headers.get_content_type(), response.read())
        finally:
            connection.close()

    def get(self, path: str) -> Reply:
        return self.call("GET", path)

    def post_entry(self, signed: SignedEntry, fmt: str = "msgpack") -> Reply:
        if fmt == "msgpack":
            return self.call("POST", "/v1/entries", codec.encode(signed), "application/msgpack")
        return self.call("POST", "/v1/entries", msgspec.json.encode(signed), "application/json")

    def post_batch(self, items: list[SignedEntry], fmt: str = "msgpack") -> Reply:
        if fmt == "msgpack":
            return self.call("POST", "/v1/entries/batch", codec.encode(items), "application/msgpack")
        body = msgspec.json.encode({"entries": items})
        return self.call("POST", "/v1/entries/batch", body, "application/json")

    def raw(self, data: bytes, *, half_close: bool = False, timeout: float = 3.0) -> bytes:
        """Send raw bytes, read the answer until the node closes (or `timeout`)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            with contextlib.suppress(OSError):  # the node may answer and close before reading everything
                sock.sendall(data)
                if half_close:
                    sock.shutdown(socket.SHUT_WR)
            received = bytearray()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    chunk = sock.recv(65536)
                except (TimeoutError, ConnectionResetError):
                    break
                if not chunk:
                    break
                received += chunk
                if b"\r\n\r\n" in received and _complete(bytes(received)):
                    break
            return bytes(received)


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def raw_status(response: bytes) -> int:
    status_line = response.split(b"\r\n", 1)[0].split(b" ")
    assert len(status_line) >= 2 and status_line[0].startswith(b"HTTP/"), response[:200]
    return int(status_line[1])


def raw_body(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def assert_error(reply: Reply, status: int, code: str | None = None) -> dict[str, Any]:
    """A refusal: the expected 4xx status, the error shape, a code, no stack trace."""
    assert reply.status == status, f"expected {status}, got {reply.status}: {reply.body[:300]!r}"
    assert 400 <= reply.status < 500
    assert reply.content_type == "application/json", reply.content_type
    text = reply.body.decode("utf-8")
    assert "Traceback" not in text and 'File "' not in text
    document = json.loads(text)
    assert set(document) == {"error"}, document
    error = document["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


# --- entries ------------------------------------------------------------------------------


def craft(
    signer: Signer,
    genesis: Genesis,
    *,
    payload: bytes = b"",
    pow_bits: int | None = None,
    raw_header: bytes | None = None,
    **fields: Any,
) -> tuple[bytes, SignedEntry]:
    """A correctly stamped and signed entry whose header says whatever `fields` say."""
    kind, body = "data", codec.encode(Data(media_type="text/plain"))
    values: dict[str, Any] = {
        "version": ENTRY_VERSION,
        "chain": genesis.chain_id,
        "author": signer.public_key,
        "seq": 0,
        "parents": (genesis.root,),
        "time_ms": int(time.time() * 1000),
        "kind": kind,
        "body": body,
        "payload_hash": codec.sha256(payload),
        "payload_size": len(payload),
        "nonce": bytes(NONCE_SIZE),
    }
    values.update(fields)
    header_bytes = raw_header if raw_header is not None else codec.encode(EntryHeader(**values))
    bits = genesis.params.pow_bits if pow_bits is None else pow_bits
    header_bytes = header_bytes[:-NONCE_SIZE] + find_nonce(header_bytes[:-NONCE_SIZE], bits)
    id_ = entry_id(header_bytes)
    return id_, SignedEntry(header_bytes, signer.sign(signing_message(id_)), payload)


def without_work(genesis: Genesis) -> tuple[bytes, SignedEntry]:
    for start in range(1, 200):
        id_, signed = craft(Signer.generate(), genesis, pow_bits=0, time_ms=start)
        if not has_work(id_, TEST_POW_BITS):
            return id_, signed
    raise AssertionError("no entry without work found")


@dataclass
class Stored:
    """Entries stored before the hostile input, and what the node served for them."""

    ids: list[bytes]
    views: dict[bytes, bytes]
    payloads: dict[bytes, bytes]
    author: Signer
    count: int
    extra: int = 0
    signed: dict[bytes, SignedEntry] = field(default_factory=dict)


@pytest.fixture
def api(single_node: dict[str, Any]) -> Api:
    return Api(single_node)


def store_baseline(api: Api) -> Stored:
    genesis = api.genesis
    alice, bob = Signer.generate(), Signer.generate()
    id0, e0 = make_entry(alice, genesis, payload=b"first entry")
    id1, e1 = make_entry(alice, genesis, seq=1, parents=[id0], payload=b"second entry")
    id2, e2 = make_entry(bob, genesis, op=transfer_to(alice, 5), payload=b"memo")
    assert api.post_entry(e0, "msgpack").status == 201
    assert api.post_entry(e1, "json").status == 201
    reply = api.post_batch([e2])
    assert reply.status == 200 and reply.json() == {"results": [{"id": id2.hex(), "status": "stored"}]}
    ids = [id0, id1, id2]
    views = {}
    payloads = {}
    for id_ in ids:
        view = api.get(f"/v1/entries/{id_.hex()}")
        assert view.status == 200
        views[id_] = view.body
        payload = api.get(f"/v1/entries/{id_.hex()}/payload")
        assert payload.status == 200
        payloads[id_] = payload.body
    return Stored(ids, views, payloads, alice, len(ids), signed={id0: e0, id1: e1, id2: e2})


@pytest.fixture
def stored(api: Api) -> Stored:
    return store_baseline(api)


def assert_intact(api: Api, stored: Stored) -> None:
    """The node answers, is healthy, and serves every stored entry exactly as before."""
    status = api.get("/v1/status")
    assert status.status == 200
    document = status.json()
    assert document["healthy"] is True
    assert document["entries"] == stored.count + stored.extra
    for id_ in stored.ids:
        assert api.get(f"/v1/entries/{id_.hex()}").body == stored.views[id_]
        assert api.get(f"/v1/entries/{id_.hex()}/payload").body == stored.payloads[id_]
    listing = api.get(f"/v1/entries?limit={MAX_LIST}").json()
    listed = [row["id"] for row in listing["entries"]]
    assert listed[: stored.count] == [id_.hex() for id_ in stored.ids]
    metrics = api.get("/metrics").body.decode()
    assert 'status="500"' not in metrics, "some request ended in an internal error"
    assert "internal error on" not in api.log.read_text(errors="replace")


# --- the routes ---------------------------------------------------------------------------


def app_routes() -> set[tuple[str, str]]:
    app = build_app(cast(Any, None), max_request_bytes=1024, connection_rate=0, connection_burst=0)
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def concrete(path: str, address: str) -> str:
    replaced = path.replace("{entry_id}", ZERO_ID).replace("{address}", address)
    replaced = replaced.replace("{app}", "notary").replace("{query}", "document")
    return replaced.replace("{height}", "1").replace("{number}", "1").replace("{filename}", "app.js")


def hostile_get_cases(stored: Stored) -> dict[str, list[tuple[str, int, str | None]]]:
    """Per GET route: (path, expected status, expected error code or None for success)."""
    known = stored.ids[0].hex()
    address = stored.author.address
    bad_ids = [
        "zz",
        "ab" * 31,
        "ab" * 33,
        "a" * 63,
        "g" * 64,
        "0x" + "ab" * 31,
        "%00" * 32,
        "%C3%A9" * 32,
        "-1",
        "%20" * 64,
        "9" * 5000,
        "..%2F..%2Fstatus",
    ]
    entry_cases: list[tuple[str, int, str | None]] = [(f"/v1/entries/{bad}", 400, "bad_request") for bad in bad_ids]
    entry_cases += [
        (f"/v1/entries/{ZERO_ID}", 404, "not_found"),
        (f"/v1/entries/{known.upper()}", 200, None),
        (f"/v1/entries/{known}?with_payload=%00&limit=-1", 200, None),
    ]
    payload_cases: list[tuple[str, int, str | None]] = [
        (f"/v1/entries/{bad}/payload", 400, "bad_request") for bad in bad_ids
    ]
    payload_cases.append((f"/v1/entries/{ZERO_ID}/payload", 404, "not_found"))
    flipped = address[:-1] + ("a" if address[-1] != "a" else "b")
    bad_addresses = [
        "x",
        "bl1",
        "bl0" + address[3:],
        address.upper(),
        address[:-1],
        address + "a",
        flipped,
        "bl1" + "0" * 58,
        "bl1" + "8" * 58,
        "bl1" + "a" * 58,
        "bl1" + "%C3%9F" * 58,
        "bl1" + "=" * 58,
        "%00" * 61,
        "bl1" + "a" * 5000,
        "bl1" + address[3:][::-1],
    ]
    author_cases: list[tuple[str, int, str | None]] = [
        (f"/v1/authors/{bad}", 400, "invalid_address") for bad in bad_addresses
    ]
    author_cases.append((f"/v1/authors/{address}", 200, None))
    list_queries = [
        "limit=abc",
        "limit=-1",
        "limit=0",
        f"limit={MAX_LIST + 1}",
        "limit=1.5",
        "limit=1e3",
        "limit=",
        "limit=%00",
        "limit=99999999999999999999999999",
        "limit=" + "9" * 5000,
        "after=-1",
        "after=abc",
        f"after={2**62 + 1}",
        "after=0x10",
    ]
    list_cases: list[tuple[str, int, str | None]] = [(f"/v1/entries?{q}", 400, "bad_request") for q in list_queries]
    list_cases += [("/v1/entries?limit=1&unknown=%FF%FE", 200, None), ("/v1/entries?after=99999", 200, None)]
    tips_cases: list[tuple[str, int, str | None]] = [
        (f"/v1/tips?{q}", 400, "bad_request") for q in ("limit=abc", "limit=0", "limit=-5", f"limit={MAX_LIST + 1}")
    ]
    tips_cases.append(("/v1/tips?limit=1", 200, None))
    ignoring = "?limit=abc&after=-1&x=%00%FF&" + "y=1&" * 200
    # this node's chain has no validators: finality routes answer not_found, bad input still 400
    checkpoint_cases: list[tuple[str, int, str | None]] = [
        (f"/v1/checkpoints/{h}", 404, "not_found") for h in ("1", "latest", "abc", "-1", "9" * 5000, "%00")
    ]
    account_cases: list[tuple[str, int, str | None]] = [
        (f"/v1/accounts/{bad}", 400, "invalid_address") for bad in bad_addresses
    ]
    account_cases.append((f"/v1/accounts/{address}", 404, "not_found"))
    return {
        "/": [("/" + ignoring, 200, None)],
        "/v1/status": [("/v1/status" + ignoring, 200, None)],
        "/v1/entries": list_cases,
        "/v1/entries/{entry_id}": entry_cases,
        "/v1/entries/{entry_id}/payload": payload_cases,
        "/v1/authors/{address}": author_cases,
        "/v1/tips": tips_cases,
        "/v1/evidence": [("/v1/evidence" + ignoring, 200, None)],
        "/v1/peers": [("/v1/peers" + ignoring, 200, None)],
        "/v1/checkpoints/{height}": checkpoint_cases,
        "/v1/accounts/{address}": account_cases,
        "/v1/validators": [("/v1/validators" + ignoring, 200, None), ("/v1/validators?height=1", 200, None)]
        + [(f"/v1/validators?height={h}", 400, "bad_request") for h in ("abc", "0", "-1", "9" * 5000, "%00")],
        "/v1/validators/history": [
            (f"/v1/validators/history{q}", 404, "not_found") for q in ("", "?after=abc", "?limit=0", ignoring)
        ],
        "/v1/gov/proposals": [(f"/v1/gov/proposals{q}", 404, "not_found") for q in ("", "?status=bogus", ignoring)],
        "/v1/gov/proposals/{number}": [
            (f"/v1/gov/proposals/{n}", 404, "not_found") for n in ("1", "0", "-1", "abc", "9" * 5000, "%00")
        ],
        "/v1/gov/council": [("/v1/gov/council" + ignoring, 404, "not_found")],
        "/v1/compliance": [("/v1/compliance" + ignoring, 404, "not_found")],
        "/v1/compliance/review": [(f"/v1/compliance/review{q}", 404, "not_found")
                                  for q in ("", "?limit=abc", ignoring)],
        "/v1/params": [("/v1/params" + ignoring, 404, "not_found")],
        "/v1/apps/{app}/{query}": [(f"/v1/apps/{q}", 404, "not_found") for q in (
            "nope/document", "notary/nope", "a" * 4000 + "/q", "%00/%00", "warehouse/alerts" + ignoring)],
        "/v1/apps/notary/document": [(f"/v1/apps/notary/document{q}", 404, "not_found")
                                     for q in ("", "?hash=%00", ignoring)],
        "/v1/apps/notary/owned": [(f"/v1/apps/notary/owned{q}", 404, "not_found") for q in ("?owner=%00", ignoring)],
        **{f"/v1/apps/warehouse/{name}": [(f"/v1/apps/warehouse/{name}{q}", 404, "not_found")
                                          for q in ("", "?id=%00", "?status=%ff", ignoring)]
           for app, name in TYPED_QUERIES if app == "warehouse"},
        "/v1/audit/actions": [(f"/v1/audit/actions{q}", 404, "not_found") for q in ("", "?before=abc", ignoring)],
        "/v1/audit/entries": [(f"/v1/audit/entries{q}", 404, "not_found")
                              for q in ("", "?author=nobody", "?limit=%00", ignoring)],
        "/v1/audit/trace": [
            ("/v1/audit/trace", 400, "trace_start_invalid"),
            ("/v1/audit/trace?start=" + "%ff" * 1000, 400, "trace_start_invalid"),
            (f"/v1/audit/trace?start={ZERO_ID}&direction=%00", 400, "trace_direction_invalid"),
            (f"/v1/audit/trace?start={ZERO_ID}&hops=99999999999999999999999", 400, "trace_hops_invalid"),
            (f"/v1/audit/trace?start={ZERO_ID}&asset=%0d%0a", 400, "trace_asset_invalid"),
            (f"/v1/audit/trace?start={ZERO_ID}&max_edges=-1", 400, "bad_request"),
            (f"/v1/audit/trace?start={ZERO_ID}", 404, "not_found"),
        ],
        "/v1/gov/dry-run": [(f"/v1/gov/dry-run{q}", 404, "not_found") for q in ("", "?action=nuke", ignoring)],
        "/v1/audit/proof/{entry_id}": [(f"/v1/audit/proof/{bad}", 400, "bad_request") for bad in bad_ids]
        + [(f"/v1/audit/proof/{known}", 404, "not_found")],
        "/v1/audit/state-proof/{address}": [(f"/v1/audit/state-proof/{bad}", 400, "invalid_address")
                                            for bad in bad_addresses]
        + [(f"/v1/audit/state-proof/{address}?asset={a}", 400, "bad_request") for a in ("bly", "%00", "A" * 17, "")]
        + [(f"/v1/audit/state-proof/{address}?height={h}", 400, "bad_request") for h in ("-1", "x", "1" * 30)]
        + [(f"/v1/audit/state-proof/{address}?asset=BLY", 404, "not_found")],
        "/v1/audit/export": [(f"/v1/audit/export{q}", 404, "not_found")
                             for q in ("", f"?account={address}&from=a&to=b", ignoring)],
        "/v1/identities/{address}": [(f"/v1/identities/{bad}", 400, "invalid_address") for bad in bad_addresses]
        + [(f"/v1/identities/{address}", 404, "not_found")],  # this node has no validators: nothing is final
        "/static/{filename}": [(f"/static/{bad}", 404, "not_found") for bad in (
            "index.html", "..%2Fserver.py", "..%2F..%2Fserver.py", "%00", "app.js%00", "APP.JS", "a" * 4000 + ".js",
            ".js", "app.py", "missing.js")] + [("/static/app.js" + ignoring, 200, None)],
        "/metrics": [("/metrics" + ignoring, 200, None)],
        "/v1/apps": [("/v1/apps" + ignoring, 200, None)],
        "/health": [("/health" + ignoring, 200, None)],
        "/ready": [("/ready" + ignoring, 200, None)],  # a lone ledger node has no peers to wait for
        "/openapi.json": [("/openapi.json" + ignoring, 200, None)],
    }


POST_ROUTES = {"/v1/entries", "/v1/entries/batch", "/v1/entries/draft"}
STREAM_ROUTES = {"/v1/stream"}  # answers never end: tested below by reading the first event


def test_every_route_has_hostile_cases() -> None:
    """A route added to the app without hostile-input cases here fails this test."""
    routes = app_routes()
    fake = Stored([bytes(32)], {}, {}, Signer.generate(), 1)
    get_routes = {path for method, path in routes if method == "GET"}
    post_routes = {path for method, path in routes if method == "POST"}
    assert get_routes == set(hostile_get_cases(fake)) | STREAM_ROUTES
    assert post_routes == POST_ROUTES
    assert {method for method, _ in routes} == {"GET", "POST"}


def test_get_routes_refuse_bad_paths_and_queries(api: Api, stored: Stored) -> None:
    for route, cases in hostile_get_cases(stored).items():
        for path, status, code in cases:
            reply = api.get(path)
            if code is None:
                assert reply.status == status, (route, path, reply.status, reply.body[:200])
                assert b"Traceback" not in reply.body
            else:
                assert_error(reply, status, code)
    assert_intact(api, stored)


def test_unknown_routes_and_wrong_methods(api: Api, stored: Stored) -> None:
    for path in ("/v1/nope", "/v2/status", "/V1/STATUS", "/v1/entries/x/y/z", "/v1/status/", "/%00", "/" + "a" * 4000):
        assert_error(api.get(path), 404, "not_found")
        assert_error(api.call("POST", path, b"{}", "application/json"), 404, "not_found")
    routes = app_routes()
    address = stored.author.address
    paths = {path for _, path in routes}
    tried = 0
    for path in sorted(paths):
        allowed = {method for method, p in routes if p == path}
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            if method in allowed:
                continue
            target = concrete(path, address)
            if method == "GET" and path in ("/v1/entries/batch", "/v1/entries/draft"):
                continue  # resolves to GET /v1/entries/{entry_id} with the id "batch" or "draft"
            assert_error(api.call(method, target, b"{}", "application/json"), 405, "method_not_allowed")
            tried += 1
    assert tried >= 40
    assert_intact(api, stored)


def test_the_stream_ignores_hostile_queries_and_starts_with_hello(api: Api, stored: Stored) -> None:
    for query in ("", "?limit=abc&after=-1&x=%00%FF", "?" + "y=1&" * 200):
        with socket.create_connection((api.host, api.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(f"GET /v1/stream{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            received = b""
            deadline = time.monotonic() + TIMEOUT_S
            while b"event: hello" not in received and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        assert raw_status(received) == 200 and b"text/event-stream" in received, received[:300]
        assert b"event: hello" in received
    assert_intact(api, stored)


def test_post_rejects_wrong_content_types(api: Api, stored: Stored) -> None:
    body = codec.encode(stored.signed[stored.ids[0]])
    for path in sorted(POST_ROUTES):
        for content_type in (
            None,
            "text/plain",
            "text/html",
            "application/octet-stream",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/msgpackx",
            "application/jsonp",
            "json",
            "*/*",
            "application/msgpack/json",
        ):
            assert_error(api.call("POST", path, body, content_type), 415, "unsupported_media_type")
    assert_intact(api, stored)


def test_post_entry_rejects_malformed_and_truncated_bodies(api: Api, stored: Stored) -> None:
    valid = codec.encode(stored.signed[stored.ids[0]])
    valid_json = msgspec.json.encode(stored.signed[stored.ids[0]])
    header = stored.signed[stored.ids[0]].header
    msgpack_bodies = [
        b"",
        b"\xc1",
        b"\xc0",
        b"\x00",
        b"\x93\xc4\x00\xc4\x00\xc4\x00",
        b"\xdf\xff\xff\xff\xff",
        b"\xdd\xff\xff\xff\xff",
        b"\x91" * 100_000 + b"\xc0",
        codec.encode({"header": b"", "signature": b""}),
        codec.encode({"header": b"", "signature": b"", "payload": b"", "extra": 1}),
        codec.encode({"payload": b"", "signature": b"", "header": b""}),
        codec.encode({"header": "text", "signature": b"", "payload": b""}),
        codec.encode({"header": header + b"\x00", "signature": bytes(64), "payload": b""}),
        codec.encode(SignedEntry(b"\x80", bytes(64), b"")),
        valid + b"\x00",
        valid_json,
        *(valid[:cut] for cut in range(0, len(valid), 5)),
    ]
    for body in msgpack_bodies:
        assert_error(api.call("POST", "/v1/entries", body, "application/msgpack"), 400)
    json_bodies = [
        b"",
        b"{",
        b"{garbage",
        b"null",
        b"[]",
        b'"text"',
        b"1e999999",
        b"[" * 100_000,
        b'{"header": "!!!", "signature": "", "payload": ""}',
        b'{"header": "", "signature": "", "payload": ""}',
        b'{"header": 1, "signature": "", "payload": ""}',
        b'{"header": "\\ud800", "signature": "", "payload": ""}',
        b'{"header": "", "signature": "", "payload": "", "admin": true}',
        b"\xff\xfe{}",
        valid,
        *(valid_json[:cut] for cut in range(0, len(valid_json), 11)),
    ]
    for body in json_bodies:
        assert_error(api.call("POST", "/v1/entries", body, "application/json"), 400)
    for charset_variant in ("application/json; charset=utf-8", "Application/JSON", "application/x-msgpack"):
        reply = api.call(
            "POST",
            "/v1/entries",
            valid if "msgpack" in charset_variant else valid_json,
            charset_variant,
        )
        assert reply.status == 200 and reply.json()["status"] == "known"
    assert_intact(api, stored)


def test_post_entry_rejects_invalid_entries_with_their_codes(api: Api, stored: Stored) -> None:
    genesis = api.genesis
    alice = stored.author
    id0, id1 = stored.ids[0], stored.ids[1]
    signer = Signer.generate()
    _, good = make_entry(Signer.generate(), genesis, payload=b"never stored")  # a known id would be 'known'
    data = Data(media_type="text/plain")
    reordered = codec.encode(
        {
            "chain": genesis.chain_id,
            "version": ENTRY_VERSION,
            "author": signer.public_key,
            "seq": 0,
            "parents": [genesis.root],
            "time_ms": 1,
            "kind": "data",
            "body": codec.encode(data),
            "payload_hash": codec.sha256(b""),
            "payload_size": 0,
            "nonce": bytes(NONCE_SIZE),
        }
    )
    cases: list[tuple[str, SignedEntry, int, str]] = [
        ("bad signature", SignedEntry(good.header, bytes(64), good.payload), 400, "bad_signature"),
        ("short signature", SignedEntry(good.header, b"", good.payload), 400, "bad_signature"),
        ("swapped payload", SignedEntry(good.header, good.signature, b"other"), 400, "payload_hash_mismatch"),
        ("wrong chain", craft(signer, genesis, chain="another-chain")[1], 400, "wrong_chain"),
        ("future", craft(signer, genesis, time_ms=int(time.time() * 1000) + 3_600_000)[1], 400, "timestamp_in_future"),
        ("no work", without_work(genesis)[1], 400, "insufficient_work"),
        ("version", craft(signer, genesis, version=ENTRY_VERSION + 1)[1], 400, "unsupported_version"),
        ("no parents", craft(signer, genesis, parents=())[1], 400, "parent_count"),
        (
            "nine parents",
            craft(signer, genesis, parents=tuple(bytes([i]) * 32 for i in range(9)))[1],
            400,
            "parent_count",
        ),
        (
            "duplicate parents",
            craft(signer, genesis, parents=(genesis.root, genesis.root))[1],
            400,
            "duplicate_parents",
        ),
        ("short parent", craft(signer, genesis, parents=(genesis.root[:31],))[1], 400, "bad_encoding"),
        ("short author", craft(signer, genesis, author=signer.public_key[:31])[1], 400, "bad_encoding"),
        ("negative seq", craft(signer, genesis, seq=-1)[1], 400, "bad_encoding"),
        ("negative time", craft(signer, genesis, time_ms=-1)[1], 400, "bad_encoding"),
        ("short nonce", SignedEntry(good.header[:-1], good.signature, good.payload), 400, "bad_encoding"),
        ("reordered header", craft(signer, genesis, raw_header=reordered)[1], 400, "bad_encoding"),
        ("unknown kind", craft(signer, genesis, kind="mint", body=b"\x80")[1], 400, "unknown_operation"),
        ("garbage body", craft(signer, genesis, body=b"\xc1")[1], 400, "invalid_operation"),
        ("bad media type", craft(signer, genesis, body=codec.encode(Data("NOT A TYPE")))[1], 400, "invalid_operation"),
        (
            "zero amount",
            craft(signer, genesis, kind="transfer", body=codec.encode(Transfer("BLY", 0, alice.public_key)))[1],
            400,
            "invalid_operation",
        ),
        (
            "header too large",
            craft(signer, genesis, body=codec.encode(Data("a/" + "b" * 3000)))[1],
            413,
            "entry_too_large",
        ),
        (
            "payload too large",
            craft(signer, genesis, payload=bytes(genesis.params.max_data_bytes + 1))[1],
            413,
            "payload_too_large",
        ),
        (
            "memo too large",
            craft(
                signer,
                genesis,
                kind="transfer",
                body=codec.encode(Transfer("BLY", 1, alice.public_key)),
                payload=bytes(genesis.params.max_memo_bytes + 1),
            )[1],
            413,
            "payload_too_large",
        ),
        ("no author parent", make_entry(signer, genesis, seq=1)[1], 400, "missing_author_parent"),
        ("sequence gap", make_entry(alice, genesis, seq=5, parents=[id1])[1], 400, "sequence_gap"),
        ("fork", make_entry(alice, genesis, seq=0, payload=b"a second seq 0")[1], 409, "sequence_reused"),
    ]
    refused = []
    for name, signed, status, code in cases:
        for fmt in ("msgpack", "json"):
            reply = api.post_entry(signed, fmt)
            try:
                assert_error(reply, status, code)
            except AssertionError as exc:
                raise AssertionError(f"{name} ({fmt}): {exc}") from None
        refused.append(entry_id(signed.header))
    for id_ in refused:
        if id_ not in stored.ids:
            assert api.get(f"/v1/entries/{id_.hex()}").status == 404
    forks = api.get("/v1/evidence").json()["forks"]
    assert [fork["entries"][0]["id"] for fork in forks] == [id0.hex()]
    assert_intact(api, stored)


def test_batch_rejects_malformed_and_oversized_batches(api: Api, stored: Stored) -> None:
    empty = SignedEntry(b"", b"", b"")
    too_many = [empty] * (MAX_BATCH + 1)
    assert_error(api.post_batch(too_many, "msgpack"), 400, "bad_request")
    assert_error(api.post_batch(too_many, "json"), 400, "bad_request")
    valid = codec.encode([stored.signed[stored.ids[0]]])
    for body in (b"", b"\xc1", b"\x80", b"\xc0", b"\x91\xc0", b"\xdd\xff\xff\xff\xff", valid[:-3], b"\x91" * 50_000):
        assert_error(api.call("POST", "/v1/entries/batch", body, "application/msgpack"), 400, "bad_encoding")
    for body in (b"", b"[]", b"{}", b'{"entries": 5}', b'{"entries": [1]}', b'{"entries": [], "x": 1}', b"{" * 9999):
        assert_error(api.call("POST", "/v1/entries/batch", body, "application/json"), 400, "bad_encoding")
    reply = api.post_batch([], "msgpack")
    assert reply.status == 200 and reply.json() == {"results": []}
    assert_intact(api, stored)


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_batch_mixing_good_and_bad_entries(api: Api, stored: Stored, fmt: str) -> None:
    genesis = api.genesis
    carol = Signer.generate()
    good_a_id, good_a = make_entry(carol, genesis, payload=b"good a")
    good_b_id, good_b = make_entry(carol, genesis, seq=1, parents=[good_a_id], payload=b"good b")
    _, fork = make_entry(carol, genesis, payload=b"fork of a")
    bad_sig_id, bad_sig = make_entry(Signer.generate(), genesis)
    bad_sig = SignedEntry(bad_sig.header, bytes(64), bad_sig.payload)
    wrong_chain_id, wrong_chain = make_entry(Signer.generate(), genesis, chain_id="another-chain")
    existing = stored.signed[stored.ids[2]]
    items = [
        good_a,
        bad_sig,
        SignedEntry(b"\x00", b"", b""),
        wrong_chain,
        good_b,
        good_a,
        fork,
        existing,
        SignedEntry(existing.header, existing.signature, b"tampered"),
    ]
    reply = api.post_batch(items, fmt)
    assert reply.status == 200, reply.body
    results = reply.json()["results"]
    assert len(results) == len(items)
    assert results[0] == {"id": good_a_id.hex(), "status": "stored"}
    assert results[4] == {"id": good_b_id.hex(), "status": "stored"}
    assert results[5] == {"id": good_a_id.hex(), "status": "known"}
    assert results[7] == {"id": stored.ids[2].hex(), "status": "known"}
    expected_errors = {1: "bad_signature", 2: "bad_encoding", 3: "wrong_chain", 6: "sequence_reused"}
    for index, code in expected_errors.items():
        assert set(results[index]) == {"error"}
        assert results[index]["error"]["code"] == code
        assert isinstance(results[index]["error"]["message"], str)
    # the payload of a known entry is not replaced by what a later submission carries
    assert results[8] == {"id": stored.ids[2].hex(), "status": "known"}
    for id_ in (good_a_id, good_b_id):
        assert api.get(f"/v1/entries/{id_.hex()}").status == 200
    for id_ in (bad_sig_id, wrong_chain_id):
        assert api.get(f"/v1/entries/{id_.hex()}").status == 404
    assert api.get(f"/v1/entries/{good_b_id.hex()}/payload").body == b"good b"
    stored.extra = 2
    assert_intact(api, stored)


def test_payload_route_never_echoes_a_hostile_media_type(api: Api, stored: Stored) -> None:
    genesis = api.genesis
    for media_type, served in (("text/plain\n", None), ("text/html", "text/html")):
        id_, signed = make_entry(Signer.generate(), genesis, op=Data(media_type=media_type), payload=b"<b>x</b>")
        reply = api.post_entry(signed)
        if reply.status == 400:
            assert_error(reply, 400, "invalid_operation")
            continue
        assert reply.status == 201, reply.body
        stored.extra += 1
        connection = http.client.HTTPConnection(api.host, api.port, timeout=TIMEOUT_S)
        try:
            connection.request("GET", f"/v1/entries/{id_.hex()}/payload")
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200
            assert response.headers.get_content_type() == (served or "application/octet-stream")
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Content-Security-Policy"] == "sandbox"
            assert response.headers["Content-Disposition"].startswith("attachment")
            assert body == b"<b>x</b>"
        finally:
            connection.close()
        assert api.get(f"/v1/entries/{id_.hex()}").status == 200
    assert_intact(api, stored)


# --- framing and size ---------------------------------------------------------------------


def _request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


POST_HEAD = "POST /v1/entries HTTP/1.1\nHost: x\nContent-Type: application/msgpack\nConnection: close\n"

# Broken HTTP that aiohttp's parser refuses before any route sees it.
PARSER_ERRORS = {
    "garbage": b"\x00\x01\x02garbage\r\n\r\n",
    "tls-hello": bytes.fromhex("16030100a5010000a10303") + bytes(64),
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "bad-method": b"FOO /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad-version": b"GET /v1/status HTTP/9.9\r\nHost: x\r\n\r\n",
    "long-url": b"GET /v1/entries/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "long-header": b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20_000 + b"\r\n\r\n",
    "many-headers": b"GET /v1/status HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: a\r\n" % i for i in range(500))
    + b"\r\n",
    "nul-in-header": b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "obs-fold": b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "bad-content-length": _request(POST_HEAD + "Content-Length: abc\n", b"{}"),
    "negative-content-length": _request(POST_HEAD + "Content-Length: -1\n"),
    "cl-and-te": _request(POST_HEAD + "Content-Length: 5\nTransfer-Encoding: chunked\n", b"0\r\n\r\n"),
    "te-list": _request(POST_HEAD + "Transfer-Encoding: chunked, identity\n", b"0\r\n\r\n"),
    "bad-chunk-size": _request(POST_HEAD + "Transfer-Encoding: chunked\n", b"zz\r\nabc\r\n0\r\n\r\n"),
    "non-utf8-path": b"GET /v1/authors/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
}

# Broken bodies that reach the route: the route itself must answer in the error shape.
BODY_ERRORS = {
    "gzip-garbage": (_request(POST_HEAD + "Content-Encoding: gzip\nContent-Length: 10\n", b"0123456789"), 400),
    "deflate-garbage": (_request(POST_HEAD + "Content-Encoding: deflate\nContent-Length: 10\n", b"0123456789"), 400),
    "unknown-encoding": (_request(POST_HEAD + "Content-Encoding: foo\nContent-Length: 3\n", b"abc"), 400),
    "zip-bomb": (
        _request(
            POST_HEAD + f"Content-Encoding: deflate\nContent-Length: {len(zlib.compress(bytes(32 << 20)))}\n",
            zlib.compress(bytes(32 << 20)),
        ),
        413,
    ),
    "huge-declared-length": (_request(POST_HEAD + "Content-Length: 100000000000\n", b"abc"), 413),
}


def test_broken_http_is_refused_and_node_survives(api: Api, stored: Stored) -> None:
    for name, data in PARSER_ERRORS.items():
        answer = api.raw(data)
        status = raw_status(answer)
        assert 400 <= status < 500, (name, answer[:200])
        assert b"Traceback" not in answer
    for name, (data, status) in BODY_ERRORS.items():
        started = time.monotonic()
        answer = api.raw(data)
        assert time.monotonic() - started < 2.5, f"{name}: the node waited for a body it must refuse"
        assert raw_status(answer) == status, (name, answer[:300])
        assert_error(Reply(status, "application/json", raw_body(answer)), status)
    # a body cut short, then the client stops sending
    answer = api.raw(_request(POST_HEAD + "Content-Length: 100\n", b"abc"), half_close=True)
    if answer:
        assert_error(Reply(raw_status(answer), "application/json", raw_body(answer)), 400)
    api.raw(_request(POST_HEAD + "Transfer-Encoding: chunked\n", b"10\r\nabc"), half_close=True)
    assert_intact(api, stored)


@pytest.fixture
def small_node(tmp_path: Path) -> Iterator[dict[str, Any]]:
    directory = tmp_path / "small"
    localnet.create(
        directory,
        validators=0,
        ledger_nodes=1,
        pow_bits=TEST_POW_BITS,
        limits=LimitsConfig(author_rate=0, connection_rate=0, max_request_bytes=SMALL_LIMIT),
    )
    try:
        yield localnet.up(directory, timeout=30)
    finally:
        localnet.down(directory)


SMALL_LIMIT = 64 * 1024


def test_bodies_over_the_request_limit_are_refused(small_node: dict[str, Any]) -> None:
    api = Api(small_node)
    stored = store_baseline(api)
    for path in sorted(POST_ROUTES):
        for content_type in ("application/msgpack", "application/json"):
            at_limit = api.call("POST", path, b"\xc1" * SMALL_LIMIT, content_type)
            assert_error(at_limit, 400)  # read and refused as malformed, not as too large
            for size in (SMALL_LIMIT + 1, 4 * SMALL_LIMIT):
                assert_error(api.call("POST", path, b"\xc1" * size, content_type), 413, "request_too_large")
        chunked = _request(
            f"POST {path} HTTP/1.1\nHost: x\nContent-Type: application/msgpack\nTransfer-Encoding: chunked\n"
            "Connection: close\n",
            (b"4000\r\n" + b"a" * 0x4000 + b"\r\n") * 8 + b"0\r\n\r\n",
        )
        answer = api.raw(chunked)
        assert_error(Reply(raw_status(answer), "application/json", raw_body(answer)), 413, "request_too_large")
    big = [make_entry(Signer.generate(), api.genesis, payload=bytes(SMALL_LIMIT // 4))[1] for _ in range(5)]
    assert_error(api.post_batch(big), 413, "request_too_large")
    for signed in big:
        assert api.get(f"/v1/entries/{entry_id(signed.header).hex()}").status == 404
    assert_intact(api, stored)


# --- arbitrary input --------------------------------------------------------------------

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def _json_entry_values() -> st.SearchStrategy[bytes]:
    b64 = st.binary(max_size=300).map(lambda raw: base64.b64encode(raw).decode())
    value = st.one_of(b64, st.text(max_size=20), st.integers(), st.none(), st.booleans())
    keys = st.sampled_from(["header", "signature", "payload", "extra"])
    return st.dictionaries(keys, value, max_size=4).map(lambda d: json.dumps(d).encode())


@pytest.fixture
def checked(api: Api) -> Iterator[Stored]:
    """Stored entries, checked intact after the test (after all of a property test's examples)."""
    stored = store_baseline(api)
    yield stored
    assert_intact(api, stored)


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=600), _json_entry_values()),
    content_type=st.sampled_from(["application/msgpack", "application/json"]),
    batch=st.booleans(),
)
def test_arbitrary_bodies_are_refused_cleanly(
    api: Api, checked: Stored, body: bytes, content_type: str, batch: bool
) -> None:
    reply = api.call("POST", "/v1/entries/batch" if batch else "/v1/entries", body, content_type)
    if reply.status == 200 and batch:
        for result in reply.json()["results"]:
            assert set(result) == {"error"}, result  # arbitrary bytes never make a valid entry
            assert isinstance(result["error"]["code"], str)
        return
    assert_error(reply, reply.status)


@FUZZ
@given(segment=st.text(max_size=80), query=st.text(max_size=30))
def test_arbitrary_path_segments_and_queries(api: Api, checked: Stored, segment: str, query: str) -> None:
    quoted = urllib.parse.quote(segment, safe="")
    for path in (f"/v1/entries/{quoted}", f"/v1/entries/{quoted}/payload", f"/v1/authors/{quoted}"):
        reply = api.get(path)
        if reply.status != 200:
            assert_error(reply, reply.status)
            assert reply.status in (400, 404)
    try:
        limit: int | None = int(query)
    except ValueError:
        limit = None
    for path in ("/v1/entries", "/v1/tips"):
        reply = api.get(f"{path}?limit={urllib.parse.quote(query, safe='')}")
        if limit is not None and 1 <= limit <= MAX_LIST:
            assert reply.status == 200, (query, reply.body)
        else:
            assert_error(reply, 400, "bad_request")

"""The SDK: retries, backoff and failover against real local HTTP servers that misbehave on
purpose; builders for every operation kind; typed answers of every kind from a live localnet;
the asyncio client."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

from bilayer import codec
from bilayer.apps.notary.operations import NotaryRegister, NotaryTransfer
from bilayer.errors import BilayerError, InvalidOperation, UnknownOperation
from bilayer.genesis import GovernanceParams
from bilayer.keys.signing import Signer
from bilayer.ledger import operations as L
from bilayer.ledger.entry import EntryHeader, SignedEntry
from bilayer.node.config import LimitsConfig
from bilayer.sdk import (
    AsyncClient,
    Client,
    NodeUnreachable,
    NoSigningKey,
    RemoteError,
    RetryPolicy,
    UnexpectedResponse,
    WaitTimeout,
    load_key,
    ops,
)
from bilayer.sdk.retry import Failure, Rotation, backoff_s, may_retry, next_try, parse_retry_after
from tests.support.localnet import running_localnet
from tests.support.warehouse_samples import SAMPLES as WAREHOUSE_SAMPLES

FAST = RetryPolicy(attempts=5, backoff_base_s=0.02, backoff_max_s=0.1, retry_after_max_s=5.0)
GENESIS_ROOT = "11" * 32
STATUS = {"version": "0.1.0", "name": "fake", "role": "ledger", "chain_id": "test-chain", "genesis_root": GENESIS_ROOT,
          "node_key": "22" * 32, "healthy": True, "entries": 0, "tips": 0, "orphans": 0, "authors": 0, "peers": 0,
          "isolated": False, "catching_up": False, "params": {"pow_bits": 0}, "finality": False, "api": "",
          "p2p": "", "uptime_s": 1.0}

Answer = Callable[[web.Request], web.Response]


def error(status: int, code: str, retry_after: str | None = None) -> Answer:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return lambda request: web.json_response({"error": {"code": code, "message": code}}, status=status,
                                             headers=headers)


class FakeNode:
    """A real aiohttp server on 127.0.0.1 that answers the first requests from `script` (one
    answer each), then as a node on a chain without validators would; it keeps every request."""

    def __init__(self, script: list[Answer] | None = None, delay_first_s: float = 0.0, fail_posts: int = 0) -> None:
        self.script = list(script or [])
        self.delay_first_s = delay_first_s
        self.fail_posts = fail_posts  # entries taken, then the answer lost: 504 from a gateway
        self.requests: list[tuple[str, str, bytes]] = []
        self.queries: list[str] = []
        self.peers: list[int] = []  # the client's port of each request: one per connection
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path, body))
        self.queries.append(request.query_string)
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.peers.append(peer[1] if peer else 0)
        if len(self.requests) == 1 and self.delay_first_s:
            await asyncio.sleep(self.delay_first_s)
        if self.script:
            return self.script.pop(0)(request)
        if request.path == "/v1/status":
            return web.json_response(STATUS)
        if request.path.startswith("/v1/authors/"):
            return web.json_response({"address": request.path.rsplit("/", 1)[1], "next_seq": 0, "head": None})
        if request.path == "/v1/tips":
            return web.json_response({"count": 0, "tips": []})
        if request.method == "POST" and request.path == "/v1/entries":
            if self.fail_posts > 0:
                self.fail_posts -= 1
                return error(504, "gateway_timeout")(request)
            signed = codec.decode(body, SignedEntry)
            return web.json_response({"id": hashlib.sha256(signed.header).hexdigest(), "status": "stored"},
                                     status=201)
        if request.path.startswith("/v1/entries/"):
            return web.json_response({"id": request.path.rsplit("/", 1)[1], "status": "PENDING"})
        return web.json_response({"error": {"code": "not_found", "message": "no such route"}}, status=404)

    def posted(self) -> list[EntryHeader]:
        return [codec.decode(codec.decode(body, SignedEntry).header, EntryHeader)
                for method, path, body in self.requests if method == "POST" and path == "/v1/entries"]


@contextmanager
def serving(*nodes: FakeNode) -> Iterator[None]:
    """Run the fake nodes in a thread of their own, so blocking and asyncio clients alike can call them."""
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    ready = threading.Event()

    async def start() -> None:
        for node in nodes:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", node.handle)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            node.url = f"http://127.0.0.1:{port}"
            runners.append(runner)
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield
    finally:
        async def stop() -> None:
            for runner in runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def dead_url() -> str:
    """A loopback port nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- the retry rules ----------------------------------------------------------------------------


def test_what_is_retried_depends_on_whether_the_node_may_have_taken_the_request() -> None:
    connect, transport = Failure("connect"), Failure("transport")
    assert may_retry(connect, idempotent=False) and may_retry(connect, idempotent=True)
    assert may_retry(transport, idempotent=True) and not may_retry(transport, idempotent=False)
    for status in (502, 504):
        assert may_retry(Failure("status", status), True) and not may_retry(Failure("status", status), False)
    for status, code in ((503, "overloaded"), (503, "not_ready"), (429, "rate_limited")):
        assert may_retry(Failure("status", status, code), idempotent=False)  # the node refused it outright
    assert not may_retry(Failure("status", 503, "storage_failed"), idempotent=False)
    for status in (400, 404, 409, 413, 500):
        assert not may_retry(Failure("status", status, "x"), idempotent=True)


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    policy = RetryPolicy(attempts=10, backoff_base_s=0.1, backoff_max_s=1.0)
    rng = random.Random(7)
    for failures in range(1, 10):
        ceiling = min(1.0, 0.1 * 2 ** (failures - 1))
        delays = [backoff_s(policy, failures, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2  # spread over the whole range
    assert policy.worst_case_sleep_s() == pytest.approx(0.1 + 0.2 + 0.4 + 0.8 + 5 * 1.0 + 9 * 30.0)


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    now = time.time()
    assert parse_retry_after("3", now) == 3.0
    later = datetime.fromtimestamp(now, UTC) + timedelta(seconds=20)
    assert parse_retry_after(format_datetime(later, usegmt=True), now) == pytest.approx(20, abs=1.5)
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


def test_a_node_held_back_by_retry_after_is_skipped_while_another_can_answer() -> None:
    rotation, rng = Rotation(3), random.Random(1)
    decided = next_try(FAST, rotation, 0, Failure("status", 503, "overloaded", 4.0), 1, True, 100.0, rng)
    assert decided is not None and decided[0] == 1 and decided[1] <= FAST.backoff_base_s
    # every node held back: the one whose hold ends first, after exactly that long
    rotation.failed(1, 100.0, 3.0)
    rotation.failed(2, 100.0, 2.0)
    assert rotation.pick(100.0) == (2, 2.0)
    assert next_try(FAST, rotation, 2, Failure("connect"), FAST.attempts, True, 100.0, rng) is None


def test_a_bad_retry_policy_is_refused() -> None:
    with pytest.raises(BilayerError) as refused:
        RetryPolicy(attempts=0)
    assert refused.value.code == "bad_request"


# --- retries and failover against real local servers ---------------------------------------------


def test_503_with_retry_after_is_honoured_then_the_answer_is_typed() -> None:
    node = FakeNode([error(503, "overloaded", "1"), error(503, "overloaded", "1")])
    with serving(node), Client(node.url, retries=FAST) as client:
        started = time.monotonic()
        status = client.status()
        elapsed = time.monotonic() - started
    assert status.chain_id == "test-chain" and status.finality is False and status.params.pow_bits == 0
    assert len(node.requests) == 3
    assert 2.0 <= elapsed < 3.5  # waited the two seconds asked for, and not much more


def test_one_client_reuses_its_connections() -> None:
    node = FakeNode()

    async def run() -> None:
        async with AsyncClient(node.url) as client:
            for _ in range(10):
                await client.status()

    with serving(node):
        with Client(node.url) as client:
            for _ in range(10):
                client.status()
        asyncio.run(asyncio.wait_for(run(), 30))
    assert len(node.peers) == 20
    assert len(set(node.peers[:10])) == 1 and len(set(node.peers[10:])) == 1  # one connection each


def test_a_refused_connection_fails_over_to_the_next_node_and_stays_there() -> None:
    live = FakeNode()
    with serving(live), Client([dead_url(), live.url], retries=FAST) as client:
        started = time.monotonic()
        assert client.status().name == "fake"
        assert client.tips() == []
        assert time.monotonic() - started < 1.0
    assert [path for _, path, _ in live.requests] == ["/v1/status", "/v1/tips"]


def test_a_node_asking_for_a_long_pause_is_left_for_another() -> None:
    busy, free = FakeNode([error(503, "overloaded", "30")] * 10), FakeNode()
    with serving(busy, free), Client([busy.url, free.url], retries=FAST) as client:
        started = time.monotonic()
        for _ in range(3):
            client.status()
        assert time.monotonic() - started < 2.0  # never waited out the 30 s
    assert len(busy.requests) == 1 and len(free.requests) == 3


def test_backoff_is_bounded_and_the_last_answer_is_raised_with_the_nodes_code() -> None:
    node = FakeNode([error(503, "overloaded")] * 10)
    policy = RetryPolicy(attempts=4, backoff_base_s=0.05, backoff_max_s=0.1)
    with serving(node), Client(node.url, retries=policy) as client:
        started = time.monotonic()
        with pytest.raises(RemoteError) as raised:
            client.status()
        elapsed = time.monotonic() - started
    assert raised.value.remote_code == "overloaded" and raised.value.remote_status == 503
    assert len(node.requests) == 4
    assert elapsed < policy.worst_case_sleep_s() + 1.0


def test_when_no_node_answers_the_client_gives_up_in_bounded_time() -> None:
    policy = RetryPolicy(attempts=6, backoff_base_s=0.01, backoff_max_s=0.05)
    with Client([dead_url(), dead_url()], retries=policy) as client:
        started = time.monotonic()
        with pytest.raises(NodeUnreachable) as raised:
            client.status()
        assert time.monotonic() - started < 2.0
    assert raised.value.code == "node_unreachable"


def test_an_error_that_retrying_cannot_fix_is_raised_at_once() -> None:
    node = FakeNode([error(404, "not_found")])
    with serving(node), Client(node.url, retries=FAST) as client, pytest.raises(RemoteError) as raised:
        client.entry("ab" * 32)
    assert raised.value.remote_code == "not_found" and len(node.requests) == 1


def test_a_request_that_is_not_idempotent_is_not_repeated_once_the_node_may_have_taken_it() -> None:
    gateway = FakeNode([error(502, "bad_gateway")])
    with serving(gateway), Client(gateway.url, retries=FAST) as client, pytest.raises(RemoteError):
        client.request("POST", "/v1/anything", body=b"{}", content_type="application/json", idempotent=False)
    assert len(gateway.requests) == 1
    # a node that says it refused the request outright: trying again is safe
    refusing = FakeNode([error(503, "overloaded"), error(429, "rate_limited")])
    with serving(refusing), Client(refusing.url, retries=FAST) as client:
        client.request("POST", "/v1/tips", body=b"{}", content_type="application/json", idempotent=False)
    assert len(refusing.requests) == 3
    # no answer in time: the request may have been taken, so only an idempotent one is repeated
    slow = FakeNode(delay_first_s=1.5)
    with serving(slow), Client(slow.url, timeout=0.5, retries=FAST) as client:
        with pytest.raises(NodeUnreachable):
            client.request("POST", "/v1/tips", body=b"{}", content_type="application/json", idempotent=False)
        assert len(slow.requests) == 1
        assert client.tips() == []  # a read is repeated (the server is quick from its second request on)


def test_an_answer_of_the_wrong_shape_is_a_typed_error() -> None:
    node = FakeNode([lambda request: web.Response(text="<html>hello</html>", content_type="text/html")])
    with serving(node), Client(node.url, retries=FAST) as client, pytest.raises(UnexpectedResponse) as raised:
        client.status()
    assert raised.value.code == "sdk_unexpected_response"


def test_submit_is_retried_with_the_very_same_signed_entry() -> None:
    """A gateway timeout after the node may have stored the entry: the client sends the same
    bytes again (same id), never a re-signed entry that would fork the author."""
    node = FakeNode(fail_posts=1)
    signer = Signer(bytes(31) + b"\x05")
    with serving(node), Client(node.url, key=signer, retries=FAST) as client:
        submitted = client.submit(ops.transfer(Signer.generate().address, 5))
        second = client.submit(ops.data("after"))
    bodies = [body for method, _, body in node.requests if method == "POST"]
    assert len(bodies) == 3 and bodies[0] == bodies[1]
    first_header = codec.decode(codec.decode(bodies[0], SignedEntry).header, EntryHeader)
    assert submitted.id == hashlib.sha256(codec.decode(bodies[0], SignedEntry).header).hexdigest()
    assert first_header.seq == 0 and first_header.parents == (bytes.fromhex(GENESIS_ROOT),)
    # the node still says next_seq 0: the client knows better, and continues its own chain
    follow = codec.decode(codec.decode(bodies[2], SignedEntry).header, EntryHeader)
    assert second.id != submitted.id and follow.seq == 1 and follow.parents[0] == bytes.fromhex(submitted.id)


def test_writing_needs_a_key_and_waiting_is_bounded() -> None:
    node = FakeNode()
    with serving(node), Client(node.url, retries=FAST) as client:
        with pytest.raises(NoSigningKey) as no_key:
            client.submit(ops.data("x"))
        assert no_key.value.code == "sdk_no_signing_key"
        STATUS["finality"] = True
        try:
            started = time.monotonic()
            with pytest.raises(WaitTimeout):
                client.wait("cd" * 32, timeout=0.5)  # PENDING on a chain with validators is no outcome
            assert time.monotonic() - started < 2.0
        finally:
            STATUS["finality"] = False
        assert client.wait("cd" * 32, timeout=5).status == "PENDING"  # without validators it is


def test_the_async_client_retries_fails_over_and_serialises_one_keys_writes() -> None:
    busy, live = FakeNode([error(503, "overloaded", "1")]), FakeNode()
    signer = Signer(bytes(31) + b"\x09")

    async def run() -> None:
        async with AsyncClient([busy.url, dead_url(), live.url], key=signer, retries=FAST) as client:
            status = await client.status()
            assert status.name == "fake"
            results = await asyncio.gather(*(client.submit(ops.data(f"reading {i}")) for i in range(3)))
            assert len({r.id for r in results}) == 3

    with serving(busy, live):
        asyncio.run(asyncio.wait_for(run(), 30))
    headers = busy.posted() + live.posted()
    assert sorted(h.seq for h in headers) == [0, 1, 2]
    by_seq = {h.seq: h for h in headers}
    for seq in (1, 2):  # each names the one before as its first parent
        previous = by_seq[seq - 1]
        assert by_seq[seq].parents[0] == hashlib.sha256(
            _header_bytes(busy, live, previous)).digest()


def _header_bytes(a: FakeNode, b: FakeNode, header: EntryHeader) -> bytes:
    for node in (a, b):
        for method, path, body in node.requests:
            if method == "POST" and path == "/v1/entries":
                signed = codec.decode(body, SignedEntry)
                if codec.decode(signed.header, EntryHeader) == header:
                    return signed.header
    raise AssertionError("header not posted")


# --- builders ---------------------------------------------------------------------------------------

ALICE, BOB = Signer(bytes(31) + b"\x01"), Signer(bytes(31) + b"\x02")
RULE = L.SetInterceptionRule("review", min_amount=100, outcome="hold")
BUILT: dict[str, tuple[ops.Op, L.Operation]] = {
    "transfer": (ops.transfer(BOB.address, 7, memo="x"), L.Transfer(asset="BLY", amount=7, to=BOB.public_key)),
    "data": (ops.data(b"{}", "application/json"), L.Data(media_type="application/json")),
    "gov.propose": (ops.propose(ops.freeze_account(BOB.address), "r", "ref"),
                    L.GovPropose(action=L.FreezeAccount(BOB.public_key), reason="r", legal_ref="ref")),
    "gov.vote": (ops.vote(3, "no"), L.GovVote(proposal=3, choice="no")),
    "gov.execute": (ops.execute(3), L.GovExecute(proposal=3)),
    "gov.cancel": (ops.cancel(3), L.GovCancel(proposal=3)),
    "reg.freeze": (ops.reg_freeze(BOB.address, "r"), L.RegFreeze(account=BOB.public_key, reason="r", legal_ref="")),
    "reg.intercept": (ops.reg_intercept(ops.interception_rule("review", min_amount=100, outcome="hold"), "r"),
                      L.RegIntercept(rule=RULE, reason="r", legal_ref="")),
    "reg.review": (ops.reg_review("ab" * 32, "release", "ok"),
                   L.RegReview(entry=bytes.fromhex("ab" * 32), decision="release", reason="ok")),
    "id.attest": (ops.attest(BOB.address, "0f" * 16, "institution", 5),
                  L.IdAttest(subject=BOB.public_key, identity=bytes.fromhex("0f" * 16), level=2, expires_ms=5)),
    "app.pause": (ops.app_pause("warehouse.reading", "r"), L.AppPause(kind="warehouse.reading", reason="r")),
    "app.resume": (ops.app_resume("data", "r"), L.AppResume(kind="data", reason="r")),
    "notary.register": (ops.app("notary.register", document="cd" * 32, title="deed"),
                        NotaryRegister(document=bytes.fromhex("cd" * 32), title="deed")),
    "notary.transfer": (ops.app("notary.transfer", document="cd" * 32, to=BOB.address),
                        NotaryTransfer(document=bytes.fromhex("cd" * 32), to=BOB.public_key)),
}


def _as_text(value: Any) -> Any:
    """A struct's fields as a user would type them: bytes as hex, nested structs as dicts."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_text(v) for v in value]
    return value


@pytest.mark.parametrize("kind", ops.kinds())
def test_every_operation_kind_has_a_builder(kind: str) -> None:
    if kind in BUILT:
        built, expected = BUILT[kind]
        assert built.operation == expected and built.kind == kind
    else:
        expected = WAREHOUSE_SAMPLES[kind]
        assert ops.app(kind, **_as_text(msgspec.to_builtins(expected, builtin_types=(bytes,)))).operation == expected
    # and the generic builder takes the same fields as text
    fields = _as_text(msgspec.to_builtins(expected, builtin_types=(bytes,)))
    assert ops.of(kind, **fields).operation == expected


def test_every_management_action_is_built_by_its_wire_tag() -> None:
    assert len(ops.action_types()) == len(L.GovAction.__args__)  # type: ignore[attr-defined]
    made = ops.action("set_content_rule", rule_id="leak", keyword="secret")
    assert made == L.SetContentRule(rule_id="leak", keyword="secret")
    assert ops.action("set_validator", key=BOB.address, power=2) == L.SetValidator(key=BOB.public_key, power=2)
    assert ops.action("redact_entries", entries=["ab" * 32], reason_code="personal_data") == L.RedactEntries(
        entries=(bytes.fromhex("ab" * 32),), reason_code="personal_data")


@pytest.mark.parametrize(("build", "code"), [
    (lambda: ops.transfer(BOB.address, 0), "invalid_operation"),
    (lambda: ops.transfer("bl1nope", 1), "invalid_operation"),
    (lambda: ops.vote(1, "maybe"), "invalid_operation"),
    (lambda: ops.attest(BOB.address, "00" * 16, "royal", 5), "invalid_operation"),
    (lambda: ops.action("dissolve_parliament"), "invalid_operation"),
    (lambda: ops.action("suspend_service", kind="gov.vote"), "invalid_operation"),
    (lambda: ops.of("warehouse.accept_receipt", receipt="not hex"), "invalid_operation"),
    (lambda: ops.of("warehouse.accept_receipt", receipt="ab" * 32, extra=1), "invalid_operation"),
    (lambda: ops.app("warehouse.accept_receipt", receipt="ab" * 4), "warehouse.invalid_operation"),
    (lambda: ops.app("transfer", to=BOB.address), "unknown_operation"),
    (lambda: ops.of("warehouse.teleport"), "unknown_operation"),
])
def test_a_malformed_operation_is_refused_with_the_nodes_code(build: Callable[[], Any], code: str) -> None:
    with pytest.raises((InvalidOperation, UnknownOperation)) as refused:
        build()
    assert refused.value.code == code


def test_reads_send_what_the_api_reads_and_refuse_bad_arguments_with_a_code() -> None:
    node = FakeNode([lambda request: web.json_response({"height": 3, "count": 0, "receipts": []})])
    with serving(node), Client(node.url, retries=FAST) as client:
        assert client.app_query("warehouse", "register", frozen=False, holder=None)["height"] == 3
        for bad in (lambda: client.checkpoint("../status"), lambda: client.checkpoint(0),
                    lambda: client.proposal("1; drop"), lambda: client.entry("zz"),  # type: ignore[arg-type]
                    lambda: client.wait("12")):
            with pytest.raises(BilayerError) as refused:
                bad()
            assert refused.value.code == "bad_request"
    assert [(m, p) for m, p, _ in node.requests] == [("GET", "/v1/apps/warehouse/register")]
    assert node.queries == ["frozen=false"]


def test_bad_client_settings_are_refused_with_a_code() -> None:
    for nodes in ([], ["ftp://x"], "127.0.0.1:8700"):
        with pytest.raises(BilayerError) as refused:
            Client(nodes)
        assert refused.value.code == "bad_request"
    with pytest.raises(BilayerError):
        Client("http://127.0.0.1:1", timeout=0)


# --- against a live localnet --------------------------------------------------------------------------


@pytest.fixture
def network(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with running_localnet(tmp_path / "net", validators=4, ledger_nodes=1, pow_bits=4,
                          limits=LimitsConfig(author_rate=0),
                          governance=GovernanceParams(voting_period_ms=60_000, timelock_ms=1_500)) as manifest:
        yield manifest


def _governed(client: Client, keys: str, action: L.GovAction) -> int:
    """Propose, vote by two members, wait out the timelock, execute: the proposal's number."""
    proposed = client.submit_and_wait(ops.propose(action, "test"), key=load_key("council1", keys))
    assert proposed.status == "FINAL", proposed
    number = client.proposal_of(proposed.id).number
    for member in ("council1", "council2"):
        assert client.submit_and_wait(ops.vote(number, "yes"), key=load_key(member, keys)).status == "FINAL"
    proposal = client.proposal(number)
    assert proposal.status == "passed" and proposal.executable_from_ms is not None
    time.sleep(max(0.0, proposal.executable_from_ms / 1000 - time.time()) + 1.0)
    assert client.submit_and_wait(ops.execute(number), key=load_key("alice", keys)).status == "FINAL"
    return number


@pytest.mark.slow
def test_every_answer_kind_decodes_from_a_live_localnet(network: dict[str, Any]) -> None:
    keys = str(network["keystore"])
    urls = [node["api_url"] for node in network["nodes"]]
    alice, bob = load_key("alice", keys), load_key("bob", keys)
    with Client([dead_url(), *urls], key=alice, retries=FAST) as client:
        status = client.status()
        assert status.finality and status.height is not None and status.validators == 4
        assert client.author(alice.address).next_seq == 0 and client.tips()
        assert client.params() == status.params

        final = client.submit_and_wait(ops.transfer(bob.address, 40, memo="typed"), timeout=30)
        assert final.status == "FINAL" and final.kind == "transfer" and final.code is None and final.height
        assert final.author == alice.address and final.op["amount"] == 40
        account = client.account(bob.address)
        assert account.balances["BLY"] > 40 and account.height >= final.height
        checkpoint = client.checkpoint(final.height, entries=True)
        assert checkpoint.height == final.height and checkpoint.certificate.height == final.height
        assert final.id in {e.id for e in checkpoint.entries or []}
        assert client.checkpoint().height >= final.height

        pauper = Signer.generate()
        rejected = client.submit_and_wait(ops.transfer(bob.address, 1), key=pauper)
        assert (rejected.status, rejected.code) == ("REJECTED", "insufficient_funds")

        # a regulator's hold rule: a matching transfer ends HELD with its code and cause
        regulator = load_key("regulator", keys)
        rule = ops.interception_rule("sdk-hold", min_amount=1_000, outcome="hold")
        assert client.submit_and_wait(ops.reg_intercept(rule, "test"), key=regulator).status == "FINAL"
        held = client.submit_and_wait(ops.transfer(bob.address, 5_000))
        assert (held.status, held.code) == ("HELD", "held_for_review")
        assert held.cause is not None and held.cause.startswith("emergency:") and held.review is not None

        # a proposal through its life, then an identity attested by the provider it appointed
        provider = Signer.generate()
        number = _governed(client, keys, ops.appoint_identity_provider(provider.address))
        executed = client.proposal(number)
        assert executed.status == "executed" and executed.executed_height is not None
        assert {v.voter for v in executed.votes} == {load_key(m, keys).address for m in ("council1", "council2")}
        assert executed.tally.approvals == 2 and executed.action["type"] == "appoint_identity_provider"
        assert number in {p.number for p in client.proposals(status="executed")}
        assert client.identity(bob.address).identity is None
        attested = client.submit_and_wait(ops.attest(bob.address, "0a" * 16, "verified", 4_000_000_000_000),
                                          key=provider)
        assert attested.status == "FINAL", attested
        identity = client.identity(bob.address)
        assert (identity.identity, identity.level, identity.provider) == ("0a" * 16, 1, provider.address)
        assert identity.expired is False and identity.identity_banned is False

        assert client.app_query("warehouse", "register")["count"] == 0
        with pytest.raises(RemoteError) as missing:
            client.app_query("warehouse", "teleport")
        assert missing.value.remote_code == "not_found"


@pytest.mark.slow
def test_submitting_the_same_signed_entry_twice_is_idempotent_on_a_real_node(network: dict[str, Any]) -> None:
    keys = str(network["keystore"])
    urls = [node["api_url"] for node in network["nodes"]]
    carol = load_key("carol", keys)
    with Client(urls, key=carol) as client:
        entry_id, signed, seq = client.prepare(ops.data("once"))
        first, again = client.submit_signed(signed), client.submit_signed(signed)
        assert (first.id, first.status) == (entry_id.hex(), "stored") and seq == 0
        assert (again.id, again.status) == (entry_id.hex(), "known")
        outcome = client.wait(entry_id)
        assert outcome.status == "FINAL" and outcome.seq == 0
        assert client.account(carol.address).next_seq == 1  # it was applied once


@pytest.mark.slow
def test_the_async_client_against_a_live_localnet(network: dict[str, Any]) -> None:
    keys = str(network["keystore"])
    urls = [node["api_url"] for node in network["nodes"]]
    dave = load_key("dave", keys)

    async def run() -> None:
        async with AsyncClient(urls, key=dave) as client:
            outcomes = await asyncio.gather(*(client.submit_and_wait(ops.data(f"feed {i}")) for i in range(4)))
            assert [o.status for o in outcomes] == ["FINAL"] * 4
            assert sorted(o.seq for o in outcomes) == [0, 1, 2, 3]
            account = await client.account(dave.address)
            assert account.next_seq == 4
            proposal_free = await client.proposals()
            assert proposal_free == []
            assert (await client.entry(outcomes[0].id)).status == "FINAL"

    asyncio.run(asyncio.wait_for(run(), 120))

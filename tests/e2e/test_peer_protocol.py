"""The peer port under hostile input: raw TCP against a real node process on loopback.

Every bad frame, hello or message must end the link (or be ignored), never the node: after
each scenario the node still answers its API, stores nothing it should not, and its log
holds no unhandled exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from bilayer import codec
from bilayer.devnet import localnet
from bilayer.genesis import Genesis, load_genesis
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import SignedEntry
from bilayer.ledger.operations import Data
from bilayer.node import transport
from bilayer.node.config import LimitsConfig, NodeHome, P2PConfig, load_config, write_config
from bilayer.node.messages import MAX_IDS, MAX_ITEMS, EntriesMsg, TipsMsg, WantMsg, decode_message, encode_message
from bilayer.node.transport import MAX_FRAME, MAX_HANDSHAKE_FRAME, PROTOCOL_VERSION, Auth, Hello, SecureLink
from tests.support.builders import TEST_POW_BITS, make_entry

T = TypeVar("T")

STEP_S = 5.0  # bound on every single network wait
LENGTH = struct.Struct(">I")
OUR_LISTEN = "127.0.0.1:9"


class Node:
    """The node under test, seen from outside: its addresses, genesis and log."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        info = manifest["nodes"][0]
        self.api = info["api_url"]
        host, _, port = info["p2p"].rpartition(":")
        self.host, self.port = host, int(port)
        self.log = Path(info["log"])
        self.genesis: Genesis = load_genesis(Path(manifest["genesis"]))
        self.chain = self.genesis.chain_id

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.api + path, timeout=STEP_S) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/v1/status")
        assert code == 200, body
        return dict(json.loads(body))

    def post_batch(self, items: list[SignedEntry]) -> list[dict[str, Any]]:
        request = urllib.request.Request(
            self.api + "/v1/entries/batch",
            data=codec.encode(items),
            headers={"Content-Type": "application/msgpack"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            return list(json.loads(response.read())["results"])

    def entry_json(self, entry_id: bytes) -> tuple[int, bytes]:
        return self.get(f"/v1/entries/{entry_id.hex()}")

    def assert_healthy(self, *, entries: int) -> None:
        """The node answers, is healthy, holds exactly `entries` and logged no crash."""
        status = self.status()
        assert status["healthy"] is True
        assert status["entries"] == entries
        assert status["orphans"] == 0
        log = self.log.read_text(errors="replace")
        for marker in ("Traceback", "Unhandled exception", "Task exception was never retrieved", "internal error"):
            assert marker not in log, f"node log holds {marker!r}:\n{log[-3000:]}"

    def wait_peers(self, count: int) -> None:
        deadline = time.monotonic() + STEP_S
        while time.monotonic() < deadline:
            if self.status()["peers"] == count:
                return
            time.sleep(0.05)
        raise AssertionError(f"the node never reported {count} peers")

    def wait_entry(self, entry_id: bytes) -> bytes:
        deadline = time.monotonic() + STEP_S
        while time.monotonic() < deadline:
            code, body = self.entry_json(entry_id)
            if code == 200:
                return body
            time.sleep(0.05)
        raise AssertionError(f"entry {entry_id.hex()} never stored")


@pytest.fixture
def node(single_node: dict[str, Any]) -> Node:
    return Node(single_node)


async def bounded(awaitable: Awaitable[T], timeout: float = STEP_S) -> T:
    return await asyncio.wait_for(awaitable, timeout)


async def connect(node: Node) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await bounded(asyncio.open_connection(node.host, node.port))


async def secure_link(node: Node, signer: Signer | None = None) -> SecureLink:
    reader, writer = await connect(node)
    return await transport.handshake(reader, writer, signer or Signer.generate(), node.chain, OUR_LISTEN)


async def send_raw(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    with contextlib.suppress(ConnectionError):  # the node may hang up first: that is its right
        await bounded(writer.drain())


async def read_node_hello(reader: asyncio.StreamReader) -> Hello:
    return codec.decode_canonical(await bounded(transport.read_frame(reader, MAX_HANDSHAKE_FRAME)), Hello)


async def assert_closed_by_node(reader: asyncio.StreamReader, timeout: float = STEP_S) -> bytes:
    """Read to end of stream; fail when the node keeps the link open past `timeout`."""
    received = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("the node kept the link open")
        try:
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
        except TimeoutError:
            raise AssertionError("the node kept the link open") from None
        except ConnectionError:
            return bytes(received)
        if not chunk:
            return bytes(received)
        received += chunk
        assert len(received) < MAX_FRAME, "the node sent far more than expected"


def hello(node: Node, signer: Signer, **changes: Any) -> Hello:
    base = Hello(PROTOCOL_VERSION, node.chain, signer.public_key, os.urandom(32), OUR_LISTEN)
    return msgspec.structs.replace(base, **changes)


def frame(data: bytes) -> bytes:
    return LENGTH.pack(len(data)) + data


def entry_for(node: Node, signer: Signer | None = None, **kwargs: Any) -> tuple[bytes, SignedEntry]:
    return make_entry(signer or Signer.generate(), node.genesis, **kwargs)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), 60))


# --- before the handshake ---------------------------------------------------------------


GARBAGE_HELLOS = {
    "http-request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "length-ff": b"\xff" * 64,
    "zero-frame": frame(b"\x00" * 40),
    "random-frame": frame(os.urandom(200)),
    "empty-frame": frame(b""),
    "auth-before-hello": frame(codec.encode(Auth(bytes(64)))),
    "partial-hello": frame(codec.encode({"version": 1})),
    "hello-as-list": frame(codec.encode([1, "bilayer-localnet", bytes(32), bytes(32), ""])),
}


def test_garbage_instead_of_hello_closes_link(node: Node) -> None:
    async def scenario() -> dict[str, bytes]:
        answers = {}
        for name, garbage in GARBAGE_HELLOS.items():
            reader, writer = await connect(node)
            await send_raw(writer, garbage)
            await read_node_hello(reader)
            answers[name] = await assert_closed_by_node(reader)
            writer.close()
        return answers

    answers = run(scenario)
    assert {name: sent for name, sent in answers.items() if sent} == {}, "the node answered garbage with an Auth"
    node.assert_healthy(entries=0)
    node.wait_peers(0)


def test_oversized_handshake_length_closes_without_reading_body(node: Node) -> None:
    async def scenario() -> None:
        for length in (MAX_HANDSHAKE_FRAME + 1, MAX_FRAME + 1, 2**32 - 1):
            reader, writer = await connect(node)
            await send_raw(writer, LENGTH.pack(length))  # no body follows: a reader that waited would hang
            await read_node_hello(reader)
            started = time.monotonic()
            assert await assert_closed_by_node(reader, timeout=2.0) == b""
            assert time.monotonic() - started < 2.0
            writer.close()

    run(scenario)
    node.assert_healthy(entries=0)


def test_truncated_hello_then_close(node: Node) -> None:
    signer = Signer.generate()
    encoded = frame(codec.encode(hello(node, signer)))

    async def scenario() -> None:
        for cut in (1, 3, 4, 10, len(encoded) - 1):
            reader, writer = await connect(node)
            await send_raw(writer, encoded[:cut])
            writer.write_eof()  # half-close: the node sees the truncation, we still read
            await read_node_hello(reader)
            assert await assert_closed_by_node(reader) == b""
            writer.close()

    run(scenario)
    node.assert_healthy(entries=0)
    node.wait_peers(0)


def _bad_hellos(node: Node, signer: Signer, node_key: bytes) -> dict[str, bytes]:
    good = hello(node, signer)
    reordered = codec.encode(
        {
            "chain": good.chain,
            "version": good.version,
            "node_key": good.node_key,
            "ephemeral": good.ephemeral,
            "listen": good.listen,
        }
    )
    extra = codec.encode({**msgspec.structs.asdict(good), "admin": True})
    return {
        "wrong-chain": codec.encode(hello(node, signer, chain="another-chain")),
        "empty-chain": codec.encode(hello(node, signer, chain="")),
        "wrong-version": codec.encode(hello(node, signer, version=PROTOCOL_VERSION + 1)),
        "negative-version": codec.encode(hello(node, signer, version=-1)),
        "short-node-key": codec.encode(hello(node, signer, node_key=signer.public_key[:31])),
        "long-ephemeral": codec.encode(hello(node, signer, ephemeral=os.urandom(33))),
        "empty-ephemeral": codec.encode(hello(node, signer, ephemeral=b"")),
        "zero-ephemeral": codec.encode(hello(node, signer, ephemeral=bytes(32))),
        "low-order-ephemeral": codec.encode(hello(node, signer, ephemeral=b"\x01" + bytes(31))),
        "node-own-key": codec.encode(hello(node, signer, node_key=node_key)),
        "fields-reordered": reordered,
        "unknown-field": extra,
    }


BAD_HELLOS = [
    "wrong-chain",
    "empty-chain",
    "wrong-version",
    "negative-version",
    "short-node-key",
    "long-ephemeral",
    "empty-ephemeral",
    "zero-ephemeral",
    "low-order-ephemeral",
    "node-own-key",
    "fields-reordered",
    "unknown-field",
]


def test_bad_hellos_are_refused_before_auth(node: Node) -> None:
    signer = Signer.generate()
    node_key = bytes.fromhex(node.status()["node_key"])
    hellos = _bad_hellos(node, signer, node_key)
    assert sorted(hellos) == sorted(BAD_HELLOS)

    async def scenario() -> dict[str, bytes]:
        answers = {}
        for name in BAD_HELLOS:
            reader, writer = await connect(node)
            await send_raw(writer, frame(hellos[name]))
            await read_node_hello(reader)
            answers[name] = await assert_closed_by_node(reader)
            writer.close()
        return answers

    answers = run(scenario)
    assert {name: sent for name, sent in answers.items() if sent} == {}, "the node went on to Auth"
    node.assert_healthy(entries=0)
    node.wait_peers(0)
    assert "peer link refused" in node.log.read_text()


def test_bad_auth_closes_link(node: Node) -> None:
    signer = Signer.generate()

    async def scenario() -> None:
        for auth in (
            codec.encode(Auth(bytes(64))),
            codec.encode(Auth(b"")),
            codec.encode(Auth(signer.sign(b"something else entirely"))),
            b"\xc1garbage",
            codec.encode(hello(node, signer)),
        ):
            reader, writer = await connect(node)
            our = hello(node, signer)
            await send_raw(writer, frame(codec.encode(our)))
            await read_node_hello(reader)
            codec.decode_canonical(await bounded(transport.read_frame(reader, MAX_HANDSHAKE_FRAME)), Auth)
            await send_raw(writer, frame(auth))
            assert await assert_closed_by_node(reader) == b""
            writer.close()

    run(scenario)
    node.assert_healthy(entries=0)
    node.wait_peers(0)


def test_dialing_node_survives_low_order_key_from_peer(tmp_path: Path) -> None:
    """A node that dials a hostile peer refuses its weak key and keeps redialling."""
    directory = tmp_path / "net"
    manifest = localnet.create(
        directory,
        validators=0,
        ledger_nodes=1,
        pow_bits=TEST_POW_BITS,
        limits=LimitsConfig(author_rate=0, connection_rate=0),
    )
    home = NodeHome(Path(manifest["nodes"][0]["home"]))
    genesis = load_genesis(Path(manifest["genesis"]))
    fake = Signer.generate()
    outcomes: list[str] = []

    async def fake_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ours = Hello(PROTOCOL_VERSION, genesis.chain_id, fake.public_key, bytes(32), "127.0.0.1:9")
            transport.write_frame(writer, codec.encode(ours))
            theirs = codec.decode_canonical(await bounded(transport.read_frame(reader, MAX_HANDSHAKE_FRAME)), Hello)
            try:
                await bounded(transport.read_frame(reader, MAX_HANDSHAKE_FRAME))
            except ConnectionError:
                outcomes.append("refused")
                return
            signature = fake.sign(
                transport._auth_message(genesis.chain_id, bytes(32), theirs.ephemeral, theirs.node_key)
            )
            transport.write_frame(writer, codec.encode(Auth(signature)))
            await bounded(writer.drain())
            outcomes.append("auth")
            await assert_closed_by_node(reader)
        finally:
            writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(fake_peer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        config = load_config(home)
        write_config(home, msgspec.structs.replace(config, p2p=P2PConfig(config.p2p.listen, [f"127.0.0.1:{port}"])))
        try:
            await asyncio.to_thread(localnet.up, directory, timeout=30)
            deadline = time.monotonic() + 8
            while len(outcomes) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            server.close()
            await asyncio.to_thread(localnet.down, directory)

    run(scenario)
    assert len(outcomes) >= 3, f"the node stopped dialling after {outcomes}"
    assert set(outcomes) == {"refused"}, outcomes


# --- after the handshake ----------------------------------------------------------------


def test_garbage_encrypted_frames_close_link(node: Node) -> None:
    async def scenario() -> None:
        for data in (os.urandom(100), b"", os.urandom(15), os.urandom(16), os.urandom(4096)):
            link = await secure_link(node)
            transport.write_frame(link.writer, data)
            await send_raw(link.writer, b"")
            await assert_closed_by_node(link.reader)
            link.close()

    run(scenario)
    node.assert_healthy(entries=0)
    node.wait_peers(0)


def test_replayed_frame_closes_link(node: Node) -> None:
    async def scenario() -> None:
        link = await secure_link(node)
        ciphertext = link._box.encrypt(encode_message(TipsMsg([])), link._nonce(link._own_direction, 0)).ciphertext
        transport.write_frame(link.writer, ciphertext)
        transport.write_frame(link.writer, ciphertext)  # same nonce again: must fail authentication
        await send_raw(link.writer, b"")
        await assert_closed_by_node(link.reader)
        link.close()

    run(scenario)
    node.assert_healthy(entries=0)


def test_oversized_frame_length_after_handshake_closes_without_reading_body(node: Node) -> None:
    async def scenario() -> None:
        for length in (MAX_FRAME + 1, 2**32 - 1):
            link = await secure_link(node)
            await send_raw(link.writer, LENGTH.pack(length))
            started = time.monotonic()
            await assert_closed_by_node(link.reader, timeout=2.0)
            assert time.monotonic() - started < 2.0
            link.close()

    run(scenario)
    node.assert_healthy(entries=0)
    node.wait_peers(0)


def test_truncated_frame_after_handshake_then_close(node: Node) -> None:
    async def scenario() -> None:
        for data in (b"\x00", b"\x00\x00\x01", LENGTH.pack(1000) + os.urandom(10)):
            link = await secure_link(node)
            await send_raw(link.writer, data)
            link.close()
        link = await secure_link(node)
        ciphertext = link._box.encrypt(encode_message(TipsMsg([])), link._nonce(link._own_direction, 0)).ciphertext
        await send_raw(link.writer, frame(ciphertext)[:-5])
        link.close()

    run(scenario)
    node.wait_peers(0)
    node.assert_healthy(entries=0)


UNDECODABLE_MESSAGES = {
    "garbage": b"garbage",
    "empty": b"",
    "unknown-tag": codec.encode({"type": "nonsense", "ids": []}),
    "untagged": codec.encode({"ids": []}),
    "wrong-field-type": codec.encode({"type": "want", "ids": "not a list"}),
    "bad-entry-shape": codec.encode({"type": "entries", "items": [{"header": 1}]}),
    "unknown-field": codec.encode({"type": "tips", "ids": [], "extra": 1}),
    "trailing-bytes": encode_message(TipsMsg([])) + b"\x00",
    "too-many-ids": codec.encode(WantMsg([bytes(32)] * (MAX_IDS + 1))),
    "too-many-entries": codec.encode(EntriesMsg([SignedEntry(b"", b"", b"")] * (MAX_ITEMS + 1))),
}


def test_undecodable_messages_close_link(node: Node) -> None:
    async def scenario() -> None:
        for name, message in UNDECODABLE_MESSAGES.items():
            link = await secure_link(node)
            await bounded(link.send(message))
            try:
                await assert_closed_by_node(link.reader)
            except AssertionError as exc:
                raise AssertionError(f"{name}: {exc}") from None
            link.close()

    run(scenario)
    node.assert_healthy(entries=0)
    node.wait_peers(0)


def test_invalid_entries_are_dropped_and_link_stays_open(node: Node) -> None:
    signer = Signer.generate()
    good_id, good = entry_for(node, signer, payload=b"kept")
    _, other_chain = make_entry(signer, node.genesis, chain_id="another-chain", seq=0)
    bad_sig_id, bad_sig = entry_for(node)
    bad_sig = SignedEntry(bad_sig.header, bytes(64), bad_sig.payload)
    swapped_id, swapped = entry_for(node, payload=b"original")
    swapped = SignedEntry(swapped.header, swapped.signature, b"replaced")
    future_id, future = entry_for(node, time_ms=int(time.time() * 1000) + 3_600_000)
    no_work_id, no_work = None, None
    for _ in range(64):
        candidate_id, candidate = make_entry(Signer.generate(), node.genesis, pow_bits=0)
        if candidate_id[0] >> (8 - TEST_POW_BITS) != 0:
            no_work_id, no_work = candidate_id, candidate
            break
    assert no_work is not None and no_work_id is not None
    bad = [
        bad_sig,
        swapped,
        future,
        no_work,
        other_chain,
        SignedEntry(b"", b"", b""),
        SignedEntry(os.urandom(300), os.urandom(64), b""),
        SignedEntry(good.header[:-1], good.signature, good.payload),
    ]
    refused_ids = [bad_sig_id, swapped_id, future_id, no_work_id]

    async def scenario() -> None:
        link = await secure_link(node)
        await bounded(link.send(encode_message(EntriesMsg(bad))))
        await bounded(link.send(encode_message(EntriesMsg([*bad, good]))))
        await asyncio.to_thread(node.wait_entry, good_id)
        await bounded(link.send(encode_message(WantMsg([good_id]))))
        answer = await receive_entries(link, {good_id})
        assert answer[good_id] == good
        link.close()

    run(scenario)
    node.assert_healthy(entries=1)
    for refused in refused_ids:
        assert node.entry_json(refused)[0] == 404


async def receive_entries(link: SecureLink, wanted: set[bytes], rounds: int = 200) -> dict[bytes, SignedEntry]:
    """Read messages until every wanted entry arrived; frames over MAX_FRAME fail here."""
    found: dict[bytes, SignedEntry] = {}
    for _ in range(rounds):
        if wanted <= found.keys():
            return found
        message = decode_message(await bounded(link.recv()))
        if isinstance(message, EntriesMsg):
            for signed in message.items:
                found[codec.sha256(signed.header)] = signed
    raise AssertionError(f"{len(wanted - found.keys())} wanted entries never arrived")


def test_valid_entry_over_the_wire_is_stored_and_served(node: Node) -> None:
    entry_id, signed = entry_for(node, payload=b"over the wire")

    async def scenario() -> None:
        link = await secure_link(node)
        first = decode_message(await bounded(link.recv()))
        assert isinstance(first, TipsMsg) and first.ids == [node.genesis.root]
        await bounded(link.send(encode_message(EntriesMsg([signed]))))
        stored = json.loads(await asyncio.to_thread(node.wait_entry, entry_id))
        assert stored["payload"] == "b3ZlciB0aGUgd2lyZQ=="
        await bounded(link.send(encode_message(WantMsg([entry_id, bytes(32), b"short"]))))
        answer = await receive_entries(link, {entry_id})
        assert answer == {entry_id: signed}
        await bounded(link.send(encode_message(TipsMsg([entry_id, bytes(32)]))))
        for _ in range(50):
            message = decode_message(await bounded(link.recv()))
            if isinstance(message, WantMsg):
                assert message.ids == [bytes(32)]
                break
        else:
            raise AssertionError("the node never asked for the unknown tip")
        link.close()

    run(scenario)
    node.assert_healthy(entries=1)


def test_large_entries_travel_in_frames_a_peer_accepts(node: Node) -> None:
    """Entries near the payload limit must be split so no frame exceeds MAX_FRAME."""
    payload_size = node.genesis.params.max_data_bytes
    count = MAX_FRAME // payload_size + 20
    entries = [
        entry_for(node, op=Data(media_type="application/octet-stream"), payload=os.urandom(payload_size))
        for _ in range(count)
    ]
    ids = {entry_id for entry_id, _ in entries}

    async def scenario() -> None:
        link = await secure_link(node)
        # the node greets a link it has registered with its tips: from then on it pushes to us
        assert isinstance(decode_message(await bounded(link.recv())), TipsMsg)
        results = await asyncio.to_thread(node.post_batch, [signed for _, signed in entries])
        assert [r["status"] for r in results] == ["stored"] * count
        pushed = await receive_entries(link, ids)
        assert pushed == dict(entries)
        await bounded(link.send(encode_message(WantMsg(sorted(ids)))))
        answered = await receive_entries(link, ids)
        assert answered == dict(entries)
        link.close()

    run(scenario)
    node.assert_healthy(entries=count)

"""Inbound peer slots against squatters: strangers who complete the handshake and then sit.

Real processes: a validator whose inbound slots strangers fill still takes back the link of
the other validator when it restarts; per address, strangers hold at most their cap.
In-process: the eviction order of `PeerManager._make_room`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import pytest

from bilayer.devnet import localnet
from bilayer.keys.signing import Signer
from bilayer.node import peers, transport
from bilayer.node.config import NodeHome, load_config, write_config
from bilayer.node.metrics import NodeMetrics
from bilayer.node.peers import PeerLink, PeerManager
from tests.support.builders import TEST_POW_BITS

SQUATTERS = 12


def peer_keys(node: dict[str, Any]) -> set[str]:
    with urllib.request.urlopen(node["api_url"] + "/v1/peers", timeout=5) as response:
        return {p["node_key"] for p in json.loads(response.read())["peers"]}


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def set_p2p(directory: Path, name: str, **changes: Any) -> None:
    home = NodeHome(directory / "nodes" / name)
    config = load_config(home)
    write_config(home, msgspec.structs.replace(config, p2p=msgspec.structs.replace(config.p2p, **changes)))


class Squatters:
    """Strangers who complete the handshake and keep their links open, on a loop of their own."""

    def __init__(self, chain: str) -> None:
        self.chain = chain
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.links: list[transport.SecureLink] = []

    async def _squat(self, p2p: str, count: int) -> None:
        host, _, port = p2p.rpartition(":")
        for _ in range(count):
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
            with contextlib.suppress(OSError, transport.PeerProtocolError):
                self.links.append(await transport.handshake(reader, writer, Signer.generate(), self.chain,
                                                            "127.0.0.1:9"))

    def squat(self, p2p: str, count: int) -> None:
        asyncio.run_coroutine_threadsafe(self._squat(p2p, count), self.loop).result(30)

    def close(self) -> None:
        async def close_all() -> None:
            for link in self.links:
                link.close()

        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.mark.slow
def test_squatters_cannot_keep_a_validator_out(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    manifest = localnet.create(directory, validators=2, ledger_nodes=0, pow_bits=TEST_POW_BITS)
    # validator0 has four inbound slots; validator1 dials it, and takes at most 2 strangers per address
    set_p2p(directory, "validator0", max_inbound=4)
    set_p2p(directory, "validator1", max_inbound_per_ip=2)
    squatters = Squatters(manifest["chain_id"])
    try:
        manifest = localnet.up(directory, timeout=30)
        v0, v1 = manifest["nodes"]
        v0_key, v1_key = node_key(v0), node_key(v1)
        wait_for(lambda: v1_key in peer_keys(v0), "the validators to link")
        squatters.squat(v0["p2p"], SQUATTERS)
        squatters.squat(v1["p2p"], SQUATTERS)
        time.sleep(0.5)
        held_v0 = len(peer_keys(v0) - {v1_key})
        held_v1 = len(peer_keys(v1) - {v0_key})
        # validator1 restarts, and while it is down more strangers try for its slot
        localnet.restart_node(directory, "validator1", lambda stopped: squatters.squat(v0["p2p"], SQUATTERS))
        wait_for(lambda: v1_key in peer_keys(v0), "validator1 to link again", 30)
        assert held_v0 == 4 - 2  # one slot kept per known validator
        assert len(peer_keys(v0) - {v1_key}) == 4 - 2
        assert held_v1 == 2  # the per-address cap
        assert "Traceback" not in Path(v0["log"]).read_text(errors="replace")
    finally:
        squatters.close()
        localnet.down(directory)


def node_key(node: dict[str, Any]) -> str:
    from bilayer.keys.keystore import Keystore
    from bilayer.node.runtime import NODE_KEY_NAME

    return Keystore(NodeHome(Path(node["home"])).config_dir).info(NODE_KEY_NAME).public_key.hex()


# --- the eviction order in-process ----------------------------------------------------------


class _FakeLink:
    def __init__(self, key: bytes) -> None:
        self.peer_key = key
        self.peer_listen = "127.0.0.1:9"
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _manager(max_inbound: int, per_ip: int, validators: set[bytes]) -> PeerManager:
    ingest = SimpleNamespace()
    manager = PeerManager(Signer.generate(), "c", "127.0.0.1:9", [], cast(Any, ingest), NodeMetrics(), 0, 0,
                          max_inbound, per_ip)
    manager.validator_keys = validators
    return manager


def _link(manager: PeerManager, key: bytes, ip: str, idle_s: float) -> PeerLink:
    peer = PeerLink(cast(Any, _FakeLink(key)), inbound=True, ip=ip)
    peer.last_useful = time.monotonic() - idle_s
    manager.links[key] = peer
    return peer


def test_a_validator_displaces_the_least_useful_stranger_when_full() -> None:
    validator = b"v" * 32
    manager = _manager(3, 10, {validator, b"w" * 32})
    busy = _link(manager, b"a" * 32, "10.0.0.1", 0)
    stale = _link(manager, b"b" * 32, "10.0.0.2", 5)
    _link(manager, b"w" * 32, "10.0.0.3", 0)  # the other validator
    assert manager._make_room(validator, "10.0.0.9")
    assert stale.key not in manager.links and cast(Any, stale.link).closed
    assert busy.key in manager.links


def test_a_stranger_takes_only_an_idle_strangers_slot() -> None:
    manager = _manager(3, 10, {b"v" * 32})
    fresh = _link(manager, b"a" * 32, "10.0.0.1", 0)
    _link(manager, b"b" * 32, "10.0.0.2", 1)
    assert not manager._make_room(b"n" * 32, "10.0.0.9")  # two stranger slots, both useful lately
    idle = _link(manager, b"c" * 32, "10.0.0.3", peers.STRANGER_IDLE_S + 1)
    del manager.links[b"b" * 32]
    assert manager._make_room(b"n" * 32, "10.0.0.9")
    assert idle.key not in manager.links and fresh.key in manager.links


def test_strangers_from_one_address_are_capped() -> None:
    manager = _manager(100, 2, set())
    _link(manager, b"a" * 32, "10.0.0.1", 0)
    _link(manager, b"b" * 32, "10.0.0.1", 0)
    assert not manager._make_room(b"n" * 32, "10.0.0.1")
    assert manager._make_room(b"n" * 32, "10.0.0.2")


def test_silent_connections_give_way_when_handshakes_are_at_their_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "MAX_PENDING_HANDSHAKES", 2)

    async def scenario() -> tuple[bytes, float, float | None]:
        port = localnet.free_port()
        ingest = SimpleNamespace(maintain=lambda: None)
        manager = PeerManager(Signer.generate(), "c", f"127.0.0.1:{port}", [], cast(Any, ingest), NodeMetrics(),
                              0, 0)
        await manager.start()
        silent = []
        try:
            silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            start = time.monotonic()
            # the oldest silent connection is closed at once: its hello arrives, then end of stream
            received = await asyncio.wait_for(silent[0][0].read(), 4)
            waited = time.monotonic() - start
            evicted = manager.metrics.registry.get_sample_value("bilayer_peer_links_evicted_total",
                                                                {"reason": "slow_handshake"})
            return received, waited, evicted
        finally:
            for _, writer in silent:
                writer.close()
            await manager.stop()

    received, waited, evicted = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert evicted == 1
    assert waited < 2.0  # well before the 5 s handshake timeout
    assert 0 < len(received) < transport.MAX_HANDSHAKE_FRAME  # the node's hello frame, then nothing more

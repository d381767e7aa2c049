"""What operators watch: /health and /ready, `catching_up`, consensus and process metrics,
the build info, the HTTP latency histogram, one log line per checkpoint, and CORS."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bilayer import __version__
from bilayer.api.server import build_app
from bilayer.devnet import localnet
from bilayer.node.config import LimitsConfig
from bilayer.node.metrics import NodeMetrics
from bilayer.node.peers import PeerLink
from bilayer.node.runtime import Node
from tests.support.builders import TEST_POW_BITS
from tests.support.governance_net import cli
from tests.support.localnet import running_localnet

CHECKPOINT_LINE = re.compile(
    r"INFO bilayer\.node: checkpoint (\d+) committed: (\d+) entries, round (\d+),"
    r" time \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z, ([1-4])/4 validators signed")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found, f"no {name} in metrics"
    return float(found.group(1))


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_localnet(tmp_path_factory.mktemp("obs") / "net", validators=4, ledger_nodes=1,
                          pow_bits=TEST_POW_BITS, limits=LimitsConfig(author_rate=0)) as manifest:
        yield manifest


@pytest.mark.slow
def test_health_readiness_metrics_and_a_log_line_per_checkpoint(network: dict[str, Any]) -> None:
    ledger = next(n for n in network["nodes"] if n["role"] == "ledger")
    for node in network["nodes"]:
        code, body = get(node["api_url"] + "/health")
        assert code == 200 and json.loads(body)["status"] == "ok"
        wait_for(lambda node=node: get(node["api_url"] + "/ready")[0] == 200, f"{node['name']} to be ready")
    sent = cli("tx", "data", "--text", "watched", "--key", "alice", "--node", ledger["api_url"],
               "--keystore", network["keystore"], "--wait")
    assert sent["status"] == "FINAL"
    height = sent["height"]
    status = json.loads(get(ledger["api_url"] + "/v1/status")[1])
    assert status["catching_up"] is False
    for node in network["nodes"]:
        wait_for(lambda node=node: any(int(m.group(1)) == height for m in CHECKPOINT_LINE.finditer(
            Path(node["log"]).read_text(errors="replace"))), f"{node['name']} to log checkpoint {height}")
        lines = [m for m in CHECKPOINT_LINE.finditer(Path(node["log"]).read_text(errors="replace"))]
        assert [int(m.group(1)) for m in lines] == list(range(1, len(lines) + 1))  # one per height, in order
        assert any(int(m.group(1)) == height and int(m.group(2)) >= 1 for m in lines)
        assert all(int(m.group(4)) >= 3 for m in lines)  # a certificate holds a quorum: 3 of 4 at least

    code, body = get(ledger["api_url"] + "/metrics")
    text = body.decode()
    assert code == 200
    assert metric(text, "bilayer_consensus_height") >= height
    assert metric(text, "bilayer_consensus_validators") == 4
    assert metric(text, "bilayer_consensus_validators_power") == 4
    assert metric(text, 'bilayer_consensus_validator_power{validator="validator0"}') == 1
    assert 0 <= metric(text, "bilayer_consensus_missing_validators") <= 1
    assert metric(text, "bilayer_consensus_round") >= 0
    assert metric(text, "bilayer_consensus_byzantine_validators") == 0
    assert metric(text, "bilayer_catching_up") == 0
    assert metric(text, "bilayer_consensus_entries_ordered_total") >= 1
    assert metric(text, "process_resident_memory_bytes") > 1e6
    assert metric(text, "process_open_fds") > 5
    assert re.search(rf'^bilayer_build_info{{commit="[0-9a-z]+",version="{re.escape(__version__)}"}} 1\.0$', text,
                     re.MULTILINE), "no build info"
    assert re.search(r'^python_info\{', text, re.MULTILINE)
    assert metric(text, 'bilayer_http_request_duration_seconds_count{route="/v1/entries/{entry_id}"}') >= 1
    assert 'bilayer_http_request_duration_seconds_bucket{le="0.005",route="/v1/status"}' in text


@pytest.mark.slow
def test_a_node_without_its_peers_is_alive_but_not_ready(tmp_path: Path) -> None:
    with running_localnet(tmp_path / "net", validators=0, ledger_nodes=2, pow_bits=TEST_POW_BITS) as manifest:
        first, second = manifest["nodes"]  # the second dials the first
        wait_for(lambda: get(second["api_url"] + "/ready")[0] == 200, "readiness")
        localnet.stop_pids([first["pid"]])
        wait_for(lambda: get(second["api_url"] + "/ready")[0] == 503, "unreadiness")
        body = json.loads(get(second["api_url"] + "/ready")[1])
        assert body["error"]["code"] == "not_ready" and body["error"]["details"]["reasons"] == ["no_peers"]
        assert get(second["api_url"] + "/health")[0] == 200


class _FakeLink:
    peer_listen = "127.0.0.1:9"

    def __init__(self, key: bytes) -> None:
        self.peer_key = key

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_catching_up_while_a_peer_reports_checkpoints_ahead(tmp_path: Path) -> None:
    manifest = localnet.create(tmp_path / "net", validators=1, ledger_nodes=1, pow_bits=TEST_POW_BITS)
    node = Node.from_home(Path(manifest["nodes"][1]["home"]))
    try:
        assert node.chain is not None and node.chain.height == 0
        assert node.not_ready() == ["no_peers"]
        peer = PeerLink(cast(Any, _FakeLink(b"p" * 32)))
        node.peers.links[peer.key] = peer
        peer.height = 1
        assert not node.catching_up() and node.not_ready() == []
        peer.height = 2
        assert node.catching_up() and node.not_ready() == ["catching_up"]
    finally:
        node.storage.close()


# --- CORS in-process ------------------------------------------------------------------------


def _fake_node() -> Any:
    return SimpleNamespace(metrics=NodeMetrics(), started_s=time.time(), status=lambda: {"name": "n"},
                           not_ready=lambda: [])


def _requests(origins: list[str]) -> list[tuple[int, dict[str, str]]]:
    async def scenario() -> list[tuple[int, dict[str, str]]]:
        app = build_app(_fake_node(), max_request_bytes=1 << 20, connection_rate=0, connection_burst=0,
                        cors_allowed_origins=origins)
        async with TestClient(TestServer(app)) as client:
            answers = []
            for method, origin in (("GET", "https://console.example"), ("GET", "https://evil.example"),
                                   ("OPTIONS", "https://console.example"), ("GET", None)):
                headers = {"Access-Control-Request-Method": "GET"} if method == "OPTIONS" else {}
                if origin:
                    headers["Origin"] = origin
                response = await client.request(method, "/v1/status", headers=headers)
                answers.append((response.status, dict(response.headers)))
            return answers

    return asyncio.run(scenario())


def test_cors_is_off_by_default() -> None:
    answers = _requests([])
    assert [status for status, _ in answers] == [200, 200, 405, 200]
    assert all("Access-Control-Allow-Origin" not in headers for _, headers in answers)


def test_cors_allows_only_the_configured_origins() -> None:
    (ok, allowed), (_, other), (pre, preflight), (_, plain) = _requests(["https://console.example"])
    assert ok == 200 and allowed["Access-Control-Allow-Origin"] == "https://console.example"
    assert "Origin" in allowed["Vary"]
    assert "Access-Control-Allow-Origin" not in other and "Access-Control-Allow-Origin" not in plain
    assert pre == 204 and preflight["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert preflight["Access-Control-Allow-Origin"] == "https://console.example"
    answers = _requests(["*"])
    assert answers[1][1]["Access-Control-Allow-Origin"] == "*"


def test_health_and_ready_in_process() -> None:
    async def scenario() -> tuple[int, int, dict[str, Any]]:
        node = _fake_node()
        app = build_app(node, max_request_bytes=1 << 20, connection_rate=0, connection_burst=0)
        async with TestClient(TestServer(app)) as client:
            health = (await client.get("/health")).status
            ready = (await client.get("/ready")).status
            node.not_ready = lambda: ["halted", "storage_failed"]
            refused = await client.get("/ready")
            return health, ready, {"status": refused.status, **(await refused.json())}

    health, ready, refused = asyncio.run(scenario())
    assert (health, ready) == (200, 200)
    assert refused["status"] == 503 and refused["error"]["code"] == "not_ready"
    assert refused["error"]["details"]["reasons"] == ["halted", "storage_failed"]


def test_build_commit_comes_from_the_environment_or_bilayers_own_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    from bilayer.node.process import build_commit

    build_commit.cache_clear()
    try:
        monkeypatch.setenv("BILAYER_BUILD_COMMIT", "0123456789ab")
        assert build_commit() == "0123456789ab"
        build_commit.cache_clear()
        monkeypatch.delenv("BILAYER_BUILD_COMMIT")
        assert re.fullmatch(r"[0-9a-f]{12}|unknown", build_commit())
    finally:
        build_commit.cache_clear()

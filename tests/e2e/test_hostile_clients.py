"""The HTTP port against hostile clients: half-sent requests, connection floods, a small
descriptor limit, accept errors. One real node process under `ulimit -n 1024`, plus the
guard in-process where the policy itself is checked."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

from bilayer.api.guard import AcceptErrorLog, ConnectionGuard, GuardedSite
from bilayer.devnet import localnet
from bilayer.node.config import LimitsConfig, NodeHome, load_config, write_config
from bilayer.node.process import raise_fd_limit
from tests.support.builders import TEST_POW_BITS

FD_LIMIT = 1024
PARTIAL_REQUESTS = 1100
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
PARTIAL = b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _limit_descriptors() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.fixture(scope="module")
def limited_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One ledger node whose soft and hard descriptor limits are both 1024 (it cannot raise
    them), with short read deadlines."""
    directory = tmp_path_factory.mktemp("limited") / "net"
    manifest = localnet.create(directory, validators=0, ledger_nodes=1, pow_bits=TEST_POW_BITS,
                               limits=LimitsConfig(author_rate=0, connection_rate=0))
    node = manifest["nodes"][0]
    home = NodeHome(Path(node["home"]))
    config = load_config(home)
    write_config(home, msgspec.structs.replace(config, api=msgspec.structs.replace(
        config.api, header_timeout_s=HEADER_TIMEOUT_S, body_timeout_s=BODY_TIMEOUT_S)))
    with open(node["log"], "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "bilayer", "node", "run", "--home", node["home"]],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True, preexec_fn=_limit_descriptors)
    node["pid"] = process.pid
    localnet.write_manifest(directory, manifest)
    try:
        localnet.wait_ready(node, 30)
        yield node
    finally:
        localnet.down(directory)
        process.wait(10)


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def address(node: dict[str, Any]) -> tuple[str, int]:
    host, _, port = node["api_url"].removeprefix("http://").rpartition(":")
    return host, int(port)


def closed_after(sock: socket.socket, limit_s: float) -> float:
    """Seconds until the node closes `sock` (reads to end of stream); fail past `limit_s`."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the node kept the connection open for {limit_s} s") from None
    return time.monotonic() - start


@pytest.mark.slow
def test_half_sent_requests_do_not_silence_a_node_under_a_small_descriptor_limit(
        limited_node: dict[str, Any]) -> None:
    host, port = address(limited_node)
    log = Path(limited_node["log"])
    lines_before = len(log.read_text(errors="replace").splitlines())
    held: list[socket.socket] = []
    try:
        for _ in range(PARTIAL_REQUESTS):
            sock = socket.create_connection((host, port), timeout=5)
            with contextlib.suppress(OSError):  # the node may already have displaced it
                sock.sendall(PARTIAL)
            held.append(sock)
        latencies = []
        for _ in range(5):
            start = time.monotonic()
            code, body = get(limited_node["api_url"] + "/v1/status")
            latencies.append(time.monotonic() - start)
            assert code == 200 and json.loads(body)["healthy"] is True
        descriptors = len(os.listdir(f"/proc/{limited_node['pid']}/fd"))
    finally:
        for sock in held:
            sock.close()
    assert max(latencies) < 2.0, latencies
    assert descriptors < FD_LIMIT, descriptors
    assert localnet.pid_alive(limited_node["pid"])
    text = log.read_text(errors="replace")
    new_lines = len(text.splitlines()) - lines_before
    assert new_lines < 20, text[-3000:]
    assert "Traceback" not in text
    code, metrics = get(limited_node["api_url"] + "/metrics")
    assert code == 200 and b'bilayer_http_connections_dropped_total{reason="displaced"}' in metrics
    print(f"status latency max {max(latencies) * 1000:.0f} ms under {PARTIAL_REQUESTS} half-sent requests;"
          f" node descriptors {descriptors}; new log lines {new_lines}")


@pytest.mark.slow
def test_a_half_sent_request_is_closed_after_the_header_deadline(limited_node: dict[str, Any]) -> None:
    with socket.create_connection(address(limited_node), timeout=5) as sock:
        sock.sendall(PARTIAL)
        waited = closed_after(sock, HEADER_TIMEOUT_S + 5)
    assert HEADER_TIMEOUT_S - 0.5 <= waited <= HEADER_TIMEOUT_S + 3, waited


@pytest.mark.slow
def test_a_half_sent_body_is_closed_after_the_body_deadline(limited_node: dict[str, Any]) -> None:
    with socket.create_connection(address(limited_node), timeout=5) as sock:
        sock.sendall(b"POST /v1/entries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        waited = closed_after(sock, BODY_TIMEOUT_S + 5)
    assert BODY_TIMEOUT_S - 0.5 <= waited <= BODY_TIMEOUT_S + 3, waited


@pytest.mark.slow
def test_a_long_poll_outlives_the_read_deadlines(limited_node: dict[str, Any]) -> None:
    start = time.monotonic()
    code, body = get(limited_node["api_url"] + "/v1/entries/" + "ab" * 32 + "?wait=4", timeout=10)
    assert code == 404 and json.loads(body)["error"]["code"] == "not_found"
    assert time.monotonic() - start >= 3.5


# --- the guard in-process -----------------------------------------------------------------


async def _serve(guard: ConnectionGuard, release: asyncio.Event) -> tuple[web.AppRunner, int]:
    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    async def fast(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[guard.middleware()])
    app.router.add_get("/slow", slow)
    app.router.add_get("/fast", fast)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    port = localnet.free_port()
    await GuardedSite(runner, "127.0.0.1", port, guard=guard).start()
    return runner, port


async def _request(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def test_over_the_cap_an_idle_connection_gives_way_and_busy_ones_refuse_the_newcomer() -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        guard = ConnectionGuard(max_connections=100, max_per_ip=2, header_timeout_s=30, body_timeout_s=30)
        runner, port = await _serve(guard, release)
        try:
            # two half-sent requests hold the address's two slots; a complete request displaces the older
            idle1 = await asyncio.open_connection("127.0.0.1", port)
            idle1[1].write(PARTIAL)
            idle2 = await asyncio.open_connection("127.0.0.1", port)
            idle2[1].write(PARTIAL)
            await asyncio.sleep(0.1)
            assert guard.count_from("127.0.0.1") == 2
            assert (await _request(port, "/fast")).endswith(b"ok")
            assert await asyncio.wait_for(idle1[0].read(), 5) == b""  # closed by the node
            idle2[1].close()
            # two requests in progress: nothing may give way, the third is refused with a coded 503
            busy = [asyncio.create_task(_request(port, "/slow")) for _ in range(2)]
            for _ in range(50):
                if guard.count_from("127.0.0.1") == 2 and all(c.requests_open for c in guard._all):
                    break
                await asyncio.sleep(0.02)
            refused = await _request(port, "/fast")
            assert refused.startswith(b"HTTP/1.1 503") and b'"overloaded"' in refused
            release.set()
            assert all(answer.endswith(b"done") for answer in await asyncio.gather(*busy))
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_total_cap_displaces_the_oldest_idle_connection_of_any_address() -> None:
    async def scenario() -> None:
        guard = ConnectionGuard(max_connections=3, max_per_ip=10, header_timeout_s=30, body_timeout_s=30)
        runner, port = await _serve(guard, asyncio.Event())
        try:
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            await asyncio.sleep(0.1)
            assert len(guard) == 3
            assert (await _request(port, "/fast")).endswith(b"ok")
            assert await asyncio.wait_for(idle[0][0].read(), 5) == b""
            assert len(guard) <= 3
            for _, writer in idle:
                writer.close()
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(scenario(), 30))


# --- accept errors and the descriptor limit -------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_repeated_accept_errors_are_logged_once_per_interval_without_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    failures: list[int] = []
    handler = AcceptErrorLog(interval_s=10.0, clock=clock, on_error=lambda: failures.append(1))
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="bilayer.api"):
            for i in range(100_000):  # a minute of failing accepts, many per millisecond
                clock.now = i * 0.0006
                handler(loop, {"message": "socket.accept() out of system resource",
                               "exception": OSError(errno.EMFILE, "Too many open files")})
    finally:
        loop.close()
    records = [r for r in caplog.records if r.name == "bilayer.api"]
    assert len(failures) == 100_000
    assert 5 <= len(records) <= 7  # one per 10 s of a 60 s flood
    assert all(r.exc_info is None and "Too many open files" in r.getMessage() for r in records)
    assert "more since the last report" in records[-1].getMessage()


def test_other_loop_errors_still_reach_the_default_handler(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            AcceptErrorLog()(loop, {"message": "something else broke", "exception": ValueError("boom")})
    finally:
        loop.close()
    assert any("something else broke" in r.getMessage() for r in caplog.records)


def test_the_node_raises_its_soft_descriptor_limit_to_the_hard_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    cap = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)  # a process may always lower its hard limit
    soft = min(256, cap // 2)
    script = ("import resource; from bilayer.node.process import raise_fd_limit;"
              f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {cap})); print(raise_fd_limit(),"
              " *resource.getrlimit(resource.RLIMIT_NOFILE))")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(cap)] * 3
    assert raise_fd_limit() >= resource.getrlimit(resource.RLIMIT_NOFILE)[0]

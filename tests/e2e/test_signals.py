"""Signals a node process meets in operation: SIGTERM with long-polls open, SIGHUP and
logrotate's SIGUSR1, and the peer-link fault hooks only behind `[testing] fault_signals`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bilayer.devnet import localnet
from bilayer.node.config import FaultHooksConfig, NodeHome, load_config, write_config
from tests.support.builders import TEST_POW_BITS

pytestmark = pytest.mark.slow

LONG_POLL_S = 25


def status(node: dict[str, Any]) -> dict[str, Any]:
    with urllib.request.urlopen(node["api_url"] + "/v1/status", timeout=5) as response:
        return dict(json.loads(response.read()))


def wait_for(predicate: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def log_text(node: dict[str, Any]) -> str:
    return Path(node["log"]).read_text(errors="replace")


def test_sigterm_stops_promptly_with_a_long_poll_open(single_node: dict[str, Any]) -> None:
    node = single_node["nodes"][0]
    answered: list[int | str] = []

    def long_poll() -> None:
        url = node["api_url"] + "/v1/entries/" + "cd" * 32 + f"?wait={LONG_POLL_S}"
        try:
            with urllib.request.urlopen(url, timeout=LONG_POLL_S + 5) as response:
                answered.append(response.status)
        except urllib.error.HTTPError as exc:
            answered.append(exc.code)
        except OSError as exc:
            answered.append(type(exc).__name__)

    polls = [threading.Thread(target=long_poll) for _ in range(3)]
    for poll in polls:
        poll.start()
    time.sleep(1.0)  # the long-polls are waiting inside the node
    assert not answered
    start = time.monotonic()
    os.kill(node["pid"], signal.SIGTERM)
    wait_for(lambda: not localnet.pid_alive(node["pid"]), "the node to exit", LONG_POLL_S)
    stopped_in = time.monotonic() - start
    for poll in polls:
        poll.join(LONG_POLL_S)
    assert stopped_in < 4.0, stopped_in
    assert answered == [404, 404, 404]  # answered as of the moment of stopping: not found
    assert "Traceback" not in log_text(node)
    print(f"stopped in {stopped_in * 1000:.0f} ms with {len(polls)} long-polls of {LONG_POLL_S} s open")


def test_sighup_and_usr_signals_never_stop_a_node_or_cut_its_links(single_node: dict[str, Any]) -> None:
    node = single_node["nodes"][0]
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
        os.kill(node["pid"], sig)
        time.sleep(0.2)
        assert localnet.pid_alive(node["pid"])
        assert status(node)["isolated"] is False
    text = log_text(node)
    assert "SIGHUP: logging to standard error, nothing to reopen; the node keeps running" in text
    assert "SIGUSR1: logging to standard error" in text
    assert "SIGUSR2 ignored: [testing] fault_signals is off" in text


def test_fault_signals_cut_and_restore_peer_links_only_when_turned_on(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    localnet.create(directory, validators=0, ledger_nodes=2, pow_bits=TEST_POW_BITS,
                    testing=FaultHooksConfig(fault_signals=True))
    try:
        manifest = localnet.up(directory)
        node = manifest["nodes"][1]
        wait_for(lambda: status(node)["peers"] == 1, "the link")
        os.kill(node["pid"], signal.SIGUSR1)
        wait_for(lambda: status(node)["isolated"] is True and status(node)["peers"] == 0, "isolation")
        os.kill(node["pid"], signal.SIGUSR2)
        wait_for(lambda: status(node)["isolated"] is False and status(node)["peers"] == 1, "the link again")
        assert "[testing] fault_signals is on" in log_text(node)
    finally:
        localnet.down(directory)


def test_a_rotated_json_log_file_is_reopened_on_sighup(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    manifest = localnet.create(directory, validators=0, ledger_nodes=1, pow_bits=TEST_POW_BITS)
    node = manifest["nodes"][0]
    log_file = tmp_path / "node.log"
    process = subprocess.Popen([sys.executable, "-m", "bilayer", "node", "run", "--home", node["home"],
                                "--log-file", str(log_file), "--log-format", "json"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        node["pid"] = process.pid
        localnet.wait_ready(node, 30)
        log_file.rename(tmp_path / "node.log.1")  # what logrotate does
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: log_file.exists() and "log file reopened" in log_file.read_text(), "the new log file")
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        old = (tmp_path / "node.log.1").read_text().splitlines()
        new = log_file.read_text().splitlines()
        records = [json.loads(line) for line in old + new]
        assert {"time", "level", "logger", "message"} <= set(records[0])
        assert any("serving API" in r["message"] for r in records[: len(old)])
        assert new[0] and json.loads(new[0])["message"] == "SIGHUP: log file reopened"
        assert any(r["message"] == "stopping" for r in records[len(old):])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_the_testing_section_is_off_unless_set(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    manifest = localnet.create(directory, validators=0, ledger_nodes=1, pow_bits=TEST_POW_BITS)
    config = load_config(NodeHome(Path(manifest["nodes"][0]["home"])))
    assert config.testing.fault_signals is False
    write_config(NodeHome(Path(manifest["nodes"][0]["home"])),
                 msgspec.structs.replace(config, testing=FaultHooksConfig(fault_signals=True)))
    assert load_config(NodeHome(Path(manifest["nodes"][0]["home"]))).testing.fault_signals is True

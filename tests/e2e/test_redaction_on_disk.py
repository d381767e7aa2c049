"""A redacted payload leaves the disk of every node within a bounded time of the redaction
being final: every file of every node's home is scanned for the bytes, raw, hex and base64,
including on a node killed with SIGKILL right after it applied the redaction."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bilayer.devnet import localnet
from bilayer.genesis import GovernanceParams
from bilayer.node.config import LimitsConfig
from bilayer.node.scrub import PayloadScrubber
from bilayer.node.storage import Storage
from tests.support.builders import TEST_POW_BITS
from tests.support.governance_net import actors
from tests.support.localnet import running_localnet
from tests.support.manageability import decide, http_status

pytestmark = pytest.mark.slow

SCRUB_BOUND_S = 10.0  # after the redaction is final on a running node, or after a killed node restarts


@pytest.fixture
def network(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with running_localnet(tmp_path / "net", validators=4, ledger_nodes=1, pow_bits=TEST_POW_BITS,
                          limits=LimitsConfig(author_rate=0),
                          governance=GovernanceParams(voting_period_ms=60_000, timelock_ms=1_500,
                                                      emergency_ratify_ms=15_000)) as manifest:
        yield manifest


def forms(secret: bytes) -> list[bytes]:
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret),
            base64.urlsafe_b64encode(secret)]


def holders(home: Path, secret: bytes) -> list[str]:
    """Every file under `home` holding `secret` in any of its forms."""
    found = []
    for path in sorted(home.rglob("*")):
        if not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # a journal that went away while we looked
            continue
        found += [f"{path.relative_to(home)} ({i})" for i, form in enumerate(forms(secret)) if form in data]
    return found


def wait_clean(home: Path, secret: bytes, bound_s: float) -> float:
    start = time.monotonic()
    while found := holders(home, secret):
        assert time.monotonic() - start < bound_s, f"{home.name} still holds the payload: {found}"
        time.sleep(0.1)
    return time.monotonic() - start


def test_a_redacted_payload_leaves_every_file_of_every_node(network: dict[str, Any]) -> None:
    _, _, _, tx = actors(network)
    secret = f"protected witness {os.urandom(6).hex()} lives at 12 Elm Street, flat 3".encode()
    target = tx("alice", "tx", "data", "--text", secret.decode())
    assert target["status"] == "FINAL"
    homes = {n["name"]: Path(n["home"]) for n in network["nodes"]}
    assert all(holders(home, secret) for home in homes.values())  # the scan sees the bytes before

    victim = next(n for n in network["nodes"] if n["name"] == "validator3")
    decide(tx, 1, "--action", "redact", "--entry", target["id"], "--reason-code", "personal_data")
    final_at = time.monotonic()
    # the moment validator3 has applied the redaction it is killed, before it can tidy up
    while http_status(f"{victim['api_url']}/v1/entries/{target['id']}/payload") != 410:
        assert time.monotonic() - final_at < 30, "validator3 never applied the redaction"
        time.sleep(0.01)
    os.kill(victim["pid"], signal.SIGKILL)
    killed_at = time.monotonic() - final_at
    left_on_killed = holders(homes["validator3"], secret)

    took = {}
    for name, home in homes.items():
        if name != "validator3":
            took[name] = wait_clean(home, secret, SCRUB_BOUND_S - (time.monotonic() - final_at))
    restarted = time.monotonic()
    localnet.restart_node(Path(network["dir"]), "validator3")
    took["validator3 after restart"] = wait_clean(homes["validator3"], secret, SCRUB_BOUND_S)
    took["validator3 restart+clean"] = time.monotonic() - restarted
    assert http_status(f"{victim['api_url']}/v1/entries/{target['id']}/payload") == 410
    print(f"killed {killed_at:.2f} s after final, its disk then held: {left_on_killed or 'nothing'};"
          f" clean after: " + ", ".join(f"{k} {v:.2f} s" for k, v in took.items()))


# --- the crash window, made certain: deleted, committed, killed before any truncation --------

KILLED_WRITER = """
import os, signal, sys
from bilayer.node.storage import Storage
storage = Storage(sys.argv[1])
secret = bytes.fromhex(sys.argv[2])
conn = storage._writer
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("INSERT INTO payloads (id, payload) VALUES (?, ?)", (b"i" * 32, secret))
conn.execute("DELETE FROM payloads WHERE id = ?", (b"i" * 32,))
conn.execute("INSERT INTO tombstones (id, decision, reason_code, time_ms, height) VALUES (?, 'proposal:1', 'x', 0, 1)",
             (b"i" * 32,))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_store_killed_before_truncating_is_scrubbed_when_it_opens_again(tmp_path: Path) -> None:
    secret = f"account holder {os.urandom(6).hex()}".encode()
    db = tmp_path / "data" / "ledger.sqlite"
    run = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(db), secret.hex()], timeout=60)
    assert run.returncode == -signal.SIGKILL
    assert holders(tmp_path, secret) == ["data/ledger.sqlite-wal (0)"]  # the old page survives in the WAL
    storage = Storage(db)
    try:
        secure_delete = storage.with_writer(lambda conn: conn.execute("PRAGMA secure_delete").fetchone()[0])
        assert secure_delete == 1
        assert holders(tmp_path, secret)  # opening the store alone does not remove it
        PayloadScrubber(storage).scrub_now()
        assert holders(tmp_path, secret) == []
    finally:
        storage.close()

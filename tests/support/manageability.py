"""Council decisions and raw HTTP status checks against a running localnet."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from tests.support.governance_net import Tx


def decide(tx: Tx, number: int, *action: str) -> None:
    """Propose, pass with two of three council votes, execute once the timelock has run out."""
    proposed = tx("council1", "gov", "propose", *action, "--reason", "order 12/2026", "--legal-ref", "Act s.4")
    assert proposed["status"] == "FINAL", proposed
    assert tx("council1", "gov", "vote", str(number), "yes")["status"] == "FINAL"
    assert tx("council2", "gov", "vote", str(number), "yes")["status"] == "FINAL"
    deadline = time.monotonic() + 30
    while (executed := tx("dave", "gov", "execute", str(number)))["status"] != "FINAL":
        assert executed["reason"] == "timelock_not_expired" and time.monotonic() < deadline, executed
        time.sleep(0.5)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code

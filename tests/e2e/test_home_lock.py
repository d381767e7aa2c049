"""One process per node home: a second `node run` and `audit reindex` on a live home are
refused with `node_running` before the store is opened; a killed holder blocks nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bilayer.devnet import localnet
from bilayer.errors import NodeRunning
from bilayer.node.config import NodeHome
from bilayer.node.process import HomeLock
from tests.support.builders import TEST_POW_BITS


def bilayer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bilayer", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_a_second_node_run_and_a_reindex_on_a_live_home_are_refused(single_node: dict[str, Any]) -> None:
    node = single_node["nodes"][0]
    started = time.monotonic()
    second = bilayer("node", "run", "--home", node["home"])
    assert second.returncode != 0
    assert second.stderr.startswith("error [node_running]: a node process (pid " + str(node["pid"]) + ")"), \
        second.stderr
    assert "address already in use" not in second.stderr
    assert time.monotonic() - started < 30
    reindex = bilayer("audit", "reindex", "--data-dir", node["home"], "--json")
    assert reindex.returncode != 0
    assert json.loads(reindex.stdout)["error"]["code"] == "node_running"
    assert localnet.pid_alive(node["pid"])


@pytest.mark.slow
def test_the_lock_is_taken_before_the_store_is_opened_and_dies_with_its_holder(tmp_path: Path) -> None:
    manifest = localnet.create(tmp_path / "net", validators=0, ledger_nodes=1, pow_bits=TEST_POW_BITS)
    home = NodeHome(Path(manifest["nodes"][0]["home"]))
    # another process holds the home before any store exists: the refused run creates none
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from bilayer.node.process import HomeLock;"
                               f" HomeLock({str(home.data_dir)!r}).acquire(); print('held', flush=True);"
                               " time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = bilayer("node", "run", "--home", str(home.home))
        assert "error [node_running]" in refused.stderr and f"pid {holder.pid}" in refused.stderr
        assert not home.ledger_db.exists()
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # the kernel drops the lock with its holder
        holder.wait(10)
    with HomeLock(home.data_dir).acquire() as lock:
        assert lock.path.read_text().strip() == str(os.getpid())
        with pytest.raises(NodeRunning) as refused_here:
            HomeLock(home.data_dir).acquire("audit reindex")
        assert refused_here.value.code == "node_running" and "audit reindex" in refused_here.value.message
    HomeLock(home.data_dir).acquire().release()  # released: free again

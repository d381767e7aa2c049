"""The operator guide's path to a chain of validators on separate machines: each operator
initialises a home and sends its node key, a coordinator writes the genesis, every operator
checks its root and joins; the nodes then finalize checkpoints together."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bilayer.devnet.localnet import free_port, pid_alive, stop_pids
from tests.support.cli import assert_error, bilayer
from tests.support.paths import REPO

VALIDATORS = 3


def bilayer_json(*args: str) -> Any:
    result = bilayer(*args, "--json")
    assert result.code == 0, result
    return json.loads(result.out)


def status(api: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{api}/v1/status", timeout=5) as response:
        return dict(json.load(response))


def test_genesis_new_refuses_bad_keys_and_an_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "genesis.json"
    assert_error(bilayer("genesis", "new", "--out", str(out), "--chain-id", "c", "--validator", "v=zz"),
                 "config_error")
    assert_error(bilayer("genesis", "new", "--out", str(out), "--chain-id", "c", "--validator", "novalue"),
                 "config_error")
    assert not out.exists()
    key = "ab" * 32
    made = bilayer_json("genesis", "new", "--out", str(out), "--chain-id", "c", "--validator", f"v={key}:3")
    assert made["validators"] == [{"name": "v", "public_key": key, "power": 3}]
    assert_error(bilayer("genesis", "new", "--out", str(out), "--chain-id", "c"), "config_error")
    assert bilayer_json("genesis", "show", str(out))["root"] == made["root"]


@pytest.mark.slow
def test_validators_initialised_apart_join_one_genesis_and_finalize(tmp_path: Path) -> None:
    homes = [tmp_path / f"host{i}" for i in range(VALIDATORS)]
    apis = [f"127.0.0.1:{free_port()}" for _ in homes]
    p2ps = [f"127.0.0.1:{free_port()}" for _ in homes]
    keys = [bilayer_json("node", "init", "--home", str(home), "--api-listen", api, "--p2p-listen", p2p)["node_key"]
            for home, api, p2p in zip(homes, apis, p2ps, strict=True)]

    genesis = tmp_path / "genesis.json"
    made = bilayer_json("genesis", "new", "--out", str(genesis), "--chain-id", "multi-host", "--pow-bits", "8",
                        *[arg for i, key in enumerate(keys) for arg in ("--validator", f"v{i}={key}")])
    pids: list[int] = []
    try:
        for i, home in enumerate(homes):
            assert bilayer_json("genesis", "show", str(genesis))["root"] == made["root"]
            peers = [arg for j, p2p in enumerate(p2ps) if j != i for arg in ("--peer", p2p)]
            joined = bilayer_json("node", "init", "--home", str(home), "--genesis", str(genesis), "--force",
                                  "--api-listen", apis[i], "--p2p-listen", p2ps[i], *peers)
            assert joined["node_key"] == keys[i]  # --force rewrites the configuration, never the key
            with open(home / "node.log", "ab") as log:
                pids.append(subprocess.Popen([sys.executable, "-m", "bilayer", "node", "run", "--home", str(home)],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True).pid)
        keystore = str(tmp_path / "keys")
        bilayer_json("keys", "new", "op", "--plaintext", "--keystore", keystore)
        deadline = time.monotonic() + 60
        written = None
        while written is None and time.monotonic() < deadline:  # until the nodes have met and listen
            result = bilayer("tx", "data", "--node", f"http://{apis[0]}", "--keystore", keystore, "--key", "op",
                             "--text", "first entry of a chain run apart", "--wait", "--json")
            written = json.loads(result.out) if result.code == 0 else time.sleep(1)
        assert written is not None and written["status"] == "FINAL", written
        heights = [0] * VALIDATORS
        while time.monotonic() < deadline and min(heights) < 1:
            time.sleep(0.5)
            for i, api in enumerate(apis):
                try:
                    heights[i] = int(status(api).get("height") or 0)
                except OSError:
                    assert pid_alive(pids[i]), (homes[i] / "node.log").read_text()[-2000:]
        assert min(heights) >= 1, f"heights {heights}"
        roots = {status(api)["genesis_root"] for api in apis}
        assert roots == {made["root"]}
    finally:
        stop_pids(pids)


def test_the_systemd_unit_runs_a_command_the_node_accepts() -> None:
    """The unit the operator guide installs starts `bilayer node run` with options it has."""
    unit = (REPO / "contrib" / "systemd" / "bilayer-node.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    program, *args = exec_start.removeprefix("ExecStart=").split()
    assert program.endswith("/bin/bilayer") and args[:2] == ["node", "run"]
    options = {a for a in args[2:] if a.startswith("--")}
    help_text = bilayer("node", "run", "--help").out
    assert options and all(option in help_text for option in options), options
    log_format = args[args.index("--log-format") + 1]
    assert log_format in help_text

"""A whole network of real node processes on loopback, for demos, tests and benchmarks.

`DIR/localnet.json` is the scripting contract: chain id, genesis path, keystore path,
funded key names, and per node its name, role, API URL, home and process id.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ..api.client import NodeClient
from ..errors import BilayerError, ConfigError, NodeUnreachable
from ..genesis import (
    Allocation,
    ChainParams,
    Genesis,
    GenesisCouncilMember,
    GenesisRegulator,
    GenesisValidator,
    GovernanceParams,
    load_genesis,
    write_genesis,
)
from ..keys.keystore import Keystore
from ..node.config import (
    ApiConfig,
    ConsensusConfig,
    FaultHooksConfig,
    LimitsConfig,
    NodeConfig,
    NodeHome,
    P2PConfig,
    SyncConfig,
    load_config,
    write_config,
)
from ..node.runtime import NODE_KEY_NAME

MANIFEST = "localnet.json"
FUNDED_KEYS = ("alice", "bob", "carol", "dave")
COUNCIL_KEYS = ("council1", "council2", "council3")
REGULATOR_KEYS = ("regulator",)
FUNDED_AMOUNT = 1_000_000_000
DEFAULT_ASSET = "BLY"


# a demo network decides in minutes, not days: 10 minutes to vote, 10 seconds of timelock,
# 5 minutes to ratify an emergency freeze
LOCALNET_GOVERNANCE = GovernanceParams(voting_period_ms=10 * 60 * 1000, timelock_ms=10_000,
                                       emergency_ratify_ms=5 * 60 * 1000)


class LocalnetError(BilayerError):
    """The local network cannot do what was asked."""

    code = "localnet_error"


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10_000
_handed_out: set[int] = set()  # not bound until their nodes start: never hand one out twice


def _ephemeral_start() -> int:
    """Where the system starts handing out ports for outgoing connections (Linux: 32768)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A free port below the ephemeral range. A port is chosen when the localnet is created
    but bound only when its node starts; one from the ephemeral range may meanwhile be taken
    by any outgoing connection on the machine, and the node would fail to start."""
    rng = random.Random()
    top = _ephemeral_start() - 1
    for _ in range(200):
        port = rng.randint(_LOWEST_PORT, top) if top > _LOWEST_PORT else 0
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen = int(s.getsockname()[1])
        _handed_out.add(chosen)
        return chosen
    raise LocalnetError("no free port on 127.0.0.1 below the ephemeral range")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process counts as gone
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def manifest_path(directory: Path) -> Path:
    return Path(directory) / MANIFEST


def read_manifest(directory: Path) -> dict[str, Any]:
    path = manifest_path(directory)
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise LocalnetError(
            f"no localnet in {directory} (no {MANIFEST}); start one with 'bilayer localnet up'"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from None


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    path = manifest_path(directory)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(path)


# Emulated wide-area profiles: regions (nodes are placed in them in turn, validators first)
# and the one-way delay in ms between each pair, about half the round trips measured between
# cloud regions; within a region 1 ms. Frames are delayed in the sender (`[testing]
# link_delay_ms`), so the same figures hold on any kernel (tc netem needs a module many
# container kernels lack).
WAN_PROFILES: dict[str, tuple[tuple[str, ...], dict[frozenset[str], int], int]] = {
    "four-regions": (("shanghai", "frankfurt", "virginia", "singapore"), {
        frozenset({"shanghai", "frankfurt"}): 100, frozenset({"shanghai", "virginia"}): 110,
        frozenset({"shanghai", "singapore"}): 35, frozenset({"frankfurt", "virginia"}): 45,
        frozenset({"frankfurt", "singapore"}): 80, frozenset({"virginia", "singapore"}): 115,
    }, 5),
    "china": (("shanghai", "beijing", "shenzhen", "chengdu"), {
        frozenset({"shanghai", "beijing"}): 14, frozenset({"shanghai", "shenzhen"}): 15,
        frozenset({"shanghai", "chengdu"}): 20, frozenset({"beijing", "shenzhen"}): 22,
        frozenset({"beijing", "chengdu"}): 20, frozenset({"shenzhen", "chengdu"}): 17,
    }, 2),
}


def wan_regions(names: list[str], profile: str) -> dict[str, str]:
    regions = WAN_PROFILES[profile][0]
    return {name: regions[i % len(regions)] for i, name in enumerate(names)}


def wan_delays(names: list[str], keys: dict[str, str], profile: str) -> dict[str, dict[str, int]]:
    """For each node, the one-way delay in ms to every other node, by that node's key (hex)."""
    _, pairs, _ = WAN_PROFILES[profile]
    region = wan_regions(names, profile)
    return {name: {keys[other]: pairs.get(frozenset({region[name], region[other]}), 1)
                   for other in names if other != name} for name in names}


def create(
    directory: Path,
    *,
    validators: int = 4,
    ledger_nodes: int = 1,
    pow_bits: int = 16,
    chain_id: str = "bilayer-localnet",
    topology: str = "mesh",
    limits: LimitsConfig | None = None,
    consensus: ConsensusConfig | None = None,
    extra_allocations: tuple[Allocation, ...] = (),
    governance: GovernanceParams | None = None,
    testing: FaultHooksConfig | None = None,
    wan: str = "",
) -> dict[str, Any]:
    """Lay out keys, genesis and node homes; start nothing. `testing` turns on fault hooks
    (the campaign runner's disconnect signals); `wan` names a `WAN_PROFILES` entry whose
    delays every peer link then has.

    Validators dial each other (a full mesh: consensus messages are not relayed); ledger nodes
    dial every validator and the ledger nodes before them (`topology="line"` instead chains
    the ledger nodes one after another, for gossip tests on a network without validators).
    """
    directory = Path(directory).resolve()
    if manifest_path(directory).exists():
        raise LocalnetError(
            f"{directory} already holds a localnet; 'bilayer localnet down --dir {directory}'"
            " stops it, deleting the directory discards it"
        )
    if validators < 0 or ledger_nodes < 0 or validators + ledger_nodes < 1:
        raise LocalnetError("a localnet needs at least one node")
    if wan and wan not in WAN_PROFILES:
        raise LocalnetError(f"no WAN profile {wan!r}; the profiles are {', '.join(WAN_PROFILES)}")
    directory.mkdir(parents=True, exist_ok=True)
    keystore = Keystore(directory / "keys")
    funded = [keystore.create(name) for name in FUNDED_KEYS]
    council = [keystore.create(name) for name in COUNCIL_KEYS]
    regulators = [keystore.create(name) for name in REGULATOR_KEYS]
    names = [f"validator{i}" for i in range(validators)] + [f"ledger{i}" for i in range(ledger_nodes)]
    homes = {name: NodeHome(directory / "nodes" / name) for name in names}
    node_keys = {name: Keystore(homes[name].config_dir).create(NODE_KEY_NAME) for name in names}
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time_ms=int(time.time() * 1000),
        params=ChainParams(pow_bits=pow_bits),
        allocations=tuple(Allocation(k.address, DEFAULT_ASSET, FUNDED_AMOUNT) for k in funded) + extra_allocations,
        validators=tuple(GenesisValidator(name, node_keys[name].public_key.hex(), 1) for name in names[:validators]),
        council=tuple(GenesisCouncilMember(k.name, k.public_key.hex(), 1) for k in council),
        regulators=tuple(GenesisRegulator(k.name, k.public_key.hex()) for k in regulators),
        governance=governance or LOCALNET_GOVERNANCE,
    )
    genesis_file = directory / "genesis.json"
    write_genesis(genesis, genesis_file)
    p2p = {name: f"127.0.0.1:{free_port()}" for name in names}
    nodes = []
    validator_names, ledger_names = names[:validators], names[validators:]
    delays = wan_delays(names, {n: k.public_key.hex() for n, k in node_keys.items()}, wan) if wan else {}
    for name in names:
        if name in validator_names:
            dial = [p2p[other] for other in validator_names[: validator_names.index(name)]]
        else:
            index = ledger_names.index(name)
            before = ledger_names[:index]
            if topology == "line":
                dial = [p2p[before[-1]]] if before else [p2p[v] for v in validator_names]
            else:
                dial = [p2p[v] for v in validator_names] + [p2p[other] for other in before]
        api = f"127.0.0.1:{free_port()}"
        config = NodeConfig(
            name=name, api=ApiConfig(api), p2p=P2PConfig(p2p[name], dial), limits=limits or LimitsConfig(),
            consensus=consensus or ConsensusConfig(),
            testing=msgspec.structs.replace(testing or FaultHooksConfig(), link_delay_ms=delays.get(name, {}),
                                            link_jitter_ms=WAN_PROFILES[wan][2] if wan else 0),
        )
        home = homes[name]
        write_config(home, config)
        write_genesis(genesis, home.config_dir / "genesis.json")
        nodes.append(
            {
                "name": name,
                "role": "validator" if name in validator_names else "ledger",
                "api_url": f"http://{api}",
                "p2p": p2p[name],
                "home": str(home.home),
                "log": str(home.home / "node.log"),
                "pid": None,
            }
        )
    manifest = {
        "chain_id": chain_id,
        "genesis": str(genesis_file),
        "keystore": str(keystore.path),
        "funded_keys": list(FUNDED_KEYS),
        "council_keys": list(COUNCIL_KEYS),
        "regulator_keys": list(REGULATOR_KEYS),
        "asset": DEFAULT_ASSET,
        "consensus": "bft" if validators else "none",
        "wan": {"profile": wan, "regions": wan_regions(names, wan)} if wan else None,
        "nodes": nodes,
    }
    write_manifest(directory, manifest)
    return manifest


_NODE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def add_node(directory: Path, name: str, *, timeout: float = 30.0,
             sync: SyncConfig | None = None, wait: bool = True) -> dict[str, Any]:
    """Create and start one more node outside the genesis set: it dials every node of the network
    (a full mesh with the validators, as a validator needs) and follows the chain as a ledger node
    until a council decision makes its key a validator; `sync`: its `[sync]` settings (how it
    gets the chain so far); `wait`: until its API answers. Returns its manifest row with its key."""
    directory = Path(directory).resolve()
    manifest = read_manifest(directory)
    if not _NODE_NAME.fullmatch(name):
        raise LocalnetError("a node name: 1-32 characters of a-z, 0-9, '-' and '_', starting with a letter or digit")
    if any(node["name"] == name for node in manifest["nodes"]):
        raise LocalnetError(f"the localnet in {directory} already has a node named {name!r}")
    if not manifest["nodes"]:
        raise LocalnetError(f"the localnet in {directory} has no node to connect to")
    template = load_config(NodeHome(Path(manifest["nodes"][0]["home"])))
    home = NodeHome(directory / "nodes" / name)
    if home.home.exists():
        raise LocalnetError(f"{home.home} already exists; remove it or choose another name")
    key = Keystore(home.config_dir).create(NODE_KEY_NAME)
    p2p, api = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    config = NodeConfig(name=name, api=ApiConfig(api), p2p=P2PConfig(p2p, [n["p2p"] for n in manifest["nodes"]]),
                        limits=template.limits, consensus=template.consensus, testing=template.testing,
                        sync=sync or SyncConfig())
    write_config(home, config)
    write_genesis(load_genesis(Path(manifest["genesis"])), home.config_dir / "genesis.json")
    node: dict[str, Any] = {"name": name, "role": "ledger", "api_url": f"http://{api}", "p2p": p2p,
                            "home": str(home.home), "log": str(home.home / "node.log"), "pid": None,
                            "public_key": key.public_key.hex(), "address": key.address}
    manifest["nodes"].append(node)
    node["pid"] = start_node(node)
    write_manifest(directory, manifest)
    if wait:
        wait_ready(node, timeout)
    return node


def start_node(node: dict[str, Any]) -> int:
    log = open(node["log"], "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "bilayer", "node", "run", "--home", node["home"]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()
    return process.pid


def _log_tail(node: dict[str, Any], lines: int = 15) -> str:
    try:
        return "\n".join(Path(node["log"]).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(node: dict[str, Any], timeout: float) -> None:
    client = NodeClient(node["api_url"], timeout=2.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.get("pid") and not pid_alive(node["pid"]):
            raise LocalnetError(f"node {node['name']} exited during start-up; its log ends:\n{_log_tail(node)}")
        try:
            client.status()
            return
        except NodeUnreachable:
            time.sleep(0.1)
    raise LocalnetError(f"node {node['name']} did not answer within {timeout:.0f} s; its log ends:\n{_log_tail(node)}")


def up(directory: Path, *, timeout: float = 30.0, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Start every node of the localnet in DIR that is not running; return the manifest."""
    manifest = read_manifest(directory)
    for node in manifest["nodes"]:
        if node.get("pid") and pid_alive(node["pid"]):
            continue
        node["pid"] = start_node(node)
        progress(f"started {node['name']} (pid {node['pid']})")
    write_manifest(directory, manifest)
    for node in manifest["nodes"]:
        wait_ready(node, timeout)
        progress(f"{node['name']} ready at {node['api_url']}")
    return manifest


def restart_node(directory: Path, name: str, while_stopped: Callable[[dict[str, Any]], None] = lambda _: None,
                 timeout: float = 60.0) -> dict[str, Any]:
    """Stop one node, run `while_stopped` on it (wipe its data, say), start it again and record
    its new pid, so `down` stops it too."""
    manifest = read_manifest(directory)
    node: dict[str, Any] | None = next((n for n in manifest["nodes"] if n["name"] == name), None)
    if node is None:
        raise LocalnetError(f"no node {name!r} in {directory}")
    if node.get("pid") and pid_alive(node["pid"]):
        stop_pids([node["pid"]])
    while_stopped(node)
    node["pid"] = start_node(node)
    write_manifest(directory, manifest)
    wait_ready(node, timeout)
    return node


def node_status(node: dict[str, Any]) -> dict[str, Any]:
    row = {"name": node["name"], "role": node["role"], "api_url": node["api_url"], "pid": node.get("pid")}
    row["running"] = bool(node.get("pid")) and pid_alive(node["pid"])
    try:
        status = NodeClient(node["api_url"], timeout=2.0).status()
        row.update(role=status["role"], entries=status["entries"], tips=status["tips"], peers=status["peers"],
                   healthy=status["healthy"])
        if status.get("finality"):
            row.update(height=status["height"], halted=status.get("halted"))
    except BilayerError as exc:
        row["error"] = exc.message
    return row


def status(directory: Path) -> dict[str, Any]:
    manifest = read_manifest(directory)
    return {"chain_id": manifest["chain_id"], "nodes": [node_status(n) for n in manifest["nodes"]]}


def stop_pids(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM all, wait for all together, SIGKILL whatever is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(pid) for pid in pids):
            return
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def down(directory: Path) -> dict[str, Any]:
    """Stop exactly the processes the manifest names; keep their data."""
    manifest = read_manifest(directory)
    running = [node for node in manifest["nodes"] if node.get("pid") and pid_alive(node["pid"])]
    stop_pids([node["pid"] for node in running])
    for node in manifest["nodes"]:
        node["pid"] = None
    write_manifest(directory, manifest)
    return {"stopped": [node["name"] for node in running]}

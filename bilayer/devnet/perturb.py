"""Fault campaigns against real processes: a manifest of perturbations applied to a local
network while a load runs, then the promise checked: everything ever reported FINAL is
still FINAL on every node, and every node agrees on every checkpoint and root.

A manifest is TOML, in the spirit of CometBFT's e2e manifests:

    validators = 4
    ledger_nodes = 1
    load_tps = 50            # transfers per second, submitted through the ledger nodes
    duration_s = 30          # how long the load and the perturbations run
    settle_s = 60            # how long the network may take to finalize everything after

    [[perturb]]
    at_s = 5
    node = "validator1"
    action = "kill"          # kill (SIGKILL) | restart | pause (SIGSTOP) | resume (SIGCONT)
                             # | disconnect (cut its peer links) | reconnect

    [[perturb]]
    at_s = 12
    action = "partition"     # a link-level partition: no peer link between the groups;
    groups = [["validator0", "validator1"], ["validator2", "validator3"]]
                             # nodes in no group form one more group together
    [[perturb]]
    at_s = 20
    action = "heal"          # every link allowed again

Whatever is still killed, paused, disconnected or partitioned when the load ends is healed
before the checks.
"""

from __future__ import annotations

import json
import os
import random
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .. import codec
from ..errors import BilayerError, ConfigError
from ..genesis import load_genesis
from ..keys.keystore import Keystore
from ..keys.signing import Signer
from ..ledger.entry import build_entry
from ..ledger.operations import Transfer
from ..node.config import ConsensusConfig, FaultHooksConfig, LimitsConfig
from ..node.runtime import LINK_FAULTS_FILE
from . import localnet

ACTIONS = ("kill", "restart", "pause", "resume", "disconnect", "reconnect", "partition", "heal")
NETWORK_ACTIONS = ("partition", "heal")  # of the network's links, not of one node
PARTITION_TAKES_S = 10.0  # how long the links across a partition may take to close


class Perturbation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    at_s: float
    node: str = ""
    action: str = ""
    groups: list[list[str]] = []


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    validators: int = 4
    ledger_nodes: int = 1
    load_tps: float = 50.0
    duration_s: float = 30.0
    settle_s: float = 60.0
    pow_bits: int = 4
    perturb: list[Perturbation] = []


def load_manifest(path: Path) -> Manifest:
    try:
        manifest = msgspec.toml.decode(Path(path).read_bytes(), type=Manifest)
    except OSError as exc:
        raise ConfigError(f"cannot read manifest {path}: {exc.strerror}") from None
    except msgspec.MsgspecError as exc:
        raise ConfigError(f"manifest {path}: {exc}") from None
    names = {f"validator{i}" for i in range(manifest.validators)} | {f"ledger{i}" for i in range(manifest.ledger_nodes)}
    for p in manifest.perturb:
        if p.action not in ACTIONS:
            raise ConfigError(f"manifest {path}: unknown action {p.action!r}; choose from {', '.join(ACTIONS)}")
        if p.action in NETWORK_ACTIONS:
            _check_groups(p, names, path)
        elif p.node not in names:
            raise ConfigError(f"manifest {path}: no node {p.node!r} in this network")
        if not 0 <= p.at_s <= manifest.duration_s:
            raise ConfigError(f"manifest {path}: at_s {p.at_s} is outside 0..{manifest.duration_s}")
    if manifest.validators < 1 or manifest.ledger_nodes < 1:
        raise ConfigError(f"manifest {path}: a campaign needs validators and at least one ledger node")
    return manifest


def _check_groups(p: Perturbation, names: set[str], path: Path) -> None:
    if p.node:
        raise ConfigError(f"manifest {path}: {p.action} acts on the network's links: it takes no node")
    if p.action == "heal":
        if p.groups:
            raise ConfigError(f"manifest {path}: heal takes no groups")
        return
    listed = [name for group in p.groups for name in group]
    if not p.groups or any(not group for group in p.groups):
        raise ConfigError(f"manifest {path}: partition needs groups, each naming at least one node")
    unknown = sorted(set(listed) - names)
    if unknown:
        raise ConfigError(f"manifest {path}: no node {unknown[0]!r} in this network")
    if len(set(listed)) != len(listed):
        raise ConfigError(f"manifest {path}: a node is in two groups of one partition")
    if len(p.groups) == 1 and set(listed) == names:
        raise ConfigError(f"manifest {path}: a partition of one group cuts nothing")


def partition_sides(groups: list[list[str]], names: list[str]) -> list[list[str]]:
    """The sides of a partition: its groups, and the nodes in none of them as one more."""
    listed = {name for group in groups for name in group}
    rest = [name for name in names if name not in listed]
    return [list(group) for group in groups] + ([rest] if rest else [])


def _http(url: str, body: bytes | None = None, timeout: float = 10) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        request.add_header("Content-Type", "application/msgpack")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@dataclass
class CampaignResult:
    submitted: int = 0
    acknowledged: int = 0
    unavailable: int = 0
    reported_final: int = 0
    final_everywhere: int = 0
    height: int = 0
    perturbations: list[str] = field(default_factory=list)
    partitions: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"submitted": self.submitted, "acknowledged": self.acknowledged, "unavailable": self.unavailable,
                "reported_final": self.reported_final, "final_everywhere": self.final_everywhere,
                "height": self.height, "perturbations": self.perturbations, "partitions": self.partitions,
                "problems": self.problems,
                "ok": not self.problems}


class _Load:
    """Transfers among the funded keys, built client-side, submitted to the ledger nodes."""

    def __init__(self, manifest: dict[str, Any], rate: float, result: CampaignResult) -> None:
        self.genesis = load_genesis(Path(manifest["genesis"]))
        store = Keystore(Path(manifest["keystore"]))
        self.signers: list[Signer] = [store.load(name) for name in manifest["funded_keys"]]
        self.urls = [n["api_url"] for n in manifest["nodes"] if n["role"] == "ledger"]
        self.rate = rate
        self.result = result
        self.heads: dict[bytes, tuple[int, bytes]] = {}
        self.acknowledged: list[bytes] = []
        self.stop = threading.Event()
        self.rng = random.Random(7)

    def _entry(self) -> tuple[bytes, bytes, bytes, int]:
        signer = self.rng.choice(self.signers)
        to = self.rng.choice([s for s in self.signers if s is not signer])
        seq, head = self.heads.get(signer.public_key, (0, self.genesis.root))
        entry_id, signed = build_entry(signer, chain_id=self.genesis.chain_id, seq=seq, parents=[head],
                                       op=Transfer(asset="BLY", amount=1, to=to.public_key),
                                       time_ms=int(time.time() * 1000), pow_bits=self.genesis.params.pow_bits)
        return entry_id, codec.encode(signed), signer.public_key, seq

    def run(self) -> None:
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        while not self.stop.is_set():
            entry_id, body, author, seq = self._entry()
            self.result.submitted += 1
            url = self.urls[self.result.submitted % len(self.urls)]
            try:
                status, _ = _http(f"{url}/v1/entries", body, timeout=5)
            except OSError:
                status = 0
            if status in (200, 201, 202):
                self.acknowledged.append(entry_id)
                self.result.acknowledged += 1
                self.heads[author] = (seq + 1, entry_id)
            else:
                self.result.unavailable += 1  # the node is down or refused: the client keeps its chain
            next_at += interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def _apply(node: dict[str, Any], action: str) -> None:
    pid = node.get("pid")
    if action == "kill" and pid:
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while localnet.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
    elif action == "restart":
        if pid and localnet.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while localnet.pid_alive(pid):
                time.sleep(0.01)
        node["pid"] = localnet.start_node(node)
    elif action == "pause" and pid:
        os.kill(pid, signal.SIGSTOP)
    elif action == "resume" and pid:
        os.kill(pid, signal.SIGCONT)
    elif action == "disconnect" and pid:
        os.kill(pid, signal.SIGUSR1)
    elif action == "reconnect" and pid:
        os.kill(pid, signal.SIGUSR2)


def _answering(nodes: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """What each node that answers at once says at `path` (a killed or paused node is left out)."""
    views = {}
    for node in nodes:
        try:
            status, view = _http(f"{node['api_url']}{path}", timeout=2)
        except (OSError, ValueError):
            continue
        if status == 200:
            views[node["name"]] = view
    return views


def _top_height(nodes: list[dict[str, Any]]) -> int:
    return max((int(v.get("height", 0)) for v in _answering(nodes, "/v1/status").values()), default=0)


class _Partition:
    """A link-level partition: each node is told, in its home's link-faults file and by
    SIGUSR1, the keys of every node on another side; `heal` removes the files and SIGUSR2
    restores every link."""

    def __init__(self, nodes: list[dict[str, Any]], keys: dict[str, str], sides: list[list[str]]) -> None:
        self.nodes, self.keys, self.sides = nodes, keys, sides
        self.started = time.monotonic()
        self.height_at_start = _top_height(nodes)
        side_of = {name: i for i, side in enumerate(sides) for name in side}
        self.cut = {n["name"]: {keys[m["name"]] for m in nodes if side_of[m["name"]] != side_of[n["name"]]}
                    for n in nodes}
        for node in nodes:
            path = Path(node["home"]) / LINK_FAULTS_FILE
            path.write_text(json.dumps({"cut": sorted(self.cut[node["name"]])}))
            if node.get("pid") and localnet.pid_alive(node["pid"]):
                os.kill(node["pid"], signal.SIGUSR1)

    def links_across(self) -> list[str]:
        """The links still open across the cut, as `node -> peer` (nodes that answer)."""
        names = {key: name for name, key in self.keys.items()}
        return [f"{name} -> {names.get(peer['node_key'], peer['node_key'][:12])}"
                for name, view in _answering(self.nodes, "/v1/peers").items()
                for peer in view.get("peers", []) if peer["node_key"] in self.cut[name]]

    def heal(self) -> dict[str, Any]:
        for node in self.nodes:
            (Path(node["home"]) / LINK_FAULTS_FILE).unlink(missing_ok=True)
            if node.get("pid") and localnet.pid_alive(node["pid"]):
                os.kill(node["pid"], signal.SIGUSR2)
        return {"sides": self.sides, "seconds": round(time.monotonic() - self.started, 1),
                "height_at_start": self.height_at_start, "height_at_heal": _top_height(self.nodes)}


def run_campaign(manifest: Manifest, directory: Path | None = None,
                 progress: Callable[[str], None] = lambda line: None) -> CampaignResult:
    result = CampaignResult()
    with tempfile.TemporaryDirectory(prefix="bilayer-campaign-") as tmp:
        where = Path(directory) if directory else Path(tmp) / "net"
        net = localnet.create(where, validators=manifest.validators, ledger_nodes=manifest.ledger_nodes,
                              pow_bits=manifest.pow_bits, limits=LimitsConfig(author_rate=0, connection_rate=0),
                              consensus=ConsensusConfig(propose_ms=800, propose_delta_ms=300),
                              testing=FaultHooksConfig(fault_signals=True))  # `disconnect` is SIGUSR1
        try:
            net = localnet.up(where)
            by_name = {n["name"]: n for n in net["nodes"]}
            keys = {name: view["node_key"] for name, view in _answering(net["nodes"], "/v1/status").items()}
            partition: _Partition | None = None
            load = _Load(net, manifest.load_tps, result)
            loader = threading.Thread(target=load.run, daemon=True)
            started = time.monotonic()
            loader.start()
            paused: set[str] = set()
            cut: set[str] = set()
            for p in sorted(manifest.perturb, key=lambda p: p.at_s):
                time.sleep(max(0.0, started + p.at_s - time.monotonic()))
                if p.action in NETWORK_ACTIONS:
                    if partition is not None:
                        result.partitions.append(partition.heal())
                        partition = None
                    line = f"t={time.monotonic() - started:5.1f}s {p.action}"
                    if p.action == "partition":
                        sides = partition_sides(p.groups, list(by_name))
                        partition = _Partition(net["nodes"], keys, sides)
                        line += " " + " | ".join(" ".join(side) for side in sides)
                        _await_cut(partition, result)
                    result.perturbations.append(line)
                    progress(line)
                    continue
                node = by_name[p.node]
                _apply(node, p.action)
                if p.action == "pause":
                    paused.add(p.node)
                elif p.action == "resume":
                    paused.discard(p.node)
                elif p.action == "disconnect":
                    cut.add(p.node)
                elif p.action == "reconnect":
                    cut.discard(p.node)
                line = f"t={time.monotonic() - started:5.1f}s {p.action} {p.node}"
                result.perturbations.append(line)
                progress(line)
            time.sleep(max(0.0, started + manifest.duration_s - time.monotonic()))
            load.stop.set()
            loader.join(15)
            progress("healing: resume, reconnect, heal partitions, restart")
            if partition is not None:
                result.partitions.append(partition.heal())
            for name in paused:
                _apply(by_name[name], "resume")
            for name in cut:
                _apply(by_name[name], "reconnect")
            localnet.write_manifest(where, net)
            localnet.up(where)
            _check(net, load.acknowledged, manifest.settle_s, result, progress)
        finally:
            for node in net["nodes"]:
                pid = node.get("pid")
                if pid and localnet.pid_alive(pid):
                    os.kill(pid, signal.SIGCONT)
            localnet.down(where)
    return result


def _await_cut(partition: _Partition, result: CampaignResult) -> None:
    deadline = time.monotonic() + PARTITION_TAKES_S
    across = partition.links_across()
    while across and time.monotonic() < deadline:
        time.sleep(0.2)
        across = partition.links_across()
    if across:
        result.problems.append(f"links still open across the partition after {PARTITION_TAKES_S:.0f} s: "
                               + ", ".join(across))


def _outcome(url: str, entry_id: bytes, wait: float) -> dict[str, Any]:
    try:
        status, view = _http(f"{url}/v1/entries/{entry_id.hex()}?wait={wait}", timeout=wait + 10)
    except OSError:
        return {}
    return view if status in (200, 202) else {}


def _check(net: dict[str, Any], acknowledged: list[bytes], settle_s: float, result: CampaignResult,
           progress: Callable[[str], None]) -> None:
    urls = [n["api_url"] for n in net["nodes"]]
    ledger = next(n["api_url"] for n in net["nodes"] if n["role"] == "ledger")
    progress(f"waiting for {len(acknowledged)} acknowledged entries to be final")
    deadline = time.monotonic() + settle_s
    reported: dict[bytes, dict[str, Any]] = {}
    for entry_id in acknowledged:
        while time.monotonic() < deadline:
            view = _outcome(ledger, entry_id, 5)
            if view.get("status") in ("FINAL", "REJECTED"):
                reported[entry_id] = view
                break
        else:
            result.problems.append(f"entry {entry_id.hex()} has no outcome after {settle_s:.0f} s")
            break
    result.reported_final = sum(1 for v in reported.values() if v["status"] == "FINAL")
    try:
        heights = [int(_http(f"{u}/v1/status")[1]["height"]) for u in urls]
    except (OSError, KeyError, ValueError, BilayerError) as exc:
        result.problems.append(f"a node does not answer after healing: {exc}")
        return
    top = max(heights)
    result.height = top
    deadline = time.monotonic() + settle_s
    while min(heights) < top and time.monotonic() < deadline:
        time.sleep(0.5)
        heights = [int(_http(f"{u}/v1/status")[1]["height"]) for u in urls]
    if min(heights) < top:
        result.problems.append(f"nodes did not catch up to height {top}: {heights}")
        return
    reference = None
    for url in urls:
        views = [_http(f"{url}/v1/checkpoints/{h}")[1] for h in range(1, top + 1)]
        history = [(v.get("id"), v.get("state_root"), v.get("results_root")) for v in views]
        if reference is None:
            reference = history
        elif history != reference:
            result.problems.append(f"{url} disagrees on checkpoints or state roots")
    everywhere = 0
    for entry_id, view in reported.items():
        if view["status"] != "FINAL":
            continue
        seen = [_outcome(u, entry_id, 0) for u in urls]
        if all(v.get("status") == "FINAL" and v.get("height") == view.get("height") for v in seen):
            everywhere += 1
        else:
            result.problems.append(f"entry {entry_id.hex()} reported FINAL is not FINAL on every node")
    result.final_everywhere = everywhere

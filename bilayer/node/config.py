"""A node's home directory and its `config/node.toml`.

HOME/config/node.toml      this file
HOME/config/genesis.json   the chain's genesis
HOME/config/node_key.json  the node's Ed25519 key (peer identity), mode 0600
HOME/data/ledger.sqlite    the store
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec
import tomli_w

from ..errors import ConfigError
from .peers import split_host_port


class ApiConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The HTTP port. Connections are capped in total and per client address (the total is
    also kept below the process's descriptor limit); a connection must send its request
    headers within `header_timeout_s` and a request body within `body_timeout_s`."""

    listen: str = "127.0.0.1:8700"
    max_connections: int = 1024
    max_connections_per_ip: int = 256
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    cors_allowed_origins: list[str] = []  # browser origins allowed to call the API ("*": any); none by default


class P2PConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Peer links. Of `max_inbound` links others open to this node, strangers (keys outside
    every validator set the node knows) may hold all but one per known validator, and at
    most `max_inbound_per_ip` from one address."""

    listen: str = "127.0.0.1:9700"
    peers: list[str] = []
    max_inbound: int = 128
    max_inbound_per_ip: int = 32
    # HOST:PORT where others reach this node (behind NAT, or listening on 0.0.0.0); "" = `listen`
    external_address: str = ""
    # addresses learned from peers that this node dials besides `peers` (0: learn none)
    max_learned_peers: int = 16


class LimitsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    author_rate: float = 200.0
    author_burst: float = 2000.0
    connection_rate: float = 5000.0
    connection_burst: float = 50000.0
    max_orphans: int = 50_000
    orphan_ttl_s: float = 60.0
    max_request_bytes: int = 16 * 1024 * 1024
    # Admission (nodes that follow checkpoints): clients' entries are refused with 503 and
    # Retry-After while this many entries wait for a checkpoint to order them, or while
    # checkpoints come but the oldest of them has waited this long; 0 turns a bound off.
    max_unordered: int = 10_000
    max_unordered_age_ms: int = 1000


class ConsensusConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Timeouts of the BFT protocol (ms; each grows by its delta per round) and the heartbeat:
    the longest gap between checkpoints while the DAG is idle (0: no empty checkpoints)."""

    propose_ms: int = 1000
    propose_delta_ms: int = 500
    prevote_ms: int = 500
    prevote_delta_ms: int = 250
    precommit_ms: int = 500
    precommit_delta_ms: int = 250
    rebroadcast_ms: int = 2000
    heartbeat_ms: int = 0


class FaultHooksConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Fault hooks for test networks only. With `fault_signals`, SIGUSR1 cuts every peer
    link, or only the links to the node keys listed in the home's `link-faults.json`
    (`{"cut": [hex, ...]}`: a link-level partition), and SIGUSR2 restores them (the fault
    campaigns use it); without it, SIGUSR1 reopens the log file as logrotate expects and
    SIGUSR2 is ignored."""

    fault_signals: bool = False
    # emulated wide-area links: one-way delay (ms) of frames sent to each peer, by its node
    # key in hex, plus up to `link_jitter_ms` more (`localnet up --wan`); order is kept
    link_delay_ms: dict[str, int] = {}
    link_jitter_ms: int = 0
    # a hostile peer: every snapshot chunk this node serves has its last byte flipped
    corrupt_snapshot_chunks: bool = False


class StateConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """State retention: the heights whose state stays provable (`audit proof --account
    --height`); older versions of the state tree are pruned after commits. "archive" keeps
    every height. At least 2: the latest certified state is the one before the latest height."""

    retain: int | Literal["archive"] = 10_000

    @property
    def keep_heights(self) -> int | None:
        return None if self.retain == "archive" else int(self.retain)


def parse_retain(text: str) -> int | Literal["archive"]:
    """`--retain`: a number of heights (at least 2) or "archive"."""
    if text == "archive":
        return "archive"
    if not text.isdigit() or int(text) < 2:
        raise ConfigError(f"retain is a number of heights (at least 2) or 'archive', not {text[:40]!r}")
    return int(text)


class SyncConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a node with an empty data directory gets the chain: "replay" executes every
    checkpoint from genesis; "snapshot" restores the state a quorum certified at a recent
    height from its peers, in verified chunks, then executes from there (the DAG's history
    before it is fetched in the background and never executed). A node that holds a chain
    goes on from it either way."""

    mode: Literal["replay", "snapshot"] = "replay"
    chunk_rate: float = 50.0  # chunk requests this node serves each peer, per second
    chunk_burst: float = 100.0
    chunk_nodes: int = 4000  # tree nodes a joining node asks for in one chunk (at most 4000)


class NodeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str = "node"
    genesis: str = "genesis.json"
    node_key: str = "node_key.json"
    api: ApiConfig = ApiConfig()
    p2p: P2PConfig = P2PConfig()
    limits: LimitsConfig = LimitsConfig()
    consensus: ConsensusConfig = ConsensusConfig()
    state: StateConfig = StateConfig()
    sync: SyncConfig = SyncConfig()
    testing: FaultHooksConfig = FaultHooksConfig()


class NodeHome:
    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "node.toml"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def ledger_db(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    def genesis_file(self, config: NodeConfig) -> Path:
        return self.config_dir / config.genesis


def load_config(home: NodeHome) -> NodeConfig:
    path = home.config_file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no node config at {path}: run 'bilayer node init --home {home.home}' first") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        config = msgspec.toml.decode(data, type=NodeConfig)
    except msgspec.MsgspecError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    external = [config.p2p.external_address] if config.p2p.external_address else []
    for address in [config.api.listen, config.p2p.listen, *config.p2p.peers, *external]:
        try:
            split_host_port(address)
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    for key, delay in config.testing.link_delay_ms.items():
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key) or not 0 <= delay <= 10_000:
            raise ConfigError(f"{path}: testing.link_delay_ms maps 64-hex node keys to 0..10000 ms")
    if not 0 <= config.testing.link_jitter_ms <= 10_000:
        raise ConfigError(f"{path}: testing.link_jitter_ms is between 0 and 10000")
    sync = config.sync
    if not (1 <= sync.chunk_nodes <= 8000 and sync.chunk_rate >= 0 and sync.chunk_burst >= 1):
        raise ConfigError(f"{path}: sync.chunk_nodes is 1..8000, sync.chunk_rate at least 0, sync.chunk_burst at"
                          " least 1")
    if config.state.retain != "archive" and config.state.retain < 2:
        raise ConfigError(f"{path}: state.retain is a number of heights (at least 2) or \"archive\"")
    if not 0 <= config.p2p.max_learned_peers <= 256:
        raise ConfigError(f"{path}: p2p.max_learned_peers is between 0 and 256")
    return config


def write_config(home: NodeHome, config: NodeConfig) -> None:
    home.config_dir.mkdir(parents=True, exist_ok=True)
    home.config_file.write_text(tomli_w.dumps(msgspec.to_builtins(config)))

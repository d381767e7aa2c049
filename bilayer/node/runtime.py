"""One node process: storage, ingestion, peer links and the HTTP API on one asyncio loop."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from .. import __version__, codec
from ..api.stream import StreamHub
from ..consensus.core import Timeouts
from ..consensus.messages import FinalizedCheckpoint, Proposal, Vote
from ..consensus.validators import ValidatorSet
from ..errors import ConfigError, Overloaded
from ..execution.governance.params import Params
from ..execution.governance.validator_set import VALIDATOR_CHANGE_DELAY
from ..genesis import Genesis, load_genesis
from ..keys.keystore import Keystore
from ..keys.signing import Signer
from .chain import Chain
from .config import NodeConfig, NodeHome, load_config
from .finality import Finality
from .ingest import Ingest, IngestLimits
from .metrics import NodeMetrics
from .peers import PeerManager, split_host_port
from .storage import Storage

log = logging.getLogger("bilayer.node")

NODE_KEY_NAME = "node_key"


def load_node_key(home: NodeHome) -> Signer:
    return Keystore(home.config_dir).load(NODE_KEY_NAME)


class LedgerNode:
    def __init__(self, home: NodeHome, config: NodeConfig, genesis: Genesis, signer: Signer) -> None:
        self.home = home
        self.config = config
        self.genesis = genesis
        self.signer = signer
        self.metrics = NodeMetrics()
        self.storage = Storage(home.ledger_db)
        limits = config.limits
        self.ingest = Ingest(
            self.storage,
            genesis,
            self.metrics,
            IngestLimits(limits.author_rate, limits.author_burst, limits.max_orphans, int(limits.orphan_ttl_s * 1000)),
        )
        self.peers = PeerManager(
            signer,
            genesis.chain_id,
            config.p2p.listen,
            config.p2p.peers,
            self.ingest,
            self.metrics,
            limits.connection_rate,
            limits.connection_burst,
        )
        self.chain = Chain(self.storage, genesis) if genesis.validators else None
        self.finality: Finality | None = None
        self.started_s = time.time()
        self._runner: web.AppRunner | None = None
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        if self.chain is not None:
            self.chain.on_applied.append(lambda applied: self._notify([r.entry_id for r in applied.results]))
            self.chain.on_applied.append(lambda applied: self._follow_chain_params())
        else:
            gossip = self.ingest.announce

            def announce(entries: Any, sources: Any) -> None:
                gossip(entries, sources)
                self._notify([entry.id for entry in entries])

            self.ingest.announce = announce
        self.stream = StreamHub()
        self._feed_stream()

    def _feed_stream(self) -> None:
        """Live events for `GET /v1/stream`: entries once stored, checkpoints once applied."""
        if self.chain is not None:
            self.chain.on_applied.append(self.stream.checkpoint_applied)
        previous = self.ingest.announce

        def announce(entries: Any, sources: Any) -> None:
            previous(entries, sources)
            self.stream.entries_accepted(entries)

        self.ingest.announce = announce

    def _follow_chain_params(self) -> None:
        """Clients' new entries meet the parameters in force; peers' entries the loosest ever."""
        if self.chain is not None:
            params = Params(self.chain.state)
            self.ingest.params = params.current()
            self.ingest.peer_params = params.loosest()

    # --- clients waiting for an outcome ---------------------------------------------------

    MAX_WAITERS = 10_000

    def _settled(self, entry_id: bytes) -> bool:
        if self.chain is not None:
            return self.storage.result(entry_id) is not None
        return entry_id in self.ingest.dag and self.storage.get(entry_id) is not None

    def _notify(self, entry_ids: list[bytes]) -> None:
        if not self._waiters:
            return
        for entry_id in entry_ids:
            for future in self._waiters.pop(entry_id, ()):
                if not future.done():
                    future.set_result(None)

    async def wait_for_entry(self, entry_id: bytes, timeout: float) -> None:
        """Return when the entry is FINAL or REJECTED (stored, without validators), or on timeout."""
        if timeout <= 0 or self._settled(entry_id):
            return
        if sum(len(w) for w in self._waiters.values()) >= self.MAX_WAITERS:
            raise Overloaded("too many clients are waiting for outcomes; poll without ?wait")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(entry_id, []).append(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            waiting = self._waiters.get(entry_id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiters[entry_id]

    @property
    def validators(self) -> ValidatorSet | None:
        """The set voting on the next height (None without layer 2)."""
        return self.chain.validators if self.chain is not None else None

    @property
    def role(self) -> str:
        return "validator" if self.validators and self.signer.public_key in self.validators else "ledger"

    def _follow_validator_keys(self) -> None:
        """Consensus links: the sets of the heights known ahead, so a validator that
        joins is heard as soon as it may speak and one that leaves until its last height."""
        chain = self.chain
        if chain is None:
            return
        keys: set[bytes] = set()
        for height in range(chain.height + 1, chain.height + VALIDATOR_CHANGE_DELAY + 1):
            keys.update(chain.validators_at(height).by_key)
        self.peers.validator_keys = keys

    def _check_genesis_of_store(self) -> None:
        """A store belongs to one chain: refuse to run it under another genesis."""
        recorded = self.storage.get_meta("genesis_root")
        if recorded is None:
            self.storage.set_meta("genesis_root", self.genesis.root)
        elif recorded != self.genesis.root:
            raise ConfigError(
                f"the data in {self.home.data_dir} belongs to another genesis ({recorded.hex()[:16]}…);"
                " this config names genesis " + self.genesis.root.hex()[:16] + "…"
            )

    def _start_finality(self) -> None:
        chain = self.chain
        if chain is None or self.validators is None:
            return
        consensus = self.config.consensus
        timeouts = Timeouts(consensus.propose_ms, consensus.propose_delta_ms, consensus.prevote_ms,
                            consensus.prevote_delta_ms, consensus.precommit_ms, consensus.precommit_delta_ms,
                            consensus.rebroadcast_ms)

        def send(message: Proposal | Vote | FinalizedCheckpoint) -> None:
            if isinstance(message, FinalizedCheckpoint):
                self.peers.send_checkpoint(message)
            else:
                self.peers.send_consensus(message)

        finality = Finality(chain, self.ingest, self.signer, send, self.peers.request_checkpoints, timeouts,
                            consensus.heartbeat_ms)
        self.finality = finality
        self._follow_validator_keys()
        chain.on_applied.append(lambda applied: self._follow_validator_keys())
        self.peers.height = lambda: chain.height
        self.peers.on_consensus = finality.on_consensus_message
        self.peers.on_checkpoint = finality.on_finalized
        self.peers.checkpoints_from = self.finalized_checkpoints
        gossip = self.ingest.announce

        def announce(entries: Any, sources: Any) -> None:
            gossip(entries, sources)
            finality.on_entries_stored()

        self.ingest.announce = announce
        finality.start()

    def finalized_checkpoints(self, start: int, count: int) -> list[FinalizedCheckpoint]:
        found = []
        for height in range(max(1, start), max(1, start) + count):
            stored = self.storage.checkpoint(height)
            if stored is None:
                break
            found.append(codec.decode(stored.finalized, FinalizedCheckpoint))
        return found

    @classmethod
    def from_home(cls, home_dir: Path) -> LedgerNode:
        home = NodeHome(home_dir)
        config = load_config(home)
        genesis = load_genesis(home.genesis_file(config))
        return cls(home, config, genesis, load_node_key(home))

    async def start(self) -> None:
        from ..api.server import build_app

        self._check_genesis_of_store()
        if self.chain is not None:
            self.chain.load()
            self._follow_chain_params()
        loaded = self.ingest.load(self.chain.ordered if self.chain is not None else frozenset())
        log.info("loaded %d entries and %d checkpoints from %s", loaded,
                 self.chain.height if self.chain else 0, self.home.ledger_db)
        self.ingest.start()
        await self.peers.start()
        self._start_finality()
        limits = self.config.limits
        app = build_app(
            self,
            max_request_bytes=limits.max_request_bytes,
            connection_rate=limits.connection_rate,
            connection_burst=limits.connection_burst,
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, port = split_host_port(self.config.api.listen)
        await web.TCPSite(self._runner, host, port, backlog=1024).start()
        log.info(
            "node %s serving API on http://%s, peers on %s",
            self.config.name,
            self.config.api.listen,
            self.config.p2p.listen,
        )

    async def stop(self) -> None:
        if self.finality is not None:
            self.finality.stop()
        self.stream.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.peers.stop()
        await self.ingest.stop()
        self.storage.close()

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "name": self.config.name,
            "role": self.role,
            "chain_id": self.genesis.chain_id,
            "genesis_root": self.genesis.root.hex(),
            "node_key": self.signer.public_key.hex(),
            "healthy": self.ingest.healthy,
            "entries": len(self.ingest.dag),
            "tips": len(self.ingest.dag.tips),
            "orphans": len(self.ingest.orphans),
            "authors": len(self.ingest.dag.heads),
            "peers": len(self.peers.links),
            "isolated": self.peers.isolated,
            "params": msgspec.to_builtins(self.ingest.params),  # what a client's new entry must meet now
            "api": self.config.api.listen,
            "p2p": self.config.p2p.listen,
            "uptime_s": round(time.time() - self.started_s, 1),
            **self.finality_status(),
        }

    def finality_status(self) -> dict[str, Any]:
        chain = self.chain
        if chain is None or self.validators is None:
            return {"finality": False}
        view: dict[str, Any] = {
            "finality": True,
            "height": chain.height,
            "last_checkpoint": chain.last.id.hex() if chain.last else None,
            "last_checkpoint_time_ms": chain.last_time_ms if chain.last else None,
            "state_root": chain.state_root.hex(),
            "results_root": chain.results_root.hex(),
            "validators": len(self.validators),
            "halted": None,
        }
        if self.finality is not None:
            view.update(self.finality.status())
        return view


async def run_forever(home_dir: Path) -> None:
    node = LedgerNode.from_home(home_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, node.peers.isolate)  # cut every peer link
    loop.add_signal_handler(signal.SIGUSR2, node.peers.rejoin)  # and restore them
    await node.start()
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await node.stop()

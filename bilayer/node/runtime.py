"""One node process: storage, ingestion, peer links and the HTTP API on one asyncio loop."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import __version__
from ..genesis import Genesis, load_genesis
from ..keys.keystore import Keystore
from ..keys.signing import Signer
from .config import NodeConfig, NodeHome, load_config
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
        self.started_s = time.time()
        self._runner: web.AppRunner | None = None

    @classmethod
    def from_home(cls, home_dir: Path) -> LedgerNode:
        home = NodeHome(home_dir)
        config = load_config(home)
        genesis = load_genesis(home.genesis_file(config))
        return cls(home, config, genesis, load_node_key(home))

    async def start(self) -> None:
        from ..api.server import build_app

        loaded = self.ingest.load()
        log.info("loaded %d entries from %s", loaded, self.home.ledger_db)
        self.ingest.start()
        await self.peers.start()
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
        if self._runner is not None:
            await self._runner.cleanup()
        await self.peers.stop()
        await self.ingest.stop()
        self.storage.close()

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "name": self.config.name,
            "role": "ledger",
            "chain_id": self.genesis.chain_id,
            "genesis_root": self.genesis.root.hex(),
            "node_key": self.signer.public_key.hex(),
            "healthy": self.ingest.healthy,
            "entries": len(self.ingest.dag),
            "tips": len(self.ingest.dag.tips),
            "orphans": len(self.ingest.orphans),
            "authors": len(self.ingest.dag.heads),
            "peers": len(self.peers.links),
            "params": {
                "pow_bits": self.genesis.params.pow_bits,
                "max_parents": self.genesis.params.max_parents,
                "max_header_bytes": self.genesis.params.max_header_bytes,
                "max_data_bytes": self.genesis.params.max_data_bytes,
                "max_memo_bytes": self.genesis.params.max_memo_bytes,
                "max_future_ms": self.genesis.params.max_future_ms,
            },
            "api": self.config.api.listen,
            "p2p": self.config.p2p.listen,
            "uptime_s": round(time.time() - self.started_s, 1),
        }


async def run_forever(home_dir: Path) -> None:
    node = LedgerNode.from_home(home_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await node.stop()

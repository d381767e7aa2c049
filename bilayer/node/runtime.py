"""One node process: storage, ingestion, peer links and the HTTP API on one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import msgspec
from aiohttp import web
from msgspec import UnsetType

from .. import __version__, codec
from ..api.guard import AcceptErrorLog, ConnectionGuard, GuardedSite
from ..api.responses import Status
from ..api.stream import StreamHub
from ..audit import index as audit_index
from ..audit.proof import ChainSource
from ..consensus.core import Timeouts
from ..consensus.messages import FinalizedCheckpoint, Proposal, Vote
from ..consensus.validators import ValidatorSet
from ..errors import BilayerError, ConfigError, Overloaded
from ..execution.governance.params import Params
from ..execution.governance.validator_set import VALIDATOR_CHANGE_DELAY
from ..genesis import Genesis, load_genesis
from ..keys.keystore import Keystore
from ..keys.signing import Signer
from ..ledger.entry import EntryHeader
from ..replica.chain import Applied
from ..replica.messages import ChunkWantMsg, SnapshotMessage, SnapshotOfferWantMsg
from .chain import AuditIndexer, Chain
from .config import NodeConfig, NodeHome, StateConfig, load_config
from .effects import Effects, StoredBatch, Subscriber
from .finality import Finality
from .ingest import Ingest, IngestLimits
from .logs import NodeLog
from .metrics import NodeMetrics
from .peers import MAX_PENDING_HANDSHAKES, PeerManager, split_host_port
from .process import HomeLock, raise_fd_limit
from .scrub import PayloadScrubber
from .snapshot_join import JoinReport, SnapshotClient, SnapshotJoin, SnapshotServer
from .storage import Storage

log = logging.getLogger("bilayer.node")

NODE_KEY_NAME = "node_key"
# Descriptors kept for the store, its journal, logs, outbound dials and the odd file.
FD_RESERVE = 64
# Connections the kernel queues for the API. The event loop accepts up to this many in one
# turn, before the connection guard sees any of them, so they count against the open files.
API_BACKLOG = 256


def load_node_key(home: NodeHome) -> Signer:
    return Keystore(home.config_dir).load(NODE_KEY_NAME)


T = TypeVar("T")

class Node:
    """Every node, validator or not: a validator is a node whose key votes in the set of the next height."""

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
            IngestLimits(limits.author_rate, limits.author_burst, limits.max_orphans, int(limits.orphan_ttl_s * 1000),
                         # only checkpoints order entries: without them nothing would ever leave the backlog
                         limits.max_unordered if genesis.validators else 0,
                         limits.max_unordered_age_ms if genesis.validators else 0),
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
            config.p2p.max_inbound,
            config.p2p.max_inbound_per_ip,
            config.p2p.external_address,
            config.p2p.max_learned_peers,
            {bytes.fromhex(key): ms / 1000 for key, ms in config.testing.link_delay_ms.items()},
            config.testing.link_jitter_ms / 1000,
        )
        self.chain = Chain(self.storage, genesis, AuditIndexer(self.storage),
                           config.state.keep_heights) if genesis.validators else None
        # snapshot sync: this node serves its state to joining peers, and may join by one itself
        self.snapshot_server = SnapshotServer(self.storage.path, self.peers.send, self.metrics, config.sync.chunk_rate,
                                              config.sync.chunk_burst, config.testing.corrupt_snapshot_chunks,
                                              ) if self.chain is not None else None
        self.snapshot_client: SnapshotClient | None = None
        self.joined: JoinReport | None = None
        self.peers.on_snapshot = self._on_snapshot
        self.finality: Finality | None = None
        self.started_s = time.time()
        self._runner: web.AppRunner | None = None
        self.http_guard: ConnectionGuard | None = None
        self._last_checkpoint_ms: int | None = None
        self.scrubber: PayloadScrubber | None = None
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self.stream = StreamHub()
        self.after_entries: Effects[StoredBatch] = Effects("entries stored", ())
        self.after_checkpoint: Effects[Applied] = Effects("checkpoint committed", ())

    # --- the composition root: what follows each durable write, in order -------------------------

    def _compose(self) -> None:
        """Wire the effects of the two durable writes, once, in the order they run. After a batch
        of entries is committed: peers hear of it, then clients waiting for it (no validators:
        stored is the outcome), the live stream, and finality (a waiting proposal may now check).
        After a checkpoint is committed: the audit index (queued first, so a reader waiting for
        the index waits for this checkpoint; written durably on its own thread, see
        `AuditIndexer`, and rebuilt from the chain at start if it fell behind), clients waiting
        for an outcome, the parameters new entries must meet, the log and metrics, the live
        stream, the payload scrubber, and the consensus links."""
        finality, chain, scrubber = self.finality, self.chain, self.scrubber
        entries: list[Subscriber[StoredBatch]] = [
            Subscriber("gossip", lambda batch: self.peers.broadcast(batch.entries, batch.sources))]
        if chain is None:
            entries.append(Subscriber("waiters", lambda batch: self._notify([e.id for e in batch.entries])))
        elif chain.ordered_before is not None:
            entries.append(Subscriber("snapshot history",
                                      lambda batch: self._forget_history([e.id for e in batch.entries])))
        entries.append(Subscriber("stream", lambda batch: self.stream.entries_accepted(batch.entries)))
        if finality is not None:
            entries.append(Subscriber("finality", lambda batch: finality.on_entries_stored()))
        self.after_entries = Effects("entries stored", entries)
        self.ingest.announce = lambda stored, sources: self.after_entries(StoredBatch(stored, sources))
        if chain is None:
            return
        checkpoints: list[Subscriber[Applied]] = []
        indexer = chain.indexer
        if indexer is not None:
            checkpoints.append(Subscriber(
                "audit index", lambda applied: indexer.submit(audit_index.checkpoint_entries(applied), chain.state)))
        checkpoints += [
            Subscriber("waiters", lambda applied: self._notify([r.entry_id for r in applied.results])),
            Subscriber("chain parameters", lambda applied: self._follow_chain_params()),
            Subscriber("log and metrics", self._observe_checkpoint),
            Subscriber("stream", self.stream.checkpoint_applied),
        ]
        if scrubber is not None:
            checkpoints.append(Subscriber("payload scrubber", lambda applied: scrubber.after_checkpoint()))
        if finality is not None:
            checkpoints.append(Subscriber("validator links", lambda applied: self._follow_validator_keys()))
        self.after_checkpoint = Effects("checkpoint committed", checkpoints)

    # --- snapshot sync ----------------------------------------------------------------------

    def _on_snapshot(self, peer: bytes, message: SnapshotMessage) -> None:
        if isinstance(message, SnapshotOfferWantMsg | ChunkWantMsg):
            if self.snapshot_server is not None:
                self.snapshot_server.handle(peer, message)
        elif self.snapshot_client is not None:
            self.snapshot_client.received(peer, message)

    async def _join_by_snapshot(self) -> None:
        """Restore the state of a recent certified height from peers (node/snapshot_join.py),
        with the peer links and ingestion running: the DAG fills in meanwhile."""
        self.ingest.start()
        self.peers.gossip.follows_checkpoints = False  # nothing could apply them yet
        await self.peers.start()
        self.snapshot_client = SnapshotClient(self.peers.send, asyncio.get_running_loop())
        join = SnapshotJoin(self.storage, self.genesis, self.snapshot_client, lambda: list(self.peers.links),
                            self.metrics, self.config.sync.chunk_nodes)
        self.joined = await join.run()
        self.peers.gossip.follows_checkpoints = True

    def abandon_start(self) -> None:
        """Stop a snapshot join in progress: its requests fail at once, so the restore stops
        after writing what it verified (resumed at the next start), and `start` raises."""
        if self.snapshot_client is not None:
            self.snapshot_client.stop()

    def _forget_history(self, ids: Sequence[bytes]) -> None:
        """Entries the chain ordered before its snapshot wait for no checkpoint here."""
        chain = self.chain
        if chain is None:
            return
        ordered = chain.ordered_in(self.ingest.dag)
        before = [i for i in ids if i in ordered]
        if before:
            self.ingest.forget_headers(before)

    # --- what operators watch: checkpoints in the log and metrics, health and readiness ---------

    def _observe_checkpoint(self, applied: Applied) -> None:
        """One INFO line and the consensus metrics per checkpoint applied (own or a peer's)."""
        chain, certificate = self.chain, applied.certificate
        if chain is None or certificate is None:
            return
        signed = {s.validator for s in certificate.signatures}
        voters = chain.validators_at(applied.height)
        missing = [v for v in voters.members if v.public_key not in signed]
        time_ms = applied.checkpoint.time_ms
        interval_s = None if self._last_checkpoint_ms is None else (time_ms - self._last_checkpoint_ms) / 1000
        self._last_checkpoint_ms = time_ms
        log.info("checkpoint %d committed: %d entries, round %d, time %s, %d/%d validators signed%s",
                 applied.height, len(applied.results), certificate.round,
                 time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time_ms / 1000)) + f".{time_ms % 1000:03d}Z",
                 len(voters) - len(missing), len(voters),
                 "" if interval_s is None else f", {interval_s:.3f} s after the previous")
        metrics = self.metrics
        metrics.height.set(applied.height)
        metrics.round.set(certificate.round)
        metrics.checkpoint_entries.inc(len(applied.results))
        if interval_s is not None:
            metrics.checkpoint_interval.observe(max(0.0, interval_s))
        metrics.missing_validators.set(len(missing))
        metrics.missing_validators_power.set(sum(v.power for v in missing))
        self._observe_validators()

    def _observe_validators(self) -> None:
        validators = self.validators
        if validators is None:
            return
        metrics = self.metrics
        metrics.validators.set(len(validators))
        metrics.validators_power.set(validators.total_power)
        metrics.validator_power.clear()
        for member in validators.members:
            metrics.validator_power.labels(member.name).set(member.power)

    # A node is catching up while a peer reports a checkpoint this many heights ahead of it.
    CATCHING_UP_LAG = 2

    def catching_up(self) -> bool:
        chain = self.chain
        if chain is None:
            return False
        best = max((peer.height for peer in self.peers.links.values()), default=0)
        return best >= chain.height + self.CATCHING_UP_LAG

    def not_ready(self) -> list[str]:
        """Why this node should not take client traffic now (empty when ready)."""
        reasons = []
        if self.catching_up():
            reasons.append("catching_up")
        expects_peers = bool(self.config.p2p.peers) or (self.validators is not None and len(self.validators) > 1)
        if self.peers.isolated:
            reasons.append("isolated")
        elif expects_peers and not self.peers.links:
            reasons.append("no_peers")
        if self.finality is not None and self.finality.halted:
            reasons.append("halted")
        if not self.ingest.healthy or (self.finality is not None and self.finality.storage_error is not None):
            reasons.append("storage_failed")
        return reasons

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

    def _release_waiters(self) -> None:
        for waiting in self._waiters.values():
            for future in waiting:
                if not future.done():
                    future.set_result(None)
        self._waiters.clear()

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
    def role(self) -> Literal["validator", "ledger"]:
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

    def _make_finality(self) -> None:
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
                            consensus.heartbeat_ms, after_commit=lambda applied: self.after_checkpoint(applied))
        self.finality = finality
        self._follow_validator_keys()
        self.peers.height = lambda: chain.committed.height
        self.peers.on_consensus = finality.on_consensus_message
        self.peers.on_checkpoint = finality.on_finalized
        self.peers.checkpoints_from = self.finalized_checkpoints

    def finalized_checkpoints(self, start: int, count: int) -> list[FinalizedCheckpoint]:
        found = []
        for height in range(max(1, start), max(1, start) + count):
            stored = self.storage.checkpoint(height)
            if stored is None:
                break
            found.append(codec.decode(stored.finalized, FinalizedCheckpoint))
        return found

    @classmethod
    def from_home(cls, home_dir: Path, retain: int | Literal["archive"] | None = None,
                  sync_mode: Literal["replay", "snapshot"] | None = None) -> Node:
        """`retain`, `sync_mode`: the `--retain` and `--sync` of `node run`, over the config file's."""
        home = NodeHome(home_dir)
        config = load_config(home)
        if retain is not None:
            config = msgspec.structs.replace(config, state=StateConfig(retain))
        if sync_mode is not None:
            config = msgspec.structs.replace(config, sync=msgspec.structs.replace(config.sync, mode=sync_mode))
        genesis = load_genesis(home.genesis_file(config))
        return cls(home, config, genesis, load_node_key(home))

    async def start(self) -> None:
        from ..api.server import build_app

        self._check_genesis_of_store()
        self.scrubber = PayloadScrubber(self.storage)
        self.scrubber.scrub_now()
        joining = self.chain is not None and SnapshotJoin.needed(self.storage)
        if joining and self.config.sync.mode != "snapshot":
            if SnapshotJoin.interrupted(self.storage):
                raise ConfigError(f"the data in {self.home.data_dir} is a snapshot join that did not finish: run"
                                  " 'bilayer node run --sync snapshot' to finish it, or delete the data directory"
                                  " to replay from genesis")
            joining = False
        if joining:
            await self._join_by_snapshot()
        if self.chain is not None:
            self.chain.load()
            self._follow_chain_params()
            self._last_checkpoint_ms = self.chain.last_time_ms if self.chain.last else None
            self.metrics.height.set(self.chain.height)
            self._observe_validators()
            storage = self.storage
            self.metrics.byzantine_validators.set_function(
                lambda: len({row[0] for row in storage.equivocations(10_000)}))
        self.metrics.catching_up.set_function(lambda: int(self.catching_up()))
        if joining and self.chain is not None:  # ingestion ran during the join: its DAG is the store's
            loaded = len(self.ingest.dag)
            self._forget_history(list(self.ingest.dag.nodes))
        else:
            loaded = self.ingest.load(self.chain.ordered_in(self.ingest.dag) if self.chain is not None
                                      else frozenset())
        log.info("loaded %d entries and %d checkpoints from %s", loaded,
                 self.chain.height if self.chain else 0, self.home.ledger_db)
        self._make_finality()
        self._compose()
        if not joining:
            self.ingest.start()
            await self.peers.start()
        if self.finality is not None:
            self.finality.start()
        limits = self.config.limits
        self.http_guard = self._make_http_guard()
        app = build_app(
            self,
            max_request_bytes=limits.max_request_bytes,
            connection_rate=limits.connection_rate,
            connection_burst=limits.connection_burst,
            guard=self.http_guard,
            cors_allowed_origins=self.config.api.cors_allowed_origins,
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=STOP_GRACE_S)
        await self._runner.setup()
        host, port = split_host_port(self.config.api.listen)
        await GuardedSite(self._runner, host, port, guard=self.http_guard, backlog=API_BACKLOG).start()
        log.info(
            "node %s serving API on http://%s, peers on %s",
            self.config.name,
            self.config.api.listen,
            self.config.p2p.listen,
        )

    def _make_http_guard(self) -> ConnectionGuard:
        """The API's connection caps, the total kept below the descriptors this process may
        open, less what peer links, the store, the logs and one turn of accepts need."""
        api = self.config.api
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        reserve = (self.config.p2p.max_inbound + MAX_PENDING_HANDSHAKES + len(self.config.p2p.peers) + FD_RESERVE
                   + API_BACKLOG)
        ceiling = api.max_connections if soft == resource.RLIM_INFINITY else max(16, int(soft) - reserve)
        total = min(api.max_connections, ceiling)
        if total < api.max_connections:
            log.info("API connections capped at %d (open-file limit %d)", total, soft)
        metrics = self.metrics

        def dropped(reason: str) -> None:
            metrics.http_dropped.labels(reason).inc()

        guard = ConnectionGuard(max_connections=total, max_per_ip=min(api.max_connections_per_ip, total),
                                header_timeout_s=api.header_timeout_s, body_timeout_s=api.body_timeout_s,
                                on_drop=dropped)
        metrics.http_connections.set_function(lambda: len(guard))
        return guard

    async def stop(self) -> None:
        """Stop promptly: clients long-polling for an outcome get their answer (as of now) at
        once, streams end, and what is still running gets `STOP_GRACE_S`."""
        if self.finality is not None:
            self.finality.stop()
            await self.finality.idle(STOP_GRACE_S)
        self._release_waiters()
        self.stream.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.peers.stop()
        if self.snapshot_server is not None:
            await asyncio.to_thread(self.snapshot_server.close)
        await self.ingest.stop()
        if self.scrubber is not None:
            await self.scrubber.close()
        if self.chain is not None and self.chain.indexer is not None:
            await asyncio.to_thread(self.chain.indexer.close)
        self.storage.close()

    @contextlib.contextmanager
    def proof_source(self) -> Iterator[ChainSource]:
        """The chain as proofs read it: the store on a connection of its own, closed after, as
        proof work runs on a thread of its own, apart from the node's commits."""
        storage = Storage(self.storage.path)
        try:
            def header_of(entry_id: bytes) -> EntryHeader | None:
                stored = storage.get(entry_id)
                return None if stored is None else codec.decode(stored.signed.header, EntryHeader)

            yield ChainSource(self.genesis, storage, self.ingest.dag, header_of)
        finally:
            storage.close()

    def status(self) -> Status:
        """What `/v1/status` answers. The finality fields come from the last checkpoint on disk
        (memory may be one checkpoint ahead while it is written)."""
        healthy = self.ingest.healthy and (self.finality is None or self.finality.storage_error is None)
        dag = self.ingest.dag
        status = Status(version=__version__, name=self.config.name, role=self.role, chain_id=self.genesis.chain_id,
                        genesis_root=self.genesis.root.hex(),
                        node_key=self.signer.public_key.hex(), healthy=healthy, entries=len(dag),
                        tips=len(dag.tips), orphans=len(self.ingest.orphans), authors=len(dag.heads),
                        peers=len(self.peers.links), isolated=self.peers.isolated, catching_up=self.catching_up(),
                        params=self.ingest.params, api=self.config.api.listen, p2p=self.config.p2p.listen,
                        uptime_s=round(time.time() - self.started_s, 1), finality=False)
        chain, validators = self.chain, self.validators
        if chain is None or validators is None:
            return status
        head = chain.committed  # on disk: a height reported here can be fetched
        status = msgspec.structs.replace(
            status, finality=True, height=head.height,
            last_checkpoint=head.checkpoint_id.hex() if head.checkpoint_id else None,
            last_checkpoint_time_ms=head.time_ms if head.checkpoint_id else None,
            state_root=head.state_root.hex(), results_root=head.results_root.hex(), validators=len(validators),
            halted=None)
        finality = self.finality
        if finality is None:
            return status
        driver = finality.status()

        def given(value: T | None) -> T | UnsetType:
            return msgspec.UNSET if value is None else value

        return msgspec.structs.replace(status, halted=driver.halted, storage_error=given(driver.storage_error),
                                       round=given(driver.round), phase=given(driver.phase))


# How long a stopping node lets requests in flight finish; long-polls are answered at once.
STOP_GRACE_S = 3.0


LINK_FAULTS_FILE = "link-faults.json"


class LinkFaults(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cut: list[str]  # node keys in hex


def apply_link_faults(peers: PeerManager, home_dir: Path) -> None:
    """SIGUSR1 under `[testing] fault_signals`: cut the links named in the home's
    `link-faults.json` (a link-level partition), or every link when there is no such file."""
    path = home_dir / LINK_FAULTS_FILE
    try:
        faults = msgspec.json.decode(path.read_bytes(), type=LinkFaults)
        keys = frozenset(bytes.fromhex(key) for key in faults.cut)
    except FileNotFoundError:
        peers.isolate()
        return
    except (OSError, msgspec.MsgspecError, ValueError) as exc:
        log.error("%s: not applied: %s", path.name, exc)
        return
    peers.cut_off(keys)


async def run_forever(home_dir: Path, node_log: NodeLog | None = None,
                      retain: int | Literal["archive"] | None = None,
                      sync_mode: Literal["replay", "snapshot"] | None = None) -> None:
    """Run until SIGINT or SIGTERM. SIGHUP reopens the log file; SIGUSR1 and SIGUSR2 are the
    fault hooks of `[testing] fault_signals`, else logrotate's reopen and nothing."""
    raise_fd_limit()
    with HomeLock(NodeHome(home_dir).data_dir).acquire("node run"):
        await _run_until_stopped(home_dir, node_log, retain, sync_mode)


async def _run_until_stopped(home_dir: Path, node_log: NodeLog | None,
                             retain: int | Literal["archive"] | None,
                             sync_mode: Literal["replay", "snapshot"] | None = None) -> None:
    node = Node.from_home(home_dir, retain, sync_mode)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(AcceptErrorLog(on_error=node.metrics.accept_errors.inc))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def reopen_log(name: str) -> None:
        if node_log is not None and node_log.reopen():
            log.info("%s: log file reopened", name)
        else:
            log.info("%s: logging to standard error, nothing to reopen; the node keeps running", name)

    loop.add_signal_handler(signal.SIGHUP, reopen_log, "SIGHUP")
    if node.config.testing.fault_signals:
        log.warning("[testing] fault_signals is on: SIGUSR1 cuts peer links (every one, or those named in %s),"
                    " SIGUSR2 restores them", LINK_FAULTS_FILE)
        loop.add_signal_handler(signal.SIGUSR1, apply_link_faults, node.peers, home_dir)
        loop.add_signal_handler(signal.SIGUSR2, node.peers.rejoin)
    else:
        loop.add_signal_handler(signal.SIGUSR1, reopen_log, "SIGUSR1")
        loop.add_signal_handler(signal.SIGUSR2, log.info, "SIGUSR2 ignored: [testing] fault_signals is off")
    starting = asyncio.ensure_future(node.start())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # stopped while starting: a snapshot join, the one long part of a start
        log.info("stopping during start")
        node.abandon_start()
        try:
            await starting
        except BilayerError as abandoned:
            log.info("start abandoned: %s", abandoned.message)
        finally:
            await node.stop()
        return
    stopped.cancel()
    starting.result()  # a start that failed raises here
    if node.config.testing.fault_signals and (home_dir / LINK_FAULTS_FILE).exists():
        apply_link_faults(node.peers, home_dir)  # a node restarted inside a partition stays in it
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await node.stop()

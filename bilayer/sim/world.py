"""A deterministic world of validators: the production consensus core, chain execution and
DAG rules, on a virtual clock, with every fault drawn from one seed.

One seed fixes everything: the traffic (transfers between users, including forks), the
faults (loss, delay, reordering, duplication, partitions that heal, crashes and restarts
from persisted state, clock skew), the byzantine validators and the hostile authors
(clients that race two halves of a fork to two nodes at one instant, replay old entries, and
withhold parents for a while or for good). Replaying a seed replays the run event for event.

What is simulated is only what lies outside the machine-independent code: the network,
the clock, storage (kept in memory; a crash loses exactly what a process loses) and the
clients. The `TendermintCore`, `ChainApp`, `ChainState` (linearization, execution, roots,
certificate checks) and `Dag` placement rules are the ones the node runs.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import codec
from ..consensus.core import SignerState, Start, TendermintCore, Timeouts
from ..consensus.messages import FinalizedCheckpoint, Proposal, Vote
from ..errors import BilayerError
from ..execution.governance.validator_set import VALIDATOR_CHANGE_DELAY
from ..genesis import Allocation, ChainParams, Genesis, GenesisCouncilMember, GenesisValidator, GovernanceParams
from ..keys.signing import Signer
from ..ledger.dag import NO_FORKS, Dag, Orphan, Placed, fork_digest_with
from ..ledger.entry import ENTRY_VERSION, EntryHeader, SignedEntry, WithheldEntry, entry_id, signing_message
from ..ledger.operations import GovExecute, GovPropose, GovVote, Operation, SetValidator, Transfer
from ..ledger.validation import check_fork
from ..replica.chain import ChainState
from ..replica.finality import (
    SYNC_BATCH,
    CheckpointReceived,
    CommitFailed,
    Committed,
    ConsensusReceived,
    CoreFactory,
    EntriesStored,
    FinalityDriver,
    Input,
    Ready,
    RetryCommit,
    ToCommit,
    default_core,
)
from ..replica.gossip import (
    Action,
    Close,
    Fetch,
    Gossip,
    Send,
    TakeCheckpoint,
    TakeConsensus,
    TakeEntries,
    TakeEvidence,
    Upkeep,
    Wake,
    peer_source,
)
from ..replica.messages import MAX_IDS, ForkProof, PeerMessage, encode_message
from ..replica.placing import OrphanPool, Placer
from .store import SimStore

CHAIN_ID = "sim"
FAULT_KINDS = ("loss", "delay", "reorder", "duplicate", "partition", "crash", "skew", "refused_commit", "torn_commit",
               "lost_fsync")
BYZANTINE_KINDS = ("equivocate", "double_vote", "split_brain", "silent", "garbage", "withhold", "replay")
HOSTILE_AUTHOR_KINDS = ("fork", "replay", "withhold")

COUNCIL_SIZE = 3


@dataclass(frozen=True, slots=True)
class SimEntry:
    id: bytes
    header: EntryHeader
    signed: SignedEntry
    tombstone: None = None  # no simulated entry loses its payload


@dataclass(frozen=True)
class SimConfig:
    validators: int = 4
    byzantine: int = 0
    faults: tuple[str, ...] = FAULT_KINDS
    fault_window_ms: int = 20_000
    liveness_window_ms: int = 40_000
    entries: int = 40
    users: int = 5
    tick_ms: int = 1000
    reconfigure: bool = False  # the council adds a validator, then removes validator 0, during the fault window
    hostile_authors: int = 2  # clients that fork, replay and withhold parents
    hostile_actions: int = 12


@dataclass
class FaultPlan:
    """The faults of one run, drawn from the seed (a kind may be drawn off)."""

    loss: float = 0.0
    duplicate: float = 0.0
    delay_ms: tuple[int, int] = (1, 5)
    partitions: list[tuple[int, int, frozenset[int], bool]] = field(default_factory=list)  # start, end, side, one-way
    crashes: list[tuple[int, int, int]] = field(default_factory=list)  # node, at, restart at
    skew: dict[int, tuple[float, int]] = field(default_factory=dict)  # node -> (timer rate, clock offset ms)
    # the disk: commits refused for a while; a commit torn by a crash; commits acknowledged unsynced, then a crash
    refused_commits: list[tuple[int, int, int]] = field(default_factory=list)  # node, start, end
    torn_commits: list[tuple[int, int, int]] = field(default_factory=list)  # node, from, down for ms
    lost_fsyncs: list[tuple[int, int, int, int]] = field(default_factory=list)  # node, start, crash at, restart at


@dataclass
class Stats:
    events: int = 0
    messages: int = 0
    dropped: int = 0
    duplicated: int = 0
    partitioned: int = 0
    crashes: int = 0
    restarts: int = 0
    equivocations_seen: int = 0
    byzantine_actions: int = 0
    author_forks: int = 0
    author_replays: int = 0
    author_withheld: int = 0
    commits_refused: int = 0
    commits_torn: int = 0
    commits_lost: int = 0  # acknowledged by a disk that had not synced them, then lost in a crash
    links_closed: int = 0  # by a node, for a frame no honest peer sends


class Violation(Exception):
    pass


class SimNode:
    """One node process: the replica's finality driver and gossip protocol (the code every node
    runs) over a DAG, a simulated disk (`SimStore`) and the world's network and clock. A crash
    loses everything but the disk and the entries; a restart rebuilds the chain from the disk,
    as a node does from SQLite, and links to its peers again."""

    def __init__(self, world: World, index: int, signer: Signer, core_factory: CoreFactory) -> None:
        self.world = world
        self.index = index
        self.signer = signer
        self.key = signer.public_key
        self.core_factory = core_factory
        self.store = SimStore(world.genesis)
        self.dag = Dag(world.genesis.root)
        self.headers: dict[bytes, EntryHeader] = {}
        self.entries: dict[bytes, SignedEntry] = {}
        self.crashed = False
        self.epoch = 0  # timers of an earlier incarnation, or of a core since replaced, are void
        self.requested: set[bytes] = set()
        # the node's placement rules; the simulated pool neither fills up nor expires within a run
        self.orphans: OrphanPool[SimEntry] = OrphanPool(capacity=10**9, ttl_ms=10**12)
        self.placer = Placer(self.dag, self.orphans, self._fork_found)
        # (author, seq) -> the proof, kept like the node's evidence table
        self.evidence: dict[tuple[bytes, int], ForkProof] = {}
        self.forks = NO_FORKS  # the digest of `evidence`
        self.chain = ChainState(world.genesis)
        self.gossip = Gossip(self)
        self.driver = self._boot()

    @property
    def honest(self) -> bool:
        return True

    @property
    def core(self) -> TendermintCore | None:
        return self.driver.core

    @property
    def finalized(self) -> list[FinalizedCheckpoint]:
        return self.store.finalized

    def _clock(self) -> int:
        return self.world.now + self.world.plan.skew.get(self.index, (1.0, 0))[1] + self.world.genesis.genesis_time_ms

    def _boot(self) -> FinalityDriver:
        """What a node does at start: the chain from the disk, then the driver over it."""
        self.chain = ChainState(self.world.genesis)
        self.store.restore(self.chain)
        self.gossip = Gossip(self)
        self._follow_validator_keys()
        return FinalityDriver(self.chain, self, self.signer, self.store.signer_state, self._clock,
                              self.world.timeouts, 0, self.core_factory)

    def boot(self) -> None:
        self.epoch += 1
        self.driver = self._boot()

    def _follow_validator_keys(self) -> None:
        """Consensus links: the sets of the heights known ahead (as the node's runtime does)."""
        keys: set[bytes] = set()
        for height in range(self.chain.height + 1, self.chain.height + VALIDATOR_CHANGE_DELAY + 1):
            keys.update(self.chain.validators_at(height).by_key)
        self.gossip.validator_keys = keys

    # --- what the driver and the gossip protocol read of the ledger layer --------------------

    def header_of(self, entry_id: bytes) -> EntryHeader | None:
        return self.headers.get(entry_id)

    def payload_of(self, entry_id: bytes) -> bytes | None:
        return None  # simulated entries carry no payload

    def tips(self) -> list[bytes]:
        return list(self.dag.tips)

    def holds(self, entry_id: bytes) -> bool:
        return self.dag.holds(entry_id) or entry_id in self.orphans

    def lookup(self, ids: Sequence[bytes]) -> list[SignedEntry | WithheldEntry]:
        return [self.entries[i] for i in ids if i in self.entries]

    def fork_digest(self) -> bytes:
        return self.forks

    def fork_proofs(self, limit: int) -> list[ForkProof]:
        return list(self.evidence.values())[-limit:]

    def height(self) -> int:
        return self.chain.height

    def checkpoints_from(self, start: int, count: int) -> list[FinalizedCheckpoint]:
        start = max(1, start)
        return self.store.finalized[start - 1:start - 1 + count]

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.step(Start())

    def crash(self) -> None:
        self.crashed = True
        self.epoch += 1
        self.orphans.clear()
        self.requested.clear()
        lost = self.store.crash()
        self.world.stats.commits_lost += lost
        if lost:
            self.world.lost_commits.add(self.index)

    def restart(self) -> None:
        self.crashed = False
        self.boot()
        self.world.checker.restarted(self.index, self.chain.height)
        self.world.link_all(self.index)
        self.start()

    # --- the pump: what the node's finality service does with each Ready -----------------------

    def step(self, event: Input) -> None:
        if not self.crashed:
            self.handle(self.driver.step(event))

    def handle(self, ready: Ready | None) -> None:
        while ready is not None and not self.crashed:
            if ready.persist is not None:
                self.persist(ready.persist)
            for message in ready.send:
                self.send_message(message)
            next_ready = None
            if ready.commit is not None:
                next_ready = self.commit(ready.commit)
                if next_ready is None:
                    return  # died in the middle of the commit: nothing after it happened
            self.effects(ready)
            ready = next_ready

    def persist(self, state: SignerState) -> None:
        self.store.signer_state = state

    def send_message(self, message: Proposal | Vote | FinalizedCheckpoint) -> None:
        if isinstance(message, FinalizedCheckpoint):
            self.do(self.gossip.finalized(message))
        else:
            self.do(self.gossip.consensus(message))

    def commit(self, to_commit: ToCommit) -> Ready | None:
        """Record a checkpoint on the simulated disk; None when the process died in the middle."""
        world, height = self.world, to_commit.applied.height
        changes = self.chain.state.take_dirty()
        fault = world.disk_fault(self.index)
        if fault == "refuse":
            world.stats.commits_refused += 1
            self.store.restore(self.chain)  # memory ran ahead of the disk: back to what the disk holds
            return self.driver.advance(CommitFailed(height, "the simulated disk refused the commit"))
        if fault == "torn":
            world.stats.commits_torn += 1
            self.store.commit_torn(to_commit.finalized, to_commit.applied, changes)
            world.crash_now(self.index)
            return None
        self.store.commit(to_commit.finalized, to_commit.applied, changes, fsync=fault != "unsynced")
        return self.driver.advance(Committed(height))

    def effects(self, ready: Ready) -> None:
        world = self.world
        if ready.cancel_timers:
            self.epoch += 1
        rate = world.plan.skew.get(self.index, (1.0, 0))[0]
        for timer in ready.timers:
            world.at(world.now + max(1, int(timer.delay_ms * rate)), self.index, ("timer", self.epoch, timer.event))
        for fetch in ready.fetch:
            if fetch.delay_ms <= 0:
                self.fetch_missing(fetch.entry_ids)
            else:
                world.at(world.now + max(1, int(fetch.delay_ms * rate)), self.index, ("fetch", self.epoch,
                                                                                      fetch.entry_ids))
        if ready.retry_ms is not None:
            world.at(world.now + max(1, int(ready.retry_ms * rate)), self.index, ("timer", self.epoch, RetryCommit()))
        if ready.request_checkpoints is not None:
            self.do(self.gossip.request_checkpoints(ready.request_checkpoints, SYNC_BATCH))
        world.stats.equivocations_seen += len(ready.evidence)
        for applied in ready.applied:
            world.checker.on_applied(self.index, applied)
        if ready.applied:
            self._follow_validator_keys()
        for refused in ready.refused:
            world.violation(f"node {self.index} {refused}")
        if ready.halted is not None:
            world.violation(f"node {self.index} halted: {ready.halted}")

    def fetch_missing(self, entry_ids: Sequence[bytes]) -> None:
        missing = [i for i in entry_ids if not self.dag.holds(i)]
        if missing:
            self.requested.update(missing)
            self.do(self.gossip.want(missing))

    # --- the gossip protocol's actions, over the simulated network ---------------------------

    def do(self, actions: list[Action]) -> None:
        """What the node's peer links do with each action (`node/peers.py`), in the world."""
        world = self.world
        for action in actions:
            if self.crashed:
                return
            if isinstance(action, Send):
                world.send(self.index, world.index_of[action.peer], action.message)
            elif isinstance(action, TakeEntries):
                source = peer_source(action.peer)
                for signed in action.items:
                    self.receive_signed(signed, source)
            elif isinstance(action, TakeEvidence):
                for proof in action.proofs:
                    self.receive_evidence(proof, peer_source(action.peer))
            elif isinstance(action, TakeConsensus):
                self.step(ConsensusReceived(action.message))
            elif isinstance(action, TakeCheckpoint):
                self.step(CheckpointReceived(action.finalized))
            elif isinstance(action, Fetch):
                self.fetch_missing(action.ids)
            elif isinstance(action, Wake):
                rate = world.plan.skew.get(self.index, (1.0, 0))[0]
                world.at(world.now + max(1, int(action.delay_ms * rate)), self.index, ("wake", self.epoch))
            elif isinstance(action, Upkeep):
                self.fetch_missing(self.orphans.missing_parents()[:MAX_IDS])
            elif isinstance(action, Close):
                world.stats.links_closed += 1
                world.cut(self.index, world.index_of[action.peer])
            # TakeWithheld: no simulated entry loses its payload; Learn: every node links to every other

    def receive(self, src: int, data: bytes) -> None:
        if not self.crashed:
            self.do(self.gossip.received(self.world.nodes[src].key, data))

    def wake(self) -> None:
        if not self.crashed:
            self.do(self.gossip.wake(self._clock()))

    def tick(self) -> None:
        """Anti-entropy, as the node's peer links do every few seconds (`Gossip.tick`)."""
        if not self.crashed:
            self.do(self.gossip.tick(self._clock()))

    # --- entries --------------------------------------------------------------------------

    def _fork_found(self, existing_id: bytes, second: SimEntry, source: str) -> None:
        first = self.entries.get(existing_id)
        if first is not None:
            self.record_fork(ForkProof(first.header, first.signature, second.signed.header, second.signed.signature),
                             self.headers[existing_id], source)

    def record_fork(self, proof: ForkProof, first: EntryHeader, source: str) -> None:
        key = (first.author, first.seq)
        if key in self.evidence:
            return
        self.evidence[key] = proof
        self.forks = fork_digest_with(self.forks, *key)
        self.do(self.gossip.evidence_found([proof], source))

    def receive_evidence(self, proof: ForkProof, source: str) -> None:
        """Fork evidence a peer passes on: checked as the node checks it, kept once."""
        try:
            first = codec.decode(proof.first_header, EntryHeader)
            if (first.author, first.seq) in self.evidence:
                return
            check_fork((proof.first_header, proof.first_signature), (proof.second_header, proof.second_signature),
                       chain_id=CHAIN_ID, params=self.world.genesis.params)
        except BilayerError:
            return
        self.record_fork(proof, first, source)

    def add(self, entry: SimEntry) -> None:
        self.dag.add(entry.id, entry.header)
        self.headers[entry.id] = entry.header
        self.entries[entry.id] = entry.signed
        self.requested.discard(entry.id)

    def receive_signed(self, signed: SignedEntry, source: str) -> str:
        """An entry a peer sent: its id and header from its bytes, then the node's placement rules."""
        try:
            header = codec.decode(signed.header, EntryHeader)
        except BilayerError:
            return "refused"
        return self.receive_entry(entry_id(signed.header), header, source, signed)

    def receive_entry(self, entry_id_: bytes, header: EntryHeader, source: str = "api",
                      signed: SignedEntry | None = None) -> str:
        """Place an entry with the node's rules: 'placed', 'orphan', 'known' or 'refused'."""
        if entry_id_ in self.dag:
            return "known"
        if entry_id_ in self.orphans:
            return "orphan"
        entry = SimEntry(entry_id_, header, signed or self.world.signed(entry_id_, header))
        try:
            placement = self.placer.placement(entry, source, entry_id_ in self.requested)
        except BilayerError:  # a client's fork at the door, a broken author chain
            return "refused"
        if isinstance(placement, Orphan):
            self.orphans.add(entry, placement.missing, self.world.now, source)
            if entry_id_ in self.requested:  # walking back a history this node lacks: no gossip is coming
                self.fetch_missing(placement.missing)
            else:
                self.do(self.gossip.orphans_missing(placement.missing, self._clock()))
            return "orphan"
        if not isinstance(placement, Placed):
            return "known"
        placed: list[SimEntry] = []
        sources: list[str] = []

        def add(arrived: SimEntry, arrived_from: str) -> None:
            self.add(arrived)
            placed.append(arrived)
            sources.append(arrived_from)

        add(entry, source)
        self.placer.complete(entry, self.world.now, self.requested.__contains__, add, lambda exc: None)
        self.do(self.gossip.stored(placed, sources))  # the simulated store is durable at once
        self.step(EntriesStored())
        return "placed"


class World:
    def __init__(self, seed: int, config: SimConfig, core_factory: CoreFactory = default_core,
                 byzantine_factory: Callable[[World, int, Signer, str], SimNode] | None = None) -> None:
        self.seed = seed
        self.config = config
        self.rng = random.Random(seed)
        self.now = 0
        self._queue: list[tuple[int, int, int, tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self.stats = Stats()
        # every delivered message, in order: two runs of one seed agree on it, whatever the
        # process's hash seed, or the simulator has a source of chance besides `rng`
        self.trace = hashlib.sha256()
        self.violations: list[str] = []
        self.signers = [Signer(bytes([seed % 251 + 1, i + 1]) * 16) for i in range(config.validators)]
        self.users = [Signer(bytes([seed % 241 + 3, 200 + i]) * 16) for i in range(config.users)]
        # writers that appear only once the network healed: their entries test liveness
        self.liveness_users = [Signer(bytes([seed % 239 + 5, 100 + i]) * 16) for i in range(3)]
        self.hostile = [Signer(bytes([seed % 227 + 11, 190 + i]) * 16) for i in range(config.hostile_authors)]
        # reconfiguration: a node outside the genesis set that the council makes a validator
        self.joiner = Signer(bytes([seed % 233 + 7, 150]) * 16) if config.reconfigure else None
        self.council = [Signer(bytes([seed % 229 + 9, 170 + i]) * 16) for i in range(COUNCIL_SIZE)]
        council = tuple(GenesisCouncilMember(f"c{i}", c.public_key.hex()) for i, c in enumerate(self.council))
        self.genesis = Genesis(
            chain_id=CHAIN_ID, genesis_time_ms=1_700_000_000_000, params=ChainParams(pow_bits=0),
            allocations=tuple(Allocation(u.address, "SIM", 1_000) for u in self.users + self.hostile),
            validators=tuple(GenesisValidator(f"v{i}", s.public_key.hex(), 1) for i, s in enumerate(self.signers)),
            council=council if config.reconfigure else (),
            governance=GovernanceParams(timelock_ms=0) if config.reconfigure else GovernanceParams(),
        )
        self.timeouts = Timeouts(propose_ms=600, propose_delta_ms=300, prevote_ms=300, prevote_delta_ms=150,
                                 precommit_ms=300, precommit_delta_ms=150, rebroadcast_ms=1500)
        self.plan = self._draw_faults()
        self.faults_until = config.fault_window_ms
        self._next_tick = 0
        from .checkers import Checker

        self.checker = Checker(self)
        byzantine = set(self.rng.sample(range(config.validators), config.byzantine))
        self.byzantine_kinds: dict[int, str] = {}
        self.nodes: list[SimNode] = []
        for index, signer in enumerate(self.signers):
            if index in byzantine and byzantine_factory is not None:
                kind = self.rng.choice(BYZANTINE_KINDS)
                self.byzantine_kinds[index] = kind
                self.nodes.append(byzantine_factory(self, index, signer, kind))
            else:
                self.nodes.append(SimNode(self, index, signer, core_factory))
        if self.joiner is not None:
            self.nodes.append(SimNode(self, len(self.nodes), self.joiner, core_factory))
        self.index_of = {n.key: n.index for n in self.nodes}
        self.lost_commits: set[int] = set()  # nodes whose disk lost a commit it had acknowledged
        # the links between nodes: up or down, and a generation, so what was in flight on a link
        # that has since been cut (a crash, a peer closing it) is never delivered on the next one
        self.links_up: set[frozenset[int]] = set()
        self.link_gen: dict[frozenset[int], int] = {}
        self.authors = {s.public_key: s for s in [*self.users, *self.liveness_users, *self.hostile, *self.council]}
        self._signed: dict[bytes, SignedEntry] = {}
        self.user_chains: dict[bytes, list[bytes]] = {}
        self.proposals = 0
        self.submitted: list[bytes] = []
        self.liveness_entries: list[bytes] = []
        self.sent: list[tuple[bytes, EntryHeader]] = []  # every entry a client sent: what a replay resends

    # --- the seed's choices -----------------------------------------------------------------

    def _draw_faults(self) -> FaultPlan:
        rng, config = self.rng, self.config
        plan = FaultPlan()
        window = config.fault_window_ms
        if "loss" in config.faults and rng.random() < 0.7:
            plan.loss = rng.uniform(0.01, 0.25)
        if "duplicate" in config.faults and rng.random() < 0.5:
            plan.duplicate = rng.uniform(0.01, 0.2)
        if "delay" in config.faults and rng.random() < 0.7:
            plan.delay_ms = (1, rng.randint(20, 800))
        if "reorder" in config.faults and rng.random() < 0.5:
            plan.delay_ms = (plan.delay_ms[0], max(plan.delay_ms[1], rng.randint(50, 400)))
        if "partition" in config.faults and rng.random() < 0.6:
            for _ in range(rng.randint(1, 3)):
                start = rng.randint(0, window - 2000)
                end = min(window, start + rng.randint(500, 8000))
                side = frozenset(rng.sample(range(config.validators), rng.randint(1, config.validators - 1)))
                plan.partitions.append((start, end, side, rng.random() < 0.4))
        if "crash" in config.faults and rng.random() < 0.6:
            for _ in range(rng.randint(1, 2)):
                node = rng.randrange(config.validators)
                at = rng.randint(0, window - 1000)
                plan.crashes.append((node, at, min(window, at + rng.randint(200, 6000))))
        if "skew" in config.faults and rng.random() < 0.5:
            for node in range(config.validators):
                plan.skew[node] = (rng.uniform(0.6, 1.6), rng.randint(-3000, 3000))
        if "refused_commit" in config.faults and rng.random() < 0.5:
            for _ in range(rng.randint(1, 2)):
                start = rng.randint(0, window - 1000)
                plan.refused_commits.append((rng.randrange(config.validators), start,
                                             min(window, start + rng.randint(300, 5000))))
        if "torn_commit" in config.faults and rng.random() < 0.5:
            for _ in range(rng.randint(1, 2)):
                plan.torn_commits.append((rng.randrange(config.validators), rng.randint(0, window - 2000),
                                          rng.randint(200, 4000)))
        if "lost_fsync" in config.faults and rng.random() < 0.5:
            start = rng.randint(0, window - 3000)
            crash_at = min(window - 1000, start + rng.randint(1000, 8000))
            plan.lost_fsyncs.append((rng.randrange(config.validators), start, crash_at,
                                     min(window, crash_at + rng.randint(200, 4000))))
        return plan

    def disk_fault(self, node: int) -> str | None:
        """What the disk of `node` does to the commit it is asked for now: None (a good commit),
        "refuse", "torn" (the process dies in the middle) or "unsynced" (acknowledged, not durable)."""
        if self.now >= self.faults_until:
            return None
        plan = self.plan
        for index, (torn_node, start, down_ms) in enumerate(plan.torn_commits):
            if torn_node == node and self.now >= start:
                del plan.torn_commits[index]  # one torn commit each
                self.at(self.now + down_ms, node, ("restart",))
                return "torn"
        if any(n == node and start <= self.now < end for n, start, end in plan.refused_commits):
            return "refuse"
        if any(n == node and start <= self.now < crash_at for n, start, crash_at, _ in plan.lost_fsyncs):
            return "unsynced"
        return None

    def crash_now(self, node: int) -> None:
        """The process dies: its links drop with it, so its peers see it gone."""
        if not self.nodes[node].crashed:
            self.stats.crashes += 1
            self.nodes[node].crash()
            for other in range(len(self.nodes)):
                if other != node:
                    self.cut(node, other, redial=False)

    def restart_now(self, node: int) -> None:
        if self.nodes[node].crashed:
            self.stats.restarts += 1
            self.nodes[node].restart()

    # --- entries and links ----------------------------------------------------------------------

    def signed(self, entry_id: bytes, header: EntryHeader) -> SignedEntry:
        """The signed form of an entry a client wrote: what nodes pass to each other."""
        signed = self._signed.get(entry_id)
        if signed is None:
            author = self.authors.get(header.author)
            signature = author.sign(signing_message(entry_id)) if author is not None else bytes(64)
            signed = self._signed[entry_id] = SignedEntry(codec.encode(header), signature, b"")
        return signed

    def link_all(self, node: int) -> None:
        for other in range(len(self.nodes)):
            if other != node:
                self.connect(node, other)

    def connect(self, a: int, b: int) -> None:
        """A link comes up (a dial and a handshake): each side's gossip hears of the other."""
        pair = frozenset((a, b))
        if pair in self.links_up or self.nodes[a].crashed or self.nodes[b].crashed:
            return
        self.links_up.add(pair)
        self.link_gen[pair] = self.link_gen.get(pair, 0) + 1
        for one, other in ((a, b), (b, a)):
            here = self.nodes[one]
            here.do(here.gossip.peer_connected(self.nodes[other].key, f"10.0.0.{other + 1}:7000"))

    def cut(self, a: int, b: int, redial: bool = True) -> None:
        """A link goes down; what was in flight on it is lost. A live pair dials again soon."""
        pair = frozenset((a, b))
        if pair not in self.links_up:
            return
        self.links_up.discard(pair)
        self.link_gen[pair] += 1
        self.nodes[a].gossip.peer_gone(self.nodes[b].key)
        self.nodes[b].gossip.peer_gone(self.nodes[a].key)
        if redial:
            self.at(self.now + self.rng.randint(200, 1000), -1, ("connect", a, b))

    # --- the event loop -------------------------------------------------------------------

    def at(self, time_ms: int, node: int, payload: tuple[Any, ...]) -> None:
        heapq.heappush(self._queue, (time_ms, next(self._seq), node, payload))

    def _blocked(self, src: int, dst: int) -> bool:
        for start, end, side, one_way in self.plan.partitions:
            if start <= self.now < end and ((src in side) != (dst in side)) and (not one_way or src in side):
                return True
        return False

    def send(self, src: int, dst: int, message: PeerMessage | bytes) -> None:
        """A message on the link from `src` to `dst`, in its wire encoding (bytes are sent as they are)."""
        pair = frozenset((src, dst))
        if pair not in self.links_up:
            return
        data = message if isinstance(message, bytes) else encode_message(message)
        self.stats.messages += 1
        faulty = self.now < self.faults_until
        if faulty and self._blocked(src, dst):
            self.stats.partitioned += 1
            return
        if faulty and self.rng.random() < self.plan.loss:
            self.stats.dropped += 1
            return
        low, high = self.plan.delay_ms if faulty else (1, 5)
        generation = self.link_gen[pair]
        self.at(self.now + self.rng.randint(low, high), dst, ("msg", src, data, generation))
        if faulty and self.rng.random() < self.plan.duplicate:
            self.stats.duplicated += 1
            self.at(self.now + self.rng.randint(low, high), dst, ("msg", src, data, generation))

    def violation(self, text: str) -> None:
        self.violations.append(f"t={self.now}ms {text}")

    def run(self) -> None:
        """The whole seeded run: traffic and faults, then the liveness window, then the checks."""
        config = self.config
        self.start_nodes()
        for _ in range(config.entries):
            self.at(self.rng.randint(0, config.fault_window_ms), -1, ("submit",))
        for _ in range(config.hostile_actions if self.hostile else 0):
            self.at(self.rng.randint(0, config.fault_window_ms), -1, ("hostile", self.rng.choice(HOSTILE_AUTHOR_KINDS)))
        for crashing, at, restart in self.plan.crashes:
            self.at(at, crashing, ("crash",))
            self.at(restart, crashing, ("restart",))
        for crashing, _, at, restart in self.plan.lost_fsyncs:
            self.at(at, crashing, ("crash",))
            self.at(restart, crashing, ("restart",))
        if self.joiner is not None:
            self.at(config.fault_window_ms // 4, -1, ("set_validator", self.joiner.public_key, 1))
            self.at(config.fault_window_ms // 2, -1, ("set_validator", self.signers[0].public_key, 0))
        self.at(config.fault_window_ms + 1, -1, ("liveness",))
        self.advance(config.fault_window_ms + config.liveness_window_ms)
        self.checker.finish()

    def start_nodes(self) -> None:
        for sim_node in self.nodes:
            self.link_all(sim_node.index)
        for sim_node in self.nodes:
            sim_node.start()
        self._next_tick = 0

    def advance(self, until_ms: int) -> None:
        """Process every event up to `until_ms` (virtual), with the anti-entropy tick each second."""
        while not self.violations:
            next_event = self._queue[0][0] if self._queue else None
            if self._next_tick <= until_ms and (next_event is None or self._next_tick <= next_event):
                self.now = self._next_tick
                self._handle(-1, ("tick",))
                self._next_tick += self.config.tick_ms
                continue
            if next_event is None or next_event > until_ms:
                break
            time_ms, _, node, payload = heapq.heappop(self._queue)
            self.now = time_ms
            self.stats.events += 1
            self._handle(node, payload)
            if self.stats.events > 3_000_000:
                self.violation("event budget exhausted (a livelock?)")
        self.now = max(self.now, until_ms)

    def stop_faults(self) -> None:
        self.faults_until = self.now

    def _handle(self, node: int, payload: tuple[Any, ...]) -> None:
        kind = payload[0]
        if kind == "msg":
            if self.link_gen.get(frozenset((node, payload[1]))) == payload[3]:
                self.trace.update(b"%d %d %d %d " % (self.now, payload[1], node, len(payload[2])) + payload[2])
                self.nodes[node].receive(payload[1], payload[2])
        elif kind == "wake":
            if payload[1] == self.nodes[node].epoch:
                self.nodes[node].wake()
        elif kind == "connect":
            self.connect(payload[1], payload[2])
        elif kind == "timer":
            target = self.nodes[node]
            if payload[1] == target.epoch:
                target.step(payload[2])
        elif kind == "fetch":
            target = self.nodes[node]
            if payload[1] == target.epoch and not target.crashed:
                target.fetch_missing(payload[2])
        elif kind == "submit":
            self._submit()
        elif kind == "tick":
            for n in self.nodes:
                n.tick()
        elif kind == "crash":
            self.crash_now(node)
        elif kind == "restart":
            self.restart_now(node)
        elif kind == "hostile":
            self._hostile_author(payload[1])
        elif kind == "publish":
            self._deliver(payload[1], payload[2])
        elif kind == "liveness":
            for user in self.liveness_users:
                self.liveness_entries.append(self._submit(user))
        elif kind == "set_validator":
            self.council_decides(SetValidator(payload[1], payload[2]))

    def council_decides(self, action: SetValidator) -> None:
        """The council proposes, votes and executes `action`, each entry a child of the one before:
        they are ordered in that sequence, so the execution finds the proposal passed (timelock 0),
        and a later decision is ordered after an earlier one."""
        first, second, third = self.council
        self.proposals += 1
        number = self.proposals
        last = self._submit_op(first, GovPropose(action=action, reason="sim reconfiguration", legal_ref=""), None)
        last = self._submit_op(second, GovVote(proposal=number, choice="yes"), last)
        last = self._submit_op(third, GovVote(proposal=number, choice="yes"), last)
        self._submit_op(first, GovExecute(proposal=number), last)

    def _submit_op(self, author: Signer, op: Operation, after: bytes | None) -> bytes:
        node = self.rng.choice([n for n in self.nodes if n.honest and not n.crashed] or self.nodes)
        chain = self.user_chains.setdefault(author.public_key, [])
        parents = [chain[-1]] if chain else [self.genesis.root]
        if after is not None and after not in parents:
            parents.append(after)
        header = EntryHeader(ENTRY_VERSION, CHAIN_ID, author.public_key, len(chain), tuple(parents), self.now,
                             op.KIND, codec.encode(op), codec.sha256(b""), 0, bytes(8))
        entry_id = codec.sha256(codec.encode(header))
        node.receive_entry(entry_id, header)
        chain.append(entry_id)
        self.submitted.append(entry_id)
        return entry_id

    def _submit(self, fresh_user: Signer | None = None) -> bytes:
        """A client writes a transfer to a random live honest node, choosing parents from its tips."""
        live = [n for n in self.nodes if n.honest and not n.crashed] or [n for n in self.nodes if n.honest]
        node = self.rng.choice(live)
        user = fresh_user or self.rng.choice(self.users)
        chain = self.user_chains.setdefault(user.public_key, [])
        seq = len(chain)
        if fresh_user is None and chain and self.rng.random() < 0.05:
            seq -= 1  # a fork: the author signs a second entry with a sequence number already used
        parents = [chain[seq - 1]] if seq > 0 else [self.genesis.root]
        tips = sorted(t for t in node.dag.tips if t not in parents and t != self.genesis.root)
        if tips:
            parents.append(self.rng.choice(tips))
        recipient = self.rng.choice(self.users)
        op = Transfer(asset="SIM", amount=self.rng.randint(1, 400), to=recipient.public_key)
        header = EntryHeader(ENTRY_VERSION, CHAIN_ID, user.public_key, seq, tuple(parents), self.now, "transfer",
                             codec.encode(op), codec.sha256(b""), 0, bytes(8))
        entry_id = codec.sha256(codec.encode(header))
        if node.receive_entry(entry_id, header) in ("placed", "orphan") and seq == len(chain):
            chain.append(entry_id)
        self.submitted.append(entry_id)
        self.sent.append((entry_id, header))
        return entry_id

    # --- hostile authors ----------------------------------------------------------------------

    def _live_honest(self) -> list[SimNode]:
        return [n for n in self.nodes if n.honest and not n.crashed] or [n for n in self.nodes if n.honest]

    def _deliver(self, entry_id: bytes, header: EntryHeader, node: SimNode | None = None) -> str:
        self.sent.append((entry_id, header))
        return (node or self.rng.choice(self._live_honest())).receive_entry(entry_id, header)

    def _hostile_entry(self, author: Signer, seq: int, parents: list[bytes], amount: int) -> tuple[bytes, EntryHeader]:
        op = Transfer(asset="SIM", amount=amount, to=self.rng.choice(self.users).public_key)
        header = EntryHeader(ENTRY_VERSION, CHAIN_ID, author.public_key, seq, tuple(parents), self.now, "transfer",
                             codec.encode(op), codec.sha256(b""), 0, bytes(8))
        return codec.sha256(codec.encode(header)), header

    def _hostile_author(self, behaviour: str) -> None:
        """One act of a hostile client, drawn from the seed."""
        author = self.rng.choice(self.hostile)
        chain = self.user_chains.setdefault(author.public_key, [])
        parents = [chain[-1]] if chain else [self.genesis.root]
        if behaviour == "fork":  # two halves at one seq, raced to two nodes at the same instant
            self.stats.author_forks += 1
            left = self._hostile_entry(author, len(chain), parents, self.rng.randint(1, 600))
            right = self._hostile_entry(author, len(chain), parents, self.rng.randint(601, 1200))
            live = self._live_honest()
            first, second = (self.rng.sample(live, 2) if len(live) > 1 else (live[0], live[0]))
            outcomes = (self._deliver(*left, node=first), self._deliver(*right, node=second))
            if "placed" in outcomes or "orphan" in outcomes:  # the author goes on from one of the halves
                chain.append(left[0] if outcomes[0] in ("placed", "orphan") else right[0])
        elif behaviour == "replay" and self.sent:  # an old entry again, to any node
            self.stats.author_replays += 1
            self._deliver(*self.rng.choice(self.sent))
        elif behaviour == "withhold":  # an entry whose own parent is kept back, for a while or for good
            self.stats.author_withheld += 1
            hidden = self._hostile_entry(author, len(chain), parents, self.rng.randint(1, 50))
            shown = self._hostile_entry(author, len(chain) + 1, [hidden[0]], self.rng.randint(1, 50))
            self._deliver(*shown)
            chain.extend((hidden[0], shown[0]))
            if self.rng.random() < 0.5:
                self.at(self.now + self.rng.randint(100, 5000), -1, ("publish", *hidden))

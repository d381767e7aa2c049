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

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import codec
from ..consensus.core import (
    Action,
    Behind,
    Broadcast,
    Commit,
    EntriesAvailable,
    Equivocation,
    Event,
    FetchEntries,
    HeightApplied,
    MessageReceived,
    Persist,
    ScheduleTimeout,
    SignerState,
    Start,
    TendermintCore,
    TimeoutFired,
    Timeouts,
)
from ..consensus.linearize import MissingEntry
from ..consensus.messages import CertificateInvalid, FinalizedCheckpoint, Proposal, Vote, verify_certificate
from ..consensus.validators import ValidatorSet
from ..errors import BilayerError
from ..genesis import Allocation, ChainParams, Genesis, GenesisCouncilMember, GenesisValidator, GovernanceParams
from ..keys.signing import Signer
from ..ledger.dag import NO_FORKS, Dag, ForkDetected, Orphan, Placed, Placement, fork_digest_with
from ..ledger.entry import ENTRY_VERSION, EntryHeader
from ..ledger.operations import GovExecute, GovPropose, GovVote, Operation, SetValidator, Transfer
from ..replica.app import ChainApp
from ..replica.chain import Applied, ChainState, NotNext, RootMismatch

CHAIN_ID = "sim"
FAULT_KINDS = ("loss", "delay", "reorder", "duplicate", "partition", "crash", "skew")
BYZANTINE_KINDS = ("equivocate", "double_vote", "split_brain", "silent", "garbage", "withhold", "replay")
HOSTILE_AUTHOR_KINDS = ("fork", "replay", "withhold")

CoreFactory = Callable[[str, Signer, ValidatorSet, ChainApp, SignerState | None, Timeouts], TendermintCore]
COUNCIL_SIZE = 3


def default_core(chain_id: str, signer: Signer, validators: ValidatorSet, app: ChainApp, state: SignerState | None,
                 timeouts: Timeouts) -> TendermintCore:
    return TendermintCore(chain_id, signer, validators, app, state, timeouts)


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


class Violation(Exception):
    pass


class SimNode:
    """One node process: chain state + DAG, and a consensus core while its key is in the validator
    set of the next height; with what a crash keeps (persisted)."""

    def __init__(self, world: World, index: int, signer: Signer, core_factory: CoreFactory) -> None:
        self.world = world
        self.index = index
        self.signer = signer
        self.core_factory = core_factory
        self.chain = ChainState(world.genesis)
        self.dag = Dag(world.genesis.root)
        self.headers: dict[bytes, EntryHeader] = {}
        self.finalized: list[FinalizedCheckpoint] = []
        self.persisted: SignerState | None = None
        self.crashed = False
        self.epoch = 0  # timers of an earlier incarnation are void
        self.requested: set[bytes] = set()
        self.orphans: dict[bytes, tuple[EntryHeader, bool]] = {}  # header, came from a peer
        # (author, seq) -> the proof: both ids and headers (kept, like the node's evidence table)
        self.evidence: dict[tuple[bytes, int], tuple[bytes, EntryHeader, bytes, EntryHeader]] = {}
        self.fork_digest = NO_FORKS
        self.pending: dict[int, FinalizedCheckpoint] = {}
        self.core = self._new_core()

    @property
    def honest(self) -> bool:
        return True

    def _clock(self) -> int:
        return self.world.now + self.world.plan.skew.get(self.index, (1.0, 0))[1] + self.world.genesis.genesis_time_ms

    def _new_core(self) -> TendermintCore | None:
        if self.signer.public_key not in self.chain.validators:
            return None
        app = ChainApp(self.chain, self, self.signer.public_key, self._clock, heartbeat_ms=0,
                       header_of=self.headers.get)
        state = self.persisted
        if state is None or state.height <= self.chain.height:
            state = SignerState(height=self.chain.height + 1, round=0, phase=0, prev=self.chain.last)
        return self.core_factory(CHAIN_ID, self.signer, self.chain.validators, app, state, self.world.timeouts)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.step(Start())

    def crash(self) -> None:
        self.crashed = True
        self.epoch += 1
        self.orphans.clear()
        self.pending.clear()
        self.requested.clear()

    def restart(self) -> None:
        self.crashed = False
        self.core = self._new_core()
        self.start()

    # --- core ---------------------------------------------------------------------------

    def step(self, event: Event) -> None:
        if self.crashed or self.core is None:
            return
        for action in self.core.step(event):
            self.do(action)

    def follow_validator_set(self, height: int, applied: Applied) -> None:
        """As the node runtime does after applying `height`: join, leave, or pass on a new set."""
        following = self.chain.validators_at(height + 1)
        if self.signer.public_key not in following:
            self.core = None
        elif self.core is None:
            self.core = self._new_core()
            self.step(Start())
        else:
            changed = following is not self.chain.validators_at(height)
            self.step(HeightApplied(height, applied.checkpoint, following if changed else None))

    def do(self, action: Action) -> None:
        world = self.world
        if isinstance(action, Persist):
            self.persisted = action.state
        elif isinstance(action, Broadcast):
            self.broadcast(("consensus", action.message))
        elif isinstance(action, ScheduleTimeout):
            rate = world.plan.skew.get(self.index, (1.0, 0))[0]
            fired = TimeoutFired(action.kind, action.height, action.round)
            world.at(world.now + max(1, int(action.delay_ms * rate)), self.index, ("timer", self.epoch, fired))
        elif isinstance(action, Commit):
            try:  # a core that decides without a real quorum certificate is unsafe, whatever follows
                verify_certificate(CHAIN_ID, action.finalized.checkpoint, action.finalized.certificate,
                                   self.chain.validators_at(action.finalized.checkpoint.height))
            except CertificateInvalid as exc:
                world.violation(f"node {self.index} decided height {action.finalized.checkpoint.height}"
                                f" without a quorum certificate: {exc}")
                return
            self.accept_finalized(action.finalized)
        elif isinstance(action, FetchEntries):
            self.requested.update(action.entry_ids)
            self.broadcast(("want", tuple(action.entry_ids)))
        elif isinstance(action, Behind):
            self.broadcast(("want_checkpoints", self.chain.height + 1))
        elif isinstance(action, Equivocation):
            world.stats.equivocations_seen += 1

    def broadcast(self, message: tuple[Any, ...]) -> None:
        for other in range(len(self.world.nodes)):
            if other != self.index:
                self.world.send(self.index, other, message)

    # --- entries --------------------------------------------------------------------------

    def holds(self, entry_id: bytes) -> bool:
        return self.dag.holds(entry_id)

    def placement(self, entry_id: bytes, header: EntryHeader, from_peer: bool) -> Placement:
        """As the node's ingest: a fork is evidence; a client's second half is refused, a peer's
        (or one this node asked for) is admitted, and execution rejects the half ordered second."""
        try:
            return self.dag.placement(entry_id, header)
        except ForkDetected as fork:
            first = self.headers.get(fork.existing_id)
            if first is not None:
                self.record_fork(fork.existing_id, first, entry_id, header, None)
            if not from_peer and entry_id not in self.requested:
                raise
            return self.dag.placement(entry_id, header, allow_fork=True)

    def record_fork(self, first_id: bytes, first: EntryHeader, second_id: bytes, second: EntryHeader,
                    source: int | None) -> None:
        key = (first.author, first.seq)
        if key in self.evidence:
            return
        self.evidence[key] = (first_id, first, second_id, second)
        self.fork_digest = fork_digest_with(self.fork_digest, *key)
        message = ("evidence", first_id, first, second_id, second)
        for other in range(len(self.world.nodes)):
            if other not in (self.index, source):
                self.world.send(self.index, other, message)

    def receive_evidence(self, src: int, message: tuple[Any, ...]) -> None:
        """Fork evidence a peer passes on: checked (ids, one author, one seq, two entries), kept once."""
        _, first_id, first, second_id, second = message
        if (first_id == second_id or codec.sha256(codec.encode(first)) != first_id
                or codec.sha256(codec.encode(second)) != second_id
                or (first.author, first.seq) != (second.author, second.seq)):
            return
        self.record_fork(first_id, first, second_id, second, src)

    def share_evidence(self, dst: int) -> None:
        """What a node sends a peer whose digest of forks differs from its own: every proof it holds."""
        for proof in self.evidence.values():
            self.world.send(self.index, dst, ("evidence", *proof))

    def add(self, entry_id: bytes, header: EntryHeader) -> None:
        self.dag.add(entry_id, header)
        self.headers[entry_id] = header
        self.requested.discard(entry_id)

    def receive_entry(self, entry_id: bytes, header: EntryHeader, from_peer: bool = False) -> str:
        """Place an entry as the node's ingest does: 'placed', 'orphan', 'known' or 'refused'."""
        if entry_id in self.dag:
            return "known"
        try:
            placement = self.placement(entry_id, header, from_peer)
        except BilayerError:  # a client's fork at the door, a broken author chain
            return "refused"
        if isinstance(placement, Orphan):
            self.orphans[entry_id] = (header, from_peer)
            self.requested.update(placement.missing)
            self.broadcast(("want", placement.missing))
            return "orphan"
        if not isinstance(placement, Placed):
            return "known"
        placed = [(entry_id, header)]
        self.add(entry_id, header)
        progress = True
        while progress:  # orphans are placed one at a time: two halves of a fork waiting on one parent meet as a fork
            progress = False
            for orphan_id, (orphan, orphan_from_peer) in list(self.orphans.items()):
                if not all(self.dag.holds(p) for p in orphan.parents):
                    continue
                del self.orphans[orphan_id]
                try:
                    orphan_placement = self.placement(orphan_id, orphan, orphan_from_peer)
                except BilayerError:
                    continue
                if isinstance(orphan_placement, Placed):
                    self.add(orphan_id, orphan)
                    placed.append((orphan_id, orphan))
                    progress = True
        if placed:
            self.broadcast(("entries", tuple(placed)))
            self.drain_pending()
            self.step(EntriesAvailable())
        return "placed"

    # --- finality ---------------------------------------------------------------------------

    def accept_finalized(self, finalized: FinalizedCheckpoint) -> None:
        height = finalized.checkpoint.height
        if height <= self.chain.height:
            return
        self.pending[height] = finalized
        self.drain_pending()

    def drain_pending(self) -> None:
        while self.chain.height + 1 in self.pending and not self.crashed:
            finalized = self.pending[self.chain.height + 1]
            try:
                applied = self.chain.execute_next(finalized, self.dag, self.headers.__getitem__)
            except MissingEntry as missing:
                self.requested.add(missing.entry_id)
                self.broadcast(("want", (missing.entry_id,)))
                return
            except KeyError as missing:
                self.broadcast(("want", (missing.args[0],)))
                return
            except (NotNext, CertificateInvalid):
                del self.pending[self.chain.height + 1]
                return
            except RootMismatch as exc:
                self.world.violation(f"node {self.index} halted: {exc.message}")
                return
            del self.pending[finalized.checkpoint.height]
            self.finalized.append(finalized)
            self.world.checker.on_applied(self.index, applied)
            self.follow_validator_set(applied.height, applied)

    # --- messages ---------------------------------------------------------------------------

    def receive(self, src: int, message: tuple[Any, ...]) -> None:
        if self.crashed:
            return
        kind = message[0]
        if kind == "consensus":
            consensus: Proposal | Vote = message[1]
            if consensus.height > self.chain.height + 2:
                self.world.send(self.index, src, ("want_checkpoints", self.chain.height + 1))
            self.step(MessageReceived(consensus))
        elif kind == "entries":
            for entry_id, header in message[1]:
                self.receive_entry(entry_id, header, from_peer=True)
        elif kind == "evidence":
            self.receive_evidence(src, message)
        elif kind == "want":
            found = tuple((i, self.headers[i]) for i in message[1] if i in self.headers)
            if found:
                self.world.send(self.index, src, ("entries", found))
        elif kind == "tips":
            unknown = tuple(i for i in message[1] if not self.dag.holds(i))
            if unknown:
                self.requested.update(unknown)
                self.world.send(self.index, src, ("want", unknown))
            if message[2] > self.chain.height:
                self.world.send(self.index, src, ("want_checkpoints", self.chain.height + 1))
            if message[3] != self.fork_digest and self.evidence:
                self.share_evidence(src)
        elif kind == "want_checkpoints":
            start = message[1]
            for finalized in self.finalized[start - 1:start + 9]:
                self.world.send(self.index, src, ("checkpoint", finalized))
        elif kind == "checkpoint":
            self.accept_finalized(message[1])

    def tick(self) -> None:
        """Anti-entropy, as the runtime does every few seconds: tips and height to every peer."""
        if not self.crashed:
            self.broadcast(("tips", tuple(sorted(self.dag.tips)), self.chain.height, self.fork_digest))


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
        return plan

    # --- the event loop -------------------------------------------------------------------

    def at(self, time_ms: int, node: int, payload: tuple[Any, ...]) -> None:
        heapq.heappush(self._queue, (time_ms, next(self._seq), node, payload))

    def _blocked(self, src: int, dst: int) -> bool:
        for start, end, side, one_way in self.plan.partitions:
            if start <= self.now < end and ((src in side) != (dst in side)) and (not one_way or src in side):
                return True
        return False

    def send(self, src: int, dst: int, message: tuple[Any, ...]) -> None:
        self.stats.messages += 1
        faulty = self.now < self.faults_until
        if faulty and self._blocked(src, dst):
            self.stats.partitioned += 1
            return
        if faulty and self.rng.random() < self.plan.loss:
            self.stats.dropped += 1
            return
        low, high = self.plan.delay_ms if faulty else (1, 5)
        self.at(self.now + self.rng.randint(low, high), dst, ("msg", src, message))
        if faulty and self.rng.random() < self.plan.duplicate:
            self.stats.duplicated += 1
            self.at(self.now + self.rng.randint(low, high), dst, ("msg", src, message))

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
        if self.joiner is not None:
            self.at(config.fault_window_ms // 4, -1, ("set_validator", self.joiner.public_key, 1))
            self.at(config.fault_window_ms // 2, -1, ("set_validator", self.signers[0].public_key, 0))
        self.at(config.fault_window_ms + 1, -1, ("liveness",))
        self.advance(config.fault_window_ms + config.liveness_window_ms)
        self.checker.finish()

    def start_nodes(self) -> None:
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
            self.nodes[node].receive(payload[1], payload[2])
        elif kind == "timer":
            target = self.nodes[node]
            if payload[1] == target.epoch:
                target.step(payload[2])
        elif kind == "submit":
            self._submit()
        elif kind == "tick":
            for n in self.nodes:
                n.tick()
        elif kind == "crash":
            if not self.nodes[node].crashed:
                self.stats.crashes += 1
                self.nodes[node].crash()
        elif kind == "restart":
            if self.nodes[node].crashed:
                self.stats.restarts += 1
                self.nodes[node].restart()
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

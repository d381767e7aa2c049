"""A small deterministic network of consensus cores for scripted tests (virtual clock)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from bilayer import codec
from bilayer.consensus.core import (
    Action,
    Broadcast,
    Commit,
    EntriesAvailable,
    Event,
    HeightApplied,
    Invalid,
    MessageReceived,
    Missing,
    Persist,
    ScheduleTimeout,
    SignerState,
    Start,
    TendermintCore,
    TimeoutFired,
    Valid,
    Verdict,
)
from bilayer.consensus.messages import Checkpoint, FinalizedCheckpoint, Proposal, Vote
from bilayer.consensus.validators import Validator, ValidatorSet
from bilayer.keys.signing import Signer

CHAIN = "sim"
GENESIS = b"\x00" * 32


@dataclass
class ToyApp:
    """Entries are opaque ids; a node can vote for a checkpoint only when it holds its frontier."""

    me: bytes
    available: set[bytes] = field(default_factory=set)
    committed: list[Checkpoint] = field(default_factory=list)
    covered: set[bytes] = field(default_factory=set)
    time_ms: int = 0

    def root(self) -> bytes:
        return codec.sha256(b"".join(sorted(self.covered)))

    def propose_value(self, height: int, prev: Checkpoint | None) -> Checkpoint | None:
        frontier = sorted(self.available - self.covered)
        if not frontier:
            return None
        prev_id = self.committed[-1].id if self.committed else GENESIS
        return Checkpoint(CHAIN, height, prev_id, self.me, tuple(frontier), self.root(), b"", height)

    def check_value(self, value: Checkpoint) -> Verdict:
        prev_id = self.committed[-1].id if self.committed else GENESIS
        if value.prev_id != prev_id or value.state_root != self.root():
            return Invalid("does not extend")
        missing = tuple(f for f in value.frontier if f not in self.available)
        return Missing(missing) if missing else Valid()

    def has_work(self, height: int) -> bool:
        return bool(self.available - self.covered)


@dataclass
class SimNode:
    signer: Signer
    core: TendermintCore
    app: ToyApp
    persisted: SignerState | None = None
    decided: list[FinalizedCheckpoint] = field(default_factory=list)
    sent: list[Proposal | Vote] = field(default_factory=list)
    fetches: int = 0


class Cluster:
    def __init__(self, n: int, latency_ms: int = 10) -> None:
        self.signers = [Signer(bytes([i + 1]) * 32) for i in range(n)]
        self.validators = ValidatorSet(Validator(f"v{i}", s.public_key, 1) for i, s in enumerate(self.signers))
        self.latency_ms = latency_ms
        self.now = 0
        self._queue: list[tuple[int, int, int, Event]] = []
        self._seq = itertools.count()
        self.nodes = [self._make(s) for s in self.signers]
        self.by_key = {s.public_key: i for i, s in enumerate(self.signers)}
        self.drop: Callable[[int, int, Proposal | Vote], bool] = lambda src, dst, msg: False
        self.down: set[int] = set()

    def _make(self, signer: Signer, state: SignerState | None = None, app: ToyApp | None = None) -> SimNode:
        app = app or ToyApp(signer.public_key)
        return SimNode(signer, TendermintCore(CHAIN, signer, self.validators, app, state), app)

    def index_of_proposer(self, height: int, round_: int) -> int:
        return self.by_key[self.validators.proposer(height, round_)]

    def start(self) -> None:
        for i in range(len(self.nodes)):
            self.feed(i, Start())

    def add_entries(self, ids: list[bytes], to: list[int] | None = None) -> None:
        for i in to if to is not None else range(len(self.nodes)):
            self.nodes[i].app.available.update(ids)
            self.feed(i, EntriesAvailable())

    def feed(self, i: int, event: Event) -> list[Action]:
        if i in self.down:
            return []
        node = self.nodes[i]
        actions = node.core.step(event)
        for action in actions:
            self._do(i, action)
        return actions

    def _schedule(self, at: int, dst: int, event: Event) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), dst, event))

    def _do(self, i: int, action: Action) -> None:
        node = self.nodes[i]
        if isinstance(action, Persist):
            node.persisted = action.state
        elif isinstance(action, Broadcast):
            node.sent.append(action.message)
            for j in range(len(self.nodes)):
                if j != i and not self.drop(i, j, action.message):
                    self._schedule(self.now + self.latency_ms, j, MessageReceived(action.message))
        elif isinstance(action, ScheduleTimeout):
            self._schedule(self.now + action.delay_ms, i, TimeoutFired(action.kind, action.height, action.round))
        elif isinstance(action, Commit):
            node.decided.append(action.finalized)
            value = action.finalized.checkpoint
            node.app.committed.append(value)
            node.app.covered.update(value.frontier)
            self._schedule(self.now, i, HeightApplied(value.height, value))
        elif isinstance(action, Missing):
            pass
        else:
            node.fetches += 1

    def deliver(self, src: int, dst: int, message: Proposal | Vote) -> None:
        self.feed(dst, MessageReceived(message))

    def run(self, until_ms: int, max_events: int = 100_000) -> None:
        for _ in range(max_events):
            if not self._queue or self._queue[0][0] > until_ms:
                self.now = max(self.now, until_ms)
                self.sync()
                return
            at, _, dst, event = heapq.heappop(self._queue)
            if at // 1000 != self.now // 1000:
                self.sync()
            self.now = at
            self.feed(dst, event)
        raise AssertionError("event budget exhausted")

    def sync(self) -> None:
        """What the host's checkpoint sync does: a node that lags gets decided checkpoints from a peer."""
        best = max(self.nodes, key=lambda n: len(n.decided))
        for i, node in enumerate(self.nodes):
            if i in self.down:
                continue
            while len(node.decided) < len(best.decided) and len(node.decided) >= len(node.app.committed):
                finalized = best.decided[len(node.decided)]
                node.decided.append(finalized)
                node.app.committed.append(finalized.checkpoint)
                node.app.covered.update(finalized.checkpoint.frontier)
                self.feed(i, HeightApplied(finalized.checkpoint.height, finalized.checkpoint))

    def restart(self, i: int) -> None:
        """Crash node i and bring it back from its persisted state (its app survives, like the DB)."""
        old = self.nodes[i]
        self.down.discard(i)
        state = old.persisted
        applied = len(old.app.committed)
        if state is None or state.height <= applied:
            prev = old.app.committed[-1] if old.app.committed else None
            state = SignerState(height=applied + 1, round=0, phase=0, prev=prev)
        self.nodes[i] = self._make(old.signer, state, old.app)
        self.nodes[i].decided = old.decided
        self.feed(i, Start())

    def heights(self) -> list[int]:
        return [len(n.decided) for n in self.nodes]

"""The deterministic simulator: reproducible runs, sampled campaigns, checkers that catch bugs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bilayer.consensus.core import TendermintCore, Timeouts
from bilayer.consensus.validators import ValidatorSet
from bilayer.execution.executor import EntryResult, Outcome
from bilayer.replica.chain import Applied
from bilayer.sim.byzantine import byzantine_node
from bilayer.sim.campaign import parse_faults, run_seed
from bilayer.sim.world import SimConfig, SimNode, World


def test_one_seed_replays_the_same_run() -> None:
    config = SimConfig(byzantine=1)
    runs = []
    for _ in range(2):
        world = World(11, config, byzantine_factory=byzantine_node)
        world.run()
        runs.append((world.stats.events, world.checker.committed, world.checker.roots, world.checker.outcomes,
                     world.byzantine_kinds, world.plan))
    assert runs[0] == runs[1]
    assert runs[0][1], "the run committed nothing"








def test_a_validator_joins_signs_and_a_removed_one_stops_signing() -> None:
    world = World(7, SimConfig(validators=4, faults=(), entries=60, reconfigure=True))
    world.run()
    assert not world.violations and not world.checker.liveness_failures
    joiner, removed = world.nodes[-1], world.nodes[0]
    epochs = joiner.chain.epochs
    assert [(len(e.validators), e.change.proposals) for e in epochs] == [(4, ()), (5, (1,)), (4, (2,))]
    added_at, removed_at = epochs[1].height, epochs[2].height
    assert all([(e.height, e.change) for e in n.chain.epochs] == [(e.height, e.change) for e in epochs]
               for n in world.nodes)
    signers = {f.checkpoint.height: {s.validator for s in f.certificate.signatures} for f in joiner.finalized}
    assert max(signers) > removed_at + 2, "too few checkpoints after the removal to tell"
    assert all(world.joiner.public_key not in keys for h, keys in signers.items() if h < added_at)
    assert any(world.joiner.public_key in keys for h, keys in signers.items() if h >= added_at)
    assert all(removed.signer.public_key not in keys for h, keys in signers.items() if h >= removed_at)
    assert joiner.core is not None and removed.core is None
    assert removed.chain.height == joiner.chain.height  # it follows as a ledger node


class _TwoFIsAQuorum(ValidatorSet):
    """Broken: counts 2f of 3f+1 as a quorum."""

    def is_quorum(self, power: int) -> bool:
        return 3 * power >= 2 * self.total_power - 2


def _broken_quorum_core(chain, signer, validators, app, state, timeouts):  # type: ignore[no-untyped-def]
    return TendermintCore(chain, signer, _TwoFIsAQuorum(validators.members), app, state, timeouts)


def test_checkers_catch_a_core_that_counts_2f_votes_as_a_quorum() -> None:
    caught = []
    for seed in range(40):
        result = run_seed(seed, SimConfig(byzantine=1), core_factory=_broken_quorum_core)
        if result.violations:
            caught.append(seed)
            break
    assert caught, "40 seeds did not expose a core that decides on 2f votes"


def test_safety_checker_flags_divergence_rollback_and_flipped_outcomes() -> None:
    world = World(5, SimConfig(faults=(), entries=0))
    checker = world.checker
    first = world.genesis  # any two distinct checkpoints will do
    from bilayer.consensus.messages import Checkpoint

    a = Checkpoint("sim", 1, first.root, b"p" * 32, (), b"s" * 32, b"r" * 32, 1)
    b = Checkpoint("sim", 1, first.root, b"p" * 32, (), b"s" * 32, b"r" * 32, 2)
    entry_id, header = world._hostile_entry(world.hostile[0], 0, [first.root], 1)
    twin_id, twin = world._hostile_entry(world.hostile[0], 0, [first.root], 2)
    result = EntryResult(entry_id, Outcome.FINAL)
    checker.on_applied(0, Applied(1, a, [result], b"S" * 32, b"R" * 32, headers=(header,)))
    checker.on_applied(1, Applied(1, b, [result], b"S" * 32, b"R" * 32, headers=(header,)))
    assert any("two checkpoints at height 1" in v for v in world.violations)
    checker.on_applied(2, Applied(1, a, [EntryResult(entry_id, Outcome.REJECTED, "x")], b"S" * 32, b"R" * 32,
                                  headers=(header,)))
    assert any("and then" in v for v in world.violations)
    checker.on_applied(2, Applied(3, a, [], b"S" * 32, b"R" * 32))
    assert any("went from height 1 to 3" in v for v in world.violations)
    checker.on_applied(3, Applied(1, a, [EntryResult(twin_id, Outcome.FINAL)], b"S" * 32, b"R" * 32, headers=(twin,)))
    assert any("two FINAL entries by author" in v for v in world.violations)


def test_fault_kinds_parse() -> None:
    assert parse_faults("all") == parse_faults("")
    assert parse_faults("none") == ()
    assert parse_faults("loss,crash") == ("loss", "crash")
    with pytest.raises(ValueError):
        parse_faults("loss,meteor")




class ClusterUnderFaults(RuleBasedStateMachine):
    """Hypothesis drives a 4-validator world step by step; a failure shrinks to a short script."""

    @initialize()
    def start(self) -> None:
        self.world = World(0, SimConfig(validators=4, faults=(), entries=0, fault_window_ms=10**9))
        self.world.timeouts = Timeouts(propose_ms=300, propose_delta_ms=100, prevote_ms=200, prevote_delta_ms=100,
                                       precommit_ms=200, precommit_delta_ms=100, rebroadcast_ms=800)
        for node in self.world.nodes:
            node.boot()  # its driver's core takes the short timeouts
        self.world.start_nodes()
        self.down: set[int] = set()

    @rule(count=st.integers(1, 4))
    def submit(self, count: int) -> None:
        for _ in range(count):
            self.world._submit()

    @rule(ms=st.integers(1, 3000))
    def advance(self, ms: int) -> None:
        self.world.advance(self.world.now + ms)

    @precondition(lambda self: len(self.down) < 1)
    @rule(node=st.integers(0, 3))
    def crash(self, node: int) -> None:
        self.world.crash_now(node)
        self.down.add(node)

    @precondition(lambda self: bool(self.down))
    @rule()
    def restart(self) -> None:
        node = min(self.down)
        self.down.discard(node)
        self.world.restart_now(node)

    @rule(side=st.frozensets(st.integers(0, 3), min_size=1, max_size=3), ms=st.integers(100, 5000),
          one_way=st.booleans())
    def partition(self, side: frozenset[int], ms: int, one_way: bool) -> None:
        self.world.plan.partitions.append((self.world.now, self.world.now + ms, side, one_way))

    @rule(loss=st.floats(0, 0.4), duplicate=st.floats(0, 0.3), delay=st.integers(1, 500))
    def weather(self, loss: float, duplicate: float, delay: int) -> None:
        self.world.plan.loss, self.world.plan.duplicate, self.world.plan.delay_ms = loss, duplicate, (1, delay)

    @invariant()
    def safe(self) -> None:
        assert not self.world.violations, self.world.violations

    def teardown(self) -> None:
        world = getattr(self, "world", None)
        if world is None:
            return
        for node in sorted(self.down):
            world.restart_now(node)
        world.stop_faults()
        world.liveness_entries = [world._submit(user) for user in world.liveness_users]
        world.advance(world.now + 40_000)
        world.checker.finish()
        assert not world.violations, world.violations
        assert not world.checker.liveness_failures, world.checker.liveness_failures


TestClusterUnderFaults = ClusterUnderFaults.TestCase
TestClusterUnderFaults.settings = settings(
    max_examples=12, stateful_step_count=25, deadline=None,
    # no explain phase: tracing a failing world's run takes minutes; the shrunk script says enough
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# --- the disk: refused, torn and unsynced commits ----------------------------------------------

def test_a_node_behind_its_announcements_after_a_lost_fsync_catches_up() -> None:
    world = World(3, SimConfig(validators=4, faults=(), entries=30))
    world.plan.lost_fsyncs.append((1, 0, 8000, 9000))  # node 1's disk syncs nothing for 8 s, then it crashes
    world.run()
    assert world.stats.commits_lost > 0 and world.stats.crashes == 1
    assert not world.violations and not world.checker.liveness_failures
    heights = {node.chain.height for node in world.nodes}
    assert len(heights) == 1 and world.nodes[1].store.height == world.nodes[1].chain.height


def test_a_host_that_keeps_memory_ahead_of_a_refused_commit_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks can fail: a host that does not go back to its disk after a refused commit."""
    from bilayer.replica.finality import CommitFailed, Ready, ToCommit

    real_commit = SimNode.commit

    def forgetful(self: SimNode, to_commit: ToCommit) -> Ready | None:
        if self.world.disk_fault(self.index) == "refuse":
            self.world.stats.commits_refused += 1
            return self.driver.advance(CommitFailed(to_commit.applied.height, "refused; memory kept"))
        return real_commit(self, to_commit)

    monkeypatch.setattr(SimNode, "commit", forgetful)
    caught = []
    for seed in range(30):
        world = World(seed, SimConfig(byzantine=0, faults=("refused_commit",)))
        world.run()
        if world.stats.commits_refused and (world.violations or world.checker.liveness_failures):
            caught.append(seed)
            break
    assert caught, "30 seeds did not expose a host whose memory runs ahead of its disk"


def test_a_validator_whose_disk_lost_commits_across_a_set_change_votes_with_the_right_set() -> None:
    """Found by the lost-fsync fault: a validator restarted with its signer state two heights
    ahead of its chain built its core with the set of its chain's next height, kept it after
    catching up, and proposed out of turn; with one silent validator the network stalled."""
    world = World(41, SimConfig(byzantine=1, reconfigure=True), byzantine_factory=byzantine_node)
    assert world.plan.lost_fsyncs, "the seed no longer draws a lost fsync: pick another"
    world.run()
    assert world.stats.commits_lost > 0
    assert not world.violations and not world.checker.liveness_failures, world.checker.liveness_failures


# --- the gossip protocol the simulator runs is the node's (`replica/gossip.py`) ---------------


def test_a_gossip_that_keeps_fork_evidence_to_itself_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeds test the replica's gossip code itself: break its rule of passing evidence on, and
    the liveness check finds honest nodes that never learn of a fork."""
    from bilayer.replica.gossip import Gossip

    monkeypatch.setattr(Gossip, "evidence_found", lambda self, proofs, source="": [])
    monkeypatch.setattr(Gossip, "_compare_tips", lambda self, peer, message: [])  # nor share it on a tips exchange
    caught = []
    for seed in range(10):
        world = World(seed, SimConfig(byzantine=0, faults=(), hostile_actions=30))
        world.run()
        if any("lacks evidence" in failure for failure in world.checker.liveness_failures):
            caught.append(seed)
            break
    assert caught, "10 seeds did not expose a gossip that keeps fork evidence to itself"


def test_a_gossip_that_forgets_orphans_parents_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Withheld parents published late reach only one node: without the wants for orphans'
    parents (and the tips exchange) the others never complete the history."""
    from bilayer.replica.gossip import Gossip

    monkeypatch.setattr(Gossip, "orphans_missing", lambda self, ids, now_ms: [])
    monkeypatch.setattr(Gossip, "tick", lambda self, now_ms: [])
    caught = []
    for seed in range(20):
        world = World(seed, SimConfig(byzantine=0, faults=("loss",), hostile_actions=30))
        world.run()
        if world.violations or world.checker.liveness_failures:
            caught.append(seed)
            break
    assert caught, "20 seeds did not expose a gossip that never asks for missing parents"


def test_a_byzantine_node_sending_junk_frames_loses_its_links_and_the_rest_go_on() -> None:
    """Frames that do not decode cost the sender its link (the node's rule, run by every honest
    node here); the link is dialled again later, and nothing stalls."""
    closed = 0
    for seed in range(40):
        world = World(seed, SimConfig(byzantine=1), byzantine_factory=byzantine_node)
        if "garbage" not in world.byzantine_kinds.values():
            continue
        world.run()
        assert not world.violations, (seed, world.violations[:3])
        assert not world.checker.liveness_failures, (seed, world.checker.liveness_failures[:3])
        closed += world.stats.links_closed
        if closed:
            break
    assert closed > 0


def test_a_restarted_node_pulls_what_it_missed_over_its_new_links() -> None:
    """A node that crashed links to its peers again on restart; their tips and heights make it
    fetch the entries and checkpoints it missed while its links were down."""
    world = World(3, SimConfig(byzantine=0, faults=(), entries=0, hostile_authors=0, hostile_actions=0))
    world.start_nodes()
    world.crash_now(3)
    assert all(frozenset((3, other)) not in world.links_up for other in range(3))
    for _ in range(10):
        world._submit()
    world.advance(5_000)
    assert world.nodes[0].chain.height >= 1 and world.nodes[3].chain.height == 0
    world.nodes[3].restart()
    world.advance(10_000)
    assert world.nodes[3].chain.height >= max(1, world.nodes[0].chain.height - 1)
    assert set(world.nodes[0].dag.nodes) <= set(world.nodes[3].dag.nodes)


def test_a_stall_with_more_faulty_validators_than_tolerated_is_reported_apart() -> None:
    """Seed 236: a silent byzantine validator, and a validator whose disk lost the commit of a
    height it alone had recorded (a lost fsync) after signing past it: two faulty of four, more
    than f = 1, and the chain stalls. The campaign reports it apart; it is not a liveness failure."""
    world = World(236, SimConfig(validators=4, byzantine=1), byzantine_factory=byzantine_node)
    world.run()
    assert not world.violations
    assert world.lost_commits and len(world.checker.faulty()) == 2
    assert world.checker.liveness_waived and world.checker.liveness_failures == []


def test_a_stall_within_the_fault_budget_is_a_liveness_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The waiver is only for faults beyond f: with no byzantine node and no lost commit, a node that
    never orders the entries written after the network healed fails the run."""
    from bilayer.replica.gossip import Gossip

    monkeypatch.setattr(Gossip, "stored", lambda self, entries, sources: [])  # nothing is pushed to peers
    monkeypatch.setattr(Gossip, "tick", lambda self, now_ms: [])  # nor pulled on a tips exchange
    world = World(5, SimConfig(byzantine=0, faults=(), hostile_authors=0, hostile_actions=0))
    world.run()
    assert not world.checker.faulty() and not world.checker.liveness_waived
    assert any("did not order" in failure for failure in world.checker.liveness_failures)


def test_a_seed_delivers_the_same_messages_twice_and_another_seed_does_not() -> None:
    config = SimConfig(byzantine=1, hostile_actions=20)
    runs = []
    for seed in (1, 1, 2):
        world = World(seed, config, byzantine_factory=byzantine_node)
        world.run()
        runs.append(world.trace.hexdigest())
    assert runs[0] == runs[1] != runs[2]

"""The Tendermint core: its rules step by step on one core (a toy app), and whole heights on
a network of nodes that each run the replica's finality driver (the simulator's world, with
no faults unless a test makes one): the same driver the node runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bilayer import codec
from bilayer.consensus.core import (
    Broadcast,
    Equivocation,
    FetchEntries,
    HeightApplied,
    Invalid,
    MessageReceived,
    Missing,
    SignerState,
    Start,
    TendermintCore,
    TimeoutFired,
    TimeoutKind,
    Valid,
    Verdict,
)
from bilayer.consensus.messages import (
    NIL,
    Checkpoint,
    Proposal,
    Vote,
    VoteType,
    sign_proposal,
    sign_vote,
    verify_certificate,
)
from bilayer.consensus.validators import Validator, ValidatorSet
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import ENTRY_VERSION, EntryHeader
from bilayer.ledger.operations import Transfer
from bilayer.replica.finality import ConsensusReceived
from bilayer.replica.messages import EntriesMsg, PeerMessage, ProposalMsg, VoteMsg, WantMsg
from bilayer.sim.world import CHAIN_ID, SimConfig, World

CHAIN = "sim"
GENESIS = b"\x00" * 32
E1, E2, E3 = (bytes([0xE0 + i]) * 32 for i in range(3))


# --- one core, scripted: a toy app whose entries are opaque ids -------------------------------


@dataclass
class ToyApp:
    """A node can vote for a checkpoint only when it holds its frontier."""

    me: bytes
    available: set[bytes] = field(default_factory=set)

    def propose_value(self, height: int, prev: Checkpoint | None) -> Checkpoint | None:
        frontier = sorted(self.available)
        if not frontier:
            return None
        return Checkpoint(CHAIN, height, GENESIS, self.me, tuple(frontier), codec.sha256(b""), b"", height)

    def check_value(self, value: Checkpoint) -> Verdict:
        if value.prev_id != GENESIS:
            return Invalid("does not extend")
        missing = tuple(f for f in value.frontier if f not in self.available)
        return Missing(missing) if missing else Valid()

    def has_work(self, height: int) -> bool:
        return bool(self.available)


@dataclass
class ScriptedNode:
    signer: Signer
    core: TendermintCore
    app: ToyApp


class Cluster:
    """Four validators' cores, stepped by hand."""

    def __init__(self, n: int = 4) -> None:
        self.signers = [Signer(bytes([i + 1]) * 32) for i in range(n)]
        self.validators = ValidatorSet(Validator(f"v{i}", s.public_key, 1) for i, s in enumerate(self.signers))
        self.by_key = {s.public_key: i for i, s in enumerate(self.signers)}
        self.nodes = []
        for signer in self.signers:
            app = ToyApp(signer.public_key)
            self.nodes.append(ScriptedNode(signer, TendermintCore(CHAIN, signer, self.validators, app), app))

    def index_of_proposer(self, height: int, round_: int) -> int:
        return self.by_key[self.validators.proposer(height, round_)]


def _scripted_round0_lock(cluster: Cluster, me: int) -> tuple[TendermintCore, Proposal]:
    """Drive node `me` through round 0 of height 1: it locks the proposal, then the round fails."""
    p0 = cluster.index_of_proposer(1, 0)
    others = [i for i in range(4) if i not in (p0, me)]
    proposer_app = cluster.nodes[p0].app
    proposer_app.available.add(E1)
    value = proposer_app.propose_value(1, None)
    assert value is not None
    proposal = sign_proposal(cluster.signers[p0], CHAIN, 1, 0, -1, value)
    core = cluster.nodes[me].core
    cluster.nodes[me].app.available.update([E1, E2])
    core.step(Start())
    actions = core.step(MessageReceived(proposal))
    assert any(isinstance(a, Broadcast) and isinstance(a.message, Vote) and a.message.value_id == value.id
               for a in actions)
    for i in (p0, others[0]):
        core.step(MessageReceived(sign_vote(cluster.signers[i], CHAIN, 1, 0, VoteType.PREVOTE, value.id)))
    assert core.locked_round == 0 and core.locked_value == value
    for i in (p0, others[0]):
        core.step(MessageReceived(sign_vote(cluster.signers[i], CHAIN, 1, 0, VoteType.PRECOMMIT, NIL)))
    return core, proposal


def test_locked_value_is_carried_into_the_next_round() -> None:
    cluster = Cluster(4)
    p1 = cluster.index_of_proposer(1, 1)
    core, proposal = _scripted_round0_lock(cluster, p1)
    actions = core.step(TimeoutFired(TimeoutKind.PRECOMMIT, 1, 0))
    assert core.round == 1
    reproposals = [a.message for a in actions if isinstance(a, Broadcast) and isinstance(a.message, Proposal)]
    assert len(reproposals) == 1
    assert reproposals[0].round == 1 and reproposals[0].valid_round == 0
    assert reproposals[0].value == proposal.value  # not a fresh value, though E2 is waiting


def test_a_locked_validator_prevotes_nil_for_a_different_value() -> None:
    cluster = Cluster(4)
    p1 = cluster.index_of_proposer(1, 1)
    me = next(i for i in range(4) if i not in (p1, cluster.index_of_proposer(1, 0)))
    core, proposal = _scripted_round0_lock(cluster, me)
    core.step(TimeoutFired(TimeoutKind.PRECOMMIT, 1, 0))
    other_app = cluster.nodes[p1].app
    other_app.available.update([E2])
    other = other_app.propose_value(1, None)
    assert other is not None and other.id != proposal.value.id
    actions = core.step(MessageReceived(sign_proposal(cluster.signers[p1], CHAIN, 1, 1, -1, other)))
    prevotes = [a.message for a in actions if isinstance(a, Broadcast) and isinstance(a.message, Vote)]
    assert [v.value_id for v in prevotes] == [NIL]


def test_messages_from_outsiders_and_wrong_proposers_are_ignored() -> None:
    cluster = Cluster(4)
    outsider = Signer(b"\x99" * 32)
    core = cluster.nodes[0].core
    fake_votes = [sign_vote(outsider, CHAIN, 1, 0, VoteType.PREVOTE, b"\x01" * 32) for _ in range(3)]
    for vote in fake_votes:
        core.step(MessageReceived(vote))
    assert all(not book.prevotes for book in core._rounds.values())
    # a validator that is not the proposer of (1, 0) cannot make a proposal count
    not_proposer = next(i for i in range(4) if i != cluster.index_of_proposer(1, 0))
    app = cluster.nodes[not_proposer].app
    app.available.add(E1)
    value = app.propose_value(1, None)
    assert value is not None
    bogus = sign_proposal(cluster.signers[not_proposer], CHAIN, 1, 0, -1, value)
    core.step(MessageReceived(bogus))
    assert core._book(0).proposal is None
    # a vote with a forged signature is ignored too
    real = sign_vote(cluster.signers[1], CHAIN, 1, 0, VoteType.PREVOTE, b"\x02" * 32)
    forged = Vote(real.chain, real.height, real.round, real.type, b"\x03" * 32, real.validator, real.signature)
    core.step(MessageReceived(forged))
    assert all(not book.prevotes for book in core._rounds.values())


def test_double_vote_is_reported_as_equivocation() -> None:
    cluster = Cluster(4)
    core = cluster.nodes[0].core
    byzantine = cluster.signers[2]
    first = sign_vote(byzantine, CHAIN, 1, 0, VoteType.PREVOTE, b"\x01" * 32)
    second = sign_vote(byzantine, CHAIN, 1, 0, VoteType.PREVOTE, NIL)
    core.step(MessageReceived(first))
    actions = core.step(MessageReceived(second))
    evidence = [a for a in actions if isinstance(a, Equivocation)]
    assert len(evidence) == 1 and evidence[0].first == first and evidence[0].second == second




# --- whole heights: nodes running the replica's finality driver -----------------------------


def quiet_world(validators: int = 4) -> World:
    """A world with no faults, no background traffic and no hostile authors: tests add entries."""
    world = World(1, SimConfig(validators=validators, faults=(), entries=0, hostile_authors=0, hostile_actions=0))
    world.start_nodes()
    return world


def submit_to(world: World, nodes: list[int], seq: int = 0) -> bytes:
    """A transfer by the first user, handed to `nodes` (a client writing to several nodes)."""
    user = world.users[0]
    chain = world.user_chains.setdefault(user.public_key, [])
    parents = (chain[-1],) if chain else (world.genesis.root,)
    op = Transfer(asset="SIM", amount=1 + seq, to=world.users[1].public_key)
    header = EntryHeader(ENTRY_VERSION, CHAIN_ID, user.public_key, len(chain), parents, world.now, "transfer",
                         codec.encode(op), codec.sha256(b""), 0, bytes(8))
    entry_id = codec.sha256(codec.encode(header))
    for index in nodes:
        world.nodes[index].receive_entry(entry_id, header)
    chain.append(entry_id)
    return entry_id


@contextmanager
def recording(world: World) -> Iterator[dict[int, list[PeerMessage | bytes]]]:
    """Every message each node sends, by sender."""
    sent: dict[int, list[PeerMessage | bytes]] = {i: [] for i in range(len(world.nodes))}
    real_send = world.send

    def send(src: int, dst: int, message: PeerMessage | bytes) -> None:
        sent[src].append(message)
        real_send(src, dst, message)

    world.send = send  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        world.send = real_send  # type: ignore[method-assign]


def consensus_sent(sent: list[PeerMessage | bytes]) -> list[Proposal | Vote]:
    return [m.proposal if isinstance(m, ProposalMsg) else m.vote for m in sent if isinstance(m, ProposalMsg | VoteMsg)]


def heights(world: World) -> list[int]:
    return [n.chain.height for n in world.nodes]


def proposer_of(world: World, height: int, round_: int) -> int:
    key = world.nodes[0].chain.validators_at(height).proposer(height, round_)
    return next(i for i, n in enumerate(world.nodes) if n.signer.public_key == key)


def test_happy_path_all_decide_the_same_checkpoint_with_a_valid_certificate() -> None:
    world = quiet_world()
    entry = submit_to(world, [0, 1, 2, 3])
    world.advance(2_000)
    assert heights(world) == [1, 1, 1, 1] and not world.violations
    assert len({n.finalized[0].checkpoint.id for n in world.nodes}) == 1
    finalized = world.nodes[0].finalized[0]
    assert finalized.checkpoint.frontier == (entry,) and all(entry in n.chain.ordered for n in world.nodes)
    assert finalized.certificate.round == 0
    verify_certificate(CHAIN_ID, finalized.checkpoint, finalized.certificate, world.nodes[0].chain.validators_at(1))


def test_consecutive_heights_chain_to_each_other() -> None:
    world = quiet_world()
    for k in range(3):
        submit_to(world, [0, 1, 2, 3], seq=k)
        world.advance(2_000 * (k + 1))
    assert heights(world) == [3, 3, 3, 3]
    chain = [f.checkpoint for f in world.nodes[0].finalized]
    assert [c.height for c in chain] == [1, 2, 3]
    assert chain[1].prev_id == chain[0].id and chain[2].prev_id == chain[1].id


def test_idle_dag_makes_no_checkpoints_and_no_round_churn() -> None:
    world = quiet_world()
    with recording(world) as sent:
        world.advance(30_000)
    assert heights(world) == [0, 0, 0, 0]
    assert all(n.core is not None and n.core.round == 0 for n in world.nodes)
    assert all(not consensus_sent(messages) for messages in sent.values())


def test_silent_proposer_leads_to_a_round_change() -> None:
    world = quiet_world()
    silent = proposer_of(world, 1, 0)
    world.nodes[silent].crash()
    live = [n for i, n in enumerate(world.nodes) if i != silent]
    submit_to(world, [n.index for n in live])
    world.advance(10_000)
    assert all(n.chain.height == 1 for n in live)
    assert live[0].finalized[0].certificate.round >= 1
    assert len({n.finalized[0].checkpoint.id for n in live}) == 1


def test_late_and_duplicate_messages_change_nothing() -> None:
    world = quiet_world()
    with recording(world) as sent:
        submit_to(world, [0, 1, 2, 3])
        world.advance(2_000)
    assert heights(world) == [1, 1, 1, 1]
    everything = [m for messages in sent.values() for m in consensus_sent(messages)]
    assert everything
    for _ in range(2):
        for message in everything:
            for node in world.nodes:
                node.step(ConsensusReceived(message))
    world.advance(4_000)
    assert heights(world) == [1, 1, 1, 1] and world.stats.equivocations_seen == 0 and not world.violations


def test_missing_entries_are_fetched_before_voting_for_a_proposal() -> None:
    world = quiet_world()
    lacking = (proposer_of(world, 1, 0) + 1) % 4
    real_send = world.send

    def no_gossip_to_lacking(src: int, dst: int, message: PeerMessage | bytes) -> None:
        if not (dst == lacking and isinstance(message, EntriesMsg) and world.now < 100):
            real_send(src, dst, message)

    world.send = no_gossip_to_lacking  # type: ignore[method-assign]
    with recording(world) as sent:
        entry = submit_to(world, [i for i in range(4) if i != lacking])
        world.advance(50)
        assert not world.nodes[lacking].dag.holds(entry)
        assert not any(m.value_id != NIL for m in consensus_sent(sent[lacking]) if isinstance(m, Vote))
        world.advance(3_000)
    assert any(isinstance(m, WantMsg) and entry in m.ids for m in sent[lacking])  # it asked for the entry
    assert heights(world) == [1, 1, 1, 1] and world.nodes[lacking].dag.holds(entry)


def test_restarted_validator_never_signs_conflicting_votes() -> None:
    world = quiet_world()
    victim = (proposer_of(world, 1, 0) + 1) % 4
    with recording(world) as sent:
        submit_to(world, [0, 1, 2, 3])
        for _ in range(1000):  # bounded: the victim prevotes within the first rounds
            world.advance(world.now + 1)
            if any(isinstance(m, Vote) for m in consensus_sent(sent[victim])):
                break
        before = [m for m in consensus_sent(sent[victim]) if isinstance(m, Vote)]
        assert before
        world.nodes[victim].crash()
        world.nodes[victim].restart()  # from what its disk holds: the signer state persisted before sending
        core = world.nodes[victim].core
        assert core is not None
        after = core.snapshot().votes
        for vote in before:
            assert all(v.value_id == vote.value_id for v in after if (v.round, v.type) == (vote.round, vote.type))
        world.advance(10_000)
    assert heights(world) == [1, 1, 1, 1] and not world.violations
    slots: dict[tuple[int, int, int], bytes] = {}
    for vote in (m for m in consensus_sent(sent[victim]) if isinstance(m, Vote)):
        assert slots.setdefault((vote.height, vote.round, vote.type), vote.value_id) == vote.value_id


def test_restart_resumes_from_persisted_round_and_lock() -> None:
    cluster = Cluster(4)
    node = cluster.nodes[0]
    state = node.core.snapshot()
    restored = TendermintCore(CHAIN, node.signer, cluster.validators, node.app, state)
    assert restored.snapshot() == state
    actions = restored.step(TimeoutFired(TimeoutKind.REBROADCAST, 1, 0))
    assert all(isinstance(a, Broadcast) or not isinstance(a, FetchEntries) for a in actions)


def test_a_core_resumed_ahead_of_its_chain_takes_the_set_of_its_height_once_the_chain_catches_up() -> None:
    cluster = Cluster()
    node = cluster.nodes[0]
    stale = ValidatorSet(cluster.validators.members[:3])
    core = TendermintCore(CHAIN, node.signer, stale, node.app, SignerState(height=3, round=0, phase=0))
    core.step(HeightApplied(1, Checkpoint(CHAIN, 1, GENESIS, node.signer.public_key, (), b"", b"", 1)))
    assert core.validators is stale and core.height == 3  # a height far behind changes nothing
    core.step(HeightApplied(2, Checkpoint(CHAIN, 2, GENESIS, node.signer.public_key, (), b"", b"", 2),
                            cluster.validators))
    assert core.validators is cluster.validators and core.height == 3


@dataclass
class BehindApp(ToyApp):
    """Judges values against a chain that is behind until it caught up."""

    behind: bool = True

    def check_value(self, value: Checkpoint) -> Verdict:
        return Invalid("does not extend the last checkpoint") if self.behind else super().check_value(value)


def test_a_value_judged_while_the_chain_was_behind_is_judged_again_once_it_caught_up() -> None:
    """Found by the simulator's lost-fsync fault: a validator resumed ahead of its chain kept the
    verdict 'does not extend' for the round's value after its chain caught up, and never
    precommitted it; with one silent validator the network stalled."""
    cluster = Cluster()
    proposer = cluster.index_of_proposer(3, 0)
    me = (proposer + 1) % 4
    app = BehindApp(cluster.signers[me].public_key, {E1})
    core = TendermintCore(CHAIN, cluster.signers[me], cluster.validators, app, SignerState(height=3, round=0, phase=0))
    core.step(Start())
    value = Checkpoint(CHAIN, 3, GENESIS, cluster.signers[proposer].public_key, (E1,), codec.sha256(b""), b"", 3)
    core.step(MessageReceived(sign_proposal(cluster.signers[proposer], CHAIN, 3, 0, -1, value)))
    for i in range(4):
        if i != me:
            core.step(MessageReceived(sign_vote(cluster.signers[i], CHAIN, 3, 0, VoteType.PREVOTE, value.id)))
    assert core.locked_value is None  # a quorum prevoted it, but this core judged it against a chain behind
    app.behind = False
    actions = core.step(HeightApplied(2, Checkpoint(CHAIN, 2, GENESIS, cluster.signers[0].public_key, (), b"", b"", 2)))
    precommits = [a.message for a in actions if isinstance(a, Broadcast) and isinstance(a.message, Vote)
                  and a.message.type == VoteType.PRECOMMIT]
    assert [v.value_id for v in precommits] == [value.id] and core.locked_value == value

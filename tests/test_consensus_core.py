"""The Tendermint core under scripted event sequences (a deterministic toy network)."""

from __future__ import annotations

from bilayer.consensus.core import (
    Broadcast,
    Equivocation,
    FetchEntries,
    MessageReceived,
    Start,
    TendermintCore,
    TimeoutFired,
    TimeoutKind,
)
from bilayer.consensus.messages import (
    NIL,
    Proposal,
    Vote,
    VoteType,
    sign_proposal,
    sign_vote,
    verify_certificate,
)
from bilayer.keys.signing import Signer

from .consensus_harness import CHAIN, Cluster

E1, E2, E3 = (bytes([0xE0 + i]) * 32 for i in range(3))


def test_happy_path_all_decide_the_same_checkpoint_with_a_valid_certificate() -> None:
    cluster = Cluster(4)
    cluster.start()
    cluster.add_entries([E1, E2])
    cluster.run(until_ms=2_000)
    assert cluster.heights() == [1, 1, 1, 1]
    decided = {n.decided[0].checkpoint.id for n in cluster.nodes}
    assert len(decided) == 1
    finalized = cluster.nodes[0].decided[0]
    assert finalized.checkpoint.frontier == (E1, E2)
    assert finalized.certificate.round == 0
    verify_certificate(CHAIN, finalized.checkpoint, finalized.certificate, cluster.validators)


def test_consecutive_heights_chain_to_each_other() -> None:
    cluster = Cluster(4)
    cluster.start()
    for k, entry in enumerate([E1, E2, E3]):
        cluster.add_entries([entry])
        cluster.run(until_ms=2_000 * (k + 1))
    assert cluster.heights() == [3, 3, 3, 3]
    chain = [f.checkpoint for f in cluster.nodes[0].decided]
    assert [c.height for c in chain] == [1, 2, 3]
    assert chain[1].prev_id == chain[0].id and chain[2].prev_id == chain[1].id


def test_idle_dag_makes_no_checkpoints_and_no_round_churn() -> None:
    cluster = Cluster(4)
    cluster.start()
    cluster.run(until_ms=30_000)
    assert cluster.heights() == [0, 0, 0, 0]
    assert all(n.core.round == 0 for n in cluster.nodes)
    assert all(not n.sent for n in cluster.nodes)


def test_silent_proposer_leads_to_a_round_change() -> None:
    cluster = Cluster(4)
    silent = cluster.index_of_proposer(1, 0)
    cluster.down.add(silent)
    cluster.start()
    cluster.add_entries([E1])
    cluster.run(until_ms=10_000)
    live = [n for i, n in enumerate(cluster.nodes) if i != silent]
    assert all(len(n.decided) == 1 for n in live)
    assert live[0].decided[0].certificate.round >= 1
    assert len({n.decided[0].checkpoint.id for n in live}) == 1


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


def test_late_and_duplicate_messages_change_nothing() -> None:
    cluster = Cluster(4)
    cluster.start()
    cluster.add_entries([E1])
    cluster.run(until_ms=2_000)
    assert cluster.heights() == [1, 1, 1, 1]
    everything = [m for n in cluster.nodes for m in n.sent]
    for _ in range(2):
        for message in everything:
            for i in range(4):
                actions = cluster.feed(i, MessageReceived(message))
                assert not any(isinstance(a, Equivocation) for a in actions)
    cluster.run(until_ms=4_000)
    assert cluster.heights() == [1, 1, 1, 1]


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


def test_missing_entries_are_fetched_before_voting_for_a_proposal() -> None:
    cluster = Cluster(4)
    proposer = cluster.index_of_proposer(1, 0)
    lacking = (proposer + 1) % 4
    cluster.start()
    cluster.add_entries([E1], to=[i for i in range(4) if i != lacking])
    cluster.run(until_ms=50)
    node = cluster.nodes[lacking]
    assert node.fetches >= 1
    assert not any(isinstance(m, Vote) and m.value_id != NIL for m in node.sent)
    cluster.add_entries([E1], to=[lacking])
    cluster.run(until_ms=3_000)
    assert cluster.heights() == [1, 1, 1, 1]


def test_restarted_validator_never_signs_conflicting_votes() -> None:
    cluster = Cluster(4)
    cluster.start()
    cluster.add_entries([E1])
    victim = (cluster.index_of_proposer(1, 0) + 1) % 4
    # run until the victim prevoted, then crash it before anything else is delivered
    for _ in range(1000):
        cluster.run(until_ms=cluster.now + 1)
        if any(isinstance(m, Vote) for m in cluster.nodes[victim].sent):
            break
    before = [m for m in cluster.nodes[victim].sent if isinstance(m, Vote)]
    cluster.down.add(victim)
    cluster.restart(victim)
    after = cluster.nodes[victim].core.snapshot().votes
    for vote in before:
        same_slot = [v for v in after if (v.round, v.type) == (vote.round, vote.type)]
        assert all(v.value_id == vote.value_id for v in same_slot)
    cluster.run(until_ms=10_000)
    assert cluster.heights() == [1, 1, 1, 1]  # the others decided; the victim caught up by sync
    votes = [m for m in cluster.nodes[victim].sent if isinstance(m, Vote)]
    slots: dict[tuple[int, int, int], bytes] = {}
    for vote in votes:
        assert slots.setdefault((vote.height, vote.round, vote.type), vote.value_id) == vote.value_id


def test_restart_resumes_from_persisted_round_and_lock() -> None:
    cluster = Cluster(4)
    node = cluster.nodes[0]
    state = node.core.snapshot()
    restored = TendermintCore(CHAIN, node.signer, cluster.validators, node.app, state)
    assert restored.snapshot() == state
    actions = restored.step(TimeoutFired(TimeoutKind.REBROADCAST, 1, 0))
    assert all(isinstance(a, Broadcast) or not isinstance(a, FetchEntries) for a in actions)

"""The gossip and link protocol (`replica/gossip.py`), one rule at a time, without I/O: the
node's peer links and the simulator both run this machine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bilayer import codec
from bilayer.consensus.messages import FinalizedCheckpoint
from bilayer.ledger.dag import NO_FORKS, fork_digest_with
from bilayer.ledger.entry import EntryHeader, SignedEntry, Tombstone, WithheldEntry
from bilayer.ledger.operations import Data
from bilayer.replica.gossip import (
    MAX_CHECKPOINTS_ANSWER,
    ORPHAN_FETCH_DELAY_MS,
    PEERS_INTERVAL_MS,
    Action,
    Close,
    Fetch,
    Gossip,
    Learn,
    Send,
    TakeConsensus,
    TakeEntries,
    TakeEvidence,
    Upkeep,
    Wake,
    peer_source,
)
from bilayer.replica.messages import (
    MAX_IDS,
    EntriesMsg,
    EvidenceMsg,
    ForkProof,
    PeersMsg,
    TipsMsg,
    VoteMsg,
    WantCheckpointsMsg,
    WantMsg,
    WithheldMsg,
    encode_message,
)
from tests.support.builders import make_entry, seeded_signer
from tests.support.chain import GENESIS

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32
AUTHOR = seeded_signer(7)


@dataclass
class Ledger:
    """What the machine reads of a replica, held in dicts."""

    entries: dict[bytes, SignedEntry | WithheldEntry]
    tip_ids: list[bytes]
    digest: bytes = NO_FORKS
    proofs: tuple[ForkProof, ...] = ()
    at_height: int = 0
    checkpoints: tuple[FinalizedCheckpoint, ...] = ()
    asked: list[tuple[int, int]] = field(default_factory=list)

    def tips(self) -> Sequence[bytes]:
        return self.tip_ids

    def holds(self, entry_id: bytes) -> bool:
        return entry_id in self.entries

    def lookup(self, ids: Sequence[bytes]) -> list[SignedEntry | WithheldEntry]:
        return [self.entries[i] for i in ids if i in self.entries]

    def fork_digest(self) -> bytes:
        return self.digest

    def fork_proofs(self, limit: int) -> Sequence[ForkProof]:
        return self.proofs[:limit]

    def height(self) -> int:
        return self.at_height

    def checkpoints_from(self, start: int, count: int) -> list[FinalizedCheckpoint]:
        self.asked.append((start, count))
        return list(self.checkpoints[start - 1:start - 1 + count])


@dataclass(frozen=True)
class Stored:
    signed: SignedEntry
    tombstone: Tombstone | None = None


def entry(seq: int = 0, text: str = "x") -> tuple[bytes, SignedEntry]:
    return make_entry(AUTHOR, GENESIS, seq=seq, op=Data(media_type="text/plain"), payload=text.encode(), time_ms=1,
                      pow_bits=0)


def linked(ledger: Ledger, *peers: bytes) -> Gossip:
    gossip = Gossip(ledger)
    for peer in peers:
        gossip.peer_connected(peer, f"10.0.0.{peer[0] - 96}:7000")
    return gossip


def sent(actions: list[Action]) -> list[tuple[bytes, object]]:
    return [(a.peer, a.message) for a in actions if isinstance(a, Send)]


def fork() -> ForkProof:
    (_, first), (_, second) = entry(0, "one"), entry(0, "two")
    return ForkProof(first.header, first.signature, second.header, second.signature)


# --- push ----------------------------------------------------------------------------------


def test_a_stored_batch_goes_to_every_peer_but_the_one_it_came_from() -> None:
    gossip = linked(Ledger({}, []), A, B, C)
    (_, from_a), (_, from_client) = entry(0, "a"), entry(1, "client")
    actions = gossip.stored([Stored(from_a), Stored(from_client)], [peer_source(A), "api:1.2.3.4"])
    assert sent(actions) == [(A, EntriesMsg([from_client])), (B, EntriesMsg([from_a, from_client])),
                             (C, EntriesMsg([from_a, from_client]))]


def test_an_entry_stored_without_its_payload_is_not_pushed() -> None:
    gossip = linked(Ledger({}, []), A)
    _, signed = entry()
    tombstone = Tombstone("proposal:1", "court_order", 5, 2)
    assert gossip.stored([Stored(signed, tombstone)], ["api"]) == []


def test_a_gone_peer_is_sent_nothing() -> None:
    gossip = linked(Ledger({}, []), A, B)
    gossip.peer_gone(A)
    _, signed = entry()
    assert [peer for peer, _ in sent(gossip.stored([Stored(signed)], ["api"]))] == [B]


# --- pull: wants, tips, checkpoints ----------------------------------------------------------


def test_orphans_parents_are_asked_for_after_the_delay_and_only_those_still_missing() -> None:
    ledger = Ledger({}, [])
    gossip = linked(ledger, A, B)
    arrives, stays_missing = b"p" * 32, b"q" * 32
    assert gossip.orphans_missing([arrives, stays_missing], now_ms=1000) == [Wake(ORPHAN_FETCH_DELAY_MS)]
    assert gossip.orphans_missing([stays_missing], now_ms=1010) == []  # one wake is pending already
    assert gossip.wake(1000 + ORPHAN_FETCH_DELAY_MS - 1) == [Wake(1)]  # early: nothing asked yet
    ledger.entries[arrives] = entry()[1]  # gossip brought it meanwhile
    assert gossip.wake(1000 + ORPHAN_FETCH_DELAY_MS) == [Fetch((stays_missing,))]
    assert gossip.wake(5000) == []  # asked once; the tick's upkeep asks again


def test_a_want_reaches_every_peer_in_messages_of_at_most_max_ids() -> None:
    gossip = linked(Ledger({}, []), A, B)
    ids = [i.to_bytes(32, "big") for i in range(MAX_IDS + 3)]
    assert sent(gossip.want(ids)) == [(A, WantMsg(ids[:MAX_IDS])), (B, WantMsg(ids[:MAX_IDS])),
                                      (A, WantMsg(ids[MAX_IDS:])), (B, WantMsg(ids[MAX_IDS:]))]


def test_a_want_is_answered_with_entries_and_withheld_entries_only_to_the_asker() -> None:
    (held_id, held), (gone_id, gone) = entry(0, "kept"), entry(1, "redacted")
    withheld = WithheldEntry(gone.header, gone.signature, Tombstone("proposal:1", "court_order", 5, 2))
    gossip = linked(Ledger({held_id: held, gone_id: withheld}, []), A, B)
    assert sent(gossip.received(A, encode_message(WantMsg([held_id, gone_id, b"z" * 32])))) == [
        (A, EntriesMsg([held])), (A, WithheldMsg([withheld]))]


def test_tips_pull_what_the_peer_holds_and_this_replica_lacks() -> None:
    held_id, held = entry()
    lacking = b"n" * 32
    ledger = Ledger({held_id: held}, [held_id], at_height=3)
    gossip = linked(ledger, A)
    actions = gossip.received(A, encode_message(TipsMsg([held_id, lacking], height=7, forks=NO_FORKS)))
    assert sent(actions) == [(A, WantMsg([lacking])), (A, WantCheckpointsMsg(4, MAX_CHECKPOINTS_ANSWER))]
    assert gossip.peers[A].height == 7
    # a peer that holds no more than this replica is asked for nothing
    assert gossip.received(A, encode_message(TipsMsg([held_id], height=3, forks=NO_FORKS))) == []


def test_tips_with_another_digest_of_forks_bring_the_peer_this_replicas_evidence() -> None:
    proof = fork()
    header = codec.decode(proof.first_header, EntryHeader)
    ledger = Ledger({}, [], digest=fork_digest_with(NO_FORKS, header.author, header.seq), proofs=(proof,))
    gossip = linked(ledger, A)
    assert sent(gossip.received(A, encode_message(TipsMsg([], 0, NO_FORKS)))) == [(A, EvidenceMsg([proof]))]
    assert gossip.received(A, encode_message(TipsMsg([], 0, ledger.digest))) == []  # same forks: nothing


def test_the_tick_sends_tips_to_every_peer_and_the_peers_addresses_every_exchange_interval() -> None:
    held_id, held = entry()
    gossip = linked(Ledger({held_id: held}, [held_id], at_height=2), A, B)
    tips = TipsMsg([held_id], 2, NO_FORKS)
    assert gossip.tick(0) == [Upkeep(), Send(A, tips), Send(B, tips)]
    assert gossip.tick(PEERS_INTERVAL_MS) == [Upkeep(), Send(A, tips), Send(B, tips),
                                              Send(A, PeersMsg(["10.0.0.2:7000"])),
                                              Send(B, PeersMsg(["10.0.0.1:7000"]))]


def test_a_new_peer_hears_the_tips_and_the_other_peers_addresses_but_not_its_own() -> None:
    gossip = linked(Ledger({}, []), A, B)
    assert sent(gossip.peer_connected(C, "0.0.0.0:7000")) == [
        (C, TipsMsg([], 0, NO_FORKS)), (C, PeersMsg(["10.0.0.1:7000", "10.0.0.2:7000"]))]
    assert gossip.received(A, encode_message(PeersMsg(["10.9.9.9:1"]))) == [Learn(("10.9.9.9:1",))]


def test_checkpoints_go_to_peers_behind_and_catch_up_asks_two_peers_ahead() -> None:
    gossip = linked(Ledger({}, []), A, B, C)
    for peer, height in ((A, 5), (B, 9), (C, 9)):
        gossip.received(peer, encode_message(TipsMsg([], height, NO_FORKS)))
    assert [peer for peer, _ in sent(gossip.request_checkpoints(8, 50))] == [B, C]
    assert sent(gossip.request_checkpoints(20, 50)) == [(A, WantCheckpointsMsg(20, 50)),
                                                        (B, WantCheckpointsMsg(20, 50))]  # none ahead: any two


def test_a_peer_asking_for_checkpoints_gets_those_held_and_at_most_the_answer_limit() -> None:
    ledger = Ledger({}, [])
    gossip = linked(ledger, A)
    gossip.received(A, encode_message(WantCheckpointsMsg(3, 10**6)))
    gossip.received(A, encode_message(WantCheckpointsMsg(1, -5)))
    assert ledger.asked == [(3, MAX_CHECKPOINTS_ANSWER), (1, 0)]


# --- evidence ------------------------------------------------------------------------------


def test_fork_evidence_is_passed_on_once_to_every_peer_but_its_source() -> None:
    gossip = linked(Ledger({}, []), A, B, C)
    proof = fork()
    assert sent(gossip.evidence_found([proof], peer_source(B))) == [(A, EvidenceMsg([proof])),
                                                                    (C, EvidenceMsg([proof]))]
    assert gossip.evidence_found([proof], peer_source(A)) == []
    assert gossip.evidence_found([proof]) == []


def test_evidence_a_peer_sends_goes_to_ingestion() -> None:
    gossip = linked(Ledger({}, []), A)
    proof = fork()
    assert gossip.received(A, encode_message(EvidenceMsg([proof]))) == [TakeEvidence(A, (proof,))]


# --- link hygiene --------------------------------------------------------------------------


def test_a_frame_that_does_not_decode_costs_the_peer_its_link() -> None:
    gossip = linked(Ledger({}, []), A, B)
    actions = gossip.received(A, b"\x92\xa5junk!")
    assert len(actions) == 1 and isinstance(actions[0], Close)
    assert actions[0].peer == A and actions[0].code == "bad_encoding"
    assert A not in gossip.peers
    _, signed = entry()
    assert [peer for peer, _ in sent(gossip.stored([Stored(signed)], ["api"]))] == [B]


def test_a_message_over_its_limits_costs_the_peer_its_link() -> None:
    gossip = linked(Ledger({}, []), A)
    actions = gossip.received(A, encode_message(WantMsg([bytes(32)] * (MAX_IDS + 1))))
    assert [type(a) for a in actions] == [Close] and A not in gossip.peers


def test_entries_from_a_peer_go_to_ingestion() -> None:
    gossip = linked(Ledger({}, []), A)
    _, signed = entry()
    assert gossip.received(A, encode_message(EntriesMsg([signed]))) == [TakeEntries(A, (signed,))]


def test_consensus_is_taken_only_from_a_validators_own_link() -> None:
    from bilayer.consensus.messages import VoteType, sign_vote

    vote = sign_vote(AUTHOR, GENESIS.chain_id, 1, 0, VoteType.PREVOTE, bytes(32))
    gossip = linked(Ledger({}, []), A, B)
    gossip.validator_keys = {A}
    frame = encode_message(VoteMsg(vote))
    assert gossip.received(B, frame) == []
    assert gossip.received(A, frame) == [TakeConsensus(vote)]
    assert sent(gossip.consensus(vote)) == [(A, VoteMsg(vote))]  # and spoken only to validators

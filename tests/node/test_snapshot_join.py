"""Serving and joining by snapshot in one process: offers proven from the genesis (and refused
when tampered with), chunks served from a node's store (rate-limited, pruned versions refused
with a code), and a node that joins from a peer's store, drops a hostile peer, and then
executes the next checkpoint to the same state root as the peer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from bilayer import codec
from bilayer.audit.verify import ValidatorChain
from bilayer.consensus.messages import FinalizedCheckpoint
from bilayer.errors import BilayerError
from bilayer.execution.smt_sync import ChunkRequest, Subtree, encode_request, leaves
from bilayer.node.chain import Chain
from bilayer.node.ingest import Ingest
from bilayer.node.metrics import NodeMetrics
from bilayer.node.snapshot_join import (
    MAX_SERVED_NODES,
    OFFER_KEY,
    ServeReader,
    SnapshotClient,
    SnapshotJoin,
    SnapshotServer,
    make_offer,
    restored_leaves,
    verify_offer,
)
from bilayer.node.state_store import StateStore
from bilayer.node.storage import Storage
from bilayer.replica.messages import ChunkMsg, ChunkWantMsg, PeerMessage, SnapshotOfferMsg, SnapshotOfferWantMsg
from tests.support.builders import make_entry, transfer_to
from tests.support.chain import ALICE, BOB, CAROL, GENESIS, GENESIS_TIME, Node, S, finalize, next_checkpoint, open_node

PEER = b"\x05" * 32
JOINER = b"\x06" * 32


def build_source(path: Path) -> tuple[Node, FinalizedCheckpoint, list[tuple[bytes, object]]]:
    """Heights 1..4 applied; returns the node, checkpoint 5 (not applied) and every entry."""
    node = open_node(path)
    late = make_entry(ALICE, GENESIS, seq=2, parents=[S.pay[0]], op=transfer_to(BOB, 3), time_ms=GENESIS_TIME + 2)
    later = make_entry(ALICE, GENESIS, seq=3, parents=[late[0]], op=transfer_to(BOB, 4), time_ms=GENESIS_TIME + 3)
    entries = [S.fund, S.overspend, S.spend, S.pay, late, later]
    node.add(*entries)
    for frontier in ([S.fund[0]], [S.spend[0]], [S.pay[0]], [late[0]]):
        node.apply(finalize(next_checkpoint(node.chain, frontier)))
    return node, finalize(next_checkpoint(node.chain, [later[0]])), entries


def offer_of(path: Path) -> SnapshotOfferMsg:
    reader = ServeReader(path)
    try:
        return make_offer(reader)
    finally:
        reader.close()


def test_an_offer_proves_itself_from_the_genesis_and_a_tampered_one_is_refused_with_a_code(tmp_path: Path) -> None:
    source, _, _ = build_source(tmp_path / "source.sqlite")
    offer = offer_of(source.path)
    verified = verify_offer(GENESIS, PEER, offer)
    assert verified.finalized.checkpoint.height == 4
    assert verified.target.version == 3 and verified.target.root_hash == source.storage.checkpoint(3).state_root
    assert offer.finalized is not None and offer.previous is not None

    unsigned = msgspec.structs.replace(offer.finalized, certificate=msgspec.structs.replace(
        offer.finalized.certificate, signatures=offer.finalized.certificate.signatures[:2]))
    chain = codec.decode(offer.validators, ValidatorChain)
    forged_count = msgspec.structs.replace(chain, count=msgspec.structs.replace(chain.count, value=codec.encode(2)))
    for tampered, code in [
        (msgspec.structs.replace(offer, finalized=unsigned), "certificate_no_quorum"),
        (msgspec.structs.replace(offer, previous=source_checkpoint(source, 2)), "checkpoint_link_invalid"),
        (msgspec.structs.replace(offer, validators=b"\x01garbage"), "bad_encoding"),
        (msgspec.structs.replace(offer, validators=codec.encode(forged_count)), "validator_chain_incomplete"),
        (SnapshotOfferMsg(code="state_version_pruned"), "snapshot_source_unavailable"),
    ]:
        with pytest.raises(BilayerError) as refused:
            verify_offer(GENESIS, PEER, tampered)
        assert refused.value.code == code
    source.storage.close()


def source_checkpoint(node: Node, height: int) -> FinalizedCheckpoint:
    stored = node.storage.checkpoint(height)
    assert stored is not None
    return codec.decode(stored.finalized, FinalizedCheckpoint)


def test_a_chain_below_two_heights_offers_nothing(tmp_path: Path) -> None:
    node = open_node(tmp_path / "young.sqlite")
    node.add(S.fund)
    node.apply(finalize(next_checkpoint(node.chain, [S.fund[0]])))
    assert offer_of(node.path).code == "snapshot_source_unavailable"
    node.storage.close()


def serve(server: SnapshotServer, messages: list[ChunkWantMsg | SnapshotOfferWantMsg], count: int) -> list[PeerMessage]:
    """Hand `messages` to `server` as PEER's, and gather `count` answers (bounded wait)."""
    answers: list[PeerMessage] = []

    async def run() -> None:
        server.send = lambda peer, answer: answers.append(answer) is None
        for message in messages:
            server.handle(PEER, message)
        for _ in range(200):
            if len(answers) >= count:
                return
            await asyncio.sleep(0.02)

    asyncio.run(run())
    return answers


def test_chunks_are_served_for_retained_versions_refused_when_pruned_and_limited_per_peer(tmp_path: Path) -> None:
    source, _, _ = build_source(tmp_path / "source.sqlite")
    source.storage.prune_state(3)  # versions 0..2 pruned
    request = encode_request(ChunkRequest((Subtree(b"", None),), 100))
    server = SnapshotServer(source.path, lambda peer, message: True, NodeMetrics(), rate=1, burst=3)
    try:
        answers = serve(server, [ChunkWantMsg(1, 3, request), ChunkWantMsg(2, 1, request),
                                 ChunkWantMsg(3, 3, b"\x00not a request"), ChunkWantMsg(4, 3, request)], 4)
        by_nonce = {a.nonce: a for a in answers if isinstance(a, ChunkMsg)}
        assert by_nonce[1].chunk and not by_nonce[1].code
        assert by_nonce[2].code == "state_version_pruned"
        assert by_nonce[3].code == "snapshot_request_invalid"
        assert by_nonce[4].code == "rate_limited"  # a burst of 3, then one a second
    finally:
        server.close()
    roomy = SnapshotServer(source.path, lambda peer, message: True, NodeMetrics(), rate=100, burst=100)
    try:
        too_big = encode_request(ChunkRequest((Subtree(b"", None),), MAX_SERVED_NODES + 1))
        assert serve(roomy, [ChunkWantMsg(5, 3, too_big)], 1) == [ChunkMsg(5, 3, code="snapshot_request_invalid")]
    finally:
        roomy.close()
        source.storage.close()


def test_a_node_joins_from_a_peer_store_drops_a_hostile_peer_and_executes_the_next_checkpoint(
        tmp_path: Path) -> None:
    source, fifth, entries = build_source(tmp_path / "source.sqlite")
    storage = Storage(tmp_path / "joiner.sqlite")
    assert SnapshotJoin.needed(storage)
    honest_key, hostile_key, forger_key = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    honest_offer = offer_of(source.path)
    # a certified checkpoint 5, but not the one after the checkpoint offered with it
    forged = msgspec.structs.replace(honest_offer, finalized=fifth)
    asked_forger: list[PeerMessage] = []

    async def join() -> None:
        loop = asyncio.get_running_loop()
        servers: dict[bytes, SnapshotServer] = {}

        def to_peer(peer: bytes, message: PeerMessage) -> bool:
            assert isinstance(message, ChunkWantMsg | SnapshotOfferWantMsg)
            if peer == forger_key:
                asked_forger.append(message)
                if isinstance(message, SnapshotOfferWantMsg):
                    loop.call_soon(client.received, forger_key, forged)
                return True
            servers[peer].handle(JOINER, message)
            return True

        client = SnapshotClient(to_peer, loop)
        for key, corrupt in ((hostile_key, True), (honest_key, False)):
            servers[key] = SnapshotServer(source.path, lambda peer, answer, key=key: client.received(key, answer)
                                          is None, NodeMetrics(), 1000, 1000, corrupt=corrupt)
        try:
            report = await SnapshotJoin(storage, GENESIS, client, lambda: [forger_key, hostile_key, honest_key],
                                        NodeMetrics(), chunk_nodes=2).run()
        finally:
            for server in servers.values():
                await asyncio.to_thread(server.close)
        # the highest offer (the forger's) is checked first, refused, and its peer never asked for chunks
        assert report.height == 3 and report.offers == 3 and report.refused_offers == 1
        assert asked_forger == [SnapshotOfferWantMsg()] and report.sync is not None
        assert [code for _, code in report.sync.refused] == ["snapshot_chunk_hash_mismatch"]

    asyncio.run(join())
    assert not SnapshotJoin.needed(storage)
    chain = Chain(storage, GENESIS)
    chain.load()
    assert chain.height == 3 and chain.state_root == source.storage.checkpoint(3).state_root
    assert storage.latest_checkpoint().height == 3 and storage.checkpoint(2) is None
    # the boundary: alice executed seq 0 and 1 by height 3, bob 0 (refused for funds) and 1
    assert [storage.snapshot_next_seq(s.public_key) for s in (ALICE, BOB, CAROL)] == [2, 2, 0]
    joined = Node(storage.path, storage, chain, Ingest(storage, GENESIS, NodeMetrics()))
    joined.add(*entries)  # the DAG's history: fetched by gossip on a running node, never executed here
    assert joined.chain.uncovered_tips(joined.dag) == sorted([entries[-1][0]])

    joined.apply(source_checkpoint(source, 4))  # executes only what height 4 orders
    source.apply(fifth)
    joined.apply(fifth)
    assert joined.chain.state_root == source.chain.state_root
    assert joined.chain.results_root == source.chain.results_root
    assert len(storage.results_at(4)) == 1 and storage.result(S.fund[0]) is None

    storage.close()  # a restart: the boundary comes back from the store
    reopened = open_node(storage.path)
    assert reopened.chain.height == 5 and reopened.chain.state_root == source.chain.state_root
    reopened.add(*entries)
    assert reopened.chain.uncovered_tips(reopened.dag) == []
    reopened.storage.close()
    source.storage.close()


def test_the_leaves_read_in_batches_are_the_tree_s(tmp_path: Path) -> None:
    with StateStore(tmp_path / "tree.sqlite") as store:
        store.commit(0, [(i.to_bytes(4, "big"), b"v" * (i % 7)) for i in range(3000)])
        store.commit(1, [(i.to_bytes(4, "big"), None if i % 3 else b"w") for i in range(0, 3000, 5)])
        root = store.root_ref(1)
        expected = sorted(leaves(store, root))
        assert len(expected) == 3000 - 600 + 200
        for batch in (1, 7, 512):
            assert sorted(restored_leaves(store, root, batch)) == expected
        assert list(restored_leaves(store, None)) == []


def test_an_unfinished_join_is_told_apart_from_a_new_store_and_a_chain(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "joining.sqlite")
    assert SnapshotJoin.needed(storage) and not SnapshotJoin.interrupted(storage)
    storage.set_meta(OFFER_KEY, b"an offer being restored")
    assert SnapshotJoin.needed(storage) and SnapshotJoin.interrupted(storage)
    storage.close()
    chain = open_node(tmp_path / "chain.sqlite")  # a store holding a chain (from genesis)
    assert not SnapshotJoin.needed(chain.storage) and not SnapshotJoin.interrupted(chain.storage)
    chain.storage.close()

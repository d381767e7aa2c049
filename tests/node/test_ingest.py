"""Ingestion against a real SQLite store: durability, orphans, forks, rate limits, reload."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bilayer.api.status import error_status
from bilayer.errors import BadSignature, Overloaded, RateLimited, SequenceReused
from bilayer.genesis import Genesis
from bilayer.ledger.entry import SignedEntry, entry_id
from bilayer.node.ingest import ORPHAN_FETCH_DELAY_S, STALL_MS, Ingest, IngestLimits, Status
from bilayer.node.metrics import NodeMetrics
from bilayer.node.storage import Storage
from bilayer.replica.placing import OrphanPool
from tests.support.builders import make_entry, seeded_signer

ALICE = seeded_signer(1)


def chain(genesis: Genesis, length: int, signer=ALICE) -> list[tuple[bytes, SignedEntry]]:  # type: ignore[no-untyped-def]
    entries = []
    parent = genesis.root
    for seq in range(length):
        id_, signed = make_entry(signer, genesis, seq=seq, parents=[parent])
        entries.append((id_, signed))
        parent = id_
    return entries


def make_id(signed: SignedEntry) -> bytes:
    return entry_id(signed.header)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_stored_entries_survive_reopen(tmp_path: Path, genesis: Genesis) -> None:
    entries = chain(genesis, 5)

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.start()
        for _, signed in entries:
            assert (await ingest.submit(signed, "api:test")).status == Status.STORED
        assert (await ingest.submit(entries[0][1], "api:test")).status == Status.KNOWN
        await ingest.stop()
        ingest.storage.close()

    run(scenario())
    reopened = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
    assert reopened.load() == 5
    assert reopened.dag.tips == {entries[-1][0]}
    assert reopened.storage.get(entries[2][0]).signed == entries[2][1]  # type: ignore[union-attr]


def test_orphans_wait_for_parents_in_any_order(tmp_path: Path, genesis: Genesis) -> None:
    entries = chain(genesis, 6)
    requested: list[bytes] = []

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.request = lambda ids: requested.extend(ids)
        ingest.start()
        for _, signed in reversed(entries[1:]):
            assert (await ingest.submit(signed, "api:test")).status == Status.ORPHAN
        assert len(ingest.orphans) == 5
        assert requested == []  # gossip gets a moment to bring the parent first
        await asyncio.sleep(ORPHAN_FETCH_DELAY_S * 3)
        assert requested == [entries[0][0]]  # only the one parent no orphan here can supply
        assert (await ingest.submit(entries[0][1], "api:test")).status == Status.STORED
        await ingest.flush()
        assert len(ingest.orphans) == 0
        assert ingest.storage.count() == 6
        assert ingest.dag.tips == {entries[-1][0]}
        await ingest.stop()

    run(scenario())


def test_a_parent_gossip_brings_in_time_is_never_asked_for(tmp_path: Path, genesis: Genesis) -> None:
    entries = chain(genesis, 2)
    requested: list[bytes] = []

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.request = lambda ids: requested.extend(ids)
        ingest.start()
        assert (await ingest.submit(entries[1][1], "peer:aa")).status == Status.ORPHAN
        assert (await ingest.submit(entries[0][1], "peer:bb")).status == Status.STORED
        await asyncio.sleep(ORPHAN_FETCH_DELAY_S * 3)
        assert requested == []
        assert len(ingest.orphans) == 0
        await ingest.stop()

    run(scenario())


def test_fork_is_refused_and_kept_as_evidence(tmp_path: Path, genesis: Genesis) -> None:
    _, first = make_entry(ALICE, genesis, payload=b"one")
    _, second = make_entry(ALICE, genesis, payload=b"two")

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.start()
        await ingest.submit(first, "api:test")
        with pytest.raises(SequenceReused):
            await ingest.submit(second, "api:test")
        await ingest.flush()
        evidence = ingest.storage.fork_evidence()
        assert len(evidence) == 1
        assert evidence[0].first.header == first.header
        assert evidence[0].second.header == second.header
        assert ingest.storage.count() == 1
        await ingest.stop()

    run(scenario())


def test_refused_entries_change_nothing(tmp_path: Path, genesis: Genesis) -> None:
    _, signed = make_entry(ALICE, genesis)
    forged = SignedEntry(signed.header, bytes(64), signed.payload)

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.start()
        with pytest.raises(BadSignature):
            await ingest.submit(forged, "api:test")
        assert ingest.storage.count() == 0 and len(ingest.dag) == 0
        await ingest.stop()

    run(scenario())


def test_author_rate_limit(tmp_path: Path, genesis: Genesis) -> None:
    entries = chain(genesis, 4)
    clock = [int(time.time() * 1000)]

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics(),
                        IngestLimits(author_rate=1.0, author_burst=2.0), clock_ms=lambda: clock[0])
        ingest.start()
        await ingest.submit(entries[0][1], "api:test")
        await ingest.submit(entries[1][1], "api:test")
        with pytest.raises(RateLimited):
            await ingest.submit(entries[2][1], "api:test")
        clock[0] += 1000
        assert (await ingest.submit(entries[2][1], "api:test")).status == Status.STORED
        await ingest.stop()

    run(scenario())


def test_orphan_pool_is_bounded_in_count_and_time(genesis: Genesis) -> None:
    from bilayer.ledger.validation import check_entry

    pool = OrphanPool(capacity=3, ttl_ms=1000)
    entries = chain(genesis, 6)
    for index, (_, signed) in enumerate(entries[1:]):
        entry = check_entry(signed, chain_id=genesis.chain_id, params=genesis.params, now_ms=2**62)
        pool.add(entry, entry.parents, now_ms=index * 100, source="api:test")
    assert len(pool) == 3
    assert entries[1][0] not in pool
    assert pool.expire(now_ms=1350) == 2
    assert pool.expire(now_ms=10_000) == 1
    assert len(pool) == 0 and pool.waiting == {}


def fork_pair(genesis: Genesis, seq: int = 0, parent: bytes | None = None, signer=ALICE):  # type: ignore[no-untyped-def]
    parents = [parent or genesis.root]
    return (make_entry(signer, genesis, seq=seq, parents=parents, payload=b"one"),
            make_entry(signer, genesis, seq=seq, parents=parents, payload=b"two"))


def test_a_fork_half_from_a_peer_is_stored_beside_the_other_and_both_survive_a_reopen(
    tmp_path: Path, genesis: Genesis
) -> None:
    """Another node took the second half, so the chain must order it: a fork is evidence, not a fault."""
    (first_id, first), (second_id, second) = fork_pair(genesis)
    announced: list[bytes] = []

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.announce_evidence = lambda evidence, source: announced.extend(e.second.header for e in evidence)
        ingest.start()
        await ingest.submit(first, "api:test")
        assert (await ingest.submit(second, "peer:aa")).status == Status.STORED
        _, child = make_entry(seeded_signer(2), genesis, parents=[first_id, second_id])
        assert (await ingest.submit(child, "api:test")).status == Status.STORED
        await ingest.flush()
        assert ingest.healthy
        assert ingest.storage.count() == 3
        assert [(e.first.header, e.second.header) for e in ingest.storage.fork_evidence()] == [
            (first.header, second.header)]
        assert announced == [second.header]
        await ingest.stop()
        ingest.storage.close()

    run(scenario())
    reopened = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
    assert reopened.load() == 3
    assert first_id in reopened.dag and second_id in reopened.dag


def test_a_fork_half_this_node_asked_for_is_admitted_from_any_source(tmp_path: Path, genesis: Genesis) -> None:
    (_, first), (second_id, second) = fork_pair(genesis)

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.start()
        await ingest.submit(first, "api:test")
        ingest.fetch_missing([second_id])
        assert (await ingest.submit(second, "api:test")).status == Status.STORED
        await ingest.flush()
        assert ingest.storage.count() == 2 and len(ingest.storage.fork_evidence()) == 1
        await ingest.stop()

    run(scenario())


@pytest.mark.parametrize("source", ["api:test", "peer:aa"])
def test_two_fork_halves_waiting_for_one_parent_meet_as_a_fork(tmp_path: Path, genesis: Genesis, source: str) -> None:
    """Orphans are placed one at a time, so the second half is seen as a fork, never stored blind."""
    (parent_id, parent), = chain(genesis, 1, signer=seeded_signer(3))
    (first_id, first), (second_id, second) = fork_pair(genesis, parent=parent_id)

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.start()
        assert (await ingest.submit(first, source)).status == Status.ORPHAN
        assert (await ingest.submit(second, source)).status == Status.ORPHAN
        await ingest.submit(parent, "api:test")
        await ingest.flush()
        stored = {first_id, second_id} & set(ingest.dag.nodes)
        assert len(stored) == (1 if source.startswith("api") else 2)
        assert len(ingest.storage.fork_evidence()) == 1
        assert ingest.healthy
        await ingest.stop()

    run(scenario())


def test_fork_evidence_from_a_peer_is_checked_kept_once_and_passed_on(tmp_path: Path, genesis: Genesis) -> None:
    from bilayer.errors import BadSignature, NotAFork

    (_, first), (_, second) = fork_pair(genesis)
    (_, other), _ = fork_pair(genesis, signer=seeded_signer(4))
    passed_on: list[str] = []

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.announce_evidence = lambda evidence, source: passed_on.append(source)
        ingest.start()
        with pytest.raises(NotAFork):
            ingest.ingest_evidence(first, first, "peer:aa")
        with pytest.raises(NotAFork):
            ingest.ingest_evidence(first, other, "peer:aa")
        with pytest.raises(BadSignature):
            ingest.ingest_evidence(first, SignedEntry(second.header, bytes(64), b""), "peer:aa")
        assert ingest.ingest_evidence(first, second, "peer:aa") is True
        assert ingest.ingest_evidence(second, first, "peer:bb") is False  # one proof per fork is enough
        await ingest.flush()
        assert len(ingest.storage.fork_evidence()) == 1 and ingest.storage.count() == 0
        assert passed_on == ["peer:aa"]
        await ingest.stop()

    run(scenario())


def test_a_store_made_with_the_unique_author_sequence_index_is_upgraded_on_open(
    tmp_path: Path, genesis: Genesis
) -> None:
    """A node stuck on the old unique index recovers by being restarted on the new code."""
    import sqlite3

    from bilayer.ledger.validation import check_entry

    path = tmp_path / "db.sqlite"
    Storage(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX entries_by_author_seq")
        conn.execute("CREATE UNIQUE INDEX entries_author_seq ON entries (author, seq)")
    storage = Storage(path)
    halves = [check_entry(s, chain_id=genesis.chain_id, params=genesis.params, now_ms=2**62)
              for _, s in fork_pair(genesis)]
    storage.store_entries(halves, 1)
    storage.store_entries(halves, 2)  # storing again changes nothing
    assert storage.count() == 2


@pytest.mark.parametrize("withheld_first", [True, False])
def test_an_entry_and_its_withheld_header_racing_store_one_entry(
    tmp_path: Path, genesis: Genesis, withheld_first: bool
) -> None:
    """A node that asked for an entry may get it twice: whole from one peer, as a redacted
    header from another. Whichever comes second is known; nothing fails."""
    from bilayer.ledger.entry import Tombstone, WithheldEntry

    entry_id, signed = make_entry(ALICE, genesis, payload=b"secret")
    withheld = WithheldEntry(signed.header, signed.signature, Tombstone("proposal:1", "personal_data", 1, 1))

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.start()
        ingest.fetch_missing([entry_id])
        arrivals = [lambda: ingest.ingest_withheld(withheld, "peer:aa"), lambda: ingest.ingest(signed, "peer:bb")]
        first, second = arrivals if withheld_first else arrivals[::-1]
        assert first().status == Status.STORED
        assert second().status == Status.KNOWN
        await ingest.flush()
        assert ingest.healthy and ingest.storage.count() == 1
        stored = ingest.storage.get(entry_id)
        assert stored is not None and (stored.tombstone is not None) == withheld_first
        await ingest.stop()

    run(scenario())


def test_one_entry_from_a_client_and_a_peer_at_once_is_stored_once(tmp_path: Path, genesis: Genesis) -> None:
    _, signed = make_entry(ALICE, genesis)

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.start()
        results = await asyncio.gather(ingest.submit(signed, "api:test"), ingest.submit(signed, "peer:aa"))
        assert sorted(r.status for r in results) == [Status.KNOWN, Status.STORED]
        await ingest.flush()
        assert ingest.healthy and ingest.storage.count() == 1
        await ingest.stop()

    run(scenario())


def test_a_flood_of_forks_is_one_log_line_per_interval_and_every_fork_is_evidence(
    tmp_path: Path, genesis: Genesis, caplog: pytest.LogCaptureFixture
) -> None:
    pairs = [fork_pair(genesis, signer=seeded_signer(500 + i)) for i in range(5)]

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.start()
        with caplog.at_level("WARNING", logger="bilayer.ingest"):
            for (_, first), (_, second) in pairs:
                assert ingest.ingest_evidence(first, second, "peer:aa") is True
        await ingest.flush()
        assert len(ingest.storage.fork_evidence()) == 5
        await ingest.stop()

    run(scenario())
    assert len([r for r in caplog.records if "fork:" in r.getMessage()]) == 1


def test_admission_refuses_clients_while_too_many_entries_wait_for_a_checkpoint(
        tmp_path: Path, genesis: Genesis) -> None:
    entries = [make_entry(seeded_signer(10 + i), genesis)[1] for i in range(4)]

    async def scenario() -> None:
        metrics = NodeMetrics()
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, metrics, IngestLimits(max_unordered=3))
        ingest.start()
        ingest.admit(3)  # an empty backlog takes a request of any size up to the bound
        for signed in entries[:3]:
            await ingest.submit(signed, "api:test")
        with pytest.raises(Overloaded) as refused:
            ingest.admit(1)
        assert error_status(refused.value.code) == 503 and refused.value.retry_after_s >= 1
        assert metrics.entries_refused.labels("backlog")._value.get() == 1
        ingest.forget_headers([make_id(entries[0])])  # a checkpoint ordered one
        ingest.admit(1)
        await ingest.stop()

    run(scenario())


def test_admission_refuses_clients_when_checkpoints_do_not_keep_up(tmp_path: Path, genesis: Genesis) -> None:
    entries = [make_entry(seeded_signer(20 + i), genesis)[1] for i in range(3)]
    clock = [int(time.time() * 1000)]

    async def scenario() -> None:
        metrics = NodeMetrics()
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, metrics,
                        IngestLimits(max_unordered_age_ms=1000), clock_ms=lambda: clock[0])
        ingest.start()
        await ingest.submit(entries[0], "api:test")
        clock[0] += 500
        ingest.admit(1)  # waited less than the bound
        clock[0] += 1000
        with pytest.raises(Overloaded):  # a node just started counts as live: it takes no more than it orders
            ingest.admit(1)
        await ingest.submit(entries[1], "api:test")
        ingest.forget_headers([make_id(entries[1])])  # a checkpoint came and left the older entry behind
        with pytest.raises(Overloaded):
            ingest.admit(1)
        assert metrics.entries_refused.labels("behind")._value.get() == 2
        ingest.forget_headers([make_id(entries[0])])  # the next one caught up
        ingest.admit(1)
        await ingest.submit(entries[2], "api:test")
        clock[0] += STALL_MS + 1  # no checkpoint since: a stalled chain is not overload
        ingest.admit(1)
        await ingest.stop()

    run(scenario())


def test_admission_refuses_clients_once_the_backlog_would_outlast_the_age_bound(
        tmp_path: Path, genesis: Genesis) -> None:
    entries = [make_entry(seeded_signer(40 + i), genesis)[1] for i in range(6)]
    clock = [int(time.time() * 1000)]

    async def scenario() -> None:
        metrics = NodeMetrics()
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, metrics,
                        IngestLimits(max_unordered_age_ms=1000), clock_ms=lambda: clock[0])
        ingest.start()
        for signed in entries[:3]:
            await ingest.submit(signed, "api:test")
        ingest.forget_headers([make_id(entries[0])])  # one entry ordered in the last second
        ingest.admit(100)  # the two left have just come: nothing says checkpoints fall behind yet
        clock[0] += 600
        with pytest.raises(Overloaded) as refused:  # they waited half the bound: two seconds of ordering
            ingest.admit(1)
        assert error_status(refused.value.code) == 503 and refused.value.retry_after_s >= 1
        assert metrics.entries_refused.labels("drain")._value.get() == 1
        clock[0] += 500
        ingest.forget_headers([make_id(entries[1]), make_id(entries[2]), *(bytes([i]) * 32 for i in range(8))])
        for signed in entries[3:]:
            await ingest.submit(signed, "api:test")
        ingest.admit(100)  # the entries waiting have just come: nothing says checkpoints fall behind
        clock[0] += 600
        ingest.admit(3)  # 11 ordered in 1.7 s: 3 waiting and 3 more drain within the bound
        with pytest.raises(Overloaded):
            ingest.admit(4)
        clock[0] += 3001  # the window holds no checkpoint now: no rate, and no stall yet either
        with pytest.raises(Overloaded):  # but the oldest has waited past the bound
            ingest.admit(1)
        assert metrics.entries_refused.labels("behind")._value.get() == 1
        await ingest.stop()

    run(scenario())


def test_refusals_tell_clients_when_to_retry() -> None:
    from bilayer.api.server import error_response

    for refusal, status in ((Overloaded("behind"), 503), (RateLimited("too fast"), 429)):
        response = error_response(refusal)
        assert response.status == status
        assert response.headers["Retry-After"] == "1"


def test_the_cli_client_sends_a_refused_entry_again_after_retry_after(genesis: Genesis) -> None:
    import http.server
    import json
    import threading

    from bilayer.api.client import NodeClient

    answers = [(503, "overloaded"), (429, "rate_limited"), (200, "")]
    bodies: list[bytes] = []

    class Node(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            status, code = answers[len(bodies) - 1]
            body = json.dumps({"id": "00", "status": "stored"} if status == 200 else
                              {"error": {"code": code, "message": "behind"}}).encode()
            self.send_response(status)
            if status != 200:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _, signed = make_entry(ALICE, genesis)
        started = time.monotonic()
        answer = NodeClient(f"http://127.0.0.1:{server.server_port}", timeout=5).submit(signed)
        assert answer["status"] == "stored"
        assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]  # the same entry each time
        assert time.monotonic() - started < 5
    finally:
        server.shutdown()
        server.server_close()


def test_parents_of_an_entry_this_node_asked_for_are_asked_for_at_once(tmp_path: Path, genesis: Genesis) -> None:
    entries = chain(genesis, 3)
    requested: list[bytes] = []

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.request = lambda ids: requested.extend(ids)
        ingest.start()
        ingest.fetch_missing([entries[2][0]])  # a checkpoint names an entry this node lacks
        assert requested == [entries[2][0]]
        assert ingest.ingest(entries[2][1], "peer:aa").status == Status.ORPHAN
        assert requested == [entries[2][0], entries[1][0]]  # no waiting: the walk back goes on
        await ingest.stop()

    run(scenario())

"""Batches checked with their signatures on the verifying threads: every entry answered as
`Ingest.ingest` answers it alone, in order, against a real SQLite store."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from bilayer.errors import BilayerError
from bilayer.genesis import Genesis
from bilayer.ledger.entry import SignedEntry, entry_id
from bilayer.node import ingest as ingest_module
from bilayer.node.ingest import Ingest, IngestLimits, Status, SubmitResult
from bilayer.node.metrics import NodeMetrics
from bilayer.node.storage import Storage
from bilayer.node.verify_pool import CHUNK
from tests.support.builders import make_entry, seeded_signer


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 30))


def chain(genesis: Genesis, length: int, signer_seed: int) -> list[SignedEntry]:
    signer, parent, entries = seeded_signer(signer_seed), genesis.root, []
    for seq in range(length):
        id_, signed = make_entry(signer, genesis, seq=seq, parents=[parent], payload=b"%d" % seq)
        entries.append(signed)
        parent = id_
    return entries


def forged(signed: SignedEntry) -> SignedEntry:
    return SignedEntry(signed.header, bytes(64), signed.payload)


def outcome(result: SubmitResult | BilayerError) -> str:
    return result.code if isinstance(result, BilayerError) else str(result.status)


def mixed_batch(genesis: Genesis) -> list[SignedEntry]:
    """More than two chunks: good chains, a forgery in the middle of one (its children wait as
    orphans), an entry twice, a forged copy of a stored entry, a fork, garbage and a child
    before its parent."""
    alice, bob, carol = chain(genesis, CHUNK, 1), chain(genesis, CHUNK, 2), chain(genesis, 6, 3)
    _, fork = make_entry(seeded_signer(2), genesis, seq=0, payload=b"other")
    batch = [*alice[: CHUNK // 2], forged(alice[CHUNK // 2]), *alice[CHUNK // 2 + 1 :]]
    batch += [carol[1], carol[0], *carol[2:], carol[3], forged(carol[4])]
    batch += [*bob, fork, SignedEntry(b"\x93", bytes(64), b"")]
    return batch


def test_a_batch_is_answered_entry_by_entry_as_sequential_ingest_answers(tmp_path: Path, genesis: Genesis) -> None:
    batch = mixed_batch(genesis)

    async def scenario(path: Path, batched: bool) -> list[str]:
        ingest = Ingest(Storage(path), genesis, NodeMetrics(), IngestLimits(author_rate=0))
        ingest.start()
        if batched:
            results = await ingest.submit_many(batch, "api:test")
        else:
            results = []
            for signed in batch:
                try:
                    results.append(await ingest.submit(signed, "api:test"))
                except BilayerError as exc:
                    results.append(exc)
        stored = ingest.storage.count()
        await ingest.stop()
        ingest.storage.close()
        return [*map(outcome, results), f"stored {stored}"]

    alone = run(scenario(tmp_path / "alone.sqlite", batched=False))
    together = run(scenario(tmp_path / "together.sqlite", batched=True))
    assert together == alone
    assert together.count("bad_signature") == 1  # the forged copy of a stored entry is known, not refused
    assert "sequence_reused" in together and "bad_encoding" in together and "orphan" in together
    assert together[-1] == f"stored {CHUNK // 2 + 6 + CHUNK}"  # alice's up to the forgery, carol's, bob's


def test_a_batch_of_one_and_an_empty_batch(tmp_path: Path, genesis: Genesis) -> None:
    (signed,) = chain(genesis, 1, 1)

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics())
        ingest.start()
        assert await ingest.submit_many([], "api:test") == []
        (result,) = await ingest.submit_many([signed], "api:test")
        assert isinstance(result, SubmitResult) and result.status == Status.STORED
        assert ingest.storage.get(entry_id(signed.header)) is not None  # durable when answered
        (bad,) = await ingest.submit_many([forged(chain(genesis, 1, 2)[0])], "api:test")
        assert outcome(bad) == "bad_signature"
        await ingest.stop()

    run(scenario())


def test_signatures_are_checked_off_the_event_loop(tmp_path: Path, genesis: Genesis) -> None:
    entries = chain(genesis, 3 * CHUNK, 1)
    seen: set[str] = set()

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics(), IngestLimits(author_rate=0))
        ingest.start()
        from bilayer.node import verify_pool

        real = verify_pool.signature_holds

        def recording(entry):  # type: ignore[no-untyped-def]
            seen.add(threading.current_thread().name)
            return real(entry)

        verify_pool.signature_holds = recording  # type: ignore[assignment]
        try:
            results = await ingest.submit_many(entries, "api:test")
        finally:
            verify_pool.signature_holds = real
        assert [outcome(r) for r in results] == ["stored"] * len(entries)
        await ingest.stop()

    run(scenario())
    assert seen and all(name.startswith("verify") for name in seen)


def test_a_batch_in_flight_when_the_pool_closes_still_gets_every_verdict(tmp_path: Path, genesis: Genesis) -> None:
    entries = chain(genesis, 4 * CHUNK, 1)
    bad = 2 * CHUNK + 5
    batch = [*entries[:bad], forged(entries[bad]), *entries[bad + 1 :]]

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics(), IngestLimits(author_rate=0))
        ingest.start()
        task = asyncio.create_task(ingest.submit_many(batch, "api:test"))
        await asyncio.sleep(0)  # the batch is screened and its chunks handed to the threads
        ingest.verifier.close()
        results = await task
        assert [outcome(r) for r in results] == ["stored"] * bad + ["bad_signature"] + ["orphan"] * (
            len(batch) - bad - 1)
        # closed: a later batch is checked on the loop, with the same answers
        (again,) = await ingest.submit_many([entries[bad]], "api:test")
        assert outcome(again) == "stored"
        await ingest.stop()

    run(scenario())


def test_peer_batches_are_placed_in_arrival_order_and_a_full_inbox_holds_the_link(
    tmp_path: Path, genesis: Genesis, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(ingest_module, "MAX_INBOX", 2 * CHUNK)
    entries = chain(genesis, 3 * CHUNK, 1)
    news: list[int] = []

    async def scenario() -> None:
        ingest = Ingest(Storage(tmp_path / "db.sqlite"), genesis, NodeMetrics(), IngestLimits(author_rate=0))
        ingest.start()
        for n, start in enumerate(range(0, len(entries), CHUNK)):
            ingest.receive(entries[start : start + CHUNK], "peer:p", lambda n=n: news.append(n))
        room = asyncio.create_task(ingest.room())
        await asyncio.sleep(0)
        assert not room.done()  # three chunks waiting, above the bound: the link reads no more
        await asyncio.wait_for(room, 10)
        ingest.receive(entries[:CHUNK], "peer:q", lambda: news.append(99))  # all known: nothing new
        deadline = time.monotonic() + 10
        while ingest.storage.count() < len(entries) or ingest._inbox:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await ingest.flush()
        assert ingest.orphans.held == {}  # each batch came after its parents' batch: no orphan
        assert ingest.dag.tips == {entry_id(entries[-1].header)}
        await ingest.stop()

    run(scenario())
    assert news == [0, 1, 2]

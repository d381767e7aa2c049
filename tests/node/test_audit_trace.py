"""The audit index and FIFO fund tracing on small histories computed by hand.

Each history is executed and committed as a node does it (`Chain.apply` into SQLite, with
real commit certificates), one checkpoint per step so the order is the order written."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from xml.etree import ElementTree

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bilayer import codec
from bilayer.audit import index as audit_index
from bilayer.audit.query import parse_entry_query, query_entries
from bilayer.audit.trace import TraceLimits, TraceRequest, trace
from bilayer.consensus.messages import Checkpoint
from bilayer.errors import (
    AuditFilterInvalid,
    BilayerError,
    NotFound,
    TraceAssetInvalid,
    TraceDirectionInvalid,
    TraceHopsInvalid,
    TraceStartInvalid,
)
from bilayer.genesis import (
    Allocation,
    ChainParams,
    Genesis,
    GenesisCouncilMember,
    GenesisRegulator,
    GenesisValidator,
    GovernanceParams,
)
from bilayer.keys.signing import Signer
from bilayer.ledger.dag import Dag
from bilayer.ledger.entry import Entry, EntryHeader
from bilayer.ledger.operations import (
    GovExecute,
    GovPropose,
    GovVote,
    Operation,
    RecoverAssets,
    RegIntercept,
    RegReview,
    SetInterceptionRule,
    Transfer,
    decode_operation,
)
from bilayer.node.chain import Chain
from bilayer.node.metrics import NodeMetrics
from bilayer.node.storage import Storage
from tests.support.builders import make_entry, seeded_signer
from tests.support.chain import VALIDATORS, finalize
from tests.support.openapi import _check, app_for, document

A, B, C, D, E, F = (seeded_signer(n) for n in range(31, 37))
COUNCIL1, COUNCIL2, REGULATOR = seeded_signer(41), seeded_signer(42), seeded_signer(43)
T0 = 1_700_000_000_000
GENESIS = Genesis(
    chain_id="audit-test",
    genesis_time_ms=T0,
    params=ChainParams(pow_bits=0),
    allocations=(Allocation(A.address, "BLY", 100), Allocation(B.address, "BLY", 50), Allocation(A.address, "GLD", 10)),
    validators=tuple(GenesisValidator(f"v{i}", s.public_key.hex(), 1) for i, s in enumerate(VALIDATORS)),
    council=(GenesisCouncilMember("c1", COUNCIL1.public_key.hex(), 1),
             GenesisCouncilMember("c2", COUNCIL2.public_key.hex(), 1)),
    regulators=(GenesisRegulator("regulator", REGULATOR.public_key.hex()),),
    governance=GovernanceParams(timelock_ms=0, review_ms=60_000),
)


class Book:
    """A node's chain driven by hand: each `step` is one finalized checkpoint of one entry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.storage = Storage(path)
        self.chain = Chain(self.storage, GENESIS)
        self.chain.load()
        self.dag = Dag(GENESIS.root)
        self.headers: dict[bytes, EntryHeader] = {}
        self.heads: dict[bytes, tuple[int, bytes]] = {}
        self.time_ms = T0

    def step(self, signer: Signer, op: Operation, *, after_ms: int = 1000) -> bytes:
        seq, head = self.heads.get(signer.public_key, (0, GENESIS.root))
        self.time_ms += after_ms
        entry_id, signed = make_entry(signer, GENESIS, seq=seq, parents=[head], op=op, time_ms=self.time_ms)
        header = codec.decode(signed.header, EntryHeader)
        self.heads[signer.public_key] = (seq + 1, entry_id)
        self.headers[entry_id] = header
        self.dag.add(entry_id, header)
        self.storage.store_entries([Entry(entry_id, header, signed, decode_operation(header.kind, header.body))],
                                   self.time_ms)
        chain = self.chain
        checkpoint = Checkpoint(chain=GENESIS.chain_id, height=chain.height + 1, prev_id=chain.prev_id,
                                proposer=VALIDATORS[0].public_key, frontier=(entry_id,), state_root=chain.state_root,
                                results_root=chain.results_root, time_ms=self.time_ms)
        chain.apply(finalize(checkpoint), self.dag, self.headers.__getitem__)
        return entry_id

    def pay(self, sender: Signer, recipient: Signer, amount: int, asset: str = "BLY", **kw: Any) -> bytes:
        return self.step(sender, Transfer(asset=asset, amount=amount, to=recipient.public_key), **kw)

    def outcome(self, entry_id: bytes) -> tuple[str, str]:
        result = self.storage.result(entry_id)
        assert result is not None
        return result.outcome, result.code

    def conn(self) -> sqlite3.Connection:
        return self.storage.read_connection()

    def trace(self, start: str | bytes | Signer, direction: str = "forward", hops: int = 5,
              asset: str | None = None, limits: TraceLimits | None = None) -> dict[str, Any]:
        text = start.hex() if isinstance(start, bytes) else start.address if isinstance(start, Signer) else start
        with closing(self.conn()) as conn:
            return trace(conn, TraceRequest(text, direction, hops, asset, limits or TraceLimits())).to_json()

    def entries(self, **params: str) -> dict[str, Any]:
        with closing(self.conn()) as conn:
            return query_entries(conn, parse_entry_query(params))

    def reopen(self) -> None:
        self.storage.close()
        self.storage = Storage(self.path)
        self.chain = Chain(self.storage, GENESIS)
        self.chain.load()


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Book]:
    opened = Book(tmp_path / "ledger.sqlite")
    yield opened
    opened.storage.close()


def edges(result: dict[str, Any]) -> list[tuple[str, str, str, int, int, int]]:
    """(from, to, asset, amount, traced, hop) of each edge, in the trace's order."""
    return [(e["from"], e["to"], e["asset"], e["amount"], e["traced"], e["hop"]) for e in result["edges"]]


def nodes(result: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int]]:
    return {(n["id"], n["asset"]): (n["depth"], n["traced"]) for n in result["nodes"]}


def mixing_history(book: Book) -> dict[str, bytes]:
    """C receives 30 clean (from B), then 20 tainted (from A), then spends 40 and 10; D passes 35 on."""
    return {
        "b_c": book.pay(B, C, 30),
        "a_c": book.pay(A, C, 20),  # the tainted receipt: C's coins 30..50
        "c_d": book.pay(C, D, 40),  # C's coins 0..40: 10 of them tainted (30..40)
        "c_e": book.pay(C, E, 10),  # C's coins 40..50: all tainted
        "d_e": book.pay(D, E, 35),  # D's coins 0..35: 5 of them tainted (D's 30..35)
    }


def test_fifo_forward_a_tainted_receipt_is_spent_after_the_clean_balance(book: Book) -> None:
    ids = mixing_history(book)
    result = book.trace(ids["a_c"], "forward", hops=3)
    assert result["method"] == "fifo" and result["height"] == 5 and not result["truncated"]
    assert edges(result) == [
        (A.address, C.address, "BLY", 20, 20, 1),
        (C.address, D.address, "BLY", 40, 10, 2),
        (C.address, E.address, "BLY", 10, 10, 2),
        (D.address, E.address, "BLY", 35, 5, 3),
    ]
    assert [e["entry"] for e in result["edges"]] == [ids[k].hex() for k in ("a_c", "c_d", "c_e", "d_e")]
    assert [e["height"] for e in result["edges"]] == [2, 3, 4, 5]
    assert nodes(result) == {(A.address, "BLY"): (0, 20), (C.address, "BLY"): (1, 20),
                             (D.address, "BLY"): (2, 10), (E.address, "BLY"): (2, 15)}
    assert edges(book.trace(ids["a_c"], "forward", hops=2))[-1] == (C.address, E.address, "BLY", 10, 10, 2)
    clean = book.trace(ids["b_c"], "forward", hops=3)  # B's 30 were spent first, all to D, then 30 of D's to E
    assert edges(clean) == [(B.address, C.address, "BLY", 30, 30, 1), (C.address, D.address, "BLY", 40, 30, 2),
                            (D.address, E.address, "BLY", 35, 30, 3)]


def test_fifo_backward_reaches_the_genesis_allocations(book: Book) -> None:
    ids = mixing_history(book)
    result = book.trace(ids["d_e"], "backward", hops=4)
    assert edges(result) == [
        (D.address, E.address, "BLY", 35, 35, 1),
        (C.address, D.address, "BLY", 40, 35, 2),  # D's coins 0..35, all from C (C's coins 0..35)
        (B.address, C.address, "BLY", 30, 30, 3),  # C's coins 0..30
        (A.address, C.address, "BLY", 20, 5, 3),  # C's coins 30..35
        ("genesis", A.address, "BLY", 100, 5, 4),
        ("genesis", B.address, "BLY", 50, 30, 4),
    ]
    genesis_edges = [e for e in result["edges"] if e["from"] == "genesis"]
    assert all(e["entry"] == GENESIS.root.hex() and e["height"] == 0 for e in genesis_edges)
    assert nodes(result) == {(E.address, "BLY"): (0, 35), (D.address, "BLY"): (1, 35), (C.address, "BLY"): (2, 35),
                             (B.address, "BLY"): (3, 30), (A.address, "BLY"): (3, 5), ("genesis", "BLY"): (4, 35)}
    by_address = book.trace(E, "backward", hops=1)  # everything E ever received
    assert edges(by_address) == [(C.address, E.address, "BLY", 10, 10, 1), (D.address, E.address, "BLY", 35, 35, 1)]
    assert nodes(by_address)[(E.address, "BLY")] == (0, 45)


def test_a_cycle_brings_tainted_coins_back_behind_the_older_ones(book: Book) -> None:
    start = book.pay(A, D, 10)  # D's coins 0..10, tainted
    book.pay(D, A, 10)  # back to A as A's coins 100..110 (A got 100 at genesis)
    book.pay(A, D, 95)  # A's coins 10..105: the 5 tainted ones (100..105) are the last; D's coins 10..105
    book.pay(D, C, 95)  # D's coins 10..105: 5 tainted (100..105)
    result = book.trace(start, "forward", hops=4)
    assert edges(result) == [(A.address, D.address, "BLY", 10, 10, 1), (D.address, A.address, "BLY", 10, 10, 2),
                             (A.address, D.address, "BLY", 95, 5, 3), (D.address, C.address, "BLY", 95, 5, 4)]
    assert nodes(result) == {(A.address, "BLY"): (0, 20), (D.address, "BLY"): (1, 15), (C.address, "BLY"): (4, 5)}


def test_assets_are_traced_apart(book: Book) -> None:
    book.pay(A, B, 5, "GLD")
    book.pay(A, B, 30)
    book.pay(B, C, 3, "GLD")
    book.pay(B, C, 60)  # B's BLY coins 0..60: 50 from genesis, 10 from A
    everything = book.trace(A, "forward", hops=2)
    assert edges(everything) == [(A.address, B.address, "GLD", 5, 5, 1), (A.address, B.address, "BLY", 30, 30, 1),
                                 (B.address, C.address, "GLD", 3, 3, 2), (B.address, C.address, "BLY", 60, 10, 2)]
    assert nodes(everything)[(A.address, "BLY")] == (0, 30) and nodes(everything)[(A.address, "GLD")] == (0, 5)
    gold = book.trace(A, "forward", hops=2, asset="GLD")
    assert edges(gold) == [(A.address, B.address, "GLD", 5, 5, 1), (B.address, C.address, "GLD", 3, 3, 2)]
    assert {n["asset"] for n in gold["nodes"]} == {"GLD"}
    assert book.trace(A, "forward", asset="XYZ")["edges"] == []


def held_rule() -> RegIntercept:
    rule = SetInterceptionRule(rule_id="review", min_amount=40, asset="BLY", outcome="hold", review_ms=5_000)
    return RegIntercept(rule=rule, reason="large transfers are reviewed", legal_ref="")


def test_held_transfers_move_funds_when_released_and_come_back_when_refused(book: Book) -> None:
    book.step(REGULATOR, held_rule())
    held = book.pay(A, B, 60)  # A's coins 0..60 go into escrow now
    assert book.outcome(held) == ("HELD", "held_for_review")
    paid = book.pay(A, C, 10)  # A's coins 60..70
    with pytest.raises(TraceStartInvalid):
        book.trace(held)
    release = book.step(REGULATOR, RegReview(entry=held, decision="release", reason="documented"))
    forward = book.trace(held, hops=1)
    assert [(e["kind"], e["from"], e["to"], e["amount"], e["height"], e["entry"]) for e in forward["edges"]] == [
        ("release", A.address, B.address, 60, 4, held.hex())]
    assert book.entries(kind="reg.review")["entries"][0]["id"] == release.hex()
    assert book.trace(paid, "backward", hops=2)["edges"][1]["traced"] == 10  # A's genesis coins 60..70

    expiring = book.pay(A, D, 45)  # A's coins 70..115? A holds 30 after the release and payment: HELD refused
    assert book.outcome(expiring) == ("REJECTED", "insufficient_funds")
    book.pay(B, D, 45)  # held: B's coins 0..45
    refund_of = book.entries(outcome="HELD", author=B.address)["entries"][0]["id"]
    book.pay(C, E, 1, after_ms=10_000)  # past the review deadline: refunded at the start of this checkpoint
    back = book.trace(refund_of, hops=1)["edges"]
    assert [(e["kind"], e["from"], e["to"], e["amount"], e["height"]) for e in back] == [
        ("refund", B.address, B.address, 45, 7)]
    assert_index_balances_match_the_state(book)


def test_recovered_assets_are_a_flow_from_the_lost_key(book: Book) -> None:
    book.pay(A, C, 20)
    proposal = GovPropose(action=RecoverAssets(lost=C.public_key, to=F.public_key, assets=("BLY",)),
                          reason="key stolen", legal_ref="case 7")
    book.step(COUNCIL1, proposal)
    book.step(COUNCIL1, GovVote(proposal=1, choice="yes"))
    book.step(COUNCIL2, GovVote(proposal=1, choice="yes"))
    executed = book.step(COUNCIL1, GovExecute(proposal=1))
    assert book.outcome(executed) == ("FINAL", "")
    result = book.trace(F, "backward", hops=3)
    assert edges(result) == [(C.address, F.address, "BLY", 20, 20, 1), (A.address, C.address, "BLY", 20, 20, 2),
                             ("genesis", A.address, "BLY", 100, 20, 3)]
    assert result["edges"][0]["kind"] == "recovery" and result["edges"][0]["entry"] == executed.hex()
    assert {e["id"] for e in book.entries(counterparty=F.address)["entries"]} >= {executed.hex()}
    assert_index_balances_match_the_state(book)


def assert_index_balances_match_the_state(book: Book) -> None:
    with closing(book.conn()) as conn:
        totals = conn.execute("SELECT a.key, t.asset, t.total_in - t.total_out FROM audit_totals t"
                              " JOIN audit_accounts a ON a.id = t.account WHERE t.account != 0").fetchall()
    assert totals
    for account, asset, balance in totals:
        assert book.chain.state.balance(bytes(account), asset) == balance


def test_entries_are_found_by_party_kind_outcome_code_height_and_time(book: Book) -> None:
    ids = mixing_history(book)
    overdraft = book.pay(E, A, 1000)
    assert book.outcome(overdraft) == ("REJECTED", "insufficient_funds")
    every = book.entries()
    assert [e["id"] for e in every["entries"]] == [overdraft.hex(), *[ids[k].hex() for k in reversed(list(ids))]]
    assert every["height"] == 6 and every["next"] is None
    first = every["entries"][1]
    assert first["author"] == D.address and first["counterparties"] == [E.address]
    assert (first["kind"], first["asset"], first["amount"], first["outcome"], first["reason"]) == (
        "transfer", "BLY", 35, "FINAL", None)
    assert [e["id"] for e in book.entries(author=C.address)["entries"]] == [ids["c_e"].hex(), ids["c_d"].hex()]
    assert [e["id"] for e in book.entries(counterparty=C.address)["entries"]] == [ids["a_c"].hex(), ids["b_c"].hex()]
    assert [e["id"] for e in book.entries(code="insufficient_funds")["entries"]] == [overdraft.hex()]
    assert [e["id"] for e in book.entries(outcome="REJECTED")["entries"]] == [overdraft.hex()]
    assert len(book.entries(kind="transfer", asset="BLY")["entries"]) == 6
    assert [e["height"] for e in book.entries(from_height="2", to_height="3")["entries"]] == [3, 2]
    times = [e["time_ms"] for e in every["entries"]]
    assert [e["time_ms"] for e in book.entries(from_time=str(times[3]), to_time=str(times[2]))["entries"]] == \
        times[2:4]
    page = book.entries(limit="4")
    assert len(page["entries"]) == 4 and page["next"] == "3:0"
    rest = book.entries(limit="4", before=page["next"])
    assert [e["height"] for e in rest["entries"]] == [2, 1] and rest["next"] is None
    for bad in ({"author": "bl1nope"}, {"kind": "teleport"}, {"outcome": "MAYBE"}, {"limit": "0"},
                {"before": "x:y"}, {"asset": "bly"}, {"colour": "red"}, {"from_height": "-1"}):
        with pytest.raises(AuditFilterInvalid):
            parse_entry_query(bad)


def snapshot(book: Book, ids: dict[str, bytes]) -> list[Any]:
    answers: list[Any] = [book.entries(), book.entries(counterparty=E.address), book.trace(A, hops=5)]
    for entry_id in ids.values():
        for direction in ("forward", "backward"):
            try:
                answers.append(book.trace(entry_id, direction))
            except BilayerError as exc:  # a review entry moves nothing itself: the same refusal both times
                answers.append(exc.code)
    return answers


def test_a_deleted_index_is_rebuilt_from_the_chain_with_identical_answers(book: Book) -> None:
    book.step(REGULATOR, held_rule())
    ids = mixing_history(book)
    ids["held"] = book.pay(A, B, 41)
    ids["release"] = book.step(REGULATOR, RegReview(entry=ids["held"], decision="release", reason="ok"))
    ids["again"] = book.pay(B, E, 42)
    book.pay(E, A, 1, after_ms=10_000)  # the second hold expires
    before = snapshot(book, ids)

    book.storage.with_writer(audit_index.drop_tables)
    with closing(book.conn()) as conn:
        assert audit_index.indexed_height(conn) is None
    book.reopen()
    assert snapshot(book, ids) == before

    def forget(conn: sqlite3.Connection) -> None:  # rows deleted and the height lost: rebuilt from scratch
        conn.execute("DELETE FROM audit_flows")
        conn.execute("DELETE FROM meta WHERE key = ?", (audit_index.INDEX_HEIGHT_KEY,))

    book.storage.with_writer(forget)
    book.reopen()
    assert snapshot(book, ids) == before

    def fall_behind(conn: sqlite3.Connection) -> None:  # as if the last checkpoint had not been indexed
        conn.execute("BEGIN")
        for table in audit_index.TABLES:
            conn.execute(f"DELETE FROM {table}")
        audit_index.index_genesis(conn, GENESIS)
        conn.execute("COMMIT")

    book.storage.with_writer(fall_behind)
    book.reopen()
    assert snapshot(book, ids) == before


def test_bounds_cut_a_trace_and_say_so(book: Book) -> None:
    for recipient in (C, D, E, F):
        book.pay(A, recipient, 10)
    book.pay(A, B, 1)
    cut = book.trace(A, hops=1, limits=TraceLimits(max_edges=2))
    assert cut["truncated"] and len(cut["edges"]) == 2
    assert book.trace(A, hops=1, limits=TraceLimits(max_nodes=3))["truncated"]
    assert book.trace(A, hops=1, limits=TraceLimits(max_rows=3))["truncated"]
    no_dust = book.trace(A, hops=1, limits=TraceLimits(dust=5))
    assert not no_dust["truncated"] and no_dust["dust"] == 5
    assert [e["to"] for e in no_dust["edges"]] == [C.address, D.address, E.address, F.address]


@pytest.mark.parametrize(("start", "direction", "hops", "asset", "error"), [
    ("nonsense", "forward", 3, None, TraceStartInvalid),
    ("bl1" + "a" * 58, "forward", 3, None, TraceStartInvalid),
    ("00" * 32, "sideways", 3, None, TraceDirectionInvalid),
    ("00" * 32, "forward", 0, None, TraceHopsInvalid),
    ("00" * 32, "forward", 11, None, TraceHopsInvalid),
    ("00" * 32, "forward", 3, "bly", TraceAssetInvalid),
    ("00" * 32, "forward", 3, None, NotFound),
])
def test_bad_trace_requests_are_refused_with_their_codes(book: Book, start: str, direction: str, hops: int,
                                                          asset: str | None, error: type[BilayerError]) -> None:
    with pytest.raises(error):
        book.trace(start, direction, hops, asset)


def test_an_entry_that_moved_nothing_is_no_start(book: Book) -> None:
    refused = book.pay(E, A, 5)
    with pytest.raises(TraceStartInvalid) as caught:
        book.trace(refused)
    assert caught.value.code == "trace_start_invalid"


def test_routes_answer_as_documented_and_refuse_bad_requests_with_their_codes(book: Book) -> None:
    ids = mixing_history(book)
    fake = SimpleNamespace(metrics=NodeMetrics(), chain=book.chain, storage=book.storage)
    start = ids["a_c"].hex()
    asks = [
        f"/v1/audit/trace?start={start}&direction=forward&hops=3",
        f"/v1/audit/trace?start={D.address}&direction=backward&hops=2&asset=BLY",
        f"/v1/audit/entries?counterparty={C.address}&limit=1",
        "/v1/audit/trace?start=nonsense",
        f"/v1/audit/trace?start={start}&direction=up",
        f"/v1/audit/trace?start={start}&hops=11",
        f"/v1/audit/trace?start={start}&hops=two",
        f"/v1/audit/trace?start={start}&asset=bly",
        f"/v1/audit/trace?start={start}&format=png",
        f"/v1/audit/trace?start={'ab' * 32}",
        "/v1/audit/entries?kind=teleport",
    ]

    async def scenario() -> tuple[list[tuple[int, Any]], str, str]:
        answers = []
        async with TestClient(TestServer(app_for(fake))) as client:
            for url in asks:
                response = await client.get(url)
                answers.append((response.status, await response.json()))
            drawing = await client.get(f"/v1/audit/trace?start={start}&hops=3&format=svg")
            assert drawing.status == 200
            return answers, drawing.headers["Content-Type"], await drawing.text()

    answers, content_type, svg = asyncio.run(asyncio.wait_for(scenario(), 20))
    doc = document()
    for url, (status, body) in zip(asks, answers, strict=True):
        _check(doc, url.split("?")[0], status, body)
    assert answers[0] == (200, book.trace(ids["a_c"], "forward", hops=3))
    assert answers[1][1]["edges"][0]["to"] == D.address and answers[1][1]["nodes"][0]["id"] == D.address
    page = answers[2][1]
    assert [e["id"] for e in page["entries"]] == [ids["a_c"].hex()] and page["next"] == "2:0"
    assert [(status, body["error"]["code"]) for status, body in answers[3:]] == [
        (400, "trace_start_invalid"), (400, "trace_direction_invalid"), (400, "trace_hops_invalid"),
        (400, "trace_hops_invalid"), (400, "trace_asset_invalid"), (400, "bad_request"), (404, "not_found"),
        (400, "audit_filter_invalid")]
    assert content_type.startswith("image/svg+xml")
    root = ElementTree.fromstring(svg)  # well-formed, one box per account, one labelled arrow per flow
    assert root.tag.endswith("svg")
    assert svg.count('class="node"') == 4 and svg.count('class="edge"') == 4
    assert "10 BLY of 40" in svg and "5 BLY of 35" in svg

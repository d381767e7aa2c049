"""State transactions: a REJECTED entry changes nothing but its author's chain, whatever its
handler wrote before it refused; transactions nest; commitments wait for them to close."""

from __future__ import annotations

import pytest

from bilayer import codec
from bilayer.execution.executor import execute, genesis_state
from bilayer.execution.governance.context import MAX_BALANCE, ExecContext
from bilayer.execution.governance.council import Council
from bilayer.execution.state import InTransaction, State, author_key
from bilayer.genesis import Allocation, ChainParams, Genesis, GenesisCouncilMember
from bilayer.ledger.entry import EntryHeader
from bilayer.ledger.operations import GovExecute, GovPropose, GovVote, Operation, RecoverAssets
from tests.support.builders import make_entry, seeded_signer
from tests.support.governance import PARAMS

A, B, C = seeded_signer(11), seeded_signer(12), seeded_signer(13)
LOST, NEW = seeded_signer(1), seeded_signer(2)
GENESIS = Genesis(
    "tx-test", 0, params=ChainParams(pow_bits=0),
    allocations=(Allocation(LOST.address, "BLY", 1000), Allocation(LOST.address, "GLD", 1),
                 Allocation(NEW.address, "GLD", MAX_BALANCE)),
    council=tuple(GenesisCouncilMember(n, s.public_key.hex(), 1) for n, s in (("a", A), ("b", B), ("c", C))),
    governance=PARAMS,
)


def test_a_rejected_recovery_moves_no_asset() -> None:
    """The second asset's reissue overflows the new account after the first has moved: the
    execution is REJECTED and the first asset is still where it was."""
    state = genesis_state(GENESIS)
    heads: dict[bytes, tuple[int, bytes]] = {}

    def run(time_ms: int, *writes: tuple[object, Operation]) -> list[tuple[str, str]]:
        ordered = []
        for signer, op in writes:
            seq, head = heads.get(signer.public_key, (0, GENESIS.root))  # type: ignore[attr-defined]
            entry_id, signed = make_entry(signer, GENESIS, seq=seq, parents=[head], op=op)  # type: ignore[arg-type]
            heads[signer.public_key] = (seq + 1, entry_id)  # type: ignore[attr-defined]
            ordered.append((entry_id, codec.decode(signed.header, EntryHeader)))
        return [(str(r.outcome), r.code) for r in execute(ExecContext(1, time_ms, PARAMS), state, ordered)]

    action = RecoverAssets(lost=LOST.public_key, to=NEW.public_key, assets=("BLY", "GLD"))
    assert run(0, (A, GovPropose(action=action, reason="key stolen", legal_ref="")), (A, GovVote(1, "yes")),
               (B, GovVote(1, "yes")), (C, GovVote(1, "yes"))) == [("FINAL", "")] * 4
    state.take_dirty()
    before = dict(state.items())
    assert run(PARAMS.timelock_ms, (C, GovExecute(1))) == [("REJECTED", "balance_overflow")]
    assert state.balance(LOST.public_key, "BLY") == 1000
    assert state.balance(NEW.public_key, "BLY") == 0
    assert Council(state).proposal(1).status == "passed"
    changed = {key for key, _ in state.take_dirty()}
    assert changed == {author_key(C.public_key)}  # only the executor's chain advanced
    after = dict(state.items())
    del after[author_key(C.public_key)]
    before.pop(author_key(C.public_key), None)
    assert after == before


def test_nested_transactions_commit_into_the_outer_and_roll_back_with_it() -> None:
    state = State([(b"k1", b"v1"), (b"k2", b"v2")])
    root = state.root()
    state.begin_transaction()
    state.set(b"k1", b"x")
    state.begin_transaction()
    state.delete(b"k2")
    state.set(b"k3", b"new")
    state.commit_transaction()
    assert state.get(b"k2") is None and state.get(b"k3") == b"new"
    state.begin_transaction()
    state.set(b"k1", b"y")
    state.rollback_transaction()
    assert state.get(b"k1") == b"x"
    state.rollback_transaction()
    assert dict(state.items()) == {b"k1": b"v1", b"k2": b"v2"}
    assert list(state.scan(b"k")) == [(b"k1", b"v1"), (b"k2", b"v2")]
    assert state.root() == root
    assert state.take_dirty() == []


def test_a_committed_transaction_is_persisted_like_any_write() -> None:
    state = State([(b"k1", b"v1")])
    state.take_dirty()
    state.begin_transaction()
    state.set(b"k2", b"v2")
    state.delete(b"k1")
    state.commit_transaction()
    assert state.take_dirty() == [(b"k1", None), (b"k2", b"v2")]
    assert state.root() == State([(b"k2", b"v2")]).root()


def test_commitments_are_refused_inside_a_transaction() -> None:
    state = State([(b"k", b"v")])
    state.begin_transaction()
    for ask in (state.root, state.take_dirty, lambda: state.prove(b"k")):
        with pytest.raises(InTransaction):
            ask()
    state.rollback_transaction()
    with pytest.raises(InTransaction):
        state.commit_transaction()
    with pytest.raises(InTransaction):
        state.rollback_transaction()


def test_prefix_scan_sees_only_its_prefix_in_key_order() -> None:
    keys = [b"C" + bytes([i]) * 32 for i in (9, 1, 200)] + [b"Ct", b"B\x01x", b"", b"C", b"Cz\x00"]
    state = State((key, key[::-1] or b"-") for key in keys)
    assert [k for k, _ in state.scan(b"C")] == sorted(k for k in keys if k.startswith(b"C"))
    assert [k for k, _ in state.scan(b"Ct")] == [b"Ct"]
    assert [k for k, _ in state.scan(b"C\x01")] == [b"C" + b"\x01" * 32]
    assert [k for k, _ in state.scan(b"")] == sorted(keys)
    state.delete(b"Ct")
    assert [k for k, _ in state.scan(b"Ct")] == []


def test_prefix_scans_of_application_keys_match_a_walk_of_the_state() -> None:
    """An application's keys are indexed by its prefix and the record kind after it, so a
    listing of one kind looks at that kind only; every prefix still finds exactly its keys,
    before and after a rolled-back transaction."""
    import random

    rng = random.Random(7)
    state = State()
    apps = [b"Znotary\x00", b"Zwarehouse\x00", b"Zw\x00", b"Zwarehousex\x00"]
    keys = {app + bytes([kind]) + rng.randbytes(rng.randint(0, 3))
            for app in apps for kind in b"rlx" for _ in range(40)}
    keys |= {b"B" + rng.randbytes(4) for _ in range(50)} | {b"Z", b"Zwarehouse\x00", b"Zw"}
    for key in keys:
        state.set(key, b"v")
    prefixes = [b"", b"Z", b"Zw", b"Zwarehouse", b"Zwarehouse\x00", b"Zwarehouse\x00r", b"Zwarehouse\x00r\x01",
                b"Zw\x00", b"Zw\x00l", b"Znotary\x00x", b"B", b"B\x01", b"Q"]

    def check() -> None:
        for prefix in prefixes:
            walked = sorted(k for k, _ in state.items() if k.startswith(prefix))
            assert [k for k, _ in state.scan(prefix)] == walked, prefix

    check()
    receipts = b"Zwarehouse\x00r"
    assert len(state._index._groups[receipts]) == sum(1 for k in keys if k.startswith(receipts))
    state.begin_transaction()
    for key in list(keys)[:30]:
        state.delete(key)
    state.set(b"Zwarehouse\x00rnew", b"v")
    check()
    state.rollback_transaction()
    check()

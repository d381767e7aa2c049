"""The invariant checker finds each kind of corruption; the keeper's register and its
transaction; the refusal codes are unique and namespaced."""

from __future__ import annotations

import inspect

import msgspec
import pytest

from bilayer.apps.warehouse import errors
from bilayer.apps.warehouse.invariants import violations
from bilayer.apps.warehouse.keeper import BY_HOLDER, Keeper
from bilayer.apps.warehouse.operations import OPERATIONS, FreezeReceipt, OpenCase
from bilayer.apps.warehouse.records import Pledge, receipt_id
from bilayer.execution.application import app_prefix
from bilayer.execution.state import State
from tests.support.warehouse_world import COILS, World, digest, key, standard_world

WB1 = "urn:epc:id:giai:6901234.wh1WB"


def world() -> tuple[World, bytes, bytes, tuple[bytes, ...]]:
    """Two receipts over two coils each; the second pledged to bank A."""
    w = standard_world()
    lots = tuple(w.intake("wh1", WB1, coil, 20_000) for coil in COILS[:4])
    free = w.issue("wh1", "dep", lots[:2])
    pledged = w.issue("wh1", "dep", lots[2:])
    w.pledge(pledged, "dep", "bank_a", "wh1")
    assert violations(w.k) == []
    return w, free, pledged, lots


def rules(w: World) -> set[str]:
    return {v.split(":")[0] for v in violations(w.k)}


def test_a_lot_listed_by_two_receipts_breaks_inv2() -> None:
    w, free, _, lots = world()
    w.k.put_receipt(msgspec.structs.replace(w.receipt(free), lots=(*w.receipt(free).lots, lots[2])))
    assert "INV-2" in rules(w)


def test_a_quantity_that_is_not_the_sum_of_the_lots_breaks_inv3() -> None:
    w, free, _, _ = world()
    r = w.receipt(free)
    w.k.put_receipt(msgspec.structs.replace(r, goods=msgspec.structs.replace(r.goods, quantity_kg=1)))
    assert rules(w) == {"INV-3"}


def test_a_second_live_pledge_or_a_pledged_state_without_one_breaks_inv4() -> None:
    w, free, pledged, _ = world()
    w.k.put_pledge(Pledge(digest("second"), key("dep"), key("bank_b"), (pledged,), "f2", "", w.height))
    assert "INV-4" in rules(w)
    w, free, pledged, _ = world()
    w.k.put_receipt(msgspec.structs.replace(w.receipt(free), status="pledged"))
    assert "INV-4" in rules(w)


def test_a_lot_without_its_intake_weighing_breaks_inv5() -> None:
    w, _, _, lots = world()
    lot = w.k.lot(lots[0])
    assert lot is not None
    w.k.put_lot(msgspec.structs.replace(lot, net_kg=lot.net_kg + 1))
    assert "INV-5" in rules(w)


def test_a_holder_who_cannot_hold_or_a_stale_register_breaks_inv1() -> None:
    w, free, _, _ = world()
    w.k.put_receipt(msgspec.structs.replace(w.receipt(free), holder=key("insp")))
    assert "INV-1" in rules(w)
    w, free, _, _ = world()
    w.state.set(app_prefix("warehouse") + BY_HOLDER + key("buyer") + free, b"")
    assert rules(w) == {"INV-1"}


def test_children_that_do_not_conserve_the_parent_break_inv7() -> None:
    from bilayer.apps.warehouse.operations import SplitReceipt
    w, free, _, lots = world()
    w.do("dep", SplitReceipt(free, ((lots[0],), (lots[1],))))
    assert violations(w.k) == []
    parent = w.receipt(free)
    w.k.put_receipt(msgspec.structs.replace(parent, children=parent.children[:1]))
    assert "INV-7" in rules(w)


def test_a_gap_or_a_foreign_id_in_the_series_breaks_inv11() -> None:
    w, free, _, _ = world()
    info = w.k.warehouse(key("wh1"))
    assert info is not None
    w.k.put_warehouse(msgspec.structs.replace(info, next_receipt_no=info.next_receipt_no + 1))
    assert rules(w) == {"INV-11"}
    w, free, _, _ = world()
    w.k.put_receipt(msgspec.structs.replace(w.receipt(free), number=7))
    assert "INV-11" in rules(w)


def test_the_register_lists_by_warehouse_holder_state_and_freeze() -> None:
    w, free, pledged, _ = world()
    w.do("reg", OpenCase("inquiry", "ref", "summary"), regulator=True)
    w.do("reg", FreezeReceipt(free, 1), regulator=True)
    ids = lambda receipts: [r.id for r in receipts]  # noqa: E731
    assert set(ids(w.k.register(warehouse=key("wh1")))) == {free, pledged}
    assert ids(w.k.register(warehouse=key("wh2"))) == []
    assert set(ids(w.k.register(holder=key("dep")))) == {free, pledged}
    assert ids(w.k.register(status="pledged")) == [pledged]
    assert ids(w.k.register(frozen=True)) == [free]
    assert ids(w.k.register(holder=key("dep"), frozen=False)) == [pledged]
    assert [p.key for p in w.k.parties() if p.role == "bank"] == sorted([key("bank_a"), key("bank_b")])
    assert [d.device_id for d in w.k.devices(key("wh1"))] == [WB1]
    assert free == receipt_id(key("wh1"), 1)


def test_apply_runs_in_a_state_transaction_nested_in_the_callers() -> None:
    from bilayer.apps.warehouse import Context, apply
    from bilayer.apps.warehouse.operations import RegisterParty

    state = State()
    op = RegisterParty(key("bank"), "bank", "Bank", "91310000MA1FL0000X", "Shanghai")
    state.begin_transaction()  # the entry's, on the chain
    apply(state, Context(digest("e1"), key("council"), 1, 0, council=True), op)
    assert Keeper(state).party(key("bank")) is not None
    state.rollback_transaction()  # the entry is refused later: the transition's writes go too
    assert len(state) == 0 and not state.in_transaction


def test_every_key_is_under_the_warehouse_prefix() -> None:
    w, _, _, _ = world()
    assert all(k.startswith(app_prefix("warehouse")) for k, _ in w.state.items())


def test_refusal_codes_are_unique_and_namespaced() -> None:
    coded = errors.WarehouseRejected | errors.EvidenceInvalid
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, coded) and c is not errors.StatelessRuleBroken]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    assert all(code.startswith("warehouse.") for code in codes)
    from bilayer.apps.warehouse import APPLY
    assert set(APPLY) == set(OPERATIONS)
    kinds = [op.KIND for op in OPERATIONS]
    assert len(kinds) == len(set(kinds)) and all(k.startswith("warehouse.") for k in kinds)


def test_apply_takes_a_plain_state_and_a_refusal_leaves_it_untouched() -> None:
    from bilayer.apps.warehouse import Context, apply
    from bilayer.apps.warehouse.errors import WarehouseRejected
    from bilayer.apps.warehouse.operations import RegisterParty

    state = State()
    op = RegisterParty(key("bank"), "bank", "Bank", "91310000MA1FL0000X", "Shanghai")
    with pytest.raises(WarehouseRejected) as info:
        apply(state, Context(digest("e1"), key("someone"), 1, 0), op)
    assert info.value.code == "warehouse.not_council" and len(state) == 0
    apply(state, Context(digest("e2"), key("council"), 2, 0, council=True), op)
    party = Keeper(state).party(key("bank"))
    assert party is not None and party.role == "bank" and party.appointed_entry == digest("e2")


def test_records_and_operations_render_for_the_api_with_hex_ids() -> None:
    from bilayer.apps.warehouse.operations import Countersign
    from bilayer.apps.warehouse.records import to_view

    w, free, _, _ = world()
    view = to_view(w.receipt(free))
    assert view["id"] == free.hex() and view["holder"] == key("dep").hex() and view["status"] == "active"
    assert view["goods"]["quantity_kg"] == 40_000 and view["endorsements"][0]["kind"] == "issue"
    assert Countersign(free, digest("o")).view() == {"kind": "warehouse.countersign", "receipt": free.hex(),
                                                     "offer": digest("o").hex()}

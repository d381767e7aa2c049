"""A small warehouse world driven through the pure apply functions, and its happy path.

`World` is what the other warehouse tests build on: named keys, a clock, a height, and one
call per act (`w.do(signer, op)`), over a plain `State`.
"""

from __future__ import annotations

from bilayer.apps.warehouse.invariants import violations
from tests.support.warehouse_world import COILS, key, standard_world


def test_intake_issue_pledge_happy_path() -> None:
    w = standard_world()
    wb = "urn:epc:id:giai:6901234.wh1WB"
    lots = tuple(w.intake("wh1", wb, coil, 23_000) for coil in COILS)
    rid = w.issue("wh1", "dep", lots)
    r = w.receipt(rid)
    assert (r.status, r.holder, r.number, r.goods.quantity_kg, r.goods.pieces) == ("active", key("dep"), 1, 230_000, 10)
    assert [e.kind for e in r.endorsements] == ["issue"]
    assert r.endorsements[0].countersigned_by == key("sup")
    w.pledge(rid, "dep", "bank_a", "wh1")
    r = w.receipt(rid)
    assert r.status == "pledged" and r.holder == key("dep")
    pledge = w.k.pledge(r.pledge)
    assert pledge is not None and pledge.pledgee == key("bank_a") and pledge.receipts == (rid,)
    assert [x.id for x in w.k.register(holder=key("dep"))] == [rid]
    assert [x.id for x in w.k.register(status="pledged")] == [rid]
    assert violations(w.k) == []

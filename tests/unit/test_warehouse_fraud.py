"""Replays of the classic warehouse-receipt frauds: each attempt is refused with its code
and changes nothing (Qingdao 2014: the same metal behind several receipts at several
warehouses, pledged to many banks; Shanghai 2012: steel never in the warehouse)."""

from __future__ import annotations

import msgspec

from bilayer.apps.warehouse import epcis
from bilayer.apps.warehouse.invariants import violations
from bilayer.apps.warehouse.operations import (
    ApproveDevice,
    ConfirmPledge,
    Countersign,
    DeclareDefault,
    FreezeReceipt,
    MergeReceipts,
    OfferTransfer,
    OpenCase,
    ProposeDevice,
    RecordReading,
    RegisterLot,
    ReleasePledge,
    RequestPledge,
    SplitReceipt,
    Surrender,
)
from bilayer.apps.warehouse.records import Calibration, lot_key
from tests.support.warehouse_receipts import proposal
from tests.support.warehouse_world import COILS, T0, YEAR, World, digest, goods, key, read_point, standard_world

WB1 = "urn:epc:id:giai:6901234.wh1WB"
WB2 = "urn:epc:id:giai:6901234.wh2WB"


def qingdao() -> tuple[World, bytes, tuple[bytes, ...]]:
    """Ten coils of 23 t weighed into wh1, one receipt R of 230 t, pledged to bank A."""
    w = standard_world()
    lots = tuple(w.intake("wh1", WB1, coil, 23_000) for coil in COILS)
    rid = w.issue("wh1", "dep", lots)
    w.pledge(rid, "dep", "bank_a", "wh1")
    assert w.receipt(rid).goods.quantity_kg == 230_000
    return w, rid, lots


def test_the_same_receipt_pledged_to_a_second_bank_is_refused() -> None:
    w, rid, _ = qingdao()
    w.refused("warehouse.already_pledged", "dep", RequestPledge(rid, key("bank_b"), "facility-b"))
    # nor can bank B confirm a request it was never offered, or the warehouse seal one
    pledge = w.receipt(rid).pledge
    w.refused("warehouse.wrong_status", "bank_b", ConfirmPledge(rid, pledge))
    w.refused("warehouse.wrong_status", "wh1", Countersign(rid, pledge))
    pledges = [p for p in w.k.pledges() if p.status == "live"]
    assert [(p.pledgee, p.receipts) for p in pledges] == [(key("bank_a"), (rid,))]


def test_a_pending_pledge_request_cannot_be_confirmed_by_another_bank() -> None:
    w = standard_world()
    lots = tuple(w.intake("wh1", WB1, coil, 23_000) for coil in COILS[:2])
    rid = w.issue("wh1", "dep", lots)
    offer = w.do("dep", RequestPledge(rid, key("bank_a"), "facility-a"))
    w.refused("warehouse.wrong_signer", "bank_b", ConfirmPledge(rid, offer))
    w.refused("warehouse.wrong_status", "dep", RequestPledge(rid, key("bank_b"), "facility-b"))


def test_the_same_coils_for_a_second_receipt_at_the_same_warehouse_are_refused() -> None:
    w, _, lots = qingdao()
    w.refused("warehouse.lot_already_receipted", "wh1", proposal(w, lots))
    w.refused("warehouse.lot_already_receipted", "wh1", proposal(w, lots[:1]))
    # weighing the same coil again to book it a second time is refused too
    again = w.weigh(WB1, "receiving", COILS[0], 23_000)
    w.refused("warehouse.lot_held_elsewhere", "wh1",
              RegisterLot(*COILS[0], "coil", "Q235B", "5.75x1500", 1, again, digest("mill"), "2026-10-01", "A1"))


def test_the_same_coils_at_a_second_warehouse_are_refused() -> None:
    w, _, lots = qingdao()
    # wh2 "weighs" the same heat and coil numbers on its own bridge and tries to book them
    fake = w.weigh(WB2, "receiving", COILS[0], 23_000)
    w.refused("warehouse.lot_held_elsewhere", "wh2",
              RegisterLot(*COILS[0], "coil", "Q235B", "5.75x1500", 1, fake, digest("mill"), "2026-10-01", "A1"))
    # or proposes a receipt over wh1's lots directly
    w.refused("warehouse.lot_not_in_warehouse", "wh2", msgspec.structs.replace(proposal(w, lots), number=1))
    assert all(lot.warehouse == key("wh1") for lot in w.k.lots())


def test_a_pledged_receipt_moved_by_its_holder_alone_is_refused() -> None:
    w, rid, lots = qingdao()
    w.refused("warehouse.receipt_pledged", "dep", OfferTransfer(rid, key("buyer")))
    w.refused("warehouse.receipt_pledged", "dep", SplitReceipt(rid, (lots[:5], lots[5:])))
    w.refused("warehouse.receipt_pledged", "dep", Surrender(rid, digest("truck 7")))
    w.refused("warehouse.not_pledgee", "dep", ReleasePledge(rid))
    w.refused("warehouse.not_pledgee", "wh1", ReleasePledge(rid, lots[:2]))
    other = w.issue("wh1", "dep", (w.intake("wh1", WB1, ("MILL02", "H9", "C1"), 20_000),))
    w.refused("warehouse.receipt_pledged", "dep", MergeReceipts((rid, other)))


def test_a_receipt_without_intake_evidence_is_refused() -> None:
    w = standard_world()
    ghost = lot_key("MILL01", "H00", "C00")
    w.refused("warehouse.lot_unknown", "wh1", proposal(w, (ghost,), goods=goods(23_000, 1)))
    book = RegisterLot("MILL01", "H00", "C00", "coil", "Q235B", "5.75x1500", 1, digest("invented event"),
                       digest("mill"), "2026-10-01", "A1")
    w.refused("warehouse.evidence_unknown", "wh1", book)
    # a gate reader's sighting is evidence of something, but not a weighing
    gate = "urn:epc:id:giai:6901234.GATE1"
    w.do("wh1", ProposeDevice(gate, "gate_reader", ("A1",), key(gate), read_point(gate),
                              Calibration(digest("c"), "", 0, T0 + YEAR)))
    w.do("sup", ApproveDevice(gate))
    sighting = w.reading(gate, "receiving", (("MILL01", "H00", "C00"),), 0, 0, reports=())
    w.do(key(gate), RecordReading(sighting))
    w.refused("warehouse.not_intake_evidence", "wh1",
              msgspec.structs.replace(book, intake_event=epcis.event_hash(sighting)))
    # another warehouse's weighing of that coil does not book it here (the Shanghai insider)
    theirs = w.weigh(WB2, "receiving", ("MILL01", "H00", "C00"), 23_000)
    w.refused("warehouse.not_intake_evidence", "wh1", msgspec.structs.replace(book, intake_event=theirs))
    assert w.k.lots() == [] and w.k.register() == []


def test_a_frozen_receipt_is_out_of_everyones_reach_but_the_regulators() -> None:
    w, rid, _ = qingdao()
    w.do("reg", OpenCase("duplicate_pledge", "PBoC Qingdao 2014-06", "metal pledged to many banks"), regulator=True)
    w.do("reg", FreezeReceipt(rid, 1), regulator=True)
    w.refused("warehouse.receipt_frozen", "bank_a", DeclareDefault(rid, 0))
    w.refused("warehouse.receipt_frozen", "bank_a", ReleasePledge(rid))
    w.refused("warehouse.receipt_frozen", "dep", OfferTransfer(rid, key("buyer")))


def test_splitting_before_pledging_finances_each_coil_once() -> None:
    """The honest way to borrow from two banks: split first; each bank holds different coils,
    and the pledged tonnage never exceeds what was weighed in."""
    w = standard_world()
    lots = tuple(w.intake("wh1", WB1, coil, 23_000) for coil in COILS)
    rid = w.issue("wh1", "dep", lots)
    w.do("dep", SplitReceipt(rid, (lots[:4], lots[4:])))
    a, b = w.receipt(rid).children
    w.pledge(a, "dep", "bank_a", "wh1")
    w.pledge(b, "dep", "bank_b", "wh1")
    pledged = sum(w.receipt(r).goods.quantity_kg for p in w.k.pledges() if p.status == "live" for r in p.receipts)
    assert pledged == sum(lot.net_kg for lot in w.k.lots()) == 230_000
    assert violations(w.k) == []

"""Every receipt transition, and each of its refusals with its code (a refusal changes nothing)."""

from __future__ import annotations

from bilayer.apps.warehouse.invariants import violations
from bilayer.apps.warehouse.operations import (
    AcceptReceipt,
    AcceptTransfer,
    CancelOffer,
    CancelReceipt,
    ConfirmPledge,
    ConvertToPaper,
    Countersign,
    CureDefault,
    DeclareDefault,
    ExpireReceipt,
    ExtendReceipt,
    FreezeReceipt,
    InvokePledge,
    MergeReceipts,
    OfferTransfer,
    OpenCase,
    RegisterLot,
    RejectReceipt,
    ReleasePledge,
    RequestPledge,
    RevokeParty,
    SplitReceipt,
    Surrender,
    UnfreezeReceipt,
    VoidReceipt,
)
from bilayer.apps.warehouse.records import TRANSITIONS, Terms, lot_key, receipt_id
from tests.support.warehouse_receipts import proposal
from tests.support.warehouse_world import COILS, DAY, T0, YEAR, World, digest, goods, key, standard_world

WB1 = "urn:epc:id:giai:6901234.wh1WB"
WB2 = "urn:epc:id:giai:6901234.wh2WB"


def stocked(n: int = 4) -> tuple[World, tuple[bytes, ...]]:
    w = standard_world()
    return w, tuple(w.intake("wh1", WB1, coil, 20_000 + i * 100) for i, coil in enumerate(COILS[:n]))


def active(n: int = 4) -> tuple[World, bytes, tuple[bytes, ...]]:
    w, lots = stocked(n)
    return w, w.issue("wh1", "dep", lots), lots


def pledged(n: int = 4) -> tuple[World, bytes, tuple[bytes, ...]]:
    w, rid, lots = active(n)
    w.pledge(rid, "dep", "bank_a", "wh1")
    return w, rid, lots


def status(w: World, rid: bytes) -> str:
    return w.receipt(rid).status


# --- propose and accept ---------------------------------------------------------------------------


def test_a_proposal_needs_the_next_number_eligible_depositor_booked_lots_and_their_exact_sum() -> None:
    w, lots = stocked()
    total = sum(20_000 + i * 100 for i in range(4))
    for code, signer, changes in (
            ("warehouse.receipt_number_out_of_series", "wh1", {"number": 2}),
            ("warehouse.receipt_number_out_of_series", "wh1", {"number": 0}),
            ("warehouse.ineligible_holder", "wh1", {"depositor": key("insp")}),
            ("warehouse.ineligible_holder", "wh1", {"depositor": key("nobody")}),
            ("warehouse.lot_unknown", "wh1", {"listed": (*lots[:3], digest("ghost"))}),
            ("warehouse.quantity_mismatch", "wh1", {"goods": goods(total + 1, 4)}),
            ("warehouse.quantity_mismatch", "wh1", {"goods": goods(total, 5)}),
            ("warehouse.receipt_expired", "wh1", {"terms": Terms(3, w.time, 50, "CNY")}),
            ("warehouse.wrong_role", "dep", {}),
            ("warehouse.lot_not_in_warehouse", "wh2", {})):
        code = "warehouse.invalid_operation" if changes.get("number") == 0 else code
        w.refused(code, signer, proposal(w, changes.pop("listed", lots), **changes))
    rid = w.propose("wh1", "dep", lots)
    r = w.receipt(rid)
    assert (r.status, r.holder, r.number, r.goods.quantity_kg) == ("proposed", key("wh1"), 1, total)
    assert r.evidence == tuple(w.k.lot(k).intake_event for k in r.lots)  # type: ignore[union-attr]
    w.refused("warehouse.lot_already_receipted", "wh1", proposal(w, lots))
    w.refused("warehouse.receipt_number_out_of_series", "wh1", proposal(w, lots, number=1))
    assert violations(w.k) == []


def test_acceptance_needs_the_depositor_and_the_supervisor_in_either_order_within_the_window() -> None:
    w, lots = stocked()
    rid = w.propose("wh1", "dep", lots[:2])
    w.refused("warehouse.wrong_signer", "bank_a", AcceptReceipt(rid))
    w.do("sup", AcceptReceipt(rid))
    w.refused("warehouse.wrong_signer", "sup", AcceptReceipt(rid))
    assert status(w, rid) == "proposed"
    w.do("dep", AcceptReceipt(rid))
    r = w.receipt(rid)
    assert (r.status, r.holder, r.endorsements[0].countersigned_by) == ("active", key("dep"), key("sup"))
    late = w.propose("wh1", "dep", lots[2:])
    w.time += 8 * DAY
    w.refused("warehouse.acceptance_window_over", "dep", AcceptReceipt(late))
    w.do("dep", RejectReceipt(late, "too late"))
    assert status(w, late) == "void"
    assert violations(w.k) == []


def test_without_required_signoff_the_depositor_alone_accepts() -> None:
    w = World()
    w.party("sup", "supervisor")
    w.warehouse("wh3", signoff=False)
    w.party("dep", "depositor", by="wh3")
    wb = w.weighbridge("wh3")
    lot = w.intake("wh3", wb, COILS[0], 25_000)
    rid = w.propose("wh3", "dep", (lot,))
    w.refused("warehouse.wrong_signer", "sup", AcceptReceipt(rid))
    w.do("dep", AcceptReceipt(rid))
    assert status(w, rid) == "active"


def test_a_refused_proposal_frees_its_lots_but_not_its_number() -> None:
    w, lots = stocked(2)
    rid = w.propose("wh1", "dep", lots)
    w.refused("warehouse.wrong_signer", "bank_a", RejectReceipt(rid))
    w.do("wh1", RejectReceipt(rid, "withdrawn"))
    assert status(w, rid) == "void"
    assert all(w.k.lot(k).receipt == b"" for k in lots)  # type: ignore[union-attr]
    w.refused("warehouse.wrong_status", "dep", AcceptReceipt(rid))
    again = w.propose("wh1", "dep", lots)
    assert w.receipt(again).number == 2 and again == receipt_id(key("wh1"), 2)
    assert violations(w.k) == []


# --- transfer ---------------------------------------------------------------------------------------


def test_a_transfer_needs_the_transferee_and_the_bailee_in_either_order() -> None:
    w, rid, _ = active()
    w.refused("warehouse.not_holder", "buyer", OfferTransfer(rid, key("buyer")))
    w.refused("warehouse.ineligible_holder", "dep", OfferTransfer(rid, key("insp")))
    w.refused("warehouse.ineligible_holder", "dep", OfferTransfer(rid, key("dep")))
    offer = w.do("dep", OfferTransfer(rid, key("buyer")))
    w.refused("warehouse.wrong_status", "dep", OfferTransfer(rid, key("bank_a")))
    w.refused("warehouse.offer_mismatch", "buyer", AcceptTransfer(rid, digest("other offer")))
    w.refused("warehouse.wrong_signer", "bank_a", AcceptTransfer(rid, offer))
    w.refused("warehouse.wrong_status", "buyer", ConfirmPledge(rid, offer))
    w.refused("warehouse.not_issuer", "wh2", Countersign(rid, offer))
    w.do("wh1", Countersign(rid, offer))
    w.refused("warehouse.wrong_signer", "wh1", Countersign(rid, offer))
    assert w.receipt(rid).holder == key("dep")
    w.do("buyer", AcceptTransfer(rid, offer))
    r = w.receipt(rid)
    assert (r.status, r.holder, r.offer) == ("active", key("buyer"), None)
    assert (r.endorsements[-1].kind, r.endorsements[-1].endorser, r.endorsements[-1].endorsee,
            r.endorsements[-1].countersigned_by) == ("transfer", key("dep"), key("buyer"), key("wh1"))
    assert [x.id for x in w.k.register(holder=key("buyer"))] == [rid] and w.k.register(holder=key("dep")) == []
    back = w.do("buyer", OfferTransfer(rid, key("dep")))
    w.do("dep", AcceptTransfer(rid, back))
    w.refused("warehouse.wrong_signer", "dep", AcceptTransfer(rid, back))
    assert w.receipt(rid).holder == key("buyer")
    w.do("wh1", Countersign(rid, back))
    assert w.receipt(rid).holder == key("dep")
    assert violations(w.k) == []


def test_an_offer_completes_only_while_the_counterparty_is_still_appointed() -> None:
    w, rid, _ = active()
    offer = w.do("dep", OfferTransfer(rid, key("buyer")))
    w.do("buyer", AcceptTransfer(rid, offer))
    w.do("bank_a", RevokeParty(key("buyer"), "KYC failed"))
    w.refused("warehouse.party_revoked", "wh1", Countersign(rid, offer))
    w.do("dep", CancelOffer(rid, offer))
    assert w.receipt(rid).holder == key("dep")


def test_an_offer_is_withdrawn_or_refused_and_then_cannot_be_accepted() -> None:
    w, rid, _ = active()
    offer = w.do("dep", OfferTransfer(rid, key("buyer")))
    w.refused("warehouse.wrong_signer", "bank_b", CancelOffer(rid, offer))
    w.do("buyer", CancelOffer(rid, offer))
    assert status(w, rid) == "active"
    w.refused("warehouse.wrong_status", "buyer", AcceptTransfer(rid, offer))
    offer2 = w.do("dep", OfferTransfer(rid, key("buyer")))
    w.do("wh1", CancelOffer(rid, offer2))  # the bailee refuses to seal
    w.refused("warehouse.wrong_status", "wh1", Countersign(rid, offer2))


# --- pledge ------------------------------------------------------------------------------------------


def test_a_pledge_needs_the_bank_and_the_bailee_and_there_is_only_one() -> None:
    w, rid, _ = active()
    w.refused("warehouse.not_holder", "bank_a", RequestPledge(rid, key("bank_a"), "f1"))
    w.refused("warehouse.wrong_role", "dep", RequestPledge(rid, key("buyer"), "f1"))
    offer = w.do("dep", RequestPledge(rid, key("bank_a"), "f1", "ZDW-2026-0001"))
    w.refused("warehouse.wrong_status", "dep", RequestPledge(rid, key("bank_b"), "f2"))
    w.refused("warehouse.wrong_signer", "bank_b", ConfirmPledge(rid, offer))
    w.refused("warehouse.wrong_status", "bank_a", AcceptTransfer(rid, offer))
    w.do("bank_a", ConfirmPledge(rid, offer))
    assert status(w, rid) == "pledge_requested"
    w.do("wh1", Countersign(rid, offer))
    r = w.receipt(rid)
    pledge = w.k.pledge(r.pledge)
    assert r.status == "pledged" and pledge is not None
    assert (pledge.pledgor, pledge.pledgee, pledge.registration, pledge.status) == (key("dep"), key("bank_a"),
                                                                                    "ZDW-2026-0001", "live")
    w.refused("warehouse.already_pledged", "dep", RequestPledge(rid, key("bank_b"), "f2"))
    assert violations(w.k) == []


def test_nothing_moves_a_pledged_receipt_without_the_pledgee() -> None:
    w, rid, lots = pledged()
    other = w.issue("wh1", "dep", (w.intake("wh1", WB1, COILS[5], 21_000),))
    for op in (OfferTransfer(rid, key("buyer")), SplitReceipt(rid, ((lots[0],), lots[1:])),
               Surrender(rid, digest("collector")), ConvertToPaper(rid, "P-1"), MergeReceipts((rid, other))):
        w.refused("warehouse.receipt_pledged", "dep", op)
    w.refused("warehouse.not_pledgee", "dep", ReleasePledge(rid))
    w.refused("warehouse.not_pledgee", "bank_b", ReleasePledge(rid))
    w.refused("warehouse.not_pledgee", "wh1", DeclareDefault(rid, DAY))


def test_a_partial_release_frees_the_named_lots_and_keeps_the_rest_under_the_same_pledge() -> None:
    w, rid, lots = pledged()
    w.refused("warehouse.not_a_partition", "bank_a", ReleasePledge(rid, (lots[0], digest("foreign"))))
    w.do("bank_a", ReleasePledge(rid, (lots[0],)))
    parent = w.receipt(rid)
    free, still = (w.receipt(c) for c in parent.children)
    assert parent.status == "superseded" and parent.pledge == b""
    assert (free.status, free.holder, free.lots, free.number) == ("active", key("dep"), (lots[0],), 2)
    assert (still.status, still.number, set(still.lots)) == ("pledged", 3, set(lots[1:]))
    assert free.goods.quantity_kg + still.goods.quantity_kg == parent.goods.quantity_kg
    assert free.parents == still.parents == (rid,)
    pledge = w.k.pledge(still.pledge)
    assert pledge is not None and pledge.receipts == (still.id,) and pledge.status == "live"
    w.do("bank_a", ReleasePledge(still.id))
    assert status(w, still.id) == "active"
    assert w.k.pledge(still.pledge or pledge.id).status == "released"  # type: ignore[union-attr]
    assert violations(w.k) == []


def test_default_is_cured_before_the_deadline_or_invoked_after_it() -> None:
    w, rid, _ = pledged()
    w.refused("warehouse.wrong_status", "bank_a", CureDefault(rid))
    w.do("bank_a", DeclareDefault(rid, DAY))
    assert status(w, rid) == "defaulted"
    w.refused("warehouse.cure_period_running", "bank_a", InvokePledge(rid))
    w.refused("warehouse.receipt_pledged", "dep", Surrender(rid, digest("c")))
    w.do("bank_a", CureDefault(rid))
    assert status(w, rid) == "pledged"
    w.do("bank_a", DeclareDefault(rid, DAY))
    w.time += DAY
    w.refused("warehouse.cure_period_over", "bank_a", CureDefault(rid))
    w.refused("warehouse.not_pledgee", "bank_b", InvokePledge(rid))
    w.do("bank_a", InvokePledge(rid))
    r = w.receipt(rid)
    assert (r.status, r.holder, r.pledge, r.endorsements[-1].kind) == ("active", key("bank_a"), b"", "invoke")
    assert violations(w.k) == []


# --- delivery ----------------------------------------------------------------------------------------


def test_surrender_then_outbound_weighings_then_cancel() -> None:
    w, rid, lots = active(2)
    early = w.weigh(WB1, "shipping", COILS[0], 20_000)  # before the surrender: does not count
    assert early
    w.refused("warehouse.not_holder", "wh1", Surrender(rid, digest("collector")))
    w.do("dep", Surrender(rid, digest("collector")))
    r = w.receipt(rid)
    assert (r.status, r.holder, r.delivery.surrendered_by) == ("delivery_pending", key("wh1"), key("dep"))  # type: ignore[union-attr]
    w.refused("warehouse.outbound_evidence_missing", "wh1", CancelReceipt(rid))
    w.weigh(WB1, "shipping", COILS[0], 20_000)
    w.refused("warehouse.outbound_evidence_missing", "wh1", CancelReceipt(rid))
    w.weigh(WB1, "shipping", COILS[1], 20_100)
    w.refused("warehouse.not_issuer", "wh2", CancelReceipt(rid))
    w.do("wh1", CancelReceipt(rid))
    assert status(w, rid) == "cancelled"
    assert all(w.k.lot(k).status == "shipped" and w.k.lot(k).receipt == b"" for k in lots)  # type: ignore[union-attr]
    # the coils may now be taken in elsewhere, against a new weighing
    w.intake("wh2", WB2, COILS[0], 19_990)
    assert w.k.lot(lots[0]).warehouse == key("wh2")  # type: ignore[union-attr]
    assert violations(w.k) == []


def test_a_partial_surrender_keeps_a_receipt_for_the_balance() -> None:
    w, rid, lots = active(3)
    w.refused("warehouse.not_a_partition", "dep", Surrender(rid, digest("c"), (lots[0], digest("x"))))
    w.do("dep", Surrender(rid, digest("c"), (lots[0],)))
    out, rest = (w.receipt(c) for c in w.receipt(rid).children)
    assert (out.status, out.holder, out.lots) == ("delivery_pending", key("wh1"), (lots[0],))
    assert (rest.status, rest.holder, set(rest.lots)) == ("active", key("dep"), set(lots[1:]))
    w.weigh(WB1, "shipping", COILS[0], 20_000)
    w.do("wh1", CancelReceipt(out.id))
    assert violations(w.k) == []


# --- split and merge ---------------------------------------------------------------------------------


def test_split_and_merge_conserve_lots_with_lineage() -> None:
    w, rid, lots = active(4)
    for parts in (((lots[0],), lots[1:3]), ((lots[0], lots[1]), lots[1:]), ((lots[0],), (*lots[1:], digest("x")))):
        w.refused("warehouse.not_a_partition", "dep", SplitReceipt(rid, parts))
    w.refused("warehouse.not_holder", "wh1", SplitReceipt(rid, ((lots[0],), lots[1:])))
    w.do("dep", SplitReceipt(rid, ((lots[0],), (lots[1],), lots[2:])))
    children = w.receipt(rid).children
    assert [w.receipt(c).number for c in children] == [2, 3, 4]
    assert sum(w.receipt(c).goods.quantity_kg for c in children) == w.receipt(rid).goods.quantity_kg
    w.refused("warehouse.wrong_status", "dep", SplitReceipt(rid, ((lots[0],), lots[1:])))
    offer = w.do("dep", OfferTransfer(children[2], key("buyer")))
    w.do("buyer", AcceptTransfer(children[2], offer))
    w.do("wh1", Countersign(children[2], offer))
    w.refused("warehouse.not_holder", "dep", MergeReceipts(children))
    w.do("dep", MergeReceipts(children[:2]))
    merged = w.receipt(w.receipt(children[0]).children[0])
    assert merged.parents == children[:2] and set(merged.lots) == {lots[0], lots[1]} and merged.number == 5
    assert violations(w.k) == []


def test_receipts_of_different_depositors_do_not_merge() -> None:
    w, rid, _ = active(2)
    w.party("dep2", "depositor", by="wh1")
    other = w.issue("wh1", "dep2", (w.intake("wh1", WB1, COILS[6], 21_000),))
    offer = w.do("dep2", OfferTransfer(other, key("dep")))
    w.do("dep", AcceptTransfer(other, offer))
    w.do("wh1", Countersign(other, offer))
    w.refused("warehouse.merge_mismatch", "dep", MergeReceipts((rid, other)))


# --- expiry, paper -----------------------------------------------------------------------------------


def test_expiry_blocks_dealing_until_the_warehouse_extends() -> None:
    w, rid, _ = active()
    w.refused("warehouse.not_yet_expired", "anyone", ExpireReceipt(rid))
    w.time = T0 + YEAR
    w.refused("warehouse.receipt_expired", "dep", OfferTransfer(rid, key("buyer")))
    w.do("anyone", ExpireReceipt(rid))
    r = w.receipt(rid)
    assert (r.status, r.expired_from) == ("expired", "active")
    w.refused("warehouse.wrong_status", "dep", OfferTransfer(rid, key("buyer")))
    w.refused("warehouse.not_issuer", "dep", ExtendReceipt(rid, T0 + 2 * YEAR))
    w.refused("warehouse.extension_not_later", "wh1", ExtendReceipt(rid, w.time))
    w.do("wh1", ExtendReceipt(rid, T0 + 2 * YEAR))
    assert status(w, rid) == "active"
    w.do("dep", OfferTransfer(rid, key("buyer")))


def test_an_expired_pledged_receipt_is_invoked_by_the_pledgee() -> None:
    w, rid, _ = pledged()
    w.time = T0 + YEAR
    w.do("bank_b", ExpireReceipt(rid))
    w.refused("warehouse.receipt_pledged", "dep", Surrender(rid, digest("c")))
    w.do("bank_a", InvokePledge(rid))
    r = w.receipt(rid)
    assert (r.status, r.holder) == ("active", key("bank_a"))
    w.do("bank_a", Surrender(rid, digest("auction buyer")))
    assert violations(w.k) == []


def test_a_paper_receipt_keeps_its_lots_until_brought_back_over_exactly_them() -> None:
    w, rid, lots = active(3)
    w.do("dep", ConvertToPaper(rid, "PAPER-0001"))
    assert status(w, rid) == "converted_to_paper"
    w.refused("warehouse.lot_already_receipted", "wh1", proposal(w, lots))
    w.refused("warehouse.paper_mismatch", "wh1", proposal(w, lots[:2], replaces_paper=rid))
    back = w.propose("wh1", "dep", lots, replaces_paper=rid)
    assert w.receipt(rid).replaced_by == back
    w.do("dep", RejectReceipt(back, "wrong data"))
    assert w.receipt(rid).replaced_by == b"" and all(w.k.lot(k).receipt == rid for k in lots)  # type: ignore[union-attr]
    back = w.propose("wh1", "dep", lots, replaces_paper=rid)
    w.do("dep", AcceptReceipt(back))
    w.do("sup", AcceptReceipt(back))
    assert status(w, back) == "active" and violations(w.k) == []


# --- the regulator and the council ----------------------------------------------------------------------


def test_a_frozen_receipt_moves_only_by_unfreeze_under_its_case_or_by_void() -> None:
    w, rid, lots = pledged()
    w.refused("warehouse.not_regulator", "bank_a", OpenCase("fraud_suspected", "PBoC order 7", "coils missing"))
    w.do("council", OpenCase("ghost_stock", "council resolution 3", "audit"), council=True)
    w.do("reg", OpenCase("fraud_suspected", "PBoC order 7", "coils missing"), regulator=True)
    w.do("reg", OpenCase("court_order", "Qingdao court 12", "attachment"), regulator=True)
    w.refused("warehouse.not_regulator", "reg", FreezeReceipt(rid, 1))
    w.refused("warehouse.case_unknown", "reg", FreezeReceipt(rid, 4), regulator=True)
    w.do("reg", FreezeReceipt(rid, 2), regulator=True)
    w.refused("warehouse.already_frozen", "reg", FreezeReceipt(rid, 3), regulator=True)
    for signer, op in (("bank_a", ReleasePledge(rid)), ("bank_a", DeclareDefault(rid, DAY)),
                       ("dep", OfferTransfer(rid, key("buyer"))), ("dep", RequestPledge(rid, key("bank_b"), "f")),
                       ("dep", Surrender(rid, digest("c"))), ("anyone", ExpireReceipt(rid)),
                       ("wh1", ExtendReceipt(rid, T0 + 2 * YEAR)), ("bank_a", ReleasePledge(rid, (lots[0],)))):
        w.refused("warehouse.receipt_frozen", signer, op)
    w.refused("warehouse.case_mismatch", "reg", UnfreezeReceipt(rid, 3), regulator=True)
    w.refused("warehouse.not_regulator", "reg", UnfreezeReceipt(rid, 2))
    w.do("reg", UnfreezeReceipt(rid, 2), regulator=True)
    w.refused("warehouse.not_frozen", "reg", UnfreezeReceipt(rid, 2), regulator=True)
    w.do("bank_a", ReleasePledge(rid))
    w.do("reg", FreezeReceipt(rid, 3), regulator=True)
    w.refused("warehouse.not_council", "reg", VoidReceipt(rid, 3), regulator=True)
    w.refused("warehouse.case_unknown", "council", VoidReceipt(rid, 9), council=True)
    w.do("council", VoidReceipt(rid, 1), council=True)
    assert status(w, rid) == "void" and all(w.k.lot(k).receipt == b"" for k in lots)  # type: ignore[union-attr]
    w.refused("warehouse.wrong_status", "council", VoidReceipt(rid, 1), council=True)
    w.refused("warehouse.wrong_status", "reg", FreezeReceipt(rid, 2), regulator=True)
    assert violations(w.k) == []


def test_voiding_a_pledged_receipt_voids_its_pledge() -> None:
    w, rid, _ = pledged()
    pledge_id = w.receipt(rid).pledge
    w.do("reg", OpenCase("ghost_stock", "CBIRC", "bags of stones"), regulator=True)
    w.do("council", VoidReceipt(rid, 1), council=True)
    assert w.k.pledge(pledge_id).status == "void"  # type: ignore[union-attr]
    assert violations(w.k) == []


def test_the_transition_table_names_every_receipt_operation() -> None:
    from bilayer.apps.warehouse.operations import OPERATIONS
    receipt_kinds = {cls.KIND.removeprefix("warehouse.") for cls in OPERATIONS} - {
        "register_warehouse", "register_party", "revoke_party", "propose_device", "approve_device",
        "renew_calibration", "revoke_device", "reading", "register_lot", "inspect_lot", "open_case",
        "record_stocktake", "set_monitoring",
        "appoint_publisher", "publish_price", "open_facility", "report_outstanding", "top_up", "close_facility",
        "set_finance_bounds"}
    assert receipt_kinds == set(TRANSITIONS)


def test_an_unknown_receipt_is_refused() -> None:
    w, _ = stocked(1)
    w.refused("warehouse.receipt_unknown", "dep", AcceptReceipt(digest("none")))
    w.refused("warehouse.invalid_operation", "dep", AcceptReceipt(b"short"))
    w.refused("warehouse.lot_held_elsewhere", "wh1",
              RegisterLot(*COILS[0], "coil", "Q235B", "5.75x1500", 1, w.weigh(WB1, "receiving", COILS[0], 20_000),
                          digest("m"), "2026-10-01", "A1"))
    assert lot_key(*COILS[0]) in {x.key for x in w.k.lots()}

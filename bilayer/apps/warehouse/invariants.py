"""The application's invariants as one function over the whole warehouse state.

Registered invariants in the Cosmos SDK's sense: a node or a test can run
`violations(keeper)` at any height and get every broken rule by name. The apply functions
enforce these rules one transition at a time; this checks their sum, independently of how
the state was reached. INV-13 is the HELD overlay's (`monitor.py`). INV-8 (frozen is
absorbing) is a property of transitions, not of one state, so the state-machine test checks
it step by step.
"""

from __future__ import annotations

from collections import defaultdict

from .keeper import Keeper
from .records import UNDER_PLEDGE, Receipt, receipt_id
from .transitions import HOLDER_ROLES


def _under_pledge(r: Receipt) -> bool:
    return r.status in UNDER_PLEDGE or (r.status == "expired" and r.expired_from in UNDER_PLEDGE)


def violations(k: Keeper) -> list[str]:
    receipts = {r.id: r for r in k.register()}
    lots = {lot.key: lot for lot in k.lots()}
    pledges = {p.id: p for p in k.pledges()}
    found: list[str] = []

    def fail(rule: str, message: str) -> None:
        found.append(f"{rule}: {message}")

    # INV-1: every live receipt has exactly one holder, who may hold it; the holder index agrees.
    for r in receipts.values():
        if not r.live:
            continue
        if r.status in ("proposed", "delivery_pending"):
            if r.holder != r.warehouse:
                fail("INV-1", f"receipt {r.number} is {r.status} but not held by its warehouse")
        else:
            party = k.party(r.holder)
            if party is None or party.role not in HOLDER_ROLES:
                fail("INV-1", f"receipt {r.number} is held by a key that cannot hold receipts")
    indexed = set(k.holdings())
    held = {(r.holder, r.id) for r in receipts.values() if r.live}
    if indexed != held:
        fail("INV-1", f"the holder register differs from the receipts in {len(indexed ^ held)} places")

    # INV-2: a lot backs at most one receipt (live, or on paper), the one it names; no empty receipt.
    bound: defaultdict[bytes, list[bytes]] = defaultdict(list)
    for r in receipts.values():
        if r.binds_lots:
            if not r.lots:
                fail("INV-2", f"receipt {r.number} lists no lot")
            for key in r.lots:
                bound[key].append(r.id)
    for key, lot in lots.items():
        holders = bound.get(key, [])
        if len(holders) > 1:
            fail("INV-2", f"coil {lot.coil} backs {len(holders)} receipts")
        if holders != ([lot.receipt] if lot.receipt else []):
            fail("INV-2", f"coil {lot.coil} names a receipt that does not list it, or the reverse")
    for key in bound:
        if key not in lots:
            fail("INV-2", "a receipt lists an unknown lot")

    # INV-3: quantity and pieces are the sums of the lots' (a lot shipped and booked again
    # elsewhere has a new weighing: history keeps the quantity it had).
    for r in receipts.values():
        if not r.binds_lots:
            continue
        listed = [lots[key] for key in r.lots if key in lots]
        if r.goods.quantity_kg != sum(lot.net_kg for lot in listed) or r.goods.pieces != sum(
                lot.pieces for lot in listed):
            fail("INV-3", f"receipt {r.number} states {r.goods.quantity_kg} kg against its lots' weighed nets")

    # INV-4: at most one live pledge per receipt; under pledge exactly when a live pledge names it.
    live_pledges: defaultdict[bytes, int] = defaultdict(int)
    for p in pledges.values():
        if p.status == "live":
            for rid in p.receipts:
                live_pledges[rid] += 1
                pledged = receipts.get(rid)
                if pledged is None or pledged.pledge != p.id or not _under_pledge(pledged):
                    fail("INV-4", "a live pledge names a receipt that is not under it")
    for r in receipts.values():
        if live_pledges[r.id] > 1:
            fail("INV-4", f"receipt {r.number} is under {live_pledges[r.id]} live pledges")
        if _under_pledge(r) != bool(r.pledge):
            fail("INV-4", f"receipt {r.number} is {r.status} but names {'a' if r.pledge else 'no'} pledge")
        if r.pledge and (r.pledge not in pledges or pledges[r.pledge].status != "live"):
            fail("INV-4", f"receipt {r.number} names a pledge that is not live")

    # INV-5: every lot has weighbridge intake evidence at its warehouse; receipts hold lots of their warehouse.
    for lot in lots.values():
        ev = k.evidence(lot.intake_event)
        if (ev is None or ev.lot != lot.key or ev.device_kind != "weighbridge" or ev.reading.biz_step != "receiving"
                or ev.warehouse != lot.warehouse or ev.net_kg != lot.net_kg):
            fail("INV-5", f"coil {lot.coil} has no matching intake weighing")
    for r in receipts.values():
        if r.binds_lots and any(key in lots and lots[key].warehouse != r.warehouse for key in r.lots):
            fail("INV-5", f"receipt {r.number} lists goods of another warehouse")

    # INV-7: lineage conserves lots and quantity.
    for r in receipts.values():
        if r.status != "superseded":
            continue
        children = [receipts[c] for c in r.children if c in receipts]
        if len(children) != len(r.children) or not children or any(r.id not in c.parents for c in children):
            fail("INV-7", f"receipt {r.number} has broken lineage")
            continue
        if len(children) == 1 and len(children[0].parents) > 1:  # a merge
            parents = [receipts[p] for p in children[0].parents if p in receipts]
            before = [key for p in parents for key in p.lots]
            after = list(children[0].lots)
            qty_before = sum(p.goods.quantity_kg for p in parents)
            qty_after = children[0].goods.quantity_kg
        else:
            before = list(r.lots)
            after = [key for c in children for key in c.lots]
            qty_before = r.goods.quantity_kg
            qty_after = sum(c.goods.quantity_kg for c in children)
        if sorted(before) != sorted(after) or len(set(after)) != len(after) or qty_before != qty_after:
            fail("INV-7", f"receipt {r.number}'s successors do not conserve its goods")

    # INV-11: a warehouse's numbers are 1..next-1, each once, each naming its receipt id.
    for w in k.warehouses():
        numbers = sorted(r.number for r in k.receipts_of_warehouse(w.key))
        if numbers != list(range(1, w.next_receipt_no)):
            fail("INV-11", f"a warehouse's receipt numbers are not its consumed series 1..{w.next_receipt_no - 1}")
    for r in receipts.values():
        if r.id != receipt_id(r.warehouse, r.number):
            fail("INV-11", f"receipt {r.number}'s id is not its warehouse and number")
    # INV-13 (HELD): a hold names an open alert that set it, and an open alert's holds are in place;
    # only CRITICAL alerts and R6 (HIGH, on the bin) hold.
    for r in receipts.values():
        for aid in r.held:
            alert = k.alert(aid)
            if alert is None or alert.status != "open" or r.id not in alert.held_receipts:
                fail("INV-13", f"receipt {r.number} is held by an alert that is not open or did not hold it")
    for warehouse, bin_name, alerts in k.held_bins():
        for aid in alerts:
            alert = k.alert(aid)
            if (alert is None or alert.status != "open" or alert.warehouse != warehouse
                    or bin_name not in alert.held_bins):
                fail("INV-13", f"bin {bin_name} is held by an alert that is not open or did not hold it")
    for alert in k.open_alerts():
        if alert.holds and not (alert.severity == "CRITICAL" or alert.rule == "R6"):
            fail("INV-13", f"a {alert.severity} {alert.rule} alert holds goods")
        if any(rid in receipts and alert.id not in receipts[rid].held for rid in alert.held_receipts) or any(
                alert.id not in k.bin_holds(alert.warehouse, b) for b in alert.held_bins):
            fail("INV-13", f"an open {alert.rule} alert's holds were lifted")
    return found

"""The warehouse application on the chain: one handler for its operation kinds, and its reads.

The handler turns an ordered entry into the domain's `Context`: the entry's id and author,
its checkpoint's height and time, and the two authorities the governance side vouches for,
read from the governance keepers at that height:

    council    the author holds council weight (a member the council itself appointed, by
               genesis or by a passed `set_council_member` proposal)
    regulator  the author is one of the chain's regulators (genesis), as for `reg.freeze`

Read queries (`GET /v1/apps/warehouse/<query>`) take keys as addresses (or 64 hex
characters) and ids as 64 hex characters; records come back with bytes as hex.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, cast

import msgspec

from ... import codec
from ...errors import BadRequest, BilayerError, NotFound
from ...execution.governance.context import ExecContext
from ...execution.governance.council import Council
from ...execution.governance.emergency import Emergencies
from ...execution.governance.params import Params
from ...execution.state import State
from ...keys.address import address_from_public_key, public_key_from_address
from ...ledger.entry import EntryHeader
from ...ledger.operations import Operation
from .epcis import kilograms
from .keeper import Keeper
from .monitor import RULES
from .operations import WarehouseOperation
from .queries import evidence_document, evidence_of, lineage
from .records import (
    SEVERITIES,
    STATUSES,
    Alert,
    Evidence,
    Facility,
    Lot,
    Receipt,
    Status,
    Valuation,
    lot_key,
    to_view,
    under_pledge,
)
from .transitions import Context, apply

MAX_LISTED: Final = 1000
_NUMBERS: Final = msgspec.json.Encoder(decimal_format="number")  # EPCIS quantities as JSON numbers


def context_of(ctx: ExecContext, state: State, entry_id: bytes, author: bytes) -> Context:
    return Context(entry_id, author, ctx.height, ctx.time_ms, council=Council(state).weight(author) > 0,
                   regulator=Emergencies(state).is_regulator(author))


def handle(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    """Every warehouse kind: its transition, inside the entry's state transaction. The
    executor has checked the operation's stateless rules just before (with the chain's
    parameters in force), so they are not run twice: a reading's are most of its cost."""
    assert isinstance(op, WarehouseOperation)
    checked = Params(state).in_force() is not None  # a bare state (no genesis) skips the executor's check
    apply(Keeper(state), context_of(ctx, state, entry_id, header.author), op, checked=checked)


# --- read queries --------------------------------------------------------------------------------


def _key(params: Mapping[str, str], name: str) -> bytes | None:
    """A key parameter: an address or 64 hex characters; None when absent."""
    text = params.get(name, "")
    if not text:
        return None
    raw = codec.from_hex(text, 32)
    if raw is not None:
        return raw
    try:
        return public_key_from_address(text)
    except BilayerError:
        raise BadRequest(f"{name} is an address or a 64-hex public key") from None


def _id(params: Mapping[str, str], name: str) -> bytes:
    raw = codec.from_hex(params.get(name, ""), 32)
    if raw is None:
        raise BadRequest(f"{name} is an id of 64 hex characters")
    return raw


def _receipt(k: Keeper, params: Mapping[str, str]) -> Receipt:
    rid = _id(params, "id")
    receipt = k.receipt(rid)
    if receipt is None:
        raise NotFound(f"no receipt {rid.hex()}")
    return receipt


def _address(key: bytes) -> str:
    return address_from_public_key(key) if len(key) == 32 else ""


def receipt_summary(r: Receipt) -> dict[str, Any]:
    """One line of the register."""
    return {"id": r.id.hex(), "number": r.number, "warehouse": _address(r.warehouse), "holder": _address(r.holder),
            "depositor": _address(r.depositor), "status": r.status, "frozen_case": r.frozen_case,
            "pledge": r.pledge.hex(), "commodity": r.goods.commodity, "spec": r.goods.spec, "grade": r.goods.grade,
            "quantity_kg": r.goods.quantity_kg, "pieces": r.goods.pieces, "lots": len(r.lots),
            "issued_height": r.issued_height, "storage_until_ms": r.terms.storage_until_ms}


def query_register(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?warehouse=&holder=&status=&frozen=true|false`: the receipt register, filtered."""
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status is one of {', '.join(STATUSES)}")
    frozen_text = params.get("frozen", "")
    if frozen_text not in ("", "true", "false"):
        raise BadRequest("frozen is true or false")
    frozen = None if not frozen_text else frozen_text == "true"
    found = Keeper(state).register(warehouse=_key(params, "warehouse"), holder=_key(params, "holder"),
                                   status=_status(status), frozen=frozen)
    return {"count": len(found), "receipts": [receipt_summary(r) for r in found[:MAX_LISTED]]}


def _status(text: str | None) -> Status | None:
    return cast(Status, text) if text in STATUSES else None


def query_receipt(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?id=`: the whole receipt record, its pledge and the entries that wrote it."""
    k = Keeper(state)
    receipt = _receipt(k, params)
    pledge = k.pledge(receipt.pledge) if receipt.pledge else None
    return {"receipt": to_view(receipt), "holder_address": _address(receipt.holder),
            "warehouse_address": _address(receipt.warehouse),
            "pledge": None if pledge is None else {**to_view(pledge), "pledgee_address": _address(pledge.pledgee)},
            "history": [entry.hex() for entry in k.history(receipt.id)]}


def _lot_view(k: Keeper, lot: Lot) -> dict[str, Any]:
    evidence = [k.evidence(e) for e in (lot.intake_event, lot.outbound_event) if e]
    return {"lot": to_view(lot), "evidence": [evidence_view(e) for e in evidence if e is not None]}


def query_lot(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?key=` (64 hex) or `?mill=&heat=&coil=`: the lot and its device evidence."""
    if params.get("key"):
        key = _id(params, "key")
    elif all(params.get(p) for p in ("mill", "heat", "coil")):
        key = lot_key(params["mill"], params["heat"], params["coil"])
    else:
        raise BadRequest("name the lot by key, or by mill, heat and coil")
    k = Keeper(state)
    lot = k.lot(key)
    if lot is None:
        raise NotFound(f"no lot {key.hex()}")
    return _lot_view(k, lot)


def query_history(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?id=`: the receipt's entries, and its lineage (parents and children, transitively)."""
    k = Keeper(state)
    receipt = _receipt(k, params)
    return {"receipt": receipt.id.hex(),
            "history": [entry.hex() for entry in k.history(receipt.id)],
            "lineage": [{**receipt_summary(r), "parents": [p.hex() for p in r.parents],
                         "children": [c.hex() for c in r.children], "history": [e.hex() for e in k.history(r.id)]}
                        for r in lineage(k, receipt.id)]}


def _weighing_kg(e: Evidence, kind: str) -> int:
    """A weighbridge ticket's gross or tare in kilograms; -1 when the reading states none."""
    for report in e.reading.reports:
        if report.type == "Mass" and report.weighing == kind:
            return kilograms(report.value, report.uom, f"the {kind} reading")
    return -1


def evidence_view(e: Evidence) -> dict[str, Any]:
    """One device reading, with its ticket: gross and tare (-1 when not stated), net, when."""
    return {"event_id": e.event_id.hex(), "device": e.reading.device_id, "device_kind": e.device_kind,
            "biz_step": e.reading.biz_step, "net_kg": e.net_kg, "gross_kg": _weighing_kg(e, "gross"),
            "tare_kg": _weighing_kg(e, "tare"), "time_ms": e.reading.event_time_ms, "entry": e.entry.hex(),
            "height": e.height, "lot": e.lot.hex()}


def query_evidence(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?id=`: the device evidence of the receipt's lots (each reading's device, step, time and
    weighbridge ticket: gross, tare and net kilograms), and the same as one EPCIS 2.0 document."""
    k = Keeper(state)
    receipt = _receipt(k, params)
    events = evidence_of(k, receipt.id)
    newest = max([receipt.issued_ms, *(e.reading.event_time_ms for e in events)])
    created = datetime.fromtimestamp(newest / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    document = evidence_document(k, receipt.id, created)
    return {"receipt": receipt.id.hex(), "events": [evidence_view(e) for e in events],
            "epcis": msgspec.json.decode(_NUMBERS.encode(document))}


def query_party(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?key=`: a registered party, and for a warehouse its bins, supervisor, series and devices."""
    key = _key(params, "key")
    if key is None:
        raise BadRequest("key is an address or a 64-hex public key")
    k = Keeper(state)
    party = k.party(key)
    if party is None:
        raise NotFound(f"{_address(key)} is not a registered party")
    info = k.warehouse(key)
    return {"party": {**to_view(party), "address": _address(key)},
            "warehouse": None if info is None else to_view(info),
            "devices": [to_view(d) for d in k.devices(key)] if info is not None else []}


def query_device(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?id=` (its GIAI URN): a device, its status, calibration and last sequence number."""
    device = Keeper(state).device(params.get("id", ""))
    if device is None:
        raise NotFound(f"no device {params.get('id', '')!r}")
    return {"device": {**to_view(device), "address": _address(device.public_key)}}


def query_trail(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?id=`: the entries a proof of the receipt's history is made of: those that wrote it,
    the bookings of its lots, and the device readings of them (`bilayer warehouse proof`)."""
    k = Keeper(state)
    receipt = _receipt(k, params)
    bookings = []
    for key, intake in zip(receipt.lots, receipt.evidence, strict=True):
        lot = k.lot(key)
        if lot is not None and lot.entry and lot.intake_event == intake:  # not since rewritten by a new intake
            bookings.append(lot.entry.hex())
    return {"receipt": receipt.id.hex(), "history": [entry.hex() for entry in k.history(receipt.id)],
            "lots": bookings, "evidence": [e.entry.hex() for e in evidence_of(k, receipt.id)]}


# --- monitoring: alerts, holds, device health, stock (`monitor.py`) ------------------------------------


def alert_view(a: Alert) -> dict[str, Any]:
    return {**to_view(a), "warehouse_address": _address(a.warehouse)}


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = params.get(name, "")
    if value and value not in allowed:
        raise BadRequest(f"{name} is one of {', '.join(allowed)}")
    return value


def query_alert_trail(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?id=`: the entries a proof of the alert is made of: those carrying its evidence (the
    readings, or the stocktake), the registrations of the reading devices, and for goods that
    left with no instruction (R2, R5) the bookings of those coils and their intake weighings
    (`bilayer warehouse alert-export`)."""
    aid = _id(params, "id")
    k = Keeper(state)
    alert = k.alert(aid)
    if alert is None:
        raise NotFound(f"no alert {aid.hex()}")
    evidence: list[str] = []
    devices: list[str] = []
    for named in alert.evidence:
        found = k.evidence(named)
        evidence.append((found.entry if found is not None else named).hex())  # else: a stocktake's entry
        device = None if found is None else k.device(found.reading.device_id)
        if device is not None and device.entry and device.entry.hex() not in devices:
            devices.append(device.entry.hex())
    lots: list[str] = []
    intakes: list[str] = []
    for key in alert.lots if alert.rule in ("R2", "R5") else ():
        lot = k.lot(key)
        intake = None if lot is None else k.evidence(lot.intake_event)
        if lot is not None and lot.entry and intake is not None:
            lots.append(lot.entry.hex())
            intakes.append(intake.entry.hex())
    return {"alert": alert_view(alert), "record": msgspec.json.decode(msgspec.json.encode(alert)),
            "evidence": evidence, "devices": devices, "lots": lots, "intakes": intakes}


def query_alerts(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?warehouse=&status=open|resolved&severity=LOW|MEDIUM|HIGH|CRITICAL&rule=R1..R12`: alerts,
    oldest first."""
    warehouse = _key(params, "warehouse")
    status = _choice(params, "status", ("open", "resolved"))
    severity = _choice(params, "severity", SEVERITIES)
    rule = _choice(params, "rule", RULES)
    k = Keeper(state)
    found = k.open_alerts(warehouse) if status == "open" else k.alerts()
    chosen = sorted((a for a in found if (warehouse is None or a.warehouse == warehouse)
                     and (not status or a.status == status) and (not severity or a.severity == severity)
                     and (not rule or a.rule == rule)), key=lambda a: (a.height, a.time_ms, a.id))
    return {"count": len(chosen), "alerts": [alert_view(a) for a in chosen[:MAX_LISTED]]}


def query_alert(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?id=`: one alert: what it compared, its tolerance and evidence, what it held, its resolution."""
    aid = _id(params, "id")
    alert = Keeper(state).alert(aid)
    if alert is None:
        raise NotFound(f"no alert {aid.hex()}")
    return {"alert": alert_view(alert)}


def query_holds(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?warehouse=`: the HELD overlay: held receipts and held bins, each with the alerts holding it."""
    warehouse = _key(params, "warehouse")
    k = Keeper(state)
    receipts = k.register(warehouse=warehouse)
    held = [{**receipt_summary(r), "held": [a.hex() for a in r.held]} for r in receipts if r.held]
    bins = [{"warehouse": _address(w), "bin": b, "alerts": [a.hex() for a in alerts]}
            for w, b, alerts in k.held_bins(warehouse)]
    return {"receipts": held[:MAX_LISTED], "bins": bins[:MAX_LISTED]}


def query_devices(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?warehouse=`: every device with its health: last seen, heartbeat due, calibration expiry,
    open R7 alerts."""
    warehouse = _key(params, "warehouse")
    k = Keeper(state)
    open_r7: dict[str, int] = {}
    for a in k.open_alerts(warehouse):
        if a.rule == "R7":
            for d in a.devices:
                open_r7[d] = open_r7.get(d, 0) + 1
    devices = [{"device_id": d.device_id, "kind": d.kind, "warehouse": _address(d.warehouse), "bins": list(d.bins),
                "status": d.status, "last_seq": d.last_seq, "heartbeat_ms": d.heartbeat_ms,
                "last_seen_ms": d.last_seen_ms, "heartbeat_due_ms": d.heartbeat_due_ms,
                "calibration_expires_ms": d.calibration.expires_ms, "open_alerts": open_r7.get(d.device_id, 0)}
               for d in k.devices(warehouse)]
    return {"count": len(devices), "devices": devices[:MAX_LISTED]}


def query_stock(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?warehouse=`: the stock statement: per bin the book, the last verified figure and holds;
    per owner the live receipts' kilograms free, pledged, frozen and held."""
    warehouse = _key(params, "warehouse")
    k = Keeper(state)
    info = None if warehouse is None else k.warehouse(warehouse)
    if warehouse is None or info is None:
        raise BadRequest("warehouse is the address of a registered warehouse")
    bins = []
    for name in info.bins:
        stock = k.bin_stock(warehouse, name)
        bins.append({"bin": name, "book_kg": stock.book_kg, "book_pieces": stock.book_pieces, "lots": stock.lots,
                     "pledged_kg": stock.pledged_kg, "verified_kg": stock.verified_kg,
                     "verified_height": stock.verified_height, "verified_source": stock.verified_source,
                     "held_by": [a.hex() for a in k.bin_holds(warehouse, name)]})
    owners: dict[bytes, dict[str, int]] = {}
    for r in k.receipts_of_warehouse(warehouse):
        if not r.live:
            continue
        line = owners.setdefault(r.holder, {"free_kg": 0, "pledged_kg": 0, "frozen_kg": 0, "held_kg": 0})
        if r.frozen_case:
            line["frozen_kg"] += r.goods.quantity_kg
        elif k.held(r):
            line["held_kg"] += r.goods.quantity_kg
        elif under_pledge(r.status, r.expired_from):
            line["pledged_kg"] += r.goods.quantity_kg
        else:
            line["free_kg"] += r.goods.quantity_kg
    totals = k.warehouse_stock(warehouse)
    return {"warehouse": _address(warehouse), "bins": bins,
            "owners": [{"holder": _address(h), **line} for h, line in sorted(owners.items())],
            "live_receipts_kg": totals.live_kg, "verified_kg": totals.verified_kg,
            "verified_bins": totals.verified_bins}


# --- finance: prices, facilities, valuations ---------------------------------------------------------------

MAX_DAYS: Final = 400


def _facility_summary(f: Facility) -> dict[str, Any]:
    return {"bank": _address(f.bank), "name": f.name, "borrower": _address(f.borrower), "state": f.state,
            "limit": f.limit, "currency": f.currency, "outstanding": f.outstanding, "cash": f.cash,
            "ltv_bp": f.last_ltv_bp, "collateral": f.last_collateral, "day": f.last_day,
            "deadline_trading_day": f.deadline_ordinal if f.state == "margin_call" else 0}


def valuation_view(v: Valuation) -> dict[str, Any]:
    """A daily valuation statement with addresses for keys."""
    view = to_view(v)
    view["bank"] = _address(v.bank)
    view["lines"] = [{**to_view(line), "warehouse": _address(line.warehouse)} for line in v.lines]
    view["warehouses"] = [{**to_view(s), "name": _address(bytes.fromhex(s.name))} for s in v.warehouses]
    return cast(dict[str, Any], view)


def _facility(k: Keeper, params: Mapping[str, str]) -> Facility:
    bank = _key(params, "bank")
    name = params.get("name", "")
    if bank is None or not name:
        raise BadRequest("name the facility by bank (an address) and name")
    facility = k.facility(bank, name)
    if facility is None:
        raise NotFound(f"no facility {name!r} of {_address(bank)}")
    return facility


def query_prices(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?spec=`: the as-of day, and each spec's latest good price; with a spec, its marks
    (newest last, usable and unconfirmed) and daily prices."""
    k = Keeper(state)
    calendar = k.calendar()
    spec = params.get("spec", "")
    heads = [h for h in k.spec_heads() if not spec or h.spec == spec]
    result: dict[str, Any] = {
        "as_of": calendar.day, "trading_day": calendar.ordinal,
        "specs": [{**to_view(h), "stale": calendar.ordinal - k.trading_day(h.day) > 1} for h in heads]}
    if spec:
        marks = k.marks_of_spec(spec)[-MAX_LISTED:]
        result["marks"] = [{**to_view(m), "publisher": _address(m.publisher)} for m in marks]
        days = sorted({m.day for m in marks})
        prices = (k.day_price(spec, day) for day in days)
        result["daily"] = [to_view(p) for p in prices if p is not None]
    return result


def query_facilities(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?bank=`: the facilities (of one bank), each with its state, LTV and collateral."""
    found = Keeper(state).facilities(_key(params, "bank"))
    return {"count": len(found), "facilities": [_facility_summary(f) for f in found[:MAX_LISTED]]}


def query_facility(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?bank=&name=`: a facility: its terms, state and state changes, its LTV by day, its
    live pledges and its latest valuation lines."""
    k = Keeper(state)
    f = _facility(k, params)
    valuations = k.valuations(f.bank, f.name)[-MAX_DAYS:]
    latest = valuations[-1] if valuations else None
    return {"facility": {**to_view(f), "bank": _address(f.bank), "borrower": _address(f.borrower)},
            "events": [to_view(e) for e in f.events],
            "ltv_history": [{"day": v.day, "ltv_bp": v.ltv_bp, "collateral": v.collateral,
                             "outstanding": v.outstanding, "state": v.state} for v in valuations],
            "pledges": [p.id.hex() for p in k.facility_pledges(f.bank, f.name)],
            "valuation": None if latest is None else valuation_view(latest)}


def query_valuation(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """`?bank=&name=&day=`: the facility's daily valuation statement (default: its latest)."""
    k = Keeper(state)
    f = _facility(k, params)
    day = params.get("day", "") or f.last_day
    valuation = k.valuation(f.bank, f.name, day) if day else None
    if valuation is None:
        raise NotFound(f"no valuation of facility {f.name!r} on {day or 'any day'}")
    return {"valuation": valuation_view(valuation)}


def query_exposure(state: State, params: Mapping[str, str]) -> dict[str, Any]:
    """Systemic exposure for the regulator: per bank, what is owed and the collateral held,
    and per (bank, warehouse) the collateral value on each facility's latest valuation."""
    k = Keeper(state)
    banks: dict[str, dict[str, int]] = {}
    by_warehouse: dict[tuple[str, str], int] = {}
    for f in k.facilities():
        if f.state == "closed":
            continue
        bank = _address(f.bank)
        totals = banks.setdefault(bank, {"facilities": 0, "outstanding": 0, "collateral": 0, "margin_calls": 0,
                                         "defaults": 0})
        totals["facilities"] += 1
        totals["outstanding"] += f.outstanding
        totals["collateral"] += f.last_collateral
        totals["margin_calls"] += f.state == "margin_call"
        totals["defaults"] += f.state in ("default", "enforcement")
        latest = k.valuation(f.bank, f.name, f.last_day) if f.last_day else None
        for share in latest.warehouses if latest is not None else ():
            key = (bank, _address(bytes.fromhex(share.name)))
            by_warehouse[key] = by_warehouse.get(key, 0) + share.value
    return {"as_of": k.calendar().day,
            "banks": [{"bank": b, **t} for b, t in sorted(banks.items())],
            "warehouses": [{"bank": b, "warehouse": w, "collateral": v} for (b, w), v in sorted(by_warehouse.items())]}


QUERIES: Final = {"register": query_register, "receipt": query_receipt, "lot": query_lot,
                  "history": query_history, "evidence": query_evidence, "party": query_party,
                  "device": query_device, "trail": query_trail, "alerts": query_alerts, "alert": query_alert,
                  "alert_trail": query_alert_trail,
                  "holds": query_holds, "devices": query_devices, "stock": query_stock,
                  "prices": query_prices, "facilities": query_facilities, "facility": query_facility,
                  "valuation": query_valuation, "exposure": query_exposure}

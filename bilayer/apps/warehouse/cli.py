"""`bilayer warehouse ...`: the warehouse application from the command line.

Reads go to `GET /v1/apps/warehouse/<query>`; every act is one signed entry, submitted as
`bilayer tx` submits (`--key`, `--wait`, `--json`). Keys are named by address, receipts,
lots, offers and events by their 64-hex ids; a lot may also be named `MILL:HEAT:COIL`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ...api.client import NodeClient
from ...cli.audit_cmd import PROOF_TIMEOUT_S
from ...cli.keys_cmd import keystore_option, open_keystore
from ...cli.output import console, emit, json_option, kv_table
from ...cli.query_cmd import node_option
from ...cli.tx_cmd import _common
from ...errors import BadRequest
from ...keys.address import public_key_from_address
from ...keys.signing import Signer
from ...ledger.operations import Operation
from . import epcis, simulate
from .operations import (
    AcceptReceipt,
    AcceptTransfer,
    ApproveDevice,
    CancelOffer,
    CancelReceipt,
    ConfirmPledge,
    Countersign,
    CureDefault,
    DeclareDefault,
    FreezeReceipt,
    InvokePledge,
    MergeReceipts,
    OfferTransfer,
    OpenCase,
    ProposeDevice,
    ProposeReceipt,
    RecordReading,
    RegisterLot,
    RegisterParty,
    RegisterWarehouse,
    RejectReceipt,
    ReleasePledge,
    RequestPledge,
    RevokeDevice,
    RevokeParty,
    SplitReceipt,
    Surrender,
    UnfreezeReceipt,
    VoidReceipt,
)
from .records import DEVICE_KINDS, Calibration, Goods, Terms, lot_key, lot_urn, receipt_id


def _hex32(text: str, what: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BadRequest(f"{what} is an id of 64 hex characters")
    return raw.hex()


def _lot(text: str) -> bytes:
    """A lot named by its key (64 hex) or as MILL:HEAT:COIL."""
    parts = text.split(":")
    if len(parts) == 3 and all(parts):
        return lot_key(*parts)
    return bytes.fromhex(_hex32(text, "a lot"))


def _get(node_url: str, query: str, **params: str) -> dict[str, Any]:
    given = {name: value for name, value in params.items() if value}
    return dict(NodeClient(node_url).get(f"/v1/apps/warehouse/{query}?{urlencode(given)}"))


@click.group()
def warehouse() -> None:
    """Supervised-warehouse finance: parties, devices, intake evidence, receipts and pledges."""


@warehouse.command("show")
@click.argument("receipt")
@node_option
@json_option
def warehouse_show(receipt: str, node_url: str, as_json: bool) -> None:
    """A receipt: its record, its pledge, the entries that wrote it."""
    data = _get(node_url, "receipt", id=_hex32(receipt, "RECEIPT"))

    def human(d: dict[str, Any]) -> None:
        r = d["receipt"]
        kv_table(f"receipt {r['id']}", {
            "number": str(r["number"]), "status": r["status"] + (f" FROZEN (case {r['frozen_case']})"
                                                                  if r["frozen_case"] else ""),
            "warehouse": d["warehouse_address"], "holder": d["holder_address"],
            "goods": f"{r['goods']['commodity']} {r['goods']['grade']} {r['goods']['spec']}",
            "quantity": f"{r['goods']['quantity_kg']} kg in {r['goods']['pieces']} pieces, {len(r['lots'])} lots",
            "pledgee": d["pledge"]["pledgee_address"] if d["pledge"] else "-",
            "entries": str(len(d["history"])), "parents": ", ".join(r["parents"]) or "-",
            "children": ", ".join(r["children"]) or "-"})

    emit(data, as_json, human)


@warehouse.command("history")
@click.argument("receipt")
@node_option
@json_option
def warehouse_history(receipt: str, node_url: str, as_json: bool) -> None:
    """A receipt's entries and its lineage (the receipts it came from and that came from it)."""
    data = _get(node_url, "history", id=_hex32(receipt, "RECEIPT"))

    def human(d: dict[str, Any]) -> None:
        console.print(f"receipt {d['receipt']}: {len(d['history'])} entries")
        for entry in d["history"]:
            console.print(f"  {entry}")
        console.print("lineage:")
        for r in d["lineage"]:
            console.print(f"  #{r['number']} {r['id'][:16]}… {r['status']} {r['quantity_kg']} kg")

    emit(data, as_json, human)


@warehouse.command("register-list")
@click.option("--warehouse", "warehouse_address", default="", help="Only this warehouse's receipts.")
@click.option("--holder", default="", help="Only the live receipts this address holds.")
@click.option("--status", default="", help="Only receipts in this state (active, pledged, ...).")
@click.option("--frozen/--not-frozen", default=None, help="Only frozen, or only unfrozen, receipts.")
@node_option
@json_option
def warehouse_register_list(warehouse_address: str, holder: str, status: str, frozen: bool | None, node_url: str,
                            as_json: bool) -> None:
    """The receipt register (free, pledged, frozen), filtered."""
    data = _get(node_url, "register", warehouse=warehouse_address, holder=holder, status=status,
                frozen="" if frozen is None else str(frozen).lower())

    def human(d: dict[str, Any]) -> None:
        console.print(f"{d['count']} receipts")
        for r in d["receipts"]:
            frozen_mark = f" FROZEN(case {r['frozen_case']})" if r["frozen_case"] else ""
            console.print(f"  #{r['number']:<5} {r['id'][:16]}… {r['status']:<18}{frozen_mark} "
                          f"{r['quantity_kg']:>9} kg  holder {r['holder']}")

    emit(data, as_json, human)


@warehouse.command("lot-show")
@click.argument("lot")
@node_option
@json_option
def warehouse_lot_show(lot: str, node_url: str, as_json: bool) -> None:
    """A lot (by key or MILL:HEAT:COIL) and its device evidence."""
    data = _get(node_url, "lot", key=_lot(lot).hex())
    emit(data, as_json, lambda d: kv_table(f"lot {d['lot']['key']}", {**d["lot"], "evidence": d["evidence"]}))


@warehouse.command("evidence")
@click.argument("receipt")
@node_option
@json_option
def warehouse_evidence(receipt: str, node_url: str, as_json: bool) -> None:
    """The device evidence of a receipt's lots, with the same as one EPCIS 2.0 document."""
    data = _get(node_url, "evidence", id=_hex32(receipt, "RECEIPT"))

    def human(d: dict[str, Any]) -> None:
        for e in d["events"]:
            console.print(f"  {e['event_id'][:16]}… {e['biz_step']:<10} {e['device']} {e['net_kg']} kg "
                          f"at height {e['height']}")

    emit(data, as_json, human)


@warehouse.command("party")
@click.argument("address")
@node_option
@json_option
def warehouse_party(address: str, node_url: str, as_json: bool) -> None:
    """A registered party; for a warehouse, its bins, supervisor, next receipt number and devices."""
    data = _get(node_url, "party", key=address)
    emit(data, as_json, lambda d: kv_table(f"party {address}", {**d["party"], "warehouse": d["warehouse"],
                                                                 "devices": len(d["devices"])}))


# --- acts: each one signed entry ---------------------------------------------------------------------


class Act:
    """One signed act: the signer (loaded once), the node, and how to submit and report."""

    def __init__(self, node_url: str, keystore: Path | None, key: str, wait: bool, timeout: float,
                 as_json: bool) -> None:
        self.signer: Signer = open_keystore(keystore).load(key)
        self.client = NodeClient(node_url)
        self.node_url, self.wait, self.timeout, self.as_json = node_url, wait, timeout, as_json

    def send(self, op: Operation, **extra: Any) -> None:
        """Submit `op`; with --wait, report its final outcome (REJECTED carries its reason code)."""
        started = time.perf_counter()
        result: dict[str, Any] = self.client.build_and_submit(self.signer, op)
        if self.wait:
            view = self.client.wait_for_outcome(result["id"], self.timeout)
            result["status"] = view["status"]
            for field in ("height", "reason", "cause"):
                if field in view:
                    result[field] = view[field]
        result.update({"kind": op.KIND, "author": self.signer.address,
                       "latency_ms": round((time.perf_counter() - started) * 1000, 1), **extra})

        def human(d: dict[str, Any]) -> None:
            where = f" at height {d['height']}" if d.get("height") else ""
            why = f" ({d['reason']})" if d.get("reason") else ""
            named = "".join(f"  {name} {value}" for name, value in extra.items())
            console.print(f"{d['status']}{why}{where}  {d['kind']}  {d['id']}{named}")

        emit(result, self.as_json, human)


def act(f: Callable[..., Operation | tuple[Operation, dict[str, Any]]]) -> Callable[..., None]:
    """A command whose function builds the operation (and what to report besides) from its
    arguments and an `Act`; the common options (--node, --key, --keystore, --wait, --timeout,
    --json) are added here."""

    def command(node_url: str, key: str, keystore: Path | None, wait: bool, timeout: float, as_json: bool,
                **arguments: Any) -> None:
        sender = Act(node_url, keystore, key, wait, timeout, as_json)
        built = f(sender, **arguments)
        op, extra = built if isinstance(built, tuple) else (built, {})
        sender.send(op, **extra)

    command.__name__ = f.__name__
    command.__doc__ = f.__doc__
    return _common(command)  # type: ignore[no-any-return]


def _address(text: str) -> bytes:
    return public_key_from_address(text)


def _digest(text: str) -> bytes:
    """A hash given as 64 hex characters, or the SHA-256 of the text given (a document reference)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    return raw if len(raw) == 32 else hashlib.sha256(text.encode()).digest()


def _ms(text: str) -> int:
    """A time as milliseconds since the epoch, or as an ISO 8601 date or date-time (UTC if no zone)."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{text!r} is neither milliseconds since the epoch nor an ISO 8601 date") from None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def _pending_offer(sender: Act, receipt: str, offer: str) -> bytes:
    """The offer named, or the receipt's pending one."""
    if offer:
        return bytes.fromhex(_hex32(offer, "--offer"))
    pending = _get(sender.node_url, "receipt", id=receipt)["receipt"]["offer"]
    if pending is None:
        raise BadRequest("the receipt has no pending offer")
    return bytes.fromhex(pending["id"])


_receipt_arg = click.argument("receipt", callback=lambda _c, _p, v: _hex32(v, "RECEIPT"))
_offer_opt = click.option("--offer", default="", help="The offer's entry id (default: the receipt's pending offer).")
_lots_opt = click.option("--lot", "lots", multiple=True, help="A lot, by key or MILL:HEAT:COIL (repeat).")


# --- parties ----------------------------------------------------------------------------------------


@warehouse.group("register")
def register_group() -> None:
    """Appoint a warehouse (council) or a party: a bank or supervisor (council), a depositor
    (a warehouse or bank, after its KYC), an inspector (a supervisor)."""


_party_opts = [click.option("--name", required=True), click.option("--uscc", required=True,
                                                                      help="18-character unified social credit code."),
               click.option("--domicile", required=True)]


def _with(options: list[Any]) -> Callable[[Any], Any]:
    def decorate(f: Any) -> Any:
        for option in reversed(options):
            f = option(f)
        return f
    return decorate


@register_group.command("warehouse")
@click.argument("address")
@_with(_party_opts)
@click.option("--location", required=True, help="The storage place's EPCIS bizLocation (an SGLN URN).")
@click.option("--supervisor", required=True, help="The supervisor's address (a registered supervisor).")
@click.option("--bins", required=True, help="Comma-separated bin names.")
@click.option("--signoff/--no-signoff", default=True, show_default=True,
              help="Receipts need the supervisor's sign-off besides the depositor's acceptance.")
@act
def register_warehouse(sender: Act, address: str, name: str, uscc: str, domicile: str, location: str,
                       supervisor: str, bins: str, signoff: bool) -> Operation:
    """Appoint ADDRESS as a warehouse (保管人): a council member signs."""
    return RegisterWarehouse(_address(address), name, uscc, domicile, location, _address(supervisor),
                             tuple(b.strip() for b in bins.split(",") if b.strip()), signoff)


@register_group.command("party")
@click.argument("address")
@click.option("--role", required=True, type=click.Choice(["bank", "supervisor", "depositor", "inspector"]))
@_with(_party_opts)
@act
def register_party(sender: Act, address: str, role: Any, name: str, uscc: str, domicile: str) -> Operation:
    """Appoint ADDRESS as a bank, supervisor, depositor or inspector."""
    return RegisterParty(_address(address), role, name, uscc, domicile)


@register_group.command("revoke")
@click.argument("address")
@click.option("--reason", required=True)
@act
def register_revoke(sender: Act, address: str, reason: str) -> Operation:
    """End a party's appointment (whoever appointed it, or the council)."""
    return RevokeParty(_address(address), reason)


# --- devices and evidence ---------------------------------------------------------------------------


@warehouse.group("device")
def device_group() -> None:
    """A warehouse proposes a device, its supervisor approves it; either revokes it."""


@device_group.command("propose")
@click.argument("device_id")
@click.option("--kind", "device_kind", required=True, type=click.Choice(list(DEVICE_KINDS)))
@click.option("--bins", required=True, help="Comma-separated bins it covers.")
@click.option("--public-key", "device_address", required=True, help="The address of the device's own key.")
@click.option("--read-point", required=True, help="Its EPCIS readPoint (an SGLN URN).")
@click.option("--certificate", required=True, help="The calibration certificate (64 hex, or text to hash).")
@click.option("--accuracy-class", default="", help="OIML R76 class of a weighbridge (I, II, III, IIII).")
@click.option("--scale-interval-g", type=int, default=0, help="A weighbridge's verification interval e, in grams.")
@click.option("--calibrated-until", required=True, help="Certificate expiry (ISO date or ms).")
@act
def device_propose(sender: Act, device_id: str, device_kind: Any, bins: str, device_address: str, read_point: str,
                   certificate: str, accuracy_class: str, scale_interval_g: int, calibrated_until: str) -> Operation:
    """Propose DEVICE_ID (a GIAI URN) at the signing warehouse."""
    return ProposeDevice(device_id, device_kind, tuple(b.strip() for b in bins.split(",") if b.strip()),
                         _address(device_address), read_point,
                         Calibration(_digest(certificate), accuracy_class, scale_interval_g, _ms(calibrated_until)))


@device_group.command("approve")
@click.argument("device_id")
@act
def device_approve(sender: Act, device_id: str) -> Operation:
    """The warehouse's supervisor approves DEVICE_ID: from now on its readings count."""
    return ApproveDevice(device_id)


@device_group.command("revoke")
@click.argument("device_id")
@click.option("--reason", required=True)
@act
def device_revoke(sender: Act, device_id: str, reason: str) -> Operation:
    """Its warehouse or supervisor revokes DEVICE_ID."""
    return RevokeDevice(device_id, reason)


@warehouse.command("intake")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="One EPCIS 2.0 ObjectEvent as JSON (the device's own rendering).")
@click.option("--device", "device_id", default="", help="The device's id (without --file).")
@click.option("--step", "biz_step", default="receiving", show_default=True,
              type=click.Choice(["receiving", "shipping", "departing", "stock_taking", "inspecting",
                                 "sensor_reporting"]))
@_lots_opt
@click.option("--gross-kg", type=int, default=None, help="The weighbridge's gross weight.")
@click.option("--tare-kg", type=int, default=None, help="The weighbridge's tare weight.")
@click.option("--read-point", default="", help="Default: the device's registered read point.")
@click.option("--seq", type=int, default=None, help="bl:deviceSeq (default: the device's last plus one).")
@click.option("--time", "event_time", default="", help="eventTime (ISO or ms; default: now).")
@click.option("--tz-offset", default="+08:00", show_default=True)
@act
def warehouse_intake(sender: Act, file: Path | None, device_id: str, biz_step: str, lots: tuple[str, ...],
                     gross_kg: int | None, tare_kg: int | None, read_point: str, seq: int | None, event_time: str,
                     tz_offset: str) -> tuple[Operation, dict[str, Any]]:
    """A device's signed reading: sign with the device's own key (--key)."""
    if file is not None:
        reading = epcis.parse(file.read_bytes())
    else:
        if not device_id or not lots:
            raise BadRequest("without --file, give --device and at least one --lot")
        device = _get(sender.node_url, "device", id=device_id)["device"]
        reports: tuple[epcis.SensorReport, ...] = ()
        if gross_kg is not None or tare_kg is not None:
            if gross_kg is None or tare_kg is None:
                raise BadRequest("a weighing gives both --gross-kg and --tare-kg")
            reports = (epcis.SensorReport("Mass", str(gross_kg), "KGM", "gross"),
                       epcis.SensorReport("Mass", str(tare_kg), "KGM", "tare"))
        urns = []
        for lot in lots:
            parts = lot.split(":")
            if len(parts) != 3 or not all(parts):
                raise BadRequest("an intake names its lots as MILL:HEAT:COIL")
            urns.append(lot_urn(*parts))
        reading = epcis.Reading(
            device_id, device["last_seq"] + 1 if seq is None else seq,
            _ms(event_time) if event_time else int(time.time() * 1000), tz_offset, "OBSERVE", biz_step,
            "in_progress" if biz_step == "receiving" else "in_transit" if biz_step in ("shipping", "departing")
            else "", tuple(urns), read_point=read_point or device["read_point"], reports=reports)
        epcis.check_reading(reading)
    return RecordReading(reading), {"event_id": epcis.event_hash(reading).hex()}


# --- lots and receipts ----------------------------------------------------------------------------------


@warehouse.command("lot")
@click.argument("lot")
@click.option("--event", "intake_event", required=True, help="The weighbridge receiving event's id.")
@click.option("--bin", "bin_name", required=True)
@click.option("--form", default="coil", show_default=True)
@click.option("--grade", required=True)
@click.option("--spec", required=True)
@click.option("--pieces", type=int, default=1, show_default=True)
@click.option("--mill-cert", required=True, help="The mill certificate (64 hex, or its number to hash).")
@click.option("--production-date", required=True, help="YYYY-MM-DD.")
@act
def warehouse_lot(sender: Act, lot: str, intake_event: str, bin_name: str, form: str, grade: str, spec: str,
                  pieces: int, mill_cert: str, production_date: str) -> tuple[Operation, dict[str, Any]]:
    """Book LOT (MILL:HEAT:COIL) into a bin against its weighbridge intake event (the warehouse signs)."""
    parts = lot.split(":")
    if len(parts) != 3 or not all(parts):
        raise BadRequest("LOT is MILL:HEAT:COIL")
    mill, heat, coil = parts
    op = RegisterLot(mill, heat, coil, form, grade, spec, pieces, bytes.fromhex(_hex32(intake_event, "--event")),
                     _digest(mill_cert), production_date, bin_name)
    return op, {"lot": lot_key(mill, heat, coil).hex()}


@warehouse.group("receipt")
def receipt_group() -> None:
    """Issue a receipt: the warehouse proposes it over booked lots; the depositor accepts
    (and the supervisor signs off); either may refuse."""


@receipt_group.command("propose")
@click.option("--depositor", required=True, help="The depositor's address (a registered depositor or bank).")
@_lots_opt
@click.option("--commodity", default="hot-rolled coil", show_default=True)
@click.option("--spec", required=True)
@click.option("--grade", required=True)
@click.option("--producer", required=True)
@click.option("--packaging", default="bare coil", show_default=True)
@click.option("--marks", default="heat/coil stencil", show_default=True)
@click.option("--storage-until", required=True, help="End of the storage period (ISO date or ms).")
@click.option("--fee", "fee_per_tonne_day", type=int, default=0, show_default=True,
              help="Storage fee per tonne and day, in minor units.")
@click.option("--currency", default="CNY", show_default=True)
@click.option("--shrinkage-permille", type=int, default=0, show_default=True)
@click.option("--negotiable/--non-negotiable", default=True, show_default=True)
@click.option("--rights-notice", default="凭证权利提示", show_default=True,
              help="The notice text (hashed) or its hash.")
@click.option("--issue-place", required=True)
@click.option("--signer", "clerk", required=True, help="The issuing clerk (填发人).")
@click.option("--number", type=int, default=None, help="Default: the next number of the warehouse's series.")
@click.option("--quantity-kg", type=int, default=None, help="Default: the sum of the lots' weighed nets.")
@click.option("--pieces", type=int, default=None, help="Default: the sum of the lots' pieces.")
@act
def receipt_propose(sender: Act, depositor: str, lots: tuple[str, ...], commodity: str, spec: str, grade: str,
                    producer: str, packaging: str, marks: str, storage_until: str, fee_per_tonne_day: int,
                    currency: str, shrinkage_permille: int, negotiable: bool, rights_notice: str, issue_place: str,
                    clerk: str, number: int | None, quantity_kg: int | None,
                    pieces: int | None) -> tuple[Operation, dict[str, Any]]:
    """The signing warehouse proposes the next receipt of its series; quantity and pieces are
    the lots' sums (execution checks them against the booked lots either way)."""
    if not lots:
        raise BadRequest("a receipt lists at least one --lot")
    keys = tuple(_lot(lot) for lot in lots)
    if quantity_kg is None or pieces is None:
        booked = [_get(sender.node_url, "lot", key=key.hex())["lot"] for key in keys]
        quantity_kg = sum(int(lot["net_kg"]) for lot in booked) if quantity_kg is None else quantity_kg
        pieces = sum(int(lot["pieces"]) for lot in booked) if pieces is None else pieces
    if number is None:
        info = _get(sender.node_url, "party", key=sender.signer.address)["warehouse"]
        if info is None:
            raise BadRequest("the signing key is not a registered warehouse")
        number = int(info["next_receipt_no"])
    goods = Goods(commodity, spec, grade, producer, packaging, marks, pieces, quantity_kg)
    op = ProposeReceipt(number, _address(depositor), keys, goods,
                        Terms(shrinkage_permille, _ms(storage_until), fee_per_tonne_day, currency), negotiable,
                        _digest(rights_notice), issue_place, clerk)
    return op, {"receipt": receipt_id(sender.signer.public_key, number).hex(), "number": number}


@receipt_group.command("accept")
@_receipt_arg
@act
def receipt_accept(sender: Act, receipt: str) -> Operation:
    """The depositor accepts RECEIPT, or the supervisor signs it off."""
    return AcceptReceipt(bytes.fromhex(receipt))


@receipt_group.command("reject")
@_receipt_arg
@click.option("--reason", default="")
@act
def receipt_reject(sender: Act, receipt: str, reason: str) -> Operation:
    """The depositor or supervisor refuses a proposed RECEIPT, or its warehouse withdraws it."""
    return RejectReceipt(bytes.fromhex(receipt), reason)


# --- transfer and pledge -----------------------------------------------------------------------------


@warehouse.group("transfer")
def transfer_group() -> None:
    """Endorse a receipt to a new holder: the holder offers, the transferee accepts, the
    warehouse countersigns (the last two in either order)."""


@transfer_group.command("offer")
@_receipt_arg
@click.option("--to", "to", required=True, help="The transferee's address.")
@act
def transfer_offer(sender: Act, receipt: str, to: str) -> tuple[Operation, dict[str, Any]]:
    """The holder offers RECEIPT; the entry's id names the offer."""
    return OfferTransfer(bytes.fromhex(receipt), _address(to)), {"receipt": receipt}


@transfer_group.command("accept")
@_receipt_arg
@_offer_opt
@act
def transfer_accept(sender: Act, receipt: str, offer: str) -> Operation:
    """The transferee accepts the offer."""
    return AcceptTransfer(bytes.fromhex(receipt), _pending_offer(sender, receipt, offer))


@transfer_group.command("countersign")
@_receipt_arg
@_offer_opt
@act
def transfer_countersign(sender: Act, receipt: str, offer: str) -> Operation:
    """The warehouse countersigns the transfer (the bailee's seal)."""
    return Countersign(bytes.fromhex(receipt), _pending_offer(sender, receipt, offer))


@transfer_group.command("cancel")
@_receipt_arg
@_offer_opt
@act
def transfer_cancel(sender: Act, receipt: str, offer: str) -> Operation:
    """The offeror withdraws, or the transferee or the warehouse refuses."""
    return CancelOffer(bytes.fromhex(receipt), _pending_offer(sender, receipt, offer))


@warehouse.group("pledge")
def pledge_group() -> None:
    """Pledge a receipt: the holder requests, the bank confirms, the warehouse countersigns
    (the last two in either order)."""


@pledge_group.command("request")
@_receipt_arg
@click.option("--to", "to", required=True, help="The pledgee bank's address.")
@click.option("--facility", required=True, help="The credit facility it secures.")
@click.option("--registration", default="", help="The external pledge registration number (中登网), if any.")
@act
def pledge_request(sender: Act, receipt: str, to: str, facility: str, registration: str) -> Operation:
    """The holder requests a pledge of RECEIPT to a bank; the entry's id names the offer."""
    return RequestPledge(bytes.fromhex(receipt), _address(to), facility, registration)


@pledge_group.command("confirm")
@_receipt_arg
@_offer_opt
@act
def pledge_confirm(sender: Act, receipt: str, offer: str) -> Operation:
    """The bank confirms the pledge request."""
    return ConfirmPledge(bytes.fromhex(receipt), _pending_offer(sender, receipt, offer))


@pledge_group.command("countersign")
@_receipt_arg
@_offer_opt
@act
def pledge_countersign(sender: Act, receipt: str, offer: str) -> Operation:
    """The warehouse countersigns the pledge."""
    return Countersign(bytes.fromhex(receipt), _pending_offer(sender, receipt, offer))


@pledge_group.command("cancel")
@_receipt_arg
@_offer_opt
@act
def pledge_cancel(sender: Act, receipt: str, offer: str) -> Operation:
    """The holder withdraws the request, or the bank or the warehouse refuses it."""
    return CancelOffer(bytes.fromhex(receipt), _pending_offer(sender, receipt, offer))


@warehouse.command("release")
@_receipt_arg
@_lots_opt
@act
def warehouse_release(sender: Act, receipt: str, lots: tuple[str, ...]) -> Operation:
    """The pledgee releases RECEIPT wholly, or only the lots named (a partial release)."""
    return ReleasePledge(bytes.fromhex(receipt), tuple(_lot(lot) for lot in lots))


@warehouse.command("default")
@_receipt_arg
@click.option("--cure-days", type=float, default=0.0, show_default=True, help="The cure period.")
@act
def warehouse_default(sender: Act, receipt: str, cure_days: float) -> Operation:
    """The pledgee declares the pledgor in default, with a cure period."""
    return DeclareDefault(bytes.fromhex(receipt), int(cure_days * 24 * 3600 * 1000))


@warehouse.command("cure")
@_receipt_arg
@act
def warehouse_cure(sender: Act, receipt: str) -> Operation:
    """The pledgee records that the default was cured within its period."""
    return CureDefault(bytes.fromhex(receipt))


@warehouse.command("invoke")
@_receipt_arg
@act
def warehouse_invoke(sender: Act, receipt: str) -> Operation:
    """The pledgee takes the receipt once the cure period is over (or it expired under pledge)."""
    return InvokePledge(bytes.fromhex(receipt))


# --- delivery, split and merge --------------------------------------------------------------------------


@warehouse.group("deliver")
def deliver_group() -> None:
    """Take goods out: the holder surrenders the receipt, the warehouse ships and cancels it
    once outbound weighings cover every lot."""


@deliver_group.command("surrender")
@_receipt_arg
@click.option("--collector", required=True, help="The collector's identity document reference (hashed).")
@_lots_opt
@act
def deliver_surrender(sender: Act, receipt: str, collector: str, lots: tuple[str, ...]) -> Operation:
    """The holder surrenders RECEIPT for delivery of all its lots, or of those named."""
    return Surrender(bytes.fromhex(receipt), _digest(collector), tuple(_lot(lot) for lot in lots))


@deliver_group.command("cancel")
@_receipt_arg
@act
def deliver_cancel(sender: Act, receipt: str) -> Operation:
    """The warehouse cancels a surrendered RECEIPT once its lots are weighed out."""
    return CancelReceipt(bytes.fromhex(receipt))


@warehouse.command("split")
@_receipt_arg
@click.option("--part", "parts", multiple=True, required=True,
              help="The lots of one new receipt, comma-separated (repeat; together exactly the receipt's lots).")
@act
def warehouse_split(sender: Act, receipt: str, parts: tuple[str, ...]) -> Operation:
    """The holder splits RECEIPT into new receipts by lots."""
    return SplitReceipt(bytes.fromhex(receipt),
                        tuple(tuple(_lot(lot.strip()) for lot in part.split(",") if lot.strip()) for part in parts))


@warehouse.command("merge")
@click.argument("receipts", nargs=-1, required=True)
@act
def warehouse_merge(sender: Act, receipts: tuple[str, ...]) -> Operation:
    """The holder merges RECEIPTS (same warehouse, goods and terms) into one."""
    return MergeReceipts(tuple(bytes.fromhex(_hex32(r, "RECEIPT")) for r in receipts))


# --- the regulator and the council -----------------------------------------------------------------------


@warehouse.command("case")
@click.option("--reason-code", required=True, help="a-z, 0-9 and '_'.")
@click.option("--legal-ref", required=True)
@click.option("--summary", required=True)
@act
def warehouse_case(sender: Act, reason_code: str, legal_ref: str, summary: str) -> Operation:
    """A regulator (or a council member) opens a case that freezes and voids cite."""
    return OpenCase(reason_code, legal_ref, summary)


@warehouse.command("freeze")
@_receipt_arg
@click.option("--case", "case", type=int, required=True)
@act
def warehouse_freeze(sender: Act, receipt: str, case: int) -> Operation:
    """A regulator freezes RECEIPT under a case: every move of it is refused until unfrozen."""
    return FreezeReceipt(bytes.fromhex(receipt), case)


@warehouse.command("unfreeze")
@_receipt_arg
@click.option("--case", "case", type=int, required=True)
@act
def warehouse_unfreeze(sender: Act, receipt: str, case: int) -> Operation:
    """A regulator lifts the freeze imposed under the same case."""
    return UnfreezeReceipt(bytes.fromhex(receipt), case)


@warehouse.command("void")
@_receipt_arg
@click.option("--case", "case", type=int, required=True)
@act
def warehouse_void(sender: Act, receipt: str, case: int) -> Operation:
    """A council member invalidates RECEIPT on the evidence of a case."""
    return VoidReceipt(bytes.fromhex(receipt), case)


# --- proof ----------------------------------------------------------------------------------------------


@warehouse.command("proof")
@_receipt_arg
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the document to this file instead of stdout.")
@node_option
@json_option
def warehouse_proof(receipt: str, out: Path | None, node_url: str, as_json: bool) -> None:
    """One document proving RECEIPT's whole history: every entry that wrote it, its lots'
    bookings and their device readings, each with its bilayer entry proof; `bilayer audit
    verify FILE --genesis GENESIS.json` checks it offline. Always JSON."""
    from ...audit.proof import PROOF_FORMAT, EntryProof
    from .proof import ReceiptProof, encode

    client = NodeClient(node_url, timeout=PROOF_TIMEOUT_S)
    trail = _get(node_url, "trail", id=receipt)
    status = client.status()

    def proofs(ids: list[str]) -> tuple[EntryProof, ...]:
        return tuple(msgspec.json.decode(msgspec.json.encode(client.get(f"/v1/audit/proof/{entry}")),
                                         type=EntryProof) for entry in ids)

    evidence, lots, history = proofs(trail["evidence"]), proofs(trail["lots"]), proofs(trail["history"])
    document = ReceiptProof(PROOF_FORMAT, status["chain_id"], bytes.fromhex(status["genesis_root"]),
                            bytes.fromhex(receipt), history, lots, evidence)
    text = encode(document).decode() + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)


# --- the simulator --------------------------------------------------------------------------------------


@warehouse.command("simulate")
@click.option("--node", "nodes", multiple=True, required=True, help="A node's API URL (repeat: steps go round-robin).")
@keystore_option
@click.option("--council-key", required=True, help="A key with council weight: it appoints the simulated parties.")
@click.option("--seed", type=int, default=1, show_default=True, help="Everything the world does follows from it.")
@click.option("--warehouses", type=int, default=3, show_default=True)
@click.option("--days", type=int, default=10, show_default=True, help="Trading days (a quiet day follows).")
@click.option("--day-seconds", type=float, default=20.0, show_default=True, help="Wall-clock seconds per day.")
@click.option("--faults", default="", help=f"Comma-separated: {', '.join(simulate.FAULT_KINDS)}, or all.")
@click.option("--timeout", type=float, default=90.0, show_default=True,
              help="Seconds a step may wait for its outcome, or for the steps it follows.")
@click.option("--plan-only", is_flag=True, help="Print the plan's summary (and its digest) without a network.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the result as JSON to this file.")
@json_option
def warehouse_simulate(nodes: tuple[str, ...], keystore: Path | None, council_key: str, seed: int, warehouses: int,
                       days: int, day_seconds: float, faults: str, timeout: float, plan_only: bool, out: Path | None,
                       as_json: bool) -> None:
    """A seeded world of warehouses, devices, depositors, banks and prices played on a running
    network, with faults injected; then, per fault, whether its rule caught it and how fast."""
    plan = simulate.plan(seed, warehouses=warehouses, days=days, day_seconds=day_seconds,
                         faults=(faults,) if faults else ())
    if plan_only:
        emit(simulate.summary(plan), as_json, _plan_table)
        return
    store = open_keystore(keystore)
    driver = simulate.Driver(plan, list(nodes), store, store.load(council_key), timeout_s=timeout)
    if as_json:
        result = driver.run()
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[tally]}"), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("setup", total=len(plan.steps), tally="")

            def show(d: simulate.Driver) -> None:
                tally = d.counts()
                bar.update(task, completed=len(d.outcomes), description="setup" if d.day < 0 else f"day {d.day}",
                           tally=f"sent {d.sent}  FINAL {tally.get('FINAL', 0)}  REJECTED {tally.get('REJECTED', 0)}")

            driver.progress = show
            result = driver.run()
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
    emit(result, as_json, _result_table)


def _plan_table(d: dict[str, Any]) -> None:
    kv_table(f"plan of seed {d['seed']} ({d['digest'][:16]}…)",
             {k: v for k, v in d.items() if k not in ("faults", "kinds", "rehearsal")})
    console.print("steps by kind: " + ", ".join(f"{k.removeprefix('warehouse.')} {v}" for k, v in d["kinds"].items()))
    r = d["rehearsal"]
    for f in d["faults"]:
        caught = r["detected"].get(f["kind"], [])
        console.print(f"  {f['kind']:<18} {f['where']:<16} day {f['day']}  {', '.join(f['rules'])}"
                      f"  (rehearsed: {', '.join(caught) or 'none'} caught)  {f['note']}")
    console.print("rehearsal on this build, no network: " + ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
                  + f"; false positives {r['false_positives']}"
                  + ("" if r["monitoring"] else "; no reconciliation rules in this build"))


def _result_table(d: dict[str, Any]) -> None:
    table = Table(title=f"seed {d['seed']}: {d['warehouses']} warehouses, {d['days']} days of {d['day_seconds']} s "
                        f"(monitoring {'on' if d['monitoring'] else 'absent'}, finance "
                        f"{'on' if d['finance'] else 'absent'})", title_justify="left")
    for column in ("fault", "injected", "expected", "detected", "missed", "to alert (s)", "to HELD (s)"):
        table.add_column(column)
    for row in d["faults"]:
        table.add_row(row["fault"], str(row["injected"]), ", ".join(row["rules"]), ", ".join(row["detected"]) or "-",
                      ", ".join(row["missed"]) or "-", ", ".join(map(str, row["alert_s"])) or "-",
                      ", ".join(map(str, row["held_s"])) or "-")
    console.print(table)
    if d["alerts"]:
        console.print("alerts raised, by rule: " + ", ".join(f"{k} {v}" for k, v in d["alerts"].items()))
    console.print(f"false positives: {len(d['false_positives'])}"
                  + "".join(f"\n  {f['rule']} at {f['warehouse']}" for f in d["false_positives"]))
    console.print("steps: " + ", ".join(f"{k} {v}" for k, v in d["outcomes"].items())
                  + f" (of {d['steps']}; most behind schedule: {d['max_lag_s']} s)")
    if d["rejected"]:
        console.print("not final, by code: " + ", ".join(f"{k}: {v}" for k, v in d["rejected"].items()))
    if d["unsupported_kinds"]:
        console.print("kinds this build does not have: " + ", ".join(d["unsupported_kinds"]))

"""`bilayer warehouse ...`: the warehouse application from the command line.

Reads go to `GET /v1/apps/warehouse/<query>`; every act is one signed entry, submitted as
`bilayer tx` submits (`--key`, `--wait`, `--json`). Keys are named by address, receipts,
lots, offers and events by their 64-hex ids; a lot may also be named `MILL:HEAT:COIL`.
"""

from __future__ import annotations

import csv
import hashlib
import io
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
from .monitor import RULES
from .operations import (
    AcceptReceipt,
    AcceptTransfer,
    AppointPublisher,
    ApproveDevice,
    CancelOffer,
    CancelReceipt,
    CloseFacility,
    ConfirmPledge,
    Countersign,
    CureDefault,
    DeclareDefault,
    FreezeReceipt,
    InvokePledge,
    MergeReceipts,
    OfferTransfer,
    OpenCase,
    OpenFacility,
    ProposeDevice,
    ProposeReceipt,
    PublishPrice,
    RecordReading,
    RecordStocktake,
    RegisterLot,
    RegisterParty,
    RegisterWarehouse,
    RejectReceipt,
    ReleasePledge,
    ReportOutstanding,
    RequestPledge,
    ResolveAlert,
    RevokeDevice,
    RevokeParty,
    SetFinanceBounds,
    SetMonitoring,
    SplitReceipt,
    Surrender,
    TopUp,
    UnfreezeReceipt,
    VoidReceipt,
    WarehouseOperation,
)
from .records import (
    DEVICE_KINDS,
    MARK_KINDS,
    RESOLUTION_CODES,
    SEVERITIES,
    Calibration,
    Goods,
    Policy,
    SpecLimit,
    Terms,
    lot_key,
    lot_urn,
    receipt_id,
)


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
@click.option("--epcis", "epcis_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the evidence as one EPCIS 2.0 document (JSON-LD) to this file.")
@node_option
@json_option
def warehouse_evidence(receipt: str, epcis_out: Path | None, node_url: str, as_json: bool) -> None:
    """The device evidence of a receipt's lots, with the same as one EPCIS 2.0 document."""
    data = _get(node_url, "evidence", id=_hex32(receipt, "RECEIPT"))
    if epcis_out is not None:
        epcis_out.write_text(json.dumps(data["epcis"], indent=2, ensure_ascii=False) + "\n")

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
@click.option("--heartbeat-ms", type=int, default=60_000, show_default=True,
              help="How often it reports at least (0: it sends no heartbeats); rule R7 watches the gaps.")
@act
def device_propose(sender: Act, device_id: str, device_kind: Any, bins: str, device_address: str, read_point: str,
                   certificate: str, accuracy_class: str, scale_interval_g: int, calibrated_until: str,
                   heartbeat_ms: int) -> Operation:
    """Propose DEVICE_ID (a GIAI URN) at the signing warehouse."""
    return ProposeDevice(device_id, device_kind, tuple(b.strip() for b in bins.split(",") if b.strip()),
                         _address(device_address), read_point,
                         Calibration(_digest(certificate), accuracy_class, scale_interval_g, _ms(calibrated_until)),
                         heartbeat_ms)


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
    from ...audit.verify import PROOF_FORMAT, EntryProof
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


@warehouse.command("alert-export")
@click.argument("alert")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="A file for the document, or an existing directory (it is written there as alert-ID.json).")
@node_option
@json_option
def warehouse_alert_export(alert: str, out: Path, node_url: str, as_json: bool) -> None:
    """One document proving ALERT's evidence: the alert as the node reports it, the signed
    readings (or stocktake) it names with their entry proofs, the devices' registrations, and
    for goods that left with no instruction the coils' bookings and intake weighings; `bilayer
    audit verify FILE --genesis GENESIS.json` checks it offline and says what it takes on trust."""
    from ...audit.verify import EntryProof
    from .alert_proof import PARTS, assemble, encode

    aid = _hex32(alert, "ALERT")
    client = NodeClient(node_url, timeout=PROOF_TIMEOUT_S)
    trail = _get(node_url, "alert_trail", id=aid)
    status = client.status()
    document = assemble(trail, status["chain_id"], bytes.fromhex(status["genesis_root"]), lambda entry: (
        msgspec.json.decode(msgspec.json.encode(client.get(f"/v1/audit/proof/{entry}")), type=EntryProof)))
    record = document.alert
    target = out / f"alert-{aid}.json" if out.is_dir() else out
    target.write_text(encode(document).decode() + "\n")
    entries = sum(len(trail[part]) for part in PARTS)
    emit({"alert": aid, "rule": record.rule, "file": str(target), "entries": entries}, as_json,
         lambda d: console.print(f"{d['rule']} alert {d['alert'][:16]}…: {d['entries']} entry proofs written to"
                                 f" {d['file']}"))


# --- monitoring: alerts, holds, stocktakes, the council's policy -----------------------------------------


@warehouse.command("alerts")
@click.option("--warehouse", "warehouse_address", default="", help="Only this warehouse's alerts.")
@click.option("--status", default="", type=click.Choice(["", "open", "resolved"]), help="open or resolved.")
@click.option("--severity", default="", type=click.Choice(["", *SEVERITIES]), help="Only this severity.")
@click.option("--rule", default="", type=click.Choice(["", *RULES]), help="Only this rule (R1 ... R12).")
@node_option
@json_option
def warehouse_alerts(warehouse_address: str, status: str, severity: str, rule: str, node_url: str,
                     as_json: bool) -> None:
    """Reconciliation alerts, oldest first: rule, severity, what was compared, what is held."""
    data = _get(node_url, "alerts", warehouse=warehouse_address, status=status, severity=severity, rule=rule)

    def human(d: dict[str, Any]) -> None:
        console.print(f"{d['count']} alerts")
        for a in d["alerts"]:
            held = len(a["held_receipts"]) + len(a["held_bins"])
            console.print(f"  {a['id'][:16]}… {a['rule']:<4} {a['severity']:<8} {a['status']:<8} "
                          f"h{a['height']:<6} {'HELD ' if held and a['status'] == 'open' else ''}{a['summary']}")

    emit(data, as_json, human)


@warehouse.command("alert")
@click.argument("alert")
@node_option
@json_option
def warehouse_alert(alert: str, node_url: str, as_json: bool) -> None:
    """One alert: expected against observed, the tolerance and its inputs, evidence, holds, resolution."""
    data = _get(node_url, "alert", id=_hex32(alert, "ALERT"))

    def human(d: dict[str, Any]) -> None:
        a = d["alert"]
        kv_table(f"alert {a['id']}", {
            "rule": f"{a['rule']} v{a['rule_version']}", "severity": a["severity"], "status": a["status"],
            "warehouse": a["warehouse_address"], "summary": a["summary"],
            "detected": f"height {a['height']}, time {a['time_ms']}",
            "expected / observed": f"{a['expected']} / {a['observed']} {a['unit']} (delta {a['delta']}, "
                                   f"tolerance {a['tolerance']})",
            "tolerance inputs": ", ".join(f"{name}={value}" for name, value in a["tolerance_inputs"]) or "-",
            "bins": ", ".join(a["bins"]) or "-", "receipts": ", ".join(a["receipts"]) or "-",
            "devices": ", ".join(a["devices"]) or "-", "evidence": ", ".join(a["evidence"]) or "-",
            "held receipts": ", ".join(a["held_receipts"]) or "-", "held bins": ", ".join(a["held_bins"]) or "-",
            "resolution": "-" if a["resolution"] is None else f"{a['resolution']['code']}: {a['resolution']['note']}"})

    emit(data, as_json, human)


@warehouse.command("holds")
@click.option("--warehouse", "warehouse_address", default="", help="Only this warehouse's holds.")
@node_option
@json_option
def warehouse_holds(warehouse_address: str, node_url: str, as_json: bool) -> None:
    """The HELD overlay: held receipts and bins, with the alerts holding them."""
    data = _get(node_url, "holds", warehouse=warehouse_address)

    def human(d: dict[str, Any]) -> None:
        for r in d["receipts"]:
            console.print(f"  receipt #{r['number']} {r['id'][:16]}… held by {len(r['held'])} alert(s)")
        for b in d["bins"]:
            console.print(f"  bin {b['bin']} of {b['warehouse']} held by {len(b['alerts'])} alert(s)")

    emit(data, as_json, human)


@warehouse.command("stock")
@click.argument("warehouse_address")
@node_option
@json_option
def warehouse_stock(warehouse_address: str, node_url: str, as_json: bool) -> None:
    """A warehouse's stock statement: book and verified figures by bin; free, pledged, frozen and held by owner."""
    data = _get(node_url, "stock", warehouse=warehouse_address)

    def human(d: dict[str, Any]) -> None:
        console.print(f"live receipts {d['live_receipts_kg']} kg; verified {d['verified_kg']} kg "
                      f"({d['verified_bins']} bins)")
        for b in d["bins"]:
            verified = "-" if b["verified_kg"] < 0 else f"{b['verified_kg']} kg ({b['verified_source']})"
            console.print(f"  bin {b['bin']:<8} book {b['book_kg']:>9} kg {b['book_pieces']:>4} pcs  verified "
                          f"{verified}{'  HELD' if b['held_by'] else ''}")
        for o in d["owners"]:
            console.print(f"  {o['holder']}: free {o['free_kg']} pledged {o['pledged_kg']} frozen {o['frozen_kg']} "
                          f"held {o['held_kg']} kg")

    emit(data, as_json, human)


@warehouse.command("resolve")
@click.argument("alert", callback=lambda _c, _p, v: _hex32(v, "ALERT"))
@click.option("--code", required=True, type=click.Choice(list(RESOLUTION_CODES)))
@click.option("--note", required=True, help="What was found.")
@act
def warehouse_resolve(sender: Act, alert: str, code: Any, note: str) -> Operation:
    """The warehouse's supervisor closes ALERT; the holds it set are lifted."""
    return ResolveAlert(bytes.fromhex(alert), code, note)


@warehouse.command("stocktake")
@click.option("--warehouse", "warehouse_address", required=True, help="The warehouse counted.")
@click.option("--bin", "bin_name", required=True)
@click.option("--counted-kg", type=int, required=True, help="Net kilograms counted in the bin.")
@click.option("--counted-pieces", type=int, required=True, help="Coils or bundles counted in the bin.")
@click.option("--note", default="")
@act
def warehouse_stocktake(sender: Act, warehouse_address: str, bin_name: str, counted_kg: int, counted_pieces: int,
                        note: str) -> Operation:
    """The warehouse's supervisor records a count of a bin (compared with the book by rule R9)."""
    return RecordStocktake(_address(warehouse_address), bin_name, counted_kg, counted_pieces, note)


@warehouse.group("monitoring")
def monitoring_group() -> None:
    """The council's reconciliation policy."""


_DEFAULT = Policy()


@monitoring_group.command("set")
@click.option("--tolerance-permille", type=int, default=_DEFAULT.tolerance_permille, show_default=True,
              help="0: the default, max(3 per mille, 2e).")
@click.option("--business-hours-start-min", type=int, default=_DEFAULT.business_hours_start_min, show_default=True,
              help="Minutes after local midnight (UTC+8).")
@click.option("--business-hours-end-min", type=int, default=_DEFAULT.business_hours_end_min, show_default=True)
@click.option("--heartbeat-factor", type=int, default=_DEFAULT.heartbeat_factor, show_default=True,
              help="R7 fires after this many missed heartbeat intervals.")
@click.option("--ageing-days", type=int, default=_DEFAULT.ageing_days, show_default=True)
@click.option("--expiry-notice-days", type=int, default=_DEFAULT.expiry_notice_days, show_default=True)
@act
def monitoring_set(sender: Act, tolerance_permille: int, business_hours_start_min: int, business_hours_end_min: int,
                   heartbeat_factor: int, ageing_days: int, expiry_notice_days: int) -> Operation:
    """A council member sets the reconciliation policy for every warehouse."""
    return SetMonitoring(tolerance_permille, business_hours_start_min, business_hours_end_min, heartbeat_factor,
                         ageing_days, expiry_notice_days)


# --- finance: prices, facilities, valuations -------------------------------------------------------------


def _checked(op: WarehouseOperation) -> WarehouseOperation:
    """The operation's own rules, checked before anything reaches a node."""
    op.check_body()
    return op


@warehouse.group("publisher")
def publisher_group() -> None:
    """Price publishers: the council appoints them for named sources and specs."""


@publisher_group.command("appoint")
@click.argument("address")
@click.option("--name", required=True)
@click.option("--source", "sources", multiple=True, required=True,
              help="A price source it publishes (mysteel_spot, shfe_settlement, ...; repeat).")
@click.option("--spec", "specs", multiple=True, required=True, help="A spec it prices (repeat).")
@act
def publisher_appoint(sender: Act, address: str, name: str, sources: tuple[str, ...],
                      specs: tuple[str, ...]) -> Operation:
    """A council member appoints ADDRESS to publish prices of these specs from these sources."""
    return _checked(AppointPublisher(_address(address), name, sources, specs))


@warehouse.group("prices")
def prices_group() -> None:
    """Price marks: a publisher publishes one per spec, source and trading day."""


@prices_group.command("publish")
@click.argument("spec")
@click.option("--source", required=True, help="One of the publisher's appointed sources.")
@click.option("--kind", "mark_kind", type=click.Choice(list(MARK_KINDS)), default="spot", show_default=True)
@click.option("--day", required=True, help="The trading day, YYYY-MM-DD.")
@click.option("--price", type=int, required=True, help="Minor units (fen) per tonne.")
@click.option("--currency", default="CNY", show_default=True)
@click.option("--vat-included/--ex-vat", default=False, show_default=True,
              help="Whether the price includes 13 % VAT (it is valued ex-VAT).")
@act
def prices_publish(sender: Act, spec: str, source: str, mark_kind: Any, day: str, price: int, currency: str,
                   vat_included: bool) -> Operation:
    """A publisher's price of SPEC on a trading day."""
    return _checked(PublishPrice(spec, source, mark_kind, day, price, currency, vat_included))


@prices_group.command("list")
@click.option("--spec", default="", help="Also this spec's marks and daily prices.")
@node_option
@json_option
def prices_list(spec: str, node_url: str, as_json: bool) -> None:
    """The as-of day and each spec's latest good price (GET /v1/apps/warehouse/prices)."""
    data = _get(node_url, "prices", spec=spec)

    def human(d: dict[str, Any]) -> None:
        console.print(f"as of {d['as_of'] or '-'} (trading day {d['trading_day']})")
        for h in d["specs"]:
            console.print(f"  {h['spec']}: {h['price']} per t from {h['source']} on {h['day']}"
                          + ("  STALE" if h["stale"] else ""))
        for m in d.get("marks", []):
            console.print(f"  {m['day']} {m['source']} {m['kind']} {m['price']}"
                          f"{' incl. VAT' if m['vat_included'] else ''} -> {m['net_price']} {m['status']}")

    emit(data, as_json, human)


@warehouse.command("bounds")
@click.option("--min-haircut-bp", type=int, default=0, show_default=True)
@click.option("--max-haircut-bp", type=int, default=5000, show_default=True)
@click.option("--max-initial-ltv-bp", type=int, default=8000, show_default=True)
@click.option("--max-liquidation-bp", type=int, default=9500, show_default=True)
@click.option("--min-cure-days", type=int, default=0, show_default=True)
@click.option("--max-cure-days", type=int, default=10, show_default=True)
@click.option("--daily-limit-bp", type=int, default=300, show_default=True, help="The daily move limit of prices.")
@click.option("--spec-limit", "spec_limits", multiple=True, help="SPEC=BP: a spec's own daily limit (repeat).")
@act
def warehouse_bounds(sender: Act, min_haircut_bp: int, max_haircut_bp: int, max_initial_ltv_bp: int,
                     max_liquidation_bp: int, min_cure_days: int, max_cure_days: int, daily_limit_bp: int,
                     spec_limits: tuple[str, ...]) -> Operation:
    """A council member sets the bounds of facility terms and the daily move limit of prices."""
    limits = []
    for text in spec_limits:
        spec, _, bp = text.rpartition("=")
        if not spec or not bp.isdigit():
            raise BadRequest(f"--spec-limit {text!r} is SPEC=BP")
        limits.append(SpecLimit(spec, int(bp)))
    return _checked(SetFinanceBounds(min_haircut_bp, max_haircut_bp, max_initial_ltv_bp, max_liquidation_bp,
                                     min_cure_days, max_cure_days, daily_limit_bp, tuple(limits)))


@warehouse.group("facility")
def facility_group() -> None:
    """Credit facilities: a bank opens one to a borrower, reports what is owed, records cash
    collateral and closes it; pledges name it and it is valued daily."""


_bank_opt = click.option("--bank", "bank", default="", help="The facility's bank (default: the signer).")


@facility_group.command("open")
@click.argument("name")
@click.option("--borrower", required=True, help="The borrower's address (a depositor or bank).")
@click.option("--limit", "limit", type=int, required=True, help="The credit limit, in minor units.")
@click.option("--currency", default="CNY", show_default=True)
@click.option("--haircut-bp", type=int, default=0, show_default=True)
@click.option("--initial-ltv-bp", type=int, default=7000, show_default=True)
@click.option("--warning-bp", type=int, default=7700, show_default=True)
@click.option("--call-bp", type=int, default=8000, show_default=True)
@click.option("--liquidation-bp", type=int, default=8700, show_default=True)
@click.option("--cure-days", type=int, default=1, show_default=True, help="Trading days to cure a margin call.")
@click.option("--max-warehouse-bp", type=int, default=10_000, show_default=True)
@click.option("--max-spec-bp", type=int, default=10_000, show_default=True)
@act
def facility_open(sender: Act, name: str, borrower: str, limit: int, currency: str, haircut_bp: int,
                  initial_ltv_bp: int, warning_bp: int, call_bp: int, liquidation_bp: int, cure_days: int,
                  max_warehouse_bp: int, max_spec_bp: int) -> Operation:
    """A bank opens facility NAME to a borrower."""
    return _checked(OpenFacility(name, _address(borrower), limit, currency, haircut_bp, initial_ltv_bp, warning_bp,
                                 call_bp, liquidation_bp, cure_days, max_warehouse_bp, max_spec_bp))


@facility_group.command("outstanding")
@click.argument("name")
@click.option("--amount", type=int, required=True, help="The balance owed, in minor units.")
@click.option("--day", required=True, help="As of this day, YYYY-MM-DD.")
@_bank_opt
@act
def facility_outstanding(sender: Act, name: str, amount: int, day: str, bank: str) -> Operation:
    """The facility's bank reports the balance owed on NAME."""
    return _checked(ReportOutstanding(name, amount, day, _address(bank) if bank else b""))


@facility_group.command("top-up")
@click.argument("name")
@click.option("--amount", type=int, required=True, help="Cash collateral received, in minor units.")
@_bank_opt
@act
def facility_top_up(sender: Act, name: str, amount: int, bank: str) -> Operation:
    """The facility's bank records cash collateral received for NAME."""
    return _checked(TopUp(name, amount, _address(bank) if bank else b""))


@facility_group.command("close")
@click.argument("name")
@_bank_opt
@act
def facility_close(sender: Act, name: str, bank: str) -> Operation:
    """The facility's bank closes NAME (nothing owed, no live pledge)."""
    return _checked(CloseFacility(name, _address(bank) if bank else b""))


@facility_group.command("show")
@click.argument("bank")
@click.argument("name")
@node_option
@json_option
def facility_show(bank: str, name: str, node_url: str, as_json: bool) -> None:
    """A facility: terms, state and its changes, LTV by day (GET /v1/apps/warehouse/facility)."""
    data = _get(node_url, "facility", bank=bank, name=name)

    def human(d: dict[str, Any]) -> None:
        f = d["facility"]
        kv_table(f"facility {f['name']} of {f['bank']}", {
            "state": f["state"], "borrower": f["borrower"], "limit": str(f["limit"]),
            "outstanding": f"{f['outstanding']} (as of {f['outstanding_day'] or '-'})", "cash": str(f["cash"]),
            "LTV": f"{f['last_ltv_bp']} bp on {f['last_day'] or '-'}", "collateral": str(f["last_collateral"]),
            "lines": f"warning {f['warning_bp']}, call {f['call_bp']}, liquidation {f['liquidation_bp']} bp",
            "pledges": str(len(d["pledges"]))})
        for e in d["events"]:
            console.print(f"  {e['day']} -> {e['state']} at {e['ltv_bp']} bp: {e['cause']}")

    emit(data, as_json, human)


@facility_group.command("list")
@click.option("--bank", default="", help="Only this bank's facilities.")
@node_option
@json_option
def facility_list(bank: str, node_url: str, as_json: bool) -> None:
    """Facilities with their state and LTV (GET /v1/apps/warehouse/facilities)."""
    data = _get(node_url, "facilities", bank=bank)

    def human(d: dict[str, Any]) -> None:
        console.print(f"{d['count']} facilities")
        for f in d["facilities"]:
            console.print(f"  {f['bank']} {f['name']}: {f['state']} LTV {f['ltv_bp']} bp, owed {f['outstanding']}")

    emit(data, as_json, human)


CSV_HEADER = ("day", "bank", "facility", "line", "receipt", "spec", "warehouse", "quantity_kg", "price", "source",
              "price_day", "stale", "haircut_bp", "value", "cash", "collateral", "outstanding", "ltv_bp", "state")
"""The daily valuation statement as CSV: one `receipt` line per pledged receipt, then a `total` line."""


def valuation_csv(v: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    head = (v["day"], v["bank"], v["facility"])
    for line in v["lines"]:
        writer.writerow((*head, "receipt", line["receipt"], line["spec"], line["warehouse"], line["quantity_kg"],
                         line["price"], line["source"], line["price_day"], str(line["stale"]).lower(),
                         line["haircut_bp"], line["value"], "", "", "", "", ""))
    writer.writerow((*head, "total", "", "", "", sum(line["quantity_kg"] for line in v["lines"]), "", "", "",
                     str(v["stale"]).lower(), "", sum(line["value"] for line in v["lines"]), v["cash"],
                     v["collateral"], v["outstanding"], v["ltv_bp"], v["state"]))
    return out.getvalue()


@warehouse.command("valuation")
@click.argument("bank")
@click.argument("facility")
@click.option("--day", default="", help="YYYY-MM-DD (default: the latest valuation).")
@click.option("--csv", "csv_out", default="", help="Write the statement as CSV to this file, or - for stdout.")
@node_option
@json_option
def warehouse_valuation(bank: str, facility: str, day: str, csv_out: str, node_url: str, as_json: bool) -> None:
    """The daily valuation statement of a facility (GET /v1/apps/warehouse/valuation)."""
    data = _get(node_url, "valuation", bank=bank, name=facility, day=day)
    v = data["valuation"]
    if csv_out == "-":
        click.echo(valuation_csv(v), nl=False)
        return
    if csv_out:
        Path(csv_out).write_text(valuation_csv(v))

    def human(d: dict[str, Any]) -> None:
        s = d["valuation"]
        console.print(f"{s['facility']} on {s['day']}: {s['state']}, LTV {s['ltv_bp']} bp, collateral "
                      f"{s['collateral']} (cash {s['cash']}), owed {s['outstanding']}"
                      + ("  STALE PRICE" if s["stale"] else "")
                      + ("  CONCENTRATION BREACH" if s["concentration_breach"] else ""))
        console.print(f"  headroom: warning {s['headroom_warning']}, call {s['headroom_call']}, "
                      f"liquidation {s['headroom_liquidation']}")
        for line in s["lines"]:
            console.print(f"  {line['receipt'][:16]}… {line['spec']} {line['quantity_kg']} kg x {line['price']} "
                          f"({line['source']}, {line['price_day']}) -{line['haircut_bp']} bp = {line['value']}")

    emit(data, as_json, human)

# --- the simulator --------------------------------------------------------------------------------------


@warehouse.command("simulate")
@click.option("--node", "nodes", multiple=True, help="A node's API URL (repeat: authors are spread over them).")
@keystore_option
@click.option("--council-key", default="", help="A key with council weight: it appoints the simulated parties.")
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
    if not nodes or not council_key:
        raise simulate.SimulationInvalid("a run needs --node (one or more) and --council-key")
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

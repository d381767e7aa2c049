"""Device evidence as GS1 EPCIS 2.0 ObjectEvents: the subset the chain keeps, and its hash.

An entry header is small and execution must never need a payload (a redacted payload is
gone from every node), so a device's reading travels as a typed `Reading` in the operation
body, and the EPCIS 2.0 JSON event is its *rendering*: `render(reading)` gives a standalone
ObjectEvent that validates against the standard's JSON Schema, and `parse(json)` turns such
an event back into the `Reading` (`parse(render(r)) == r`). A JSON event that carries a
field outside the subset is refused rather than trimmed, so what the chain keeps is exactly
what the device reported.

The subset (everything EPCIS requires, and what a warehouse needs):

    type "ObjectEvent", action, eventTime + eventTimeZoneOffset (millisecond precision),
    bizStep (CBV bare word), disposition, epcList, quantityList [{epcClass, quantity, uom}],
    readPoint.id, bizLocation.id, bizTransactionList [{type, bizTransaction}],
    certificationInfo (one URI), one sensorElement: sensorMetadata {deviceID, deviceMetadata,
    rawData, time} and sensorReport [{type, value, uom, "bl:weighing": gross|tare|net}],
    and the extensions "bl:deviceID" (the reporting device) and "bl:deviceSeq" (its counter).

The event id is `ni:///sha-256;<hex>` (RFC 6920) of the canonical JSON of the rendering
without `eventID`, `recordTime` and `@context`: keys sorted, no whitespace, UTF-8, decimal
numbers in their shortest exact spelling. It is independent of field order, whitespace and
number spelling of the JSON a device sends; it is not the GS1 CBV 2.0 pre-hash algorithm
(left out, see the package docstring), hence no `?ver=CBV2.0`.

Quantities are decimal strings, never floats: canonical msgpack has no floats, and "23.48 t"
must be 23480 kg on every node. Masses are kilograms or tonnes, whole kilograms, not negative.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec

from ... import codec
from .errors import (
    EpcisBadQuantity,
    EpcisEventIdMismatch,
    EpcisInvalid,
    EpcisTooLarge,
    EpcisUnsupportedField,
    EpcisWeighingInconsistent,
    EpcisWrongUnit,
)

MAX_EVENT_JSON_BYTES: Final = 8192
MAX_READING_BYTES: Final = 1024
MAX_URI: Final = 128
MAX_EPCS: Final = 16
MAX_QUANTITIES: Final = 8
MAX_REPORTS: Final = 16
MAX_TRANSACTIONS: Final = 4
MAX_SEQ: Final = 2**63 - 1

CONTEXT: Final = ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld", {"bl": "https://bilayer.example/voc/"}]
ACTIONS: Final = ("OBSERVE", "ADD", "DELETE")
BIZ_STEPS: Final = frozenset({
    "accepting", "arriving", "cycle_counting", "departing", "holding", "inspecting", "loading", "picking",
    "receiving", "sampling", "sensor_reporting", "shipping", "staging_outbound", "stock_taking", "stocking",
    "storing", "unloading", "void_shipping",
})
DISPOSITIONS: Final = frozenset({
    "active", "damaged", "destroyed", "expired", "in_progress", "in_transit", "reserved",
    "sellable_accessible", "sellable_not_accessible", "stolen", "unknown",
})
MASS_UNITS: Final = {"KGM": 1, "TNE": 1000}  # kilograms per unit
WEIGHINGS: Final = ("", "gross", "tare", "net")

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!-~]+")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,11})(\.[0-9]{0,5}[1-9])?")
_UOM = re.compile(r"[A-Z0-9]{2,3}")
_OFFSET = re.compile(r"[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)")
_MEASUREMENT = re.compile(r"[A-Z][A-Za-z]{0,40}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Quantity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    epc_class: str
    quantity: str  # canonical decimal
    uom: str


class SensorReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: str
    value: str  # canonical decimal
    uom: str
    weighing: str = ""  # for Mass: gross, tare or net ("" is net)


class BizTransaction(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: str
    id: str


class Reading(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One ObjectEvent as the chain keeps it (field order is the canonical encoding)."""

    device_id: str
    seq: int
    event_time_ms: int
    tz_offset: str
    action: str
    biz_step: str
    disposition: str = ""
    epcs: tuple[str, ...] = ()
    quantities: tuple[Quantity, ...] = ()
    read_point: str = ""
    biz_location: str = ""
    transactions: tuple[BizTransaction, ...] = ()
    certification: str = ""
    reports: tuple[SensorReport, ...] = ()
    sensor_time_ms: int = -1  # -1: no sensorMetadata.time
    device_metadata: str = ""
    raw_data: str = ""


# --- stateless rules ---------------------------------------------------------------------------


def _uri(value: str, what: str) -> None:
    if len(value) > MAX_URI or not _URI.fullmatch(value):
        raise EpcisInvalid(f"{what} must be a URI of at most {MAX_URI} characters")


def _decimal(value: str, what: str, *, signed: bool = False) -> Decimal:
    if not _DECIMAL.fullmatch(value) or value == "-0" or (value.startswith("-") and not signed):
        raise EpcisBadQuantity(f"{what} must be a {'' if signed else 'non-negative '}decimal in canonical form")
    return Decimal(value)


def kilograms(value: str, uom: str, what: str) -> int:
    """A mass in whole kilograms: the unit must be KGM or TNE, the value exact to the kilogram."""
    if uom not in MASS_UNITS:
        raise EpcisWrongUnit(f"{what} is in {uom!r}; masses are in KGM or TNE")
    grams = _decimal(value, what) * MASS_UNITS[uom]
    if grams != grams.to_integral_value():
        raise EpcisBadQuantity(f"{what} is finer than a kilogram")
    return int(grams)


def check_reading(reading: Reading) -> None:
    """Every rule of a reading that needs no state; raises an `EpcisInvalid` with its code."""
    if len(codec.encode(reading)) > MAX_READING_BYTES:
        raise EpcisTooLarge(f"a reading is at most {MAX_READING_BYTES} bytes encoded")
    _uri(reading.device_id, "bl:deviceID")
    if not 0 <= reading.seq <= MAX_SEQ:
        raise EpcisInvalid("bl:deviceSeq is a non-negative 64-bit counter")
    if not 0 <= reading.event_time_ms < 2**53 or not _OFFSET.fullmatch(reading.tz_offset):
        raise EpcisInvalid("eventTime is after 1970 and eventTimeZoneOffset looks like +08:00")
    if reading.action not in ACTIONS or reading.biz_step not in BIZ_STEPS:
        raise EpcisInvalid(f"action is one of {ACTIONS}; bizStep a supported CBV business step")
    if reading.disposition and reading.disposition not in DISPOSITIONS:
        raise EpcisInvalid("disposition is a supported CBV disposition")
    if len(reading.epcs) > MAX_EPCS or len(set(reading.epcs)) != len(reading.epcs):
        raise EpcisInvalid(f"epcList holds at most {MAX_EPCS} distinct EPCs")
    for epc in reading.epcs:
        _uri(epc, "an EPC")
    if len(reading.quantities) > MAX_QUANTITIES:
        raise EpcisInvalid(f"quantityList holds at most {MAX_QUANTITIES} elements")
    for q in reading.quantities:
        _uri(q.epc_class, "epcClass")
        kilograms(q.quantity, q.uom, "a quantity")
    for uri, what in ((reading.read_point, "readPoint"), (reading.biz_location, "bizLocation"),
                      (reading.certification, "certificationInfo"), (reading.device_metadata, "deviceMetadata"),
                      (reading.raw_data, "rawData")):
        if uri:
            _uri(uri, what)
    if len(reading.transactions) > MAX_TRANSACTIONS:
        raise EpcisInvalid(f"bizTransactionList holds at most {MAX_TRANSACTIONS} elements")
    for t in reading.transactions:
        if ":" in t.type:
            _uri(t.type, "a business transaction type")
        else:
            _word(t.type)
        _uri(t.id, "a business transaction")
    if len(reading.reports) > MAX_REPORTS:
        raise EpcisInvalid(f"sensorReport holds at most {MAX_REPORTS} elements")
    for r in reading.reports:
        _check_report(r)
    if not reading.reports and (reading.sensor_time_ms != -1 or reading.device_metadata or reading.raw_data):
        raise EpcisInvalid("sensorMetadata comes with at least one sensorReport")
    if reading.sensor_time_ms != -1 and not 0 <= reading.sensor_time_ms < 2**53:
        raise EpcisInvalid("sensorMetadata.time is after 1970")
    if not (reading.epcs or reading.quantities or (reading.reports and reading.read_point)):
        raise EpcisInvalid("an ObjectEvent names EPCs, quantities, or sensor reports at a read point")
    net_weight(reading)


def _word(value: str) -> None:
    if not re.fullmatch(r"[a-z][a-z_]{0,31}", value):
        raise EpcisInvalid("a CBV word is lower case letters and '_'")


def _check_report(report: SensorReport) -> None:
    if not _MEASUREMENT.fullmatch(report.type) or not _UOM.fullmatch(report.uom):
        raise EpcisInvalid("a sensor report has a CBV measurement type and a UN/ECE unit code")
    if report.type == "Mass":
        kilograms(report.value, report.uom, "a Mass reading")
        if report.weighing not in WEIGHINGS:
            raise EpcisInvalid(f"bl:weighing is one of {WEIGHINGS[1:]}")
    else:
        _decimal(report.value, f"a {report.type} reading", signed=True)
        if report.weighing:
            raise EpcisInvalid("bl:weighing qualifies Mass readings only")


def net_weight(reading: Reading) -> int | None:
    """The weighed net mass in kilograms, or None when the event weighs nothing.

    Net is the `net` (or unqualified) Mass reading, else gross minus tare; when both are
    given they must agree, and so must the quantity list's total."""
    masses: dict[str, int] = {}
    for report in reading.reports:
        if report.type == "Mass":
            kind = report.weighing or "net"
            if kind in masses:
                raise EpcisWeighingInconsistent(f"two {kind} Mass readings")
            masses[kind] = kilograms(report.value, report.uom, "a Mass reading")
    net = masses.get("net")
    if "gross" in masses or "tare" in masses:
        if "gross" not in masses or "tare" not in masses:
            raise EpcisWeighingInconsistent("a weighing has both gross and tare, or neither")
        difference = masses["gross"] - masses["tare"]
        if difference <= 0 or (net is not None and net != difference):
            raise EpcisWeighingInconsistent("gross minus tare is not a positive net equal to the net reading")
        net = difference
    if reading.quantities and net is not None:
        total = sum(kilograms(q.quantity, q.uom, "a quantity") for q in reading.quantities)
        if total != net:
            raise EpcisWeighingInconsistent(f"the quantity list totals {total} kg, the weighing {net} kg")
    return net


# --- rendering and hashing ---------------------------------------------------------------------


def _time_text(ms: int, offset: str) -> str:
    sign = -1 if offset[0] == "-" else 1
    tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    moment = (_EPOCH + timedelta(milliseconds=ms)).astimezone(tz)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}" + offset


def render(reading: Reading, *, with_id: bool = True) -> dict[str, Any]:
    """The standalone EPCIS 2.0 ObjectEvent (JSON-LD) of a reading; numbers are `Decimal`."""
    event: dict[str, Any] = {
        "@context": CONTEXT,
        "type": "ObjectEvent",
        "eventTime": _time_text(reading.event_time_ms, reading.tz_offset),
        "eventTimeZoneOffset": reading.tz_offset,
        "action": reading.action,
        "bizStep": reading.biz_step,
        "bl:deviceID": reading.device_id,
        "bl:deviceSeq": reading.seq,
    }
    if reading.disposition:
        event["disposition"] = reading.disposition
    if reading.epcs:
        event["epcList"] = list(reading.epcs)
    if reading.quantities:
        event["quantityList"] = [{"epcClass": q.epc_class, "quantity": Decimal(q.quantity), "uom": q.uom}
                                 for q in reading.quantities]
    if reading.read_point:
        event["readPoint"] = {"id": reading.read_point}
    if reading.biz_location:
        event["bizLocation"] = {"id": reading.biz_location}
    if reading.transactions:
        event["bizTransactionList"] = [{"type": t.type, "bizTransaction": t.id} for t in reading.transactions]
    if reading.certification:
        event["certificationInfo"] = reading.certification
    if reading.reports:
        metadata: dict[str, Any] = {"deviceID": reading.device_id}
        if reading.sensor_time_ms != -1:
            metadata["time"] = _time_text(reading.sensor_time_ms, reading.tz_offset)
        if reading.device_metadata:
            metadata["deviceMetadata"] = reading.device_metadata
        if reading.raw_data:
            metadata["rawData"] = reading.raw_data
        reports = []
        for r in reading.reports:
            report: dict[str, Any] = {"type": r.type, "value": Decimal(r.value), "uom": r.uom}
            if r.weighing:
                report["bl:weighing"] = r.weighing
            reports.append(report)
        event["sensorElementList"] = [{"sensorMetadata": metadata, "sensorReport": reports}]
    if with_id:
        event["eventID"] = event_uri(event_hash(reading))
    return event


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, decimals in shortest exact form: one spelling per value."""
    return _canon(value).encode()


_quote = json.encoder.encode_basestring  # JSON string escaping, UTF-8 kept as is (the C version when present)


def _canon(value: Any) -> str:
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, dict):
        return "{" + ",".join(_quote(k) + ":" + _canon(value[k]) for k in sorted(value)) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canon(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _decimal_text(value)
    raise TypeError(f"no canonical JSON for {type(value).__name__}")


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise EpcisBadQuantity("a quantity is not a finite number")
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def event_hash(reading: Reading) -> bytes:
    """SHA-256 of the canonical JSON of the rendered event, without eventID and @context."""
    event = render(reading, with_id=False)
    del event["@context"]
    return hashlib.sha256(canonical_json(event)).digest()


def event_uri(digest: bytes) -> str:
    return "ni:///sha-256;" + digest.hex()


# --- parsing JSON from devices and gateways ----------------------------------------------------

_EVENT_FIELDS = frozenset({
    "@context", "type", "eventTime", "eventTimeZoneOffset", "eventID", "recordTime", "action", "bizStep",
    "disposition", "epcList", "quantityList", "readPoint", "bizLocation", "bizTransactionList",
    "certificationInfo", "sensorElementList", "bl:deviceID", "bl:deviceSeq",
})


def parse(data: bytes) -> Reading:
    """A standalone EPCIS 2.0 ObjectEvent (JSON bytes) as a checked `Reading`.

    Refusals: `epcis_too_large`, `epcis_invalid` (not JSON, duplicate keys, not the subset's
    shape), `epcis_unsupported_field`, `epcis_wrong_unit`, `epcis_bad_quantity` (negative,
    NaN, Infinity, finer than a kilogram), `epcis_event_id_mismatch`."""
    if len(data) > MAX_EVENT_JSON_BYTES:
        raise EpcisTooLarge(f"an event is at most {MAX_EVENT_JSON_BYTES} bytes of JSON")
    try:
        event = json.loads(data, parse_float=Decimal, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EpcisInvalid(f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise EpcisInvalid("an event is a JSON object")
    unknown = sorted(set(event) - _EVENT_FIELDS)
    if unknown:
        raise EpcisUnsupportedField(f"fields outside the supported subset: {', '.join(unknown)}")
    if event.get("type") != "ObjectEvent" or "@context" not in event:
        raise EpcisInvalid("a standalone ObjectEvent with an @context")
    offset = _string(event, "eventTimeZoneOffset")
    reports, metadata = _sensor_element(event)
    reading = Reading(
        device_id=_string(event, "bl:deviceID"),
        seq=_integer(event, "bl:deviceSeq"),
        event_time_ms=_time_ms(_string(event, "eventTime")),
        tz_offset=offset,
        action=_string(event, "action"),
        biz_step=_string(event, "bizStep"),
        disposition=_string(event, "disposition", ""),
        epcs=tuple(_strings(event.get("epcList", []), "epcList")),
        quantities=tuple(_quantity(q) for q in _list(event.get("quantityList", []), "quantityList")),
        read_point=_id(event, "readPoint"),
        biz_location=_id(event, "bizLocation"),
        transactions=tuple(_transaction(t) for t in _list(event.get("bizTransactionList", []), "bizTransactionList")),
        certification=_string(event, "certificationInfo", ""),
        reports=reports,
        sensor_time_ms=_time_ms(metadata["time"]) if "time" in metadata else -1,
        device_metadata=_string(metadata, "deviceMetadata", ""),
        raw_data=_string(metadata, "rawData", ""),
    )
    if "deviceID" in metadata and metadata["deviceID"] != reading.device_id:
        raise EpcisInvalid("sensorMetadata.deviceID is the reporting device, bl:deviceID")
    check_reading(reading)
    if "eventID" in event and event["eventID"] != event_uri(event_hash(reading)):
        raise EpcisEventIdMismatch("eventID is not the canonical hash of the event")
    return reading


def _no_constant(name: str) -> Any:
    raise EpcisBadQuantity(f"{name} is not a number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise EpcisInvalid("a JSON object names a field twice")
    return result


def _string(obj: dict[str, Any], field: str, default: str | None = None) -> str:
    value = obj.get(field, default)
    if not isinstance(value, str):
        raise EpcisInvalid(f"{field} is a string")
    return value


def _integer(obj: dict[str, Any], field: str) -> int:
    value = obj.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise EpcisInvalid(f"{field} is an integer")
    return value


def _number_text(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise EpcisInvalid(f"{what} is a number")
    try:
        return _decimal_text(Decimal(value))
    except InvalidOperation:
        raise EpcisBadQuantity(f"{what} is not a number") from None


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise EpcisInvalid(f"{what} is a list")
    return value


def _strings(value: Any, what: str) -> list[str]:
    items = _list(value, what)
    if not all(isinstance(v, str) for v in items):
        raise EpcisInvalid(f"{what} holds strings")
    return items


def _object(value: Any, what: str, fields: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EpcisInvalid(f"{what} is an object")
    unknown = sorted(set(value) - fields)
    if unknown:
        raise EpcisUnsupportedField(f"{what}: fields outside the supported subset: {', '.join(unknown)}")
    return value


def _id(event: dict[str, Any], field: str) -> str:
    if field not in event:
        return ""
    return _string(_object(event[field], field, frozenset({"id"})), "id")


def _quantity(value: Any) -> Quantity:
    q = _object(value, "a quantity element", frozenset({"epcClass", "quantity", "uom"}))
    if "quantity" not in q or "uom" not in q:
        raise EpcisWrongUnit("a quantity element states its quantity and unit")
    return Quantity(_string(q, "epcClass"), _number_text(q["quantity"], "quantity"), _string(q, "uom"))


def _transaction(value: Any) -> BizTransaction:
    t = _object(value, "a business transaction", frozenset({"type", "bizTransaction"}))
    return BizTransaction(_string(t, "type"), _string(t, "bizTransaction"))


def _sensor_element(event: dict[str, Any]) -> tuple[tuple[SensorReport, ...], dict[str, Any]]:
    elements = _list(event.get("sensorElementList", []), "sensorElementList")
    if not elements:
        return (), {}
    if len(elements) != 1:
        raise EpcisUnsupportedField("one sensorElement per event")
    element = _object(elements[0], "a sensorElement", frozenset({"sensorMetadata", "sensorReport"}))
    metadata = _object(element.get("sensorMetadata", {}), "sensorMetadata",
                       frozenset({"deviceID", "deviceMetadata", "rawData", "time"}))
    reports = []
    for item in _list(element.get("sensorReport"), "sensorReport"):
        r = _object(item, "a sensorReport", frozenset({"type", "value", "uom", "bl:weighing"}))
        if "value" not in r or "uom" not in r:
            raise EpcisWrongUnit("a sensor report states its value and unit")
        reports.append(SensorReport(_string(r, "type"), _number_text(r["value"], "value"), _string(r, "uom"),
                                    _string(r, "bl:weighing", "")))
    if not reports:
        raise EpcisInvalid("a sensorElement has at least one sensorReport")
    return tuple(reports), metadata


def _time_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise EpcisInvalid(f"not an ISO 8601 date-time: {text!r}") from None
    if moment.tzinfo is None or moment.microsecond % 1000:
        raise EpcisInvalid("a time names its offset and is exact to the millisecond")
    return (moment - _EPOCH) // timedelta(milliseconds=1)

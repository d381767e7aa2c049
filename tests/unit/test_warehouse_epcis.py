"""EPCIS 2.0 evidence: what the chain keeps renders as a valid standalone ObjectEvent,
parses back to itself, hashes independently of JSON spelling, and bad input is refused
with its code.

The standard's JSON Schema is read at run time from the GS1 reference folder beside the
repository (`../shared/epcis`, or `$BILAYER_EPCIS_DIR`); the project does not copy it.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bilayer.apps.warehouse import epcis
from bilayer.apps.warehouse.epcis import Quantity, Reading, SensorReport
from bilayer.apps.warehouse.errors import EpcisInvalid
from bilayer.apps.warehouse.operations import RecordReading
from bilayer.genesis import ChainParams
from tests.support.paths import REPO

EPCIS_DIR = Path(os.environ.get("BILAYER_EPCIS_DIR", REPO.parent / "shared" / "epcis"))


def weighing(**changes: Any) -> Reading:
    fields: dict[str, Any] = {
        "device_id": "urn:epc:id:giai:6901234.WB1", "seq": 18231, "event_time_ms": 1_796_000_045_120,
        "tz_offset": "+08:00", "action": "OBSERVE", "biz_step": "receiving", "disposition": "in_progress",
        "epcs": ("urn:bl:lot:MILL01:H24A1187:C03",),
        "quantities": (Quantity("urn:bl:class:HRC:Q235B:5.75x1500", "23.48", "TNE"),),
        "read_point": "urn:epc:id:sgln:6901234.00001.WB1", "biz_location": "urn:epc:id:sgln:6901234.00001.0",
        "transactions": (epcis.BizTransaction("bl:inboundOrder", "urn:bl:io:WH01:2026-000731"),),
        "certification": "urn:bl:millcert:sha256:" + "ab" * 32,
        "reports": (SensorReport("Mass", "41.52", "TNE", "gross"), SensorReport("Mass", "18.04", "TNE", "tare")),
        "sensor_time_ms": 1_796_000_045_000, "device_metadata": "urn:bl:calib:WB1:2026",
        "raw_data": "urn:bl:blob:sha256:" + "cd" * 32,
    }
    fields.update(changes)
    return Reading(**fields)


def as_json(event: dict[str, Any]) -> bytes:
    return json.dumps(event, default=lambda d: float(d) if isinstance(d, Decimal) else d).encode()


def refused(code: str, data: bytes) -> None:
    with pytest.raises(EpcisInvalid) as info:
        epcis.parse(data)
    assert info.value.code == code, info.value


@pytest.fixture(scope="module")
def validator() -> Any:
    import jsonschema

    path = EPCIS_DIR / "EPCIS-JSON-Schema.json"
    if not path.exists():
        pytest.fail(f"the GS1 EPCIS reference folder is not at {EPCIS_DIR}: set BILAYER_EPCIS_DIR to it")
    schema = json.loads(path.read_text())
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def test_rendered_events_validate_against_the_standard_schema(validator: Any) -> None:
    for reading in (weighing(), weighing(biz_step="shipping", disposition="in_transit"),
                    weighing(quantities=(), reports=(), sensor_time_ms=-1, device_metadata="", raw_data=""),
                    weighing(epcs=(), quantities=(), biz_step="sensor_reporting",
                             reports=(SensorReport("Temperature", "-3.5", "CEL"),))):
        event = json.loads(as_json(epcis.render(reading)))
        errors = sorted(validator.iter_errors(event), key=str)
        assert errors == [], errors[0].message


def test_the_schema_refuses_what_the_parser_refuses(validator: Any) -> None:
    """The subset is no looser than the standard: events the schema rejects, we reject too."""
    good = json.loads(as_json(epcis.render(weighing())))
    for mutate in (lambda e: e.update(action="LOOK"), lambda e: e.pop("eventTime"),
                   lambda e: e.pop("eventTimeZoneOffset"), lambda e: e.update(eventTimeZoneOffset="+8"),
                   lambda e: e["quantityList"][0].update(uom="tonnes"), lambda e: e.update(epcList="urn:x:1"),
                   lambda e: e["sensorElementList"][0].update(sensorReport=[]), lambda e: e.update(bizStep=7),
                   lambda e: e["quantityList"][0].update(quantity="23.48"), lambda e: e.pop("@context")):
        event = json.loads(json.dumps(good))
        mutate(event)
        assert list(validator.iter_errors(event)), event
        with pytest.raises(EpcisInvalid):
            epcis.parse(json.dumps(event).encode())


def test_the_reference_example_with_sensor_data_validates(validator: Any) -> None:
    document = json.loads((EPCIS_DIR / "SensorDataExample1.jsonld").read_text())
    assert list(validator.iter_errors(document)) == []


def test_a_receipts_evidence_exports_as_a_valid_epcis_document(validator: Any) -> None:
    from bilayer.apps.warehouse.operations import Surrender
    from bilayer.apps.warehouse.queries import evidence_document, evidence_of, lineage
    from tests.support.warehouse_world import COILS, digest, standard_world
    w = standard_world()
    wb = "urn:epc:id:giai:6901234.wh1WB"
    lots = tuple(w.intake("wh1", wb, coil, 23_000 + i) for i, coil in enumerate(COILS[:3]))
    rid = w.issue("wh1", "dep", lots)
    w.do("dep", Surrender(rid, digest("collector"), lots[:1]))
    out, rest = w.receipt(rid).children
    w.weigh(wb, "shipping", COILS[0], 23_000)
    assert [r.id for r in lineage(w.k, rest)] == [rid, out, rest]
    assert [e.reading.biz_step for e in evidence_of(w.k, out)] == ["receiving", "shipping"]
    assert sorted(e.event_id for e in evidence_of(w.k, rest)) == sorted(w.receipt(rest).evidence)
    document = json.loads(as_json(evidence_document(w.k, rid, "2026-11-30T10:00:00.000+08:00")))
    listed = [e["eventID"] for e in document["epcisBody"]["eventList"]]
    assert listed == [epcis.event_uri(e.event_id) for e in evidence_of(w.k, rid)]
    assert {epcis.event_uri(e) for e in w.receipt(rid).evidence} < set(listed) and len(listed) == 4
    errors = sorted(validator.iter_errors(document), key=str)
    assert errors == [], errors[0].message


def test_render_then_parse_is_the_identity_and_the_id_is_the_hash() -> None:
    reading = weighing()
    event = epcis.render(reading)
    assert epcis.parse(as_json(event)) == reading
    assert event["eventID"] == "ni:///sha-256;" + epcis.event_hash(reading).hex()
    assert event["eventTime"] == "2026-11-30T08:54:05.120+08:00"
    assert epcis.net_weight(reading) == 23_480


def test_the_hash_ignores_field_order_whitespace_and_number_spelling() -> None:
    reading = weighing()
    event = json.loads(as_json(epcis.render(reading, with_id=False)))
    respelled = json.dumps(dict(reversed(list(event.items()))), indent=3).replace('"quantity": 23.48',
                                                                                  '"quantity": 23.480')
    assert "23.480" in respelled
    assert epcis.parse(respelled.encode()) == reading
    other_zone = dict(event, eventTime="2026-11-30T00:54:05.120Z")
    assert epcis.event_hash(epcis.parse(json.dumps(other_zone).encode())) == epcis.event_hash(reading)
    assert epcis.event_hash(weighing(seq=18232)) != epcis.event_hash(reading)


def test_a_wrong_event_id_is_refused() -> None:
    event = epcis.render(weighing())
    event["eventID"] = epcis.event_uri(bytes(32))
    refused("warehouse.epcis_event_id_mismatch", as_json(event))


def test_bad_quantities_are_refused_with_their_codes() -> None:
    text = as_json(epcis.render(weighing(), with_id=False)).decode()
    refused("warehouse.epcis_bad_quantity", text.replace("23.48", "NaN").encode())
    refused("warehouse.epcis_bad_quantity", text.replace("23.48", "Infinity").encode())
    refused("warehouse.epcis_bad_quantity", text.replace("23.48", "-23.48").encode())
    refused("warehouse.epcis_bad_quantity", text.replace("23.48", "23.4805").encode())  # half a kilogram
    refused("warehouse.epcis_wrong_unit", text.replace('"uom": "TNE"', '"uom": "LBR"', 1).encode())
    refused("warehouse.epcis_weighing_inconsistent", text.replace("23.48", "23.49").encode())
    refused("warehouse.epcis_weighing_inconsistent", text.replace("41.52", "17.0").encode())


def test_malformed_and_oversized_events_are_refused() -> None:
    good = epcis.render(weighing(), with_id=False)
    refused("warehouse.epcis_invalid", b"{not json")
    refused("warehouse.epcis_invalid", b'["ObjectEvent"]')
    refused("warehouse.epcis_invalid", as_json(dict(good, type="AggregationEvent")))
    refused("warehouse.epcis_invalid", b'{"type": "ObjectEvent", "type": "ObjectEvent"}')
    refused("warehouse.epcis_invalid", as_json(dict(good, eventTime="2026-11-30T01:14:05.1204Z")))
    refused("warehouse.epcis_invalid", as_json(dict(good, eventTime="2026-11-30T01:14:05")))
    refused("warehouse.epcis_unsupported_field", as_json(dict(good, ilmd={"cbvmda:lotNumber": "X"})))
    refused("warehouse.epcis_unsupported_field", as_json(dict(good, **{"example:myField": "x"})))
    refused("warehouse.epcis_too_large", as_json(dict(good, padding="x" * epcis.MAX_EVENT_JSON_BYTES)))
    many = weighing(epcs=tuple(f"urn:bl:lot:MILL01:H{n:07d}:{'C' * 20}" for n in range(epcis.MAX_EPCS)),
                    quantities=())
    with pytest.raises(EpcisInvalid) as info:
        RecordReading(many).check(0, ChainParams())
    assert info.value.code == "warehouse.epcis_too_large"


def test_the_operation_checks_its_reading() -> None:
    RecordReading(weighing()).check(0, ChainParams())
    for bad, code in ((weighing(quantities=(Quantity("urn:x:y", "-1", "TNE"),)), "warehouse.epcis_bad_quantity"),
                      (weighing(reports=(SensorReport("Mass", "12", "LBR"),), quantities=()),
                       "warehouse.epcis_wrong_unit"),
                      (weighing(biz_step="teleporting"), "warehouse.epcis_invalid"),
                      (weighing(epcs=("urn:a", "urn:a")), "warehouse.epcis_invalid")):
        with pytest.raises(EpcisInvalid) as info:
            RecordReading(bad).check(0, ChainParams())
        assert info.value.code == code, bad


decimals = st.decimals(min_value=Decimal(0), max_value=Decimal(10**6), places=3, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(seq=st.integers(0, 2**40), ms=st.integers(0, 2**42), tare=decimals, extra=decimals.filter(lambda d: d > 0),
       step=st.sampled_from(sorted(epcis.BIZ_STEPS)), offset=st.sampled_from(["+08:00", "-06:00", "+00:00"]),
       unit=st.sampled_from(["TNE", "KGM"]), temperature=st.decimals(-50, 80, places=2, allow_nan=False))
def test_any_reading_round_trips(seq: int, ms: int, tare: Decimal, extra: Decimal, step: str, offset: str,
                                 unit: str, temperature: Decimal) -> None:
    scale = Decimal(1) if unit == "TNE" else Decimal(1000)

    def text(d: Decimal) -> str:
        return epcis._decimal_text(d * scale)

    reading = weighing(seq=seq, event_time_ms=ms, sensor_time_ms=ms, biz_step=step, tz_offset=offset,
                       quantities=(Quantity("urn:bl:class:HRC", text(extra), unit),),
                       reports=(SensorReport("Mass", text(tare + extra), unit, "gross"),
                                SensorReport("Mass", text(tare), unit, "tare"),
                                SensorReport("Temperature", epcis._decimal_text(temperature), "CEL")))
    data = as_json(epcis.render(reading)).decode()
    assert epcis.parse(data.encode()) == reading
    assert epcis.net_weight(reading) == int(extra * 1000)


def test_canonical_json_has_one_spelling_per_value() -> None:
    value = {"b": 'é"\n\u2028', "a": [1, True, None, Decimal("23.480"), Decimal("-0.0"), Decimal("1E+2")]}
    text = epcis.canonical_json(value)
    assert text == '{"a":[1,true,null,23.48,0,100],"b":"é\\"\\n\u2028"}'.encode()
    assert json.loads(text) == {"a": [1, True, None, 23.48, 0, 100], "b": 'é"\n\u2028'}
    with pytest.raises(EpcisInvalid):
        epcis.canonical_json({"x": Decimal("NaN")})


def test_the_cli_writes_a_receipts_evidence_as_an_epcis_file_that_validates(validator: Any, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`bilayer warehouse evidence RECEIPT --epcis FILE`, against the query a node serves (in-process here)."""
    from click.testing import CliRunner

    from bilayer.apps.warehouse import cli
    from bilayer.apps.warehouse.chain import QUERIES
    from tests.support.warehouse_world import COILS, standard_world
    w = standard_world()
    wb = "urn:epc:id:giai:6901234.wh1WB"
    lots = tuple(w.intake("wh1", wb, coil, 23_000 + i) for i, coil in enumerate(COILS[:2]))
    rid = w.issue("wh1", "dep", lots)
    monkeypatch.setattr(cli, "_get", lambda _node, query, **params: json.loads(json.dumps(
        QUERIES[query](w.state, params))))
    written = tmp_path / "evidence.jsonld"
    result = CliRunner().invoke(cli.warehouse, ["evidence", rid.hex(), "--epcis", str(written), "--node",
                                                "http://127.0.0.1:1", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(written.read_text())
    errors = sorted(validator.iter_errors(document), key=str)
    assert errors == [], errors[0].message
    events = document["epcisBody"]["eventList"]
    assert sorted(e["eventID"] for e in events) == sorted(epcis.event_uri(e) for e in w.receipt(rid).evidence)
    masses = [{r.get("bl:weighing", "net"): r["value"] for r in e["sensorElementList"][0]["sensorReport"]}
              for e in events]
    assert sorted(m["gross"] - m["tare"] for m in masses) == [23_000, 23_001]  # the weighed nets, as JSON numbers
    assert json.loads(result.output)["epcis"] == document  # the same document the query returns

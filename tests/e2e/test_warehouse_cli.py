"""`bilayer warehouse` refuses bad input with a coded error and no traceback, before anything
reaches a node: malformed ids, lots and addresses, and device events that are not the
supported EPCIS subset (not JSON, NaN quantities, wrong units)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from bilayer.apps.warehouse.epcis import render
from tests.support.cli import UNREACHABLE, assert_error, bilayer
from tests.support.warehouse_ledger import (
    WarehouseLedger,
)


def _event(tmp_path: Path, name: str, mutate: object) -> Path:
    """A weighbridge event as a device renders it, changed by `mutate` (a function of its dict)."""
    reading = WarehouseLedger().reading("receiving", ("MILL01", "H1", "C1"), 23_000)
    event = json.loads(msgspec.json.Encoder(decimal_format="number").encode(render(reading)))
    mutate(event)  # type: ignore[operator]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(event).replace('"NaN"', "NaN"))
    return path


def test_bad_input_is_refused_with_its_code(tmp_path: Path) -> None:
    keystore = tmp_path / "keys"
    assert bilayer("keys", "new", "device", "--plaintext", keystore=keystore).code == 0
    node = ("--node", UNREACHABLE)
    assert_error(bilayer("warehouse", "show", "not-an-id", *node), "bad_request")
    assert_error(bilayer("warehouse", "show", "ab" * 32, *node), "node_unreachable")
    assert_error(bilayer("warehouse", "register", "party", "bl1nope", "--role", "bank", "--name", "B", "--uscc",
                         "91310000MA1FL0000X", "--domicile", "x", "--key", "device", *node, keystore=keystore),
                 "invalid_address")
    assert_error(bilayer("warehouse", "lot", "MILL01-H1-C1", "--event", "ab" * 32, "--bin", "A1", "--grade", "Q",
                         "--spec", "S", "--mill-cert", "M", "--production-date", "2026-10-01", "--key", "device",
                         *node, keystore=keystore), "bad_request")
    assert_error(bilayer("warehouse", "receipt", "propose", "--depositor", "bl1x", "--spec", "S", "--grade", "Q",
                         "--producer", "P", "--storage-until", "2027-01-01", "--issue-place", "Q", "--signer", "c",
                         "--key", "device", *node, keystore=keystore), "bad_request")

    not_json = tmp_path / "garbage.json"
    not_json.write_text("{not json")
    valid = _event(tmp_path, "valid", lambda e: None)
    nan = _event(tmp_path, "nan", lambda e: e["sensorElementList"][0]["sensorReport"][0].update(value="NaN"))
    pounds = _event(tmp_path, "pounds", lambda e: e["sensorElementList"][0]["sensorReport"][0].update(uom="LBR"))
    for path, code in ((not_json, "warehouse.epcis_invalid"), (nan, "warehouse.epcis_bad_quantity"),
                       (pounds, "warehouse.epcis_wrong_unit"), (valid, "node_unreachable")):
        result = bilayer("warehouse", "intake", "--file", str(path), "--key", "device", *node, "--json",
                         keystore=keystore)
        assert result.code == 1 and "Traceback" not in result.err, result
        assert result.json()["error"]["code"] == code, result


SPEC = "5.75x1500"  # the spec the finance tests price


def test_bad_finance_input_is_refused_with_its_code_before_any_node(tmp_path: Path) -> None:
    keystore = tmp_path / "keys"
    assert bilayer("keys", "new", "pub", "--plaintext", keystore=keystore).code == 0
    sign = ("--key", "pub", "--node", UNREACHABLE)
    result = bilayer("warehouse", "prices", "publish", SPEC, "--source", "mysteel_spot", "--day", "2026-02-30",
                     "--price", "1", *sign, "--json", keystore=keystore)
    assert result.code == 1 and "Traceback" not in result.err, result
    assert result.json()["error"]["code"] == "warehouse.invalid_operation", result
    assert_error(bilayer("warehouse", "bounds", "--spec-limit", "no-limit", *sign, keystore=keystore), "bad_request")
    assert_error(bilayer("warehouse", "facility", "open", "F1", "--borrower", "bl1nope", "--limit", "1", *sign,
                         keystore=keystore), "invalid_address")
    assert_error(bilayer("warehouse", "valuation", "bl1nope", "F1", "--node", UNREACHABLE), "node_unreachable")


def test_the_cli_refuses_bad_input_with_its_code(tmp_path: Any) -> None:
    keystore = tmp_path / "keys"
    assert bilayer("keys", "new", "sup", "--plaintext", keystore=keystore).code == 0
    node = ("--node", UNREACHABLE)
    assert_error(bilayer("warehouse", "alert", "not-an-id", *node), "bad_request")
    assert_error(bilayer("warehouse", "alert", "ab" * 32, *node), "node_unreachable")
    assert_error(bilayer("warehouse", "resolve", "xyz", "--code", "explained", "--note", "n", "--key", "sup", *node,
                         keystore=keystore), "bad_request")
    assert_error(bilayer("warehouse", "stocktake", "--warehouse", "bl1nope", "--bin", "A1", "--counted-kg", "1",
                         "--counted-pieces", "1", "--key", "sup", *node, keystore=keystore), "invalid_address")
    result = bilayer("warehouse", "alerts", "--rule", "R13", *node)
    assert result.code != 0 and "Traceback" not in result.err

"""An alert's evidence package: made from a chain finalized in process on SQLite (real
certificates, the executor's end-of-checkpoint reconciliation), checked offline against
genesis alone, and refused with a code naming the part when any part is altered."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bilayer.apps.warehouse import epcis
from bilayer.apps.warehouse.alert_proof import AlertProof, assemble, encode, verify
from bilayer.apps.warehouse.chain import query_alert_trail
from bilayer.apps.warehouse.keeper import Keeper
from bilayer.apps.warehouse.operations import (
    ApproveDevice,
    ProposeDevice,
    RecordReading,
    RecordStocktake,
    RegisterLot,
    RegisterParty,
    RegisterWarehouse,
)
from bilayer.apps.warehouse.records import Alert, Calibration, lot_key, lot_urn
from bilayer.audit.proof import prove_entries
from bilayer.bench.proof import ChainBuilder, seeded
from bilayer.errors import BilayerError, ProofInvalid
from bilayer.execution.application import proof_verifier
from bilayer.genesis import write_genesis
from bilayer.keys.signing import Signer
from bilayer.ledger.operations import Operation
from tests.support.cli import bilayer

USCC = "91310000MA1FL0000X"
YEAR = 365 * 24 * 3600 * 1000
NET = 23_000
COILS = tuple(("MILL01", "H24A1187", f"C{n:02d}") for n in range(1, 4))


class World:
    """Two supervised warehouses on a real chain: WH (bins A1, A2; a weighbridge, a gate
    reader, a lidar over A1 and a camera over A2; three coils booked into A1) and WH2 (bin B1, a weighbridge)."""

    def __init__(self, path: Path) -> None:
        self.b = b = ChainBuilder(path)
        council = b.council[0]
        self.sup, self.wh, self.sup2, self.wh2 = (seeded(n, 5) for n in range(4))
        self.devices: dict[str, tuple[Signer, str]] = {}
        self.seqs: dict[str, int] = {}
        self.ok(council, RegisterParty(self.sup.public_key, "supervisor", "Supervisor", USCC, "Shanghai"),
                RegisterParty(self.sup2.public_key, "supervisor", "Supervisor 2", USCC, "Shanghai"))
        self.ok(council, RegisterWarehouse(self.wh.public_key, "Qingdao Steel Store", USCC, "Qingdao",
                                           "urn:epc:id:sgln:6901234.00001.0", self.sup.public_key, ("A1", "A2")),
                RegisterWarehouse(self.wh2.public_key, "Tianjin Steel Store", USCC, "Tianjin",
                                  "urn:epc:id:sgln:6901234.00002.0", self.sup2.public_key, ("B1",)))
        self.wb = self.device("WB1", "weighbridge", ("A1", "A2"), self.wh, self.sup)
        self.gate = self.device("GATE1", "gate_reader", ("A1", "A2"), self.wh, self.sup)
        self.lidar = self.device("LIDAR1", "lidar", ("A1",), self.wh, self.sup)
        self.camera = self.device("CAM1", "camera", ("A2",), self.wh, self.sup)
        self.wb2 = self.device("WB2", "weighbridge", ("B1",), self.wh2, self.sup2)
        for coil in COILS:
            intake = self.reading(self.wb, "receiving", (lot_urn(*coil),), weighed(NET))
            self.ok(self.wh, RegisterLot(*coil, "coil", "Q235B", "5.75x1500", 1, epcis.event_hash(intake),
                                         digest(f"mill:{coil}"), "2026-10-01", "A1"))

    def ok(self, signer: Signer, *ops: Operation) -> list[bytes]:
        """Entries of one signer in one checkpoint, each FINAL."""
        ids = [self.b.write(signer, op) for op in ops]
        self.b.checkpoint()
        for id_ in ids:
            result = self.b.storage.result(id_)
            assert result is not None and str(result.outcome) == "FINAL", (result, ops)
        return ids

    def device(self, name: str, kind: str, bins: tuple[str, ...], warehouse: Signer, supervisor: Signer) -> str:
        signer = seeded(len(self.devices), 6)
        device_id = f"urn:epc:id:giai:6901234.{name}"
        point = f"urn:epc:id:sgln:6901234.00001.{name}"
        weighs = kind == "weighbridge"
        calibration = Calibration(digest(name), "III" if weighs else "", 20_000 if weighs else 0,
                                  self.b.time_ms + YEAR)
        self.ok(warehouse, ProposeDevice(device_id, kind, bins, signer.public_key, point, calibration,  # type: ignore[arg-type]
                                         heartbeat_ms=0))
        self.ok(supervisor, ApproveDevice(device_id))
        self.devices[device_id] = (signer, point)
        return device_id

    def reading(self, device_id: str, step: str, epcs: tuple[str, ...] = (),
                reports: tuple[epcis.SensorReport, ...] = ()) -> epcis.Reading:
        """A device's reading, in its own checkpoint (whose reconciliation runs after it)."""
        self.seqs[device_id] = self.seqs.get(device_id, 0) + 1
        signer, point = self.devices[device_id]
        reading = epcis.Reading(device_id, self.seqs[device_id], self.b.time_ms + 500, "+08:00", "OBSERVE", step,
                                "", epcs, read_point=point, reports=reports)
        self.ok(signer, RecordReading(reading))
        return reading

    @property
    def keeper(self) -> Keeper:
        return Keeper(self.b.chain.state)

    def alert(self, rule: str) -> Alert:
        [found] = [a for a in self.keeper.alerts() if a.rule == rule]
        return found

    def document(self, alert: Alert) -> AlertProof:
        """What `bilayer warehouse alert-export` assembles, with the node's own proofs."""
        self.b.transfer(1)  # a later checkpoint signs the results root of the alert's
        self.b.checkpoint()
        trail = query_alert_trail(self.b.chain.state, {"id": alert.id.hex()})
        source = self.b.source()
        ids = [bytes.fromhex(e) for part in ("evidence", "devices", "lots", "intakes") for e in trail[part]]
        proofs = prove_entries(source, ids)
        return assemble(trail, self.b.genesis.chain_id, self.b.genesis.root, lambda e: proofs[bytes.fromhex(e)])


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def weighed(net_kg: int) -> tuple[epcis.SensorReport, ...]:
    return (epcis.SensorReport("Mass", str(18_000 + net_kg), "KGM", "gross"),
            epcis.SensorReport("Mass", "18000", "KGM", "tare"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = World(tmp_path_factory.mktemp("alert-proof") / "chain.sqlite")
    yield built
    built.b.close()


@pytest.fixture(scope="module")
def departed(world: World) -> tuple[Alert, bytes]:
    """R2: coil C01 leaves through the gate with no instruction."""
    world.reading(world.gate, "departing", (lot_urn(*COILS[0]),))
    alert = world.alert("R2")
    return alert, encode(world.document(alert))


def as_dict(data: bytes) -> dict[str, Any]:
    return dict(json.loads(data))


def altered(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    document = as_dict(data)
    change(document)
    return json.dumps(document).encode()


def refused(data: bytes, world: World) -> str:
    with pytest.raises(ProofInvalid) as caught:
        verify(data, world.b.genesis)
    return caught.value.code


def record(change: Callable[[Alert], Alert]) -> Callable[[dict[str, Any]], None]:
    """Alter the embedded alert record as its struct, as a forger re-encoding it would."""
    def edit(document: dict[str, Any]) -> None:
        alert = msgspec.convert(document["alert"], Alert)
        document["alert"] = json.loads(msgspec.json.encode(change(alert)))
    return edit


def test_an_r2_package_verifies_offline_and_says_what_it_proves_and_trusts(world: World,
                                                                           departed: tuple[Alert, bytes]) -> None:
    alert, data = departed
    assert (alert.severity, alert.observed, alert.lots) == ("CRITICAL", NET, (lot_key(*COILS[0]),))
    summary = verify(data, world.b.genesis)
    assert (summary["valid"], summary["rule"], summary["alert"], summary["height"]) == (
        True, "R2", alert.id.hex(), alert.height)
    assert summary["entries"] == 4  # the gate's reading, its registration, the coil's booking and intake weighing
    assert "booked net of the 1 coils that left" in summary["proves"]
    assert "expected (book) side" in summary["trusted"] and "not proven here" in summary["trusted"]
    assert proof_verifier("warehouse_alert") is not None
    assert proof_verifier("warehouse_alert")(data, world.b.genesis)["alert"] == alert.id.hex()  # type: ignore[misc]


@pytest.mark.parametrize(("part", "change", "code"), [
    ("the rule", record(lambda a: msgspec.structs.replace(a, rule="R5")), "alert_id_mismatch"),
    ("the warehouse", record(lambda a: msgspec.structs.replace(a, warehouse=b"\1" * 32)), "alert_id_mismatch"),
    ("the observed figure", record(lambda a: msgspec.structs.replace(a, observed=a.observed - 1, delta=a.delta - 1)),
     "alert_observed_mismatch"),
    ("the delta", record(lambda a: msgspec.structs.replace(a, delta=a.delta + 5)), "alert_expected_mismatch"),
    ("an evidence id", record(lambda a: msgspec.structs.replace(a, evidence=(b"\2" * 32,))), "alert_evidence_missing"),
    ("the devices", record(lambda a: msgspec.structs.replace(a, devices=("urn:epc:id:giai:6901234.X",))),
     "alert_device_mismatch"),
    ("the lots", record(lambda a: msgspec.structs.replace(a, lots=(lot_key(*COILS[1]),))), "alert_lots_mismatch"),
    ("the evidence entry", lambda d: d.update(evidence=[]), "alert_evidence_missing"),
    ("a device registration", lambda d: d.update(devices=[]), "alert_device_mismatch"),
    ("a booking", lambda d: d.update(lots=[]), "alert_evidence_unrelated"),
    ("the bookings and intakes", lambda d: d.update(lots=[], intakes=[]), "alert_lots_mismatch"),
    ("the reading's signature", lambda d: d["evidence"][0]["entry"].update(
        signature=d["devices"][0]["entry"]["signature"]), "entry_signature_invalid"),
    ("the reading's checkpoint", lambda d: d["evidence"][0]["ordered_in"]["checkpoint"].update(time_ms=1),
     "checkpoint_link_invalid"),
    ("the chain", lambda d: d.update(chain_id="another"), "alert_evidence_unrelated"),
    ("the format", lambda d: d.update(format=99), "proof_malformed"),
])
def test_each_part_altered_is_refused_with_a_code_naming_it(world: World, departed: tuple[Alert, bytes], part: str,
                                                            change: Callable[[dict[str, Any]], None],
                                                            code: str) -> None:
    _, data = departed
    assert refused(altered(data, change), world) == code, part


def test_evidence_from_another_alert_is_refused(world: World, departed: tuple[Alert, bytes]) -> None:
    """The R2 record with the lidar's R1 evidence: the reading is not the one the alert names."""
    _, r2 = departed
    world.reading(world.lidar, "cycle_counting", reports=(epcis.SensorReport("Mass", str(2 * NET - 1_000), "KGM"),))
    r1 = encode(world.document(world.alert("R1")))
    swapped = altered(r2, lambda d: d.update(evidence=as_dict(r1)["evidence"], devices=as_dict(r1)["devices"]))
    assert refused(swapped, world) in ("alert_evidence_missing", "alert_evidence_height")
    summary = verify(r1, world.b.genesis)
    assert summary["rule"] == "R1" and "lidar's estimate" in summary["proves"]
    lidar_kind = altered(r1, record(lambda a: msgspec.structs.replace(a, rule="R3")))
    assert refused(lidar_kind, world) == "alert_id_mismatch"


def test_a_stocktake_and_a_duplicate_identity_verify_with_what_they_recompute(world: World,
                                                                              departed: tuple[Alert, bytes]) -> None:
    world.ok(world.sup, RecordStocktake(world.wh.public_key, "A2", 5_000, 1, "spot check"))
    r9 = encode(world.document(world.alert("R9")))
    summary = verify(r9, world.b.genesis)
    assert summary["rule"] == "R9" and summary["record"]["observed"] == 5_000
    assert "stocktake's count" in summary["proves"]
    assert refused(altered(r9, record(lambda a: msgspec.structs.replace(a, observed=4_000, delta=a.delta - 1_000))),
                   world) == "alert_observed_mismatch"
    assert refused(altered(r9, record(lambda a: msgspec.structs.replace(a, bins=("A1",)))), world) == (
        "alert_device_mismatch")

    world.reading(world.wb2, "receiving", (lot_urn(*COILS[2]),), weighed(NET + 40))
    r10 = encode(world.document(world.alert("R10")))
    summary = verify(r10, world.b.genesis)
    assert (summary["record"]["observed"], summary["record"]["expected"]) == (NET + 40, NET)
    assert "both signed weighings" in summary["proves"]
    assert refused(altered(r10, record(lambda a: msgspec.structs.replace(a, expected=NET - 1, delta=a.delta + 1))),
                   world) == "alert_expected_mismatch"
    swapped = altered(r10, lambda d: d["evidence"].reverse())
    assert refused(swapped, world) in ("alert_evidence_missing", "alert_evidence_height")


def test_the_cli_verifies_the_package_and_refuses_an_altered_one(world: World, departed: tuple[Alert, bytes],
                                                                 tmp_path: Path) -> None:
    _, data = departed
    genesis = tmp_path / "genesis.json"
    write_genesis(world.b.genesis, genesis)
    document = tmp_path / "alert.json"
    document.write_bytes(data)
    verified = bilayer("audit", "verify", str(document), "--genesis", str(genesis))
    assert verified.code == 0 and "VALID: R2 alert" in verified.out and "on trust:" in verified.out, verified.err
    bad = tmp_path / "bad.json"
    bad.write_bytes(altered(data, record(lambda a: msgspec.structs.replace(a, observed=1, delta=1))))
    result = bilayer("audit", "verify", str(bad), "--genesis", str(genesis), "--json")
    assert result.code != 0 and result.json()["error"]["code"] == "alert_observed_mismatch"


def test_alert_export_writes_the_document_the_verifier_accepts(world: World, departed: tuple[Alert, bytes],
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI against the queries and proofs a node serves (here made in-process)."""
    from click.testing import CliRunner

    from bilayer.apps.warehouse import cli
    from bilayer.apps.warehouse.chain import QUERIES
    from bilayer.audit.proof import encode_proof, prove_entry

    alert, _ = departed
    source = world.b.source()

    class Node:
        def __init__(self, url: str, timeout: float) -> None:
            assert url == "http://127.0.0.1:1"

        def status(self) -> dict[str, Any]:
            return {"chain_id": world.b.genesis.chain_id, "genesis_root": world.b.genesis.root.hex()}

        def get(self, path: str) -> Any:
            assert path.startswith("/v1/audit/proof/")
            return json.loads(encode_proof(prove_entry(source, bytes.fromhex(path.rsplit("/", 1)[1]))))

    monkeypatch.setattr(cli, "NodeClient", Node)
    monkeypatch.setattr(cli, "_get", lambda _node, query, **params: json.loads(json.dumps(
        QUERIES[query](world.b.chain.state, params))))
    runner = CliRunner()
    result = runner.invoke(cli.warehouse, ["alert-export", alert.id.hex(), "--out", str(tmp_path), "--node",
                                           "http://127.0.0.1:1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["entries"] == 4
    written = tmp_path / f"alert-{alert.id.hex()}.json"
    assert verify(written.read_bytes(), world.b.genesis)["alert"] == alert.id.hex()
    bad = runner.invoke(cli.warehouse, ["alert-export", "not-an-id", "--out", str(tmp_path / "x.json"), "--node",
                                        "http://127.0.0.1:1", "--json"])
    assert isinstance(bad.exception, BilayerError) and bad.exception.code == "bad_request"  # the CLI prints the code
    assert not (tmp_path / "x.json").exists()


def test_a_camera_count_verifies_and_a_count_altered_is_refused(world: World, departed: tuple[Alert, bytes]) -> None:
    """R6: the empty bin A2 counted as one coil twice in a row; the count is read from the signed reading."""
    for _ in range(2):
        world.reading(world.camera, "cycle_counting", reports=(epcis.SensorReport("Count", "1", "H87"),))
    r6 = encode(world.document(world.alert("R6")))
    summary = verify(r6, world.b.genesis)
    assert (summary["record"]["observed"], summary["record"]["expected"]) == (1, 0)
    assert "camera's count" in summary["proves"]
    assert refused(altered(r6, record(lambda a: msgspec.structs.replace(a, observed=2, delta=2))), world) == (
        "alert_observed_mismatch")
    assert refused(altered(r6, record(lambda a: msgspec.structs.replace(a, height=a.height - 1))), world) == (
        "alert_id_mismatch")

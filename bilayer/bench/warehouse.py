"""The warehouse application on a local network: receipt lifecycles and device readings
finalized per second, against plain transfers in the same run.

One localnet, three measured phases, CONFIG and RESULTS as `bench network` prints them:

1. **transfers**: `transfers` plain transfers (the `bench network` load), for the baseline;
2. **readings**: `readings` EPCIS weighbridge readings, each signed by its device's own key,
   spread over one device per warehouse (each device's readings form its author chain);
3. **lifecycle**: `receipts` whole receipt lifecycles, twelve acts each (intake reading, lot
   booking, proposal, the depositor's acceptance and the supervisor's sign-off, pledge
   request, the bank's confirmation and the warehouse's countersignature, release,
   surrender, outbound reading, cancellation). An act depends on the state the previous
   one left, so the acts go in ten waves: each wave holds one step of every receipt and is
   sent once the previous wave is final. Its rate is the acts finalized over the sum of the
   waves' times (first send to last finalization), so it includes a finality latency per
   wave that a continuous mix of receipts at different steps would hide.

Onboarding (a supervisor, banks, warehouses with a weighbridge each, depositors) runs before
the clock. Entries are signed wave by wave, before each wave's clock starts; every act must
end FINAL (`lifecycle_rejected` counts those that did not, with their codes).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .. import codec
from ..apps.warehouse.epcis import Reading, SensorReport, event_hash
from ..apps.warehouse.keeper import Keeper
from ..apps.warehouse.operations import (
    AcceptReceipt,
    ApproveDevice,
    CancelReceipt,
    ConfirmPledge,
    Countersign,
    ProposeDevice,
    ProposeReceipt,
    RecordReading,
    RegisterLot,
    RegisterParty,
    RegisterWarehouse,
    ReleasePledge,
    RequestPledge,
    Surrender,
)
from ..apps.warehouse.records import Calibration, Goods, Terms, lot_key, lot_urn, receipt_id
from ..devnet import localnet
from ..execution.executor import Outcome, end_checkpoint, execute, execute_entry, genesis_state
from ..execution.governance.context import ExecContext
from ..execution.governance.gate import Gate
from ..execution.governance.review import expire_holds
from ..genesis import Allocation, ChainParams, Genesis, GenesisCouncilMember, load_genesis
from ..keys.keystore import Keystore
from ..keys.signing import Signer
from ..ledger.entry import EntryHeader, SignedEntry, build_entry
from ..ledger.operations import Operation
from ..node.config import LimitsConfig
from .ledger import measure_verify_rate
from .network import NetworkBenchConfig, Progress, _drive, make_transfers

USCC = "91310000MA1FL0000X"
YEAR_MS = 365 * 24 * 3600 * 1000
NET_KG = 23_000


@dataclass(frozen=True)
class WarehouseBenchConfig:
    validators: int = 4
    transfers: int = 5_000
    readings: int = 3_000
    receipts: int = 300
    warehouses: int = 8
    banks: int = 4
    accounts: int = 200
    batch: int = 250
    connections: int = 8
    pow_bits: int = 8
    timeout_s: float = 300.0


class Authors:
    """Each signer's author chain: the next sequence number and the parent to cite."""

    def __init__(self, chain_id: str, root: bytes, pow_bits: int) -> None:
        self.chain_id, self.root, self.pow_bits = chain_id, root, pow_bits
        self.heads: dict[bytes, tuple[int, bytes]] = {}

    def start(self, signer: Signer, next_seq: int, head: bytes | None) -> None:
        self.heads[signer.public_key] = (next_seq, head or self.root)

    def sign(self, signer: Signer, op: Operation) -> tuple[bytes, SignedEntry]:
        seq, head = self.heads.get(signer.public_key, (0, self.root))
        entry_id, signed = build_entry(signer, chain_id=self.chain_id, seq=seq, parents=[head], op=op,
                                       time_ms=int(time.time() * 1000), pow_bits=self.pow_bits)
        self.heads[signer.public_key] = (seq + 1, entry_id)
        return entry_id, signed


def _signer(tag: str, index: int) -> Signer:
    return Signer(hashlib.sha256(f"bench-warehouse:{tag}:{index}".encode()).digest())


class World:
    """The bench's parties and the acts of each step, as entries signed when asked for."""

    def __init__(self, config: WarehouseBenchConfig, authors: Authors, council: Signer) -> None:
        self.config, self.authors, self.council = config, authors, council
        self.supervisor = _signer("supervisor", 0)
        self.banks = [_signer("bank", i) for i in range(config.banks)]
        self.warehouses = [_signer("warehouse", i) for i in range(config.warehouses)]
        self.devices = [_signer("device", i) for i in range(config.warehouses)]
        self.depositors = [_signer("depositor", i) for i in range(config.warehouses)]
        self.device_seq = [0] * config.warehouses
        self.numbers = [0] * config.warehouses
        self.offers: dict[int, bytes] = {}  # receipt index -> its pledge request (the offer)
        self.intakes: dict[int, bytes] = {}  # receipt index -> its lot's intake event

    def device_id(self, w: int) -> str:
        return f"urn:epc:id:giai:6901234.BENCH{w}"

    def read_point(self, w: int) -> str:
        return f"urn:epc:id:sgln:6901234.00001.BENCH{w}"

    def onboarding(self) -> list[list[tuple[bytes, SignedEntry]]]:
        """Three waves: the council's appointments; depositors and devices; approvals."""
        sign, c = self.authors.sign, self.council
        first = [sign(c, RegisterParty(self.supervisor.public_key, "supervisor", "Supervisor", USCC, "Shanghai"))]
        first += [sign(c, RegisterParty(b.public_key, "bank", f"Bank {i}", USCC, "Beijing"))
                  for i, b in enumerate(self.banks)]
        first += [sign(c, RegisterWarehouse(w.public_key, f"Store {i}", USCC, "Qingdao",
                                            f"urn:epc:id:sgln:6901234.BENCH{i}.0", self.supervisor.public_key,
                                            ("A1",), True)) for i, w in enumerate(self.warehouses)]
        second = []
        for i, w in enumerate(self.warehouses):
            second.append(sign(w, RegisterParty(self.depositors[i].public_key, "depositor", f"Trader {i}", USCC,
                                                "Tianjin")))
            second.append(sign(w, ProposeDevice(self.device_id(i), "weighbridge", ("A1",), self.devices[i].public_key,
                                                self.read_point(i),
                                                Calibration(b"\x01" * 32, "III", 20_000,
                                                            int(time.time() * 1000) + YEAR_MS))))
        third = [sign(self.supervisor, ApproveDevice(self.device_id(i))) for i in range(len(self.warehouses))]
        return [first, second, third]

    def reading(self, w: int, coil: str, step: str) -> RecordReading:
        self.device_seq[w] += 1
        return RecordReading(Reading(
            self.device_id(w), self.device_seq[w], int(time.time() * 1000), "+08:00", "OBSERVE", step,
            "in_progress" if step == "receiving" else "in_transit", (lot_urn("BENCH", f"H{w}", coil),),
            read_point=self.read_point(w),
            reports=(SensorReport("Mass", str(18_000 + NET_KG), "KGM", "gross"),
                     SensorReport("Mass", "18000", "KGM", "tare"))))

    def readings(self, count: int) -> list[tuple[bytes, SignedEntry]]:
        """Intake weighings of coils that no lifecycle books, spread over the devices."""
        w_count = len(self.warehouses)
        return [self.authors.sign(self.devices[i % w_count], self.reading(i % w_count, f"S{i}", "receiving"))
                for i in range(count)]

    def lifecycle(self, step: int) -> list[tuple[bytes, SignedEntry]]:
        """Step `step` (0-9) of every receipt."""
        made = []
        sign = self.authors.sign
        for i in range(self.config.receipts):
            w = i % len(self.warehouses)
            wh, dep, bank = self.warehouses[w], self.depositors[w], self.banks[i % len(self.banks)]
            coil = f"L{i}"
            key = lot_key("BENCH", f"H{w}", coil)
            rid = receipt_id(wh.public_key, 1 + i // len(self.warehouses))
            if step == 0:
                op = self.reading(w, coil, "receiving")
                self.intakes[i] = event_hash(op.reading)
                made.append(sign(self.devices[w], op))
            elif step == 1:
                made.append(sign(wh, RegisterLot("BENCH", f"H{w}", coil, "coil", "Q235B", "5.75x1500", 1,
                                                 self.intakes[i], b"\x02" * 32, "2026-10-01", "A1")))
            elif step == 2:
                goods = Goods("hot-rolled coil", "5.75x1500", "Q235B", "BENCH", "bare coil", "stencil", 1, NET_KG)
                made.append(sign(wh, ProposeReceipt(1 + i // len(self.warehouses), dep.public_key, (key,), goods,
                                                    Terms(3, int(time.time() * 1000) + YEAR_MS, 50, "CNY"), True,
                                                    b"\x03" * 32, "Qingdao", "clerk")))
            elif step == 3:
                made += [sign(dep, AcceptReceipt(rid)), sign(self.supervisor, AcceptReceipt(rid))]
            elif step == 4:
                offer, signed = sign(dep, RequestPledge(rid, bank.public_key, "facility"))
                self.offers[i] = offer
                made.append((offer, signed))
            elif step == 5:
                made += [sign(bank, ConfirmPledge(rid, self.offers[i])), sign(wh, Countersign(rid, self.offers[i]))]
            elif step == 6:
                made.append(sign(bank, ReleasePledge(rid)))
            elif step == 7:
                made.append(sign(dep, Surrender(rid, b"\x04" * 32)))
            elif step == 8:
                made.append(sign(self.devices[w], self.reading(w, coil, "shipping")))
            elif step == 9:
                made.append(sign(wh, CancelReceipt(rid)))
        return made


LIFECYCLE_STEPS = 10


async def _outcomes(url: str, ids: list[bytes]) -> Counter[str]:
    """The reason codes of the entries among `ids` that were not FINAL (a sample of at most 2,000)."""
    codes: Counter[str] = Counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for entry_id in ids[:2_000]:
            async with session.get(f"{url}/v1/entries/{entry_id.hex()}") as response:
                view = await response.json()
            if view.get("status") != "FINAL":
                codes[str(view.get("reason") or view.get("status"))] += 1
    return codes


def run_warehouse_bench(config: WarehouseBenchConfig, progress: Progress,
                        workdir: Path | None = None) -> dict[str, Any]:
    senders = [Signer(index.to_bytes(4, "big") * 8) for index in range(1, config.accounts + 1)]
    allocations = tuple(Allocation(s.address, "BLY", config.transfers) for s in senders)
    drive = NetworkBenchConfig(validators=config.validators, batch=config.batch, connections=config.connections,
                               pow_bits=config.pow_bits, timeout_s=config.timeout_s)
    verify_before = measure_verify_rate()
    with tempfile.TemporaryDirectory(prefix="bilayer-bench-", dir=workdir) as tmp:
        directory = Path(tmp) / "net"
        manifest = localnet.create(directory, validators=config.validators, ledger_nodes=0, pow_bits=config.pow_bits,
                                   limits=LimitsConfig(author_rate=0, connection_rate=0),
                                   extra_allocations=allocations)
        genesis = load_genesis(Path(manifest["genesis"]))
        council = Keystore(Path(manifest["keystore"])).load(manifest["council_keys"][0])
        authors = Authors(genesis.chain_id, genesis.root, config.pow_bits)
        world = World(config, authors, council)
        transfers = make_transfers(genesis.chain_id, genesis.root, senders, config.transfers, config.pow_bits,
                                   progress("signing transfers", config.transfers))
        try:
            localnet.up(directory)
            urls = [n["api_url"] for n in manifest["nodes"]]

            def run(entries: list[tuple[bytes, SignedEntry]], what: str) -> dict[str, Any]:
                return asyncio.run(_drive(urls, urls[0], entries, drive, progress(what, len(entries))))

            for wave in world.onboarding():
                run(wave, "onboarding")
            baseline = run(transfers, "transfers")
            readings = run(world.readings(config.readings), "readings")
            waves, lifecycle_ids = [], []
            for step in range(LIFECYCLE_STEPS):
                entries = world.lifecycle(step)
                lifecycle_ids += [entry_id for entry_id, _ in entries]
                waves.append(run(entries, f"lifecycle step {step + 1}/{LIFECYCLE_STEPS}"))
            not_final = asyncio.run(_outcomes(urls[0], lifecycle_ids)) if any(
                w["final"] != w["finalized"] for w in waves) else Counter()
        finally:
            localnet.down(directory)
    verify_rate = statistics.median([verify_before, measure_verify_rate()])
    cores = os.cpu_count() or 1
    acts = sum(w["finalized"] for w in waves)
    lifecycle_s = sum(w["elapsed_seconds"] for w in waves)
    lifecycle_rate = round(acts / lifecycle_s, 1) if lifecycle_s > 0 else 0.0
    transfer_rate = baseline["finalized_tx_per_s"]
    reading_rate = readings["finalized_tx_per_s"]
    results = {
        "transfers_finalized": baseline["finalized"],
        "transfers_finalized_per_s": transfer_rate,
        "transfer_latency_ms": baseline["latency_ms"],
        "readings_finalized": readings["finalized"],
        "readings_final": readings["final"],
        "readings_finalized_per_s": reading_rate,
        "readings_ratio_to_transfers": round(reading_rate / transfer_rate, 3) if transfer_rate else None,
        "lifecycle_acts_finalized": acts,
        "lifecycle_acts_final": sum(w["final"] for w in waves),
        "lifecycle_rejected": dict(not_final),
        "lifecycle_seconds": round(lifecycle_s, 3),
        "lifecycle_acts_per_s": lifecycle_rate,
        "lifecycle_ratio_to_transfers": round(lifecycle_rate / transfer_rate, 3) if transfer_rate else None,
        "lifecycle_wave_acts_per_s": [w["finalized_tx_per_s"] for w in waves],
        "lifecycle_wave_latency_p50_ms": [w["latency_ms"]["p50"] for w in waves],
        "verify_per_s_per_core": round(verify_rate, 1),
        "verification_bound_tx_per_s": round(verify_rate * cores / max(1, config.validators), 1),
    }
    return {"config": asdict(config) | {"cores": cores, "acts_per_receipt": 12}, "results": results}


# --- devices: sustained readings through reconciliation, and its cost per checkpoint -----------------

DEVICES_PER_WAREHOUSE = 50
BINS = tuple(f"A{n:02d}" for n in range(1, 13))
GATES_PER_WAREHOUSE = 4
SPEC = "5.75x1500"
PRICE = 400_000  # per tonne, minor units (4,000.00 CNY)
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class DeviceBenchConfig:
    validators: int = 4
    devices: int = 1_000
    events: int = 5_000
    live_receipts: int = 10_000
    state_devices: int = 1_000
    checkpoint_entries: int = 1_000
    repeats: int = 5
    batch: int = 250
    connections: int = 8
    pow_bits: int = 8
    timeout_s: float = 300.0
    network: bool = True  # False: the in-process checkpoint cost alone, no localnet


class DeviceWorld:
    """Warehouses of 50 devices each (a weighbridge, 4 gate readers, a camera and a lidar over
    each of 12 bins, environment sensors for the rest), coils booked evenly over the bins,
    and, with `receipts`, each coil under its own live receipt, a third of them pledged to
    a facility of its depositor; a device's readings agree with the book, so reconciliation
    compares every one and raises nothing."""

    def __init__(self, authors: Authors, council: Signer, devices: int, lots: int, *, receipts: bool,
                 now: Any) -> None:
        self.authors, self.council, self.now = authors, council, now
        self.count = max(devices, 1)
        self.warehouses = [_signer("dw-warehouse", i) for i in range(-(-self.count // DEVICES_PER_WAREHOUSE))]
        self.supervisor, self.publisher = _signer("dw-supervisor", 0), _signer("dw-publisher", 0)
        self.banks = [_signer("dw-bank", i) for i in range(4)]
        self.depositors = [_signer("dw-depositor", i) for i in range(len(self.warehouses))]
        self.buyers = [_signer("dw-buyer", i) for i in range(len(self.warehouses))]
        self.device_keys = [_signer("dw-device", i) for i in range(self.count)]
        self.seq = [0] * self.count
        self.lots, self.receipts = lots, receipts
        self.book: dict[tuple[int, str], int] = {}  # (warehouse, bin) -> coils booked
        self.coils = 0

    def warehouse_of(self, d: int) -> int:
        return d // DEVICES_PER_WAREHOUSE

    def kind(self, d: int) -> str:
        j = d % DEVICES_PER_WAREHOUSE
        if j == 0:
            return "weighbridge"
        if j <= GATES_PER_WAREHOUSE:
            return "gate_reader"
        j -= GATES_PER_WAREHOUSE + 1
        return "camera" if j < len(BINS) else "lidar" if j < 2 * len(BINS) else "env"

    def bins(self, d: int) -> tuple[str, ...]:
        kind = self.kind(d)
        return (BINS[(d % DEVICES_PER_WAREHOUSE - GATES_PER_WAREHOUSE - 1) % len(BINS)],) if kind in (
            "camera", "lidar") else BINS

    def device_id(self, d: int) -> str:
        return f"urn:epc:id:giai:6901234.DW{d}"

    def point(self, d: int) -> str:
        return f"urn:epc:id:sgln:6901234.00001.DW{d}"

    def weighbridge(self, w: int) -> int:
        return w * DEVICES_PER_WAREHOUSE

    def onboarding(self) -> list[list[tuple[Signer, Operation]]]:
        """The waves before any reading: parties, devices and approvals, facilities and a price."""
        from ..apps.warehouse.operations import AppointPublisher, OpenFacility, PublishPrice

        c, sup = self.council, self.supervisor
        now = self.now()
        first: list[tuple[Signer, Operation]] = [
            (c, RegisterParty(sup.public_key, "supervisor", "Supervisor", USCC, "Shanghai")),
            (c, AppointPublisher(self.publisher.public_key, "Mysteel", ("mysteel_spot",), (SPEC,)))]
        first += [(c, RegisterParty(b.public_key, "bank", f"Bank {i}", USCC, "Beijing"))
                  for i, b in enumerate(self.banks)]
        first += [(c, RegisterWarehouse(w.public_key, f"Store {i}", USCC, "Qingdao",
                                        f"urn:epc:id:sgln:6901234.DW{i}.0", sup.public_key, BINS, True))
                  for i, w in enumerate(self.warehouses)]
        second: list[tuple[Signer, Operation]] = [(self.publisher, PublishPrice(SPEC, "mysteel_spot", "spot",
                                                                                self.day(0), PRICE))]
        for i, w in enumerate(self.warehouses):
            second += [(w, RegisterParty(self.depositors[i].public_key, "depositor", f"Trader {i}", USCC, "Tianjin")),
                       (w, RegisterParty(self.buyers[i].public_key, "depositor", f"Buyer {i}", USCC, "Tianjin"))]
        for d in range(self.count):
            weighs = self.kind(d) == "weighbridge"
            calibration = Calibration(b"\x01" * 32, "III" if weighs else "", 20_000 if weighs else 0, now + YEAR_MS)
            second.append((self.warehouses[self.warehouse_of(d)], ProposeDevice(
                self.device_id(d), self.kind(d), self.bins(d), self.device_keys[d].public_key,  # type: ignore[arg-type]
                self.point(d), calibration, heartbeat_ms=60_000)))
        third: list[tuple[Signer, Operation]] = [(sup, ApproveDevice(self.device_id(d))) for d in range(self.count)]
        third += [(self.banks[i % len(self.banks)], OpenFacility(f"F{i}", dep.public_key, 10**15))
                  for i, dep in enumerate(self.depositors)]
        return [first, second, third]

    def day(self, n: int) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(1_796_000_000 + n * 86_400))

    def reading(self, d: int, step: str, epcs: tuple[str, ...] = (),
                reports: tuple[SensorReport, ...] = ()) -> tuple[Signer, Operation]:
        self.seq[d] += 1
        return self.device_keys[d], RecordReading(Reading(
            self.device_id(d), self.seq[d], self.now(), "+08:00", "OBSERVE", step, "", epcs, read_point=self.point(d),
            reports=reports))

    def stock(self) -> list[list[tuple[Signer, Operation]]]:
        """Intake weighings, bookings and (with `receipts`) proposals, acceptances and pledges."""
        intakes: list[tuple[Signer, Operation]] = []
        bookings: list[tuple[Signer, Operation]] = []
        for n in range(self.lots):
            w, bin_name = n % len(self.warehouses), BINS[(n // len(self.warehouses)) % len(BINS)]
            signer, op = self.reading(self.weighbridge(w), "receiving", (lot_urn("DW", f"H{w}", f"C{n}"),),
                                      _weighed(NET_KG))
            assert isinstance(op, RecordReading)
            intakes.append((signer, op))
            bookings.append((self.warehouses[w], RegisterLot("DW", f"H{w}", f"C{n}", "coil", "Q235B", SPEC, 1,
                                                             event_hash(op.reading), b"\x02" * 32, "2026-10-01",
                                                             bin_name)))
            self.book[(w, bin_name)] = self.book.get((w, bin_name), 0) + 1
        waves = [intakes, bookings]
        if not self.receipts:
            return waves
        proposals: list[tuple[Signer, Operation]] = []
        accepts: list[tuple[Signer, Operation]] = []
        requests: list[tuple[Signer, Operation]] = []
        numbers = [0] * len(self.warehouses)
        goods = Goods("hot-rolled coil", SPEC, "Q235B", "DW", "bare coil", "stencil", 1, NET_KG)
        self.rids: list[bytes] = []
        self.pledged: list[tuple[bytes, int]] = []  # (receipt, warehouse), in the order of their requests
        for n in range(self.lots):
            w = n % len(self.warehouses)
            numbers[w] += 1
            rid = receipt_id(self.warehouses[w].public_key, numbers[w])
            self.rids.append(rid)
            proposals.append((self.warehouses[w], ProposeReceipt(
                numbers[w], self.depositors[w].public_key, (lot_key("DW", f"H{w}", f"C{n}"),), goods,
                Terms(3, self.now() + YEAR_MS, 50, "CNY"), True, b"\x03" * 32, "Qingdao", "clerk")))
            accepts += [(self.depositors[w], AcceptReceipt(rid)), (self.supervisor, AcceptReceipt(rid))]
            if n % 3 == 0:
                self.pledged.append((rid, w))
                requests.append((self.depositors[w], RequestPledge(rid, self.banks[w % len(self.banks)].public_key,
                                                                   f"F{w}")))
        return [*waves, proposals, accepts, requests]

    def confirmations(self, offers: list[bytes]) -> list[tuple[Signer, Operation]]:
        """The bank's confirmation and the warehouse's countersignature of each pledge request
        (`offers`: the requests' entry ids, in the order `stock` made them)."""
        made: list[tuple[Signer, Operation]] = []
        for (rid, w), offer in zip(self.pledged, offers, strict=True):
            made += [(self.banks[w % len(self.banks)], ConfirmPledge(rid, offer)),
                     (self.warehouses[w], Countersign(rid, offer))]
        return made

    def outstanding(self, day: int) -> list[tuple[Signer, Operation]]:
        """Each facility's bank reports half its pledged value as owed."""
        from ..apps.warehouse.operations import ReportOutstanding

        per: dict[int, int] = {}
        for _, w in self.pledged:
            per[w] = per.get(w, 0) + 1
        value = NET_KG * PRICE // 1000
        return [(self.banks[w % len(self.banks)], ReportOutstanding(f"F{w}", n * value // 2, self.day(day)))
                for w, n in sorted(per.items())]

    def agreeing(self, d: int, n: int) -> tuple[Signer, Operation]:
        """Device d's reading number n of the run, agreeing with the book."""
        from ..apps.warehouse.records import lot_urn as urn

        kind, w = self.kind(d), self.warehouse_of(d)
        if kind == "weighbridge":
            return self.reading(d, "receiving", (urn("DW", f"IN{w}", f"E{n}"),), _weighed(NET_KG))
        if kind == "gate_reader":
            return self.reading(d, "arriving", (urn("DW", f"IN{w}", f"G{n}"),))
        coils = self.book.get((w, self.bins(d)[0]), 0)
        if kind == "camera":
            return self.reading(d, "cycle_counting", reports=(SensorReport("Count", str(coils), "H87"),))
        if kind == "lidar":
            return self.reading(d, "cycle_counting", reports=(SensorReport("Mass", str(coils * NET_KG), "KGM"),))
        return self.reading(d, "sensor_reporting", reports=(SensorReport("Temperature", str(n % 30), "CEL"),))

    def events(self, count: int, start: int = 0) -> list[tuple[Signer, Operation]]:
        return [self.agreeing((start + i) % self.count, start + i) for i in range(count)]


def _weighed(net_kg: int) -> tuple[SensorReport, ...]:
    return (SensorReport("Mass", str(18_000 + net_kg), "KGM", "gross"), SensorReport("Mass", "18000", "KGM", "tare"))


class _InProcess:
    """A chain executed in process through the executor, checkpoint by checkpoint, on simulated time."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.state = genesis_state(genesis)
        self.authors = Authors(genesis.chain_id, genesis.root, 0)
        self.height = 0
        self.time_ms = genesis.genesis_time_ms

    def sign(self, writes: list[tuple[Signer, Operation]]) -> list[tuple[bytes, EntryHeader]]:
        signed = (self.authors.sign(signer, op) for signer, op in writes)
        return [(entry_id, codec.decode(entry.header, EntryHeader)) for entry_id, entry in signed]

    def context(self) -> ExecContext:
        return ExecContext(self.height + 1, self.time_ms + 1_000, self.genesis.governance)

    def run(self, writes: list[tuple[Signer, Operation]], chunk: int = 2_000) -> list[bytes]:
        """Every write FINAL, in checkpoints of at most `chunk` entries; their ids."""
        ids = []
        for start in range(0, len(writes), chunk):
            ordered = self.sign(writes[start:start + chunk])
            ctx = self.context()
            self.height, self.time_ms = ctx.height, ctx.time_ms
            refused = [r for r in execute(ctx, self.state, ordered) if r.outcome != Outcome.FINAL]
            if refused:
                raise RuntimeError(f"{len(refused)} entries not FINAL while building the state, e.g. {refused[0].code}")
            ids += [entry_id for entry_id, _ in ordered]
        return ids


def measure_checkpoint_cost(config: DeviceBenchConfig, progress: Progress) -> dict[str, Any]:
    """Reconciliation and valuation (the end-of-checkpoint work) as a share of one checkpoint's
    execution, with `live_receipts` live receipts (a third pledged) and `state_devices` devices:
    a checkpoint of about `checkpoint_entries` mixed entries (every device-kind's reading that
    agrees with the book, a new trading day's price, the banks' daily balances, receipt
    transfers offered) executed with and without that work, each run from the same state."""
    council = _signer("dw-council", 0)
    genesis = Genesis("bench-devices", 1_796_000_000_000, params=ChainParams(pow_bits=0),
                      council=(GenesisCouncilMember("c0", council.public_key.hex(), 1),))
    chain = _InProcess(genesis)
    world = DeviceWorld(chain.authors, council, config.state_devices, config.live_receipts, receipts=True,
                        now=lambda: chain.time_ms)
    build = progress("building the state", 1)
    started = time.perf_counter()
    for wave in world.onboarding():
        chain.run(wave)
    *waves, requests = world.stock()
    for wave in waves:
        chain.run(wave)
    offers = chain.run(requests)
    chain.run(world.confirmations(offers))
    chain.run(world.outstanding(0))
    build_s = time.perf_counter() - started
    build(1)

    from ..apps.warehouse.operations import OfferTransfer, PublishPrice

    free = [(rid, n % len(world.warehouses)) for n, rid in enumerate(world.rids) if n % 3 != 0]
    transfers = max(0, config.checkpoint_entries // 8)
    reports = world.outstanding(1)
    keeper = Keeper(chain.state)
    timed = {}
    for name, finance_acts in (("typical", reports[:2]), ("new_trading_day", [
            (world.publisher, PublishPrice(SPEC, "mysteel_spot", "spot", world.day(1), PRICE * 101 // 100)),
            *reports])):
        readings = max(0, config.checkpoint_entries - len(finance_acts) - transfers)
        start = world.seq.copy()
        writes = [*world.events(readings), *finance_acts,
                  *((world.depositors[w], OfferTransfer(rid, world.buyers[w].public_key))
                    for rid, w in free[:transfers])]
        world.seq = start  # both checkpoints start from the same state: the same sequence numbers
        heads = dict(chain.authors.heads)
        ordered = chain.sign(writes)
        chain.authors.heads = heads
        timed[name] = _time_checkpoint(chain, keeper, ordered, config.repeats, progress(f"timing: {name}",
                                                                                       config.repeats))
        timed[name]["checkpoint_readings"] = dict(sorted(Counter(
            world.kind(d % world.count) for d in range(readings)).items()))
    return {
        "live_receipts": sum(1 for r in keeper.register() if r.live), "pledged_receipts": len(world.pledged),
        "devices": world.count, "warehouses": len(world.warehouses), "facilities": len(keeper.facilities()),
        "state_keys": len(chain.state), "state_build_seconds": round(build_s, 1), "repeats": config.repeats,
        **{f"{name}_checkpoint": figures for name, figures in timed.items()},
    }


def _valued_at(keeper: Keeper, facility: Any, height: int) -> bool:
    valuation = keeper.valuation(facility.bank, facility.name, facility.last_day) if facility.last_day else None
    return valuation is not None and valuation.height == height


def _time_checkpoint(chain: _InProcess, keeper: Keeper, ordered: list[tuple[bytes, EntryHeader]], repeats: int,
                     tick: Any) -> dict[str, Any]:
    """`execute` of the checkpoint with its end-of-checkpoint work, and its entries alone (then
    that work timed by itself), alternated, each from the same state (a rolled-back transaction).
    The share is the median of each run's end / (entries + end): both halves timed in the same
    run, it holds up on a shared machine better than the difference of two medians."""
    ctx = chain.context()
    alerts_before = len(keeper.alerts())
    with_s, without_s, end_s = [], [], []
    outcomes: Counter[str] = Counter()
    raised = revalued = 0
    for _ in range(repeats):
        gc.collect()
        chain.state.begin_transaction()
        t0 = time.perf_counter()
        results = execute(ctx, chain.state, ordered)
        with_s.append(time.perf_counter() - t0)
        outcomes = Counter(r.code or str(r.outcome) for r in results)
        raised = len(keeper.alerts()) - alerts_before
        revalued = len([f for f in keeper.facilities() if _valued_at(keeper, f, ctx.height)])
        chain.state.rollback_transaction()
        gc.collect()
        chain.state.begin_transaction()
        t0 = time.perf_counter()
        expire_holds(ctx, chain.state)
        gate = Gate(chain.state)
        for entry_id, header in ordered:
            execute_entry(ctx, chain.state, entry_id, header, gate)
        t1 = time.perf_counter()
        end_checkpoint(ctx, chain.state)
        t2 = time.perf_counter()
        without_s.append(t1 - t0)
        end_s.append(t2 - t1)
        chain.state.rollback_transaction()
        tick(1)
    with_ms, without_ms, end_ms = (statistics.median(x) * 1000 for x in (with_s, without_s, end_s))
    return {
        "entries": len(ordered), "outcomes": dict(outcomes), "alerts_raised": raised,
        "facilities_revalued": revalued,
        "execute_with_end_ms": round(with_ms, 2), "execute_without_end_ms": round(without_ms, 2),
        "end_of_checkpoint_ms": round(end_ms, 2),
        "end_of_checkpoint_share": round(statistics.median(
            end / (entries + end) for entries, end in zip(without_s, end_s, strict=True)), 4),
        "end_of_checkpoint_share_by_difference": round((with_ms - without_ms) / with_ms, 4) if with_ms else None,
    }


def run_device_bench(config: DeviceBenchConfig, progress: Progress, workdir: Path | None = None) -> dict[str, Any]:
    """Device readings finalized per second through reconciliation on a localnet, the devices
    that rate supervises at one reading a minute, and the in-process cost per checkpoint
    (only that without `network`)."""
    if not config.network:
        return {"config": asdict(config) | {"cores": os.cpu_count() or 1},
                "results": {"checkpoint_cost": measure_checkpoint_cost(config, progress)}}
    drive = NetworkBenchConfig(validators=config.validators, batch=config.batch, connections=config.connections,
                               pow_bits=config.pow_bits, timeout_s=config.timeout_s)
    with tempfile.TemporaryDirectory(prefix="bilayer-bench-", dir=workdir) as tmp:
        directory = Path(tmp) / "net"
        manifest = localnet.create(directory, validators=config.validators, ledger_nodes=0, pow_bits=config.pow_bits,
                                   limits=LimitsConfig(author_rate=0, connection_rate=0))
        genesis = load_genesis(Path(manifest["genesis"]))
        council = Keystore(Path(manifest["keystore"])).load(manifest["council_keys"][0])
        authors = Authors(genesis.chain_id, genesis.root, config.pow_bits)
        warehouses = -(-config.devices // DEVICES_PER_WAREHOUSE)
        world = DeviceWorld(authors, council, config.devices, warehouses * len(BINS), receipts=False,
                            now=lambda: int(time.time() * 1000))
        try:
            localnet.up(directory)
            urls = [n["api_url"] for n in manifest["nodes"]]

            def run(writes: list[tuple[Signer, Operation]], what: str) -> dict[str, Any]:
                entries = [authors.sign(signer, op) for signer, op in writes]
                done = asyncio.run(_drive(urls, urls[0], entries, drive, progress(what, len(entries))))
                if what != "device readings" and done["final"] != len(entries):
                    raise RuntimeError(f"{what}: {len(entries) - done['final']} entries not FINAL")
                done["ids"] = [entry_id for entry_id, _ in entries]
                return done

            for wave in [*world.onboarding(), *world.stock()]:
                run(wave, "onboarding")
            readings = run(world.events(config.events), "device readings")
            not_final = asyncio.run(_outcomes(urls[0], readings["ids"])) if (
                readings["final"] != len(readings["ids"])) else Counter()
            alerts = asyncio.run(_alert_count(urls[0]))
        finally:
            localnet.down(directory)
    rate = readings["finalized_tx_per_s"]
    kinds = Counter(world.kind(d % world.count) for d in range(config.events))
    results = {
        "readings_finalized": readings["finalized"], "readings_final": readings["final"],
        "readings_not_final": dict(not_final), "readings_by_kind": dict(sorted(kinds.items())),
        "readings_finalized_per_s": rate, "reading_latency_ms": readings["latency_ms"], "alerts_raised": alerts,
        "supervised_devices_at_one_reading_per_minute": int(rate * 60),
        "checkpoint_cost": measure_checkpoint_cost(config, progress),
    }
    return {"config": asdict(config) | {"cores": os.cpu_count() or 1, "warehouses": warehouses,
                                        "devices_per_warehouse": DEVICES_PER_WAREHOUSE,
                                        "supervision_assumption": "each device sends one reading per minute: "
                                                                  "devices = sustained readings/s x 60"},
            "results": results}


async def _alert_count(url: str) -> int:
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
                session.get(f"{url}/v1/apps/warehouse/alerts") as response):
        return int((await response.json())["count"])

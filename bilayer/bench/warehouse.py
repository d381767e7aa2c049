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

from ..apps.warehouse.epcis import Reading, SensorReport, event_hash
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
from ..genesis import Allocation, load_genesis
from ..keys.keystore import Keystore
from ..keys.signing import Signer
from ..ledger.entry import SignedEntry, build_entry
from ..ledger.operations import Operation
from ..node import localnet
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

"""Ledger ingestion benchmark: entries a single ledger node accepts per second, signature
checks and durable storage included, beside plain PyNaCl verifications per second measured
in the same run on the same machine.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .. import codec
from ..devnet import localnet
from ..genesis import load_genesis
from ..keys.signing import Signer, verify
from ..ledger.entry import SignedEntry, build_entry, signing_message
from ..ledger.operations import Transfer
from ..node.config import LimitsConfig


@dataclass(frozen=True)
class LedgerBenchConfig:
    entries: int = 20_000
    authors: int = 50
    batch: int = 500
    connections: int = 4
    pow_bits: int = 8
    repeats: int = 3


def measure_verify_rate(seconds: float = 1.0) -> float:
    """Plain Ed25519 verifications per second on one core (PyNaCl, 48-byte message)."""
    signer = Signer.generate()
    message = signing_message(bytes(32))
    signature = signer.sign(message)
    public_key = signer.public_key
    count = 0
    started = time.perf_counter()
    while True:
        for _ in range(500):
            verify(public_key, message, signature)
        count += 500
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return count / elapsed


def make_entries(
    chain_id: str, root: bytes, config: LedgerBenchConfig, tick: Callable[[int], None]
) -> list[SignedEntry]:
    """Author chains interleaved round-robin, so every batch holds entries of many authors."""
    signers = [Signer.generate() for _ in range(config.authors)]
    recipient = Signer.generate().public_key
    heads: list[bytes | None] = [None] * config.authors
    now = int(time.time() * 1000)
    entries = []
    for index in range(config.entries):
        a = index % config.authors
        seq = index // config.authors
        head = heads[a]
        parents = [head] if head is not None else [root]
        id_, signed = build_entry(
            signers[a],
            chain_id=chain_id,
            seq=seq,
            parents=parents,
            op=Transfer(asset="BLY", amount=1, to=recipient),
            time_ms=now,
            pow_bits=config.pow_bits,
        )
        heads[a] = id_
        entries.append(signed)
        if index % 500 == 499:
            tick(500)
    return entries


async def _submit_all(url: str, batches: list[bytes], connections: int, tick: Callable[[int], None]) -> int:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    stored = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal stored
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(url, data=body, headers={"Content-Type": "application/msgpack"}) as response:
                result = await response.json()
            if response.status != 200:
                raise RuntimeError(f"batch refused: {result}")
            # a batch may overtake the batch holding its parents: those entries wait as orphans
            ok = sum(1 for r in result["results"] if r.get("status") in ("stored", "known", "orphan"))
            stored += ok
            tick(len(result["results"]))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        status_url = url.replace("/v1/entries/batch", "/v1/status")
        for _ in range(6000):  # until every accepted entry is stored (orphans placed), at most 60 s
            async with session.get(status_url) as response:
                if (await response.json())["entries"] >= stored:
                    break
            await asyncio.sleep(0.01)
    return stored


def run_ledger_bench(
    config: LedgerBenchConfig, progress: Callable[[str, int], Callable[[int], None]], workdir: Path | None = None
) -> dict[str, Any]:
    """Start a one-node localnet, pre-sign entries, submit them in batches; repeat and report medians."""
    verify_rates = []
    ingest_rates = []
    with tempfile.TemporaryDirectory(prefix="bilayer-bench-", dir=workdir) as tmp:
        limits = LimitsConfig(author_rate=0, connection_rate=0)
        for repeat in range(config.repeats):
            directory = Path(tmp) / f"net{repeat}"
            manifest = localnet.create(
                directory, validators=0, ledger_nodes=1, pow_bits=config.pow_bits, limits=limits
            )
            genesis = load_genesis(Path(manifest["genesis"]))
            entries = make_entries(
                genesis.chain_id, genesis.root, config, progress(f"signing entries (run {repeat + 1})", config.entries)
            )
            batches = [codec.encode(entries[i : i + config.batch]) for i in range(0, len(entries), config.batch)]
            try:
                localnet.up(directory)
                node = manifest["nodes"][0]
                tick = progress(f"submitting (run {repeat + 1})", config.entries)
                verify_rates.append(measure_verify_rate())
                started = time.perf_counter()
                stored = asyncio.run(
                    _submit_all(node["api_url"] + "/v1/entries/batch", batches, config.connections, tick)
                )
                elapsed = time.perf_counter() - started
                verify_rates.append(measure_verify_rate())
            finally:
                localnet.down(directory)
            if stored != config.entries:
                raise RuntimeError(f"only {stored} of {config.entries} entries were stored")
            ingest_rates.append(stored / elapsed)
    verify_rate = statistics.median(verify_rates)
    ingest_rate = statistics.median(ingest_rates)
    return {
        "config": asdict(config) | {"cores": os.cpu_count()},
        "results": {
            "entries_accepted_per_s": round(ingest_rate, 1),
            "entries_accepted_per_s_runs": [round(r, 1) for r in ingest_rates],
            "pynacl_verify_per_s_per_core": round(verify_rate, 1),
            "ratio_to_one_core_verify": round(ingest_rate / verify_rate, 3),
        },
    }

"""End-to-end benchmark of a local network: signed transfers in, finalized checkpoints out.

CONFIG and RESULTS in the manner of Narwhal's harness. Entries are signed and stamped
before the clock starts; during the run the client only sends batches (round-robin over
the nodes it submits to) and watches one node's checkpoints to time finality:

* finalized tx/s over the window from the first submission to the last finalization;
* submit-to-final latency percentiles (per entry: when its batch was sent -> when the
  checkpoint that finalized it was first seen; checkpoints are polled every 10 ms);
* the Ed25519 verification bound measured in the same run: PyNaCl verifications per second
  on one core x cores / validators (every validator checks every entry), and the ratio;
* the same in CPU time, which a machine shared with other work does not skew: the validators'
  CPU seconds per finalized entry (from /proc) against one verification's CPU time.

A node that is behind refuses a batch early (429/503 with Retry-After). A saturating run
waits that long and sends the batch again, as the CLI and the SDK do; a run at a fixed
`rate` does not resend it unless `resend_refused` says so, and reports the accepted and
refused rates and the latency of the accepted entries (give it `accounts` = `transactions`,
so that every entry is its author's only one and a refused entry leaves no later entry
without its parent).

With `forks` an attacker joins the run: that many authors each sign two entries at one
sequence number and race the halves to two different nodes at the same instant, `fork_rate`
pairs per second until the transfers are final; the figures are then those of the honest
transfers under the attack.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .. import codec
from ..devnet import localnet
from ..genesis import Allocation, load_genesis
from ..keys.signing import Signer, verify
from ..ledger.entry import SignedEntry, build_entry, signing_message
from ..ledger.operations import Data, Transfer
from ..node.config import LimitsConfig
from .ledger import measure_verify_rate

Progress = Callable[[str, int], Callable[[int], None]]
MAX_ATTEMPTS = 30  # of one batch a node refuses with Retry-After (saturating runs resend it)


@dataclass(frozen=True)
class NetworkBenchConfig:
    validators: int = 4
    ledger_nodes: int = 0
    transactions: int = 20_000
    accounts: int = 200
    rate: float = 0.0  # tx/s; 0 = as fast as the network accepts
    resend_refused: bool = False  # at a fixed rate, resend a refused batch after Retry-After too
    batch: int = 250
    connections: int = 8
    pow_bits: int = 8
    timeout_s: float = 300.0
    forks: int = 0  # fork pairs raced to two nodes during the run
    fork_rate: float = 50.0  # pairs per second
    wan: str = ""  # a localnet WAN profile: every peer link delayed as between its regions


def make_transfers(chain_id: str, root: bytes, senders: list[Signer], count: int,
                   pow_bits: int, tick: Callable[[int], None]) -> list[tuple[bytes, SignedEntry]]:
    """Each sender's transfers form its author chain; interleaved so batches mix senders."""
    heads: list[bytes | None] = [None] * len(senders)
    recipient = Signer(b"\x01" * 32).public_key
    now = int(time.time() * 1000)
    made = []
    for index in range(count):
        a = index % len(senders)
        head = heads[a]
        entry_id, signed = build_entry(
            senders[a], chain_id=chain_id, seq=index // len(senders), parents=[head] if head else [root],
            op=Transfer(asset="BLY", amount=1, to=recipient), time_ms=now, pow_bits=pow_bits,
        )
        heads[a] = entry_id
        made.append((entry_id, signed))
        if index % 500 == 499:
            tick(500)
    return made


def make_forks(chain_id: str, root: bytes, count: int, pow_bits: int) -> list[tuple[SignedEntry, SignedEntry]]:
    """`count` attackers, each with two different entries at sequence 0."""
    now = int(time.time() * 1000)
    pairs = []
    for index in range(count):
        attacker = Signer(b"\xf0" + index.to_bytes(4, "big") * 7 + b"\x0f" * 3)
        halves = [build_entry(attacker, chain_id=chain_id, seq=0, parents=[root], op=Data(media_type="text/plain"),
                              payload=side, time_ms=now, pow_bits=pow_bits)[1] for side in (b"left", b"right")]
        pairs.append((halves[0], halves[1]))
    return pairs


async def _drive(urls: list[str], watch_url: str, entries: list[tuple[bytes, SignedEntry]],
                 config: NetworkBenchConfig, tick: Callable[[int], None],
                 forks: Sequence[tuple[SignedEntry, SignedEntry]] = ()) -> dict[str, Any]:
    batches = [entries[i:i + config.batch] for i in range(0, len(entries), config.batch)]
    sent_at: dict[bytes, float] = {}
    final_at: dict[bytes, float] = {}
    outcome: dict[bytes, str] = {}
    refused = 0
    accepted = 0
    refusals: dict[str, int] = {}  # whole batches answered 429/503 with Retry-After: entries by code
    sending = True
    fork_answers: dict[str, int] = {}
    done = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=config.connections * 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start_height = (await (await session.get(f"{watch_url}/v1/status")).json())["height"]

        async def watch() -> None:
            next_height = start_height + 1
            while not done.is_set():
                async with session.get(f"{watch_url}/v1/checkpoints/{next_height}?entries=1") as response:
                    if response.status == 404:
                        await asyncio.sleep(0.01)
                        continue
                    view = await response.json()
                seen = time.perf_counter()
                finalized_now = 0
                for item in view.get("entries", []):
                    entry_id = bytes.fromhex(item["id"])
                    if entry_id in sent_at and entry_id not in final_at:
                        final_at[entry_id] = seen
                        outcome[entry_id] = item["outcome"]
                        finalized_now += 1
                tick(finalized_now)
                next_height += 1
                if len(final_at) >= len(entries) or (not sending and len(final_at) >= accepted):
                    done.set()

        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(batches)):
            queue.put_nowait(index)
        started = time.perf_counter()
        interval = config.batch / config.rate if config.rate > 0 else 0.0

        async def send(worker: int) -> None:
            nonlocal refused, accepted
            while not queue.empty():
                index = queue.get_nowait()
                if interval:
                    delay = started + index * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                batch = batches[index]
                url = urls[index % len(urls)]
                for _attempt in range(MAX_ATTEMPTS):
                    now = time.perf_counter()
                    for entry_id, _ in batch:
                        sent_at[entry_id] = now
                    async with session.post(f"{url}/v1/entries/batch", data=codec.encode([s for _, s in batch]),
                                            headers={"Content-Type": "application/msgpack"}) as response:
                        body = await response.json()
                    if response.status not in (429, 503) or "Retry-After" not in response.headers:
                        break
                    # refused early, before any work on it
                    code = body["error"]["code"]
                    refusals[code] = refusals.get(code, 0) + len(batch)
                    if interval and not config.resend_refused:  # offered load is fixed: not resent
                        break
                    await asyncio.sleep(float(response.headers["Retry-After"]))  # as the CLI and the SDK do
                if response.status in (429, 503):
                    for entry_id, _ in batch:
                        del sent_at[entry_id]
                    continue
                if response.status != 200:
                    raise RuntimeError(f"batch refused by {url}: {body}")
                for (entry_id, _), result in zip(batch, body["results"], strict=True):
                    if "error" in result:
                        refused += 1
                        del sent_at[entry_id]
                    else:
                        accepted += 1

        async def post_halves(url: str, halves: list[SignedEntry]) -> None:
            async with session.post(f"{url}/v1/entries/batch", data=codec.encode(halves),
                                    headers={"Content-Type": "application/msgpack"}) as response:
                body = await response.json()
            for item in body.get("results", []) if response.status == 200 else []:
                answer = item["error"]["code"] if "error" in item else item["status"]
                fork_answers[answer] = fork_answers.get(answer, 0) + 1

        async def attack() -> None:
            """Every 100 ms, the pairs due by then: left halves to one node, right halves to another."""
            sent, tick = 0, 0
            while sent < len(forks) and not done.is_set():
                tick += 1
                due = min(len(forks), int(tick * 0.1 * config.fork_rate)) - sent
                pairs = forks[sent:sent + due]
                if pairs:
                    await asyncio.gather(post_halves(urls[tick % len(urls)], [left for left, _ in pairs]),
                                         post_halves(urls[(tick + 1) % len(urls)], [right for _, right in pairs]))
                sent += len(pairs)
                await asyncio.sleep(max(0.0, started + tick * 0.1 - time.perf_counter()))

        watcher = asyncio.ensure_future(watch())
        attacker = asyncio.ensure_future(attack())
        try:
            await asyncio.gather(*(send(w) for w in range(config.connections)))
            submitted = time.perf_counter()
            sending = False
            await asyncio.wait_for(done.wait(), config.timeout_s)
        except TimeoutError:
            pass
        finally:
            done.set()
            await attacker
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        end_height = (await (await session.get(f"{watch_url}/v1/status")).json())["height"]
    latencies = sorted(final_at[i] - sent_at[i] for i in final_at)
    last_final = max(final_at.values(), default=started)
    elapsed = last_final - started
    submit_s = submitted - started
    return {
        "finalized": len(final_at),
        "final": sum(1 for o in outcome.values() if o == "FINAL"),
        "rejected": sum(1 for o in outcome.values() if o == "REJECTED"),
        "refused_at_ingress": refused,
        "submit_seconds": round(submitted - started, 3),
        "elapsed_seconds": round(elapsed, 3),
        "finalized_tx_per_s": round(len(final_at) / elapsed, 1) if elapsed > 0 else 0.0,
        "submitted_tx_per_s": round(len(entries) / submit_s, 1),
        "accepted": accepted,
        "accepted_tx_per_s": round(accepted / submit_s, 1),
        "refused_early": sum(refusals.values()),
        "refused_early_tx_per_s": round(sum(refusals.values()) / submit_s, 1),
        "refused_early_by_code": dict(sorted(refusals.items())),
        "checkpoints": end_height - start_height,
        "fork_pairs_sent": sum(fork_answers.values()) // 2,
        "fork_halves_by_answer": dict(sorted(fork_answers.items())),
        "latency_ms": {
            "p50": _percentile(latencies, 50),
            "p90": _percentile(latencies, 90),
            "p99": _percentile(latencies, 99),
            "max": round(latencies[-1] * 1000, 1) if latencies else None,
        },
    }


def _percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return round(sorted_values[index] * 1000, 1)


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far; None where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def verify_cpu_us(count: int = 3000) -> float:
    """CPU time of one plain Ed25519 verification (PyNaCl), whatever else the machine runs."""
    signer = Signer(b"\x02" * 32)
    message = signing_message(bytes(32))
    signature = signer.sign(message)
    started = time.process_time()
    for _ in range(count):
        verify(signer.public_key, message, signature)
    return (time.process_time() - started) / count * 1e6


def run_network_bench(config: NetworkBenchConfig, progress: Progress, workdir: Path | None = None) -> dict[str, Any]:
    senders = [Signer(index.to_bytes(4, "big") * 8) for index in range(1, config.accounts + 1)]
    allocations = tuple(Allocation(s.address, "BLY", config.transactions) for s in senders)
    verify_before = measure_verify_rate()
    with tempfile.TemporaryDirectory(prefix="bilayer-bench-", dir=workdir) as tmp:
        directory = Path(tmp) / "net"
        manifest = localnet.create(
            directory, validators=config.validators, ledger_nodes=config.ledger_nodes, pow_bits=config.pow_bits,
            limits=LimitsConfig(author_rate=0, connection_rate=0), extra_allocations=allocations, wan=config.wan,
        )
        genesis = load_genesis(Path(manifest["genesis"]))
        entries = make_transfers(genesis.chain_id, genesis.root, senders, config.transactions, config.pow_bits,
                                 progress("signing transfers", config.transactions))
        forks = make_forks(genesis.chain_id, genesis.root, config.forks, config.pow_bits)
        try:
            running = localnet.up(directory)
            nodes = manifest["nodes"]
            validator_pids = [n["pid"] for n in running["nodes"] if n["role"] == "validator"]
            cpu_before = [process_cpu_s(pid) for pid in validator_pids]
            targets = [n["api_url"] for n in nodes if n["role"] == "ledger"] or [n["api_url"] for n in nodes]
            watch_url = targets[0]
            results = asyncio.run(_drive(targets, watch_url, entries, config,
                                         progress("finalizing", config.transactions), forks))
            cpu_after = [process_cpu_s(pid) for pid in validator_pids]
        finally:
            localnet.down(directory)
    verify_after = measure_verify_rate()
    verify_rate = statistics.median([verify_before, verify_after])
    cores = os.cpu_count() or 1
    bound = verify_rate * cores / max(1, config.validators)
    results["verify_per_s_per_core"] = round(verify_rate, 1)
    results["verification_bound_tx_per_s"] = round(bound, 1)
    results["ratio_to_bound"] = round(results["finalized_tx_per_s"] / bound, 3) if bound else None
    # the same question in CPU time, which other processes on the machine do not skew: of the CPU a
    # validator spends per finalized entry, how much is the one verification it cannot avoid
    used = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)
            if before is not None and after is not None]
    if used and results["finalized"]:
        per_entry = sum(used) / len(used) / results["finalized"] * 1e6
        one_verify = statistics.median(verify_cpu_us() for _ in range(3))
        results["validator_cpu_us_per_entry"] = round(per_entry, 1)
        results["verify_cpu_us"] = round(one_verify, 1)
        results["verify_share_of_validator_cpu"] = round(one_verify / per_entry, 3)
    return {"config": asdict(config) | {"cores": cores}, "results": results}

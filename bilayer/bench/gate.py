"""The compliance gate's cost: execution throughput with no rules against many active rules.

Runs the real executor in-process over signed-and-stamped transfers (headers only, as the
chain executes them) with an empty rule set and with N interception rules, none of which
matches, in two shapes: thresholds above every amount (the index by asset and amount skips
them: the usual case), and rules that only an identity level tells apart (authors of a
higher level than the rules name: every rule is examined for every transfer, the worst
case). The runs alternate, so drift on a noisy machine spreads evenly.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from .. import codec
from ..execution.executor import execute, genesis_state
from ..execution.governance.actions import carry_out
from ..execution.governance.context import ExecContext
from ..execution.governance.identity import Identities, IdentityRecord
from ..execution.state import State
from ..genesis import Allocation, ChainParams, Genesis, GovernanceParams
from ..keys.signing import Signer
from ..ledger.entry import EntryHeader, build_entry
from ..ledger.operations import SetInterceptionRule, Transfer


@dataclass(frozen=True)
class GateBenchConfig:
    transfers: int = 20_000
    rules: int = 1000
    senders: int = 100
    repeats: int = 3


def _transfers(genesis: Genesis, senders: list[Signer], count: int) -> list[tuple[bytes, EntryHeader]]:
    heads: dict[bytes, bytes] = {}
    recipient = Signer(b"\x02" * 32).public_key
    made = []
    for index in range(count):
        signer = senders[index % len(senders)]
        head = heads.get(signer.public_key, genesis.root)
        entry_id, signed = build_entry(signer, chain_id=genesis.chain_id, seq=index // len(senders), parents=[head],
                                       op=Transfer("BLY", 1, recipient), time_ms=1, pow_bits=0)
        heads[signer.public_key] = entry_id
        made.append((entry_id, codec.decode(signed.header, EntryHeader)))
    return made


def _rate(genesis: Genesis, entries: list[tuple[bytes, EntryHeader]], rules: int, scanned: bool) -> float:
    state: State = genesis_state(genesis)
    context = ExecContext(1, 1, GovernanceParams())
    if scanned:
        for author in {header.author for _, header in entries}:
            Identities(state).attest(author, IdentityRecord(b"\x01" * 16, 2, 2**62, b"", b""))
    for number in range(1, rules + 1):
        if scanned:
            rule = SetInterceptionRule(rule_id=f"r{number}", max_identity_level=1)
        else:
            rule = SetInterceptionRule(rule_id=f"r{number}", min_amount=10**12)
        carry_out(context, state, number, rule)
    gc.collect()  # the set-up's garbage must not be collected inside the timed run
    started = time.perf_counter()
    results = execute(context, state, entries)
    elapsed = time.perf_counter() - started
    assert all(r.code == "" for r in results), "the bench transfers must all pass the gate"
    return len(entries) / elapsed


def run_gate_bench(config: GateBenchConfig) -> dict[str, Any]:
    senders = [Signer(i.to_bytes(4, "big") * 8) for i in range(1, config.senders + 1)]
    genesis = Genesis("bench-gate", 0, ChainParams(pow_bits=0),
                      allocations=tuple(Allocation(s.address, "BLY", config.transfers) for s in senders))
    entries = _transfers(genesis, senders, config.transfers)
    runs: dict[str, list[float]] = {"empty": [], "indexed": [], "scanned": []}
    for _ in range(config.repeats):
        runs["empty"].append(_rate(genesis, entries, 0, False))
        runs["indexed"].append(_rate(genesis, entries, config.rules, False))
        runs["scanned"].append(_rate(genesis, entries, config.rules, True))
    no_rules, indexed, scanned = (statistics.median(runs[k]) for k in ("empty", "indexed", "scanned"))
    return {
        "config": asdict(config),
        "results": {
            "executed_per_s_no_rules": round(no_rules, 1),
            f"executed_per_s_{config.rules}_rules": round(indexed, 1),
            "ratio": round(indexed / no_rules, 3),
            f"executed_per_s_{config.rules}_rules_all_examined": round(scanned, 1),
            "ratio_all_examined": round(scanned / no_rules, 3),
        },
    }

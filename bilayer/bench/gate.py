"""The compliance gate's cost: execution throughput with no rules against many active rules.

Runs the real executor in-process over signed-and-stamped transfers (headers only, as the
chain executes them), first with an empty rule set, then with N interception rules, each
checked against every transfer (none of them matching, the worst case for the gate).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from .. import codec
from ..execution.executor import execute, genesis_state
from ..execution.governance import ExecContext, _carry_out
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


def _rate(genesis: Genesis, entries: list[tuple[bytes, EntryHeader]], rules: int) -> float:
    state: State = genesis_state(genesis)
    context = ExecContext(1, 1, GovernanceParams())
    for number in range(1, rules + 1):
        rule = SetInterceptionRule(rule_id=f"r{number}", min_amount=10**12, counterparties=())
        _carry_out(context, state, number, rule)
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
    empty = [_rate(genesis, entries, 0) for _ in range(config.repeats)]
    full = [_rate(genesis, entries, config.rules) for _ in range(config.repeats)]
    no_rules, with_rules = statistics.median(empty), statistics.median(full)
    return {
        "config": asdict(config),
        "results": {
            "executed_per_s_no_rules": round(no_rules, 1),
            f"executed_per_s_{config.rules}_rules": round(with_rules, 1),
            "ratio": round(with_rules / no_rules, 3),
        },
    }

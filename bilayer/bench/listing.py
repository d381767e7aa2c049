"""The cost of the compliance and council listings in a large state.

Builds a state of N accounts (a balance and an author chain each, as an account that has
written once holds), a council of five, and a few hundred compliance records (freezes, bans,
providers, identity and interception rules, redactions), then times `GET /v1/compliance`'s
and `GET /v1/gov/council`'s views, which read each power's keeper by prefix. For scale it
also times one pass over the whole state, what the listings cost before they had keepers.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..api.views import compliance_view, council_view
from ..execution.executor import genesis_state
from ..execution.governance.freezes import Freezes
from ..execution.governance.identity import Identities, IdentityRule
from ..execution.governance.redaction import RedactionRecord, Redactions
from ..execution.governance.rules import InterceptionRule, Rules
from ..execution.state import State
from ..genesis import ChainParams, Genesis, GenesisCouncilMember

LIST_LIMIT = 1000  # the API's page size


@dataclass(frozen=True)
class ListingBenchConfig:
    accounts: int = 1_000_000
    records: int = 100  # of each kind: freezes, bans, providers, redactions
    repeats: int = 5


def _state(config: ListingBenchConfig) -> State:
    council = tuple(GenesisCouncilMember(f"c{i}", (b"\xc0" + i.to_bytes(31, "big")).hex(), 1) for i in range(5))
    state = genesis_state(Genesis("bench-listing", 0, ChainParams(), council=council))
    for index in range(config.accounts):
        key = index.to_bytes(32, "big")
        state.set_balance(key, "BLY", 1000 + index)
        state.set_author_head(key, 1, key)
    identities, freezes, rules, redactions = Identities(state), Freezes(state), Rules(state), Redactions(state)
    for index in range(config.records):
        key = (config.accounts + index).to_bytes(32, "big")
        freezes.freeze(key, index + 1)
        identities.ban_key(key, index + 1)
        identities.set_provider(key, index + 1)
        redactions.redact(index.to_bytes(32, "little"), RedactionRecord(index + 1, "court_order", 1, 1))
        rules.put_interception_rule(InterceptionRule(f"r{index}", 10**6, "", (), -1, index + 1))
    identities.set_rule("transfer", IdentityRule(1, 1000, 1))
    state.take_dirty()
    return state


def _median_ms(work: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def run_listing_bench(config: ListingBenchConfig) -> dict[str, Any]:
    started = time.perf_counter()
    state = _state(config)
    built_s = time.perf_counter() - started
    view = compliance_view(state, 1, LIST_LIMIT)
    assert len(view["frozen_accounts"]) == config.records and len(council_view(state, {})) == 5
    compliance_ms = _median_ms(lambda: compliance_view(state, 1, LIST_LIMIT), config.repeats)
    council_ms = _median_ms(lambda: council_view(state, {}), config.repeats)
    scan_ms = _median_ms(lambda: sum(1 for _ in state.items()), config.repeats)
    return {
        "config": asdict(config),
        "results": {
            "state_keys": len(state),
            "build_s": round(built_s, 1),
            "compliance_ms": round(compliance_ms, 2),
            "council_ms": round(council_ms, 3),
            "whole_state_pass_ms": round(scan_ms, 1),
        },
    }

"""Fund tracing over the audit index, first in, first out.

**Method (FIFO).** Coins leave an account in the order they arrived. Number the units of
one asset an account ever received 0, 1, 2, ... in order of arrival (its coin coordinate);
the k-th unit it sends is then its k-th unit received. A tainted receipt is spent only after
everything the account held before it, and a partial spend carries the oldest coins first.
Each flow in the index knows where it sits in its sender's outgoing coordinate
(`out_start`) and its recipient's incoming one (`in_start`), so following coins is interval
arithmetic: the coins [lo, hi) of an account leave in the flows whose outgoing interval
overlaps [lo, hi), and arrive at each recipient at the same offsets inside that flow's
incoming interval. Backward, the coins an account sent came in with the flows whose
incoming interval overlaps the same coordinates. One index range scan per interval; no
history is replayed. Coins are never double counted: distinct coins follow distinct paths.

**Starts.** An entry id: the funds that transfer (or release, refund, recovery) moved, as
hop 1. An address: forward, every coin it ever sent; backward, every coin it ever
received; hop 1 is then each of its own flows.

**Bounds**, so that no trace explodes on a hub: at most `max_edges` edges and `max_nodes`
nodes, at most `max_rows` flows read from the index, and no traced amount below `dust`
(default: a millionth of the amount the trace starts from, at least 1) is followed. A
trace that hit a bound says `truncated: true`. Coins in escrow (a transfer held for review
and not yet decided) are not followed until the hold is released or refunded.
"""

from __future__ import annotations

import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotFound, TraceAssetInvalid, TraceDirectionInvalid, TraceHopsInvalid, TraceStartInvalid
from ..keys.address import address_from_public_key, public_key_from_address
from .index import GENESIS_ACCOUNT, GENESIS_ID, account_id, account_keys, indexed_height

METHOD = "fifo"
DIRECTIONS = ("forward", "backward")
MAX_HOPS = 10
GENESIS_LABEL = "genesis"
_ASSET = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")
_ENTRY_ID = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True, slots=True)
class TraceLimits:
    max_edges: int = 2000
    max_nodes: int = 1000
    max_rows: int = 50_000
    dust: int = 0  # 0: a millionth of the starting amount, at least 1


DEFAULT_LIMITS = TraceLimits()


@dataclass(frozen=True, slots=True)
class TraceRequest:
    start: str
    direction: str = "forward"
    hops: int = 3
    asset: str | None = None
    limits: TraceLimits = field(default_factory=TraceLimits)


@dataclass(frozen=True, slots=True)
class TraceEdge:
    flow: int
    entry: bytes
    kind: str
    source: bytes
    target: bytes
    asset: str
    amount: int
    traced: int
    height: int
    position: int
    time_ms: int
    hop: int


@dataclass(frozen=True, slots=True)
class TraceNode:
    account: bytes
    asset: str
    depth: int
    traced: int


@dataclass(frozen=True, slots=True)
class Trace:
    request: TraceRequest
    height: int
    dust: int
    nodes: tuple[TraceNode, ...]
    edges: tuple[TraceEdge, ...]
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.request.start,
            "direction": self.request.direction,
            "hops": self.request.hops,
            "asset": self.request.asset,
            "method": METHOD,
            "height": self.height,
            "dust": self.dust,
            "nodes": [{"id": account_label(n.account), "depth": n.depth, "traced": n.traced, "asset": n.asset}
                      for n in self.nodes],
            "edges": [{"entry": e.entry.hex(), "kind": e.kind, "from": account_label(e.source),
                       "to": account_label(e.target), "asset": e.asset, "amount": e.amount, "traced": e.traced,
                       "height": e.height, "time_ms": e.time_ms, "hop": e.hop} for e in self.edges],
            "truncated": self.truncated,
        }


def account_label(account: bytes) -> str:
    return GENESIS_LABEL if account == GENESIS_ACCOUNT else address_from_public_key(account)


def check_request(start: str, direction: str, hops: int, asset: str | None) -> None:
    """Refuse a bad request before touching the index, each with its own code."""
    if direction not in DIRECTIONS:
        raise TraceDirectionInvalid(f"direction is 'forward' or 'backward', not {direction!r}")
    if not 1 <= hops <= MAX_HOPS:
        raise TraceHopsInvalid(f"hops is between 1 and {MAX_HOPS}")
    if asset is not None and not _ASSET.fullmatch(asset):
        raise TraceAssetInvalid(f"{asset!r} is not an asset name (1-16 of A-Z and 0-9, starting with a letter)")
    _parse_start(start)


def _parse_start(start: str) -> tuple[str, bytes]:
    if _ENTRY_ID.fullmatch(start):
        return "entry", bytes.fromhex(start)
    try:
        return "account", public_key_from_address(start)
    except Exception:
        raise TraceStartInvalid(f"start is an address (bl1...) or a 64-hex entry id; {start[:80]!r} is neither") \
            from None


_FLOW_COLUMNS = "flow, entry_id, kind, source, target, asset, amount, out_start, in_start, height, position, time_ms"

# The flows whose coin interval on the sending (receiving) side overlaps [lo, hi): from the
# one that contains lo, in coordinate order; the intervals of one account tile [0, total).
_OUTFLOWS = (
    f"SELECT {_FLOW_COLUMNS} FROM audit_flows WHERE source = ?1 AND asset = ?2 AND out_start IS NOT NULL"
    " AND out_start >= coalesce((SELECT max(out_start) FROM audit_flows WHERE source = ?1 AND asset = ?2"
    " AND out_start IS NOT NULL AND out_start <= ?3), 0) AND out_start < ?4 ORDER BY out_start LIMIT ?5"
)
_INFLOWS = (
    f"SELECT {_FLOW_COLUMNS} FROM audit_flows WHERE target = ?1 AND asset = ?2 AND in_start IS NOT NULL"
    " AND in_start >= coalesce((SELECT max(in_start) FROM audit_flows WHERE target = ?1 AND asset = ?2"
    " AND in_start IS NOT NULL AND in_start <= ?3), 0) AND in_start < ?4 ORDER BY in_start LIMIT ?5"
)


@dataclass(slots=True)
class _Flow:
    flow: int
    entry: bytes
    kind: str
    source: int
    target: int
    asset: str
    amount: int
    out_start: int | None
    in_start: int | None
    height: int
    position: int
    time_ms: int

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> _Flow:
        return cls(int(row[0]), bytes(row[1]), str(row[2]), int(row[3]), int(row[4]), str(row[5]), int(row[6]),
                   row[7], row[8], int(row[9] or 0), int(row[10] or 0), int(row[11] or 0))


def _merged(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


Frontier = dict[tuple[int, str], list[tuple[int, int]]]  # (account id, asset) -> coin intervals


class _Tracer:
    """Works on account ids; keys are looked up once, for the answer."""

    def __init__(self, conn: sqlite3.Connection, request: TraceRequest) -> None:
        self.conn = conn
        self.request = request
        self.forward = request.direction == "forward"
        self.limits = request.limits
        self.edges: dict[int, tuple[_Flow, list[int]]] = {}  # flow -> (flow, [traced, hop])
        self.nodes: dict[tuple[int, str], list[int]] = {}  # (account, asset) -> [depth, traced]
        self.rows_read = 0
        self.truncated = False
        self.dust = max(1, request.limits.dust)

    def node(self, account: int, asset: str, depth: int, traced: int) -> bool:
        known = self.nodes.get((account, asset))
        if known is None:
            if len(self.nodes) >= self.limits.max_nodes:
                self.truncated = True
                return False
            self.nodes[(account, asset)] = [depth, traced]
        else:
            known[0], known[1] = min(known[0], depth), known[1] + traced
        return True

    def edge(self, flow: _Flow, traced: int, hop: int) -> bool:
        """Record `traced` coins crossing `flow` at `hop` and the node they reach; False at a bound."""
        reached = flow.target if self.forward else flow.source
        known = self.edges.get(flow.flow)
        if known is None and len(self.edges) >= self.limits.max_edges:
            self.truncated = True
            return False
        if not self.node(reached, flow.asset, hop, traced):
            return False
        if known is None:
            self.edges[flow.flow] = (flow, [traced, hop])
        else:
            known[1][0], known[1][1] = known[1][0] + traced, min(known[1][1], hop)
        return True

    def follow(self, frontier: Frontier, hop: int) -> Frontier:
        """One hop: the flows that carry the frontier's coins on, and where those coins land."""
        following: Frontier = defaultdict(list)
        query = _OUTFLOWS if self.forward else _INFLOWS
        for (account, asset) in sorted(frontier):
            for lo, hi in _merged(frontier[(account, asset)]):
                budget = self.limits.max_rows - self.rows_read
                if budget <= 0:
                    self.truncated = True
                    return following
                rows = self.conn.execute(query, (account, asset, lo, hi, budget)).fetchall()
                self.rows_read += len(rows)
                if len(rows) == budget:
                    self.truncated = True
                for row in rows:
                    flow = _Flow.of(row)
                    near = flow.out_start if self.forward else flow.in_start
                    far = flow.in_start if self.forward else flow.out_start
                    assert near is not None
                    start, end = max(lo, near), min(hi, near + flow.amount)
                    traced = end - start
                    if traced <= 0 or traced < self.dust:
                        continue
                    if self.forward and far is None:
                        continue  # in escrow: followed once released or refunded
                    if not self.edge(flow, traced, hop):
                        return following
                    if far is not None:
                        reached = flow.target if self.forward else flow.source
                        following[(reached, asset)].append((far + start - near, far + end - near))
        return following

    def start_from_entry(self, entry_id: bytes) -> Frontier:
        rows = self.conn.execute(f"SELECT {_FLOW_COLUMNS} FROM audit_flows WHERE entry_id = ? ORDER BY flow",
                                 (entry_id,)).fetchall()
        flows = [f for f in map(_Flow.of, rows) if f.in_start is not None]
        if not flows:
            if rows:
                raise TraceStartInvalid(f"entry {entry_id.hex()} is held for review: its funds have not moved yet")
            known = self.conn.execute("SELECT kind, outcome FROM results WHERE entry_id = ?", (entry_id,)).fetchone()
            if known is None:
                raise NotFound(f"entry {entry_id.hex()} is not ordered (unknown, or not final yet)")
            raise TraceStartInvalid(f"entry {entry_id.hex()} ({known[0]}, {known[1]}) moved no funds; a trace starts"
                                    " at an entry that did")
        if self.request.asset is not None:
            flows = [f for f in flows if f.asset == self.request.asset]
        if self.request.limits.dust == 0:
            self.dust = max(1, sum(f.amount for f in flows) // 1_000_000)
        frontier: Frontier = defaultdict(list)
        for flow in flows:
            origin = flow.source if self.forward else flow.target
            self.node(origin, flow.asset, 0, flow.amount)
            if not self.edge(flow, flow.amount, 1):
                break
            if self.forward:
                assert flow.in_start is not None
                frontier[(flow.target, flow.asset)].append((flow.in_start, flow.in_start + flow.amount))
            elif flow.out_start is not None:
                frontier[(flow.source, flow.asset)].append((flow.out_start, flow.out_start + flow.amount))
        return frontier

    def start_from_account(self, key: bytes) -> Frontier:
        account = account_id(self.conn, key)
        if account is None:
            return {}
        rows = self.conn.execute("SELECT asset, total_in, total_out FROM audit_totals WHERE account = ? ORDER BY asset",
                                 (account,)).fetchall()
        if self.request.asset is not None:
            rows = [r for r in rows if r[0] == self.request.asset]
        frontier: Frontier = {}
        for asset, total_in, total_out in rows:
            moved = int(total_out if self.forward else total_in)
            if moved:
                frontier[(account, str(asset))] = [(0, int(total_in))]
                self.node(account, str(asset), 0, 0)
        if self.request.limits.dust == 0:
            self.dust = max(1, max((int(r[2] if self.forward else r[1]) for r in rows), default=0) // 1_000_000)
        return frontier

    def run(self) -> Trace:
        kind, key = _parse_start(self.request.start)
        height = indexed_height(self.conn)
        if height is None:
            raise NotFound("the audit index is being rebuilt; try again shortly")
        if kind == "entry":
            frontier, first_hop = self.start_from_entry(key), 2
        else:
            frontier, first_hop = self.start_from_account(key), 1
        for hop in range(first_hop, self.request.hops + 1):
            if not frontier or self.truncated:
                break
            frontier = self.follow(frontier, hop)
        if kind == "account":  # the start holds what left it (forward) or reached it (backward) at hop 1
            for (_, asset), figures in self.nodes.items():
                if figures[0] == 0:
                    figures[1] = sum(t[0] for f, t in self.edges.values() if t[1] == 1 and f.asset == asset)
        ids = {a for a, _ in self.nodes} | {a for f, _ in self.edges.values() for a in (f.source, f.target)}
        keys = account_keys(self.conn, ids)
        keys[GENESIS_ID] = GENESIS_ACCOUNT
        nodes = sorted((TraceNode(keys[a], asset, depth, traced) for (a, asset), (depth, traced) in self.nodes.items()),
                       key=lambda n: (n.depth, -n.traced, n.account, n.asset))
        edges = sorted((TraceEdge(f.flow, f.entry, f.kind, keys[f.source], keys[f.target], f.asset, f.amount, traced,
                                  f.height, f.position, f.time_ms, hop) for f, (traced, hop) in self.edges.values()),
                       key=lambda e: (e.hop, e.height, e.position, e.flow))
        return Trace(self.request, height, self.dust, tuple(nodes), tuple(edges), self.truncated)


def trace(conn: sqlite3.Connection, request: TraceRequest) -> Trace:
    """Follow funds from `request.start` through the index, FIFO, within the request's bounds."""
    check_request(request.start, request.direction, request.hops, request.asset)
    return _Tracer(conn, request).run()

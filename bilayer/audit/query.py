"""Questions to the audit index: which ordered entries match a filter, newest first, in pages."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import AuditFilterInvalid, NotFound
from ..keys.address import address_from_public_key, public_key_from_address
from ..ledger.operations import operation_kinds
from .index import account_id, account_keys, indexed_height

OUTCOMES = ("FINAL", "REJECTED", "HELD")
MAX_PAGE = 1000
_ASSET = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")
_CODE = re.compile(r"^[a-z0-9_]{1,64}$")
_CURSOR = re.compile(r"^(\d{1,18})(?::(-?\d{1,9}))?$")


@dataclass(frozen=True, slots=True)
class EntryQuery:
    author: bytes | None = None
    counterparty: bytes | None = None
    asset: str | None = None
    kind: str | None = None
    outcome: str | None = None
    code: str | None = None
    from_height: int | None = None
    to_height: int | None = None
    from_time: int | None = None
    to_time: int | None = None
    limit: int = 100
    before: tuple[int, int] | None = None  # (height, position): only entries ordered before it


def _account(name: str, text: str) -> bytes:
    try:
        return public_key_from_address(text)
    except Exception:
        raise AuditFilterInvalid(f"{name} is an address (bl1...); {text[:80]!r} is not one") from None


def _integer(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise AuditFilterInvalid(f"{name} is an integer") from None
    if not low <= value <= high:
        raise AuditFilterInvalid(f"{name} is between {low} and {high}")
    return value


def parse_entry_query(params: Mapping[str, str]) -> EntryQuery:
    """Filters from query-string parameters; every bad one is refused with `audit_filter_invalid`."""
    known = {"author", "counterparty", "asset", "kind", "outcome", "code", "from_height", "to_height", "from_time",
             "to_time", "limit", "before"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise AuditFilterInvalid(f"unknown filter {unknown[0]!r}; filters are {', '.join(sorted(known))}")
    get = params.get
    asset, kind, outcome, code = get("asset"), get("kind"), get("outcome"), get("code")
    if asset is not None and not _ASSET.fullmatch(asset):
        raise AuditFilterInvalid(f"asset {asset[:40]!r} is not an asset name")
    if kind is not None and kind not in operation_kinds():
        raise AuditFilterInvalid(f"kind is one of {', '.join(operation_kinds())}")
    if outcome is not None and outcome not in OUTCOMES:
        raise AuditFilterInvalid(f"outcome is one of {', '.join(OUTCOMES)}")
    if code is not None and not _CODE.fullmatch(code):
        raise AuditFilterInvalid("code is a reason code such as insufficient_funds")
    before = None
    if (text := get("before")) is not None:
        match = _CURSOR.fullmatch(text)
        if match is None:
            raise AuditFilterInvalid("before is a height, or HEIGHT:POSITION as returned in `next`")
        before = (int(match.group(1)), int(match.group(2)) if match.group(2) is not None else -2)
    bound = 2**62

    def number(name: str) -> int | None:
        value = get(name)
        return None if value is None else _integer(name, value, 0, bound)

    return EntryQuery(
        author=_account("author", a) if (a := get("author")) is not None else None,
        counterparty=_account("counterparty", c) if (c := get("counterparty")) is not None else None,
        asset=asset, kind=kind, outcome=outcome, code=code,
        from_height=number("from_height"), to_height=number("to_height"),
        from_time=number("from_time"), to_time=number("to_time"),
        limit=_integer("limit", get("limit") or "100", 1, MAX_PAGE), before=before,
    )


_COLUMNS = ("e.height, e.position, e.entry_id, e.author, e.kind, e.asset, e.amount, e.outcome, e.code, e.cause,"
            " e.time_ms")


def query_entries(conn: sqlite3.Connection, query: EntryQuery) -> dict[str, Any]:
    """Matching entries, newest first, and the cursor of the next page (None on the last)."""
    height = indexed_height(conn)
    if height is None:
        raise NotFound("the audit index is being rebuilt; try again shortly")
    where: list[str] = []
    args: list[Any] = []
    author: int | None = None
    counterparty: int | None = None
    for named, name in ((query.author, "author"), (query.counterparty, "counterparty")):
        if named is not None:
            number = account_id(conn, named)
            if number is None:  # never seen: nothing matches
                return {"height": height, "entries": [], "next": None}
            author, counterparty = (number, counterparty) if name == "author" else (author, number)
    if counterparty is not None:
        source = "audit_parties p JOIN audit_entries e ON e.height = p.height AND e.position = p.position"
        where.append("p.account = ?")
        args.append(counterparty)
        order = "p.height DESC, p.position DESC"
        key = "p"
    else:
        source, order, key = "audit_entries e", "e.height DESC, e.position DESC", "e"
    filters: tuple[tuple[str, int | str | None], ...] = (
        ("author", author), ("asset", query.asset), ("kind", query.kind), ("outcome", query.outcome),
        ("code", query.code))
    for column, value in filters:
        if value is not None:
            where.append(f"e.{column} = ?")
            args.append(value)
    bounds: tuple[tuple[str, int | None], ...] = (
        (f"{key}.height >= ?", query.from_height), (f"{key}.height <= ?", query.to_height),
        ("e.time_ms >= ?", query.from_time), ("e.time_ms <= ?", query.to_time),
    )
    for clause, bound in bounds:
        if bound is not None:
            where.append(clause)
            args.append(bound)
    if query.before is not None:
        where.append(f"({key}.height, {key}.position) < (?, ?)")
        args.extend(query.before)
    sql = f"SELECT {_COLUMNS} FROM {source}" + (" WHERE " + " AND ".join(where) if where else "")
    rows = conn.execute(f"{sql} ORDER BY {order} LIMIT ?", (*args, query.limit)).fetchall()
    parties = {(row[0], row[1]): [int(p[0]) for p in conn.execute(
        "SELECT account FROM audit_parties WHERE height = ? AND position = ?", (row[0], row[1]))] for row in rows}
    keys = account_keys(conn, {int(r[3]) for r in rows} | {a for named in parties.values() for a in named})
    entries = []
    for row in rows:
        counterparties = sorted(address_from_public_key(keys[a]) for a in parties[(row[0], row[1])])
        entries.append({
            "id": bytes(row[2]).hex(), "height": row[0], "position": row[1], "time_ms": row[10],
            "author": address_from_public_key(keys[int(row[3])]), "kind": row[4], "counterparties": counterparties,
            "asset": row[5], "amount": row[6], "outcome": row[7], "reason": row[8] or None, "cause": row[9] or None,
        })
    last = rows[-1] if len(rows) == query.limit else None
    return {"height": height, "entries": entries, "next": None if last is None else f"{last[0]}:{last[1]}"}

"""The audit index: every ordered entry by party, asset, kind and outcome, and every movement of funds.

It lives in the node's SQLite file beside the chain. A node writes each checkpoint's part
just after that checkpoint commits, in its own transaction (`node.chain.AuditIndexer`, fed by
the node's "audit index" subscriber), so it is never ahead of the chain and at most a few
checkpoints behind it; `maintain` inside the commit is the simpler form tools and tests use. It holds
nothing the chain does not: drop its tables and the next start rebuilds them from the
stored checkpoints, entries and results (`rebuild`).

Funds move (table `audit_flows`) when:

* genesis allocates them (`genesis`: from the pseudo-account `genesis`, height 0);
* a transfer is FINAL (`transfer`; a transfer to oneself moves nothing and is not a flow);
* a transfer is HELD: the sender's coins leave at once, into escrow, so the row gets its
  debit now and its credit later. A regulator's release credits the recipient at the
  height and position of the `reg.review` entry (`release`); a rejection, or the review
  deadline passing (at position -1, the start of that checkpoint, as the executor does it),
  credits the sender again (`refund`: a flow from the sender to itself). Until then the
  row has no credit and tracing does not follow it;
* a `recover_assets` proposal executes: the lost key's whole balance of each asset moves to
  the new address (`recovery`, under the `gov.execute` entry).

Every flow carries coin coordinates for first-in-first-out attribution: `out_start` is how
much of that asset the sender had sent before it, `in_start` how much the recipient had
received before it. Coin k of an account is the k-th unit it received and the k-th it
sends, so tracing is interval arithmetic over two B-tree indexes (see `audit/trace.py`).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import codec
from ..errors import BilayerError
from ..execution.governance.council import Council
from ..execution.governance.review import ReviewQueue
from ..execution.state import State
from ..genesis import Genesis
from ..keys.address import public_key_from_address
from ..ledger.entry import EntryHeader
from ..ledger.operations import (
    GovAction,
    GovExecute,
    GovPropose,
    IdAttest,
    Operation,
    RecoverAssets,
    RegFreeze,
    RegIntercept,
    RegReview,
    SetInterceptionRule,
    Transfer,
    decode_operation,
)

if TYPE_CHECKING:
    from ..replica.chain import Applied

log = logging.getLogger("bilayer.audit")

INDEX_HEIGHT_KEY = "audit_index_height"
INDEX_VERSION = 2
INDEX_VERSION_KEY = "audit_index_version"
GENESIS_ACCOUNT = b""  # the source of genesis allocations
GENESIS_ID = 0
TABLES = ("audit_accounts", "audit_entries", "audit_parties", "audit_flows", "audit_totals")

# Accounts are numbered (`audit_accounts`) so that every other table and index holds a small
# integer where it would hold a 32-byte key: half the size, and faster B-trees.
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_accounts (id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS audit_entries (
    height INTEGER NOT NULL,
    position INTEGER NOT NULL,
    entry_id BLOB NOT NULL,
    author INTEGER NOT NULL,
    kind TEXT NOT NULL,
    asset TEXT,
    amount INTEGER,
    outcome TEXT NOT NULL,
    code TEXT NOT NULL,
    cause TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    PRIMARY KEY (height, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_entries_author ON audit_entries (author, height, position);
CREATE INDEX IF NOT EXISTS audit_entries_kind ON audit_entries (kind, height, position);
CREATE INDEX IF NOT EXISTS audit_entries_asset ON audit_entries (asset, height, position) WHERE asset IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_entries_code ON audit_entries (code, height, position) WHERE code != '';
CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries (time_ms);
CREATE TABLE IF NOT EXISTS audit_parties (
    account INTEGER NOT NULL,
    height INTEGER NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (account, height, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_parties_at ON audit_parties (height, position);
CREATE TABLE IF NOT EXISTS audit_flows (
    flow INTEGER PRIMARY KEY,
    entry_id BLOB NOT NULL,
    kind TEXT NOT NULL,
    source INTEGER NOT NULL,
    target INTEGER NOT NULL,
    asset TEXT NOT NULL,
    amount INTEGER NOT NULL,
    out_start INTEGER,
    in_start INTEGER,
    height INTEGER,
    position INTEGER,
    time_ms INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS audit_flows_out ON audit_flows (source, asset, out_start)
    WHERE out_start IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS audit_flows_in ON audit_flows (target, asset, in_start) WHERE in_start IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_flows_entry ON audit_flows (entry_id);
CREATE INDEX IF NOT EXISTS audit_flows_held ON audit_flows (entry_id) WHERE kind = 'held';
CREATE TABLE IF NOT EXISTS audit_totals (
    account INTEGER NOT NULL,
    asset TEXT NOT NULL,
    total_in INTEGER NOT NULL,
    total_out INTEGER NOT NULL,
    PRIMARY KEY (account, asset)
) WITHOUT ROWID;
INSERT OR IGNORE INTO audit_accounts (id, key) VALUES (0, x'')
"""


class IndexDamaged(BilayerError):
    """The audit index disagrees with the chain (a flow the index cannot place); rebuild it."""

    code = "audit_index_damaged"


@dataclass(frozen=True, slots=True)
class OrderedEntry:
    """One executed entry of a checkpoint, as the index needs it."""

    entry_id: bytes
    header: EntryHeader
    outcome: str
    code: str
    cause: str


@dataclass(frozen=True, slots=True)
class CheckpointEntries:
    height: int
    time_ms: int
    entries: Sequence[OrderedEntry]


def checkpoint_entries(applied: Applied) -> CheckpointEntries:
    """What the index takes of one executed checkpoint: its entries in execution order."""
    checkpoint = applied.checkpoint
    return CheckpointEntries(checkpoint.height, checkpoint.time_ms,
                             [OrderedEntry(r.entry_id, header, str(r.outcome), r.code, r.cause)
                              for r, header in zip(applied.results, applied.headers, strict=True)])


def create_tables(conn: sqlite3.Connection) -> None:
    """Statement by statement: `executescript` would commit the caller's transaction."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def tables_present(conn: sqlite3.Connection) -> bool:
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return all(table in names for table in TABLES)


def indexed_height(conn: sqlite3.Connection) -> int | None:
    """The last checkpoint the index holds (0: genesis only); None when there is no usable index."""
    if not tables_present(conn):
        return None
    rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", (INDEX_HEIGHT_KEY, INDEX_VERSION_KEY)))
    if INDEX_HEIGHT_KEY not in rows or rows.get(INDEX_VERSION_KEY) != codec.encode(INDEX_VERSION):
        return None
    return int(codec.decode(bytes(rows[INDEX_HEIGHT_KEY]), int))


def _set_indexed_height(conn: sqlite3.Connection, height: int) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                     [(INDEX_HEIGHT_KEY, codec.encode(height)), (INDEX_VERSION_KEY, codec.encode(INDEX_VERSION))])


def account_id(conn: sqlite3.Connection, key: bytes) -> int | None:
    row = conn.execute("SELECT id FROM audit_accounts WHERE key = ?", (key,)).fetchone()
    return None if row is None else int(row[0])


def account_keys(conn: sqlite3.Connection, ids: set[int]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    ordered = sorted(ids)
    for offset in range(0, len(ordered), 500):
        chunk = ordered[offset:offset + 500]
        rows = conn.execute(f"SELECT id, key FROM audit_accounts WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        found.update((int(i), bytes(k)) for i, k in rows)
    return found


class _Flows:
    """Writes one checkpoint's flows with their coin coordinates. Totals and new flows are
    gathered in memory and written once at `flush` (a transfer costs a few dict operations,
    not a few statements); a held transfer is written at once, as its release may follow in
    the same checkpoint."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.ids: dict[bytes, int] = {GENESIS_ACCOUNT: GENESIS_ID}
        self.totals: dict[tuple[int, str], list[int]] = {}  # [received, sent]
        self.rows: list[tuple[Any, ...]] = []

    def account(self, key: bytes) -> int:
        known = self.ids.get(key)
        if known is None:
            found = account_id(self.conn, key)
            if found is None:
                cursor = self.conn.execute("INSERT INTO audit_accounts (key) VALUES (?)", (key,))
                assert cursor.lastrowid is not None
                found = int(cursor.lastrowid)
            self.ids[key] = known = found
        return known

    def prefetch(self, keys: set[bytes], pairs: set[tuple[bytes, str]]) -> None:
        """Look up a checkpoint's accounts and totals in a few statements rather than one each."""
        wanted = sorted(k for k in keys if k not in self.ids)
        for offset in range(0, len(wanted), 500):
            chunk = wanted[offset:offset + 500]
            rows = self.conn.execute(
                f"SELECT key, id FROM audit_accounts WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            self.ids.update((bytes(k), int(i)) for k, i in rows)
        by_asset: dict[str, list[int]] = {}
        for key, asset in pairs:
            known = self.ids.get(key)
            if known is not None and (known, asset) not in self.totals:
                by_asset.setdefault(asset, []).append(known)
        for asset, accounts in by_asset.items():
            for offset in range(0, len(accounts), 500):
                numbers = accounts[offset:offset + 500]
                for number in numbers:
                    self.totals[(number, asset)] = [0, 0]
                found = self.conn.execute(
                    f"SELECT account, total_in, total_out FROM audit_totals WHERE asset = ? AND account IN"
                    f" ({','.join('?' * len(numbers))})", (asset, *numbers))
                for account, received, sent in found:
                    self.totals[(int(account), asset)] = [int(received), int(sent)]

    def _totals(self, account: int, asset: str) -> list[int]:
        totals = self.totals.get((account, asset))
        if totals is None:
            row = self.conn.execute("SELECT total_in, total_out FROM audit_totals WHERE account = ? AND asset = ?",
                                    (account, asset)).fetchone()
            totals = [0, 0] if row is None else [int(row[0]), int(row[1])]
            self.totals[(account, asset)] = totals
        return totals

    def _send(self, account: int, asset: str, amount: int) -> int:
        """Count coins leaving `account`; return where they start in its coin coordinate."""
        totals = self._totals(account, asset)
        totals[1] += amount
        return totals[1] - amount

    def _receive(self, account: int, asset: str, amount: int) -> int:
        totals = self._totals(account, asset)
        totals[0] += amount
        return totals[0] - amount

    def balance(self, key: bytes, asset: str) -> int:
        received, sent = self._totals(self.account(key), asset)
        return received - sent

    def move(self, entry_id: bytes, kind: str, source_key: bytes, target_key: bytes, asset: str, amount: int,
             height: int, position: int, time_ms: int) -> None:
        source, target = self.account(source_key), self.account(target_key)
        out_start = None if source == GENESIS_ID else self._send(source, asset, amount)
        in_start = self._receive(target, asset, amount)
        self.rows.append((entry_id, kind, source, target, asset, amount, out_start, in_start, height, position,
                          time_ms))

    def _write_rows(self) -> None:
        self.conn.executemany(
            "INSERT INTO audit_flows (entry_id, kind, source, target, asset, amount, out_start, in_start, height,"
            " position, time_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?)", self.rows)
        self.rows = []

    def hold(self, entry_id: bytes, source_key: bytes, target_key: bytes, asset: str, amount: int) -> None:
        source, target = self.account(source_key), self.account(target_key)
        out_start = self._send(source, asset, amount)
        self._write_rows()  # flows keep the order they happened in
        self.conn.execute(
            "INSERT INTO audit_flows (entry_id, kind, source, target, asset, amount, out_start) VALUES"
            " (?, 'held', ?, ?, ?, ?, ?)", (entry_id, source, target, asset, amount, out_start),
        )

    def pending_holds(self) -> list[bytes]:
        return [bytes(r[0]) for r in self.conn.execute("SELECT entry_id FROM audit_flows WHERE kind = 'held'")]

    def close_hold(self, entry_id: bytes, released: bool, height: int, position: int, time_ms: int) -> None:
        """Credit a held transfer: to its recipient (released) or back to its sender (refunded)."""
        row = self.conn.execute("SELECT flow, source, target, asset, amount FROM audit_flows"
                                " WHERE entry_id = ? AND kind = 'held'", (entry_id,)).fetchone()
        if row is None:
            raise IndexDamaged(f"entry {entry_id.hex()} was decided but the index holds no escrow for it")
        flow, source, target, asset, amount = int(row[0]), int(row[1]), int(row[2]), str(row[3]), int(row[4])
        recipient = target if released else source
        in_start = self._receive(recipient, asset, amount)
        self.conn.execute(
            "UPDATE audit_flows SET kind = ?, target = ?, in_start = ?, height = ?, position = ?, time_ms = ?"
            " WHERE flow = ?",
            ("release" if released else "refund", recipient, in_start, height, position, time_ms, flow),
        )

    def flush(self) -> None:
        self._write_rows()
        self.conn.executemany(
            "INSERT OR REPLACE INTO audit_totals (account, asset, total_in, total_out) VALUES (?, ?, ?, ?)",
            [(account, asset, received, sent) for (account, asset), (received, sent) in self.totals.items()])


def _action_parties(action: GovAction) -> list[bytes]:
    parties = []
    for name in ("account", "key", "lost", "to"):
        value = getattr(action, name, None)
        if isinstance(value, bytes):
            parties.append(value)
    if isinstance(action, SetInterceptionRule):
        parties.extend(action.counterparties)
    return parties


def _parties(op: Operation, state: State) -> list[bytes]:
    """The accounts an operation names besides its author."""
    if isinstance(op, Transfer):
        return [op.to]
    if isinstance(op, GovPropose):
        return _action_parties(op.action)
    if isinstance(op, GovExecute):
        try:
            return _action_parties(Council(state).proposal(op.proposal).action)
        except BilayerError:
            return []
    if isinstance(op, RegFreeze):
        return [op.account]
    if isinstance(op, RegIntercept):
        return list(op.rule.counterparties)
    if isinstance(op, IdAttest):
        return [op.subject]
    if isinstance(op, RegReview):
        record = ReviewQueue(state).held(op.entry)
        return [] if record is None else [record.author, record.to]
    return []


def index_genesis(conn: sqlite3.Connection, genesis: Genesis) -> None:
    """Genesis allocations are the first sources of funds."""
    flows = _Flows(conn)
    root = genesis.root  # a hash of the whole genesis: once, not once per allocation
    for position, allocation in enumerate(genesis.allocations):
        flows.move(root, "genesis", GENESIS_ACCOUNT, public_key_from_address(allocation.address),
                   allocation.asset, allocation.amount, 0, position, genesis.genesis_time_ms)
    flows.flush()
    _set_indexed_height(conn, 0)


def index_checkpoint(conn: sqlite3.Connection, checkpoint: CheckpointEntries, state: State) -> bool:
    """Index one checkpoint inside the caller's transaction, if the index stands at the height
    below it (else leave it behind: the next start catches it up). `state` is the state after
    this checkpoint or any later one: the index reads only records that never change once
    written (proposals' actions, decided holds). Returns whether it indexed."""
    if indexed_height(conn) != checkpoint.height - 1:
        return False
    flows = _Flows(conn)
    height, time_ms = checkpoint.height, checkpoint.time_ms
    for entry_id in flows.pending_holds():  # expired at the start of this checkpoint, before any entry
        record = ReviewQueue(state).held(entry_id)
        if record is not None and record.status == "expired" and record.decided_height == height:
            flows.close_hold(entry_id, False, height, -1, time_ms)
    keys: set[bytes] = set()
    pairs: set[tuple[bytes, str]] = set()
    for item in checkpoint.entries:
        keys.add(item.header.author)
        if item.header.kind == Transfer.KIND and item.outcome in ("FINAL", "HELD"):
            transfer = decode_operation(item.header.kind, item.header.body)
            assert isinstance(transfer, Transfer)
            keys.add(transfer.to)
            pairs.update(((item.header.author, transfer.asset), (transfer.to, transfer.asset)))
    flows.prefetch(keys, pairs)
    entry_rows: list[tuple[Any, ...]] = []
    party_rows: list[tuple[int, int, int]] = []
    for position, item in enumerate(checkpoint.entries):
        header = item.header
        try:
            op: Operation | None = decode_operation(header.kind, header.body)
        except BilayerError:
            op = None  # an unknown kind: ordered and REJECTED, it names nobody
        asset, amount = (op.asset, op.amount) if isinstance(op, Transfer) else (None, None)
        if isinstance(op, Transfer) and item.outcome == "FINAL" and header.author != op.to:
            flows.move(item.entry_id, "transfer", header.author, op.to, op.asset, op.amount, height, position,
                       time_ms)
        elif isinstance(op, Transfer) and item.outcome == "HELD":
            flows.hold(item.entry_id, header.author, op.to, op.asset, op.amount)
        elif isinstance(op, RegReview) and item.outcome == "FINAL":
            flows.close_hold(op.entry, op.decision == "release", height, position, time_ms)
        elif isinstance(op, GovExecute) and item.outcome == "FINAL":
            action = Council(state).proposal(op.proposal).action
            if isinstance(action, RecoverAssets):
                for recovered in action.assets:
                    balance = flows.balance(action.lost, recovered)
                    if balance:
                        flows.move(item.entry_id, "recovery", action.lost, action.to, recovered, balance, height,
                                   position, time_ms)
        entry_rows.append((height, position, item.entry_id, flows.account(header.author), header.kind, asset, amount,
                           item.outcome, item.code, item.cause, time_ms))
        parties = {} if op is None else dict.fromkeys(p for p in _parties(op, state) if p != header.author)
        party_rows.extend((flows.account(party), height, position) for party in parties)
    flows.flush()
    conn.executemany("INSERT INTO audit_entries (height, position, entry_id, author, kind, asset, amount, outcome,"
                     " code, cause, time_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?)", entry_rows)
    conn.executemany("INSERT OR IGNORE INTO audit_parties (account, height, position) VALUES (?, ?, ?)", party_rows)
    _set_indexed_height(conn, height)
    return True


def maintain(conn: sqlite3.Connection, checkpoint: CheckpointEntries, state: State) -> None:
    """Index a checkpoint, inside its commit or in a transaction of its own. The index is
    derived data and must never stop the chain: if indexing fails, its part is undone, the
    index is marked stale (the next start rebuilds it) and the checkpoint still commits."""
    conn.execute("SAVEPOINT audit_index")
    try:
        index_checkpoint(conn, checkpoint, state)
    except Exception:
        conn.execute("ROLLBACK TO audit_index")
        conn.execute("DELETE FROM meta WHERE key = ?", (INDEX_HEIGHT_KEY,))
        log.exception("audit index: indexing height %d failed; it will be rebuilt at the next start",
                      checkpoint.height)
    conn.execute("RELEASE audit_index")


# --- rebuilding from the chain ------------------------------------------------------------------


def _stored_checkpoint(conn: sqlite3.Connection, height: int) -> CheckpointEntries:
    """A checkpoint as the chain stored it: its results in order, their headers, its time."""
    from ..consensus.messages import FinalizedCheckpoint

    row = conn.execute("SELECT finalized FROM checkpoints WHERE height = ?", (height,)).fetchone()
    time_ms = codec.decode(row[0], FinalizedCheckpoint).checkpoint.time_ms
    rows = conn.execute(
        "SELECT r.entry_id, e.header, r.outcome, r.code, r.cause FROM results r JOIN entries e ON e.id = r.entry_id"
        " WHERE r.height = ? ORDER BY r.position", (height,),
    ).fetchall()
    entries = [OrderedEntry(bytes(r[0]), codec.decode(r[1], EntryHeader), r[2], r[3], r[4]) for r in rows]
    return CheckpointEntries(height, time_ms, entries)


def drop_tables(conn: sqlite3.Connection) -> None:
    for table in TABLES:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute("DELETE FROM meta WHERE key IN (?, ?)", (INDEX_HEIGHT_KEY, INDEX_VERSION_KEY))


Progress = Callable[[int, int], None]  # (checkpoints done, checkpoints to do)


def rebuild(conn: sqlite3.Connection, genesis: Genesis, state: State, *, progress: Progress | None = None,
            batch: int = 200) -> tuple[int, int]:
    """Bring the index up to the stored chain: from scratch when it is missing or of another
    version, else from where it stands. `conn` is a writer connection outside any
    transaction; `state` is the stored (latest) state. Commits every `batch` checkpoints, so an
    interrupted rebuild resumes. Returns (first height indexed, last height)."""
    start = indexed_height(conn)
    latest_row = conn.execute("SELECT coalesce(max(height), 0) FROM checkpoints").fetchone()
    latest = int(latest_row[0])
    if start is not None and start > latest:
        start = None  # an index of more than this chain: not ours
    conn.execute("BEGIN")
    try:
        if start is None:
            drop_tables(conn)
            create_tables(conn)
            index_genesis(conn, genesis)
            start = 0
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    total = latest - start
    if progress is not None:
        progress(0, total)
    for first in range(start + 1, latest + 1, batch):
        last = min(latest, first + batch - 1)
        conn.execute("BEGIN")
        try:
            for height in range(first, last + 1):
                index_checkpoint(conn, _stored_checkpoint(conn, height), state)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if progress is not None:
            progress(last - start, total)
    return start + 1, latest


def ensure_current(conn: sqlite3.Connection, genesis: Genesis, state: State) -> None:
    """At node start: rebuild or catch up the index if it is missing or behind, logging progress."""
    latest = int(conn.execute("SELECT coalesce(max(height), 0) FROM checkpoints").fetchone()[0])
    current = indexed_height(conn)
    if current == latest:
        return
    log.info("audit index at %s, chain at %d: rebuilding from the stored chain",
             "nothing" if current is None else f"height {current}", latest)
    started = time.monotonic()
    last_log = [started]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last_log[0] >= 2.0:
            last_log[0] = now
            log.info("audit index: %d of %d checkpoints indexed", done, total)

    first, last = rebuild(conn, genesis, state, progress=report)
    log.info("audit index rebuilt: heights %d..%d in %.1f s", first, last, time.monotonic() - started)


__all__ = ["GENESIS_ACCOUNT", "CheckpointEntries", "IndexDamaged", "OrderedEntry", "create_tables", "drop_tables",
           "ensure_current", "index_checkpoint", "index_genesis", "indexed_height", "maintain", "rebuild"]

"""The node's SQLite store: entries in arrival order, payloads beside them, fork evidence.

Nothing a client or a peer sends can make a write fail: an author may sign two entries at
one sequence number (a fork, and both halves may be needed in the DAG), so (author, seq)
is indexed but not unique; storing an entry twice is a no-op; evidence and tombstones are
idempotent. A write that still fails is a fault of the disk, never of the input.

WAL journal with `synchronous=FULL`: a batch is on disk when its commit returns, and a
client hears "stored" only after that. Payloads live in their own table so a redaction
deletes the bytes and nothing else. One writer connection, used by one task at a time
from a worker thread; one reader connection for the event loop (WAL readers never block
the writer).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import BilayerError
from ..execution.smt import TreeUpdate
from ..ledger.entry import Entry, SignedEntry, Tombstone
from . import state_store

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot_authors (author BLOB PRIMARY KEY, next_seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    seqno INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    header BLOB NOT NULL,
    signature BLOB NOT NULL,
    received_ms INTEGER NOT NULL
);
DROP INDEX IF EXISTS entries_author_seq;
CREATE INDEX IF NOT EXISTS entries_by_author_seq ON entries (author, seq);
CREATE TABLE IF NOT EXISTS payloads (id BLOB PRIMARY KEY, payload BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones (
    id BLOB PRIMARY KEY,
    decision TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    height INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evidence (
    seqno INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    first_header BLOB NOT NULL,
    first_signature BLOB NOT NULL,
    second_header BLOB NOT NULL,
    second_signature BLOB NOT NULL,
    detected_ms INTEGER NOT NULL,
    UNIQUE (kind, author, seq, second_header)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    height INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    finalized BLOB NOT NULL,
    state_root BLOB NOT NULL,
    results_root BLOB NOT NULL,
    entry_count INTEGER NOT NULL,
    applied_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    entry_id BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    position INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    code TEXT NOT NULL,
    cause TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_by_height ON results (height, position);
CREATE INDEX IF NOT EXISTS results_by_cause ON results (cause) WHERE cause != '';
CREATE INDEX IF NOT EXISTS results_by_kind ON results (kind, height);
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS validator_changes (number INTEGER PRIMARY KEY, executed_height INTEGER NOT NULL,
                                              proof BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS consensus_evidence (
    seqno INTEGER PRIMARY KEY,
    validator BLOB NOT NULL,
    height INTEGER NOT NULL,
    round INTEGER NOT NULL,
    kind TEXT NOT NULL,
    first BLOB NOT NULL,
    second BLOB NOT NULL,
    detected_ms INTEGER NOT NULL,
    UNIQUE (validator, height, round, kind, second)
);
"""


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    height: int
    id: bytes
    finalized: bytes
    state_root: bytes
    results_root: bytes
    entry_count: int
    applied_ms: int


@dataclass(frozen=True, slots=True)
class StoredResult:
    entry_id: bytes
    height: int
    position: int
    outcome: str
    code: str
    cause: str = ""
    kind: str = ""


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """`tombstone` is set when the payload was deleted by a decision (then `signed.payload` is empty)."""

    seqno: int
    signed: SignedEntry
    received_ms: int
    tombstone: Tombstone | None = None


_ENTRY_COLUMNS = ("SELECT e.seqno, e.header, e.signature, p.payload, e.received_ms, t.decision, t.reason_code,"
                  " t.time_ms, t.height FROM entries e LEFT JOIN payloads p ON p.id = e.id"
                  " LEFT JOIN tombstones t ON t.id = e.id")


def _stored_entry(row: tuple[Any, ...]) -> StoredEntry:
    tombstone = None if row[5] is None else Tombstone(row[5], row[6], row[7], row[8])
    return StoredEntry(row[0], SignedEntry(row[1], row[2], row[3] if row[3] is not None else b""), row[4], tombstone)


@dataclass(frozen=True, slots=True)
class ForkEvidence:
    seqno: int
    author: bytes
    seq: int
    first: SignedEntry
    second: SignedEntry
    detected_ms: int


CHAIN_FORMAT = 2  # 2: the state root is the sparse Merkle tree's (1: the bucketed RFC 6962 tree)
CHAIN_FORMAT_KEY = "chain_format"
SNAPSHOT_HEIGHT_KEY = "snapshot_height"


class ChainFormatOld(BilayerError):
    """The data directory holds a chain of an earlier format, which this release cannot run."""

    code = "chain_format_old"


class ChainFormatUnknown(BilayerError):
    """The data directory holds a chain of a later format than this release runs."""

    code = "chain_format_unknown"


def recorded_format(path: Path) -> int | None:
    """The chain format of the store at `path`, read without writing anything: None for a new
    (or ledger-only, state-free) store, 1 for a store of the format that recorded none."""
    if not path.exists():
        return None
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (CHAIN_FORMAT_KEY,)).fetchone()
        if row is not None:
            return int(bytes(row[0]).decode())
        for table in ("checkpoints", "state"):
            if table in tables and conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                return 1
        return None


def check_format(path: Path) -> None:
    """Refuse, writing nothing, a store of another chain format than this release's."""
    found = recorded_format(path)
    if found is None or found == CHAIN_FORMAT:
        return
    if found < CHAIN_FORMAT:
        raise ChainFormatOld(
            f"{path} holds a chain of format {found} (its checkpoints sign state roots of the bucketed tree),"
            f" which this release (chain format {CHAIN_FORMAT}) cannot run. Export its state at its last"
            " checkpoint into a new genesis with `bilayer genesis export --data"
            f" {path.parent} --out genesis.json`, and start the network again from that genesis (a new"
            " data directory on every node); keep this directory to read the old history",
            found=found, expected=CHAIN_FORMAT)
    raise ChainFormatUnknown(f"{path} holds a chain of format {found}, newer than this release's"
                             f" ({CHAIN_FORMAT}): run a release that knows it", found=found, expected=CHAIN_FORMAT)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, whatever the build's default
    return conn


def validator_change_proofs(conn: sqlite3.Connection, upto: int) -> list[tuple[int, int, bytes]]:
    """Changes 2..`upto`: (number, executed height, the record's proof in that height's state),
    on any connection (the event loop's, or a serving thread's own)."""
    rows = conn.execute("SELECT number, executed_height, proof FROM validator_changes"
                        " WHERE number <= ? ORDER BY number", (upto,)).fetchall()
    return [(int(n), int(h), bytes(p)) for n, h, p in rows]


def _after_prefix(prefix: bytes) -> bytes | None:
    """The least key after every key starting with `prefix` (None: there is none)."""
    stripped = prefix.rstrip(b"\xff")
    return None if not stripped else stripped[:-1] + bytes([stripped[-1] + 1])


class StateValues:
    """The state's values as the `state` table holds them after the last durable checkpoint:
    the node's `ValueSource` (execution/state.py). A connection of its own, read only, one
    question at a time (execution reads on the event loop, the audit index on its thread);
    a scan reads a page of keys per question, so no scan holds the whole state."""

    PAGE = 512

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.execute("PRAGMA query_only=1")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        end = _after_prefix(prefix)
        bound, inclusive = prefix, True
        while True:
            lower = "key >= ?" if inclusive else "key > ?"
            args: tuple[bytes | int, ...]
            if end is None:
                query, args = f"SELECT key, value FROM state WHERE {lower} ORDER BY key LIMIT ?", (bound, self.PAGE)
            else:
                query = f"SELECT key, value FROM state WHERE {lower} AND key < ? ORDER BY key LIMIT ?"
                args = (bound, end, self.PAGE)
            with self._lock:
                rows = self._conn.execute(query, args).fetchall()
            for key, value in rows:
                yield bytes(key), bytes(value)
            if len(rows) < self.PAGE:
                return
            bound, inclusive = bytes(rows[-1][0]), False

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM state").fetchone()[0])


class Storage:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_format(self.path)
        self._writer = _connect(self.path)
        self._writer.executescript(SCHEMA)
        state_store.create_tables(self._writer)
        self._writer.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                             (CHAIN_FORMAT_KEY, str(CHAIN_FORMAT).encode()))
        self._reader = _connect(self.path)
        self._write_lock = threading.Lock()
        # the state tree as the event loop reads it (the replica's updates, its proofs)
        self.tree = state_store.TreeReader(self._reader)
        # the state's values as execution reads them (through its cache and overlay)
        self.values = StateValues(self.path)

    def close(self) -> None:
        """Waits for a write in flight on a worker thread: closing a connection under a
        running statement crashes the interpreter. A write after this fails cleanly."""
        self.values.close()
        self._reader.close()
        with self._write_lock:
            self._writer.close()

    # --- writes (worker thread) -----------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer connection, alone, in one transaction: committed when the block ends,
        rolled back when it raises."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def store_entries(
        self, entries: Sequence[Entry], received_ms: int, evidence: Sequence[ForkEvidence] = ()
    ) -> None:
        """Commit a batch durably, with the fork evidence found since the last one. An entry
        already stored is left as it is."""
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO entries (id, author, seq, header, signature, received_ms)"
                " VALUES (?,?,?,?,?,?)",
                [(e.id, e.author, e.seq, e.signed.header, e.signed.signature, received_ms) for e in entries],
            )
            conn.executemany(  # a payload deleted by a decision never comes back
                "INSERT OR IGNORE INTO payloads (id, payload) SELECT ?, ? WHERE NOT EXISTS"
                " (SELECT 1 FROM tombstones WHERE id = ?)",
                [(e.id, e.signed.payload, e.id) for e in entries if e.tombstone is None],
            )
            self._insert_evidence(conn, evidence)
            conn.executemany(
                "INSERT OR REPLACE INTO tombstones (id, decision, reason_code, time_ms, height) VALUES (?,?,?,?,?)",
                [(e.id, t.decision, t.reason_code, t.time_ms, t.height) for e in entries
                 if (t := e.tombstone) is not None],
            )

    @staticmethod
    def _insert_evidence(conn: sqlite3.Connection, evidence: Sequence[ForkEvidence]) -> None:
        """One proof per (author, seq) is enough: later pairs for the same fork are not kept."""
        conn.executemany(
            "INSERT INTO evidence (kind, author, seq, first_header, first_signature, second_header,"
            " second_signature, detected_ms) SELECT 'fork', ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS"
            " (SELECT 1 FROM evidence WHERE kind = 'fork' AND author = ? AND seq = ?)",
            [(e.author, e.seq, e.first.header, e.first.signature, e.second.header, e.second.signature,
              e.detected_ms, e.author, e.seq) for e in evidence],
        )

    def store_fork_evidence(self, evidence: Sequence[ForkEvidence]) -> None:
        with self._transaction() as conn:
            self._insert_evidence(conn, evidence)

    # --- reads (event loop) -----------------------------------------------------------

    def count(self) -> int:
        row = self._reader.execute("SELECT count(*) FROM entries").fetchone()
        return int(row[0])

    def get(self, entry_id: bytes) -> StoredEntry | None:
        row = self._reader.execute(_ENTRY_COLUMNS + " WHERE e.id = ?", (entry_id,)).fetchone()
        return None if row is None else _stored_entry(row)

    def get_many(self, entry_ids: Sequence[bytes]) -> list[StoredEntry]:
        """The stored ones among `entry_ids`, in arrival order (parents first), a query per 500."""
        found: list[StoredEntry] = []
        for start in range(0, len(entry_ids), 500):
            chunk = list(entry_ids[start:start + 500])
            rows = self._reader.execute(_ENTRY_COLUMNS + f" WHERE e.id IN ({','.join('?' * len(chunk))})"
                                        " ORDER BY e.seqno", chunk).fetchall()
            found.extend(_stored_entry(r) for r in rows)
        return found

    def headers_in_order(self) -> Iterator[tuple[bytes, bytes]]:
        """(id, header bytes) for every entry in arrival order: parents before children."""
        yield from self._reader.execute("SELECT id, header FROM entries ORDER BY seqno")

    def list_after(self, after_seqno: int, limit: int) -> list[StoredEntry]:
        rows = self._reader.execute(_ENTRY_COLUMNS + " WHERE e.seqno > ? ORDER BY e.seqno LIMIT ?",
                                    (after_seqno, limit)).fetchall()
        return [_stored_entry(r) for r in rows]

    def tombstones(self, after: bytes, limit: int) -> list[tuple[bytes, Tombstone]]:
        rows = self._reader.execute(
            "SELECT id, decision, reason_code, time_ms, height FROM tombstones WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [(bytes(r[0]), Tombstone(r[1], r[2], r[3], r[4])) for r in rows]

    def has_fork_evidence(self, author: bytes, seq: int) -> bool:
        row = self._reader.execute("SELECT 1 FROM evidence WHERE kind = 'fork' AND author = ? AND seq = ?",
                                   (author, seq)).fetchone()
        return row is not None

    def fork_keys(self) -> Iterator[tuple[bytes, int]]:
        for author, seq in self._reader.execute("SELECT author, seq FROM evidence WHERE kind = 'fork'"):
            yield bytes(author), int(seq)

    def recent_fork_evidence(self, limit: int) -> list[ForkEvidence]:
        """The newest fork proofs first: what a peer that lacks some is sent."""
        return self._forks("ORDER BY seqno DESC", limit)

    def fork_evidence(self, limit: int = 1000) -> list[ForkEvidence]:
        return self._forks("ORDER BY seqno", limit)

    def _forks(self, order: str, limit: int) -> list[ForkEvidence]:
        rows = self._reader.execute(
            "SELECT seqno, author, seq, first_header, first_signature, second_header, second_signature, detected_ms"
            f" FROM evidence WHERE kind = 'fork' {order} LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            ForkEvidence(r[0], r[1], r[2], SignedEntry(r[3], r[4], b""), SignedEntry(r[5], r[6], b""), r[7])
            for r in rows
        ]

    # --- finality (layer 2) ---------------------------------------------------------

    def commit_checkpoint(
        self,
        checkpoint: StoredCheckpoint,
        results: Sequence[StoredResult],
        state_changes: Sequence[tuple[bytes, bytes | None]],
        tombstones: Sequence[tuple[bytes, Tombstone]] = (),
        index: Callable[[sqlite3.Connection], None] | None = None,
        tree: Sequence[TreeUpdate] = (),
        validator_proofs: Sequence[tuple[int, int, bytes]] = (),
    ) -> None:
        """Record a finalized checkpoint, its results and the state after it (the changed keys
        and the state tree's version of its height), atomically; delete the payloads its
        decisions remove (redactions, blocked content), leaving tombstones; `index` writes the
        audit index of this checkpoint in the same transaction."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO checkpoints (height, id, finalized, state_root, results_root, entry_count, applied_ms)"
                " VALUES (?,?,?,?,?,?,?)",
                (checkpoint.height, checkpoint.id, checkpoint.finalized, checkpoint.state_root,
                 checkpoint.results_root, checkpoint.entry_count, checkpoint.applied_ms),
            )
            conn.executemany(
                "INSERT INTO results (entry_id, height, position, outcome, code, cause, kind)"
                " VALUES (?,?,?,?,?,?,?)",
                [(r.entry_id, r.height, r.position, r.outcome, r.code, r.cause, r.kind) for r in results],
            )
            conn.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                             [(k, v) for k, v in state_changes if v is not None])
            conn.executemany("DELETE FROM state WHERE key = ?", [(k,) for k, v in state_changes if v is None])
            for update in tree:
                state_store.write_version(conn, update)
            conn.executemany("INSERT INTO validator_changes (number, executed_height, proof) VALUES (?, ?, ?)",
                             validator_proofs)
            conn.executemany("DELETE FROM payloads WHERE id = ?", [(i,) for i, _ in tombstones])
            conn.executemany(
                "INSERT OR REPLACE INTO tombstones (id, decision, reason_code, time_ms, height) VALUES (?,?,?,?,?)",
                [(i, t.decision, t.reason_code, t.time_ms, t.height) for i, t in tombstones],
            )
            if index is not None:
                index(conn)

    def init_state(self, items: Iterable[tuple[bytes, bytes]], tree: TreeUpdate) -> None:
        """Write the genesis state and its tree (version 0), atomically, in a store that holds
        no state yet."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM state")
            conn.executemany("INSERT INTO state (key, value) VALUES (?, ?)", items)
            state_store.write_version(conn, tree)

    def install_snapshot(self, checkpoint: StoredCheckpoint, items: Iterable[tuple[bytes, bytes]],
                         author_heads: Callable[[Iterable[tuple[bytes, bytes]]], Iterable[tuple[bytes, int]]],
                         index: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """Make a restored state tree (already the store's one version, `checkpoint.height`)
        the chain's: its values in the `state` table, `checkpoint` the last applied, and each
        author's next sequence number in that state (`author_heads` of the `A` records, read
        back from the table in key order, a page at a time) kept as the boundary of what the
        chain ordered before it (node/snapshot_join.py); `index` starts the audit index there.
        One transaction."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM state")
            conn.executemany("INSERT INTO state (key, value) VALUES (?, ?)", items)
            conn.execute("DELETE FROM snapshot_authors")
            records = conn.execute("SELECT key, value FROM state WHERE key >= ? AND key < ? ORDER BY key",
                                   (b"A", b"B"))
            while rows := records.fetchmany(1024):
                conn.executemany("INSERT INTO snapshot_authors (author, next_seq) VALUES (?, ?)",
                                 list(author_heads((bytes(k), bytes(v)) for k, v in rows)))
            conn.execute(
                "INSERT INTO checkpoints (height, id, finalized, state_root, results_root, entry_count, applied_ms)"
                " VALUES (?,?,?,?,?,?,?)",
                (checkpoint.height, checkpoint.id, checkpoint.finalized, checkpoint.state_root,
                 checkpoint.results_root, checkpoint.entry_count, checkpoint.applied_ms),
            )
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         (SNAPSHOT_HEIGHT_KEY, str(checkpoint.height).encode()))
            if index is not None:
                index(conn)

    def snapshot_height(self) -> int | None:
        """The height this store's chain starts from when it joined by snapshot (None: genesis)."""
        raw = self.get_meta(SNAPSHOT_HEIGHT_KEY)
        return None if raw is None else int(raw)

    def snapshot_next_seq(self, author: bytes) -> int:
        """The author's next sequence number in the snapshot's state: its entries below it
        were ordered before the snapshot (0 when it had none, or there is no snapshot)."""
        row = self._reader.execute("SELECT next_seq FROM snapshot_authors WHERE author = ?", (author,)).fetchone()
        return 0 if row is None else int(row[0])

    def prune_state(self, oldest: int) -> int:
        """Drop the state tree's versions before `oldest` (a transaction of its own, after commits)."""
        with self._write_lock:
            return state_store.prune_versions(self._writer, oldest)

    def checkpoint(self, height: int) -> StoredCheckpoint | None:
        row = self._reader.execute(
            "SELECT height, id, finalized, state_root, results_root, entry_count, applied_ms FROM checkpoints"
            " WHERE height = ?", (height,)
        ).fetchone()
        return None if row is None else StoredCheckpoint(*row)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        row = self._reader.execute(
            "SELECT height, id, finalized, state_root, results_root, entry_count, applied_ms FROM checkpoints"
            " ORDER BY height DESC LIMIT 1"
        ).fetchone()
        return None if row is None else StoredCheckpoint(*row)

    def result(self, entry_id: bytes) -> StoredResult | None:
        row = self._reader.execute(
            "SELECT entry_id, height, position, outcome, code, cause, kind FROM results WHERE entry_id = ?", (entry_id,)
        ).fetchone()
        return None if row is None else StoredResult(*row)

    def results_at(self, height: int) -> list[StoredResult]:
        rows = self._reader.execute(
            "SELECT entry_id, height, position, outcome, code, cause, kind FROM results WHERE height = ?"
            " ORDER BY position",
            (height,),
        ).fetchall()
        return [StoredResult(*r) for r in rows]

    def results_caused_by(self, cause: str, limit: int) -> list[StoredResult]:
        rows = self._reader.execute(
            "SELECT entry_id, height, position, outcome, code, cause, kind FROM results WHERE cause = ?"
            " ORDER BY height, position LIMIT ?", (cause, limit),
        ).fetchall()
        return [StoredResult(*r) for r in rows]

    def final_results_of_kind(self, kind: str, from_height: int, limit: int) -> list[StoredResult]:
        rows = self._reader.execute(
            "SELECT entry_id, height, position, outcome, code, cause, kind FROM results"
            " WHERE kind = ? AND height >= ? AND outcome = 'FINAL' ORDER BY height, position LIMIT ?",
            (kind, from_height, limit),
        ).fetchall()
        return [StoredResult(*r) for r in rows]

    def final_results_since(self, height: int, limit: int) -> list[StoredResult]:
        rows = self._reader.execute(
            "SELECT entry_id, height, position, outcome, code, cause, kind FROM results"
            " WHERE height >= ? AND outcome = 'FINAL' ORDER BY height, position LIMIT ?", (height, limit),
        ).fetchall()
        return [StoredResult(*r) for r in rows]

    def management_results(self, before_height: int, limit: int) -> list[StoredResult]:
        """Results of management entries (gov.*, reg.*, id.*, app.*), newest first."""
        rows = self._reader.execute(
            "SELECT entry_id, height, position, outcome, code, cause, kind FROM results"
            " WHERE (kind LIKE 'gov.%' OR kind LIKE 'reg.%' OR kind LIKE 'id.%' OR kind LIKE 'app.%') AND height < ?"
            " ORDER BY height DESC, position DESC LIMIT ?", (before_height, limit),
        ).fetchall()
        return [StoredResult(*r) for r in rows]

    def ordered_ids(self) -> Iterator[bytes]:
        for (entry_id,) in self._reader.execute("SELECT entry_id FROM results"):
            yield bytes(entry_id)

    def validator_change_proofs(self, upto: int) -> list[tuple[int, int, bytes]]:
        return validator_change_proofs(self._reader, upto)

    def assets_of(self, public_key: bytes) -> list[str]:
        """The assets an account holds a balance of now (from the state table)."""
        prefix = b"B" + public_key
        rows = self._reader.execute("SELECT key FROM state WHERE key > ? AND key < ? ORDER BY key",
                                    (prefix, prefix + b"\xff" * 17)).fetchall()
        return [bytes(k)[len(prefix):].decode() for (k,) in rows if bytes(k).startswith(prefix)]

    def state_items(self) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._reader.execute("SELECT key, value FROM state"):
            yield bytes(key), bytes(value)

    def store_equivocation(self, validator: bytes, height: int, round_: int, kind: str, first: bytes,
                           second: bytes, now_ms: int) -> bool:
        with self._write_lock:
            cursor = self._writer.execute(
                "INSERT OR IGNORE INTO consensus_evidence (validator, height, round, kind, first, second, detected_ms)"
                " VALUES (?,?,?,?,?,?,?)",
                (validator, height, round_, kind, first, second, now_ms),
            )
            return cursor.rowcount > 0

    def equivocations(self, limit: int = 1000) -> list[tuple[bytes, int, int, str, bytes, bytes, int]]:
        rows = self._reader.execute(
            "SELECT validator, height, round, kind, first, second, detected_ms FROM consensus_evidence"
            " ORDER BY seqno LIMIT ?", (limit,)
        ).fetchall()
        return [(bytes(r[0]), r[1], r[2], r[3], bytes(r[4]), bytes(r[5]), r[6]) for r in rows]

    def get_meta(self, key: str) -> bytes | None:
        row = self._reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    # --- the audit index (bilayer/audit/index.py keeps its tables) ----------------------------

    def with_writer(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on the writer connection (outside any transaction), alone."""
        with self._write_lock:
            return work(self._writer)

    def read_connection(self) -> sqlite3.Connection:
        """A connection of its own, for long reads in a worker thread (the audit queries)."""
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA query_only=1")
        return conn

    def set_meta(self, key: str, value: bytes) -> None:
        with self._write_lock:
            self._writer.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

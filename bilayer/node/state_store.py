"""The sparse Merkle tree's nodes in SQLite: every retained version readable and provable.

Tables (in the node's ledger.sqlite, written in each checkpoint's transaction; or in a file
of their own for the benchmark; WAL, fsync at commit):

    smt_nodes (version, path) -> node          the tree's nodes, never rewritten
    smt_stale (stale_since, version, path)     nodes that left the tree at `stale_since`
    smt_roots  version -> root reference       one row per committed version
    smt_meta   "oldest" -> oldest retained version

A version's nodes, its stale index rows and its root are written in one transaction, so a
crash leaves either the whole version or none of it. Pruning to keep versions from `oldest`
on deletes exactly the nodes that left the tree at or before `oldest`: no retained version
refers to them, and nothing else needs to be known about the tree to find them.

Memory stays bounded by the node cache (a fixed number of decoded internal nodes, the most
recently used), never by the number of keys: the nodes near the root, read by every update
and proof, stay in it.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import msgspec

from ..errors import BilayerError
from ..execution.smt import (
    Child,
    InternalNode,
    LeafNode,
    Node,
    NodeKey,
    NodeMissing,
    StateVersionPruned,
    TreeUpdate,
    apply,
    decode_node,
    encode_node,
    get,
    nibble,
    node_hash,
    prove,
    root_hash,
)
from ..execution.smt_proof import SparseProof, key_hash, leaf_hash, value_hash

SCHEMA = """
CREATE TABLE IF NOT EXISTS smt_nodes (version INTEGER NOT NULL, path BLOB NOT NULL, node BLOB NOT NULL,
                                      PRIMARY KEY (version, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS smt_stale (stale_since INTEGER NOT NULL, version INTEGER NOT NULL, path BLOB NOT NULL,
                                      PRIMARY KEY (stale_since, version, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS smt_roots (version INTEGER PRIMARY KEY, root BLOB);
CREATE TABLE IF NOT EXISTS smt_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class StateVersionUnknown(BilayerError):
    """No state was committed at that version."""

    code = "state_version_unknown"


class StateVersionOrder(BilayerError):
    """A version is committed after the latest one, never at or before it."""

    code = "state_version_order"


class StateStoreCorrupt(BilayerError):
    """The state store's file is not a readable state store."""

    code = "state_store_corrupt"


class _RootRow(msgspec.Struct, frozen=True, array_like=True):
    root: Child | None


_root_encoder = msgspec.msgpack.Encoder()
_root_decoder = msgspec.msgpack.Decoder(_RootRow)



@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken at once (no upgrade from a read lock to fail midway);
    anything raised inside rolls it back whole."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise

def create_tables(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def write_version(conn: sqlite3.Connection, update: TreeUpdate) -> None:
    """Write one version's nodes, stale index rows and root, inside the caller's transaction
    (the node's: the checkpoint that made the version, in the same commit)."""
    version = update.version
    conn.executemany("INSERT INTO smt_nodes (version, path, node) VALUES (?, ?, ?)",
                     ((v, p, encode_node(n)) for (v, p), n in update.nodes.items()))
    conn.executemany("INSERT INTO smt_stale (stale_since, version, path) VALUES (?, ?, ?)",
                     ((version, v, p) for v, p in update.stale))
    conn.execute("INSERT INTO smt_roots (version, root) VALUES (?, ?)",
                 (version, _root_encoder.encode(_RootRow(update.root))))


def latest_version(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT max(version) FROM smt_roots").fetchone()
    return None if row[0] is None else int(row[0])


def pruned_below(conn: sqlite3.Connection) -> int | None:
    """The oldest version kept by the last pruning (None: never pruned)."""
    row = conn.execute("SELECT value FROM smt_meta WHERE name = 'oldest'").fetchone()
    return None if row is None else int(row[0])


def prune_versions(conn: sqlite3.Connection, oldest: int) -> int:
    """Keep versions from `oldest` on (never past the latest), in one transaction of its own;
    returns the nodes deleted."""
    latest = latest_version(conn)
    if latest is None:
        return 0
    oldest = min(oldest, latest)
    if oldest <= (pruned_below(conn) or 0):
        return 0
    with immediate(conn):
        deleted = conn.execute(
            "DELETE FROM smt_nodes WHERE (version, path) IN "
            "(SELECT version, path FROM smt_stale WHERE stale_since <= ?)", (oldest,)).rowcount
        conn.execute("DELETE FROM smt_stale WHERE stale_since <= ?", (oldest,))
        conn.execute("DELETE FROM smt_roots WHERE version < ?", (oldest,))
        conn.execute("INSERT OR REPLACE INTO smt_meta (name, value) VALUES ('oldest', ?)", (oldest,))
    return int(deleted)


def check_values(reader: TreeReader, root: Child | None, value_of: Callable[[bytes], bytes | None],
                 progress: Callable[[int], None] | None = None, every: int = 10_000) -> int:
    """Re-hash the tree of `root` from its nodes up, and check that each leaf's value is the
    one `value_of` its key holds (the node's `state` table); returns the number of leaves.
    A depth-first walk: memory is the path and the pending siblings, never the state. Raises
    StateStoreCorrupt (or NodeMissing) at the first damage found."""
    if root is None:
        return 0
    stack: list[tuple[Child, bytes]] = [(root, b"")]
    leaves = 0
    while stack:
        ref, path = stack.pop()
        node = reader.read_node((ref.version, path))
        if isinstance(node, LeafNode):
            if not ref.leaf:
                raise StateStoreCorrupt(f"a leaf where an internal node is referred to, at path {path.hex()}")
            hashed = key_hash(node.key)
            if leaf_hash(hashed, value_hash(node.value)) != ref.hash:
                raise StateStoreCorrupt(f"the leaf of key {node.key.hex()} does not hash to its reference")
            if any(nibble(hashed, depth) != path[depth] for depth in range(len(path))):
                raise StateStoreCorrupt(f"the leaf of key {node.key.hex()} is at path {path.hex()}, not its own")
            stored = value_of(node.key)
            if stored != node.value:
                found = "absent" if stored is None else f"{len(stored)} bytes of another value"
                raise StateStoreCorrupt(f"the stored value of key {node.key.hex()} is not the tree's ({found})",
                                        key=node.key.hex())
            leaves += 1
            if progress is not None and leaves % every == 0:
                progress(every)
            continue
        if ref.leaf or len(node.children) != 16:
            raise StateStoreCorrupt(f"an internal node that is not one, at version {ref.version}, path {path.hex()}")
        if node_hash(node.children) != ref.hash:
            raise StateStoreCorrupt(f"the node at version {ref.version}, path {path.hex()} does not hash to its"
                                    " reference")
        for index in range(15, -1, -1):
            child = node.children[index]
            if child is not None:
                stack.append((child, path + bytes((index,))))
    if progress is not None:
        progress(leaves % every)
    return leaves


class TreeReader:
    """Reads the tree's versions from a connection that another may be writing: each question
    asks the file, so a version committed since is seen. One thread at a time."""

    def __init__(self, conn: sqlite3.Connection, *, cache_nodes: int = 65_536) -> None:
        self._conn = conn
        self._cache: OrderedDict[NodeKey, Node] = OrderedDict()
        self._cache_nodes = cache_nodes

    @property
    def latest_version(self) -> int | None:
        return latest_version(self._conn)

    @property
    def oldest_version(self) -> int | None:
        """The oldest version still provable (None: nothing committed)."""
        if self.latest_version is None:
            return None
        oldest = pruned_below(self._conn)
        if oldest is not None:
            return oldest
        row = self._conn.execute("SELECT min(version) FROM smt_roots").fetchone()
        return int(row[0])

    def read_node(self, key: NodeKey) -> Node:
        cache = self._cache
        node = cache.get(key)
        if node is not None:
            cache.move_to_end(key)
            return node
        row = self._conn.execute("SELECT node FROM smt_nodes WHERE version = ? AND path = ?", key).fetchone()
        if row is None:
            raise NodeMissing(f"no node at version {key[0]}, path {key[1].hex()}")
        try:
            node = decode_node(row[0])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StateStoreCorrupt(f"node at version {key[0]}, path {key[1].hex()}: {exc}") from exc
        self.remember(key, node)
        return node

    def remember(self, key: NodeKey, node: Node) -> None:
        """Internal nodes only: a leaf is read once per update or proof of its key, while the
        internal nodes near the root are read by all of them."""
        if not isinstance(node, InternalNode):
            return
        cache = self._cache
        cache[key] = node
        if len(cache) > self._cache_nodes:
            cache.popitem(last=False)

    def forget(self) -> None:
        self._cache.clear()

    def root_ref(self, version: int) -> Child | None:
        """The root of `version`, refused with a code when pruned or never committed."""
        row = self._conn.execute("SELECT root FROM smt_roots WHERE version = ?", (version,)).fetchone() \
            if version >= 0 else None
        if row is None:
            oldest = pruned_below(self._conn)
            latest = self.latest_version
            if oldest is not None and version < oldest and latest is not None and version <= latest:
                raise StateVersionPruned(f"version {version} was pruned; the oldest retained is {oldest}",
                                         oldest=oldest)
            raise StateVersionUnknown(f"no state at version {version}")
        return _root_decoder.decode(row[0]).root

    def root(self, version: int) -> bytes:
        return root_hash(self.root_ref(version))

    def get(self, key: bytes, version: int) -> bytes | None:
        return get(self, self.root_ref(version), key)

    def prove(self, key: bytes, version: int) -> tuple[bytes | None, SparseProof]:
        """The value of `key` at `version` (None: absent) and its proof against `root(version)`."""
        return prove(self, self.root_ref(version), key)


class StateStore(TreeReader):
    """The versioned tree in a SQLite file of its own (the benchmark's, and tools'). `keep`:
    how many of the latest versions stay provable (None: archive mode, every version)."""

    def __init__(self, path: Path, *, keep: int | None = None, cache_nodes: int = 65_536,
                 page_cache_mib: int = 64) -> None:
        if keep is not None and keep < 1:
            raise ValueError("keep is at least one version")
        self.path = path
        self.keep = keep
        try:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA cache_size=-{page_cache_mib * 1024}")
            create_tables(conn)
            self._latest = latest_version(conn)
        except sqlite3.DatabaseError as exc:
            raise StateStoreCorrupt(f"{path.name}: {exc}") from exc
        super().__init__(conn, cache_nodes=cache_nodes)

    def close(self) -> None:
        self._conn.close()
        self.forget()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def latest_version(self) -> int | None:
        return self._latest

    def commit(self, version: int, changes: Iterable[tuple[bytes, bytes | None]]) -> bytes:
        """Write version `version` (after the latest) from the latest one and `changes`, in
        one transaction; then prune to the retained versions. Returns the new root."""
        if version < 0 or (self._latest is not None and version <= self._latest):
            raise StateVersionOrder(f"version {version} is not after the latest, {self._latest}")
        previous = None if self._latest is None else self.root_ref(self._latest)
        update = apply(self, previous, version, changes)
        conn = self._conn
        with immediate(conn):
            write_version(conn, update)
        self._latest = version
        for key, node in update.nodes.items():
            self.remember(key, node)
        if self.keep is not None:
            self.prune(version - self.keep + 1)
        return update.root_hash

    def prune(self, oldest: int) -> int:
        """Keep versions from `oldest` on (never past the latest); returns the nodes deleted."""
        return prune_versions(self._conn, oldest)

    def node_count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM smt_nodes").fetchone()[0])

    def checkpoint_wal(self) -> None:
        """Fold the write-ahead log into the main file (it otherwise grows until a reader lets go)."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- restoring a snapshot (node/state_sync.py drives it) -------------------------------
    # A restore writes one version's nodes before that version has a root row: its target,
    # the root reference once received and the references still pending live in tables of
    # their own, written in the same transaction as each batch of nodes; the root row comes
    # last, when nothing is pending. So the file holds, after any crash, verified nodes and
    # exactly the references still missing below them, never a version that is not whole.

    def restore_target(self) -> tuple[int, bytes, Child | None] | None:
        """The restore in progress: its version, its certified root hash and its root
        reference (None until the root node is received); None when there is none."""
        self._conn.executescript(RESTORE_SCHEMA)
        row = self._conn.execute("SELECT version, root_hash, root FROM smt_restore").fetchone()
        if row is None:
            return None
        return int(row[0]), bytes(row[1]), _root_decoder.decode(row[2]).root

    def start_restore(self, version: int, root_hash: bytes, pending: dict[bytes, Child | None]) -> None:
        """Record the restore of the tree of `root_hash` at `version`, with what it misses
        at the start (the root, unless the tree is empty)."""
        conn = self._conn
        conn.executescript(RESTORE_SCHEMA)
        with immediate(conn):
            conn.execute("INSERT INTO smt_restore (version, root_hash, root) VALUES (?, ?, ?)",
                         (version, root_hash, _root_encoder.encode(_RootRow(None))))
            conn.executemany("INSERT INTO smt_restore_pending (path, ref) VALUES (?, ?)",
                             ((p, _root_encoder.encode(_RootRow(ref))) for p, ref in pending.items()))

    def restore_pending(self) -> list[tuple[bytes, Child | None]]:
        """The references the restore still misses (None: the root, not yet received)."""
        rows = self._conn.execute("SELECT path, ref FROM smt_restore_pending ORDER BY length(path), path")
        return [(bytes(path), _root_decoder.decode(ref).root) for path, ref in rows]

    def write_restore_batch(self, nodes: dict[NodeKey, Node], root: Child | None, received: Iterable[bytes],
                            pending: dict[bytes, Child]) -> None:
        """One durable batch: verified `nodes`, the root reference as now known, the pending
        references now `received` dropped and the newly `pending` ones added."""
        conn = self._conn
        with immediate(conn):
            conn.executemany("INSERT INTO smt_nodes (version, path, node) VALUES (?, ?, ?)",
                             ((v, p, encode_node(n)) for (v, p), n in nodes.items()))
            conn.execute("UPDATE smt_restore SET root = ?", (_root_encoder.encode(_RootRow(root)),))
            conn.executemany("DELETE FROM smt_restore_pending WHERE path = ?", ((p,) for p in received))
            conn.executemany("INSERT INTO smt_restore_pending (path, ref) VALUES (?, ?)",
                             ((p, _root_encoder.encode(_RootRow(ref))) for p, ref in pending.items()))

    def finish_restore(self) -> None:
        """Make the restored tree the store's one version, the oldest retained; refused (no
        change) while a reference is still pending."""
        target = self.restore_target()
        if target is None:
            raise StateVersionUnknown("no restore in progress")
        version, certified, root = target
        conn = self._conn
        with immediate(conn):
            left = conn.execute("SELECT count(*) FROM smt_restore_pending").fetchone()[0]
            if left or root_hash(root) != certified:
                raise StateStoreCorrupt(f"the restore of version {version} is not complete: {left} subtrees missing")
            conn.execute("INSERT INTO smt_roots (version, root) VALUES (?, ?)",
                         (version, _root_encoder.encode(_RootRow(root))))
            conn.execute("INSERT OR REPLACE INTO smt_meta (name, value) VALUES ('oldest', ?)", (version,))
            conn.execute("DELETE FROM smt_restore")
        self._latest = self._oldest = version


    def read_nodes(self, keys: Sequence[NodeKey]) -> list[Node]:
        """The nodes at `keys`, in their order, a few hundred to a query (serving a snapshot
        chunk reads a whole level of a subtree at once); raises NodeMissing for one not there.
        Bypasses the node cache: a sync reads each node once."""
        found: dict[NodeKey, bytes] = {}
        for start in range(0, len(keys), 512):
            part = list(keys[start:start + 512])
            size = 1 << (len(part) - 1).bit_length()  # a few statement sizes, each prepared once
            part += [(-1, b"")] * (size - len(part))  # (no node is at version -1)
            rows = self._conn.execute(
                "WITH k(v, p) AS (VALUES " + ",".join(["(?, ?)"] * size) + ") "
                "SELECT version, path, node FROM k CROSS JOIN smt_nodes ON version = k.v AND path = k.p",
                [half for key in part for half in key]).fetchall()
            found.update(((version, bytes(path)), node) for version, path, node in rows)
        nodes = []
        for key in keys:
            data = found.get(key)
            if data is None:
                raise NodeMissing(f"no node at version {key[0]}, path {key[1].hex()}")
            try:
                nodes.append(decode_node(data))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise StateStoreCorrupt(f"node at version {key[0]}, path {key[1].hex()}: {exc}") from exc
        return nodes


RESTORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS smt_restore (version INTEGER NOT NULL, root_hash BLOB NOT NULL, root BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS smt_restore_pending (path BLOB PRIMARY KEY, ref BLOB NOT NULL) WITHOUT ROWID;
"""

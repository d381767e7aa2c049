"""The executed state and its commitment.

State is a map of byte keys to canonical msgpack values:

    b"B" + public key + asset   -> balance (int)
    b"A" + public key           -> (next sequence number, id of the author's last ordered entry)

The state root is the root of the sparse Merkle tree of all keys (execution/smt.py: each
key's leaf commits to SHA-256 of the key and of its value). The tree is versioned: its nodes
live behind a `NodeReader` (the node's SQLite file, the simulator's disk, or memory), so a new
root costs the keys changed since the last one times the log of the state's size, and a proof
of presence or of absence of any key is a walk of about log16(N) nodes.

The values are read through a `ValueSource` (the node's `state` table on disk, the
simulator's disk, or nothing at all for a state built in memory), with a bounded cache of
the values read and an overlay, in memory, of the writes not yet durable: what a node holds
in RAM is its recent writes and a fixed number of cached values, never the whole state. The
host says which writes became durable (`durable`), and they leave the overlay.

State transactions make "a rejected entry changes nothing" a mechanism rather than a
discipline of each handler (as execution-specs' `begin_transaction`): the executor opens
one around each entry and commits it when the entry is FINAL or HELD, or rolls it back on
any refusal. Transactions nest. Each keeps an undo journal of the first value it overwrote
per key (and whether the key was already to be persisted), so a rollback puts back exactly
what was there. The root, proofs and the dirty list are not available during a transaction:
they would commit to writes that may yet be undone.

A key index grouped by the keys' first two bytes (an application's keys by its prefix and
the next byte) serves ordered prefix scans of the overlay, merged in key order with the
source's own ordered scan, so a keeper lists its own keys (a council of five among a million
accounts, one application's receipts beside its lots and readings) without walking the state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Protocol

from .. import codec
from .smt import Child, MemoryNodes, Node, NodeKey, NodeReader, TreeUpdate, apply, prove, root_hash
from .smt_proof import SparseProof


def balance_key(public_key: bytes, asset: str) -> bytes:
    return b"B" + public_key + asset.encode()


def author_key(public_key: bytes) -> bytes:
    return b"A" + public_key


class StateTree:
    """The state's commitment: the tree's latest root and version, over a `NodeReader` that
    holds what is durable, with the nodes of versions not yet durable kept here until the
    host says they are written (`written`). A tree over `MemoryNodes` of its own (`durable`
    None) writes each version straight into it."""

    def __init__(self, durable: NodeReader | None = None, root: Child | None = None, version: int = -1) -> None:
        self._own: MemoryNodes | None = MemoryNodes() if durable is None else None
        self.durable: NodeReader = durable if durable is not None else self._own  # type: ignore[assignment]
        self.root = root
        self.version = version
        self._overlay: dict[NodeKey, Node] = {}
        self._unwritten: list[TreeUpdate] = []

    def read_node(self, key: NodeKey) -> Node:
        node = self._overlay.get(key)
        return node if node is not None else self.durable.read_node(key)

    @property
    def root_hash(self) -> bytes:
        return root_hash(self.root)

    def advance(self, version: int, changes: Iterable[tuple[bytes, bytes | None]]) -> TreeUpdate:
        if version <= self.version:
            raise ValueError(f"tree version {version} is not after {self.version}")
        update = apply(self, self.root, version, changes)
        if self._own is not None:
            self._own.write(update)
        else:
            self._overlay.update(update.nodes)
            self._unwritten.append(update)
        self.root, self.version = update.root, version
        return update

    def take_unwritten(self) -> list[TreeUpdate]:
        """The versions made since the last call, for the host to write durably."""
        updates, self._unwritten = self._unwritten, []
        return updates

    def written(self, version: int) -> None:
        """Versions up to `version` are durable: their nodes are read from there now."""
        self._overlay = {key: node for key, node in self._overlay.items() if key[0] > version}


class InTransaction(Exception):
    """A commitment (root, proof, dirty list) was asked for while a transaction is open, or a
    transaction was closed that is not open: a bug in the caller, never an outcome."""


# An open transaction's journal: for each key it wrote, the value before its first write (None:
# absent) and whether the key was already marked dirty then.
_Journal = dict[bytes, tuple[bytes | None, bool]]


APP_KEYS = b"Z"  # an application's keys: b"Z" + its name + b"\x00" + its own key (execution/application.py)


def _group(key: bytes) -> bytes:
    """A key's group in the prefix index: its first two bytes; for an application's key, its
    application prefix and the next byte (the kind of record), so that one application's
    listings do not look at every key of that application."""
    if key[:1] == APP_KEYS:
        end = key.find(b"\x00")
        if end > 0:
            return key[:end + 2]
    return key[:2]


def _whole_group(prefix: bytes) -> bool:
    """Every key starting with `prefix` is in `_group(prefix)`."""
    if prefix[:1] == APP_KEYS:
        end = prefix.find(b"\x00")
        return end > 0 and len(prefix) >= end + 2
    return len(prefix) >= 2


class KeyIndex:
    """Keys grouped by `_group`: the keys starting with a prefix without looking at the others."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[bytes, set[bytes]] = {}

    def add(self, key: bytes) -> None:
        self._groups.setdefault(_group(key), set()).add(key)

    def discard(self, key: bytes) -> None:
        name = _group(key)
        group = self._groups.get(name)
        if group is not None:
            group.discard(key)
            if not group:
                del self._groups[name]

    def sorted_keys(self, prefix: bytes, every: Callable[[], Iterable[bytes]]) -> list[bytes]:
        """The keys starting with `prefix`, in key order (`every`: all keys, for the empty prefix)."""
        groups = self._groups
        if prefix and _whole_group(prefix):
            candidates: Iterable[bytes] = groups.get(_group(prefix), ())
        elif len(prefix) == 1 and prefix != APP_KEYS:
            candidates = [key for b in range(256) for key in groups.get(prefix + bytes([b]), ())]
            candidates.extend(groups.get(prefix, ()))  # the one-byte key itself
        elif prefix:  # part of an application prefix: the groups under it
            candidates = [key for name, group in groups.items() if name.startswith(prefix) for key in group]
        else:
            candidates = every()
        return sorted(k for k in candidates if k.startswith(prefix))


class ValueSource(Protocol):
    """Where the durable values are read: the node's `state` table, the simulator's disk.
    Safe to read from several threads."""

    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The keys starting with `prefix`, in key order, with their values."""
        ...

    def __len__(self) -> int: ...


class MemoryValues:
    """A value source in memory (the simulator's disk, tests): `apply` is its durable write."""

    def __init__(self, items: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._values: dict[bytes, bytes] = {}
        self._index = KeyIndex()
        self.apply(items)

    def get(self, key: bytes) -> bytes | None:
        return self._values.get(key)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        values = self._values
        for key in self._index.sorted_keys(prefix, lambda: list(values)):
            yield key, values[key]

    def __len__(self) -> int:
        return len(self._values)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._values.items())

    def apply(self, changes: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Write each key's new value, None to delete it."""
        values, index = self._values, self._index
        for key, value in changes:
            if value is None:
                if values.pop(key, None) is not None:
                    index.discard(key)
            else:
                if key not in values:
                    index.add(key)
                values[key] = value


class _NoValues:
    """The source of a state built in memory: nothing is durable, every value is in the overlay."""

    def get(self, key: bytes) -> bytes | None:
        return None

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return iter(())

    def __len__(self) -> int:
        return 0


NO_VALUES = _NoValues()

_MISSING: Any = object()  # not in the overlay (None there: deleted)

DEFAULT_CACHE_VALUES = 65_536


class State:
    def __init__(self, items: Iterable[tuple[bytes, bytes]] = (), tree: StateTree | None = None, *,
                 source: ValueSource | None = None, cache_values: int = DEFAULT_CACHE_VALUES,
                 lock: AbstractContextManager[Any] | None = None) -> None:
        """`source`: where the durable values are read (none: a state wholly in memory);
        `items`: values written on top of it. `tree`: the tree these values are already
        committed to (a restart); without one, a tree in memory is built at the first root."""
        self._source: ValueSource = NO_VALUES if source is None else source
        # in memory alone, the overlay is the state: a deleted key is simply dropped
        self._alone = source is None
        self._overlay: dict[bytes, bytes | None] = {}  # writes not yet durable (None: deleted)
        self._index = KeyIndex()  # the overlay's keys
        self._cache: OrderedDict[bytes, bytes | None] = OrderedDict()  # values read from the source
        self._cache_values = max(1, cache_values)
        # guards the cache and the source: a host that reads the state from a second thread (the
        # node's audit index) passes a lock; this module stays free of threads
        self._lock: AbstractContextManager[Any] = nullcontext() if lock is None else lock
        self._pending: dict[bytes, int] = {}  # keys taken by `take_dirty`, not yet `durable`: how many times
        self._changed: set[bytes] = set()  # keys written since the tree's last version (a superset)
        self.tree = StateTree() if tree is None else tree
        self._dirty: set[bytes] = set()
        self._journals: list[_Journal] = []
        # caches of decoded state, owned by the modules that fill them; each entry names the raw
        # bytes it was decoded from and is used only while they match, so it survives rollbacks
        self.derived: dict[str, Any] = {}
        # the value of a key, or None: alone in memory, the overlay's own method, as reads are
        # most of execution's work
        self.get: Callable[[bytes], bytes | None] = self._overlay.get if self._alone else self._get
        for key, value in items:
            self.set(key, value)
        self._dirty.clear()
        if tree is not None:
            self._changed.clear()

    # --- raw access ---------------------------------------------------------------------

    def _get(self, key: bytes) -> bytes | None:
        value = self._overlay.get(key, _MISSING)
        if value is _MISSING:
            return self._read(key)
        return value  # type: ignore[no-any-return]

    def _read(self, key: bytes) -> bytes | None:
        """The durable value of `key`, from the cache or the source (then cached)."""
        with self._lock:
            cache = self._cache
            value = cache.get(key, _MISSING)
            if value is not _MISSING:
                cache.move_to_end(key)
                return value  # type: ignore[no-any-return]
            durable = self._source.get(key)
            self._remember(key, durable)
            return durable

    def _remember(self, key: bytes, value: bytes | None) -> None:
        cache = self._cache
        cache[key] = value
        cache.move_to_end(key)
        if len(cache) > self._cache_values:
            cache.popitem(last=False)

    def _put(self, key: bytes, value: bytes | None) -> None:
        overlay = self._overlay
        if key not in overlay:
            self._index.add(key)
        overlay[key] = value

    def _drop(self, key: bytes) -> None:
        """The overlay no longer holds `key`: its value is the source's."""
        if self._overlay.pop(key, _MISSING) is not _MISSING:
            self._index.discard(key)

    def set(self, key: bytes, value: bytes) -> None:
        if self._journals:
            journal = self._journals[-1]
            if key not in journal:
                journal[key] = (self.get(key), key in self._dirty)
        self._put(key, value)
        self._changed.add(key)
        self._dirty.add(key)

    def delete(self, key: bytes) -> None:
        before = self.get(key)
        if before is None:
            return
        if self._journals:
            journal = self._journals[-1]
            if key not in journal:
                journal[key] = (before, key in self._dirty)
        if self._alone:
            self._drop(key)
        else:
            self._put(key, None)
        self._changed.add(key)
        self._dirty.add(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every key with its value (in memory alone, in no particular order; else in key order)."""
        if self._alone:
            return iter(self._overlay.items())  # type: ignore[arg-type]
        return self.scan(b"")

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The keys starting with `prefix`, in key order, with their values: the overlay's
        (only the keys of the prefix's group are looked at, for a shorter prefix the groups
        under it, never the whole state) merged with the source's, the overlay's first and
        its deleted keys hidden."""
        overlay = self._overlay
        mine = self._index.sorted_keys(prefix, lambda: list(overlay))
        if self._alone:
            for key in mine:
                yield key, overlay[key]  # type: ignore[misc]
            return
        i, n = 0, len(mine)
        for key, value in self._source.scan(prefix):
            while i < n and mine[i] < key:
                own = overlay.get(mine[i])
                if own is not None:
                    yield mine[i], own
                i += 1
            if i < n and mine[i] == key:
                own = overlay.get(key)
                if own is not None:
                    yield key, own
                i += 1
            elif key not in overlay:
                yield key, value
        for key in mine[i:]:
            own = overlay.get(key)
            if own is not None:
                yield key, own

    def take_dirty(self) -> list[tuple[bytes, bytes | None]]:
        """Keys changed since the last call, with their values, None when deleted (for persisting).
        They stay in the overlay until the host says they are `durable`."""
        self._require_no_transaction("the changed keys")
        get = self.get
        changed = [(key, get(key)) for key in sorted(self._dirty)]
        self._dirty.clear()
        if not self._alone:
            pending = self._pending
            for key, _ in changed:
                pending[key] = pending.get(key, 0) + 1
        return changed

    def durable(self, changes: Iterable[tuple[bytes, bytes | None]]) -> None:
        """`changes`, taken by `take_dirty`, are now in the source: a key not written since
        leaves the overlay (its value is the source's now, kept in the cache)."""
        if self._alone:
            return
        pending, dirty, overlay = self._pending, self._dirty, self._overlay
        for key, value in changes:
            left = pending.get(key, 0) - 1
            if left > 0:
                pending[key] = left
                continue
            pending.pop(key, None)
            if key in dirty or overlay.get(key, _MISSING) is not value:
                continue  # written again since (or put back by a rollback): still ahead of the source
            with self._lock:
                self._drop(key)
                self._remember(key, value)

    # --- transactions -----------------------------------------------------------------------

    def begin_transaction(self) -> None:
        """Start a transaction; it ends with exactly one commit or rollback. Transactions nest."""
        self._journals.append({})

    def commit_transaction(self) -> None:
        """Keep the writes; an inner transaction's journal joins the outer one, so rolling the
        outer back still undoes them."""
        if not self._journals:
            raise InTransaction("commit without an open transaction")
        inner = self._journals.pop()
        if self._journals:
            outer = self._journals[-1]
            for key, before in inner.items():
                outer.setdefault(key, before)

    def rollback_transaction(self) -> None:
        """Undo every write since the matching `begin_transaction`. The keys stay among those
        the next tree version looks at: a key back at its old value changes nothing there."""
        if not self._journals:
            raise InTransaction("rollback without an open transaction")
        for key, (before, was_dirty) in self._journals.pop().items():
            if self._alone:
                if before is None:
                    self._drop(key)
                else:
                    self._put(key, before)
            elif not was_dirty and key not in self._pending:
                self._drop(key)  # it was the source's value: read from there again
            else:
                self._put(key, before)
            if not was_dirty:
                self._dirty.discard(key)

    @property
    def in_transaction(self) -> bool:
        return bool(self._journals)

    def _require_no_transaction(self, what: str) -> None:
        if self._journals:
            raise InTransaction(f"{what} cannot be computed inside a state transaction")

    def __len__(self) -> int:
        """The number of keys: the source's count corrected by the overlay's keys."""
        if self._alone:
            return len(self._overlay)
        with self._lock:
            count = len(self._source)
            source = self._source
            for key, value in list(self._overlay.items()):
                count += (value is not None) - (source.get(key) is not None)
        return count

    @property
    def overlay_size(self) -> int:
        """Keys held in memory ahead of the source (all of them, for a state in memory alone)."""
        return len(self._overlay)

    @property
    def cached_values(self) -> int:
        return len(self._cache)

    # --- typed views ----------------------------------------------------------------------

    def balance(self, public_key: bytes, asset: str) -> int:
        raw = self.get(balance_key(public_key, asset))
        return 0 if raw is None else codec.decode(raw, int)

    def set_balance(self, public_key: bytes, asset: str, amount: int) -> None:
        self.set(balance_key(public_key, asset), codec.encode(amount))

    def balances_of(self, public_key: bytes) -> dict[str, int]:
        prefix = b"B" + public_key
        return {key[len(prefix):].decode(): codec.decode(value, int) for key, value in self.scan(prefix)}

    def author_head(self, public_key: bytes) -> tuple[int, bytes | None]:
        raw = self.get(author_key(public_key))
        if raw is None:
            return 0, None
        next_seq, last = codec.decode(raw, tuple[int, bytes])
        return next_seq, last

    def set_author_head(self, public_key: bytes, next_seq: int, last_id: bytes) -> None:
        self.set(author_key(public_key), codec.encode((next_seq, last_id)))

    # --- commitment -----------------------------------------------------------------------

    def commit_version(self, version: int) -> TreeUpdate:
        """The tree's version `version`: the keys written since the last one, at their values
        now. Its cost is those keys times the log of the state's size."""
        self._require_no_transaction("a state version")
        get = self.get
        changed = [(key, get(key)) for key in self._changed]
        self._changed.clear()
        return self.tree.advance(version, changed)

    def root(self) -> bytes:
        """The root of the state as it is: writes not yet in a version go into the next one."""
        self._require_no_transaction("the state root")
        if self._changed:
            self.commit_version(self.tree.version + 1)
        return self.tree.root_hash

    def prove(self, key: bytes) -> tuple[bytes | None, SparseProof]:
        """The value of `key` (None: absent) and the proof of it against `root()`."""
        self.root()
        return prove(self.tree, self.tree.root, key)


# The shape of a key a keeper owns: its prefix, and the length of the rest (None: it varies).
KeyShape = tuple[bytes, int | None]

# The state's own keys: balances (key + asset) and authors' chains.
ACCOUNT_KEYS: tuple[KeyShape, ...] = ((b"B", None), (b"A", 32))


class Keeper:
    """One power's typed view of the keys it owns: read methods for anyone (the API, the
    node, audit), write methods for execution. Nothing outside a keeper parses its keys.
    `KEYS` declares their shapes, so a test can check that every key has one owner."""

    __slots__ = ("state",)
    KEYS: ClassVar[tuple[KeyShape, ...]] = ()

    def __init__(self, state: State) -> None:
        self.state = state

    @classmethod
    def owned_keys(cls) -> tuple[KeyShape, ...]:
        return cls.KEYS

    def _decision(self, key: bytes) -> int | None:
        """Keys whose value is the number of the decision behind them."""
        raw = self.state.get(key)
        return None if raw is None else codec.decode(raw, int)

    def _decisions(self, prefix: bytes, size: int) -> list[tuple[bytes, int]]:
        """(the rest of the key, decision) for keys of `prefix` whose rest is `size` bytes long."""
        return [(key[len(prefix):], codec.decode(value, int)) for key, value in self.state.scan(prefix)
                if len(key) == len(prefix) + size]

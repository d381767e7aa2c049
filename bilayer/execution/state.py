"""The executed state and its commitment.

State is a map of byte keys to canonical msgpack values:

    b"B" + public key + asset   -> balance (int)
    b"A" + public key           -> (next sequence number, id of the author's last ordered entry)

The state root is the root of the sparse Merkle tree of all keys (execution/smt.py: each
key's leaf commits to SHA-256 of the key and of its value). The tree is versioned: the
state's values live in memory, and its tree's nodes behind a `NodeReader` (the node's
SQLite file, the simulator's disk, or memory), so a new root costs the keys changed since
the last one times the log of the state's size, and a proof of presence or of absence of
any key is a walk of about log16(N) nodes.

State transactions make "a rejected entry changes nothing" a mechanism rather than a
discipline of each handler (as execution-specs' `begin_transaction`): the executor opens
one around each entry and commits it when the entry is FINAL or HELD, or rolls it back on
any refusal. Transactions nest. Each keeps an undo journal of the first value it overwrote
per key (and whether the key was already to be persisted), so reads and writes go straight
to the live maps and a rollback puts back exactly what was there. The root, proofs and the
dirty list are not available during a transaction: they would commit to writes that may yet
be undone.

A key index grouped by the keys' first two bytes (an application's keys by its prefix and
the next byte) serves ordered prefix scans, so a keeper lists its own keys (a council of five
among a million accounts, one application's receipts beside its lots and readings) without
walking the state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

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


class State:
    def __init__(self, items: Iterable[tuple[bytes, bytes]] = (), tree: StateTree | None = None) -> None:
        """`tree`: the tree these items are already committed to (a restart); without one, a
        tree in memory is built from them at the first root."""
        self._values: dict[bytes, bytes] = {}
        self._changed: set[bytes] = set()  # keys written since the tree's last version (a superset)
        self.tree = StateTree() if tree is None else tree
        self._groups: dict[bytes, set[bytes]] = {}  # `_group` -> keys: the prefix index
        self._dirty: set[bytes] = set()
        self._journals: list[_Journal] = []
        # caches of decoded state, owned by the modules that fill them; each entry names the raw
        # bytes it was decoded from and is used only while they match, so it survives rollbacks
        self.derived: dict[str, Any] = {}
        # the value of a key, or None: the map's own method, as reads are most of execution's work
        self.get: Callable[[bytes], bytes | None] = self._values.get
        for key, value in items:
            self.set(key, value)
        self._dirty.clear()
        if tree is not None:
            self._changed.clear()

    # --- raw access ---------------------------------------------------------------------

    def set(self, key: bytes, value: bytes) -> None:
        if self._journals:
            journal = self._journals[-1]
            if key not in journal:
                journal[key] = (self._values.get(key), key in self._dirty)
        if key not in self._values:
            self._groups.setdefault(_group(key), set()).add(key)
        self._values[key] = value
        self._changed.add(key)
        self._dirty.add(key)

    def delete(self, key: bytes) -> None:
        if key not in self._values:
            return
        if self._journals:
            journal = self._journals[-1]
            if key not in journal:
                journal[key] = (self._values[key], key in self._dirty)
        self._unset(key)
        self._changed.add(key)
        self._dirty.add(key)

    def _unset(self, key: bytes) -> None:
        del self._values[key]
        group = self._groups[_group(key)]
        group.discard(key)
        if not group:
            del self._groups[_group(key)]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._values.items())

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The keys starting with `prefix`, in key order, with their values. Only the keys
        of the prefix's group are looked at (for a shorter prefix, the groups under it),
        never the whole state."""
        if prefix and _whole_group(prefix):
            candidates: Iterable[bytes] = self._groups.get(_group(prefix), ())
        elif len(prefix) == 1 and prefix != APP_KEYS:
            groups = [self._groups.get(prefix + bytes([b]), ()) for b in range(256)]
            candidates = [key for group in groups for key in group]
            if prefix in self._values:
                candidates.append(prefix)
        elif prefix:  # part of an application prefix: the groups under it
            candidates = [key for name, group in self._groups.items() if name.startswith(prefix) for key in group]
        else:
            candidates = list(self._values)
        for key in sorted(k for k in candidates if k.startswith(prefix)):
            yield key, self._values[key]

    def take_dirty(self) -> list[tuple[bytes, bytes | None]]:
        """Keys changed since the last call, with their values, None when deleted (for persisting)."""
        self._require_no_transaction("the changed keys")
        changed = [(key, self._values.get(key)) for key in sorted(self._dirty)]
        self._dirty.clear()
        return changed

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
            if before is None:
                if key in self._values:
                    self._unset(key)
            else:
                if key not in self._values:
                    self._groups.setdefault(_group(key), set()).add(key)
                self._values[key] = before
            if not was_dirty:
                self._dirty.discard(key)

    @property
    def in_transaction(self) -> bool:
        return bool(self._journals)

    def _require_no_transaction(self, what: str) -> None:
        if self._journals:
            raise InTransaction(f"{what} cannot be computed inside a state transaction")

    def __len__(self) -> int:
        return len(self._values)

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
        changed = [(key, self._values.get(key)) for key in self._changed]
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

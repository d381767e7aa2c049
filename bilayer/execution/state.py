"""The executed state and its commitment.

State is a map of byte keys to canonical msgpack values:

    b"B" + public key + asset   -> balance (int)
    b"A" + public key           -> (next sequence number, id of the author's last ordered entry)

The state root is a two-level RFC 6962 tree: each key falls in one of 256 buckets (the
first byte of SHA-256(key)); a bucket's root is the Merkle root of its leaves
`encode((key, value))` sorted by key; the state root is the Merkle root of the 256 bucket
roots. A change re-hashes only its bucket, and an inclusion proof is a bucket path plus a
top path, so light clients can check any account against a checkpoint.

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

import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import msgspec

from .. import codec
from .merkle import inclusion_proof, leaf_hash, root_from_inclusion, root_of_hashes, verify_inclusion

BUCKETS = 256


def balance_key(public_key: bytes, asset: str) -> bytes:
    return b"B" + public_key + asset.encode()


def author_key(public_key: bytes) -> bytes:
    return b"A" + public_key


@functools.lru_cache(maxsize=1 << 16)
def bucket_of(key: bytes) -> int:
    """Remembered for the most recent keys: the accounts an execution touches repeat, and a
    hash costs more than the lookup."""
    return hashlib.sha256(key).digest()[0]


def state_leaf(key: bytes, value: bytes) -> bytes:
    return leaf_hash(codec.encode((key, value)))


class StateProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A key's value with its bucket path and top path: as data, it travels in audit proofs."""

    key: bytes
    value: bytes
    bucket: int
    bucket_index: int
    bucket_size: int
    bucket_path: tuple[bytes, ...]
    top_path: tuple[bytes, ...]

    def verify(self, state_root: bytes) -> bool:
        bucket_root = root_from_inclusion(
            state_leaf(self.key, self.value), self.bucket_index, self.bucket_size, self.bucket_path
        )
        if bucket_root is None:
            return False
        return verify_inclusion(leaf_hash(bucket_root), self.bucket, BUCKETS, self.top_path, state_root)


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
    def __init__(self, items: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._values: dict[bytes, bytes] = {}
        self._buckets: list[dict[bytes, bytes]] = [{} for _ in range(BUCKETS)]
        self._bucket_roots: list[bytes | None] = [None] * BUCKETS
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

    # --- raw access ---------------------------------------------------------------------

    def set(self, key: bytes, value: bytes) -> None:
        bucket = bucket_of(key)
        if self._journals:
            journal = self._journals[-1]
            if key not in journal:
                journal[key] = (self._values.get(key), key in self._dirty)
        if key not in self._values:
            self._groups.setdefault(_group(key), set()).add(key)
        self._values[key] = value
        self._buckets[bucket][key] = value
        self._bucket_roots[bucket] = None
        self._dirty.add(key)

    def delete(self, key: bytes) -> None:
        if key not in self._values:
            return
        bucket = bucket_of(key)
        if self._journals:
            journal = self._journals[-1]
            if key not in journal:
                journal[key] = (self._values[key], key in self._dirty)
        self._unset(key, bucket)
        self._bucket_roots[bucket] = None
        self._dirty.add(key)

    def _unset(self, key: bytes, bucket: int) -> None:
        del self._values[key]
        del self._buckets[bucket][key]
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
        """Undo every write since the matching `begin_transaction`. The buckets it touched
        are re-hashed when a root is next asked for."""
        if not self._journals:
            raise InTransaction("rollback without an open transaction")
        for key, (before, was_dirty) in self._journals.pop().items():
            bucket = bucket_of(key)
            if before is None:
                if key in self._values:
                    self._unset(key, bucket)
            else:
                if key not in self._values:
                    self._groups.setdefault(_group(key), set()).add(key)
                self._values[key] = before
                self._buckets[bucket][key] = before
            self._bucket_roots[bucket] = None
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

    def _bucket_leaves(self, bucket: int) -> list[bytes]:
        entries = self._buckets[bucket]
        return [state_leaf(key, entries[key]) for key in sorted(entries)]

    def bucket_root(self, bucket: int) -> bytes:
        root = self._bucket_roots[bucket]
        if root is None:
            root = root_of_hashes(self._bucket_leaves(bucket))
            self._bucket_roots[bucket] = root
        return root

    def root(self) -> bytes:
        self._require_no_transaction("the state root")
        return root_of_hashes([leaf_hash(self.bucket_root(b)) for b in range(BUCKETS)])

    def prove(self, key: bytes) -> StateProof | None:
        self._require_no_transaction("a state proof")
        value = self.get(key)
        if value is None:
            return None
        bucket = bucket_of(key)
        keys = sorted(self._buckets[bucket])
        index = keys.index(key)
        leaves = self._bucket_leaves(bucket)
        top = [leaf_hash(self.bucket_root(b)) for b in range(BUCKETS)]
        return StateProof(key, value, bucket, index, len(keys), tuple(inclusion_proof(leaves, index)),
                          tuple(inclusion_proof(top, bucket)))


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

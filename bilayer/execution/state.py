"""The executed state and its commitment.

State is a map of byte keys to canonical msgpack values:

    b"B" + public key + asset   -> balance (int)
    b"A" + public key           -> (next sequence number, id of the author's last ordered entry)

The state root is a two-level RFC 6962 tree: each key falls in one of 256 buckets (the
first byte of SHA-256(key)); a bucket's root is the Merkle root of its leaves
`encode((key, value))` sorted by key; the state root is the Merkle root of the 256 bucket
roots. A change re-hashes only its bucket, and an inclusion proof is a bucket path plus a
top path, so light clients can check any account against a checkpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from .. import codec
from .merkle import inclusion_proof, leaf_hash, root_from_inclusion, root_of_hashes, verify_inclusion

BUCKETS = 256


def balance_key(public_key: bytes, asset: str) -> bytes:
    return b"B" + public_key + asset.encode()


def author_key(public_key: bytes) -> bytes:
    return b"A" + public_key


def bucket_of(key: bytes) -> int:
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


class State:
    def __init__(self, items: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._values: dict[bytes, bytes] = {}
        self._buckets: list[dict[bytes, bytes]] = [{} for _ in range(BUCKETS)]
        self._bucket_roots: list[bytes | None] = [None] * BUCKETS
        self._dirty: set[bytes] = set()
        self.derived: dict[str, Any] = {}  # caches of decoded state, owned by the modules that fill them
        for key, value in items:
            self.set(key, value)
        self._dirty.clear()

    # --- raw access ---------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        return self._values.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        bucket = bucket_of(key)
        self._values[key] = value
        self._buckets[bucket][key] = value
        self._bucket_roots[bucket] = None
        self._dirty.add(key)

    def delete(self, key: bytes) -> None:
        if key not in self._values:
            return
        bucket = bucket_of(key)
        del self._values[key]
        del self._buckets[bucket][key]
        self._bucket_roots[bucket] = None
        self._dirty.add(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._values.items())

    def take_dirty(self) -> list[tuple[bytes, bytes | None]]:
        """Keys changed since the last call, with their values, None when deleted (for persisting)."""
        changed = [(key, self._values.get(key)) for key in sorted(self._dirty)]
        self._dirty.clear()
        return changed

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
        return {key[len(prefix):].decode(): codec.decode(value, int)
                for key, value in self._values.items() if key.startswith(prefix)}

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
        return root_of_hashes([leaf_hash(self.bucket_root(b)) for b in range(BUCKETS)])

    def prove(self, key: bytes) -> StateProof | None:
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

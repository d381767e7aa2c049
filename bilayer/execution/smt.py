"""A versioned sparse Merkle tree, stored as 16-ary nodes (the Jellyfish Merkle Tree's layout).

The tree it commits to is the binary one of execution/smt_proof.py. It is stored as nodes of
16 children, one per nibble of the key hash, so a path from the root to one of 10^7 keys
reads about six nodes rather than twenty-four:

* a leaf node holds a key and its value; it sits at the shortest nibble prefix of its key
  hash that no other key shares;
* an internal node holds, for each of its 16 nibbles, nothing or a reference to a child: the
  version the child was written at, its hash, and whether it is a leaf. Its hash is the four
  binary levels above those children, with the same collapsing of single-leaf and empty
  subtrees as the logical tree, so a node hashes without reading its children;
* every internal node has at least two leaves below it: a subtree left with one leaf is
  replaced by that leaf, moved up.

Nodes are never changed: version v writes the nodes its changes make, at (v, nibble path),
and reports the nodes it replaced as stale (in version v and after, they are no longer part
of the tree). Every version's root stays readable until the stale nodes are pruned, which
makes proofs of past versions a walk, not a re-execution. Where nodes live is not this
module's concern: it reads them through a `NodeReader` and returns what to write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from ..errors import BilayerError
from .smt_proof import (
    EMPTY_HASH,
    INTERNAL_DOMAIN,
    ProofLeaf,
    SparseProof,
    internal_hash,
    key_hash,
    leaf_hash,
    value_hash,
)

# (version it was written at, nibble path from the root: one byte per nibble)
NodeKey = tuple[int, bytes]


class Child(msgspec.Struct, frozen=True, array_like=True):
    """An internal node's reference to a child (or a version's reference to its root node)."""

    version: int
    hash: bytes
    leaf: bool


class LeafNode(msgspec.Struct, frozen=True, array_like=True, tag=0):
    key: bytes
    value: bytes


class InternalNode(msgspec.Struct, frozen=True, array_like=True, tag=1):
    children: tuple[Child | None, ...]  # 16, indexed by nibble


Node = LeafNode | InternalNode

_node_decoder = msgspec.msgpack.Decoder(Node)
_node_encoder = msgspec.msgpack.Encoder()


def encode_node(node: Node) -> bytes:
    return _node_encoder.encode(node)


def decode_node(data: bytes) -> Node:
    return _node_decoder.decode(data)


class DuplicateChange(BilayerError):
    """A version's changes name the same key twice."""

    code = "state_change_duplicate"


class StateVersionPruned(BilayerError):
    """The state of that version was pruned: only the most recent versions are retained."""

    code = "state_version_pruned"


class NodeMissing(BilayerError):
    """A node the tree refers to is not in the store: the store is damaged."""

    code = "state_node_missing"


class NodeReader(Protocol):
    def read_node(self, key: NodeKey) -> Node:
        """The node at `key`; raises NodeMissing when there is none."""
        ...


@dataclass(frozen=True)
class TreeUpdate:
    """What one version changes: its root (None: the empty tree), the nodes to write, and
    the nodes no longer part of the tree from this version on."""

    version: int
    root: Child | None
    nodes: dict[NodeKey, Node]
    stale: tuple[NodeKey, ...]

    @property
    def root_hash(self) -> bytes:
        return EMPTY_HASH if self.root is None else self.root.hash


def root_hash(root: Child | None) -> bytes:
    return EMPTY_HASH if root is None else root.hash


def nibble(hashed_key: bytes, depth: int) -> int:
    byte = hashed_key[depth >> 1]
    return byte >> 4 if depth & 1 == 0 else byte & 0x0F


def _range_hash(children: Sequence[Child | None], lo: int, width: int) -> bytes:
    """The hash of the binary subtree over children[lo:lo+width]: empty, one leaf moved up,
    or the two halves hashed."""
    if width == 1:
        child = children[lo]
        return EMPTY_HASH if child is None else child.hash
    present = [c for c in children[lo:lo + width] if c is not None]
    if not present:
        return EMPTY_HASH
    if len(present) == 1 and present[0].leaf:
        return present[0].hash
    half = width >> 1
    return internal_hash(_range_hash(children, lo, half), _range_hash(children, lo + half, half))


def node_hash(children: Sequence[Child | None]) -> bytes:
    """`_range_hash` over all 16 children, computed bottom up: each level pairs the one
    below, carrying for each subtree its hash and whether it is empty (0), one leaf (1)
    or more (2), which is all the collapsing rule needs."""
    sha256 = hashlib.sha256
    level = [(EMPTY_HASH, 0) if c is None else (c.hash, 1 if c.leaf else 2) for c in children]
    while len(level) > 1:
        paired = []
        for i in range(0, len(level), 2):
            (left, left_kind), (right, right_kind) = level[i], level[i + 1]
            if right_kind == 0 and left_kind < 2:
                paired.append(level[i])
            elif left_kind == 0 and right_kind == 1:
                paired.append(level[i + 1])
            else:
                paired.append((sha256(INTERNAL_DOMAIN + left + right).digest(), 2))
        level = paired
    return level[0][0]


class _Pending:
    """A leaf whose place is not yet known: it may still move up when its siblings go."""

    __slots__ = ("hash", "key_hash", "leaf", "old")

    def __init__(self, leaf: LeafNode, hashed_key: bytes, old: NodeKey | None) -> None:
        self.leaf = leaf
        self.key_hash = hashed_key
        self.hash = leaf_hash(hashed_key, value_hash(leaf.value))
        self.old = old  # where it is stored now, if it is an existing leaf


_Sub = Child | _Pending | None
# one change, with its key hashed: (key hash, key, new value or None to delete)
_Change = tuple[bytes, bytes, bytes | None]


class _Update:
    def __init__(self, reader: NodeReader, version: int, changes: list[_Change]) -> None:
        self.reader = reader
        self.version = version
        self.changes = changes
        self.nodes: dict[NodeKey, Node] = {}
        self.stale: list[NodeKey] = []

    def read_leaf(self, key: NodeKey) -> LeafNode:
        node = self.reader.read_node(key)
        if not isinstance(node, LeafNode):
            raise NodeMissing(f"no leaf at version {key[0]}, path {key[1].hex()}")
        return node

    def read_internal(self, key: NodeKey) -> InternalNode:
        node = self.reader.read_node(key)
        if not isinstance(node, InternalNode) or len(node.children) != 16:
            raise NodeMissing(f"no internal node at version {key[0]}, path {key[1].hex()}")
        return node

    def split(self, depth: int, lo: int, hi: int) -> Iterable[tuple[int, int, int]]:
        """(nibble, start, end) of each run of changes[lo:hi] sharing the nibble at `depth`."""
        changes = self.changes
        start = lo
        while start < hi:
            n = nibble(changes[start][0], depth)
            end = start + 1
            while end < hi and nibble(changes[end][0], depth) == n:
                end += 1
            yield n, start, end
            start = end

    def at(self, existing: Child | None, path: bytes, lo: int, hi: int) -> _Sub:
        """The subtree at `path` after changes[lo:hi]; `existing` itself when unchanged."""
        if existing is None:
            return self.build(path, lo, hi, None, None)
        node_key = (existing.version, path)
        if existing.leaf:
            result = self.build(path, lo, hi, self.read_leaf(node_key), node_key)
            if isinstance(result, _Pending) and result.old == node_key:
                return existing
            return result
        children: list[_Sub] = list(self.read_internal(node_key).children)
        changed = False
        for n, start, end in self.split(len(path), lo, hi):
            before = children[n]
            assert before is None or isinstance(before, Child)
            after = self.at(before, path + bytes((n,)), start, end)
            if after is not before:
                changed = True
            children[n] = after
        if not changed:
            return existing
        self.stale.append(node_key)
        return self.finish(path, children)

    def build(self, path: bytes, lo: int, hi: int, old: LeafNode | None, old_key: NodeKey | None) -> _Sub:
        """The subtree at `path` holding the new leaves of changes[lo:hi] and the existing
        leaf `old` (unless a change replaces or deletes it)."""
        pending: list[_Pending] = []
        old_hash = key_hash(old.key) if old is not None else b""
        old_placed = old is None
        for hashed, key, value in self.changes[lo:hi]:
            if hashed == old_hash:
                assert old is not None and old_key is not None
                old_placed = True
                if value == old.value:
                    pending.append(_Pending(old, hashed, old_key))
                    continue
                self.stale.append(old_key)
            if value is not None:
                pending.append(_Pending(LeafNode(key, value), hashed, None))
        if not old_placed:
            assert old is not None
            pending.append(_Pending(old, old_hash, old_key))
            pending.sort(key=lambda p: p.key_hash)
        return self.grow(path, pending)

    def grow(self, path: bytes, pending: list[_Pending]) -> _Sub:
        if not pending:
            return None
        if len(pending) == 1:
            return pending[0]
        depth = len(path)
        children: list[_Sub] = [None] * 16
        start = 0
        while start < len(pending):
            n = nibble(pending[start].key_hash, depth)
            end = start + 1
            while end < len(pending) and nibble(pending[end].key_hash, depth) == n:
                end += 1
            children[n] = self.grow(path + bytes((n,)), pending[start:end])
            start = end
        return self.finish(path, children)

    def finish(self, path: bytes, children: list[_Sub]) -> _Sub:
        """The internal node at `path` over `children`, or, with one leaf left, that leaf."""
        present = [(n, c) for n, c in enumerate(children) if c is not None]
        if not present:
            return None
        if len(present) == 1:
            n, only = present[0]
            if isinstance(only, _Pending):
                return only
            if only.leaf:  # an untouched leaf whose siblings went: it moves up
                key = (only.version, path + bytes((n,)))
                leaf = self.read_leaf(key)
                return _Pending(leaf, key_hash(leaf.key), key)
        refs: list[Child | None] = []
        for n, child in enumerate(children):
            refs.append(self.place(child, path + bytes((n,))) if isinstance(child, _Pending) else child)
        node = InternalNode(tuple(refs))
        self.nodes[(self.version, path)] = node
        return Child(self.version, node_hash(refs), False)

    def place(self, pending: _Pending, path: bytes) -> Child:
        """Store a leaf at `path`: where it already is, nothing is written."""
        if pending.old is not None:
            if pending.old[1] == path:
                return Child(pending.old[0], pending.hash, True)
            self.stale.append(pending.old)
        self.nodes[(self.version, path)] = pending.leaf
        return Child(self.version, pending.hash, True)


def prepare_changes(changes: Iterable[tuple[bytes, bytes | None]]) -> list[_Change]:
    """The changes ordered by key hash (the tree's order); a key named twice is refused."""
    hashed = sorted(((key_hash(key), key, value) for key, value in changes), key=lambda change: change[0])
    for i in range(1, len(hashed)):
        if hashed[i][0] == hashed[i - 1][0]:
            raise DuplicateChange(f"key {hashed[i][1].hex()} changed twice in one version")
    return hashed


def apply(reader: NodeReader, root: Child | None, version: int,
          changes: Iterable[tuple[bytes, bytes | None]]) -> TreeUpdate:
    """Version `version` of the tree whose previous root is `root`, after `changes`: each a
    key and its new value, or None to delete it (deleting an absent key changes nothing).
    The result depends only on the tree's content, never on the order of the changes."""
    prepared = prepare_changes(changes)
    update = _Update(reader, version, prepared)
    result = update.at(root, b"", 0, len(prepared))
    new_root = update.place(result, b"") if isinstance(result, _Pending) else result
    return TreeUpdate(version, new_root, update.nodes, tuple(update.stale))


def _leaf_at(reader: NodeReader, key: NodeKey) -> LeafNode:
    node = reader.read_node(key)
    if not isinstance(node, LeafNode):
        raise NodeMissing(f"no leaf at version {key[0]}, path {key[1].hex()}")
    return node


def _ending(leaf: LeafNode, hashed: bytes, siblings: list[bytes]) -> tuple[bytes | None, SparseProof]:
    leaf_key_hash = key_hash(leaf.key)
    proof = SparseProof(ProofLeaf(leaf_key_hash, value_hash(leaf.value)), tuple(siblings))
    return (leaf.value if leaf_key_hash == hashed else None), proof


def prove(reader: NodeReader, root: Child | None, key: bytes) -> tuple[bytes | None, SparseProof]:
    """The value of `key` in the tree of `root` (None: absent) and the proof of it."""
    hashed = key_hash(key)
    siblings: list[bytes] = []
    if root is None:
        return None, SparseProof(None, ())
    ref, path = root, b""
    while not ref.leaf:
        node = reader.read_node((ref.version, path))
        if not isinstance(node, InternalNode) or len(node.children) != 16:
            raise NodeMissing(f"no internal node at version {ref.version}, path {path.hex()}")
        children = node.children
        n = nibble(hashed, len(path))
        lo, width = 0, 16
        while width > 1:
            half = width >> 1
            if n < lo + half:
                mine, other = lo, lo + half
            else:
                mine, other = lo + half, lo
            siblings.append(_range_hash(children, other, half))
            lo, width = mine, half
            present = [(i, c) for i, c in enumerate(children[lo:lo + width], lo) if c is not None]
            if not present:
                return None, SparseProof(None, tuple(siblings))
            if len(present) == 1 and present[0][1].leaf:
                index, child = present[0]
                return _ending(_leaf_at(reader, (child.version, path + bytes((index,)))), hashed, siblings)
        below = children[n]
        assert below is not None  # the one-slot range was found neither empty nor a single leaf
        ref, path = below, path + bytes((n,))
    return _ending(_leaf_at(reader, (ref.version, path)), hashed, siblings)


def get(reader: NodeReader, root: Child | None, key: bytes) -> bytes | None:
    """The value of `key` in the tree of `root`, None when absent: a walk down the nibbles."""
    hashed = key_hash(key)
    ref: Child | None = root
    path = b""
    while ref is not None:
        if ref.leaf:
            leaf = _leaf_at(reader, (ref.version, path))
            return leaf.value if leaf.key == key else None
        node = reader.read_node((ref.version, path))
        if not isinstance(node, InternalNode) or len(node.children) != 16:
            raise NodeMissing(f"no internal node at version {ref.version}, path {path.hex()}")
        n = nibble(hashed, len(path))
        ref, path = node.children[n], path + bytes((n,))
    return None


class MemoryNodes:
    """Nodes in a dict: for tests and for building a tree in one go."""

    def __init__(self) -> None:
        self.nodes: dict[NodeKey, Node] = {}

    def read_node(self, key: NodeKey) -> Node:
        node = self.nodes.get(key)
        if node is None:
            raise NodeMissing(f"no node at version {key[0]}, path {key[1].hex()}")
        return node

    def write(self, update: TreeUpdate) -> None:
        self.nodes.update(update.nodes)

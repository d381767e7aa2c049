"""Snapshot sync of the sparse Merkle tree: one version's nodes, moved and verified chunk by chunk.

A node that joins knows one thing about the state it wants: a root hash that a quorum
certified. It fetches the tree of that root top-down from peers it does not trust:

* the root node first: accepted only if its hash, computed here, is the certified root;
* then, chunk by chunk, the nodes below references it already trusts. A chunk answers a
  request naming one or more of the subtrees still missing: each subtree's nodes in
  breadth-first order, one subtree after the other, cut at the number of nodes asked for
  (many subtrees near the bottom of the tree hold a few nodes each; one request for each
  would cost more than their nodes). Each node is accepted only if its hash, computed here
  from its content (a leaf's from its key and value, an internal node's from its children,
  with smt.py's hashing), is the hash its parent's reference promised. No hash a peer sends
  is trusted;
* done when no reference is pending: every node of the tree is then one its parent named,
  back to the certified root.

The hashes bind everything but one detail: the version a child reference names (where the
node is stored) is not part of any hash. It is bounded instead (a child is never newer than
its parent, nor the root than the snapshot), so a lying peer can at worst change where a
node is stored, never what the tree holds nor what it proves. Besides the hash, each node
must obey the tree's rules, which close the room the collapsing of single leaves leaves
open: a leaf sits on the path of its own key hash (a leaf moved to a neighbouring empty
slot would otherwise hash the same), and an internal node has two children or one internal
child (one leaf alone would hash as that leaf).

`SyncPlan` is the joining side: requests out, chunks in, nodes to write out, or a typed
`SnapshotChunkInvalid` naming what was wrong, so the caller drops the peer that sent it; a
refused chunk changes nothing. `serve_request` is the serving side. Neither does I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import msgspec

from ..errors import BilayerError
from .smt import Child, InternalNode, LeafNode, Node, NodeKey, NodeReader, node_hash
from .smt_proof import EMPTY_HASH, key_hash, leaf_hash, value_hash

MAX_CHUNK_NODES = 100_000
"""The most nodes one chunk may be asked for: a bound on what one answer costs both sides."""

MAX_REQUEST_SUBTREES = 1024
"""The most subtrees one request may name."""

MAX_DEPTH = 64  # nibbles in a key hash: no node sits deeper


class Subtree(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """The subtree at `path` whose top node was written at `version` (None: the root of the
    snapshot, whose version the joining node does not know yet)."""

    path: bytes
    version: int | None


class ChunkRequest(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """The first `max_nodes` nodes of `subtrees`, each in breadth-first order, in turn."""

    subtrees: tuple[Subtree, ...]
    max_nodes: int


class ChunkNode(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    version: int
    path: bytes
    node: Node


class SnapshotChunk(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """The answer to the request for the subtrees at `paths` (in the request's order)."""

    paths: tuple[bytes, ...]
    nodes: tuple[ChunkNode, ...]


_request_decoder = msgspec.msgpack.Decoder(ChunkRequest)
_chunk_decoder = msgspec.msgpack.Decoder(SnapshotChunk)
_encoder = msgspec.msgpack.Encoder()


# --- refusals -------------------------------------------------------------------------------


class SnapshotChunkInvalid(BilayerError):
    """A chunk of the state snapshot does not verify: the peer that sent it is not to be trusted."""

    code = "snapshot_chunk_invalid"


class SnapshotChunkMalformed(SnapshotChunkInvalid):
    """The chunk is not one: undecodable bytes, or a node that breaks the tree's rules."""

    code = "snapshot_chunk_malformed"


class SnapshotChunkHashMismatch(SnapshotChunkInvalid):
    """A node is not the one its parent's reference names: its hash, or its kind, differs."""

    code = "snapshot_chunk_hash_mismatch"


class SnapshotChunkOutOfPlace(SnapshotChunkInvalid):
    """A node is not where the requested subtrees have their next node: from another subtree,
    past their end, or a leaf off the path of its own key."""

    code = "snapshot_chunk_out_of_place"


class SnapshotChunkTooLarge(SnapshotChunkInvalid):
    """The chunk holds more nodes than were asked for."""

    code = "snapshot_chunk_too_large"


class SnapshotChunkTruncated(SnapshotChunkInvalid):
    """The chunk stops short: fewer nodes than asked for while its subtrees have more."""

    code = "snapshot_chunk_truncated"


class SnapshotChunkNotPending(BilayerError):
    """The chunk answers for a subtree the sync is not waiting for (already received, or never
    named by a trusted node): nothing to accept, and not proof of a bad peer."""

    code = "snapshot_chunk_not_pending"


class SnapshotRequestInvalid(BilayerError):
    """A request for a snapshot chunk names no subtrees this node can serve."""

    code = "snapshot_request_invalid"


# --- the wire form ------------------------------------------------------------------------


def encode_request(request: ChunkRequest) -> bytes:
    return _encoder.encode(request)


def decode_request(data: bytes) -> ChunkRequest:
    try:
        request = _request_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotRequestInvalid(f"not a chunk request: {exc}") from exc
    _check_request(request)
    return request


def _check_request(request: ChunkRequest) -> None:
    if not 1 <= request.max_nodes <= MAX_CHUNK_NODES:
        raise SnapshotRequestInvalid(f"a chunk holds 1 to {MAX_CHUNK_NODES} nodes")
    if not 1 <= len(request.subtrees) <= MAX_REQUEST_SUBTREES:
        raise SnapshotRequestInvalid(f"a request names 1 to {MAX_REQUEST_SUBTREES} subtrees")
    for subtree in request.subtrees:
        if len(subtree.path) > MAX_DEPTH or any(n > 15 for n in subtree.path):
            raise SnapshotRequestInvalid(f"{subtree.path.hex()} is not a path of the tree")
        if subtree.version is None and subtree.path != b"":
            raise SnapshotRequestInvalid("only the root is asked for without its version")
        if subtree.version is not None and subtree.version < 0:
            raise SnapshotRequestInvalid("a version is never negative")


def encode_chunk(chunk: SnapshotChunk) -> bytes:
    return _encoder.encode(chunk)


def decode_chunk(data: bytes) -> SnapshotChunk:
    try:
        return _chunk_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotChunkMalformed(f"not a snapshot chunk: {exc}") from exc


# --- the serving side -----------------------------------------------------------------------


@runtime_checkable
class NodeBatchReader(NodeReader, Protocol):
    def read_nodes(self, keys: Sequence[NodeKey]) -> list[Node]:
        """The nodes at `keys`, in their order; raises NodeMissing when one is not there."""
        ...


def subtrees_nodes(reader: NodeReader, tops: Sequence[NodeKey], max_nodes: int) -> list[ChunkNode]:
    """The first `max_nodes` nodes of the subtrees whose top nodes are at `tops`: each
    subtree in breadth-first order, children in nibble order, one subtree after the other.

    Read a wave at a time: the next level of every subtree that can still reach into the
    answer, in one call where the reader can (`NodeBatchReader`); a level is cut where the
    nodes already read before it fill the answer, so little is read that is not sent."""
    read_many = reader.read_nodes if isinstance(reader, NodeBatchReader) else None
    read_by_subtree: list[list[ChunkNode]] = [[] for _ in tops]  # breadth-first, as read
    frontier: list[list[NodeKey]] = [[top] for top in tops]
    while True:
        wave: list[tuple[int, NodeKey]] = []
        before = 0  # nodes read of the subtrees before this one: at least that many come first
        for i, keys in enumerate(frontier):
            room = max_nodes - before - len(read_by_subtree[i])
            if room > 0:
                wave.extend((i, key) for key in keys[:room])
            before += len(read_by_subtree[i])
            frontier[i] = []
        if not wave:
            break
        keys = [key for _, key in wave]
        read = read_many(keys) if read_many is not None else [reader.read_node(key) for key in keys]
        for (i, (version, path)), node in zip(wave, read, strict=True):
            read_by_subtree[i].append(ChunkNode(version, path, node))
            if isinstance(node, InternalNode):
                frontier[i].extend((child.version, path + bytes((n,))) for n, child in enumerate(node.children)
                                   if child is not None)
    return [node for subtree in read_by_subtree for node in subtree][:max_nodes]


def serve_request(reader: NodeReader, root: Child | None, request: ChunkRequest) -> SnapshotChunk:
    """The answer to `request` from the tree of `root` (the snapshot's root reference)."""
    _check_request(request)
    tops: list[NodeKey] = []
    for subtree in request.subtrees:
        if subtree.version is None:
            if root is not None:
                tops.append((root.version, b""))
        elif root is None or subtree.version > root.version:
            raise SnapshotRequestInvalid(f"the snapshot has no node of version {subtree.version}")
        else:
            tops.append((subtree.version, subtree.path))
    return SnapshotChunk(tuple(s.path for s in request.subtrees), tuple(subtrees_nodes(reader, tops,
                                                                                      request.max_nodes)))


# --- the joining side ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkAccepted:
    """What one accepted chunk gives: the nodes to write, keyed as the source keys them, the
    pending subtrees it completed or began (`received`), and the references it leaves
    pending in their place (children the chunk did not reach)."""

    nodes: dict[NodeKey, Node]
    received: tuple[bytes, ...]
    pending: dict[bytes, Child]


def _refuse(kind: type[SnapshotChunkInvalid], message: str, index: int, path: bytes) -> SnapshotChunkInvalid:
    return kind(f"node {index} of the chunk, at path {path.hex() or 'root'}: {message}", index=index,
                path=path.hex())


_NIBBLE_DIGITS = bytes.maketrans(bytes(range(16)), b"0123456789abcdef")


def _check_node(entry: ChunkNode, promised: bytes, leaf: bool | None, index: int) -> None:
    """That `entry` is the node a trusted reference names: the tree's rules, then its hash.
    `leaf` None: the kind is not known (the snapshot's root)."""
    node, path = entry.node, entry.path
    if isinstance(node, LeafNode):
        hashed = key_hash(node.key)
        # the leaf's key hash begins with the nibbles of its path
        if hashed.hex()[:len(path)] != path.translate(_NIBBLE_DIGITS).decode():
            raise _refuse(SnapshotChunkOutOfPlace, "a leaf off the path of its own key", index, path)
        if leaf is False:
            raise _refuse(SnapshotChunkHashMismatch, "a leaf where an internal node is named", index, path)
        computed = leaf_hash(hashed, value_hash(node.value))
    else:
        children = node.children
        if len(children) != 16:
            raise _refuse(SnapshotChunkMalformed, f"an internal node of {len(children)} slots, not 16", index, path)
        if len(path) >= MAX_DEPTH:
            raise _refuse(SnapshotChunkMalformed, "an internal node below the deepest level", index, path)
        present = [c for c in children if c is not None]
        if not present or (len(present) == 1 and present[0].leaf):
            raise _refuse(SnapshotChunkMalformed, "an internal node without two leaves below it", index, path)
        for child in present:
            if len(child.hash) != 32 or child.hash == EMPTY_HASH:
                raise _refuse(SnapshotChunkMalformed, "a child reference without a node's hash", index, path)
            if not 0 <= child.version <= entry.version:
                raise _refuse(SnapshotChunkMalformed, "a child newer than its parent", index, path)
        if leaf is True:
            raise _refuse(SnapshotChunkHashMismatch, "an internal node where a leaf is named", index, path)
        computed = node_hash(children)
    if computed != promised:
        raise _refuse(SnapshotChunkHashMismatch, "its hash is not the one its reference names", index, path)


class SyncPlan:
    """The transfer of the tree of one certified root, at state version `version`.

    `pending` maps each subtree still missing to the trusted reference naming it; before the
    root node arrives, the root's entry is None (its hash is the certified root, its version
    and kind are not known). Requests name the most recently named subtrees first, which
    walks the tree depth-first chunk by chunk: what is pending stays bounded by the chunk
    size times the depth, never by the number of keys.
    """

    def __init__(self, root_hash: bytes, version: int, *, chunk_nodes: int = 4000,
                 pending: dict[bytes, Child | None] | None = None, root: Child | None = None) -> None:
        if not 1 <= chunk_nodes <= MAX_CHUNK_NODES:
            raise ValueError(f"a chunk holds 1 to {MAX_CHUNK_NODES} nodes")
        if len(root_hash) != 32 or version < 0:
            raise ValueError("a snapshot is a 32-byte root hash at a version of at least 0")
        self.root_hash = root_hash
        self.version = version
        self.chunk_nodes = chunk_nodes
        self.root = root
        if pending is not None:
            self.pending = dict(pending)
        else:
            self.pending = {} if root_hash == EMPTY_HASH else {b"": None}

    @classmethod
    def resume(cls, root_hash: bytes, version: int, root: Child | None, pending: Iterable[tuple[bytes, Child | None]],
               *, chunk_nodes: int = 4000) -> SyncPlan:
        """The plan of a sync that already holds some nodes: `root` as received (None while the
        root is still pending) and the references still pending, as they were persisted."""
        return cls(root_hash, version, chunk_nodes=chunk_nodes, pending=dict(pending), root=root)

    @property
    def done(self) -> bool:
        return not self.pending

    def next_request(self, subtrees: int = 256) -> ChunkRequest | None:
        """A request for up to `subtrees` pending subtrees, the most recently named first
        (None when nothing is pending)."""
        named: list[Subtree] = []
        for path in reversed(self.pending):
            if len(named) >= min(subtrees, MAX_REQUEST_SUBTREES, self.chunk_nodes):
                break
            ref = self.pending[path]
            named.append(Subtree(path, None if ref is None else ref.version))
        return ChunkRequest(tuple(named), self.chunk_nodes) if named else None

    def accept(self, chunk: SnapshotChunk) -> ChunkAccepted:
        """Verify `chunk` whole and, only if every node of it holds, take it: the nodes to
        write and the references newly pending. A refused chunk changes nothing."""
        paths = chunk.paths
        if not paths or len(paths) > min(MAX_REQUEST_SUBTREES, self.chunk_nodes) or len(set(paths)) != len(paths):
            raise SnapshotChunkMalformed(f"a chunk answers 1 to {MAX_REQUEST_SUBTREES} distinct subtrees")
        for path in paths:
            if path not in self.pending:
                raise SnapshotChunkNotPending(f"no subtree pending at path {path.hex() or 'root'}", path=path.hex())
        entries = chunk.nodes
        if len(entries) > self.chunk_nodes:
            raise SnapshotChunkTooLarge(f"{len(entries)} nodes where at most {self.chunk_nodes} were asked for",
                                        nodes=len(entries))
        nodes: dict[NodeKey, Node] = {}
        received: list[bytes] = []
        left: dict[bytes, Child] = {}
        root = self.root
        index = 0
        for top in paths:
            if index == len(entries):
                break
            received.append(top)
            # the places the subtree has next, in breadth-first order: (path, reference); None
            # for the snapshot's root, whose version and kind the root node itself tells
            expected: deque[tuple[bytes, Child | None]] = deque([(top, self.pending[top])])
            while expected and index < len(entries):
                entry = entries[index]
                path, ref = expected.popleft()
                if entry.path != path:
                    raise _refuse(SnapshotChunkOutOfPlace, f"the next node is at {path.hex() or 'root'}",
                                  index, entry.path)
                if ref is None:
                    if not 0 <= entry.version <= self.version:
                        raise _refuse(SnapshotChunkMalformed, "a root newer than the snapshot", index, path)
                    _check_node(entry, self.root_hash, None, index)
                    root = Child(entry.version, self.root_hash, isinstance(entry.node, LeafNode))
                else:
                    if entry.version != ref.version:
                        raise _refuse(SnapshotChunkOutOfPlace,
                                      f"named at version {ref.version}, sent at {entry.version}", index, path)
                    _check_node(entry, ref.hash, ref.leaf, index)
                nodes[(entry.version, path)] = entry.node
                if isinstance(entry.node, InternalNode):
                    expected.extend((path + bytes((n,)), child) for n, child in enumerate(entry.node.children)
                                    if child is not None)
                index += 1
            for path, ref in expected:  # the chunk ended inside this subtree
                assert ref is not None  # only a subtree's top can be the unknown root, and it was received
                left[path] = ref
        if index < len(entries):
            raise _refuse(SnapshotChunkOutOfPlace, "the requested subtrees have no more nodes", index,
                          entries[index].path)
        if len(entries) < self.chunk_nodes and (left or len(received) < len(paths)):
            raise SnapshotChunkTruncated(
                f"{len(entries)} nodes of the {self.chunk_nodes} asked for while the subtrees have more",
                nodes=len(entries))
        for path in received:
            del self.pending[path]
        self.pending.update(left)
        self.root = root
        return ChunkAccepted(nodes, tuple(received), left)


def leaves(reader: NodeReader, root: Child | None) -> Iterator[tuple[bytes, bytes]]:
    """Every key and value of the tree of `root`, in the order of their key hashes: the state
    a synced node rebuilds from its restored leaves. Holds a path's worth of nodes at a time."""
    if root is None:
        return
    stack: list[tuple[Child, bytes]] = [(root, b"")]
    while stack:
        ref, path = stack.pop()
        node = reader.read_node((ref.version, path))
        if isinstance(node, LeafNode):
            yield node.key, node.value
        else:
            stack.extend((child, path + bytes((n,))) for n, child in reversed(list(enumerate(node.children)))
                         if child is not None)

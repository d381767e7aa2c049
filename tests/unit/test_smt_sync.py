"""Snapshot sync of the sparse Merkle tree: a tree moved chunk by chunk from an untrusted source
answers exactly as the source does, and every kind of tampered chunk is refused with its code."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bilayer.api.status import error_status
from bilayer.execution.smt import (
    Child,
    InternalNode,
    LeafNode,
    MemoryNodes,
    Node,
    NodeKey,
    apply,
    get,
    node_hash,
    prove,
    root_hash,
)
from bilayer.execution.smt_proof import EMPTY_HASH, key_hash, leaf_hash, value_hash
from bilayer.execution.smt_sync import (
    ChunkNode,
    ChunkRequest,
    SnapshotChunk,
    SnapshotChunkHashMismatch,
    SnapshotChunkInvalid,
    SnapshotChunkMalformed,
    SnapshotChunkNotPending,
    SnapshotChunkOutOfPlace,
    SnapshotChunkTooLarge,
    SnapshotChunkTruncated,
    SnapshotRequestInvalid,
    Subtree,
    SyncPlan,
    decode_chunk,
    decode_request,
    encode_chunk,
    encode_request,
    leaves,
    serve_request,
)
from tests.support.smt_history import apply_history

keys = st.binary(min_size=0, max_size=3).map(lambda b: b"k" + b)
values = st.binary(min_size=0, max_size=8)
histories = st.lists(st.dictionaries(keys, st.none() | values, max_size=30), min_size=1, max_size=5)


def reachable(source: MemoryNodes, root: Child | None) -> dict[NodeKey, Node]:
    found: dict[NodeKey, Node] = {}
    todo = [] if root is None else [(root, b"")]
    while todo:
        ref, path = todo.pop()
        node = source.read_node((ref.version, path))
        found[(ref.version, path)] = node
        if isinstance(node, InternalNode):
            todo.extend((c, path + bytes((n,))) for n, c in enumerate(node.children) if c is not None)
    return found


def honest(plan: SyncPlan, source: MemoryNodes, root: Child | None, subtrees: int = 4) -> SnapshotChunk:
    """The next chunk an honest source sends, through the wire form both ways."""
    request = plan.next_request(subtrees)
    assert request is not None
    served = serve_request(source, root, decode_request(encode_request(request)))
    return decode_chunk(encode_chunk(served))


def sync(plan: SyncPlan, source: MemoryNodes, root: Child | None, target: MemoryNodes, subtrees: int = 4) -> int:
    chunks = 0
    while not plan.done:
        assert chunks < 100_000
        accepted = plan.accept(honest(plan, source, root, subtrees))
        target.nodes.update(accepted.nodes)
        chunks += 1
    return chunks


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.data(), st.integers(1, 12), st.integers(1, 5))
def test_a_synced_tree_answers_as_its_source(history: list[dict[bytes, bytes | None]], data: st.DataObject,
                                             chunk_nodes: int, subtrees: int) -> None:
    source, roots, models = apply_history(history)
    at = data.draw(st.integers(0, len(history) - 1))
    root, model = roots[at], models[at]
    plan = SyncPlan(root_hash(root), at + 1, chunk_nodes=chunk_nodes)
    target = MemoryNodes()
    sync(plan, source, root, target, subtrees)
    assert plan.root == root
    assert root_hash(plan.root) == root_hash(root)
    # exactly the source's nodes of that version, stored where the source stores them
    assert target.nodes == reachable(source, root)
    probes = {key for m in models for key in m} | {b"k", b"absent", b"k\xff\xff\xff"}
    for key in sorted(probes):
        assert get(target, plan.root, key) == get(source, root, key) == model.get(key)
        assert prove(target, plan.root, key) == prove(source, root, key)
    assert dict(leaves(target, plan.root)) == model
    assert [key_hash(k) for k, _ in leaves(target, plan.root)] == sorted(key_hash(k) for k in model)


def test_the_empty_tree_needs_no_chunk() -> None:
    plan = SyncPlan(EMPTY_HASH, 3)
    assert plan.done and plan.next_request() is None and plan.root is None
    assert list(leaves(MemoryNodes(), None)) == []


# --- tampering -------------------------------------------------------------------------------


def a_tree(count: int = 400) -> tuple[MemoryNodes, Child]:
    source = MemoryNodes()
    first = apply(source, None, 1, [(f"account-{i}".encode(), f"{i * 7}".encode()) for i in range(count)])
    source.write(first)
    second = apply(source, first.root, 2, [(f"account-{i}".encode(), b"changed") for i in range(0, count, 9)])
    source.write(second)
    assert second.root is not None
    return source, second.root


def refused(plan: SyncPlan, chunk: SnapshotChunk, kind: type[SnapshotChunkInvalid], code: str) -> SnapshotChunkInvalid:
    """`chunk` is refused with `kind`, and the plan is as it was."""
    before = (dict(plan.pending), plan.root)
    with pytest.raises(kind) as caught:
        plan.accept(chunk)
    assert caught.value.code == code
    assert (dict(plan.pending), plan.root) == before
    return caught.value


def finish(plan: SyncPlan, source: MemoryNodes, root: Child) -> None:
    """After every bad chunk, an honest source still brings the sync to the certified root."""
    whole = reachable(source, root)
    # what the chunks accepted so far gave: every node outside the subtrees still pending
    target = MemoryNodes()
    target.nodes.update({key: node for key, node in whole.items()
                         if not any(key[1].startswith(path) for path in plan.pending)})
    sync(plan, source, root, target)
    assert plan.root == root and target.nodes == whole
    for i in range(0, 400, 37):
        key = f"account-{i}".encode()
        assert prove(target, plan.root, key) == prove(source, root, key)


def with_node(chunk: SnapshotChunk, index: int, entry: ChunkNode) -> SnapshotChunk:
    nodes = list(chunk.nodes)
    nodes[index] = entry
    return SnapshotChunk(chunk.paths, tuple(nodes))


def first_index(chunk: SnapshotChunk, test: Callable[[ChunkNode], bool]) -> int:
    return next(i for i, entry in enumerate(chunk.nodes) if test(entry))


def started(chunk_nodes: int = 40) -> tuple[MemoryNodes, Child, SyncPlan]:
    """A plan past its root chunk, so that chunks below trusted references follow."""
    source, root = a_tree()
    plan = SyncPlan(root.hash, 2, chunk_nodes=chunk_nodes)
    plan.accept(honest(plan, source, root))
    return source, root, plan


def test_a_flipped_value_byte_is_refused() -> None:
    source, root, plan = started()
    chunk = honest(plan, source, root)
    i = first_index(chunk, lambda e: isinstance(e.node, LeafNode))
    leaf = chunk.nodes[i].node
    assert isinstance(leaf, LeafNode)
    flipped = bytes([leaf.value[0] ^ 0x01]) + leaf.value[1:]
    bad = with_node(chunk, i, ChunkNode(chunk.nodes[i].version, chunk.nodes[i].path, LeafNode(leaf.key, flipped)))
    error = refused(plan, bad, SnapshotChunkHashMismatch, "snapshot_chunk_hash_mismatch")
    assert error.details["index"] == i
    finish(plan, source, root)


def test_swapped_children_are_refused() -> None:
    source, root, plan = started()
    chunk = honest(plan, source, root)
    i = first_index(chunk, lambda e: isinstance(e.node, InternalNode)
                    and sum(c is not None for c in e.node.children) >= 2)
    node = chunk.nodes[i].node
    assert isinstance(node, InternalNode)
    a, b = [n for n, c in enumerate(node.children) if c is not None][:2]
    children = list(node.children)
    children[a], children[b] = children[b], children[a]
    bad = with_node(chunk, i, ChunkNode(chunk.nodes[i].version, chunk.nodes[i].path, InternalNode(tuple(children))))
    refused(plan, bad, SnapshotChunkHashMismatch, "snapshot_chunk_hash_mismatch")
    finish(plan, source, root)


def test_a_node_from_another_subtree_is_refused() -> None:
    source, root, plan = started()
    chunk = honest(plan, source, root, subtrees=1)
    elsewhere = next(entry for entry in serve_request(source, root, ChunkRequest(
        (Subtree(b"", None),), 400)).nodes if not entry.path.startswith(chunk.paths[0]))
    bad = with_node(chunk, len(chunk.nodes) // 2, elsewhere)
    refused(plan, bad, SnapshotChunkOutOfPlace, "snapshot_chunk_out_of_place")
    # the same node claimed at the right place: it is not the node that place names
    right_place = chunk.nodes[len(chunk.nodes) // 2]
    bad = with_node(chunk, len(chunk.nodes) // 2, ChunkNode(right_place.version, right_place.path, elsewhere.node))
    with pytest.raises(SnapshotChunkInvalid):
        plan.accept(bad)
    finish(plan, source, root)


def test_a_truncated_chunk_is_refused() -> None:
    source, root, plan = started()
    chunk = honest(plan, source, root, subtrees=256)
    assert len(chunk.nodes) == plan.chunk_nodes  # a full chunk: its subtrees have more
    refused(plan, SnapshotChunk(chunk.paths, chunk.nodes[:-1]), SnapshotChunkTruncated, "snapshot_chunk_truncated")
    refused(plan, SnapshotChunk(chunk.paths, ()), SnapshotChunkTruncated, "snapshot_chunk_truncated")
    with pytest.raises(SnapshotChunkMalformed) as caught:  # cut on the wire
        decode_chunk(encode_chunk(chunk)[:-7])
    assert caught.value.code == "snapshot_chunk_malformed"
    finish(plan, source, root)


def test_an_extra_node_is_refused() -> None:
    source, root, plan = started()
    full = honest(plan, source, root, subtrees=256)
    extra = full.nodes[0]
    refused(plan, SnapshotChunk(full.paths, (*full.nodes, extra)), SnapshotChunkTooLarge, "snapshot_chunk_too_large")
    # a chunk holding its subtrees whole, with room left: one node more is past their end
    small = next(entry for entry in reversed(list(plan.pending.items())))
    request = ChunkRequest((Subtree(small[0], small[1].version if small[1] else None),), plan.chunk_nodes)
    whole = serve_request(source, root, request)
    assert len(whole.nodes) < plan.chunk_nodes
    refused(plan, SnapshotChunk(whole.paths, (*whole.nodes, extra)), SnapshotChunkOutOfPlace,
            "snapshot_chunk_out_of_place")
    finish(plan, source, root)


def test_a_leaf_moved_off_its_path_is_refused_though_every_hash_holds() -> None:
    """A leaf alone in its pair of slots hashes the same in either slot: moving it there keeps
    the parent's hash, and only the rule that a leaf sits on its own key's path refuses it."""
    source, root = a_tree()
    plan = SyncPlan(root.hash, 2, chunk_nodes=10_000)
    chunk = honest(plan, source, root)  # the whole tree
    for parent in chunk.nodes:
        node = parent.node
        if not isinstance(node, InternalNode):
            continue
        slot = next((n for n, c in enumerate(node.children)
                     if c is not None and c.leaf and node.children[n ^ 1] is None), None)
        if slot is not None:
            break
    else:
        raise AssertionError("no leaf alone in its pair in a tree of 400 keys")
    children = list(node.children)
    children[slot ^ 1], children[slot] = children[slot], None
    assert node_hash(children) == node_hash(node.children)  # the parent's hash holds
    leaf_index = first_index(chunk, lambda e: e.path == parent.path + bytes((slot,)))
    nodes = list(chunk.nodes)
    nodes[chunk.nodes.index(parent)] = ChunkNode(parent.version, parent.path, InternalNode(tuple(children)))
    moved = nodes[leaf_index]
    nodes[leaf_index] = ChunkNode(moved.version, parent.path + bytes((slot ^ 1,)), moved.node)
    error = refused(plan, SnapshotChunk(chunk.paths, tuple(nodes)), SnapshotChunkOutOfPlace,
                    "snapshot_chunk_out_of_place")
    assert "off the path of its own key" in error.message
    finish(plan, source, root)


def test_an_internal_node_standing_for_one_leaf_is_refused() -> None:
    """Two leaves side by side hash the same whichever kind their references claim; an
    internal node over one leaf hashes as that leaf. Together they would pass the hashes."""
    source, root = a_tree()
    plan = SyncPlan(root.hash, 2, chunk_nodes=10_000)
    chunk = honest(plan, source, root)
    for parent in chunk.nodes:
        node = parent.node
        if isinstance(node, InternalNode):
            pair = next((n for n in range(0, 16, 2) if all(c is not None and c.leaf for c in node.children[n:n + 2])),
                        None)
            if pair is not None:
                break
    else:
        raise AssertionError("no two leaves side by side in a tree of 400 keys")
    ref = node.children[pair]
    assert ref is not None
    children = list(node.children)
    children[pair] = Child(ref.version, ref.hash, False)
    assert node_hash(children) == node_hash(node.children)
    leaf_index = first_index(chunk, lambda e: e.path == parent.path + bytes((pair,)))
    leaf = chunk.nodes[leaf_index].node
    assert isinstance(leaf, LeafNode)
    below = key_hash(leaf.key)
    depth = len(parent.path) + 1
    n = below[depth >> 1] >> 4 if depth % 2 == 0 else below[depth >> 1] & 0x0F
    lone = [None] * 16
    lone[n] = Child(ref.version, leaf_hash(below, value_hash(leaf.value)), True)
    standing = InternalNode(tuple(lone))
    assert node_hash(standing.children) == ref.hash
    nodes = list(chunk.nodes)
    nodes[chunk.nodes.index(parent)] = ChunkNode(parent.version, parent.path, InternalNode(tuple(children)))
    nodes[leaf_index] = ChunkNode(ref.version, parent.path + bytes((pair,)), standing)
    refused(plan, SnapshotChunk(chunk.paths, tuple(nodes)), SnapshotChunkMalformed, "snapshot_chunk_malformed")
    finish(plan, source, root)


def test_versions_that_no_hash_covers_are_bounded() -> None:
    source, root, plan = started()
    chunk = honest(plan, source, root)
    i = first_index(chunk, lambda e: isinstance(e.node, InternalNode))
    entry = chunk.nodes[i]
    node = entry.node
    assert isinstance(node, InternalNode)
    n = next(n for n, c in enumerate(node.children) if c is not None)
    children = list(node.children)
    child = children[n]
    assert child is not None
    children[n] = Child(entry.version + 1, child.hash, child.leaf)  # newer than its parent
    bad = with_node(chunk, i, ChunkNode(entry.version, entry.path, InternalNode(tuple(children))))
    refused(plan, bad, SnapshotChunkMalformed, "snapshot_chunk_malformed")
    # a node sent at another version than its reference names
    bad = with_node(chunk, i, ChunkNode(entry.version + 1, entry.path, node))
    refused(plan, bad, SnapshotChunkOutOfPlace, "snapshot_chunk_out_of_place")
    # a root claimed newer than the snapshot
    fresh = SyncPlan(root.hash, 2, chunk_nodes=40)
    top = honest(fresh, source, root)
    refused(fresh, with_node(top, 0, ChunkNode(3, b"", top.nodes[0].node)), SnapshotChunkMalformed,
            "snapshot_chunk_malformed")
    finish(plan, source, root)


def test_a_root_not_the_certified_one_is_refused() -> None:
    source, root = a_tree()
    other_source, other_root = a_tree(401)
    plan = SyncPlan(root.hash, 2, chunk_nodes=40)
    refused(plan, honest(plan, other_source, other_root), SnapshotChunkHashMismatch, "snapshot_chunk_hash_mismatch")
    finish(plan, source, root)


def test_a_chunk_for_no_pending_subtree_is_not_the_peer_s_fault_but_is_not_taken() -> None:
    source, root, plan = started()
    before = dict(plan.pending)
    with pytest.raises(SnapshotChunkNotPending) as caught:
        plan.accept(SnapshotChunk((b"",), ()))  # the root: already received
    assert caught.value.code == "snapshot_chunk_not_pending" and not isinstance(caught.value, SnapshotChunkInvalid)
    assert plan.pending == before
    refused(plan, SnapshotChunk((), ()), SnapshotChunkMalformed, "snapshot_chunk_malformed")
    path = next(iter(plan.pending))
    refused(plan, SnapshotChunk((path, path), ()), SnapshotChunkMalformed, "snapshot_chunk_malformed")
    finish(plan, source, root)


def test_bad_requests_are_refused_with_a_code() -> None:
    source, root = a_tree()
    bad = [
        b"\xc1",
        msgspec.msgpack.encode([[], 10]),
        msgspec.msgpack.encode([[[b"\x10", 1]], 10]),
        msgspec.msgpack.encode([[[b"\x01", None]], 10]),
        msgspec.msgpack.encode([[[b"", None]], 0]),
        msgspec.msgpack.encode([[[b"", -1]], 10]),
    ]
    for data in bad:
        with pytest.raises(SnapshotRequestInvalid) as caught:
            decode_request(data)
        assert caught.value.code == "snapshot_request_invalid"
    with pytest.raises(SnapshotRequestInvalid):
        serve_request(source, root, ChunkRequest((Subtree(b"\x01", root.version + 1),), 10))


def test_codes_and_their_statuses() -> None:
    for kind in (SnapshotChunkInvalid, SnapshotChunkMalformed, SnapshotChunkHashMismatch, SnapshotChunkOutOfPlace,
                 SnapshotChunkTooLarge, SnapshotChunkTruncated):
        assert issubclass(kind, SnapshotChunkInvalid) and error_status(kind.code) == 422
    assert error_status(SnapshotChunkNotPending.code) == 409
    assert error_status(SnapshotRequestInvalid.code) == 400

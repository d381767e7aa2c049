"""The versioned sparse Merkle tree against a plain dict, and its proofs against tampering."""

from __future__ import annotations

import random
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bilayer.execution.smt import (
    Child,
    DuplicateChange,
    InternalNode,
    MemoryNodes,
    NodeKey,
    NodeReader,
    apply,
    get,
    prove,
    root_hash,
)
from bilayer.execution.smt_proof import (
    EMPTY_HASH,
    ProofLeaf,
    SparseProof,
    bit,
    decode_proof,
    encode_proof,
    internal_hash,
    key_hash,
    leaf_hash,
    value_hash,
    verify_proof,
)
from bilayer.node.state_store import (
    StateStore,
    StateStoreCorrupt,
    StateVersionOrder,
    StateVersionPruned,
    StateVersionUnknown,
)
from tests.support.paths import REPO
from tests.support.smt_history import apply_history

# Few distinct keys, so that updates, deletes and re-inserts of the same key are common.
keys = st.binary(min_size=0, max_size=3).map(lambda b: b"k" + b)
values = st.binary(min_size=0, max_size=8)
version_changes = st.dictionaries(keys, st.none() | values, max_size=25)
histories = st.lists(version_changes, min_size=1, max_size=8)


def reference_root(content: dict[bytes, bytes]) -> bytes:
    """The logical binary tree of smt_proof's docstring, built bit by bit: an independent
    definition the 16-ary layout must agree with."""

    def subtree(leaves: list[tuple[bytes, bytes]], depth: int) -> bytes:
        if not leaves:
            return EMPTY_HASH
        if len(leaves) == 1:
            return leaf_hash(*leaves[0])
        left = [leaf for leaf in leaves if bit(leaf[0], depth) == 0]
        right = [leaf for leaf in leaves if bit(leaf[0], depth) == 1]
        return internal_hash(subtree(left, depth + 1), subtree(right, depth + 1))

    return subtree([(key_hash(k), value_hash(v)) for k, v in content.items()], 0)


def probe_keys(models: list[dict[bytes, bytes]]) -> list[bytes]:
    seen = {key for model in models for key in model}
    return sorted(seen | {b"k", b"k\x00", b"absent", b"k\xff\xff\xff"})


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_tree_matches_a_dict_at_every_version(history: list[dict[bytes, bytes | None]]) -> None:
    nodes, roots, models = apply_history(history)
    for root, model in zip(roots, models, strict=True):
        assert root_hash(root) == reference_root(model)
        # the same content built in one version from nothing: the root depends on content only
        fresh = apply(MemoryNodes(), None, 0, list(model.items()))
        assert fresh.root_hash == root_hash(root)
        for key in probe_keys(models):
            expected = model.get(key)
            assert get(nodes, root, key) == expected
            value, proof = prove(nodes, root, key)
            assert value == expected
            assert verify_proof(root_hash(root), key, expected, proof)
            if expected is None:
                assert not verify_proof(root_hash(root), key, b"", proof)
            else:
                assert not verify_proof(root_hash(root), key, None, proof)
                assert not verify_proof(root_hash(root), key, expected + b"x", proof)


@settings(max_examples=60, deadline=None, database=None)
@given(st.dictionaries(keys, values, max_size=40), st.randoms(use_true_random=False))
def test_order_of_changes_does_not_matter(content: dict[bytes, bytes], rnd: random.Random) -> None:
    changes = list(content.items())
    first = apply(MemoryNodes(), None, 3, changes)
    rnd.shuffle(changes)
    second = apply(MemoryNodes(), None, 3, changes)
    assert first.root_hash == second.root_hash == reference_root(content)
    assert first.nodes == second.nodes


def reachable(reader: NodeReader, root: Child | None) -> set[NodeKey]:
    found: set[NodeKey] = set()
    todo = [] if root is None else [(root, b"")]
    while todo:
        ref, path = todo.pop()
        found.add((ref.version, path))
        node = reader.read_node((ref.version, path))
        if isinstance(node, InternalNode):
            todo.extend((child, path + bytes((n,))) for n, child in enumerate(node.children) if child is not None)
    return found


@settings(max_examples=60, deadline=None, database=None)
@given(histories)
def test_stale_nodes_are_exactly_those_that_left_the_tree(history: list[dict[bytes, bytes | None]]) -> None:
    """Every node written and not reported stale is still in the tree, and only those: what
    pruning deletes is never needed by later versions, and nothing leaks."""
    nodes = MemoryNodes()
    root: Child | None = None
    live: set[NodeKey] = set()
    for version, changes in enumerate(history, start=1):
        update = apply(nodes, root, version, list(changes.items()))
        nodes.write(update)
        root = update.root
        assert set(update.stale) <= live
        live -= set(update.stale)
        live |= set(update.nodes)
        assert live == reachable(nodes, root)


def test_small_trees_by_hand() -> None:
    assert apply(MemoryNodes(), None, 1, []).root_hash == EMPTY_HASH
    one = apply(MemoryNodes(), None, 1, [(b"a", b"1")])
    assert one.root_hash == leaf_hash(key_hash(b"a"), value_hash(b"1"))
    # deleting the last key gives the empty tree back
    nodes = MemoryNodes()
    nodes.write(one)
    assert apply(nodes, one.root, 2, [(b"a", None)]).root_hash == EMPTY_HASH
    # two keys whose hashes differ in the first bit: one internal hash over the two leaves
    left, right = next((a, b) for a in (b"a", b"b", b"c", b"d") for b in (b"e", b"f", b"g", b"h")
                       if bit(key_hash(a), 0) == 0 and bit(key_hash(b), 0) == 1)
    two = apply(MemoryNodes(), None, 1, [(left, b"L"), (right, b"R")])
    assert two.root_hash == internal_hash(leaf_hash(key_hash(left), value_hash(b"L")),
                                          leaf_hash(key_hash(right), value_hash(b"R")))


def test_a_key_changed_twice_in_one_version_is_refused() -> None:
    with pytest.raises(DuplicateChange) as caught:
        apply(MemoryNodes(), None, 1, [(b"a", b"1"), (b"a", None)])
    assert caught.value.code == "state_change_duplicate"


def _a_tree(count: int = 300) -> tuple[MemoryNodes, Child | None, dict[bytes, bytes]]:
    content = {f"account-{i}".encode(): f"{i * 7}".encode() for i in range(count)}
    nodes = MemoryNodes()
    update = apply(nodes, None, 1, list(content.items()))
    nodes.write(update)
    return nodes, update.root, content


def test_tampered_proofs_are_refused() -> None:
    nodes, root, content = _a_tree()
    top = root_hash(root)
    cases: list[tuple[bytes, bytes | None]] = [(b"account-17", content[b"account-17"]), (b"nobody", None)]
    for key, value in cases:
        got, proof = prove(nodes, root, key)
        assert got == value and verify_proof(top, key, value, proof)
        data = encode_proof(proof)
        for index in range(len(data)):  # any byte flipped: not a proof, or a proof of something else
            for flip in (0x01, 0x80):
                tampered = bytearray(data)
                tampered[index] ^= flip
                decoded = decode_proof(bytes(tampered))
                assert decoded is None or not verify_proof(top, key, value, decoded), (key, index, flip)
        assert decode_proof(data + b"\x00") is None
        assert not verify_proof(top, b"account-18", value, proof)
        assert not verify_proof(bytes(32), key, value, proof)
        assert not verify_proof(top, key, b"forged", proof)
        # a sibling dropped, or one added
        assert not verify_proof(top, key, value, SparseProof(proof.leaf, proof.siblings[1:]))
        assert not verify_proof(top, key, value, SparseProof(proof.leaf, (*proof.siblings, EMPTY_HASH)))
    # a present key's own leaf cannot prove it absent; an absence proof cannot prove a value
    _, proof = prove(nodes, root, b"account-17")
    assert not verify_proof(top, b"account-17", None, proof)
    _, absent = prove(nodes, root, b"nobody")
    assert not verify_proof(top, b"nobody", b"", absent)
    # another key's leaf off the path does not prove absence
    assert absent.leaf is None or not verify_proof(
        top, b"nobody", None, SparseProof(ProofLeaf(key_hash(b"account-17"), value_hash(content[b"account-17"])),
                                          absent.siblings))
    # malformed sizes are refused, not raised
    assert not verify_proof(top, b"nobody", None, SparseProof(None, (b"short",)))
    assert not verify_proof(top, b"nobody", None, SparseProof(None, (EMPTY_HASH,) * 257))
    assert not verify_proof(top, b"nobody", None, SparseProof(ProofLeaf(b"x", b"y"), ()))


def test_the_verifier_imports_nothing_of_the_node_or_storage() -> None:
    source = REPO.joinpath("bilayer/execution/smt_proof.py").read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations", "import hashlib", "import msgspec"]


# --- the store on disk --------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories)
def test_the_store_keeps_every_version_provable_across_a_reopen(tmp_path: Path,
                                                                history: list[dict[bytes, bytes | None]]) -> None:
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "state.db"  # one file per example
    _, roots, models = apply_history(history)
    with StateStore(path, cache_nodes=8) as store:
        for version, changes in enumerate(history, start=1):
            assert store.commit(version, list(changes.items())) == root_hash(roots[version - 1])
    with StateStore(path, cache_nodes=8) as store:  # a new process: nothing from memory
        assert store.latest_version == len(history)
        for version, model in enumerate(models, start=1):
            top = store.root(version)
            for key in probe_keys(models):
                value, proof = store.prove(key, version)
                assert value == model.get(key) == store.get(key, version)
                assert verify_proof(top, key, value, proof)


def test_pruning_keeps_the_last_versions_and_refuses_older_ones(tmp_path: Path) -> None:
    rnd = random.Random(7)
    path = tmp_path / "state.db"
    model: dict[bytes, bytes] = {}
    roots: dict[int, bytes] = {}
    with StateStore(path, keep=3) as store:
        for version in range(1, 21):
            changes: dict[bytes, bytes | None] = {}
            for _ in range(40):
                key = f"acct-{rnd.randrange(120)}".encode()
                changes[key] = None if rnd.random() < 0.25 else rnd.randbytes(6)
            roots[version] = store.commit(version, list(changes.items()))
            for key, value in changes.items():
                if value is None:
                    model.pop(key, None)
                else:
                    model[key] = value
        assert store.oldest_version == 18
        for version in (18, 19, 20):
            value, proof = store.prove(b"acct-5", version)
            assert verify_proof(roots[version], b"acct-5", value, proof)
        with pytest.raises(StateVersionPruned) as caught:
            store.prove(b"acct-5", 17)
        assert caught.value.code == "state_version_pruned"
        with pytest.raises(StateVersionUnknown):
            store.prove(b"acct-5", 21)
        # after pruning to the latest alone, the file holds exactly the latest tree
        store.prune(20)
        assert store.node_count() == len(reachable(store, store.root_ref(20)))
        assert store.node_count() == len(apply(MemoryNodes(), None, 0, list(model.items())).nodes)
    with StateStore(path) as store:  # the retained range survives a reopen
        assert store.oldest_version == 20
        with pytest.raises(StateVersionPruned):
            store.root(19)
        assert store.root(20) == roots[20]


def test_archive_mode_keeps_every_version(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.db") as store:
        for version in range(1, 6):
            store.commit(version, [(b"a", bytes([version])), (bytes([version]), b"x")])
        for version in range(1, 6):
            assert store.get(b"a", version) == bytes([version])
        assert store.oldest_version == 1


def test_versions_only_move_forward_and_a_failed_commit_changes_nothing(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.db") as store:
        root = store.commit(5, [(b"a", b"1")])
        with pytest.raises(StateVersionOrder) as caught:
            store.commit(5, [(b"a", b"2")])
        assert caught.value.code == "state_version_order"
        with pytest.raises(DuplicateChange):
            store.commit(6, [(b"b", b"1"), (b"b", b"2")])
        assert store.latest_version == 5 and store.root(5) == root
        with pytest.raises(StateVersionUnknown) as unknown:
            store.root(4)
        assert unknown.value.code == "state_version_unknown"
        assert store.commit(6, [(b"b", b"1")]) != root


def test_a_file_that_is_not_a_state_store_is_refused_with_a_code(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database at all, just some bytes" * 100)
    with pytest.raises(StateStoreCorrupt) as caught:
        StateStore(path)
    assert caught.value.code == "state_store_corrupt"


def test_a_damaged_node_is_refused_with_a_code(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore(path) as store:
        store.commit(1, [(f"k{i}".encode(), b"v") for i in range(50)])
    conn = sqlite3.connect(path)
    conn.execute("UPDATE smt_nodes SET node = x'c1' WHERE path = x''")
    conn.commit()
    conn.close()
    with StateStore(path) as store, pytest.raises(StateStoreCorrupt):
        store.prove(b"k1", 1)


def test_an_absence_proof_ending_at_a_leaf_off_the_keys_path_is_refused() -> None:
    """A leaf proves a key absent only where that key would be: both hashes share the path."""
    key = b"nobody"
    other = next(k for k in (b"a", b"b", b"c", b"d", b"e") if bit(key_hash(k), 0) != bit(key_hash(key), 0))
    leaf = ProofLeaf(key_hash(other), value_hash(b"v"))
    assert verify_proof(leaf_hash(leaf.key_hash, leaf.value_hash), key, None, SparseProof(leaf, ()))
    # the same leaf placed one level down on the key's side: a root no valid tree has
    on_keys_side = leaf_hash(leaf.key_hash, leaf.value_hash)
    forged_root = (internal_hash(EMPTY_HASH, on_keys_side) if bit(key_hash(key), 0)
                   else internal_hash(on_keys_side, EMPTY_HASH))
    assert not verify_proof(forged_root, key, None, SparseProof(leaf, (EMPTY_HASH,)))


def test_a_commit_that_fails_midway_leaves_the_previous_version_whole(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import bilayer.node.state_store as state_store

    path = tmp_path / "state.db"
    content = {f"k{i}".encode(): b"v" for i in range(200)}
    with StateStore(path) as store:
        root = store.commit(1, list(content.items()))
        written = 0
        real_encode = state_store.encode_node

        def failing_encode(node: object) -> bytes:
            nonlocal written
            written += 1
            if written > 20:
                raise OSError("disk full")
            return real_encode(node)  # type: ignore[arg-type]

        monkeypatch.setattr(state_store, "encode_node", failing_encode)
        with pytest.raises(OSError):
            store.commit(2, [(f"k{i}".encode(), b"w") for i in range(100)])
        monkeypatch.undo()
        assert store.latest_version == 1
        nodes_before = store.node_count()
    with StateStore(path) as store:
        assert store.latest_version == 1 and store.root(1) == root and store.node_count() == nodes_before
        for key, value in content.items():
            got, proof = store.prove(key, 1)
            assert got == value and verify_proof(root, key, value, proof)
        assert store.commit(2, [(b"k1", b"w")]) != root

"""The Merkle trees behind every results root and state root agree with RFC 6962 as
Certificate Transparency publishes it: a proof only another implementation of the RFC can
check is worth something to an auditor, so these vectors are the contract."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bilayer.execution.merkle import (
    EMPTY_ROOT,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    root_from_inclusion,
    root_of_hashes,
    sized_root,
    verify_inclusion,
)
from tests.support.paths import VECTORS

VECTORS: dict[str, Any] = json.loads((VECTORS / "rfc6962.json").read_text())
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaves_hex"]]
LEAF_HASHES = [leaf_hash(leaf) for leaf in LEAVES]


def test_leaf_hashes_match_the_published_ones() -> None:
    assert [h.hex() for h in LEAF_HASHES] == VECTORS["leaf_hashes"]


@pytest.mark.parametrize("size", range(len(LEAVES) + 1))
def test_root_of_every_prefix_matches_the_published_root(size: int) -> None:
    assert merkle_root(LEAVES[:size]).hex() == VECTORS["roots_by_size"][str(size)]


def test_the_empty_tree_is_the_hash_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == VECTORS["roots_by_size"]["0"]


@pytest.mark.parametrize("vector", VECTORS["inclusion"], ids=lambda v: f"{v['index']}-of-{v['size']}")
def test_audit_paths_match_and_verify_against_the_published_roots(vector: dict[str, Any]) -> None:
    index, size = vector["index"], vector["size"]
    root = bytes.fromhex(VECTORS["roots_by_size"][str(size)])
    published = [bytes.fromhex(h) for h in vector["path"]]
    assert inclusion_proof(LEAF_HASHES[:size], index) == published
    assert verify_inclusion(LEAF_HASHES[index], index, size, published, root)


@pytest.mark.parametrize("vector", [v for v in VECTORS["inclusion"] if v["path"]],
                         ids=lambda v: f"{v['index']}-of-{v['size']}")
def test_every_corruption_of_a_published_path_is_refused(vector: dict[str, Any]) -> None:
    index, size = vector["index"], vector["size"]
    root = bytes.fromhex(VECTORS["roots_by_size"][str(size)])
    path = [bytes.fromhex(h) for h in vector["path"]]
    leaf = LEAF_HASHES[index]
    other_root = bytes.fromhex(VECTORS["roots_by_size"][str(size - 1)])
    probes: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (leaf, index - 1, size, path, root), (leaf, index + 1, size, path, root), (leaf, index ^ 2, size, path, root),
        (leaf, index, size * 2, path, root), (leaf, index, size // 2, path, root),
        (leaf_hash(b"wrong leaf"), index, size, path, root), (leaf, index, size, path, EMPTY_ROOT),
        (leaf, index, size, path, other_root),
        (leaf, index, size, [*path, b""], root), (leaf, index, size, [*path, root], root),
        (leaf, index, size, [b"", *path], root), (leaf, index, size, [root, *path], root),
        (leaf, index, size, path[:-1], root),
    ]
    for i in range(len(path)):
        flipped = list(path)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((leaf, index, size, flipped, root))
    if len(path) > 1:
        probes.append((leaf, index, size, [path[0], EMPTY_ROOT, *path[1:]], root))
    for probe in probes:
        assert not verify_inclusion(*probe), probe[1:3]


def test_a_malformed_index_or_size_gives_no_root() -> None:
    assert root_from_inclusion(LEAF_HASHES[0], 0, 0, []) is None
    assert root_from_inclusion(LEAF_HASHES[0], 1, 1, []) is None
    assert root_from_inclusion(LEAF_HASHES[0], -1, 8, []) is None


def test_a_bare_tree_root_lets_a_path_move_but_a_sized_root_does_not() -> None:
    """RFC 6962 verifies a path against a size the verifier is told: the path of leaf 36 of 50
    also reaches the same root as leaf 68 of 81. Results roots commit to their size."""
    leaves = [leaf_hash(bytes([i])) for i in range(50)]
    root = root_of_hashes(leaves)
    path = inclusion_proof(leaves, 36)
    assert verify_inclusion(leaves[36], 36, 50, path, root)
    assert verify_inclusion(leaves[36], 68, 81, path, root)  # the weakness
    assert sized_root(50, root) != sized_root(81, root)

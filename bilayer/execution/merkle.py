"""Merkle trees as RFC 6962 (Certificate Transparency) defines them, SHA-256 throughout.

    leaf hash  = SHA-256(0x00 || data)
    node hash  = SHA-256(0x01 || left || right)
    MTH([])    = SHA-256("")
    MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two below n

Inclusion proofs are the RFC's audit paths; `verify_inclusion` follows RFC 9162 §2.1.3.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_of_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves (bottom-up, same result as the recursive definition)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    # Build the left-complete tree level by level: pairing left to right and carrying an odd
    # last node up unchanged gives exactly RFC 6962's split at the largest power of two.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def merkle_root(items: Sequence[bytes]) -> bytes:
    return root_of_hashes([leaf_hash(item) for item in items])


SIZED_ROOT_DOMAIN = b"bilayer/sized-root/v1"


def sized_root(size: int, tree_root: bytes) -> bytes:
    """A root that commits to its tree's size as well as its leaves.

    An RFC 6962 audit path verifies only against a size the verifier is told; the same path
    can verify at another index of another size. Signing this instead of the bare tree root
    binds a proven position and count to what the validators signed."""
    return hashlib.sha256(SIZED_ROOT_DOMAIN + size.to_bytes(8, "big") + tree_root).digest()


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for leaf `index` in the tree of already-hashed `leaves`."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    path: list[bytes] = []

    def walk(lo: int, hi: int) -> None:
        n = hi - lo
        if n == 1:
            return
        k = _split(n)
        if index - lo < k:
            walk(lo, lo + k)
            path.append(root_of_hashes(leaves[lo + k : hi]))
        else:
            walk(lo + k, hi)
            path.append(root_of_hashes(leaves[lo : lo + k]))

    walk(0, len(leaves))
    return path


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """The root an audit path leads to from the already-hashed `leaf`; None if malformed."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    current = leaf
    for sibling in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            current = node_hash(sibling, current)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            current = node_hash(current, sibling)
        fn >>= 1
        sn >>= 1
    return current if sn == 0 else None


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True when `proof` shows the already-hashed `leaf` at `index` in a tree of `size` with `root`."""
    return root_from_inclusion(leaf, index, size, proof) == root

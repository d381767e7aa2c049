"""Proofs of the sparse Merkle tree (execution/smt.py), and their verification.

This module is the whole of what an offline verifier needs: it imports nothing from the
node, storage or the tree itself, only SHA-256 and the proof's encoding.

The tree is, logically, a binary tree over the 256 bits of SHA-256(key), most significant
bit first, in which every subtree holding one leaf is replaced by that leaf and every empty
subtree by a placeholder. So a key's leaf sits at the shortest prefix of its key hash that
no other key shares, and the tree's shape, hence its root, depends only on its content:

    leaf      = SHA-256(0x00 || SHA-256(key) || SHA-256(value))
    internal  = SHA-256(0x01 || left || right)
    empty     = SHA-256("bilayer/smt/v1/empty")  (the root of the empty tree, and any empty subtree)

A proof is the list of siblings from the root down to where the key's path ends, and what it
ends at: a leaf (the key's own, or the one leaf of the subtree where the key would be) or
nothing (an empty subtree). The two kinds of ending prove presence and absence alike.
"""

from __future__ import annotations

import hashlib

import msgspec

EMPTY_HASH = hashlib.sha256(b"bilayer/smt/v1/empty").digest()
LEAF_DOMAIN = b"\x00"
INTERNAL_DOMAIN = b"\x01"
KEY_BITS = 256


def key_hash(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def value_hash(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def leaf_hash(hashed_key: bytes, hashed_value: bytes) -> bytes:
    return hashlib.sha256(LEAF_DOMAIN + hashed_key + hashed_value).digest()


def internal_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(INTERNAL_DOMAIN + left + right).digest()


def bit(hashed_key: bytes, index: int) -> int:
    """Bit `index` of a key hash, most significant first: 0 goes left, 1 goes right."""
    return (hashed_key[index >> 3] >> (7 - (index & 7))) & 1


class ProofLeaf(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """The leaf a proof's path ends at: the key hash and value hash it commits to."""

    key_hash: bytes
    value_hash: bytes


class SparseProof(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """Siblings from the root down (the first is the root's other child); `leaf` is None
    when the path ends at an empty subtree."""

    leaf: ProofLeaf | None
    siblings: tuple[bytes, ...]


def encode_proof(proof: SparseProof) -> bytes:
    return msgspec.msgpack.encode(proof)


def decode_proof(data: bytes) -> SparseProof | None:
    """The proof in `data`, or None when the bytes are not one (a verifier refuses it)."""
    try:
        return msgspec.msgpack.decode(data, type=SparseProof)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def proof_root(key: bytes, value: bytes | None, proof: SparseProof) -> bytes | None:
    """The root `proof` leads to for `key` holding `value` (None: absent), or None when the
    proof cannot show that at all (wrong leaf, malformed sizes, too deep)."""
    siblings = proof.siblings
    if len(siblings) > KEY_BITS or any(len(s) != 32 for s in siblings):
        return None
    hashed_key = key_hash(key)
    leaf = proof.leaf
    if leaf is None:
        if value is not None:
            return None
        current = EMPTY_HASH
    else:
        if len(leaf.key_hash) != 32 or len(leaf.value_hash) != 32:
            return None
        if value is not None:
            if leaf.key_hash != hashed_key or leaf.value_hash != value_hash(value):
                return None
        else:
            # absence: another key's leaf holds the place where this key would be, so both
            # hashes share the path down to it
            if leaf.key_hash == hashed_key:
                return None
            if any(bit(leaf.key_hash, i) != bit(hashed_key, i) for i in range(len(siblings))):
                return None
        current = leaf_hash(leaf.key_hash, leaf.value_hash)
    for depth in range(len(siblings) - 1, -1, -1):
        sibling = siblings[depth]
        right = bit(hashed_key, depth)
        current = internal_hash(sibling, current) if right else internal_hash(current, sibling)
    return current


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: SparseProof) -> bool:
    """True when `proof` shows that, in the tree of `root`, `key` holds `value`, or is
    absent when `value` is None."""
    return proof_root(key, value, proof) == root

"""Proof-of-work stamps: the anti-spam price of writing to a permissionless ledger.

The stamp is the header's last field, an 8-byte nonce; the entry id (SHA-256 of the
header) must start with `bits` zero bits. Checking costs nothing beyond computing the id,
which every node does anyway; making a stamp costs 2**bits hashes on average.
"""

from __future__ import annotations

import hashlib

NONCE_SIZE = 8


def has_work(entry_id: bytes, bits: int) -> bool:
    if bits <= 0:
        return True
    return int.from_bytes(entry_id[:8], "big") >> (64 - bits) == 0


def find_nonce(header_without_nonce: bytes, bits: int, start: int = 0) -> bytes:
    """Search nonces from `start` until the hash of prefix+nonce has enough zero bits."""
    prefix = hashlib.sha256(header_without_nonce)
    limit = 1 << (64 - bits) if bits > 0 else 1 << 64
    counter = start
    while True:
        nonce = counter.to_bytes(NONCE_SIZE, "big")
        state = prefix.copy()
        state.update(nonce)
        if int.from_bytes(state.digest()[:8], "big") < limit:
            return nonce
        counter = (counter + 1) % (1 << 64)

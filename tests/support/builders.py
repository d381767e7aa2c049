"""Keys and entries for tests: deterministic signers and entries built against a genesis."""

from __future__ import annotations

import time

from bilayer.genesis import Genesis
from bilayer.keys.signing import Signer
from bilayer.ledger.entry import SignedEntry, build_entry
from bilayer.ledger.operations import Data, Operation, Transfer

TEST_POW_BITS = 4


def seeded_signer(n: int) -> Signer:
    return Signer(n.to_bytes(32, "big"))


def make_entry(
    signer: Signer,
    genesis: Genesis,
    *,
    seq: int = 0,
    parents: list[bytes] | None = None,
    op: Operation | None = None,
    payload: bytes = b"",
    time_ms: int | None = None,
    chain_id: str | None = None,
    pow_bits: int | None = None,
) -> tuple[bytes, SignedEntry]:
    return build_entry(
        signer,
        chain_id=chain_id or genesis.chain_id,
        seq=seq,
        parents=parents if parents is not None else [genesis.root],
        op=op or Data(media_type="text/plain"),
        payload=payload,
        time_ms=time_ms if time_ms is not None else int(time.time() * 1000),
        pow_bits=genesis.params.pow_bits if pow_bits is None else pow_bits,
    )


def transfer_to(recipient: Signer, amount: int = 1) -> Transfer:
    return Transfer(asset="BLY", amount=amount, to=recipient.public_key)

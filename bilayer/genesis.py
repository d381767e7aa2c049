"""The genesis document: chain id, chain parameters and initial allocations.

Its hash is the DAG's root: every author's first entry descends from it, so entries of
one chain can never be replayed on another.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from . import codec
from .errors import ConfigError, InvalidAddress
from .keys.address import public_key_from_address

GENESIS_TAG = b"bilayer/genesis/v1"
_CHAIN_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")


class ChainParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Rules every node applies at ingress; governance will change them on chain."""

    pow_bits: int = 16
    max_parents: int = 8
    max_header_bytes: int = 2048
    max_data_bytes: int = 65536
    max_memo_bytes: int = 256
    max_future_ms: int = 10_000


class Allocation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    address: str
    asset: str
    amount: int


class GenesisValidator(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    public_key: str
    power: int = 1


class Genesis(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    chain_id: str
    genesis_time_ms: int
    params: ChainParams = ChainParams()
    allocations: tuple[Allocation, ...] = ()
    validators: tuple[GenesisValidator, ...] = ()

    @property
    def root(self) -> bytes:
        """The id of the DAG's root: a hash of the whole canonical genesis."""
        return codec.sha256(GENESIS_TAG + codec.encode(self))


def validate_genesis(genesis: Genesis) -> Genesis:
    if not _CHAIN_ID.match(genesis.chain_id):
        raise ConfigError("chain_id: 1-48 characters of a-z, 0-9 and '-', starting with a letter or digit")
    params = genesis.params
    if not 0 <= params.pow_bits <= 32:
        raise ConfigError("params.pow_bits must be between 0 and 32")
    if not 1 <= params.max_parents <= 64:
        raise ConfigError("params.max_parents must be between 1 and 64")
    if params.max_header_bytes < 256 or params.max_data_bytes < 0 or params.max_memo_bytes < 0:
        raise ConfigError("params: size limits are too small")
    for allocation in genesis.allocations:
        try:
            public_key_from_address(allocation.address)
        except InvalidAddress as exc:
            raise ConfigError(f"allocation address {allocation.address!r}: {exc.message}") from None
        if allocation.amount <= 0:
            raise ConfigError(f"allocation to {allocation.address}: amount must be positive")
    return genesis


def load_genesis(path: Path) -> Genesis:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read genesis file {path}: {exc.strerror}") from None
    try:
        genesis = msgspec.json.decode(data, type=Genesis)
    except msgspec.MsgspecError as exc:
        raise ConfigError(f"genesis file {path} is invalid: {exc}") from None
    return validate_genesis(genesis)


def write_genesis(genesis: Genesis, path: Path) -> None:
    Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(genesis)) + b"\n")

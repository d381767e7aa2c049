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


class GenesisCouncilMember(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    public_key: str
    weight: int = 1


class GovernanceParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How council decisions pass: before the deadline, yes-weight must reach `threshold_bps`
    of the whole council; at the deadline, votes cast must reach `quorum_bps` of the council
    and yes-weight `threshold_bps` of the votes cast. A passed proposal executes no earlier
    than `timelock_ms` after it passed (basis points: 10000 = 100%). However heavy one member
    is, no proposal passes with fewer than `min_approvals` distinct yes-voters. A regulator's
    emergency freeze lapses unless the council ratifies it within `emergency_ratify_ms`; a
    transfer held for review is rejected if no regulator decides it within `review_ms`, unless
    its rule sets its own window."""

    min_approvals: int = 2
    emergency_ratify_ms: int = 72 * 3600 * 1000
    quorum_bps: int = 5000
    threshold_bps: int = 6666  # two thirds (2 of 3 members pass)
    voting_period_ms: int = 7 * 24 * 3600 * 1000
    timelock_ms: int = 24 * 3600 * 1000
    review_ms: int = 72 * 3600 * 1000  # how long a held transfer waits for a regulator by default


class GenesisRegulator(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    public_key: str


class PreviousChain(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The chain a genesis continues (`bilayer genesis export`): its id, genesis root, and its
    last checkpoint, whose state this genesis carries over. Its history stays readable in the
    previous chain's data directories."""

    chain_id: str
    genesis_root: str
    height: int
    checkpoint_id: str
    state_root: str
    chain_format: int


class Genesis(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    chain_id: str
    genesis_time_ms: int
    params: ChainParams = ChainParams()
    allocations: tuple[Allocation, ...] = ()
    validators: tuple[GenesisValidator, ...] = ()
    council: tuple[GenesisCouncilMember, ...] = ()
    regulators: tuple[GenesisRegulator, ...] = ()
    governance: GovernanceParams = GovernanceParams()
    previous: PreviousChain | None = None  # last, and left out of the root when absent

    @property
    def root(self) -> bytes:
        """The id of the DAG's root: a hash of the whole canonical genesis. A genesis that
        continues no previous chain hashes exactly as before that field existed."""
        fields = {name: getattr(self, name) for name in self.__struct_fields__}
        if self.previous is None:
            del fields["previous"]
        return codec.sha256(GENESIS_TAG + codec.encode(fields))


_PARAM_BOUNDS = {
    "pow_bits": (0, 32),
    "max_parents": (1, 64),
    "max_header_bytes": (256, 65536),
    "max_data_bytes": (0, 1 << 20),
    "max_memo_bytes": (0, 65536),
    "max_future_ms": (1000, 3_600_000),
}


def chain_params_problem(params: ChainParams) -> str:
    """What makes these parameters unusable ('' when nothing does). Genesis and the council's
    proposals are held to the same bounds."""
    for name, (low, high) in _PARAM_BOUNDS.items():
        if not low <= getattr(params, name) <= high:
            return f"{name} must be between {low} and {high}"
    return ""


def _public_key(text: str, who: str) -> bytes:
    key = codec.from_hex(text, 32)
    if key is None:
        raise ConfigError(f"{who}: public_key must be 64 hex characters")
    return key


def validate_genesis(genesis: Genesis) -> Genesis:
    if not _CHAIN_ID.match(genesis.chain_id):
        raise ConfigError("chain_id: 1-48 characters of a-z, 0-9 and '-', starting with a letter or digit")
    problem = chain_params_problem(genesis.params)
    if problem:
        raise ConfigError(f"params: {problem}")
    for regulator in genesis.regulators:
        _public_key(regulator.public_key, f"regulator {regulator.name}")
    validator_keys = set()
    for validator in genesis.validators:
        key = _public_key(validator.public_key, f"validator {validator.name}")
        if validator.power <= 0 or key in validator_keys:
            raise ConfigError(f"validator {validator.name}: power must be positive and each key appear once")
        validator_keys.add(key)
    for member in genesis.council:
        _public_key(member.public_key, f"council member {member.name}")
        if member.weight <= 0:
            raise ConfigError(f"council member {member.name}: weight must be positive")
    gov = genesis.governance
    if not (0 < gov.quorum_bps <= 10_000 and 0 < gov.threshold_bps <= 10_000):
        raise ConfigError("governance: quorum_bps and threshold_bps are between 1 and 10000")
    if gov.emergency_ratify_ms <= 0 or gov.review_ms <= 0:
        raise ConfigError("governance: emergency_ratify_ms and review_ms must be positive")
    if gov.min_approvals < 1:
        raise ConfigError("governance: min_approvals is at least 1")
    if gov.voting_period_ms <= 0 or gov.timelock_ms < 0:
        raise ConfigError("governance: voting_period_ms must be positive and timelock_ms not negative")
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

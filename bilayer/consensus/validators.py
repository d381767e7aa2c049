"""The validator set: who may vote, with what power, and who proposes in which round."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError
from ..genesis import GenesisValidator


@dataclass(frozen=True, slots=True)
class Validator:
    name: str
    public_key: bytes
    power: int


class ValidatorSet:
    """Ordered by public key; quorums are by voting power.

    With total power N, a quorum is more than 2N/3 and "some honest validator" is more than
    N/3 (with equal powers and n = 3f+1 validators: 2f+1 and f+1).
    """

    def __init__(self, validators: Iterable[Validator]) -> None:
        members = sorted(validators, key=lambda v: v.public_key)
        if not members:
            raise ConfigError("the validator set is empty")
        keys = [v.public_key for v in members]
        if len(set(keys)) != len(keys):
            raise ConfigError("a validator key appears twice")
        if any(v.power <= 0 for v in members):
            raise ConfigError("validator power must be positive")
        self.members: tuple[Validator, ...] = tuple(members)
        self.by_key: dict[bytes, Validator] = {v.public_key: v for v in members}
        self.total_power = sum(v.power for v in members)

    @classmethod
    def from_genesis(cls, validators: Iterable[GenesisValidator]) -> ValidatorSet:
        members = []
        for v in validators:
            try:
                key = bytes.fromhex(v.public_key)
            except ValueError:
                raise ConfigError(f"validator {v.name}: public_key is not hex") from None
            if len(key) != 32:
                raise ConfigError(f"validator {v.name}: public_key must be 32 bytes")
            members.append(Validator(v.name, key, v.power))
        return cls(members)

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, key: object) -> bool:
        return key in self.by_key

    def power_of(self, keys: Iterable[bytes]) -> int:
        return sum(self.by_key[k].power for k in set(keys) if k in self.by_key)

    def is_quorum(self, power: int) -> bool:
        return 3 * power > 2 * self.total_power

    def is_one_third(self, power: int) -> bool:
        return 3 * power > self.total_power

    @property
    def max_faulty(self) -> int:
        """f = floor((n-1)/3) for equal powers."""
        return (len(self.members) - 1) // 3

    def proposer(self, height: int, round_: int) -> bytes:
        """Weighted round-robin over a fixed sequence: deterministic, fair by power."""
        slot = (height + round_) % self.total_power
        for v in self.members:
            if slot < v.power:
                return v.public_key
            slot -= v.power
        raise AssertionError("unreachable")

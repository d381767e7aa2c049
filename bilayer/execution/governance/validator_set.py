"""The validator set: from genesis, then changed by proposal, every change kept forever.

Keeper of these state keys:

    b"V"  + key               -> ValidatorRecord: a validator's name and power
    b"Vk"                     -> the validators' keys, sorted (the index: nothing scans the state)
    b"Vc"                     -> the number of validator set changes recorded (genesis is the first)
    b"Vh" + number (8 bytes)  -> ValidatorSetChange: the whole set, the height it governs from, and why

A `set_validator` proposal executed in checkpoint h changes the validator set that governs
consensus from height h + VALIDATOR_CHANGE_DELAY (h + 2): the set of a height is then fixed
by a state whose root is signed in the checkpoint before it, and a validator that joins has
one whole checkpoint to start. Changes executed in one checkpoint form one recorded change.
"""

from __future__ import annotations

import msgspec

from ... import codec
from ...errors import BadRequest
from ...genesis import Genesis
from ...keys.address import address_from_public_key
from ...ledger.operations import SetValidator
from ..errors import ExecutionRejected
from ..state import Keeper, State
from .actions import ActionSpec, register_action
from .context import ExecContext
from .options import ActionOptions, parse_key

VALIDATOR_CHANGE_DELAY = 2
MAX_VALIDATORS = 100


class ValidatorSetWouldBeEmpty(ExecutionRejected):
    code = "validator_set_would_be_empty"


class ValidatorNotFound(ExecutionRejected):
    code = "validator_not_found"


class ValidatorSetFull(ExecutionRejected):
    code = "validator_set_full"


class ValidatorRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    power: int
    decision: int  # the proposal that set it; 0: genesis


class ValidatorMember(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: bytes
    name: str
    power: int


class ValidatorSetChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One change of the validator set, kept forever: nodes verify old certificates with it."""

    number: int  # 1: the genesis set
    height: int  # the first height this set governs
    executed_height: int  # the checkpoint whose execution decided it (0: genesis)
    proposals: tuple[int, ...]
    members: tuple[ValidatorMember, ...]  # sorted by key


VALIDATOR_INDEX = b"Vk"
VALIDATOR_CHANGES = b"Vc"


def _validator_key(key: bytes) -> bytes:
    return b"V" + key


def validator_change_key(number: int) -> bytes:
    """Public for proofs: a light client checks each set change against a state root."""
    return b"Vh" + number.to_bytes(8, "big")


class Validators(Keeper):
    __slots__ = ()
    KEYS = ((b"V", 32), (VALIDATOR_INDEX, 0), (VALIDATOR_CHANGES, 0), (b"Vh", 8))

    def record(self, key: bytes) -> ValidatorRecord | None:
        raw = self.state.get(_validator_key(key))
        return None if raw is None else codec.decode(raw, ValidatorRecord)

    def keys(self) -> list[bytes]:
        raw = self.state.get(VALIDATOR_INDEX)
        return [] if raw is None else codec.decode(raw, list[bytes])

    def members(self) -> tuple[ValidatorMember, ...]:
        """The set as executed so far (it governs consensus only from its change's height)."""
        members = []
        for key in self.keys():
            record = self.record(key)
            if record is not None:
                members.append(ValidatorMember(key, record.name, record.power))
        return tuple(members)

    def change_count(self) -> int:
        raw = self.state.get(VALIDATOR_CHANGES)
        return 0 if raw is None else codec.decode(raw, int)

    def change(self, number: int) -> ValidatorSetChange | None:
        raw = self.state.get(validator_change_key(number))
        return None if raw is None else codec.decode(raw, ValidatorSetChange)

    def put(self, key: bytes, record: ValidatorRecord | None) -> None:
        keys = set(self.keys())
        if record is None:
            self.state.delete(_validator_key(key))
            keys.discard(key)
        else:
            self.state.set(_validator_key(key), codec.encode(record))
            keys.add(key)
        self.state.set(VALIDATOR_INDEX, codec.encode(sorted(keys)))

    def record_change(self, height: int, executed_height: int, proposal: int) -> None:
        """Record the set now in state as governing from `height`; a second change executed in
        the same checkpoint amends the first rather than add a change at the same height."""
        count = self.change_count()
        last = self.change(count) if count else None
        proposals: tuple[int, ...] = (proposal,) if proposal else ()
        if last is not None and last.height == height:
            proposals = (*last.proposals, *proposals)
        else:
            count += 1
            self.state.set(VALIDATOR_CHANGES, codec.encode(count))
        change = ValidatorSetChange(count, height, executed_height, proposals, self.members())
        self.state.set(validator_change_key(count), codec.encode(change))


def init_genesis(state: State, genesis: Genesis) -> None:
    validators = Validators(state)
    for validator in genesis.validators:
        validators.put(bytes.fromhex(validator.public_key), ValidatorRecord(validator.name, validator.power, 0))
    if genesis.validators:
        validators.record_change(1, 0, 0)


def set_validator(ctx: ExecContext, state: State, number: int, action: SetValidator) -> None:
    """Power 0 removes the validator; the set is never empty nor larger than MAX_VALIDATORS."""
    validators = Validators(state)
    current = validators.record(action.key)
    if action.power == 0:
        if current is None:
            raise ValidatorNotFound(f"{address_from_public_key(action.key)} is not a validator")
        if validators.keys() == [action.key]:
            raise ValidatorSetWouldBeEmpty("the last validator cannot be removed")
        validators.put(action.key, None)
    else:
        if current is None and len(validators.keys()) >= MAX_VALIDATORS:
            raise ValidatorSetFull(f"the validator set holds at most {MAX_VALIDATORS} validators")
        name = action.name or (current.name if current is not None else address_from_public_key(action.key)[:12])
        validators.put(action.key, ValidatorRecord(name, action.power, number))
    validators.record_change(ctx.height + VALIDATOR_CHANGE_DELAY, ctx.height, number)


def _set_validator(o: ActionOptions) -> SetValidator:
    if not o.target:
        raise BadRequest("--action set-validator needs --target ADDRESS")
    if o.power is None:
        raise BadRequest("--action set-validator needs --power (0 removes the validator)")
    return SetValidator(parse_key(o.target), o.power, o.name)


register_action(ActionSpec(
    SetValidator, "set-validator", "add a validator, change its power, or (power 0) remove it, from height h+2",
    build=lambda o, _: _set_validator(o), effect=set_validator))

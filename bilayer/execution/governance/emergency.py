"""The regulator's emergency powers: a freeze or an interception rule in force at once,
lapsing unless the council ratifies it.

Keeper of these state keys:

    b"R"  + key               -> a regulator (from genesis)
    b"En"                     -> the last emergency number
    b"E"  + number (8 bytes)  -> EmergencyRecord (a regulator's immediate freeze or interception rule)
    b"EF" + key               -> the emergency freezing that account
"""

from __future__ import annotations

import msgspec

from ... import codec
from ...errors import BadRequest
from ...genesis import Genesis
from ...ledger.entry import EntryHeader
from ...ledger.operations import Operation, RatifyEmergency, RegFreeze, RegIntercept
from ..errors import ExecutionRejected
from ..state import Keeper, State
from .actions import ActionSpec, register_action
from .context import ExecContext
from .freezes import AccountFrozen, Freezes
from .options import ActionOptions
from .rules import HELD_CODE, InterceptionRuleExists, Rules, TransactionIntercepted, interception_rule


class NotRegulator(ExecutionRejected):
    code = "not_regulator"


class EmergencyNotFound(ExecutionRejected):
    code = "emergency_not_found"


class EmergencyLapsed(ExecutionRejected):
    code = "emergency_lapsed"


class EmergencyRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    number: int
    regulator: bytes
    account: bytes
    reason: str
    legal_ref: str
    entry_id: bytes
    created_ms: int
    expires_ms: int
    ratified_by: int = 0  # the proposal that ratified it
    rule_id: str = ""  # an emergency interception rule (then `account` is empty), else a freeze

    def active(self, now_ms: int) -> bool:
        return self.ratified_by > 0 or now_ms < self.expires_ms

    def status(self, now_ms: int) -> str:
        if self.ratified_by:
            return "ratified"
        return "active" if now_ms < self.expires_ms else "lapsed"


EMERGENCY_COUNT = b"En"


def _regulator_key(key: bytes) -> bytes:
    return b"R" + key


def emergency_key(number: int) -> bytes:
    """Public for proofs: audit evidence proves an emergency record against a state root."""
    return b"E" + number.to_bytes(8, "big")


EMERGENCY_FROZEN = b"EF"


def emergency_freeze_key(account: bytes) -> bytes:
    """Public for proofs: an account proof proves this key against a state root."""
    return EMERGENCY_FROZEN + account


class Emergencies(Keeper):
    __slots__ = ()
    KEYS = ((b"R", 32), (EMERGENCY_COUNT, 0), (b"E", 8), (EMERGENCY_FROZEN, 32))

    def is_regulator(self, key: bytes) -> bool:
        return self.state.get(_regulator_key(key)) is not None

    def count(self) -> int:
        return self._decision(EMERGENCY_COUNT) or 0

    def get(self, number: int) -> EmergencyRecord:
        raw = self.state.get(emergency_key(number))
        if raw is None:
            raise EmergencyNotFound(f"no emergency action {number}")
        return codec.decode(raw, EmergencyRecord)

    def newest_first(self) -> list[EmergencyRecord]:
        return [self.get(number) for number in range(self.count(), 0, -1)]

    def freeze_of(self, account: bytes) -> int | None:
        """The emergency that froze `account` (in force or not), or None. (The gate asks twice
        per transfer: one lookup, no helper.)"""
        raw = self.state.get(EMERGENCY_FROZEN + account)
        return None if raw is None else codec.decode(raw, int)

    def add(self, ctx: ExecContext, entry_id: bytes, regulator: bytes, reason: str, legal_ref: str,
            account: bytes = b"", rule_id: str = "") -> int:
        if not self.is_regulator(regulator):
            raise NotRegulator("only a regulator has emergency powers")
        number = self.count() + 1
        record = EmergencyRecord(number=number, regulator=regulator, account=account, reason=reason,
                                 legal_ref=legal_ref, entry_id=entry_id, created_ms=ctx.time_ms,
                                 expires_ms=ctx.time_ms + ctx.governance.emergency_ratify_ms, rule_id=rule_id)
        self.state.set(EMERGENCY_COUNT, codec.encode(number))
        self.state.set(emergency_key(number), codec.encode(record))
        if account:
            self.state.set(emergency_freeze_key(account), codec.encode(number))
        return number

    def ratify(self, record: EmergencyRecord, number: int) -> None:
        self.state.set(emergency_key(record.number), codec.encode(msgspec.structs.replace(record, ratified_by=number)))


def init_genesis(state: State, genesis: Genesis) -> None:
    for regulator in genesis.regulators:
        state.set(_regulator_key(bytes.fromhex(regulator.public_key)), codec.encode(regulator.name))


def apply_reg_freeze(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, RegFreeze)
    Emergencies(state).add(ctx, entry_id, header.author, op.reason, op.legal_ref, account=op.account)


def apply_reg_intercept(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    """It cannot replace a rule the council made, nor an emergency rule still in force."""
    assert isinstance(op, RegIntercept)
    emergencies, rules = Emergencies(state), Rules(state)
    existing = rules.interception_rule(op.rule.rule_id)
    if existing is not None and (not existing.emergency or emergencies.get(existing.emergency).active(ctx.time_ms)):
        raise InterceptionRuleExists(f"interception rule {op.rule.rule_id!r} is in force; only the council changes it")
    number = emergencies.add(ctx, entry_id, header.author, op.reason, op.legal_ref, rule_id=op.rule.rule_id)
    rules.put_interception_rule(interception_rule(op.rule, 0, emergency=number))


def ratify_emergency(ctx: ExecContext, state: State, number: int, action: RatifyEmergency) -> None:
    """The council makes a regulator's act its own before it lapses: the freeze, or the rule."""
    emergencies = Emergencies(state)
    emergency = emergencies.get(action.emergency)
    if not emergency.active(ctx.time_ms):
        raise EmergencyLapsed(f"emergency {action.emergency} lapsed at {emergency.expires_ms}")
    emergencies.ratify(emergency, number)
    if emergency.rule_id:
        rules = Rules(state)
        rule = rules.interception_rule(emergency.rule_id)
        if rule is not None and rule.emergency == emergency.number:
            rules.put_interception_rule(msgspec.structs.replace(rule, decision=number, emergency=0))
    else:
        Freezes(state).freeze(emergency.account, number)


def _ratify(o: ActionOptions) -> RatifyEmergency:
    if o.emergency is None:
        raise BadRequest("--action ratify needs --emergency NUMBER")
    return RatifyEmergency(o.emergency)


register_action(ActionSpec(
    RatifyEmergency, "ratify", "make a regulator's emergency freeze or interception rule the council's own",
    build=lambda o, _: _ratify(o), effect=ratify_emergency,
    refusals=(AccountFrozen.code, TransactionIntercepted.code, HELD_CODE, "review_queue_full")))

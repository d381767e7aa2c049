"""The compliance gate: every validator applies the same active rules at the same height,
before any module, consulting each power's keeper. Each refusal names the decision that
caused it ("proposal:N", "emergency:N", "operator:<entry id>").

In order: a banned key, or a key attested to a banned identity (`identity_banned`); a
suspended or paused application (`service_suspended`); the identity rule of the entry's kind
(`identity_required`, `identity_expired`, `identity_level_too_low`); a frozen party of the
operation (`account_frozen`: a transfer's sender and recipient, the parties an application's
operation names); for a transfer, the interception rules (`transaction_intercepted`, or HELD
for review); for a data entry, the content rules (`content_blocked`). Applications' entries
pass the same gate, with nothing for them to write.
"""

from __future__ import annotations

from collections.abc import Iterable

from ...ledger.entry import EntryHeader
from ...ledger.operations import Data, GovAction, Operation, Transfer, decode_operation
from ..errors import ExecutionRejected
from ..state import State
from .actions import carry_out
from .context import ExecContext, decision_cause
from .emergency import Emergencies
from .freezes import AccountFrozen, Freezes
from .identity import Identities, IdentityBanned, IdentityExpired, IdentityLevelTooLow, IdentityRequired
from .rules import HELD_CODE, ContentBlocked, InterceptionRule, Rules, TransactionIntercepted
from .services import Services, ServiceSuspended


class HeldForReview(Exception):
    """Not a rejection: the gate parks the transfer until a regulator decides it."""

    def __init__(self, rule: InterceptionRule) -> None:
        super().__init__(f"held for review by rule {rule.rule_id!r}")
        self.rule = rule


class Gate:
    """The gate over one state, with the keepers it consults bound once (per checkpoint, not
    per entry: a keeper is a view, it holds no values of its own)."""

    __slots__ = ("emergencies", "freezes", "identities", "rules", "services", "state")

    def __init__(self, state: State) -> None:
        self.state = state
        self.identities = Identities(state)
        self.services = Services(state)
        self.freezes = Freezes(state)
        self.emergencies = Emergencies(state)
        self.rules = Rules(state)

    def frozen_by(self, account: bytes, now_ms: int) -> str:
        """The decision freezing `account` ("proposal:N" or "emergency:N"), or "" when it is not frozen."""
        decision = self.freezes.decision(account)
        if decision is not None:
            return decision_cause(decision)
        number = self.emergencies.freeze_of(account)
        if number is not None and self.emergencies.get(number).active(now_ms):
            return f"emergency:{number}"
        return ""

    def check(self, ctx: ExecContext, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
        """Raise the first refusal that applies, or `HeldForReview`; return if the entry passes."""
        identities, services = self.identities, self.services
        decision = identities.key_ban(header.author)
        if decision is not None:
            raise IdentityBanned("this key is denied service", decision_cause(decision))
        identity = identities.identity_of(header.author)
        if identity is not None:
            decision = identities.identity_ban(identity.identity)
            if decision is not None:
                raise IdentityBanned("the identity behind this key is denied service", decision_cause(decision))
        decision = services.suspension(header.kind)
        if decision is not None:
            raise ServiceSuspended(f"the {header.kind!r} service is suspended", decision_cause(decision))
        paused = services.pause_of(header.kind)
        if paused is not None:
            raise ServiceSuspended(f"the {header.kind!r} service is paused by its operator", paused.cause)
        rule = identities.rule(header.kind)
        if rule is not None:
            cause = decision_cause(rule.decision)
            if not isinstance(op, Transfer) or op.amount > rule.above_amount:
                if identity is None:
                    raise IdentityRequired(f"{header.kind} needs an attested identity of level {rule.min_level}",
                                           cause)
                if identity.expires_ms <= ctx.time_ms:
                    raise IdentityExpired("the attested identity of this key has expired", cause)
                if identity.level < rule.min_level:
                    raise IdentityLevelTooLow(f"{header.kind} needs identity level {rule.min_level}", cause)
        for party in op.parties(header.author):
            cause = self.frozen_by(party, ctx.time_ms)
            if cause:
                raise AccountFrozen(f"a party of this {header.kind} is frozen", cause)
        if isinstance(op, Transfer):
            level = identity.level if identity is not None and identity.expires_ms > ctx.time_ms else -1
            emergencies = self.emergencies
            interception = self.rules.first_interception(
                op, header.author, max(level, 0),
                lambda rule: not rule.emergency or emergencies.get(rule.emergency).active(ctx.time_ms))
            if interception is not None:
                if interception.outcome == "hold":
                    raise HeldForReview(interception)
                raise TransactionIntercepted(f"intercepted by rule {interception.rule_id!r}", interception.cause)
        elif isinstance(op, Data):
            blocking = self.rules.blocking_content_rule(header, op, ctx.keywords.get(entry_id, ()))
            if blocking is not None:
                raise ContentBlocked(f"blocked by content rule {blocking.rule_id!r}",
                                     decision_cause(blocking.decision))


def frozen_by(state: State, account: bytes, now_ms: int) -> str:
    return Gate(state).frozen_by(account, now_ms)


def compliance_gate(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    Gate(state).check(ctx, entry_id, header, op)


# --- rule dry-run: what a proposed action would have refused ---------------------------------

DRY_RUN_DECISION = 0  # the hypothetical decision's number; real proposals start at 1


def dry_run(
    state: State, action: GovAction, ctx: ExecContext, entries: Iterable[tuple[bytes, EntryHeader]]
) -> list[tuple[bytes, str]]:
    """The entries (already final) that the gate would have refused had `action` been in force,
    with the reason code each would have got. Uses the gate itself, inside a state transaction
    that is always rolled back (the caller holds the state alone meanwhile: nothing awaits
    in here); identities and other rules are taken as they are now."""
    state.begin_transaction()
    try:
        carry_out(ctx, state, DRY_RUN_DECISION, action)
        cause = decision_cause(DRY_RUN_DECISION)
        gate = Gate(state)
        refused = []
        for entry_id, header in entries:
            try:
                op = decode_operation(header.kind, header.body)
                gate.check(ctx, entry_id, header, op)
            except HeldForReview as held:
                if held.rule.cause == cause:
                    refused.append((entry_id, HELD_CODE))
            except ExecutionRejected as exc:
                if exc.cause == cause:
                    refused.append((entry_id, exc.code))
        return refused
    finally:
        state.rollback_transaction()

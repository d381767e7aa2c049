"""Identities: providers the council appoints attest keys; the council denies service to
keys and identities, and sets the identity level each operation kind needs.

Keeper of these state keys:

    b"P"  + key       -> an identity provider, appointed by proposal number
    b"I"  + key       -> IdentityRecord: the identity a provider attested for that key
    b"X"  + key       -> key banned by proposal number (every entry it authors is refused)
    b"XI" + identity  -> identity banned by proposal number (all its keys are refused)
    b"Q"  + kind      -> IdentityRule: the identity level entries of that kind need
"""

from __future__ import annotations

import msgspec

from ... import codec
from ...errors import BadRequest
from ...keys.address import PUBLIC_KEY_SIZE
from ...ledger.entry import EntryHeader
from ...ledger.operations import (
    IDENTITY_ID_SIZE,
    IDENTITY_LEVELS,
    AppointIdentityProvider,
    BanIdentity,
    BanKey,
    IdAttest,
    Operation,
    RevokeIdentityProvider,
    SetIdentityRule,
    UnbanIdentity,
    UnbanKey,
)
from ..errors import ExecutionRejected
from ..state import Keeper, State
from .actions import ActionSpec, register_action
from .context import ExecContext
from .options import ActionOptions, parse_identity


class NotIdentityProvider(ExecutionRejected):
    code = "not_identity_provider"


class IdentityRequired(ExecutionRejected):
    code = "identity_required"


class IdentityExpired(ExecutionRejected):
    code = "identity_expired"


class IdentityLevelTooLow(ExecutionRejected):
    code = "identity_level_too_low"


class IdentityBanned(ExecutionRejected):
    code = "identity_banned"


class IdentityRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    identity: bytes
    level: int
    expires_ms: int
    provider: bytes
    entry_id: bytes


class IdentityRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    min_level: int
    above_amount: int
    decision: int


PROVIDER, IDENTITY, BANNED, BANNED_IDENTITY, RULE = b"P", b"I", b"X", b"XI", b"Q"


def _provider_key(key: bytes) -> bytes:
    return PROVIDER + key


def identity_key(key: bytes) -> bytes:
    """Public for proofs: an account proof proves this key against a state root."""
    return IDENTITY + key


def banned_key(key: bytes) -> bytes:
    """Public for proofs: an account proof proves this key against a state root."""
    return BANNED + key


def _banned_identity_key(identity: bytes) -> bytes:
    return BANNED_IDENTITY + identity


def _rule_key(kind: str) -> bytes:
    return RULE + kind.encode()


class Identities(Keeper):
    """The gate reads a key's ban, identity, identity ban and its kind's rule for every entry:
    those reads are one lookup each, with no helper in between."""

    __slots__ = ()
    KEYS = ((PROVIDER, 32), (IDENTITY, 32), (BANNED, 32), (BANNED_IDENTITY, 16), (RULE, None))

    def provider_decision(self, key: bytes) -> int | None:
        """The proposal that appointed `key` an identity provider, or None."""
        return self._decision(_provider_key(key))

    def providers(self) -> list[tuple[bytes, int]]:
        return self._decisions(PROVIDER, PUBLIC_KEY_SIZE)

    def identity_of(self, key: bytes) -> IdentityRecord | None:
        raw = self.state.get(IDENTITY + key)
        return None if raw is None else codec.decode(raw, IdentityRecord)

    def key_ban(self, key: bytes) -> int | None:
        """The proposal that denied `key` service, or None."""
        raw = self.state.get(BANNED + key)
        return None if raw is None else codec.decode(raw, int)

    def banned_keys(self) -> list[tuple[bytes, int]]:
        return self._decisions(BANNED, PUBLIC_KEY_SIZE)

    def identity_ban(self, identity: bytes) -> int | None:
        raw = self.state.get(BANNED_IDENTITY + identity)
        return None if raw is None else codec.decode(raw, int)

    def banned_identities(self) -> list[tuple[bytes, int]]:
        return self._decisions(BANNED_IDENTITY, IDENTITY_ID_SIZE)

    def rule(self, kind: str) -> IdentityRule | None:
        raw = self.state.get(RULE + kind.encode())
        return None if raw is None else codec.decode(raw, IdentityRule)

    def rules(self) -> list[tuple[str, IdentityRule]]:
        return [(key[1:].decode(), codec.decode(value, IdentityRule)) for key, value in self.state.scan(RULE)]

    def attest(self, subject: bytes, record: IdentityRecord) -> None:
        self.state.set(identity_key(subject), codec.encode(record))

    def set_provider(self, key: bytes, number: int | None) -> None:
        if number is None:
            self.state.delete(_provider_key(key))
        else:
            self.state.set(_provider_key(key), codec.encode(number))

    def ban_key(self, key: bytes, number: int | None) -> None:
        """Deny `key` service by proposal `number`; None lifts the ban."""
        if number is None:
            self.state.delete(banned_key(key))
        else:
            self.state.set(banned_key(key), codec.encode(number))

    def ban_identity(self, identity: bytes, number: int | None) -> None:
        if number is None:
            self.state.delete(_banned_identity_key(identity))
        else:
            self.state.set(_banned_identity_key(identity), codec.encode(number))

    def set_rule(self, kind: str, rule: IdentityRule | None) -> None:
        if rule is None:
            self.state.delete(_rule_key(kind))
        else:
            self.state.set(_rule_key(kind), codec.encode(rule))


def apply_attest(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, IdAttest)
    identities = Identities(state)
    if identities.provider_decision(header.author) is None:
        raise NotIdentityProvider("only identity providers appointed by the council attest identities")
    identities.attest(op.subject, IdentityRecord(op.identity, op.level, op.expires_ms, header.author, entry_id))


def appoint_provider(ctx: ExecContext, state: State, number: int, action: AppointIdentityProvider) -> None:
    Identities(state).set_provider(action.key, number)


def revoke_provider(ctx: ExecContext, state: State, number: int, action: RevokeIdentityProvider) -> None:
    Identities(state).set_provider(action.key, None)


def ban_key(ctx: ExecContext, state: State, number: int, action: BanKey) -> None:
    Identities(state).ban_key(action.key, number)


def unban_key(ctx: ExecContext, state: State, number: int, action: UnbanKey) -> None:
    Identities(state).ban_key(action.key, None)


def ban_identity(ctx: ExecContext, state: State, number: int, action: BanIdentity) -> None:
    Identities(state).ban_identity(action.identity, number)


def unban_identity(ctx: ExecContext, state: State, number: int, action: UnbanIdentity) -> None:
    Identities(state).ban_identity(action.identity, None)


def set_identity_rule(ctx: ExecContext, state: State, number: int, action: SetIdentityRule) -> None:
    """Level 0 removes the rule."""
    rule = IdentityRule(action.min_level, action.above_amount, number) if action.min_level else None
    Identities(state).set_rule(action.kind, rule)


def _identity_rule(o: ActionOptions) -> SetIdentityRule:
    if not o.service or o.min_level is None:
        raise BadRequest("--action identity-rule needs --service KIND and --min-level")
    return SetIdentityRule(kind=o.service, min_level=IDENTITY_LEVELS[o.min_level], above_amount=o.above)


_LEVEL_CODES = (IdentityRequired.code, IdentityExpired.code, IdentityLevelTooLow.code)

register_action(ActionSpec(
    AppointIdentityProvider, "appoint-provider", "appoint an identity provider, who may then attest keys",
    build=lambda o, _: AppointIdentityProvider(o.target_key("appoint-provider")), effect=appoint_provider))
register_action(ActionSpec(
    RevokeIdentityProvider, "revoke-provider", "revoke an identity provider (its attestations stay)",
    build=lambda o, _: RevokeIdentityProvider(o.target_key("revoke-provider")), effect=revoke_provider))
register_action(ActionSpec(
    BanKey, "ban", "deny a key service: every entry it authors is refused",
    build=lambda o, _: BanKey(o.target_key("ban")), effect=ban_key, refusals=(IdentityBanned.code,)))
register_action(ActionSpec(
    UnbanKey, "unban", "lift a key's ban", build=lambda o, _: UnbanKey(o.target_key("unban")), effect=unban_key))
register_action(ActionSpec(
    BanIdentity, "ban-identity", "deny service to every key attested to an identity",
    build=lambda o, _: BanIdentity(parse_identity(o.identity)), effect=ban_identity,
    refusals=(IdentityBanned.code,)))
register_action(ActionSpec(
    UnbanIdentity, "unban-identity", "lift an identity's ban",
    build=lambda o, _: UnbanIdentity(parse_identity(o.identity)), effect=unban_identity))
register_action(ActionSpec(
    SetIdentityRule, "identity-rule", "the identity level entries of a kind need (unverified removes the rule)",
    build=lambda o, _: _identity_rule(o), effect=set_identity_rule, refusals=_LEVEL_CODES))

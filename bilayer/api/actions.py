"""Management actions from user input (CLI options, API queries) to typed `GovAction`s."""

from __future__ import annotations

import re

from ..errors import BadRequest
from ..keys.address import public_key_from_address
from ..ledger.operations import (
    IDENTITY_ID_SIZE,
    IDENTITY_LEVELS,
    AppointIdentityProvider,
    BanIdentity,
    BanKey,
    FreezeAccount,
    GovAction,
    RatifyEmergency,
    RemoveInterceptionRule,
    ResumeService,
    RevokeIdentityProvider,
    SetCouncilMember,
    SetIdentityRule,
    SetInterceptionRule,
    SetValidator,
    SuspendService,
    UnbanIdentity,
    UnbanKey,
    UnfreezeAccount,
)

ACTIONS = ("freeze", "unfreeze", "ban", "unban", "suspend", "resume", "ratify", "appoint-provider",
           "revoke-provider", "ban-identity", "unban-identity", "identity-rule", "council-member",
           "intercept", "remove-intercept", "set-validator")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def parse_key(text: str) -> bytes:
    """A public key given as an address or as 64 hex characters (as genesis and node keys are shown)."""
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    return public_key_from_address(text)


def parse_identity(text: str | None) -> bytes:
    try:
        identity = bytes.fromhex(text or "")
    except ValueError:
        identity = b""
    if len(identity) != IDENTITY_ID_SIZE:
        raise BadRequest(f"an identity id is {IDENTITY_ID_SIZE * 2} hex characters")
    return identity


def make_action(action: str, target: str | None, service: str | None, emergency: int | None,
                identity: str | None = None, min_level: str | None = None, above: int = 0,
                weight: int | None = None, rule_id: str | None = None, asset: str | None = None,
                counterparties: tuple[str, ...] = (), max_level: str | None = None, power: int | None = None,
                name: str = "") -> GovAction:
    if action in ("intercept", "remove-intercept"):
        if not rule_id:
            raise BadRequest(f"--action {action} needs --rule-id")
        if action == "remove-intercept":
            return RemoveInterceptionRule(rule_id)
        return SetInterceptionRule(
            rule_id=rule_id, min_amount=above, asset=asset or "",
            counterparties=tuple(public_key_from_address(c) for c in counterparties),
            max_identity_level=IDENTITY_LEVELS[max_level] if max_level else -1,
        )
    if action in ("ban-identity", "unban-identity"):
        parsed = parse_identity(identity)
        return BanIdentity(parsed) if action == "ban-identity" else UnbanIdentity(parsed)
    if action == "identity-rule":
        if not service or min_level is None:
            raise BadRequest("--action identity-rule needs --service KIND and --min-level")
        return SetIdentityRule(kind=service, min_level=IDENTITY_LEVELS[min_level], above_amount=above)
    if action in ("suspend", "resume"):
        if not service:
            raise BadRequest(f"--action {action} needs --service KIND (an operation kind, e.g. data)")
        return SuspendService(service) if action == "suspend" else ResumeService(service)
    if action == "ratify":
        if emergency is None:
            raise BadRequest("--action ratify needs --emergency NUMBER")
        return RatifyEmergency(emergency)
    if not target:
        raise BadRequest(f"--action {action} needs --target ADDRESS")
    if action == "set-validator":
        if power is None:
            raise BadRequest("--action set-validator needs --power (0 removes the validator)")
        return SetValidator(parse_key(target), power, name)
    key = public_key_from_address(target)
    if action == "council-member":
        if weight is None:
            raise BadRequest("--action council-member needs --weight (0 removes the member)")
        return SetCouncilMember(key, weight)
    if action == "appoint-provider":
        return AppointIdentityProvider(key)
    if action == "revoke-provider":
        return RevokeIdentityProvider(key)
    if action == "freeze":
        return FreezeAccount(key)
    if action == "unfreeze":
        return UnfreezeAccount(key)
    if action == "ban":
        return BanKey(key)
    return UnbanKey(key)

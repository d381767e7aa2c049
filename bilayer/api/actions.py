"""Management actions from user input (CLI options, API queries) to typed `GovAction`s."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .. import codec
from ..errors import BadRequest
from ..genesis import ChainParams
from ..keys.address import public_key_from_address
from ..ledger.operations import (
    IDENTITY_ID_SIZE,
    IDENTITY_LEVELS,
    AppointIdentityProvider,
    AppointOperator,
    BanIdentity,
    BanKey,
    FreezeAccount,
    GovAction,
    RatifyEmergency,
    RecoverAssets,
    RedactEntries,
    RemoveContentRule,
    RemoveInterceptionRule,
    ResumeService,
    RevokeIdentityProvider,
    RevokeOperator,
    SetChainParams,
    SetContentRule,
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
           "intercept", "remove-intercept", "content-rule", "remove-content-rule", "redact", "recover",
           "chain-params", "set-validator", "appoint-operator", "revoke-operator")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ActionOptions:
    """Everything a user may say about an action; each action reads the options it needs."""

    target: str | None = None
    service: str | None = None
    emergency: int | None = None
    identity: str | None = None
    min_level: str | None = None
    above: int = 0
    weight: int | None = None
    rule_id: str | None = None
    asset: str | None = None
    counterparties: tuple[str, ...] = ()
    max_level: str | None = None
    outcome: str = "reject"
    review_ms: int = 0
    payload_hash: str | None = None
    keyword: str | None = None
    media_type: str | None = None
    max_size: int | None = None
    entries: tuple[str, ...] = ()
    reason_code: str | None = None
    to: str | None = None
    assets: tuple[str, ...] = ()
    params: dict[str, int] = field(default_factory=dict)
    power: int | None = None
    name: str = ""


def parse_key(text: str) -> bytes:
    """A public key given as an address or as 64 hex characters (as genesis and node keys are shown)."""
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    return public_key_from_address(text)


def parse_identity(text: str | None) -> bytes:
    identity = codec.from_hex(text or "", IDENTITY_ID_SIZE)
    if identity is None:
        raise BadRequest(f"an identity id is {IDENTITY_ID_SIZE * 2} hex characters")
    return identity


def parse_hex32(text: str, what: str) -> bytes:
    """32 bytes given as 64 hex characters (entry ids, hashes); `what` names them in the error."""
    value = codec.from_hex(text, 32)
    if value is None:
        raise BadRequest(f"{what} is 64 hex characters")
    return value


def _rule_action(action: str, o: ActionOptions) -> GovAction:
    if not o.rule_id:
        raise BadRequest(f"--action {action} needs --rule-id")
    if action == "remove-intercept":
        return RemoveInterceptionRule(o.rule_id)
    if action == "remove-content-rule":
        return RemoveContentRule(o.rule_id)
    if action == "content-rule":
        return SetContentRule(rule_id=o.rule_id, payload_hash=parse_hex32(o.payload_hash, "--payload-hash")
                              if o.payload_hash else b"", keyword=o.keyword or "", media_type=o.media_type or "",
                              max_size=-1 if o.max_size is None else o.max_size)
    return SetInterceptionRule(
        rule_id=o.rule_id, min_amount=o.above, asset=o.asset or "",
        counterparties=tuple(public_key_from_address(c) for c in o.counterparties),
        max_identity_level=IDENTITY_LEVELS[o.max_level] if o.max_level else -1,
        outcome=o.outcome, review_ms=o.review_ms,
    )


def _chain_params(current: ChainParams, changes: dict[str, int]) -> ChainParams:
    unknown = sorted(set(changes) - set(ChainParams.__struct_fields__))
    if unknown or not changes:
        raise BadRequest(f"--action chain-params needs --param NAME=VALUE with NAME one of"
                         f" {', '.join(ChainParams.__struct_fields__)}")
    return msgspec.structs.replace(current, **changes)


def make_action(action: str, o: ActionOptions, current_params: ChainParams | None = None) -> GovAction:
    """`current_params`: the parameters in force, which chain-params changes only where told."""
    if action in ("intercept", "remove-intercept", "content-rule", "remove-content-rule"):
        return _rule_action(action, o)
    if action == "redact":
        if not o.entries or not o.reason_code:
            raise BadRequest("--action redact needs --entry ID (repeatable) and --reason-code")
        return RedactEntries(tuple(parse_hex32(e, "an entry id") for e in o.entries), o.reason_code)
    if action == "chain-params":
        return SetChainParams(_chain_params(current_params or ChainParams(), o.params))
    if action in ("ban-identity", "unban-identity"):
        parsed = parse_identity(o.identity)
        return BanIdentity(parsed) if action == "ban-identity" else UnbanIdentity(parsed)
    if action == "identity-rule":
        if not o.service or o.min_level is None:
            raise BadRequest("--action identity-rule needs --service KIND and --min-level")
        return SetIdentityRule(kind=o.service, min_level=IDENTITY_LEVELS[o.min_level], above_amount=o.above)
    if action in ("suspend", "resume"):
        if not o.service:
            raise BadRequest(f"--action {action} needs --service KIND (an operation kind, e.g. data)")
        return SuspendService(o.service) if action == "suspend" else ResumeService(o.service)
    if action in ("appoint-operator", "revoke-operator"):
        if not o.service or not o.target:
            raise BadRequest(f"--action {action} needs --target ADDRESS and --service KIND (the application)")
        cls = AppointOperator if action == "appoint-operator" else RevokeOperator
        return cls(public_key_from_address(o.target), o.service)
    if action == "ratify":
        if o.emergency is None:
            raise BadRequest("--action ratify needs --emergency NUMBER")
        return RatifyEmergency(o.emergency)
    if not o.target:
        raise BadRequest(f"--action {action} needs --target ADDRESS")
    if action == "set-validator":
        if o.power is None:
            raise BadRequest("--action set-validator needs --power (0 removes the validator)")
        return SetValidator(parse_key(o.target), o.power, o.name)
    key = public_key_from_address(o.target)
    if action == "recover":
        if not o.to or not o.assets:
            raise BadRequest("--action recover needs --target LOST_ADDRESS, --to NEW_ADDRESS and --asset (repeatable)")
        return RecoverAssets(key, public_key_from_address(o.to), tuple(o.assets))
    if action == "council-member":
        if o.weight is None:
            raise BadRequest("--action council-member needs --weight (0 removes the member)")
        return SetCouncilMember(key, o.weight)
    simple: dict[str, type[FreezeAccount | UnfreezeAccount | BanKey | UnbanKey | AppointIdentityProvider
                          | RevokeIdentityProvider]] = {
        "appoint-provider": AppointIdentityProvider, "revoke-provider": RevokeIdentityProvider,
        "freeze": FreezeAccount, "unfreeze": UnfreezeAccount, "ban": BanKey, "unban": UnbanKey}
    return simple[action](key)


def options_from_query(query: Mapping[str, str], getall: Callable[[str, list[str]], list[str]]) -> ActionOptions:
    """The same options from an HTTP query (repeat a name for a list; `param=NAME=VALUE`)."""
    values: dict[str, Any] = {}
    for name, spec in ActionOptions.__dataclass_fields__.items():
        if name == "params":
            changes = {}
            for text in getall("param", []):
                key, _, raw = text.partition("=")
                changes[key] = _int(raw, "param")
            values[name] = changes
        elif spec.type in ("tuple[str, ...]",):
            values[name] = tuple(getall(name, []))
        elif name in query:
            raw = query[name]
            values[name] = _int(raw, name) if spec.type in ("int", "int | None") else raw
    return ActionOptions(**values)


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} is an integer") from None

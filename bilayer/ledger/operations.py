"""Typed operations carried by entries, and the registry that names them.

An entry header holds an operation as `kind` (its registered name) and `body` (the
canonical msgpack of the operation's struct). Adding an operation type is local: define a
struct subclassing `Operation`, give it `KIND`, its stateless `check` and its JSON `view`,
and decorate it with `@register`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, TypeVar

import msgspec

from .. import codec
from ..errors import BadEncoding, InvalidOperation, PayloadTooLarge, UnknownOperation
from ..genesis import ChainParams, chain_params_problem
from ..keys.address import PUBLIC_KEY_SIZE, address_from_public_key

_ASSET = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")
_RULE_ID = re.compile(r"[a-z0-9_-]{1,32}")
_VALIDATOR_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
MAX_AMOUNT = 2**63 - 1


class Operation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = ""

    def check(self, payload_size: int, params: ChainParams) -> None:
        """Stateless rules of this operation type; raise `InvalidOperation`."""

    def view(self) -> dict[str, Any]:
        """A JSON-friendly rendering for the API and CLI."""
        return {"kind": self.KIND, **msgspec.to_builtins(self)}

    def parties(self, author: bytes) -> tuple[bytes, ...]:
        """The accounts this operation moves value or rights between: the gate refuses it when
        one of them is frozen."""
        return ()


_REGISTRY: dict[str, type[Operation]] = {}

OpT = TypeVar("OpT", bound=type[Operation])


def register(cls: OpT) -> OpT:
    if not cls.KIND or cls.KIND in _REGISTRY:
        raise ValueError(f"operation kind {cls.KIND!r} is empty or registered twice")
    _REGISTRY[cls.KIND] = cls
    return cls


def operation_kinds() -> list[str]:
    return sorted(_REGISTRY)


def decode_operation(kind: str, body: bytes) -> Operation:
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise UnknownOperation(f"unknown operation kind {kind!r}")
    try:
        return codec.decode_canonical(body, cls)
    except BadEncoding as exc:
        raise InvalidOperation(f"{kind} body: {exc.message}") from None


def encode_operation(op: Operation) -> tuple[str, bytes]:
    return op.KIND, codec.encode(op)


@register
class Transfer(Operation, frozen=True, forbid_unknown_fields=True):
    """Move `amount` units of `asset` from the author to `to`; the payload is a memo."""

    KIND: ClassVar[str] = "transfer"
    asset: str
    amount: int
    to: bytes

    def check(self, payload_size: int, params: ChainParams) -> None:
        if not _ASSET.fullmatch(self.asset):
            raise InvalidOperation("asset: 1-16 characters, A-Z and 0-9, starting with a letter")
        if not 0 < self.amount <= MAX_AMOUNT:
            raise InvalidOperation(f"amount must be between 1 and {MAX_AMOUNT}")
        if len(self.to) != PUBLIC_KEY_SIZE:
            raise InvalidOperation("recipient must be a 32-byte public key")
        if payload_size > params.max_memo_bytes:
            raise PayloadTooLarge(f"a transfer memo holds at most {params.max_memo_bytes} bytes")

    def view(self) -> dict[str, Any]:
        return {"kind": self.KIND, "asset": self.asset, "amount": self.amount, "to": address_from_public_key(self.to)}

    def parties(self, author: bytes) -> tuple[bytes, ...]:
        return (author, self.to)


@register
class Data(Operation, frozen=True, forbid_unknown_fields=True):
    """Publish the payload bytes, labelled with a media type."""

    KIND: ClassVar[str] = "data"
    media_type: str

    def check(self, payload_size: int, params: ChainParams) -> None:
        if not _MEDIA_TYPE.fullmatch(self.media_type):
            raise InvalidOperation("media_type must look like 'type/subtype' in lower case")
        if payload_size > params.max_data_bytes:
            raise PayloadTooLarge(f"a data payload holds at most {params.max_data_bytes} bytes")


# --- governance (the council decides management actions on chain) ---------------------------

_CHOICES = ("yes", "no", "abstain")
MAX_REASON = 2000
MAX_LEGAL_REF = 200


class Action(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A governance action: the struct a proposal carries (tagged by `type` on the wire).
    Its spec in `execution/governance` names it and gives its effect; here are only its
    stateless rules and its JSON rendering, which layer 1 needs to admit an entry."""

    def check(self) -> None:
        """Stateless rules of this action; raise `InvalidOperation`."""

    def view(self) -> dict[str, Any]:
        """JSON for the API and CLI: keys as addresses (`target`)."""
        view = msgspec.to_builtins(self)
        for field in ("account", "key"):
            if field in view:
                view["target"] = address_from_public_key(getattr(self, field))
                del view[field]
        return dict(view)


def _check_key(key: bytes, problem: str) -> None:
    if len(key) != PUBLIC_KEY_SIZE:
        raise InvalidOperation(problem)


def _check_rule_id(rule_id: str) -> None:
    if not _RULE_ID.fullmatch(rule_id):
        raise InvalidOperation("rule_id: 1-32 characters of a-z, 0-9, '-' and '_'")


class FreezeAccount(Action, frozen=True, tag="freeze_account", forbid_unknown_fields=True):
    account: bytes

    def check(self) -> None:
        _check_key(self.account, "the action's target must be a 32-byte public key")


class UnfreezeAccount(Action, frozen=True, tag="unfreeze_account", forbid_unknown_fields=True):
    account: bytes

    def check(self) -> None:
        _check_key(self.account, "the action's target must be a 32-byte public key")


class BanKey(Action, frozen=True, tag="ban_key", forbid_unknown_fields=True):
    """Deny service to a key: every entry it authors is REJECTED (`identity_banned`)."""

    key: bytes

    def check(self) -> None:
        _check_key(self.key, "the action's target must be a 32-byte public key")


class UnbanKey(Action, frozen=True, tag="unban_key", forbid_unknown_fields=True):
    key: bytes

    def check(self) -> None:
        _check_key(self.key, "the action's target must be a 32-byte public key")


class SuspendService(Action, frozen=True, tag="suspend_service", forbid_unknown_fields=True):
    """Stop an application: every entry of this operation kind is REJECTED (`service_suspended`)."""

    kind: str

    def check(self) -> None:
        _check_application_kind(self.kind)


class ResumeService(Action, frozen=True, tag="resume_service", forbid_unknown_fields=True):
    kind: str

    def check(self) -> None:
        _check_application_kind(self.kind)


class AppointOperator(Action, frozen=True, tag="appoint_operator", forbid_unknown_fields=True):
    """Make a key the operator of one application (an operation kind): it may then pause and
    resume that application at once (`app.pause`, `app.resume`), and nothing else."""

    key: bytes
    kind: str

    def check(self) -> None:
        _check_key(self.key, "an application operator is a 32-byte public key")
        _check_application_kind(self.kind)


class RevokeOperator(Action, frozen=True, tag="revoke_operator", forbid_unknown_fields=True):
    key: bytes
    kind: str

    def check(self) -> None:
        _check_key(self.key, "an application operator is a 32-byte public key")
        _check_application_kind(self.kind)


class RatifyEmergency(Action, frozen=True, tag="ratify_emergency", forbid_unknown_fields=True):
    """Make a regulator's emergency action (a freeze, or an interception rule) permanent
    before it lapses."""

    emergency: int

    def check(self) -> None:
        if self.emergency < 1:
            raise InvalidOperation("emergency numbers start at 1")


class AppointIdentityProvider(Action, frozen=True, tag="appoint_identity_provider", forbid_unknown_fields=True):
    key: bytes

    def check(self) -> None:
        _check_key(self.key, "an identity provider is a 32-byte public key")


class RevokeIdentityProvider(Action, frozen=True, tag="revoke_identity_provider", forbid_unknown_fields=True):
    key: bytes

    def check(self) -> None:
        _check_key(self.key, "an identity provider is a 32-byte public key")


class BanIdentity(Action, frozen=True, tag="ban_identity", forbid_unknown_fields=True):
    """Deny service to every key attested to this identity (`identity_banned`)."""

    identity: bytes

    def check(self) -> None:
        _check_identity(self.identity)

    def view(self) -> dict[str, Any]:
        return {**super().view(), "identity": self.identity.hex()}


class UnbanIdentity(Action, frozen=True, tag="unban_identity", forbid_unknown_fields=True):
    identity: bytes

    def check(self) -> None:
        _check_identity(self.identity)

    def view(self) -> dict[str, Any]:
        return {**super().view(), "identity": self.identity.hex()}


class SetIdentityRule(Action, frozen=True, tag="set_identity_rule", forbid_unknown_fields=True):
    """Entries of `kind` (transfers: above `above_amount`) need an identity of `min_level`;
    `min_level` 0 removes the rule."""

    kind: str
    min_level: int
    above_amount: int = 0

    def check(self) -> None:
        _check_application_kind(self.kind)
        if self.min_level not in IDENTITY_LEVELS.values() or self.above_amount < 0:
            raise InvalidOperation("min_level is 0, 1 or 2 and above_amount is not negative")


class SetInterceptionRule(Action, frozen=True, tag="set_interception_rule", forbid_unknown_fields=True):
    """Intercept transfers, as data: those of at least `min_amount` (of `asset`, if given),
    touching a listed counterparty (if any are listed), whose author's identity level is at
    most `max_identity_level` (-1: any author) are REJECTED (`transaction_intercepted`), or,
    with `outcome` "hold", HELD for review: a regulator releases or rejects each one, and
    after `review_ms` (0: the chain's default) an undecided one is rejected."""

    rule_id: str
    min_amount: int = 0
    asset: str = ""
    counterparties: tuple[bytes, ...] = ()
    max_identity_level: int = -1
    outcome: str = "reject"
    review_ms: int = 0

    def check(self) -> None:
        _check_rule_id(self.rule_id)
        if self.min_amount < 0 or (self.asset and not _ASSET.fullmatch(self.asset)):
            raise InvalidOperation("min_amount is not negative and asset, if given, is an asset name")
        if len(self.counterparties) > 1000 or any(len(c) != PUBLIC_KEY_SIZE for c in self.counterparties):
            raise InvalidOperation("counterparties: at most 1000 public keys of 32 bytes")
        if self.max_identity_level not in (-1, *IDENTITY_LEVELS.values()):
            raise InvalidOperation("max_identity_level is -1 (any author), 0, 1 or 2")
        if self.outcome not in INTERCEPTION_OUTCOMES or not 0 <= self.review_ms <= MAX_REVIEW_MS:
            raise InvalidOperation(f"outcome is 'reject' or 'hold'; review_ms is 0..{MAX_REVIEW_MS}")

    def view(self) -> dict[str, Any]:
        return {**super().view(), "counterparties": [address_from_public_key(c) for c in self.counterparties]}


class RemoveInterceptionRule(Action, frozen=True, tag="remove_interception_rule", forbid_unknown_fields=True):
    rule_id: str

    def check(self) -> None:
        _check_rule_id(self.rule_id)


class SetCouncilMember(Action, frozen=True, tag="set_council_member", forbid_unknown_fields=True):
    """Add a council member, change its weight, or (weight 0) remove it."""

    key: bytes
    weight: int

    def check(self) -> None:
        if len(self.key) != PUBLIC_KEY_SIZE or not 0 <= self.weight <= 1_000_000:
            raise InvalidOperation("a council member is a 32-byte public key with a weight of 0..1000000")


class SetContentRule(Action, frozen=True, tag="set_content_rule", forbid_unknown_fields=True):
    """Block `data` entries, as data: those whose payload has this SHA-256 `payload_hash`,
    contains `keyword` (ASCII case-insensitive), has this `media_type`, or is larger than
    `max_size` bytes; a rule naming several criteria needs all of them. A blocked entry is
    REJECTED (`content_blocked`) and no node serves its payload."""

    rule_id: str
    payload_hash: bytes = b""
    keyword: str = ""
    media_type: str = ""
    max_size: int = -1

    def check(self) -> None:
        _check_rule_id(self.rule_id)
        if self.payload_hash and len(self.payload_hash) != 32:
            raise InvalidOperation("payload_hash is a 32-byte SHA-256")
        if self.keyword and (not self.keyword.isascii() or not 0 < len(self.keyword) <= 64):
            raise InvalidOperation("keyword: 1-64 ASCII characters")
        if self.media_type and not _MEDIA_TYPE.fullmatch(self.media_type):
            raise InvalidOperation("media_type must look like 'type/subtype' in lower case")
        if self.max_size < -1:
            raise InvalidOperation("max_size is -1 (no size criterion) or a size in bytes")
        if not (self.payload_hash or self.keyword or self.media_type or self.max_size >= 0):
            raise InvalidOperation("a content rule names at least one of payload_hash, keyword, media_type,"
                                   " max_size")

    def view(self) -> dict[str, Any]:
        return {**super().view(), "payload_hash": self.payload_hash.hex()}


class RemoveContentRule(Action, frozen=True, tag="remove_content_rule", forbid_unknown_fields=True):
    rule_id: str

    def check(self) -> None:
        _check_rule_id(self.rule_id)


class RedactEntries(Action, frozen=True, tag="redact_entries", forbid_unknown_fields=True):
    """Delete these entries' payloads on every node; each node serves a tombstone instead.
    Ids commit to payload hashes only, so the DAG and every root stay verifiable."""

    entries: tuple[bytes, ...]
    reason_code: str

    def check(self) -> None:
        if not 0 < len(self.entries) <= MAX_REDACTIONS or any(len(e) != 32 for e in self.entries):
            raise InvalidOperation(f"entries: 1-{MAX_REDACTIONS} entry ids of 32 bytes")
        if not _REASON_CODE.fullmatch(self.reason_code):
            raise InvalidOperation("reason_code: 1-48 characters of a-z, 0-9 and '_'")

    def view(self) -> dict[str, Any]:
        return {**super().view(), "entries": [e.hex() for e in self.entries]}


class RecoverAssets(Action, frozen=True, tag="recover_assets", forbid_unknown_fields=True):
    """A key proven lost or stolen: wipe its balances of `assets`, reissue them to `to`, and
    deny the old key service so whoever holds it can do nothing more."""

    lost: bytes
    to: bytes
    assets: tuple[str, ...]

    def check(self) -> None:
        if len(self.lost) != PUBLIC_KEY_SIZE or len(self.to) != PUBLIC_KEY_SIZE or self.lost == self.to:
            raise InvalidOperation("lost and to are two different 32-byte public keys")
        if not 0 < len(self.assets) <= 16 or len(set(self.assets)) != len(self.assets) or not all(
                _ASSET.fullmatch(a) for a in self.assets):
            raise InvalidOperation("assets: 1-16 distinct asset names")

    def view(self) -> dict[str, Any]:
        return {**super().view(), "lost": address_from_public_key(self.lost), "to": address_from_public_key(self.to)}


class SetChainParams(Action, frozen=True, tag="set_chain_params", forbid_unknown_fields=True):
    """Replace the chain parameters (entry limits and proof of work) from the next checkpoint on."""

    params: ChainParams

    def check(self) -> None:
        check_chain_params(self.params)


MAX_VALIDATOR_POWER = 1000


class SetValidator(Action, frozen=True, tag="set_validator", forbid_unknown_fields=True):
    """Add a validator, change its voting power, or (power 0) remove it. The change governs
    consensus from the second checkpoint after the one that executes it (see `node/chain.py`).
    An empty `name` keeps the validator's name, or names a new one after its address."""

    key: bytes
    power: int
    name: str = ""

    def check(self) -> None:
        if len(self.key) != PUBLIC_KEY_SIZE or not 0 <= self.power <= MAX_VALIDATOR_POWER:
            raise InvalidOperation(f"a validator is a 32-byte public key with a power of 0..{MAX_VALIDATOR_POWER}"
                                   " (0 removes it)")
        if self.name and not _VALIDATOR_NAME.fullmatch(self.name):
            raise InvalidOperation("a validator name: 1-32 characters of a-z, 0-9, '-' and '_', not starting"
                                   " with '-' or '_'")

    def view(self) -> dict[str, Any]:
        return {**super().view(), "public_key": self.key.hex()}


GovAction = (
    FreezeAccount | UnfreezeAccount | BanKey | UnbanKey | SuspendService | ResumeService | RatifyEmergency
    | AppointIdentityProvider | RevokeIdentityProvider | BanIdentity | UnbanIdentity | SetIdentityRule
    | SetCouncilMember | SetInterceptionRule | RemoveInterceptionRule | SetContentRule | RemoveContentRule
    | RedactEntries | RecoverAssets | SetChainParams | SetValidator | AppointOperator | RevokeOperator
)

MANAGEMENT_PREFIXES = ("gov.", "reg.", "id.", "app.")
INTERCEPTION_OUTCOMES = ("reject", "hold")
MAX_REVIEW_MS = 30 * 24 * 3600 * 1000
MAX_REDACTIONS = 100
_REASON_CODE = re.compile(r"[a-z0-9_]{1,48}")
IDENTITY_LEVELS = {"unverified": 0, "verified": 1, "institution": 2}
IDENTITY_ID_SIZE = 16


def _check_identity(identity: bytes) -> None:
    if len(identity) != IDENTITY_ID_SIZE:
        raise InvalidOperation(f"an identity id is {IDENTITY_ID_SIZE} bytes")


def _check_application_kind(kind: str) -> None:
    if kind not in _REGISTRY or kind.startswith(MANAGEMENT_PREFIXES):
        raise InvalidOperation(f"{kind!r} is not an application operation kind")


def check_chain_params(params: ChainParams) -> None:
    problem = chain_params_problem(params)
    if problem:
        raise InvalidOperation(f"chain parameters: {problem}")


@register
class GovPropose(Operation, frozen=True, forbid_unknown_fields=True):
    """A council member proposes a management action, with its reason and legal basis."""

    KIND: ClassVar[str] = "gov.propose"
    action: GovAction
    reason: str
    legal_ref: str

    def check(self, payload_size: int, params: ChainParams) -> None:
        self.action.check()
        if not 0 < len(self.reason) <= MAX_REASON or len(self.legal_ref) > MAX_LEGAL_REF:
            raise InvalidOperation(f"reason: 1-{MAX_REASON} characters; legal_ref: at most {MAX_LEGAL_REF}")
        if payload_size > params.max_memo_bytes:
            raise PayloadTooLarge(f"a proposal's payload holds at most {params.max_memo_bytes} bytes")

    def view(self) -> dict[str, Any]:
        return {"kind": self.KIND, "action": self.action.view(), "reason": self.reason,
                "legal_ref": self.legal_ref}


@register
class GovVote(Operation, frozen=True, forbid_unknown_fields=True):
    KIND: ClassVar[str] = "gov.vote"
    proposal: int
    choice: str

    def check(self, payload_size: int, params: ChainParams) -> None:
        if self.proposal < 1 or self.choice not in _CHOICES:
            raise InvalidOperation("a vote names a proposal number and a choice: yes, no or abstain")
        if payload_size > params.max_memo_bytes:
            raise PayloadTooLarge(f"a vote's payload holds at most {params.max_memo_bytes} bytes")


@register
class GovExecute(Operation, frozen=True, forbid_unknown_fields=True):
    """Anyone may trigger a passed proposal once its timelock has run out."""

    KIND: ClassVar[str] = "gov.execute"
    proposal: int

    def check(self, payload_size: int, params: ChainParams) -> None:
        if self.proposal < 1:
            raise InvalidOperation("proposal numbers start at 1")


@register
class GovCancel(Operation, frozen=True, forbid_unknown_fields=True):
    """The proposer withdraws a proposal that has not executed."""

    KIND: ClassVar[str] = "gov.cancel"
    proposal: int

    def check(self, payload_size: int, params: ChainParams) -> None:
        if self.proposal < 1:
            raise InvalidOperation("proposal numbers start at 1")


# --- the regulator's emergency powers ---------------------------------------------------------


@register
class RegFreeze(Operation, frozen=True, forbid_unknown_fields=True):
    """A regulator freezes an account at once; the freeze lapses unless the council ratifies it."""

    KIND: ClassVar[str] = "reg.freeze"
    account: bytes
    reason: str
    legal_ref: str

    def check(self, payload_size: int, params: ChainParams) -> None:
        if len(self.account) != PUBLIC_KEY_SIZE:
            raise InvalidOperation("account must be a 32-byte public key")
        if not 0 < len(self.reason) <= MAX_REASON or len(self.legal_ref) > MAX_LEGAL_REF:
            raise InvalidOperation(f"reason: 1-{MAX_REASON} characters; legal_ref: at most {MAX_LEGAL_REF}")

    def view(self) -> dict[str, Any]:
        return {"kind": self.KIND, "account": address_from_public_key(self.account), "reason": self.reason,
                "legal_ref": self.legal_ref}


@register
class RegIntercept(Operation, frozen=True, forbid_unknown_fields=True):
    """A regulator puts an interception rule in force at once; it lapses unless the council
    ratifies it. It cannot replace a rule the council made."""

    KIND: ClassVar[str] = "reg.intercept"
    rule: SetInterceptionRule
    reason: str
    legal_ref: str

    def check(self, payload_size: int, params: ChainParams) -> None:
        self.rule.check()
        if not 0 < len(self.reason) <= MAX_REASON or len(self.legal_ref) > MAX_LEGAL_REF:
            raise InvalidOperation(f"reason: 1-{MAX_REASON} characters; legal_ref: at most {MAX_LEGAL_REF}")

    def view(self) -> dict[str, Any]:
        return {"kind": self.KIND, "rule": self.rule.view(), "reason": self.reason,
                "legal_ref": self.legal_ref}


# --- identities: providers appointed by the council attest keys ------------------------------


@register
class IdAttest(Operation, frozen=True, forbid_unknown_fields=True):
    """An identity provider binds a key to an opaque identity id with a level and an expiry
    (no personal data on chain)."""

    KIND: ClassVar[str] = "id.attest"
    subject: bytes
    identity: bytes
    level: int
    expires_ms: int

    def check(self, payload_size: int, params: ChainParams) -> None:
        if len(self.subject) != PUBLIC_KEY_SIZE or len(self.identity) != IDENTITY_ID_SIZE:
            raise InvalidOperation(f"subject is a 32-byte key and identity a {IDENTITY_ID_SIZE}-byte id")
        if self.level not in IDENTITY_LEVELS.values() or self.expires_ms <= 0:
            raise InvalidOperation("level is 0 (unverified), 1 (verified) or 2 (institution); expires_ms > 0")

    def view(self) -> dict[str, Any]:
        return {"kind": self.KIND, "subject": address_from_public_key(self.subject), "identity": self.identity.hex(),
                "level": self.level, "expires_ms": self.expires_ms}


@register
class RegReview(Operation, frozen=True, forbid_unknown_fields=True):
    """A regulator decides a transfer HELD for review: release it (it applies now) or reject it
    (its funds go back to the sender)."""

    KIND: ClassVar[str] = "reg.review"
    entry: bytes
    decision: str
    reason: str

    def check(self, payload_size: int, params: ChainParams) -> None:
        if len(self.entry) != 32 or self.decision not in REVIEW_DECISIONS:
            raise InvalidOperation("entry is a 32-byte entry id and decision is 'release' or 'reject'")
        if not 0 < len(self.reason) <= MAX_REASON:
            raise InvalidOperation(f"reason: 1-{MAX_REASON} characters")

    def view(self) -> dict[str, Any]:
        return {"kind": self.KIND, "entry": self.entry.hex(), "decision": self.decision, "reason": self.reason}


REVIEW_DECISIONS = ("release", "reject")


# --- application operators: pause and resume their own application ----------------------------


class _OperatorAct(Operation, frozen=True, forbid_unknown_fields=True):
    kind: str
    reason: str

    def check(self, payload_size: int, params: ChainParams) -> None:
        _check_application_kind(self.kind)
        if not 0 < len(self.reason) <= MAX_REASON:
            raise InvalidOperation(f"reason: 1-{MAX_REASON} characters")

    def view(self) -> dict[str, Any]:
        return {"kind": self.KIND, "application": self.kind, "reason": self.reason}


@register
class AppPause(_OperatorAct, frozen=True, forbid_unknown_fields=True):
    """An application's operator pauses it at once: its entries are REJECTED
    (`service_suspended`) until the operator or the council resumes it."""

    KIND: ClassVar[str] = "app.pause"


@register
class AppResume(_OperatorAct, frozen=True, forbid_unknown_fields=True):
    """An application's operator ends its own pause; it cannot lift the council's suspension."""

    KIND: ClassVar[str] = "app.resume"

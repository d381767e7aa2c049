"""Builders of every operation a client can submit, checked before anything is signed.

Each builder returns an `Op`: the typed operation struct (the one the chain decodes) and
the payload it carries. Keys may be given as addresses (`bl1...`) or as 32 raw bytes, ids
and hashes as hex or raw bytes. A builder runs the operation's own stateless rules, so a
malformed operation fails here with the same stable code the node would answer
(`invalid_operation`, or an application's own such as `warehouse.evidence_invalid`),
before any proof of work is spent. Whether the author may do it is decided on the chain.

    ops.transfer(to, 10)                       transfer
    ops.data(b"...", "application/json")       data
    ops.propose(ops.action("freeze_account", account=addr), reason="...")   gov.propose
    ops.vote(n, "yes"), ops.execute(n), ops.cancel(n)                       gov.vote/execute/cancel
    ops.reg_freeze(addr, reason=...), ops.reg_intercept(rule, reason=...),
    ops.reg_review(entry_id, "release", reason=...)                         reg.*
    ops.attest(addr, identity, "verified", expires_ms)                      id.attest
    ops.app_pause(kind, reason=...), ops.app_resume(kind, reason=...)        app.*
    ops.app("warehouse.accept_receipt", receipt=receipt_id)                 any application's kind
    ops.of(kind, **fields)                                                  any registered kind
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

import msgspec
from msgspec import inspect

from ..errors import BilayerError, InvalidOperation, UnknownOperation
from ..genesis import ChainParams
from ..keys.address import PUBLIC_KEY_SIZE, is_address, public_key_from_address
from ..ledger import operations as L
from ..ledger.operations import GovAction, Operation

# Payload limits are the chain's to enforce (they change by governance); a builder checks
# only the operation's own fields.
_NO_PAYLOAD_LIMIT = ChainParams(max_data_bytes=2**62, max_memo_bytes=2**62)


class Op(msgspec.Struct, frozen=True):
    """An operation ready to be signed: the typed operation and the payload bytes it carries."""

    operation: Operation
    payload: bytes = b""

    @property
    def kind(self) -> str:
        return self.operation.KIND


def _key(value: str | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        if len(value) != PUBLIC_KEY_SIZE:
            raise InvalidOperation(f"{what}: a public key is {PUBLIC_KEY_SIZE} bytes")
        return value
    if not is_address(value):
        raise InvalidOperation(f"{what}: {value!r} is not a bilayer address")
    return public_key_from_address(value)


def _bytes(text: str, what: str) -> bytes:
    """A bytes field given as text: an address (a key) or hex (an id, a hash)."""
    if is_address(text):
        return public_key_from_address(text)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InvalidOperation(f"{what}: give an address, hex, or bytes") from None


def _coerce(value: Any, t: inspect.Type, where: str) -> Any:
    """Text into bytes wherever the struct wants bytes, through nested structs, lists and
    unions; everything else is left for `msgspec.convert` to check. (Without this, convert
    would read a hex id as base64 and silently make other bytes of it.)"""
    if isinstance(t, inspect.BytesType) and isinstance(value, str):
        return _bytes(value, where)
    if isinstance(t, inspect.VarTupleType | inspect.ListType) and isinstance(value, list | tuple):
        return [_coerce(item, t.item_type, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(t, inspect.StructType) and isinstance(value, Mapping):
        types = {f.encode_name: f.type for f in t.fields}
        return {name: _coerce(item, types[name], f"{where}.{name}") if name in types else item
                for name, item in value.items()}
    if isinstance(t, inspect.UnionType) and isinstance(value, Mapping):
        for member in t.types:
            if isinstance(member, inspect.StructType) and (member.tag is None or member.tag == value.get(
                    member.tag_field or "")):
                return _coerce(value, member, where)
    return value


T = TypeVar("T")


def _struct(cls: type[T], fields: Mapping[str, Any], what: str) -> T:
    info = inspect.type_info(cls)
    coerced = _coerce(dict(fields), info, what)
    try:
        return msgspec.convert(coerced, cls)
    except msgspec.ValidationError as exc:
        raise InvalidOperation(f"{what}: {exc}") from None


def _checked(operation: Operation, payload: bytes = b"") -> Op:
    _load_applications()  # an action naming an application's kind checks it is registered
    try:
        operation.check(len(payload), _NO_PAYLOAD_LIMIT)
    except BilayerError:
        raise
    except (TypeError, ValueError) as exc:  # a rule tripping over a value of the wrong shape
        raise InvalidOperation(f"{operation.KIND}: {exc}") from None
    return Op(operation, payload)


def kinds() -> list[str]:
    """Every operation kind this installation can build, applications' included."""
    _load_applications()
    return L.operation_kinds()


def _load_applications() -> None:
    from ..execution.application import installed_applications

    installed_applications()


def of(kind: str, /, payload: bytes = b"", **fields: Any) -> Op:
    """Any registered operation kind from its fields, as named in its struct (nested structs
    as dicts, keys as addresses, ids as hex)."""
    _load_applications()
    cls = L._REGISTRY.get(kind)
    if cls is None:
        raise UnknownOperation(f"unknown operation kind {kind!r}; known: {', '.join(L.operation_kinds())}")
    return _checked(_struct(cls, fields, kind), payload)


def app(kind: str, /, **fields: Any) -> Op:
    """An installed application's operation, e.g. `app("warehouse.accept_receipt",
    receipt=receipt_id)` or `app("notary.register", document=sha256, title="lease")`."""
    if "." not in kind or kind.startswith(L.MANAGEMENT_PREFIXES):
        raise UnknownOperation(f"{kind!r} is not an application's operation kind (those are named <app>.<verb>)")
    return of(kind, **fields)


# --- value and data -------------------------------------------------------------------------


def transfer(to: str | bytes, amount: int, asset: str = "BLY", memo: bytes | str = b"") -> Op:
    """Move `amount` minor units of `asset` from the signer to `to`; the memo is the payload."""
    payload = memo.encode() if isinstance(memo, str) else memo
    return _checked(L.Transfer(asset=asset, amount=amount, to=_key(to, "to")), payload)


def data(content: bytes | str, media_type: str | None = None) -> Op:
    """Publish bytes (text is sent as UTF-8, `text/plain` unless told otherwise)."""
    if isinstance(content, str):
        return _checked(L.Data(media_type=media_type or "text/plain"), content.encode())
    return _checked(L.Data(media_type=media_type or "application/octet-stream"), content)


# --- the council ----------------------------------------------------------------------------


def action_types() -> list[str]:
    """The wire tags of every management action a proposal may carry."""
    return sorted(_tag(cls) for cls in _action_classes())


def _tag(cls: type[L.Action]) -> str:
    return str(cls.__struct_config__.tag)


def _action_classes() -> tuple[type[L.Action], ...]:
    return cast(tuple[type[L.Action], ...], GovAction.__args__)


def action(type: str, /, **fields: Any) -> GovAction:
    """A management action by its wire tag (`freeze_account`, `set_interception_rule`, ...;
    see `action_types()`), with its fields as named in its struct."""
    _load_applications()
    for cls in _action_classes():
        if _tag(cls) == type:
            made = _struct(cls, fields, type)
            made.check()
            return cast(GovAction, made)
    raise InvalidOperation(f"no management action {type!r}; they are {', '.join(action_types())}")


def freeze_account(account: str | bytes) -> GovAction:
    return action("freeze_account", account=_key(account, "account"))


def unfreeze_account(account: str | bytes) -> GovAction:
    return action("unfreeze_account", account=_key(account, "account"))


def suspend_service(kind: str) -> GovAction:
    return action("suspend_service", kind=kind)


def resume_service(kind: str) -> GovAction:
    return action("resume_service", kind=kind)


def appoint_identity_provider(key: str | bytes) -> GovAction:
    return action("appoint_identity_provider", key=_key(key, "key"))


def interception_rule(rule_id: str, *, min_amount: int = 0, asset: str = "",
                      counterparties: tuple[str | bytes, ...] = (), max_identity_level: int = -1,
                      outcome: str = "reject", review_ms: int = 0) -> L.SetInterceptionRule:
    """An interception rule as data: for a council proposal or a regulator's `reg_intercept`."""
    rule = action("set_interception_rule", rule_id=rule_id, min_amount=min_amount, asset=asset,
                  counterparties=[_key(c, "counterparty") for c in counterparties],
                  max_identity_level=max_identity_level, outcome=outcome, review_ms=review_ms)
    assert isinstance(rule, L.SetInterceptionRule)
    return rule


def propose(action: GovAction, reason: str, legal_ref: str = "") -> Op:
    """A council member proposes `action`; the proposal gets the next number on the chain."""
    return _checked(L.GovPropose(action=action, reason=reason, legal_ref=legal_ref))


def vote(proposal: int, choice: str = "yes") -> Op:
    return _checked(L.GovVote(proposal=proposal, choice=choice))


def execute(proposal: int) -> Op:
    """Anyone may carry out a passed proposal once its timelock has run out."""
    return _checked(L.GovExecute(proposal=proposal))


def cancel(proposal: int) -> Op:
    return _checked(L.GovCancel(proposal=proposal))


# --- regulators, identities, application operators ----------------------------------------------


def reg_freeze(account: str | bytes, reason: str, legal_ref: str = "") -> Op:
    """A regulator's immediate freeze; it lapses unless the council ratifies it."""
    return _checked(L.RegFreeze(account=_key(account, "account"), reason=reason, legal_ref=legal_ref))


def reg_intercept(rule: L.SetInterceptionRule, reason: str, legal_ref: str = "") -> Op:
    return _checked(L.RegIntercept(rule=rule, reason=reason, legal_ref=legal_ref))


def reg_review(entry: str | bytes, decision: str, reason: str) -> Op:
    """Release or reject a transfer HELD for review."""
    entry_id = _bytes(entry, "entry") if isinstance(entry, str) else entry
    return _checked(L.RegReview(entry=entry_id, decision=decision, reason=reason))


def attest(subject: str | bytes, identity: str | bytes, level: int | str, expires_ms: int) -> Op:
    """An identity provider binds `subject` to an opaque 16-byte identity id; `level` is
    0/`unverified`, 1/`verified` or 2/`institution`."""
    if isinstance(level, str):
        if level not in L.IDENTITY_LEVELS:
            raise InvalidOperation(f"level is one of {', '.join(L.IDENTITY_LEVELS)}")
        level = L.IDENTITY_LEVELS[level]
    identity_id = _bytes(identity, "identity") if isinstance(identity, str) else identity
    return _checked(L.IdAttest(subject=_key(subject, "subject"), identity=identity_id, level=level,
                               expires_ms=expires_ms))


def app_pause(kind: str, reason: str) -> Op:
    return _checked(L.AppPause(kind=kind, reason=reason))


def app_resume(kind: str, reason: str) -> Op:
    return _checked(L.AppResume(kind=kind, reason=reason))

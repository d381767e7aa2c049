"""Interception rules (for transfers) and content rules (for data entries), as data.

Keeper of these state keys:

    b"T:" + rule id  -> InterceptionRule, by proposal number (or a regulator's emergency)
    b"Tl"            -> the interception rules in force: sorted (rule id, decision) pairs
    b"K:" + rule id  -> ContentRule, by proposal number
    b"Kl"            -> the content rules in force: sorted (rule id, decision) pairs

Each index names every rule's decision, so it changes whenever a rule does: the rules are
decoded and indexed once per index value (`State.derived`), not once per entry.

Keyword content rules need the payload, which a node may no longer hold (redacted, or
blocked): the validators that vote on a checkpoint find the keywords in its data entries
and the checkpoint carries them (`ExecContext.keywords`), so execution itself never reads a
payload and every node, even one that syncs without the bytes, computes the same results.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from ... import codec
from ...keys.address import public_key_from_address
from ...ledger.entry import EntryHeader
from ...ledger.operations import (
    IDENTITY_LEVELS,
    Data,
    RemoveContentRule,
    RemoveInterceptionRule,
    SetContentRule,
    SetInterceptionRule,
    Transfer,
)
from ..errors import ExecutionRejected
from ..state import Keeper, State
from .actions import ActionSpec, register_action
from .context import ExecContext, decision_cause
from .options import ActionOptions, parse_hex32


class TransactionIntercepted(ExecutionRejected):
    code = "transaction_intercepted"


class ContentBlocked(ExecutionRejected):
    code = "content_blocked"


class InterceptionRuleExists(ExecutionRejected):
    code = "interception_rule_exists"


class InterceptionRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rule_id: str
    min_amount: int
    asset: str
    counterparties: tuple[bytes, ...]
    max_identity_level: int
    decision: int  # the proposal that made it (0 for a regulator's emergency rule)
    outcome: str = "reject"
    review_ms: int = 0
    emergency: int = 0  # the regulator's emergency that made it: in force while that is

    @property
    def cause(self) -> str:
        return f"emergency:{self.emergency}" if self.emergency else decision_cause(self.decision)

    def matches(self, transfer: Transfer, author: bytes, author_level: int) -> bool:
        if transfer.amount < self.min_amount or (self.asset and transfer.asset != self.asset):
            return False
        if self.counterparties and author not in self.counterparties and transfer.to not in self.counterparties:
            return False
        return self.max_identity_level < 0 or author_level <= self.max_identity_level


class ContentRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rule_id: str
    payload_hash: bytes
    keyword: str
    media_type: str
    max_size: int
    decision: int

    def matches(self, header: EntryHeader, media_type: str, keywords_found: tuple[str, ...]) -> bool:
        return ((not self.payload_hash or header.payload_hash == self.payload_hash)
                and (not self.keyword or self.keyword.lower() in keywords_found)
                and (not self.media_type or media_type == self.media_type)
                and (self.max_size < 0 or header.payload_size > self.max_size))


HELD_CODE = "held_for_review"  # the code of a HELD outcome: not a refusal, the transfer awaits review

INTERCEPTION_INDEX = b"Tl"
CONTENT_INDEX = b"Kl"


def _interception_key(rule_id: str) -> bytes:
    return b"T:" + rule_id.encode()


def _content_key(rule_id: str) -> bytes:
    return b"K:" + rule_id.encode()


@dataclass(frozen=True)
class _CompiledRules:
    """Interception rules indexed for the gate: by counterparty, and the others by asset (""
    for any asset) and amount, so a transfer is checked only against rules it may match."""

    rules: tuple[InterceptionRule, ...]
    by_party: dict[bytes, tuple[InterceptionRule, ...]]
    general: dict[str, tuple[tuple[InterceptionRule, ...], tuple[int, ...]]]  # sorted by min_amount

    def first_match(self, transfer: Transfer, author: bytes, level: int,
                    in_force: Callable[[InterceptionRule], bool]) -> InterceptionRule | None:
        candidates = [*self.by_party.get(author, ()), *self.by_party.get(transfer.to, ())]
        for asset in ("", transfer.asset):
            rules, amounts = self.general.get(asset, ((), ()))
            candidates.extend(rules[: bisect.bisect_right(amounts, transfer.amount)])
        matching = [r for r in candidates if r.matches(transfer, author, level) and in_force(r)]
        return min(matching, key=lambda r: r.rule_id) if matching else None


@dataclass(frozen=True)
class _CompiledContent:
    rules: tuple[ContentRule, ...]
    keywords: tuple[str, ...]  # lower case, sorted, distinct

    def first_match(self, header: EntryHeader, media_type: str, found: tuple[str, ...]) -> ContentRule | None:
        for rule in self.rules:  # sorted by rule id
            if rule.matches(header, media_type, found):
                return rule
        return None


class Rules(Keeper):
    __slots__ = ()
    KEYS = ((b"T:", None), (INTERCEPTION_INDEX, 0), (b"K:", None), (CONTENT_INDEX, 0))

    # --- interception ---

    def interception_rule(self, rule_id: str) -> InterceptionRule | None:
        raw = self.state.get(_interception_key(rule_id))
        return None if raw is None else codec.decode(raw, InterceptionRule)

    def interception_rules(self) -> list[InterceptionRule]:
        return list(self._compiled_interception().rules)

    def first_interception(self, transfer: Transfer, author: bytes, level: int,
                           in_force: Callable[[InterceptionRule], bool]) -> InterceptionRule | None:
        """The rule (lowest id) that intercepts this transfer, among those `in_force`."""
        return self._compiled_interception().first_match(transfer, author, level, in_force)

    def put_interception_rule(self, rule: InterceptionRule) -> None:
        self.state.set(_interception_key(rule.rule_id), codec.encode(rule))
        index = self._index(INTERCEPTION_INDEX)
        index[rule.rule_id] = rule.decision or -rule.emergency
        self._set_index(INTERCEPTION_INDEX, index)

    def drop_interception_rule(self, rule_id: str) -> None:
        self.state.delete(_interception_key(rule_id))
        index = self._index(INTERCEPTION_INDEX)
        index.pop(rule_id, None)
        self._set_index(INTERCEPTION_INDEX, index)

    def _compiled_interception(self) -> _CompiledRules:
        raw = self.state.get(INTERCEPTION_INDEX) or b""
        cached = self.state.derived.get("interception")
        if cached is not None and cached[0] == raw:
            compiled: _CompiledRules = cached[1]
            return compiled
        rules = []
        for rule_id, _ in ([] if not raw else codec.decode(raw, list[tuple[str, int]])):
            rule = self.interception_rule(rule_id)
            if rule is not None:
                rules.append(rule)
        by_party: dict[bytes, list[InterceptionRule]] = {}
        for rule in rules:
            for party in rule.counterparties:
                by_party.setdefault(party, []).append(rule)
        by_asset: dict[str, list[InterceptionRule]] = {}
        for rule in sorted((r for r in rules if not r.counterparties), key=lambda r: (r.min_amount, r.rule_id)):
            by_asset.setdefault(rule.asset, []).append(rule)
        general = {asset: (tuple(listed), tuple(r.min_amount for r in listed)) for asset, listed in by_asset.items()}
        compiled = _CompiledRules(tuple(rules), {k: tuple(v) for k, v in by_party.items()}, general)
        self.state.derived["interception"] = (raw, compiled)
        return compiled

    # --- content ---

    def content_rules(self) -> list[ContentRule]:
        return list(self._compiled_content().rules)

    def content_keywords(self) -> tuple[str, ...]:
        """The keywords of the content rules in force: what validators look for in payloads."""
        return self._compiled_content().keywords

    def blocking_content_rule(self, header: EntryHeader, op: Data, found: tuple[str, ...]) -> ContentRule | None:
        return self._compiled_content().first_match(header, op.media_type, found)

    def put_content_rule(self, rule: ContentRule) -> None:
        self.state.set(_content_key(rule.rule_id), codec.encode(rule))
        index = self._index(CONTENT_INDEX)
        index[rule.rule_id] = rule.decision
        self._set_index(CONTENT_INDEX, index)

    def drop_content_rule(self, rule_id: str) -> None:
        self.state.delete(_content_key(rule_id))
        index = self._index(CONTENT_INDEX)
        index.pop(rule_id, None)
        self._set_index(CONTENT_INDEX, index)

    def _compiled_content(self) -> _CompiledContent:
        raw = self.state.get(CONTENT_INDEX) or b""
        cached = self.state.derived.get("content")
        if cached is not None and cached[0] == raw:
            compiled: _CompiledContent = cached[1]
            return compiled
        rules = []
        for rule_id, _ in ([] if not raw else codec.decode(raw, list[tuple[str, int]])):
            value = self.state.get(_content_key(rule_id))
            if value is not None:
                rules.append(codec.decode(value, ContentRule))
        keywords = tuple(sorted({r.keyword.lower() for r in rules if r.keyword}))
        compiled = _CompiledContent(tuple(rules), keywords)
        self.state.derived["content"] = (raw, compiled)
        return compiled

    # --- the indexes ---

    def _index(self, key: bytes) -> dict[str, int]:
        raw = self.state.get(key)
        return {} if raw is None else dict(codec.decode(raw, list[tuple[str, int]]))

    def _set_index(self, key: bytes, index: dict[str, int]) -> None:
        if index:
            self.state.set(key, codec.encode(sorted(index.items())))
        else:
            self.state.delete(key)


def keywords_in(payload: bytes, keywords: Iterable[str]) -> tuple[str, ...]:
    """The keywords (ASCII, case-insensitive) that occur in `payload`, sorted."""
    if not payload:
        return ()
    lowered = payload.lower()
    return tuple(sorted(k for k in keywords if k.encode() in lowered))


def interception_rule(action: SetInterceptionRule, decision: int, emergency: int = 0) -> InterceptionRule:
    return InterceptionRule(action.rule_id, action.min_amount, action.asset, tuple(action.counterparties),
                            action.max_identity_level, decision, action.outcome, action.review_ms, emergency)


def set_interception_rule(ctx: ExecContext, state: State, number: int, action: SetInterceptionRule) -> None:
    Rules(state).put_interception_rule(interception_rule(action, number))


def remove_interception_rule(ctx: ExecContext, state: State, number: int, action: RemoveInterceptionRule) -> None:
    Rules(state).drop_interception_rule(action.rule_id)


def set_content_rule(ctx: ExecContext, state: State, number: int, action: SetContentRule) -> None:
    Rules(state).put_content_rule(ContentRule(action.rule_id, action.payload_hash, action.keyword.lower(),
                                              action.media_type, action.max_size, number))


def remove_content_rule(ctx: ExecContext, state: State, number: int, action: RemoveContentRule) -> None:
    Rules(state).drop_content_rule(action.rule_id)


def _interception(o: ActionOptions) -> SetInterceptionRule:
    return SetInterceptionRule(
        rule_id=o.rule("intercept"), min_amount=o.above, asset=o.asset or "",
        counterparties=tuple(public_key_from_address(c) for c in o.counterparties),
        max_identity_level=IDENTITY_LEVELS[o.max_level] if o.max_level else -1,
        outcome=o.outcome, review_ms=o.review_ms,
    )


def _content(o: ActionOptions) -> SetContentRule:
    return SetContentRule(rule_id=o.rule("content-rule"),
                          payload_hash=parse_hex32(o.payload_hash, "--payload-hash") if o.payload_hash else b"",
                          keyword=o.keyword or "", media_type=o.media_type or "",
                          max_size=-1 if o.max_size is None else o.max_size)


register_action(ActionSpec(
    SetInterceptionRule, "intercept", "an interception rule: matching transfers are refused or held for review",
    build=lambda o, _: _interception(o), effect=set_interception_rule,
    refusals=(TransactionIntercepted.code, HELD_CODE, "review_queue_full")))
register_action(ActionSpec(
    RemoveInterceptionRule, "remove-intercept", "lift an interception rule",
    build=lambda o, _: RemoveInterceptionRule(o.rule("remove-intercept")), effect=remove_interception_rule))
register_action(ActionSpec(
    SetContentRule, "content-rule", "a content rule: matching data entries are refused and their payloads deleted",
    build=lambda o, _: _content(o), effect=set_content_rule, refusals=(ContentBlocked.code,)))
register_action(ActionSpec(
    RemoveContentRule, "remove-content-rule", "lift a content rule",
    build=lambda o, _: RemoveContentRule(o.rule("remove-content-rule")), effect=remove_content_rule))

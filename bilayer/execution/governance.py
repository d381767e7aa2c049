"""The council and its decisions, and the compliance gate that enforces them.

Keeper of these state keys:

    b"C"  + key               -> council weight (from genesis, changed by proposals)
    b"Ct"                     -> the council's total weight
    b"Gn"                     -> the last proposal number
    b"Gp" + number (8 bytes)  -> ProposalRecord
    b"Gv" + number + voter    -> the voter's choice
    b"F"  + key               -> frozen by proposal number (transfers from or to it are refused)
    b"X"  + key               -> banned by proposal number (every entry it authors is refused)
    b"S"  + kind              -> application (operation kind) suspended by proposal number
                                 (operators.py keeps the operators and their own pauses: b"O", b"Y")
    b"R"  + key               -> a regulator (from genesis)
    b"En"                     -> the last emergency number
    b"E"  + number (8 bytes)  -> EmergencyRecord (a regulator's immediate freeze or interception rule)
    b"EF" + key               -> the emergency freezing that account
    b"P"  + key               -> an identity provider, appointed by proposal number
    b"I"  + key               -> IdentityRecord: the identity a provider attested for that key
    b"XI" + identity          -> identity banned by proposal number (all its keys are refused)
    b"Q"  + kind              -> IdentityRule: the identity level entries of that kind need
    b"T:" + rule id           -> InterceptionRule (data, not code), by proposal number
    b"Tl"                     -> the interception rules in force: sorted (rule id, decision) pairs
    b"H"  + entry id          -> HeldRecord: a transfer held for review, its funds in escrow
    b"Hl"                     -> the review queue: sorted (deadline, entry id) of transfers still held
    b"K:" + rule id           -> ContentRule (data, not code), by proposal number
    b"Kl"                     -> the content rules in force: sorted (rule id, decision) pairs
    b"D"  + entry id          -> RedactionRecord: the entry's payload is gone from every node
    b"Np"                     -> the chain parameters, when a proposal replaced genesis' ones
    b"Nl"                     -> the loosest parameters the chain ever had (what old entries were checked by)
    b"V"  + key               -> ValidatorRecord: a validator's name and power (genesis, then proposals)
    b"Vk"                     -> the validators' keys, sorted (the index: nothing scans the state)
    b"Vc"                     -> the number of validator set changes recorded (genesis is the first)
    b"Vh" + number (8 bytes)  -> ValidatorSetChange: the whole set, the height it governs from, and why

A proposal passes as soon as its yes-weight reaches the threshold of the whole council, or
at its deadline when the votes cast reach the quorum and yes reaches the threshold of yes
and no; either way only with at least `min_approvals` distinct yes-voters. It executes (by
a `gov.execute` entry from anyone) no earlier than the timelock after it passed, exactly
once. Every step is an entry, so every decision is ordered, final
and auditable like any transfer.

Keyword content rules need the payload, which a node may no longer hold (redacted, or
blocked): the validators that vote on a checkpoint find the keywords in its data entries
and the checkpoint carries them (`ExecContext.keywords`), so execution itself never reads a
payload and every node, even one that syncs without the bytes, computes the same results.
A `set_validator` proposal executed in checkpoint h changes the validator set that governs
consensus from height h + VALIDATOR_CHANGE_DELAY (h + 2): the set of a height is then
fixed by a state whose root is signed in the checkpoint before it, and a validator that
joins has one whole checkpoint to start. Changes executed in one checkpoint form one
recorded change.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import msgspec

from .. import codec
from ..genesis import ChainParams, Genesis, GovernanceParams
from ..keys.address import address_from_public_key
from ..ledger.entry import EntryHeader
from ..ledger.operations import (
    AppointIdentityProvider,
    AppointOperator,
    AppPause,
    AppResume,
    BanIdentity,
    BanKey,
    Data,
    FreezeAccount,
    GovAction,
    GovCancel,
    GovExecute,
    GovPropose,
    GovVote,
    IdAttest,
    Operation,
    RatifyEmergency,
    RecoverAssets,
    RedactEntries,
    RegFreeze,
    RegIntercept,
    RegReview,
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
    Transfer,
    UnbanIdentity,
    UnbanKey,
    UnfreezeAccount,
    decode_operation,
)
from . import operators
from .errors import BalanceOverflow, ExecutionRejected, InsufficientFunds
from .operators import OperatorPause
from .state import State

VALIDATOR_CHANGE_DELAY = 2
MAX_VALIDATORS = 100


class NotCouncilMember(ExecutionRejected):
    code = "not_council_member"


class ProposalNotFound(ExecutionRejected):
    code = "proposal_not_found"


class VoteAfterDeadline(ExecutionRejected):
    code = "vote_after_deadline"


class DoubleVote(ExecutionRejected):
    code = "double_vote"


class ProposalClosed(ExecutionRejected):
    code = "proposal_closed"


class ProposalNotPassed(ExecutionRejected):
    code = "proposal_not_passed"


class TimelockNotExpired(ExecutionRejected):
    code = "timelock_not_expired"


class AlreadyExecuted(ExecutionRejected):
    code = "proposal_already_executed"


class NotProposer(ExecutionRejected):
    code = "not_proposer"


class NotRegulator(ExecutionRejected):
    code = "not_regulator"


class EmergencyNotFound(ExecutionRejected):
    code = "emergency_not_found"


class EmergencyLapsed(ExecutionRejected):
    code = "emergency_lapsed"


class ServiceSuspended(ExecutionRejected):
    code = "service_suspended"


class SuspendedByCouncil(ExecutionRejected):
    code = "suspended_by_council"


class TransactionIntercepted(ExecutionRejected):
    code = "transaction_intercepted"


class CouncilWouldBeEmpty(ExecutionRejected):
    code = "council_would_be_empty"


class ValidatorSetWouldBeEmpty(ExecutionRejected):
    code = "validator_set_would_be_empty"


class ValidatorNotFound(ExecutionRejected):
    code = "validator_not_found"


class ValidatorSetFull(ExecutionRejected):
    code = "validator_set_full"


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


class AccountFrozen(ExecutionRejected):
    code = "account_frozen"


class InterceptionRuleExists(ExecutionRejected):
    code = "interception_rule_exists"


class ContentBlocked(ExecutionRejected):
    code = "content_blocked"


class HeldEntryNotFound(ExecutionRejected):
    code = "held_entry_not_found"


class ReviewClosed(ExecutionRejected):
    code = "review_closed"


class ReviewQueueFull(ExecutionRejected):
    code = "review_queue_full"


class HeldForReview(Exception):
    """Not a rejection: the gate parks the transfer until a regulator decides it."""

    def __init__(self, rule: InterceptionRule) -> None:
        super().__init__(f"held for review by rule {rule.rule_id!r}")
        self.rule = rule


MAX_HELD = 10_000
MAX_BALANCE = 2**63 - 1


class ProposalRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    number: int
    proposer: bytes
    entry_id: bytes
    action: GovAction
    reason: str
    legal_ref: str
    created_ms: int
    deadline_ms: int
    yes: int = 0
    no: int = 0
    abstain: int = 0
    approvals: int = 0
    passed_ms: int = -1
    status: str = "voting"  # voting | passed | rejected | executed | cancelled
    executed_height: int = 0
    executed_entry: bytes = b""


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
        return f"emergency:{self.emergency}" if self.emergency else f"proposal:{self.decision}"

    def matches(self, transfer: Transfer, author: bytes, author_level: int) -> bool:
        if transfer.amount < self.min_amount or (self.asset and transfer.asset != self.asset):
            return False
        if self.counterparties and author not in self.counterparties and transfer.to not in self.counterparties:
            return False
        return self.max_identity_level < 0 or author_level <= self.max_identity_level


class HeldRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    entry_id: bytes
    author: bytes
    to: bytes
    asset: str
    amount: int
    rule_id: str
    decision: int
    held_ms: int
    deadline_ms: int
    status: str = "held"  # held | released | rejected | expired
    decided_height: int = 0
    decided_entry: bytes = b""
    reason: str = ""


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


class RedactionRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    decision: int
    reason_code: str
    time_ms: int
    height: int


NO_KEYWORDS: Mapping[bytes, tuple[str, ...]] = MappingProxyType({})
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


@dataclass(frozen=True, slots=True)
class ExecContext:
    """What an entry's execution may depend on besides state: the checkpoint it is in, and
    the content keywords its validators found in its data entries' payloads."""

    height: int
    time_ms: int
    governance: GovernanceParams
    keywords: Mapping[bytes, tuple[str, ...]] = field(default_factory=lambda: NO_KEYWORDS)


def council_key(key: bytes) -> bytes:
    return b"C" + key


def proposal_key(number: int) -> bytes:
    return b"Gp" + number.to_bytes(8, "big")


def vote_key(number: int, voter: bytes) -> bytes:
    return b"Gv" + number.to_bytes(8, "big") + voter


def frozen_key(key: bytes) -> bytes:
    return b"F" + key


def banned_key(key: bytes) -> bytes:
    return b"X" + key


def suspended_key(kind: str) -> bytes:
    return b"S" + kind.encode()


def regulator_key(key: bytes) -> bytes:
    return b"R" + key


def emergency_key(number: int) -> bytes:
    return b"E" + number.to_bytes(8, "big")


def emergency_freeze_key(account: bytes) -> bytes:
    return b"EF" + account


def provider_key(key: bytes) -> bytes:
    return b"P" + key


def identity_key(key: bytes) -> bytes:
    return b"I" + key


def banned_identity_key(identity: bytes) -> bytes:
    return b"XI" + identity


def rule_key(kind: str) -> bytes:
    return b"Q" + kind.encode()


def interception_key(rule_id: str) -> bytes:
    return b"T:" + rule_id.encode()


def held_key(entry_id: bytes) -> bytes:
    return b"H" + entry_id


def content_key(rule_id: str) -> bytes:
    return b"K:" + rule_id.encode()


def redaction_key(entry_id: bytes) -> bytes:
    return b"D" + entry_id


HELD_QUEUE = b"Hl"
CHAIN_PARAMS = b"Np"
LOOSEST_PARAMS = b"Nl"


def redaction_of(state: State, entry_id: bytes) -> RedactionRecord | None:
    raw = state.get(redaction_key(entry_id))
    return None if raw is None else codec.decode(raw, RedactionRecord)


def held_of(state: State, entry_id: bytes) -> HeldRecord | None:
    raw = state.get(held_key(entry_id))
    return None if raw is None else codec.decode(raw, HeldRecord)


def review_queue(state: State) -> list[tuple[int, bytes]]:
    raw = state.get(HELD_QUEUE)
    return [] if raw is None else codec.decode(raw, list[tuple[int, bytes]])


def _set_review_queue(state: State, queue: list[tuple[int, bytes]]) -> None:
    if queue:
        state.set(HELD_QUEUE, codec.encode(sorted(queue)))
    else:
        state.delete(HELD_QUEUE)


def chain_params(state: State) -> ChainParams:
    """The parameters in force (genesis' until a proposal replaces them)."""
    raw = state.get(CHAIN_PARAMS) or b""
    cached = state.derived.get("params")
    if cached is not None and cached[0] == raw:
        params: ChainParams = cached[1]
        return params
    params = codec.decode(raw, ChainParams) if raw else ChainParams()
    state.derived["params"] = (raw, params)
    return params


def loosest_params(state: State) -> ChainParams:
    """Entries accepted under any earlier parameters must stay acceptable to a node that syncs
    later, or nodes would disagree on the DAG."""
    raw = state.get(LOOSEST_PARAMS)
    return chain_params(state) if raw is None else codec.decode(raw, ChainParams)


def _looser(a: ChainParams, b: ChainParams) -> ChainParams:
    """Each limit at its more permissive value: the least work, the largest sizes."""
    return ChainParams(**{name: (min if name == "pow_bits" else max)(getattr(a, name), getattr(b, name))
                          for name in ChainParams.__struct_fields__})


def interception_rules(state: State) -> list[InterceptionRule]:
    return list(_compiled_rules(state).rules)


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


def _compiled_rules(state: State) -> _CompiledRules:
    """Decode and index the rules once per rule set: the index names each rule's decision, so
    within one state it changes whenever a rule does."""
    raw = state.get(b"Tl") or b""
    cached = state.derived.get("interception")
    compiled = cached[1] if cached is not None and cached[0] == raw else None
    if compiled is None:
        index = [] if not raw else codec.decode(raw, list[tuple[str, int]])
        rules = []
        for rule_id, _ in index:
            value = state.get(interception_key(rule_id))
            if value is not None:
                rules.append(codec.decode(value, InterceptionRule))
        by_party: dict[bytes, list[InterceptionRule]] = {}
        for rule in rules:
            for party in rule.counterparties:
                by_party.setdefault(party, []).append(rule)
        by_asset: dict[str, list[InterceptionRule]] = {}
        for rule in sorted((r for r in rules if not r.counterparties), key=lambda r: (r.min_amount, r.rule_id)):
            by_asset.setdefault(rule.asset, []).append(rule)
        general = {asset: (tuple(listed), tuple(r.min_amount for r in listed)) for asset, listed in by_asset.items()}
        compiled = _CompiledRules(tuple(rules), {k: tuple(v) for k, v in by_party.items()}, general)
        state.derived["interception"] = (raw, compiled)
    return compiled


def _rule_index(state: State) -> dict[str, int]:
    raw = state.get(b"Tl")
    return {} if raw is None else dict(codec.decode(raw, list[tuple[str, int]]))


def _set_rule_index(state: State, index: dict[str, int]) -> None:
    if index:
        state.set(b"Tl", codec.encode(sorted(index.items())))
    else:
        state.delete(b"Tl")


def interception_rule(state: State, rule_id: str) -> InterceptionRule | None:
    raw = state.get(interception_key(rule_id))
    return None if raw is None else codec.decode(raw, InterceptionRule)


def _interception_rule(action: SetInterceptionRule, decision: int, emergency: int = 0) -> InterceptionRule:
    return InterceptionRule(action.rule_id, action.min_amount, action.asset, tuple(action.counterparties),
                            action.max_identity_level, decision, action.outcome, action.review_ms, emergency)


def _put_interception_rule(state: State, rule: InterceptionRule) -> None:
    """The index records each rule's decision, so the compiled rules change with any rule."""
    state.set(interception_key(rule.rule_id), codec.encode(rule))
    index = _rule_index(state)
    index[rule.rule_id] = rule.decision or -rule.emergency
    _set_rule_index(state, index)


def _drop_interception_rule(state: State, rule_id: str) -> None:
    state.delete(interception_key(rule_id))
    index = _rule_index(state)
    index.pop(rule_id, None)
    _set_rule_index(state, index)


@dataclass(frozen=True)
class _CompiledContent:
    rules: tuple[ContentRule, ...]
    keywords: tuple[str, ...]  # lower case, sorted, distinct

    def first_match(self, header: EntryHeader, media_type: str, found: tuple[str, ...]) -> ContentRule | None:
        for rule in self.rules:  # sorted by rule id
            if rule.matches(header, media_type, found):
                return rule
        return None


def _compiled_content(state: State) -> _CompiledContent:
    raw = state.get(b"Kl") or b""
    cached = state.derived.get("content")
    if cached is not None and cached[0] == raw:
        compiled: _CompiledContent = cached[1]
        return compiled
    rules = []
    for rule_id, _ in ([] if not raw else codec.decode(raw, list[tuple[str, int]])):
        value = state.get(content_key(rule_id))
        if value is not None:
            rules.append(codec.decode(value, ContentRule))
    keywords = tuple(sorted({r.keyword.lower() for r in rules if r.keyword}))
    compiled = _CompiledContent(tuple(rules), keywords)
    state.derived["content"] = (raw, compiled)
    return compiled


def content_rules(state: State) -> list[ContentRule]:
    return list(_compiled_content(state).rules)


def content_keywords(state: State) -> tuple[str, ...]:
    """The keywords of the content rules in force: what validators look for in payloads."""
    return _compiled_content(state).keywords


def keywords_in(payload: bytes, keywords: Iterable[str]) -> tuple[str, ...]:
    """The keywords (ASCII, case-insensitive) that occur in `payload`, sorted."""
    if not payload:
        return ()
    lowered = payload.lower()
    return tuple(sorted(k for k in keywords if k.encode() in lowered))


def blocking_content_rule(state: State, header: EntryHeader, op: Data, found: tuple[str, ...]) -> ContentRule | None:
    return _compiled_content(state).first_match(header, op.media_type, found)


def identity_of(state: State, key: bytes) -> IdentityRecord | None:
    raw = state.get(identity_key(key))
    return None if raw is None else codec.decode(raw, IdentityRecord)


VALIDATOR_INDEX = b"Vk"
VALIDATOR_CHANGES = b"Vc"


def validator_key(key: bytes) -> bytes:
    return b"V" + key


def validator_change_key(number: int) -> bytes:
    return b"Vh" + number.to_bytes(8, "big")


def validator_record(state: State, key: bytes) -> ValidatorRecord | None:
    raw = state.get(validator_key(key))
    return None if raw is None else codec.decode(raw, ValidatorRecord)


def validator_keys(state: State) -> list[bytes]:
    raw = state.get(VALIDATOR_INDEX)
    return [] if raw is None else codec.decode(raw, list[bytes])


def validator_members(state: State) -> tuple[ValidatorMember, ...]:
    """The set as executed so far (it governs consensus only from its change's height)."""
    members = []
    for key in validator_keys(state):
        record = validator_record(state, key)
        if record is not None:
            members.append(ValidatorMember(key, record.name, record.power))
    return tuple(members)


def validator_change_count(state: State) -> int:
    raw = state.get(VALIDATOR_CHANGES)
    return 0 if raw is None else codec.decode(raw, int)


def validator_change(state: State, number: int) -> ValidatorSetChange | None:
    raw = state.get(validator_change_key(number))
    return None if raw is None else codec.decode(raw, ValidatorSetChange)


def _put_validator(state: State, key: bytes, record: ValidatorRecord | None) -> None:
    keys = set(validator_keys(state))
    if record is None:
        state.delete(validator_key(key))
        keys.discard(key)
    else:
        state.set(validator_key(key), codec.encode(record))
        keys.add(key)
    state.set(VALIDATOR_INDEX, codec.encode(sorted(keys)))


def _record_validator_change(state: State, height: int, executed_height: int, proposal: int) -> None:
    """Record the set now in state as governing from `height`; a second change executed in the
    same checkpoint amends the first rather than add a change at the same height."""
    count = validator_change_count(state)
    last = validator_change(state, count) if count else None
    proposals: tuple[int, ...] = (proposal,) if proposal else ()
    if last is not None and last.height == height:
        proposals = (*last.proposals, *proposals)
    else:
        count += 1
        state.set(VALIDATOR_CHANGES, codec.encode(count))
    change = ValidatorSetChange(count, height, executed_height, proposals, validator_members(state))
    state.set(validator_change_key(count), codec.encode(change))


def _set_validator(ctx: ExecContext, state: State, number: int, action: SetValidator) -> None:
    current = validator_record(state, action.key)
    if action.power == 0:
        if current is None:
            raise ValidatorNotFound(f"{address_from_public_key(action.key)} is not a validator")
        if validator_keys(state) == [action.key]:
            raise ValidatorSetWouldBeEmpty("the last validator cannot be removed")
        _put_validator(state, action.key, None)
    else:
        if current is None and len(validator_keys(state)) >= MAX_VALIDATORS:
            raise ValidatorSetFull(f"the validator set holds at most {MAX_VALIDATORS} validators")
        name = action.name or (current.name if current is not None else address_from_public_key(action.key)[:12])
        _put_validator(state, action.key, ValidatorRecord(name, action.power, number))
    _record_validator_change(state, ctx.height + VALIDATOR_CHANGE_DELAY, ctx.height, number)


def init_genesis(state: State, genesis: Genesis) -> None:
    for validator in genesis.validators:
        _put_validator(state, bytes.fromhex(validator.public_key), ValidatorRecord(validator.name, validator.power, 0))
    if genesis.validators:
        _record_validator_change(state, 1, 0, 0)
    for member in genesis.council:
        set_council_weight(state, bytes.fromhex(member.public_key), member.weight)
    for regulator in genesis.regulators:
        state.set(regulator_key(bytes.fromhex(regulator.public_key)), codec.encode(regulator.name))
    state.set(CHAIN_PARAMS, codec.encode(genesis.params))


def get_emergency(state: State, number: int) -> EmergencyRecord:
    raw = state.get(emergency_key(number))
    if raw is None:
        raise EmergencyNotFound(f"no emergency action {number}")
    return codec.decode(raw, EmergencyRecord)


def emergency_count(state: State) -> int:
    raw = state.get(b"En")
    return 0 if raw is None else codec.decode(raw, int)


def council_weight(state: State, key: bytes) -> int:
    raw = state.get(council_key(key))
    return 0 if raw is None else codec.decode(raw, int)


COUNCIL_TOTAL = b"Ct"


def council_total(state: State) -> int:
    """Kept in its own key: a vote must not scan the whole state."""
    raw = state.get(COUNCIL_TOTAL)
    return 0 if raw is None else codec.decode(raw, int)


def set_council_weight(state: State, key: bytes, weight: int) -> None:
    state.set(COUNCIL_TOTAL, codec.encode(council_total(state) - council_weight(state, key) + weight))
    state.set(council_key(key), codec.encode(weight))


def get_proposal(state: State, number: int) -> ProposalRecord:
    raw = state.get(proposal_key(number))
    if raw is None:
        raise ProposalNotFound(f"no proposal {number}")
    return codec.decode(raw, ProposalRecord)


def put_proposal(state: State, record: ProposalRecord) -> None:
    state.set(proposal_key(record.number), codec.encode(record))


def effective(record: ProposalRecord, total: int, params: GovernanceParams, now_ms: int) -> ProposalRecord:
    """The proposal as of `now_ms`: decided at its deadline if it had not passed before."""
    if record.status != "voting" or now_ms < record.deadline_ms:
        return record
    cast = record.yes + record.no + record.abstain
    decided = record.yes + record.no
    if (cast * 10_000 >= params.quorum_bps * total and decided and record.approvals >= params.min_approvals
            and record.yes * 10_000 >= params.threshold_bps * decided):
        return msgspec.structs.replace(record, status="passed", passed_ms=record.deadline_ms)
    return msgspec.structs.replace(record, status="rejected")


# --- handlers -----------------------------------------------------------------------------------


def apply_propose(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, GovPropose)
    if council_weight(state, header.author) <= 0:
        raise NotCouncilMember("only council members propose")
    raw = state.get(b"Gn")
    number = (0 if raw is None else codec.decode(raw, int)) + 1
    record = ProposalRecord(number=number, proposer=header.author, entry_id=entry_id, action=op.action,
                            reason=op.reason, legal_ref=op.legal_ref, created_ms=ctx.time_ms,
                            deadline_ms=ctx.time_ms + ctx.governance.voting_period_ms)
    state.set(b"Gn", codec.encode(number))
    put_proposal(state, record)


def apply_vote(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, GovVote)
    weight = council_weight(state, header.author)
    if weight <= 0:
        raise NotCouncilMember("only council members vote")
    record = effective(get_proposal(state, op.proposal), council_total(state), ctx.governance, ctx.time_ms)
    if record.status in ("executed", "cancelled"):
        raise ProposalClosed(f"proposal {op.proposal} is {record.status}")
    if ctx.time_ms >= record.deadline_ms:
        raise VoteAfterDeadline(f"voting on proposal {op.proposal} closed")
    if state.get(vote_key(op.proposal, header.author)) is not None:
        raise DoubleVote(f"already voted on proposal {op.proposal}")
    yes = record.yes + (weight if op.choice == "yes" else 0)
    no = record.no + (weight if op.choice == "no" else 0)
    abstain = record.abstain + (weight if op.choice == "abstain" else 0)
    approvals = record.approvals + (op.choice == "yes")
    record = msgspec.structs.replace(record, yes=yes, no=no, abstain=abstain, approvals=approvals)
    if (record.status == "voting" and approvals >= ctx.governance.min_approvals
            and yes * 10_000 >= ctx.governance.threshold_bps * council_total(state)):
        record = msgspec.structs.replace(record, status="passed", passed_ms=ctx.time_ms)
    state.set(vote_key(op.proposal, header.author), codec.encode(op.choice))
    put_proposal(state, record)


def apply_execute(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, GovExecute)
    record = effective(get_proposal(state, op.proposal), council_total(state), ctx.governance, ctx.time_ms)
    if record.status == "executed":
        raise AlreadyExecuted(f"proposal {op.proposal} executed at height {record.executed_height}")
    if record.status != "passed":
        raise ProposalNotPassed(f"proposal {op.proposal} is {record.status}")
    if ctx.time_ms < record.passed_ms + ctx.governance.timelock_ms:
        opens = record.passed_ms + ctx.governance.timelock_ms
        raise TimelockNotExpired(f"proposal {op.proposal} may execute from {opens} (ms since the epoch)")
    _carry_out(ctx, state, record.number, record.action)
    put_proposal(state, msgspec.structs.replace(record, status="executed", executed_height=ctx.height,
                                                executed_entry=entry_id))


def apply_cancel(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, GovCancel)
    record = get_proposal(state, op.proposal)
    if record.proposer != header.author:
        raise NotProposer("only the proposer cancels a proposal")
    if record.status in ("executed", "cancelled"):
        raise ProposalClosed(f"proposal {op.proposal} is {record.status}")
    put_proposal(state, msgspec.structs.replace(record, status="cancelled"))


def _carry_out(ctx: ExecContext, state: State, number: int, action: GovAction) -> None:
    decision = codec.encode(number)
    if isinstance(action, RatifyEmergency):
        emergency = get_emergency(state, action.emergency)
        if not emergency.active(ctx.time_ms):
            raise EmergencyLapsed(f"emergency {action.emergency} lapsed at {emergency.expires_ms}")
        state.set(emergency_key(emergency.number), codec.encode(msgspec.structs.replace(emergency, ratified_by=number)))
        if emergency.rule_id:  # the rule becomes the council's own
            rule = interception_rule(state, emergency.rule_id)
            if rule is not None and rule.emergency == emergency.number:
                _put_interception_rule(state, msgspec.structs.replace(rule, decision=number, emergency=0))
        else:
            state.set(frozen_key(emergency.account), decision)
    elif isinstance(action, SetInterceptionRule):
        _put_interception_rule(state, _interception_rule(action, number))
    elif isinstance(action, RemoveInterceptionRule):
        _drop_interception_rule(state, action.rule_id)
    elif isinstance(action, SetContentRule | RemoveContentRule):
        raw = state.get(b"Kl")
        content_index = {} if raw is None else dict(codec.decode(raw, list[tuple[str, int]]))
        if isinstance(action, SetContentRule):
            content = ContentRule(action.rule_id, action.payload_hash, action.keyword.lower(), action.media_type,
                                  action.max_size, number)
            state.set(content_key(action.rule_id), codec.encode(content))
            content_index[action.rule_id] = number
        else:
            state.delete(content_key(action.rule_id))
            content_index.pop(action.rule_id, None)
        if content_index:
            state.set(b"Kl", codec.encode(sorted(content_index.items())))
        else:
            state.delete(b"Kl")
    elif isinstance(action, RedactEntries):
        record = codec.encode(RedactionRecord(number, action.reason_code, ctx.time_ms, ctx.height))
        for redacted in action.entries:
            state.set(redaction_key(redacted), record)
    elif isinstance(action, RecoverAssets):
        for asset in action.assets:
            amount = state.balance(action.lost, asset)
            if amount:
                received = state.balance(action.to, asset) + amount
                if received > MAX_BALANCE:
                    raise BalanceOverflow(f"reissuing {asset} would overflow the new account")
                state.set_balance(action.to, asset, received)
                state.set_balance(action.lost, asset, 0)
        state.set(banned_key(action.lost), decision)
    elif isinstance(action, SetChainParams):
        loosest = _looser(loosest_params(state), action.params)
        state.set(CHAIN_PARAMS, codec.encode(action.params))
        state.set(LOOSEST_PARAMS, codec.encode(loosest))
    elif isinstance(action, SetCouncilMember):
        if action.weight == 0 and council_total(state) - council_weight(state, action.key) <= 0:
            raise CouncilWouldBeEmpty("the council cannot remove its last member")
        set_council_weight(state, action.key, action.weight)  # weight 0: no longer a member
    elif isinstance(action, SetValidator):
        _set_validator(ctx, state, number, action)
    elif isinstance(action, AppointIdentityProvider):
        state.set(provider_key(action.key), decision)
    elif isinstance(action, RevokeIdentityProvider):
        state.delete(provider_key(action.key))
    elif isinstance(action, BanIdentity):
        state.set(banned_identity_key(action.identity), decision)
    elif isinstance(action, UnbanIdentity):
        state.delete(banned_identity_key(action.identity))
    elif isinstance(action, SetIdentityRule):
        if action.min_level == 0:
            state.delete(rule_key(action.kind))
        else:
            state.set(rule_key(action.kind), codec.encode(IdentityRule(action.min_level, action.above_amount, number)))
    elif isinstance(action, SuspendService):
        state.set(suspended_key(action.kind), decision)
    elif isinstance(action, ResumeService):
        state.delete(suspended_key(action.kind))
        operators.end_pause(state, action.kind)
    elif isinstance(action, AppointOperator):
        operators.appoint(state, action.key, action.kind, number)
    elif isinstance(action, RevokeOperator):
        operators.revoke(state, action.key, action.kind)
    elif isinstance(action, FreezeAccount):
        state.set(frozen_key(action.account), decision)
    elif isinstance(action, UnfreezeAccount):
        state.delete(frozen_key(action.account))
    elif isinstance(action, BanKey):
        state.set(banned_key(action.key), decision)
    elif isinstance(action, UnbanKey):
        state.delete(banned_key(action.key))


def apply_reg_freeze(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, RegFreeze)
    number = _new_emergency(ctx, state, entry_id, header.author, op.reason, op.legal_ref, account=op.account)
    state.set(emergency_freeze_key(op.account), codec.encode(number))


def _new_emergency(ctx: ExecContext, state: State, entry_id: bytes, regulator: bytes, reason: str, legal_ref: str,
                   account: bytes = b"", rule_id: str = "") -> int:
    if state.get(regulator_key(regulator)) is None:
        raise NotRegulator("only a regulator has emergency powers")
    number = emergency_count(state) + 1
    record = EmergencyRecord(number=number, regulator=regulator, account=account, reason=reason,
                             legal_ref=legal_ref, entry_id=entry_id, created_ms=ctx.time_ms,
                             expires_ms=ctx.time_ms + ctx.governance.emergency_ratify_ms, rule_id=rule_id)
    state.set(b"En", codec.encode(number))
    state.set(emergency_key(number), codec.encode(record))
    return number


def apply_reg_intercept(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, RegIntercept)
    existing = interception_rule(state, op.rule.rule_id)
    if existing is not None and (not existing.emergency or get_emergency(state, existing.emergency).active(
            ctx.time_ms)):
        raise InterceptionRuleExists(f"interception rule {op.rule.rule_id!r} is in force; only the council changes it")
    number = _new_emergency(ctx, state, entry_id, header.author, op.reason, op.legal_ref, rule_id=op.rule.rule_id)
    _put_interception_rule(state, _interception_rule(op.rule, 0, emergency=number))


def apply_app_pause(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, AppPause)
    operators.pause(state, op.kind, OperatorPause(header.author, entry_id, op.reason, ctx.time_ms, ctx.height))


def apply_app_resume(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, AppResume)
    operators.require_operator(state, header.author, op.kind)
    council = state.get(suspended_key(op.kind))
    if council is not None:
        raise SuspendedByCouncil(f"the council suspended {op.kind!r}; only the council resumes it",
                                 f"proposal:{codec.decode(council, int)}")
    operators.resume(state, header.author, op.kind)


def apply_attest(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, IdAttest)
    if state.get(provider_key(header.author)) is None:
        raise NotIdentityProvider("only identity providers appointed by the council attest identities")
    record = IdentityRecord(op.identity, op.level, op.expires_ms, header.author, entry_id)
    state.set(identity_key(op.subject), codec.encode(record))


# --- the compliance gate ---------------------------------------------------------------------


def frozen_by(state: State, account: bytes, now_ms: int) -> str:
    """The decision freezing `account` ("proposal:N" or "emergency:N"), or "" when it is not frozen."""
    raw = state.get(frozen_key(account))
    if raw is not None:
        return f"proposal:{codec.decode(raw, int)}"
    raw = state.get(emergency_freeze_key(account))
    if raw is not None:
        number = codec.decode(raw, int)
        if get_emergency(state, number).active(now_ms):
            return f"emergency:{number}"
    return ""


def compliance_gate(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    """Every validator applies the same active rules at the same height, before any module.
    Each refusal names the decision that caused it."""
    raw = state.get(banned_key(header.author))
    if raw is not None:
        raise IdentityBanned("this key is denied service", f"proposal:{codec.decode(raw, int)}")
    identity = identity_of(state, header.author)
    if identity is not None:
        raw = state.get(banned_identity_key(identity.identity))
        if raw is not None:
            raise IdentityBanned("the identity behind this key is denied service", f"proposal:{codec.decode(raw, int)}")
    raw = state.get(suspended_key(header.kind))
    if raw is not None:
        raise ServiceSuspended(f"the {header.kind!r} service is suspended", f"proposal:{codec.decode(raw, int)}")
    paused = operators.pause_of(state, header.kind)
    if paused is not None:
        raise ServiceSuspended(f"the {header.kind!r} service is paused by its operator", paused.cause)
    raw_rule = state.get(rule_key(header.kind))
    if raw_rule is not None:
        rule = codec.decode(raw_rule, IdentityRule)
        cause = f"proposal:{rule.decision}"
        if not isinstance(op, Transfer) or op.amount > rule.above_amount:
            if identity is None:
                raise IdentityRequired(f"{header.kind} needs an attested identity of level {rule.min_level}", cause)
            if identity.expires_ms <= ctx.time_ms:
                raise IdentityExpired("the attested identity of this key has expired", cause)
            if identity.level < rule.min_level:
                raise IdentityLevelTooLow(f"{header.kind} needs identity level {rule.min_level}", cause)
    if isinstance(op, Transfer):
        for party in (header.author, op.to):
            cause = frozen_by(state, party, ctx.time_ms)
            if cause:
                raise AccountFrozen("a party of this transfer is frozen", cause)
        level = identity.level if identity is not None and identity.expires_ms > ctx.time_ms else -1
        interception = _compiled_rules(state).first_match(
            op, header.author, max(level, 0),
            lambda rule: not rule.emergency or get_emergency(state, rule.emergency).active(ctx.time_ms))
        if interception is not None:
            if interception.outcome == "hold":
                raise HeldForReview(interception)
            raise TransactionIntercepted(f"intercepted by rule {interception.rule_id!r}", interception.cause)
    elif isinstance(op, Data):
        blocking = blocking_content_rule(state, header, op, ctx.keywords.get(entry_id, ()))
        if blocking is not None:
            raise ContentBlocked(f"blocked by content rule {blocking.rule_id!r}", f"proposal:{blocking.decision}")


# --- the review queue: transfers held by an interception rule ----------------------------------


def hold_transfer(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Transfer,
                  rule: InterceptionRule) -> None:
    """Park the transfer with its funds in escrow, so a release cannot fail for want of them."""
    queue = review_queue(state)
    if len(queue) >= MAX_HELD:
        raise ReviewQueueFull(f"{MAX_HELD} transfers already wait for review", rule.cause)
    available = state.balance(header.author, op.asset)
    if available < op.amount:
        raise InsufficientFunds(f"balance {available} {op.asset} < {op.amount}")
    state.set_balance(header.author, op.asset, available - op.amount)
    window = rule.review_ms or ctx.governance.review_ms
    record = HeldRecord(entry_id, header.author, op.to, op.asset, op.amount, rule.rule_id, rule.decision,
                        ctx.time_ms, ctx.time_ms + window)
    state.set(held_key(entry_id), codec.encode(record))
    queue.append((record.deadline_ms, entry_id))
    _set_review_queue(state, queue)


def _close_hold(state: State, record: HeldRecord, status: str, height: int, decided_by: bytes, reason: str) -> None:
    if status == "released":
        received = state.balance(record.to, record.asset) + record.amount
        if received > MAX_BALANCE:
            raise BalanceOverflow()
        state.set_balance(record.to, record.asset, received)
    else:
        state.set_balance(record.author, record.asset, state.balance(record.author, record.asset) + record.amount)
    state.set(held_key(record.entry_id), codec.encode(msgspec.structs.replace(
        record, status=status, decided_height=height, decided_entry=decided_by, reason=reason)))


def expire_holds(ctx: ExecContext, state: State) -> list[bytes]:
    """At the start of a checkpoint: undecided holds past their deadline are rejected and
    refunded. Returns the expired entries."""
    queue = review_queue(state)
    due = bisect.bisect_right(queue, (ctx.time_ms, b"\xff" * 33))
    if not due:
        return []
    expired = []
    for _, entry_id in queue[:due]:
        record = held_of(state, entry_id)
        if record is not None and record.status == "held":
            _close_hold(state, record, "expired", ctx.height, b"", "review deadline passed")
            expired.append(entry_id)
    _set_review_queue(state, queue[due:])
    return expired


def apply_review(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, RegReview)
    if state.get(regulator_key(header.author)) is None:
        raise NotRegulator("only a regulator decides held transfers")
    record = held_of(state, op.entry)
    if record is None:
        raise HeldEntryNotFound(f"entry {op.entry.hex()} is not held for review")
    if record.status != "held":
        raise ReviewClosed(f"entry {op.entry.hex()} was already {record.status}")
    if op.decision == "release":
        for party in (record.author, record.to):
            cause = frozen_by(state, party, ctx.time_ms)
            if cause:
                raise AccountFrozen("a party of the held transfer is frozen", cause)
    _close_hold(state, record, "released" if op.decision == "release" else "rejected", ctx.height, entry_id,
                op.reason)
    _set_review_queue(state, [item for item in review_queue(state) if item[1] != op.entry])


# --- rule dry-run: what a proposed action would have refused ---------------------------------

DRY_RUN_DECISION = 0  # the hypothetical decision's number; real proposals start at 1
HELD_CODE = "held_for_review"


def dry_run(
    state: State, action: GovAction, ctx: ExecContext, entries: Iterable[tuple[bytes, EntryHeader]]
) -> list[tuple[bytes, str]]:
    """The entries (already final) that the gate would have refused had `action` been in force,
    with the reason code each would have got. Uses the gate itself, inside a state transaction
    that is always rolled back (the caller holds the state alone meanwhile: nothing awaits
    in here); identities and other rules are taken as they are now."""
    state.begin_transaction()
    try:
        _carry_out(ctx, state, DRY_RUN_DECISION, action)
        cause = f"proposal:{DRY_RUN_DECISION}"
        refused = []
        for entry_id, header in entries:
            try:
                op = decode_operation(header.kind, header.body)
                compliance_gate(ctx, state, entry_id, header, op)
            except HeldForReview as held:
                if held.rule.cause == cause:
                    refused.append((entry_id, HELD_CODE))
            except ExecutionRejected as exc:
                if exc.cause == cause:
                    refused.append((entry_id, exc.code))
        return refused
    finally:
        state.rollback_transaction()

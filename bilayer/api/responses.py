"""What the HTTP API answers, as types: the routes build these, and `/openapi.json` is generated
from them, so the document cannot say one thing while a route answers another.

Conventions of the answers (kept from the first API): ids, keys and roots in hex, accounts as
addresses, raw bytes in base64; a field that is `UNSET` is left out of the answer (it is
absent, not null), a field typed `... | None` is always present and may be null.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ..genesis import ChainParams as IngressParams
from ..ledger.entry import Tombstone

Hex = Annotated[str, Meta(pattern="^[0-9a-f]*$")]
Base64 = Annotated[str, Meta(description="bytes, base64")]
Address = Annotated[str, Meta(description="an account address (bl1...)")]
Height = Annotated[int, Meta(ge=0)]
Outcome = Literal["FINAL", "REJECTED", "HELD"]


class Response(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of the answers: encoded with their fields in order, UNSET fields left out."""


# --- errors -----------------------------------------------------------------------------------


class ErrorDetail(Response, frozen=True, kw_only=True):
    code: Annotated[str, Meta(description="stable, machine-readable; never renamed")]
    message: str
    details: dict[str, Any] | UnsetType = UNSET


class Error(Response, frozen=True, kw_only=True):
    """Every failure: a stable code and a message; never a stack trace."""

    error: ErrorDetail


# --- entries (layer 1) -----------------------------------------------------------------------


class SubmitResult(Response, frozen=True, kw_only=True):
    """What became of one submitted entry: stored durably, already known, or held as an orphan
    while its `missing` parents are fetched."""

    id: Hex
    status: Literal["stored", "known", "orphan"]
    missing: list[Hex] | UnsetType = UNSET


class BatchResult(Response, frozen=True, kw_only=True):
    """One entry of a batch: what became of it (as `SubmitResult`), or the `error` that refused it."""

    id: Hex | UnsetType = UNSET
    status: Literal["stored", "known", "orphan"] | UnsetType = UNSET
    missing: list[Hex] | UnsetType = UNSET
    error: ErrorDetail | UnsetType = UNSET


class BatchResults(Response, frozen=True, kw_only=True):
    """One result per entry, in the order sent."""

    results: list[BatchResult]


class Orphan(Response, frozen=True, kw_only=True):
    """The entry is held while its parents are fetched."""

    id: Hex
    status: Literal["orphan"]


class HeldView(Response, frozen=True, kw_only=True):
    """A transfer held for review and what became of it."""

    entry: Hex
    status: Annotated[str, Meta(description="held, released, rejected or expired")]
    from_: Address = msgspec.field(name="from")
    to: Address
    asset: str
    amount: int
    rule_id: str
    decision: int
    held_ms: int
    deadline_ms: int
    decided_height: int | None
    decided_by: Hex | None
    reason: str | None


class Entry(Response, frozen=True, kw_only=True):
    """An entry with its lifecycle: PENDING while stored but not yet ordered by a checkpoint,
    then FINAL (executed), REJECTED (ordered, refused by the state machine) or HELD (then
    `review` says what became of it). A deleted payload shows as its `tombstone`."""

    id: Hex
    chain: str
    author: Address
    seq: Annotated[int, Meta(ge=0)]
    parents: list[Hex]
    time_ms: int
    kind: str
    op: Annotated[dict[str, Any], Meta(description="the decoded operation")]
    payload_hash: Hex
    payload_size: Annotated[int, Meta(ge=0)]
    nonce: Annotated[Hex, Meta(description="proof-of-work nonce")]
    signature: Annotated[Hex, Meta(description="Ed25519 signature")]
    header_bytes: Annotated[Base64, Meta(description="canonical header (base64)")]
    payload: Base64 | UnsetType = UNSET
    payload_refused: Annotated[str, Meta(description="present instead of `payload` when a content rule in force"
                                                     " blocks it (the entry is not yet ordered)")] | UnsetType = UNSET
    tombstone: Tombstone | UnsetType = UNSET
    review: HeldView | UnsetType = UNSET
    status: Literal["PENDING", "FINAL", "REJECTED", "HELD"]
    height: Annotated[int, Meta(ge=1, description="checkpoint that ordered it (not PENDING)")] | UnsetType = UNSET
    index: Annotated[int, Meta(ge=0, description="position in that checkpoint's order")] | UnsetType = UNSET
    reason: Annotated[str | None, Meta(description="why it was REJECTED or HELD; null when FINAL")] | UnsetType = UNSET
    cause: Annotated[str | None, Meta(description="the decision behind the reason")] | UnsetType = UNSET
    position: Annotated[int, Meta(description="this node's arrival order")]
    received_ms: int


class EntryRow(Response, frozen=True, kw_only=True):
    id: Hex
    position: int
    author: Address
    seq: int
    parents: list[Hex]
    kind: str
    time_ms: int


class EntryPage(Response, frozen=True, kw_only=True):
    """A page of entries in this node's arrival order; `next` is `after` of the next page."""

    entries: list[EntryRow]
    next: int


class Author(Response, frozen=True, kw_only=True):
    """An author's next sequence number and head, as this node's DAG holds them."""

    address: Address
    next_seq: int
    head: Hex | None


class Tips(Response, frozen=True, kw_only=True):
    count: int
    tips: list[Hex]


class ForkEntry(Response, frozen=True, kw_only=True):
    id: Hex
    header_bytes: Base64
    signature: Hex


class Fork(Response, frozen=True, kw_only=True):
    """An author signed two entries with the same sequence number."""

    kind: Literal["fork"]
    author: Address
    seq: int
    detected_ms: int
    entries: list[ForkEntry]


class Equivocation(Response, frozen=True, kw_only=True):
    """A validator signed two different proposals or votes for one height, round and step."""

    kind: Literal["duplicate_vote", "duplicate_proposal"]
    validator: Hex
    height: int
    round: int
    detected_ms: int
    first: Annotated[Base64, Meta(description="first signed message, msgpack (base64)")]
    second: Annotated[Base64, Meta(description="second signed message, msgpack (base64)")]


class Evidence(Response, frozen=True, kw_only=True):
    forks: list[Fork]
    equivocations: list[Equivocation]


class Draft(Response, frozen=True, kw_only=True):
    """The header to sign: check that `id` is SHA-256 of `header` and that the header is what was
    asked for, then sign `bilayer/entry/v1` || id and submit it."""

    id: Annotated[Hex, Meta(description="SHA-256 of the header bytes")]
    header: Annotated[Hex, Meta(description="the canonical header bytes, stamped")]
    author: Address
    chain: str
    seq: Annotated[int, Meta(ge=0)]
    parents: list[Hex]
    kind: str
    op: dict[str, Any]
    payload_hash: Hex
    payload_size: Annotated[int, Meta(ge=0)]
    pow_bits: Annotated[int, Meta(ge=0)]
    time_ms: int


# --- checkpoints, accounts, validators (layer 2 and state) -----------------------------------


class Signature(Response, frozen=True, kw_only=True):
    validator: Hex
    signature: Hex


class Certificate(Response, frozen=True, kw_only=True):
    """Precommits of more than two thirds of the voting power."""

    height: int
    round: int
    value_id: Hex
    signatures: list[Signature]


class OrderedEntry(Response, frozen=True, kw_only=True):
    id: Hex
    outcome: Outcome
    reason: str | None
    cause: str | None


class CheckpointView(Response, frozen=True, kw_only=True):
    """A finalized checkpoint. state_root/results_root are the roots after executing it;
    prev_state_root/prev_results_root are the roots after the previous height, which the
    validators signed."""

    height: Annotated[int, Meta(ge=1)]
    id: Hex
    round: Annotated[int, Meta(ge=0, description="consensus round that decided it")]
    prev_id: Annotated[Hex, Meta(description="previous checkpoint id (the genesis root at height 1)")]
    proposer: Hex
    frontier: list[Hex]
    prev_state_root: Hex
    prev_results_root: Hex
    time_ms: int
    state_root: Hex
    results_root: Hex
    entry_count: Annotated[int, Meta(ge=0)]
    certificate: Certificate
    finalized: Annotated[Base64, Meta(description="canonical msgpack of the finalized checkpoint, to verify"
                                                  " offline")]
    entries: Annotated[list[OrderedEntry], Meta(description="only with entries=1: every entry it ordered, in"
                                                            " execution order")] | UnsetType = UNSET


class Account(Response, frozen=True, kw_only=True):
    address: Address
    height: Annotated[int, Meta(ge=0, description="the finalized height this state is at")]
    balances: Annotated[dict[str, int], Meta(description="by asset")]
    next_seq: Annotated[int, Meta(ge=0, description="next sequence number the chain executes")]
    last_entry: Annotated[Hex | None, Meta(description="the author's last ordered entry")]
    state_root: Hex


class Validator(Response, frozen=True, kw_only=True):
    name: str
    public_key: Hex
    address: Address
    power: Annotated[int, Meta(ge=1)]


class ValidatorChange(Response, frozen=True, kw_only=True):
    """One change of the validator set: the set, the first height it governs (two after the
    checkpoint that executed it) and the proposals that decided it (none: genesis)."""

    change: Annotated[int, Meta(ge=1, description="1 is the genesis set")]
    height: Annotated[int, Meta(ge=1, description="first height this set governs")]
    executed_height: Annotated[int | None, Meta(description="null for the genesis set")]
    proposals: list[int]
    validators: list[Validator]
    total_power: int
    max_faulty: int
    quorum_power: int


class Validators(Response, frozen=True, kw_only=True):
    """The set that votes on a height, since when, and a later change already executed. A chain
    with no validators answers only the empty set."""

    height: Annotated[int, Meta(ge=1, description="the height this set votes on")] | UnsetType = UNSET
    since_height: Annotated[int, Meta(ge=1, description="the height the set took effect")] | UnsetType = UNSET
    proposals: list[int] | UnsetType = UNSET
    validators: list[Validator]
    total_power: int
    max_faulty: int
    quorum_power: int | UnsetType = UNSET
    next: ValidatorChange | UnsetType = UNSET


class ValidatorHistory(Response, frozen=True, kw_only=True):
    height: int
    changes: list[ValidatorChange]


# --- governance and compliance ----------------------------------------------------------------


class Tally(Response, frozen=True, kw_only=True):
    yes: int
    no: int
    abstain: int
    approvals: int
    council_weight: int


class VoteView(Response, frozen=True, kw_only=True):
    voter: Address
    weight: int
    choice: str


class AffectedEntry(Response, frozen=True, kw_only=True):
    id: Hex
    height: int
    kind: str
    outcome: str
    reason: str | None


class Proposal(Response, frozen=True, kw_only=True):
    """A proposal as of now (its status decided at the deadline if it had not passed before)."""

    number: int
    status: Literal["voting", "passed", "rejected", "executed", "cancelled"]
    action: dict[str, Any]
    reason: str
    legal_ref: str
    proposer: Address
    entry: Hex
    created_ms: int
    deadline_ms: int
    tally: Tally
    passed_ms: int | None
    executable_from_ms: int | None
    executed_height: int | UnsetType = UNSET
    executed_entry: Hex | UnsetType = UNSET
    votes: list[VoteView] | UnsetType = UNSET
    height: int | UnsetType = UNSET
    affected: Annotated[list[AffectedEntry], Meta(description="entries whose result names this proposal as"
                                                              " cause")] | UnsetType = UNSET


class Proposals(Response, frozen=True, kw_only=True):
    height: int
    proposals: list[Proposal]


class Member(Response, frozen=True, kw_only=True):
    address: Address
    name: str | None
    weight: int


class Council(Response, frozen=True, kw_only=True):
    height: int
    members: list[Member]
    rules: dict[str, Any]


class DryRunEntry(Response, frozen=True, kw_only=True):
    id: Hex
    height: int
    kind: str
    author: Address
    reason: str


class DryRun(Response, frozen=True, kw_only=True):
    """Which already-final entries a proposed action would have refused."""

    height: int
    since: int
    examined: int
    truncated: bool
    would_refuse: int
    entries: list[DryRunEntry]


class ByKey(Response, frozen=True, kw_only=True):
    address: Address
    decision: int


class Operator(Response, frozen=True, kw_only=True):
    address: Address
    kind: str
    decision: int


class Pause(Response, frozen=True, kw_only=True):
    kind: str
    operator: Address
    entry: Hex
    reason: str
    time_ms: int
    height: int


class InterceptionRule(Response, frozen=True, kw_only=True):
    rule_id: str
    min_amount: int
    asset: str | None
    counterparties: list[Address]
    max_identity_level: int
    outcome: str
    review_ms: int | None
    decision: int | None
    emergency: int | None
    in_force: bool


class ContentRule(Response, frozen=True, kw_only=True):
    rule_id: str
    payload_hash: Hex | None
    keyword: str | None
    media_type: str | None
    max_size: int | None
    decision: int


class Redacted(Response, frozen=True, kw_only=True):
    entry: Hex
    decision: int
    reason_code: str
    time_ms: int
    height: int


class Suspended(Response, frozen=True, kw_only=True):
    kind: str
    decision: int


class BannedIdentity(Response, frozen=True, kw_only=True):
    identity: Hex
    decision: int


class IdentityRule(Response, frozen=True, kw_only=True):
    kind: str
    min_level: int
    above_amount: int
    decision: int


class Emergency(Response, frozen=True, kw_only=True):
    number: int
    status: str
    action: Literal["freeze", "intercept"]
    rule_id: str | UnsetType = UNSET
    account: Address | None
    regulator: Address
    reason: str
    legal_ref: str
    entry: Hex
    created_ms: int
    expires_ms: int
    ratified_by: int | None


class Compliance(Response, frozen=True, kw_only=True):
    """Everything the gate enforces, each with the decision behind it."""

    height: int
    frozen_accounts: list[ByKey]
    banned_keys: list[ByKey]
    operators: list[Operator]
    paused_services: list[Pause]
    interception_rules: list[InterceptionRule]
    content_rules: list[ContentRule]
    review_queue: list[HeldView]
    redactions: list[Redacted]
    suspended_services: list[Suspended]
    identity_providers: list[ByKey]
    banned_identities: list[BannedIdentity]
    identity_rules: list[IdentityRule]
    emergencies: list[Emergency]


class ReviewQueue(Response, frozen=True, kw_only=True):
    height: int
    count: int
    held: list[HeldView]


class ChainParams(Response, frozen=True, kw_only=True):
    """The chain parameters in force, and the loosest ever (what old entries were admitted by)."""

    height: int
    params: dict[str, Any]
    loosest: dict[str, Any]


class Identity(Response, frozen=True, kw_only=True):
    """An account's attested identity; `identity` is null when it has none (and then only
    `address` and `height` follow)."""

    address: Address
    identity: Hex | None
    level: int | UnsetType = UNSET
    expires_ms: int | UnsetType = UNSET
    expired: bool | UnsetType = UNSET
    provider: Address | UnsetType = UNSET
    entry: Hex | UnsetType = UNSET
    identity_banned: bool | UnsetType = UNSET
    height: int


# --- applications ----------------------------------------------------------------------------


class Application(Response, frozen=True, kw_only=True):
    name: str
    summary: str
    kinds: list[str]
    queries: list[str]
    console: str | None


class Applications(Response, frozen=True, kw_only=True):
    applications: list[Application]


class AppAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """An application's answer to a read query: the height of the checkpoint whose state it
    read, then the application's own fields (as its query renders them)."""

    height: Height


# --- audit ------------------------------------------------------------------------------------


class ManagementAct(Response, frozen=True, kw_only=True):
    id: Hex
    height: int
    index: int
    kind: str
    author: Address
    time_ms: int
    op: dict[str, Any]
    outcome: str
    reason: str | None
    cause: str | None


class Lapse(Response, frozen=True, kw_only=True):
    """An emergency act that lapsed unratified: derived from its record, not an entry."""

    kind: Literal["reg.lapse"]
    emergency: int
    time_ms: int
    action: Literal["freeze", "intercept"]
    rule_id: str | UnsetType = UNSET
    account: Address | None
    derived: bool


class ManagementLog(Response, frozen=True, kw_only=True):
    height: int
    actions: list[ManagementAct]
    lapses: list[Lapse]


class AuditEntry(Response, frozen=True, kw_only=True):
    id: Hex
    height: int
    position: int
    time_ms: Annotated[int, Meta(description="the checkpoint's time")]
    author: Address
    kind: str
    counterparties: list[Address]
    asset: str | None
    amount: int | None
    outcome: Outcome
    reason: str | None
    cause: str | None


class AuditEntries(Response, frozen=True, kw_only=True):
    height: Annotated[int, Meta(description="the last checkpoint indexed")]
    entries: list[AuditEntry]
    next: Annotated[str | None, Meta(description="`before` of the next page; null on the last")]


class TraceNode(Response, frozen=True, kw_only=True):
    id: Annotated[str, Meta(description="an address, or `genesis` (the source of genesis allocations)")]
    depth: Annotated[int, Meta(description="fewest hops from the start")]
    traced: Annotated[int, Meta(description="traced amount that reached it (the start: what it started with)")]
    asset: str


class TraceEdge(Response, frozen=True, kw_only=True):
    entry: Annotated[str, Meta(description="the entry that moved the funds (genesis: the genesis root)")]
    kind: Literal["genesis", "transfer", "release", "refund", "recovery"]
    from_: str = msgspec.field(name="from")
    to: str
    asset: str
    amount: Annotated[int, Meta(description="all the flow moved")]
    traced: Annotated[int, Meta(description="the traced part of it")]
    height: Annotated[int, Meta(description="the checkpoint at which the funds reached `to`")]
    time_ms: int
    hop: int


class Trace(Response, frozen=True, kw_only=True):
    start: str
    direction: Literal["forward", "backward"]
    hops: int
    asset: str | None
    method: Literal["fifo"]
    height: Annotated[int, Meta(description="the last checkpoint indexed")]
    dust: Annotated[int, Meta(description="smallest traced amount followed")]
    nodes: list[TraceNode]
    edges: list[TraceEdge]
    truncated: Annotated[bool, Meta(description="a bound (edges, nodes, rows read) cut the trace")]


# --- the node itself --------------------------------------------------------------------------


class Peer(Response, frozen=True, kw_only=True):
    node_key: Hex
    listen: str
    direction: Literal["inbound", "outbound"]


class Peers(Response, frozen=True, kw_only=True):
    peers: list[Peer]


class Health(Response, frozen=True, kw_only=True):
    status: Literal["ok"]
    uptime_s: float


class Ready(Response, frozen=True, kw_only=True):
    status: Literal["ready"]


class Status(Response, frozen=True, kw_only=True):
    """Who the node is and how far it got. The fields from `height` on are present only with
    `finality` (a chain with validators): the height and roots of the last checkpoint on disk,
    so a height read here is one a client can fetch."""

    version: str
    name: str
    role: Literal["validator", "ledger"]
    chain_id: str
    genesis_root: Hex
    node_key: Hex
    healthy: Annotated[bool, Meta(description="storage working (entries and checkpoints)")]
    entries: Annotated[int, Meta(ge=0, description="entries in this node's DAG")]
    tips: Annotated[int, Meta(ge=0)]
    orphans: Annotated[int, Meta(ge=0, description="entries held while their parents are fetched")]
    authors: Annotated[int, Meta(ge=0)]
    peers: Annotated[int, Meta(ge=0, description="authenticated peer links")]
    isolated: bool
    catching_up: bool
    params: Annotated[IngressParams, Meta(description="what a client's new entry must meet now")]
    api: Annotated[str, Meta(description="the API's listen address")]
    p2p: Annotated[str, Meta(description="the peer port's listen address")]
    uptime_s: float
    finality: Annotated[bool, Meta(description="the chain has validators (layer 2)")]
    height: Height | UnsetType = UNSET
    last_checkpoint: Annotated[Hex | None, Meta(description="its id; null before the first")] | UnsetType = UNSET
    last_checkpoint_time_ms: int | UnsetType | None = UNSET
    state_root: Hex | UnsetType = UNSET
    results_root: Hex | UnsetType = UNSET
    validators: Annotated[int, Meta(ge=0, description="validators voting on the next height")] | UnsetType = UNSET
    halted: Annotated[str | None, Meta(description="why finality stopped on this node; null while it runs")] \
        | UnsetType = UNSET
    storage_error: Annotated[str, Meta(description="present while a checkpoint cannot be recorded (it is retried)")] \
        | UnsetType = UNSET
    round: Annotated[int, Meta(ge=0, description="the consensus round of the next height")] | UnsetType = UNSET
    phase: Annotated[int, Meta(ge=0, le=3, description="0 propose, 1 prevote, 2 precommit, 3 decided")] \
        | UnsetType = UNSET

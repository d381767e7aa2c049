"""Typed answers of the node API, decoded straight from the JSON a node sends.

Each struct names the fields an integrator relies on. Unknown fields are ignored, so a
newer node that adds fields does not break an older client; a field the struct requires
and the node leaves out is an `UnexpectedResponse`. Ids and hashes are hex strings and keys
are addresses, as the API writes them; amounts, heights and times (milliseconds) are
integers.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ..genesis import ChainParams

EntryStatus = Literal["PENDING", "FINAL", "REJECTED", "HELD", "ORPHAN"]
OUTCOMES: tuple[EntryStatus, ...] = ("FINAL", "REJECTED", "HELD")


class Status(msgspec.Struct, frozen=True):
    """`GET /v1/status`: who the node is and how far it got. `height` and the roots are
    None on a chain without validators (`finality` false), where nothing is final."""

    version: str
    name: str
    role: str
    chain_id: str
    genesis_root: str
    node_key: str
    healthy: bool
    entries: int
    tips: int
    orphans: int
    authors: int
    peers: int
    isolated: bool
    catching_up: bool
    params: ChainParams
    finality: bool
    height: int | None = None
    last_checkpoint: str | None = None
    last_checkpoint_time_ms: int | None = None
    state_root: str | None = None
    results_root: str | None = None
    validators: int | None = None
    halted: str | None = None
    round: int | None = None
    storage_error: str | None = None


class Author(msgspec.Struct, frozen=True):
    """`GET /v1/authors/{address}`: what a client needs to write the author's next entry."""

    address: str
    next_seq: int
    head: str | None


class Account(msgspec.Struct, frozen=True):
    """`GET /v1/accounts/{address}`: balances (minor units per asset) as of checkpoint `height`."""

    address: str
    height: int
    balances: dict[str, int]
    next_seq: int
    last_entry: str | None
    state_root: str


class Submitted(msgspec.Struct, frozen=True):
    """`POST /v1/entries`: `stored` (durable on that node), `known` (it had it already: a
    resubmission of the same signed entry) or `orphan` (it waits for `missing` parents)."""

    id: str
    status: Literal["stored", "known", "orphan"]
    missing: list[str] = []


class Outcome(msgspec.Struct, frozen=True):
    """`GET /v1/entries/{id}`: an entry and where it is in its life. FINAL, REJECTED and
    HELD are decided at checkpoint `height`; `code` is the stable reason code of a
    REJECTED or HELD entry and `cause` the decision behind it (`proposal:N`,
    `emergency:N`), if any. PENDING means stored but not ordered yet; ORPHAN that the
    node still lacks a parent."""

    id: str
    status: EntryStatus
    kind: str = ""
    author: str = ""
    seq: int = 0
    time_ms: int = 0
    op: dict[str, Any] = {}
    height: int | None = None
    index: int | None = None
    code: str | None = msgspec.field(default=None, name="reason")
    cause: str | None = None
    review: dict[str, Any] | None = None
    tombstone: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        """The entry applied: its effects are in the state from `height` on."""
        return self.status == "FINAL"

    @property
    def decided(self) -> bool:
        """FINAL, REJECTED or HELD: no later checkpoint changes this answer (a HELD entry's
        `review` may still be decided by a regulator)."""
        return self.status in OUTCOMES


class Signature(msgspec.Struct, frozen=True):
    validator: str
    signature: str


class Certificate(msgspec.Struct, frozen=True):
    height: int
    round: int
    value_id: str
    signatures: list[Signature]


class CheckpointEntry(msgspec.Struct, frozen=True):
    id: str
    outcome: Literal["FINAL", "REJECTED", "HELD"]
    code: str | None = msgspec.field(default=None, name="reason")
    cause: str | None = None


class Checkpoint(msgspec.Struct, frozen=True):
    """`GET /v1/checkpoints/{height}`: a finalized checkpoint, its quorum certificate and
    the roots after executing it; `entries` (asked for) are its ordered outcomes."""

    height: int
    id: str
    round: int
    prev_id: str
    proposer: str
    frontier: list[str]
    time_ms: int
    state_root: str
    results_root: str
    entry_count: int
    certificate: Certificate
    entries: list[CheckpointEntry] | None = None


class Tally(msgspec.Struct, frozen=True):
    yes: int
    no: int
    abstain: int
    approvals: int
    council_weight: int


class Vote(msgspec.Struct, frozen=True):
    voter: str
    weight: int
    choice: Literal["yes", "no", "abstain"]


class Proposal(msgspec.Struct, frozen=True):
    """`GET /v1/gov/proposals/{number}`: a council proposal with its status as of now.
    `action` is the proposed management action as the API renders it (its `type` is the
    wire tag, e.g. `freeze_account`). `votes` are listed only by the single-proposal route."""

    number: int
    status: Literal["voting", "passed", "rejected", "executed", "cancelled"]
    action: dict[str, Any]
    reason: str
    legal_ref: str
    proposer: str
    entry: str
    created_ms: int
    deadline_ms: int
    tally: Tally
    passed_ms: int | None = None
    executable_from_ms: int | None = None
    executed_height: int | None = None
    executed_entry: str | None = None
    votes: list[Vote] = []


class Identity(msgspec.Struct, frozen=True):
    """`GET /v1/identities/{address}`: the identity a provider attested for a key; every
    field but `address` and `height` is None when none is attested."""

    address: str
    height: int
    identity: str | None
    level: int | None = None
    expires_ms: int | None = None
    expired: bool | None = None
    provider: str | None = None
    entry: str | None = None
    identity_banned: bool | None = None


class _Proposals(msgspec.Struct, frozen=True):
    height: int
    proposals: list[Proposal]


class _Params(msgspec.Struct, frozen=True):
    params: ChainParams


class _Tips(msgspec.Struct, frozen=True):
    tips: list[str]


class _ErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str = ""


class _Error(msgspec.Struct, frozen=True):
    error: _ErrorBody

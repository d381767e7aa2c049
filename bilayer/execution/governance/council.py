"""The council and its proposals: propose, vote, execute, cancel.

Keeper of these state keys:

    b"C"  + key               -> council weight (from genesis, changed by proposals)
    b"Ct"                     -> the council's total weight
    b"Gn"                     -> the last proposal number
    b"Gp" + number (8 bytes)  -> ProposalRecord
    b"Gv" + number + voter    -> the voter's choice

A proposal passes as soon as its yes-weight reaches the threshold of the whole council, or
at its deadline when the votes cast reach the quorum and yes reaches the threshold of yes
and no; either way only with at least `min_approvals` distinct yes-voters. It executes (by
a `gov.execute` entry from anyone) no earlier than the timelock after it passed, exactly
once. Every step is an entry, so every decision is ordered, final and auditable like any
transfer.
"""

from __future__ import annotations

import msgspec

from ... import codec
from ...errors import BadRequest
from ...genesis import Genesis, GovernanceParams
from ...keys.address import PUBLIC_KEY_SIZE
from ...ledger.entry import EntryHeader
from ...ledger.operations import GovAction, GovCancel, GovExecute, GovPropose, GovVote, Operation, SetCouncilMember
from ..errors import ExecutionRejected
from ..state import Keeper, State
from .actions import ActionSpec, Proposer, carry_out, register_action, spec_of
from .context import ExecContext
from .options import ActionOptions


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


class CouncilWouldBeEmpty(ExecutionRejected):
    code = "council_would_be_empty"


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


COUNCIL_TOTAL = b"Ct"
PROPOSAL_COUNT = b"Gn"


MEMBER = b"C"


def _member_key(key: bytes) -> bytes:
    return MEMBER + key


def proposal_key(number: int) -> bytes:
    """Public for proofs: audit evidence proves a proposal record against a state root."""
    return b"Gp" + number.to_bytes(8, "big")


def _vote_key(number: int, voter: bytes) -> bytes:
    return b"Gv" + number.to_bytes(8, "big") + voter


class Council(Keeper):
    __slots__ = ()
    KEYS = ((MEMBER, 32), (COUNCIL_TOTAL, 0), (PROPOSAL_COUNT, 0), (b"Gp", 8), (b"Gv", 40))

    def weight(self, key: bytes) -> int:
        return self._decision(_member_key(key)) or 0

    def total(self) -> int:
        """Kept in its own key: a vote must not scan the state."""
        return self._decision(COUNCIL_TOTAL) or 0

    def members(self) -> list[tuple[bytes, int]]:
        """(key, weight) of every member, in key order."""
        return [(key, weight) for key, weight in self._decisions(MEMBER, PUBLIC_KEY_SIZE) if weight > 0]

    def proposal_count(self) -> int:
        return self._decision(PROPOSAL_COUNT) or 0

    def proposal(self, number: int) -> ProposalRecord:
        raw = self.state.get(proposal_key(number))
        if raw is None:
            raise ProposalNotFound(f"no proposal {number}")
        return codec.decode(raw, ProposalRecord)

    def vote_of(self, number: int, voter: bytes) -> str | None:
        raw = self.state.get(_vote_key(number, voter))
        return None if raw is None else codec.decode(raw, str)

    def set_weight(self, key: bytes, weight: int) -> None:
        self.state.set(COUNCIL_TOTAL, codec.encode(self.total() - self.weight(key) + weight))
        self.state.set(_member_key(key), codec.encode(weight))

    def add_proposal(self, record: ProposalRecord) -> None:
        self.state.set(PROPOSAL_COUNT, codec.encode(record.number))
        self.put_proposal(record)

    def put_proposal(self, record: ProposalRecord) -> None:
        self.state.set(proposal_key(record.number), codec.encode(record))

    def record_vote(self, number: int, voter: bytes, choice: str) -> None:
        self.state.set(_vote_key(number, voter), codec.encode(choice))


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


def init_genesis(state: State, genesis: Genesis) -> None:
    council = Council(state)
    for member in genesis.council:
        council.set_weight(bytes.fromhex(member.public_key), member.weight)


def may_propose(state: State, proposer: Proposer, key: bytes) -> bool:
    """Whether `key` holds the role an action's spec says may propose it."""
    return proposer is Proposer.COUNCIL and Council(state).weight(key) > 0


# --- handlers -----------------------------------------------------------------------------------


def apply_propose(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, GovPropose)
    council = Council(state)
    if not may_propose(state, spec_of(op.action).proposer, header.author):
        raise NotCouncilMember("only council members propose")
    council.add_proposal(ProposalRecord(
        number=council.proposal_count() + 1, proposer=header.author, entry_id=entry_id, action=op.action,
        reason=op.reason, legal_ref=op.legal_ref, created_ms=ctx.time_ms,
        deadline_ms=ctx.time_ms + ctx.governance.voting_period_ms))


def apply_vote(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, GovVote)
    council = Council(state)
    weight = council.weight(header.author)
    if weight <= 0:
        raise NotCouncilMember("only council members vote")
    record = effective(council.proposal(op.proposal), council.total(), ctx.governance, ctx.time_ms)
    if record.status in ("executed", "cancelled"):
        raise ProposalClosed(f"proposal {op.proposal} is {record.status}")
    if ctx.time_ms >= record.deadline_ms:
        raise VoteAfterDeadline(f"voting on proposal {op.proposal} closed")
    if council.vote_of(op.proposal, header.author) is not None:
        raise DoubleVote(f"already voted on proposal {op.proposal}")
    yes = record.yes + (weight if op.choice == "yes" else 0)
    no = record.no + (weight if op.choice == "no" else 0)
    abstain = record.abstain + (weight if op.choice == "abstain" else 0)
    approvals = record.approvals + (op.choice == "yes")
    record = msgspec.structs.replace(record, yes=yes, no=no, abstain=abstain, approvals=approvals)
    if (record.status == "voting" and approvals >= ctx.governance.min_approvals
            and yes * 10_000 >= ctx.governance.threshold_bps * council.total()):
        record = msgspec.structs.replace(record, status="passed", passed_ms=ctx.time_ms)
    council.record_vote(op.proposal, header.author, op.choice)
    council.put_proposal(record)


def apply_execute(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, GovExecute)
    council = Council(state)
    record = effective(council.proposal(op.proposal), council.total(), ctx.governance, ctx.time_ms)
    if record.status == "executed":
        raise AlreadyExecuted(f"proposal {op.proposal} executed at height {record.executed_height}")
    if record.status != "passed":
        raise ProposalNotPassed(f"proposal {op.proposal} is {record.status}")
    if ctx.time_ms < record.passed_ms + ctx.governance.timelock_ms:
        opens = record.passed_ms + ctx.governance.timelock_ms
        raise TimelockNotExpired(f"proposal {op.proposal} may execute from {opens} (ms since the epoch)")
    carry_out(ctx, state, record.number, record.action)
    council.put_proposal(msgspec.structs.replace(record, status="executed", executed_height=ctx.height,
                                                 executed_entry=entry_id))


def apply_cancel(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, GovCancel)
    council = Council(state)
    record = council.proposal(op.proposal)
    if record.proposer != header.author:
        raise NotProposer("only the proposer cancels a proposal")
    if record.status in ("executed", "cancelled"):
        raise ProposalClosed(f"proposal {op.proposal} is {record.status}")
    council.put_proposal(msgspec.structs.replace(record, status="cancelled"))


def set_council_member(ctx: ExecContext, state: State, number: int, action: SetCouncilMember) -> None:
    """Weight 0 removes the member; the council cannot remove its last one."""
    council = Council(state)
    if action.weight == 0 and council.total() - council.weight(action.key) <= 0:
        raise CouncilWouldBeEmpty("the council cannot remove its last member")
    council.set_weight(action.key, action.weight)


def _council_member(o: ActionOptions) -> SetCouncilMember:
    key = o.target_key("council-member")
    if o.weight is None:
        raise BadRequest("--action council-member needs --weight (0 removes the member)")
    return SetCouncilMember(key, o.weight)


register_action(ActionSpec(
    SetCouncilMember, "council-member", "add a council member, change its weight, or (weight 0) remove it",
    build=lambda o, _: _council_member(o), effect=set_council_member))

"""Deterministic execution of ordered entries: FINAL (applied) or REJECTED with a reason.

For each entry, in linearized order:

1. author chain: `seq` must be the author's next sequence number and, for `seq > 0`, the
   first parent must be the author's last ordered entry. Otherwise the entry is REJECTED
   (`sequence_conflict`): this is where the loser of an author's fork ends.
2. the author's chain advances (a later business rejection does not block the author);
3. payload limits: those of the chain parameters in force when it executes (a proposal
   may have tightened them since the entry was accepted; proof of work and the DAG shape
   are checked at ingress only);
4. the compliance gate (bans, suspended services, freezes, interception and content rules)
   may refuse it, with its code, or hold a transfer for review (HELD);
5. the operation's module applies it or raises an `ExecutionRejected` with its code.

Before the first entry of a checkpoint, held transfers whose review deadline has passed are
rejected and refunded. After the last, each installed application's `end_checkpoint` runs
(in name order, each in its own state transaction).

Steps 3 to 5 run inside a state transaction: committed when the entry is FINAL or HELD,
rolled back on any refusal, so a REJECTED entry changes nothing but its author's chain (step
2), whatever its handler wrote before it refused. Modules register a handler per operation
kind and need not order their checks before their writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from .. import codec
from ..errors import BilayerError
from ..genesis import Genesis
from ..keys.address import public_key_from_address
from ..ledger.entry import EntryHeader
from ..ledger.operations import GovExecute, Operation, Transfer, decode_operation
from .application import installed_applications
from .errors import BalanceOverflow, ExecutionRejected, InsufficientFunds
from .governance import council, emergency, identity, params, review, services, validator_set
from .governance.context import MAX_BALANCE, ExecContext, Handler
from .governance.gate import Gate, HeldForReview
from .governance.params import Params
from .governance.review import expire_holds, hold_transfer
from .governance.rules import HELD_CODE
from .merkle import merkle_root, sized_root
from .state import State


class Outcome(StrEnum):
    FINAL = "FINAL"
    REJECTED = "REJECTED"
    HELD = "HELD"  # parked for review: a regulator's `reg.review` (or its deadline) decides it


class SequenceConflict(ExecutionRejected):
    code = "sequence_conflict"


@dataclass(frozen=True, slots=True)
class EntryResult:
    """`cause` names the decision behind the outcome, when there is one ("proposal:7",
    "emergency:2"): a rejection by the compliance gate, or the execution of a proposal."""

    entry_id: bytes
    outcome: Outcome
    code: str = ""
    cause: str = ""

    def leaf(self) -> bytes:
        return codec.encode((self.entry_id, str(self.outcome), self.code, self.cause))


def apply_transfer(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, Transfer)
    available = state.balance(header.author, op.asset)
    if available < op.amount:
        raise InsufficientFunds(f"balance {available} {op.asset} < {op.amount}")
    if header.author == op.to:
        return
    received = state.balance(op.to, op.asset) + op.amount
    if received > MAX_BALANCE:
        raise BalanceOverflow()
    state.set_balance(header.author, op.asset, available - op.amount)
    state.set_balance(op.to, op.asset, received)


def apply_data(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    """Data entries change no state: being ordered and final is their whole effect."""


HANDLERS: dict[str, Handler] = {
    "transfer": apply_transfer,
    "data": apply_data,
    "gov.propose": council.apply_propose,
    "gov.vote": council.apply_vote,
    "gov.execute": council.apply_execute,
    "gov.cancel": council.apply_cancel,
    "reg.freeze": emergency.apply_reg_freeze,
    "reg.intercept": emergency.apply_reg_intercept,
    "reg.review": review.apply_review,
    "id.attest": identity.apply_attest,
    "app.pause": services.apply_app_pause,
    "app.resume": services.apply_app_resume,
    **{kind: handler for app in installed_applications() for kind, handler in app.handlers().items()},
}


def genesis_state(genesis: Genesis) -> State:
    state = State()
    for allocation in genesis.allocations:
        key = public_key_from_address(allocation.address)
        state.set_balance(key, allocation.asset, state.balance(key, allocation.asset) + allocation.amount)
    validator_set.init_genesis(state, genesis)
    council.init_genesis(state, genesis)
    emergency.init_genesis(state, genesis)
    params.init_genesis(state, genesis)
    return state


def execute_entry(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader,
                  gate: Gate | None = None) -> EntryResult:
    """`gate`: the gate bound to `state`, when the caller executes many entries."""
    next_seq, last = state.author_head(header.author)
    if header.seq != next_seq or (header.seq > 0 and header.parents[0] != last):
        return EntryResult(entry_id, Outcome.REJECTED, SequenceConflict.code)
    state.set_author_head(header.author, next_seq + 1, entry_id)
    handler = HANDLERS.get(header.kind)
    if handler is None:
        return EntryResult(entry_id, Outcome.REJECTED, "unknown_operation")
    state.begin_transaction()  # steps 3 to 5: kept on FINAL or HELD, undone on any refusal
    try:
        op = decode_operation(header.kind, header.body)
        _check_limits(state, header, op)
        try:
            (gate or Gate(state)).check(ctx, entry_id, header, op)
        except HeldForReview as held:
            assert isinstance(op, Transfer)
            hold_transfer(ctx, state, entry_id, header, op, held.rule)
            state.commit_transaction()
            return EntryResult(entry_id, Outcome.HELD, HELD_CODE, held.rule.cause)
        handler(ctx, state, entry_id, header, op)
    except ExecutionRejected as exc:
        state.rollback_transaction()
        return EntryResult(entry_id, Outcome.REJECTED, exc.code, exc.cause)
    except BaseException:
        state.rollback_transaction()
        raise
    state.commit_transaction()
    return EntryResult(entry_id, Outcome.FINAL, "", f"proposal:{op.proposal}" if isinstance(op, GovExecute) else "")


class LimitExceeded(ExecutionRejected):
    """An entry the chain's current parameters no longer admit; the code is the ingress one."""

    def __init__(self, error: BilayerError) -> None:
        super().__init__(error.message)
        self.code = error.code


def _check_limits(state: State, header: EntryHeader, op: Operation) -> None:
    params = Params(state).in_force()
    if params is None:  # a bare state, not one made from a genesis
        return
    try:
        op.check(header.payload_size, params)
    except BilayerError as exc:
        raise LimitExceeded(exc) from None


def execute(ctx: ExecContext, state: State, ordered: Sequence[tuple[bytes, EntryHeader]]) -> list[EntryResult]:
    expire_holds(ctx, state)
    gate = Gate(state)
    results = [execute_entry(ctx, state, entry_id, header, gate) for entry_id, header in ordered]
    end_checkpoint(ctx, state)
    return results


def end_checkpoint(ctx: ExecContext, state: State) -> None:
    """Each application's end-of-checkpoint work; a refusal undoes that application's writes only."""
    for app in installed_applications():
        if app.end_checkpoint is None:
            continue
        state.begin_transaction()
        try:
            app.end_checkpoint(ctx, state)
        except ExecutionRejected:
            state.rollback_transaction()
            continue
        except BaseException:
            state.rollback_transaction()
            raise
        state.commit_transaction()


def results_root(results: Sequence[EntryResult]) -> bytes:
    """The checkpoint's results as a Merkle tree, committed together with their count."""
    return sized_root(len(results), merkle_root([r.leaf() for r in results]))

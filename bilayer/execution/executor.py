"""Deterministic execution of ordered entries: FINAL (applied) or REJECTED with a reason.

For each entry, in linearized order:

1. author chain: `seq` must be the author's next sequence number and, for `seq > 0`, the
   first parent must be the author's last ordered entry. Otherwise the entry is REJECTED
   (`sequence_conflict`): this is where the loser of an author's fork ends.
2. the author's chain advances (a later business rejection does not block the author);
3. the compliance gate (bans, suspended services, freezes) may refuse it, with its code;
4. the operation's module applies it or raises an `ExecutionRejected` with its code.

Modules register a handler per operation kind; state changes of a rejected entry are
discarded (each handler validates before it writes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .. import codec
from ..genesis import Genesis
from ..keys.address import public_key_from_address
from ..ledger.entry import EntryHeader
from ..ledger.operations import GovExecute, Operation, Transfer, decode_operation
from .errors import ExecutionRejected
from .governance import (
    ExecContext,
    apply_attest,
    apply_cancel,
    apply_execute,
    apply_propose,
    apply_reg_freeze,
    apply_vote,
    compliance_gate,
    init_genesis,
)
from .merkle import merkle_root
from .state import State


class Outcome(StrEnum):
    FINAL = "FINAL"
    REJECTED = "REJECTED"


class SequenceConflict(ExecutionRejected):
    code = "sequence_conflict"


class InsufficientFunds(ExecutionRejected):
    code = "insufficient_funds"


class BalanceOverflow(ExecutionRejected):
    code = "balance_overflow"


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


Handler = Callable[[ExecContext, State, bytes, EntryHeader, Operation], None]

MAX_BALANCE = 2**63 - 1


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
    "gov.propose": apply_propose,
    "gov.vote": apply_vote,
    "gov.execute": apply_execute,
    "gov.cancel": apply_cancel,
    "reg.freeze": apply_reg_freeze,
    "id.attest": apply_attest,
}


def genesis_state(genesis: Genesis) -> State:
    state = State()
    for allocation in genesis.allocations:
        key = public_key_from_address(allocation.address)
        state.set_balance(key, allocation.asset, state.balance(key, allocation.asset) + allocation.amount)
    init_genesis(state, genesis)
    return state


def execute_entry(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader) -> EntryResult:
    next_seq, last = state.author_head(header.author)
    if header.seq != next_seq or (header.seq > 0 and header.parents[0] != last):
        return EntryResult(entry_id, Outcome.REJECTED, SequenceConflict.code)
    state.set_author_head(header.author, next_seq + 1, entry_id)
    handler = HANDLERS.get(header.kind)
    if handler is None:
        return EntryResult(entry_id, Outcome.REJECTED, "unknown_operation")
    try:
        op = decode_operation(header.kind, header.body)
        compliance_gate(ctx, state, header, op)
        handler(ctx, state, entry_id, header, op)
    except ExecutionRejected as exc:
        return EntryResult(entry_id, Outcome.REJECTED, exc.code, exc.cause)
    return EntryResult(entry_id, Outcome.FINAL, "", f"proposal:{op.proposal}" if isinstance(op, GovExecute) else "")


def execute(ctx: ExecContext, state: State, ordered: Sequence[tuple[bytes, EntryHeader]]) -> list[EntryResult]:
    return [execute_entry(ctx, state, entry_id, header) for entry_id, header in ordered]


def results_root(results: Sequence[EntryResult]) -> bytes:
    return merkle_root([r.leaf() for r in results])

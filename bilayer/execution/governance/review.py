"""The review queue: transfers an interception rule holds (HELD) with their funds in escrow,
until a regulator releases or rejects them, or their review window passes.

Keeper of these state keys:

    b"H" + entry id  -> HeldRecord: a transfer held for review, its funds in escrow
    b"Hl"            -> the review queue: sorted (deadline, entry id) of transfers still held
"""

from __future__ import annotations

import bisect

import msgspec

from ... import codec
from ...ledger.entry import EntryHeader
from ...ledger.operations import Operation, RegReview, Transfer
from ..errors import BalanceOverflow, ExecutionRejected, InsufficientFunds
from ..state import Keeper, State
from .context import MAX_BALANCE, ExecContext
from .emergency import Emergencies, NotRegulator
from .freezes import AccountFrozen
from .gate import frozen_by
from .rules import InterceptionRule


class HeldEntryNotFound(ExecutionRejected):
    code = "held_entry_not_found"


class ReviewClosed(ExecutionRejected):
    code = "review_closed"


class ReviewQueueFull(ExecutionRejected):
    code = "review_queue_full"


MAX_HELD = 10_000


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


HELD_QUEUE = b"Hl"


def _held_key(entry_id: bytes) -> bytes:
    return b"H" + entry_id


class ReviewQueue(Keeper):
    __slots__ = ()
    KEYS = ((b"H", 32), (HELD_QUEUE, 0))

    def held(self, entry_id: bytes) -> HeldRecord | None:
        """The hold of `entry_id` in whatever status it ended, or None if it never was held."""
        raw = self.state.get(_held_key(entry_id))
        return None if raw is None else codec.decode(raw, HeldRecord)

    def queue(self) -> list[tuple[int, bytes]]:
        """(deadline, entry id) of the transfers still held, soonest first."""
        raw = self.state.get(HELD_QUEUE)
        return [] if raw is None else codec.decode(raw, list[tuple[int, bytes]])

    def put(self, record: HeldRecord) -> None:
        self.state.set(_held_key(record.entry_id), codec.encode(record))

    def set_queue(self, queue: list[tuple[int, bytes]]) -> None:
        if queue:
            self.state.set(HELD_QUEUE, codec.encode(sorted(queue)))
        else:
            self.state.delete(HELD_QUEUE)


def hold_transfer(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Transfer,
                  rule: InterceptionRule) -> None:
    """Park the transfer with its funds in escrow, so a release cannot fail for want of them."""
    review = ReviewQueue(state)
    queue = review.queue()
    if len(queue) >= MAX_HELD:
        raise ReviewQueueFull(f"{MAX_HELD} transfers already wait for review", rule.cause)
    available = state.balance(header.author, op.asset)
    if available < op.amount:
        raise InsufficientFunds(f"balance {available} {op.asset} < {op.amount}")
    state.set_balance(header.author, op.asset, available - op.amount)
    window = rule.review_ms or ctx.governance.review_ms
    record = HeldRecord(entry_id, header.author, op.to, op.asset, op.amount, rule.rule_id, rule.decision,
                        ctx.time_ms, ctx.time_ms + window)
    review.put(record)
    queue.append((record.deadline_ms, entry_id))
    review.set_queue(queue)


def _close(state: State, record: HeldRecord, status: str, height: int, decided_by: bytes, reason: str) -> None:
    if status == "released":
        received = state.balance(record.to, record.asset) + record.amount
        if received > MAX_BALANCE:
            raise BalanceOverflow()
        state.set_balance(record.to, record.asset, received)
    else:
        state.set_balance(record.author, record.asset, state.balance(record.author, record.asset) + record.amount)
    ReviewQueue(state).put(msgspec.structs.replace(record, status=status, decided_height=height,
                                                   decided_entry=decided_by, reason=reason))


def expire_holds(ctx: ExecContext, state: State) -> list[bytes]:
    """At the start of a checkpoint: undecided holds past their deadline are rejected and
    refunded. Returns the expired entries."""
    review = ReviewQueue(state)
    queue = review.queue()
    due = bisect.bisect_right(queue, (ctx.time_ms, b"\xff" * 33))
    if not due:
        return []
    expired = []
    for _, entry_id in queue[:due]:
        record = review.held(entry_id)
        if record is not None and record.status == "held":
            _close(state, record, "expired", ctx.height, b"", "review deadline passed")
            expired.append(entry_id)
    review.set_queue(queue[due:])
    return expired


def apply_review(ctx: ExecContext, state: State, entry_id: bytes, header: EntryHeader, op: Operation) -> None:
    assert isinstance(op, RegReview)
    if not Emergencies(state).is_regulator(header.author):
        raise NotRegulator("only a regulator decides held transfers")
    review = ReviewQueue(state)
    record = review.held(op.entry)
    if record is None:
        raise HeldEntryNotFound(f"entry {op.entry.hex()} is not held for review")
    if record.status != "held":
        raise ReviewClosed(f"entry {op.entry.hex()} was already {record.status}")
    if op.decision == "release":
        for party in (record.author, record.to):
            cause = frozen_by(state, party, ctx.time_ms)
            if cause:
                raise AccountFrozen("a party of the held transfer is frozen", cause)
    _close(state, record, "released" if op.decision == "release" else "rejected", ctx.height, entry_id, op.reason)
    review.set_queue([item for item in review.queue() if item[1] != op.entry])

"""The base of every execution rejection: a reason code recorded with the REJECTED outcome."""

from __future__ import annotations


class ExecutionRejected(Exception):
    """An entry that is valid on the ledger but breaks a rule of the state machine."""

    code = "rejected"

    def __init__(self, message: str = "", cause: str = "") -> None:
        super().__init__(message or self.code)
        self.cause = cause


class InsufficientFunds(ExecutionRejected):
    code = "insufficient_funds"


class BalanceOverflow(ExecutionRejected):
    code = "balance_overflow"

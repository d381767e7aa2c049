"""Accounts the council froze: transfers from or to them are refused.

Keeper of these state keys:

    b"F" + key  -> frozen by proposal number

A regulator's emergency freeze is the emergency keeper's (`emergency.py`); the gate
consults both (`gate.frozen_by`).
"""

from __future__ import annotations

from ... import codec
from ...keys.address import PUBLIC_KEY_SIZE
from ...ledger.operations import FreezeAccount, UnfreezeAccount
from ..errors import ExecutionRejected
from ..state import Keeper, State
from .actions import ActionSpec, register_action
from .context import ExecContext


class AccountFrozen(ExecutionRejected):
    code = "account_frozen"


FROZEN = b"F"


def frozen_key(account: bytes) -> bytes:
    """Public for proofs: an account proof proves this key against a state root."""
    return FROZEN + account


class Freezes(Keeper):
    __slots__ = ()
    KEYS = ((FROZEN, 32),)

    def decision(self, account: bytes) -> int | None:
        """The proposal that froze `account`, or None. (The gate asks twice per transfer: one
        lookup, no helper.)"""
        raw = self.state.get(FROZEN + account)
        return None if raw is None else codec.decode(raw, int)

    def frozen_accounts(self) -> list[tuple[bytes, int]]:
        """(account, deciding proposal), in key order."""
        return self._decisions(FROZEN, PUBLIC_KEY_SIZE)

    def freeze(self, account: bytes, number: int) -> None:
        self.state.set(frozen_key(account), codec.encode(number))

    def unfreeze(self, account: bytes) -> None:
        self.state.delete(frozen_key(account))


def freeze_account(ctx: ExecContext, state: State, number: int, action: FreezeAccount) -> None:
    Freezes(state).freeze(action.account, number)


def unfreeze_account(ctx: ExecContext, state: State, number: int, action: UnfreezeAccount) -> None:
    Freezes(state).unfreeze(action.account)


register_action(ActionSpec(
    FreezeAccount, "freeze", "freeze an account: transfers from or to it are refused",
    build=lambda o, _: FreezeAccount(o.target_key("freeze")), effect=freeze_account,
    refusals=(AccountFrozen.code,)))
register_action(ActionSpec(
    UnfreezeAccount, "unfreeze", "lift the council's freeze of an account",
    build=lambda o, _: UnfreezeAccount(o.target_key("unfreeze")), effect=unfreeze_account))

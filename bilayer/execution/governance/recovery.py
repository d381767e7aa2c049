"""Asset recovery: a key proven lost or stolen has its balances of the named assets wiped and
reissued to a new address, and is denied service so whoever holds it can do nothing more.

It owns no keys: it moves balances (the state's own accounts) and bans through the identity
keeper. Should a reissue overflow the new account, the whole recovery is refused and, the
entry's state transaction being rolled back, no asset has moved.
"""

from __future__ import annotations

from ...ledger.operations import RecoverAssets
from ..errors import BalanceOverflow
from ..state import State
from .actions import effect
from .context import MAX_BALANCE, ExecContext
from .identity import Identities


@effect(RecoverAssets)
def recover_assets(ctx: ExecContext, state: State, number: int, action: RecoverAssets) -> None:
    for asset in action.assets:
        amount = state.balance(action.lost, asset)
        if amount:
            received = state.balance(action.to, asset) + amount
            if received > MAX_BALANCE:
                raise BalanceOverflow(f"reissuing {asset} would overflow the new account")
            state.set_balance(action.to, asset, received)
            state.set_balance(action.lost, asset, 0)
    Identities(state).ban_key(action.lost, number)

"""Asset recovery: a key proven lost or stolen has its balances of the named assets wiped and
reissued to a new address, and is denied service so whoever holds it can do nothing more.

It owns no keys: it moves balances (the state's own accounts) and bans through the identity
keeper. Should a reissue overflow the new account, the whole recovery is refused and, the
entry's state transaction being rolled back, no asset has moved.
"""

from __future__ import annotations

from ...errors import BadRequest
from ...keys.address import public_key_from_address
from ...ledger.operations import RecoverAssets
from ..errors import BalanceOverflow
from ..state import State
from .actions import ActionSpec, register_action
from .context import MAX_BALANCE, ExecContext
from .identity import Identities, IdentityBanned
from .options import ActionOptions


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


def _recover(o: ActionOptions) -> RecoverAssets:
    lost = o.target_key("recover")
    if not o.to or not o.assets:
        raise BadRequest("--action recover needs --target LOST_ADDRESS, --to NEW_ADDRESS and --asset (repeatable)")
    return RecoverAssets(lost, public_key_from_address(o.to), tuple(o.assets))


register_action(ActionSpec(
    RecoverAssets, "recover", "reissue a lost key's assets to a new address and deny the old key service",
    build=lambda o, _: _recover(o), effect=recover_assets, refusals=(IdentityBanned.code,)))

"""The warehouse's end-of-checkpoint work (`Application.end_checkpoint`): once per
checkpoint, after its last entry, on every node alike, in its own state transaction.

Each step works through its own queue in the keeper, so its cost follows what the
checkpoint changed. Reconciliation runs first (`monitor.reconcile`: the evidence this
checkpoint brought, the device deadlines now due), so its holds and alerts are part of the
state the revaluation of the facilities something touched (`finance.value`) then sees.
"""

from __future__ import annotations

from ...execution.governance.context import ExecContext
from ...execution.state import State
from . import finance, monitor
from .keeper import Keeper


def end_checkpoint(ctx: ExecContext, state: State) -> None:
    keeper = Keeper(state)
    monitor.reconcile(keeper, ctx)
    finance.value(keeper, ctx)

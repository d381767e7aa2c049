"""The warehouse's end-of-checkpoint work (`Application.end_checkpoint`): once per
checkpoint, after its last entry, on every node alike, in its own state transaction.

Each step works through its own queue in the keeper, so its cost follows what the
checkpoint changed: the revaluation of the facilities something touched (`finance.value`).
"""

from __future__ import annotations

from ...execution.governance.context import ExecContext
from ...execution.state import State
from . import finance
from .keeper import Keeper


def end_checkpoint(ctx: ExecContext, state: State) -> None:
    keeper = Keeper(state)
    finance.value(keeper, ctx)

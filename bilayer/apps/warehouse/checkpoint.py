"""The warehouse's end-of-checkpoint work, once per checkpoint on every node alike.

Reconciliation runs first (`monitor.reconcile`): its holds and alerts are then part of the
state whatever runs after it in the same checkpoint.
"""

from __future__ import annotations

from ...execution.governance.context import ExecContext
from ...execution.state import State
from . import monitor
from .keeper import Keeper


def end_checkpoint(ctx: ExecContext, state: State) -> None:
    monitor.reconcile(Keeper(state), ctx)

"""The effect on state of each governance action, registered by the power that owns it.

`gov.execute` carries out a passed proposal by looking its action's type up here: the
executor knows no action by name, and each power module declares the effects of its own
actions beside the keeper they write through.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, TypeVar

from ...ledger.operations import GovAction
from ..state import State
from .context import ExecContext

Effect = Callable[[ExecContext, State, int, Any], None]
EffectT = TypeVar("EffectT", bound=Effect)

_EFFECTS: dict[type, Effect] = {}


def effect(action_type: type) -> Callable[[EffectT], EffectT]:
    """Register `action_type`'s effect: (context, state, deciding proposal, action)."""

    def register(function: EffectT) -> EffectT:
        if action_type in _EFFECTS:
            raise ValueError(f"{action_type.__name__} has an effect already")
        _EFFECTS[action_type] = function
        return function

    return register


def carry_out(ctx: ExecContext, state: State, number: int, action: GovAction) -> None:
    """Apply a decided action; it may raise an `ExecutionRejected` (then nothing of it stays:
    the entry's transaction is rolled back)."""
    _EFFECTS[type(action)](ctx, state, number, action)


def actions_without_effect() -> set[type]:
    return set(typing.get_args(GovAction)) - set(_EFFECTS)

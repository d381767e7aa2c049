"""The registry of governance actions: one `ActionSpec` per action, declared by the power
that owns it, beside the keeper it writes through.

An action's wire struct, with its stateless `check` and its JSON `view`, is layer 1's
(`ledger/operations.py`: entries must decode without execution). Everything else about it
is its spec: the name users call it by, who may propose it, how it is built from a user's
options, its effect on state, and the refusals it can cause (the reason codes whose cause
names a decision to take it). The executor, the rule dry-run, the API, drafts, the CLI and
the OpenAPI document look actions up here; none of them lists them.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ...genesis import ChainParams
from ...ledger.operations import GovAction
from ..state import State
from .context import ExecContext
from .options import ActionOptions

Effect = Callable[[ExecContext, State, int, Any], None]
Build = Callable[[ActionOptions, ChainParams], Any]


class Proposer(Enum):
    """Who may propose an action (by `gov.propose`); it passes only by the council's vote."""

    COUNCIL = "council"


@dataclass(frozen=True)
class ActionSpec:
    struct: type  # the wire struct (ledger/operations.py), a member of `GovAction`
    name: str  # what users call it: `bilayer gov propose --action NAME`, the API's `action`
    summary: str  # one line, for help texts and the OpenAPI document
    build: Build  # the struct from a user's options (and the parameters in force)
    effect: Effect  # (context, state, deciding proposal, action): applies it or raises ExecutionRejected
    refusals: tuple[str, ...] = ()  # reason codes whose cause can name a decision to take this action
    proposer: Proposer = Proposer.COUNCIL


_BY_TYPE: dict[type, ActionSpec] = {}
_BY_NAME: dict[str, ActionSpec] = {}


def register_action(spec: ActionSpec) -> ActionSpec:
    if spec.struct not in typing.get_args(GovAction):
        raise ValueError(f"{spec.struct.__name__} is not a member of GovAction: entries could not carry it")
    if spec.struct in _BY_TYPE or spec.name in _BY_NAME:
        raise ValueError(f"action {spec.name!r} ({spec.struct.__name__}) is registered twice")
    _BY_TYPE[spec.struct] = _BY_NAME[spec.name] = spec
    return spec


def spec_of(action: GovAction) -> ActionSpec:
    return _BY_TYPE[type(action)]


def spec_named(name: str) -> ActionSpec | None:
    return _BY_NAME.get(name)


def action_specs() -> list[ActionSpec]:
    """Every registered action, by name."""
    return [_BY_NAME[name] for name in sorted(_BY_NAME)]


def carry_out(ctx: ExecContext, state: State, number: int, action: GovAction) -> None:
    """Apply a decided action; it may raise an `ExecutionRejected` (then nothing of it stays:
    the entry's transaction is rolled back)."""
    spec_of(action).effect(ctx, state, number, action)


def unregistered_actions() -> set[type]:
    return set(typing.get_args(GovAction)) - set(_BY_TYPE)

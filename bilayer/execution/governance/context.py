"""What an entry's execution may depend on besides state, shared by every power."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ...genesis import GovernanceParams
from ...ledger.entry import EntryHeader
from ...ledger.operations import Operation
from ..state import State

MAX_BALANCE = 2**63 - 1
NO_KEYWORDS: Mapping[bytes, tuple[str, ...]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ExecContext:
    """The checkpoint an entry is in, and the content keywords its validators found in its data
    entries' payloads (execution never reads a payload: a node may no longer hold it)."""

    height: int
    time_ms: int
    governance: GovernanceParams
    keywords: Mapping[bytes, tuple[str, ...]] = field(default_factory=lambda: NO_KEYWORDS)


# A module's handler of one operation kind: applies it, or raises an `ExecutionRejected`.
Handler = Callable[[ExecContext, State, bytes, EntryHeader, Operation], None]


def decision_cause(number: int) -> str:
    return f"proposal:{number}"

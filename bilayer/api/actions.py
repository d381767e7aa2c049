"""Management actions from user input (CLI options, API queries) to typed `GovAction`s, by
the registry of action specs (`execution/governance/actions.py`): nothing here names an
action."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import BadRequest
from ..execution.governance import actions as registry
from ..execution.governance.options import ActionOptions
from ..genesis import ChainParams
from ..ledger.operations import GovAction

ACTIONS = tuple(spec.name for spec in registry.action_specs())


def make_action(action: str, o: ActionOptions, current_params: ChainParams | None = None) -> GovAction:
    """`current_params`: the parameters in force, which chain-params changes only where told."""
    spec = registry.spec_named(action)
    if spec is None:
        raise BadRequest(f"action is one of {', '.join(ACTIONS)}")
    made: GovAction = spec.build(o, current_params or ChainParams())
    return made


def options_from_query(query: Mapping[str, str], getall: Callable[[str, list[str]], list[str]]) -> ActionOptions:
    """The same options from an HTTP query (repeat a name for a list; `param=NAME=VALUE`)."""
    values: dict[str, Any] = {}
    for name, spec in ActionOptions.__dataclass_fields__.items():
        if name == "params":
            changes = {}
            for text in getall("param", []):
                key, _, raw = text.partition("=")
                changes[key] = _int(raw, "param")
            values[name] = changes
        elif spec.type in ("tuple[str, ...]",):
            values[name] = tuple(getall(name, []))
        elif name in query:
            raw = query[name]
            values[name] = _int(raw, name) if spec.type in ("int", "int | None") else raw
    return ActionOptions(**values)


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} is an integer") from None

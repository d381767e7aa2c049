"""The chain parameters: entry limits and proof of work, changed by proposal.

Keeper of these state keys:

    b"Np"  -> the parameters in force (genesis' until a proposal replaces them)
    b"Nl"  -> the loosest parameters the chain ever had (what old entries were checked by)
"""

from __future__ import annotations

import msgspec

from ... import codec
from ...errors import BadRequest
from ...genesis import ChainParams, Genesis
from ...ledger.operations import SetChainParams
from ..state import Keeper, State
from .actions import ActionSpec, register_action
from .context import ExecContext
from .options import ActionOptions

CHAIN_PARAMS = b"Np"
LOOSEST_PARAMS = b"Nl"


class Params(Keeper):
    __slots__ = ()
    KEYS = ((CHAIN_PARAMS, 0), (LOOSEST_PARAMS, 0))

    def current(self) -> ChainParams:
        """The parameters in force (genesis' until a proposal replaces them)."""
        raw = self.state.get(CHAIN_PARAMS) or b""
        cached = self.state.derived.get("params")
        if cached is not None and cached[0] == raw:
            params: ChainParams = cached[1]
            return params
        params = codec.decode(raw, ChainParams) if raw else ChainParams()
        self.state.derived["params"] = (raw, params)
        return params

    def loosest(self) -> ChainParams:
        """Entries accepted under any earlier parameters must stay acceptable to a node that
        syncs later, or nodes would disagree on the DAG."""
        raw = self.state.get(LOOSEST_PARAMS)
        return self.current() if raw is None else codec.decode(raw, ChainParams)

    def in_force(self) -> ChainParams | None:
        """The parameters execution applies: None in a bare state, not one made from a genesis."""
        return None if self.state.get(CHAIN_PARAMS) is None else self.current()

    def replace(self, params: ChainParams) -> None:
        loosest = _looser(self.loosest(), params)
        self.state.set(CHAIN_PARAMS, codec.encode(params))
        self.state.set(LOOSEST_PARAMS, codec.encode(loosest))


def _looser(a: ChainParams, b: ChainParams) -> ChainParams:
    """Each limit at its more permissive value: the least work, the largest sizes."""
    return ChainParams(**{name: (min if name == "pow_bits" else max)(getattr(a, name), getattr(b, name))
                          for name in ChainParams.__struct_fields__})


def init_genesis(state: State, genesis: Genesis) -> None:
    state.set(CHAIN_PARAMS, codec.encode(genesis.params))


def set_chain_params(ctx: ExecContext, state: State, number: int, action: SetChainParams) -> None:
    Params(state).replace(action.params)


def _chain_params(o: ActionOptions, current: ChainParams) -> SetChainParams:
    """Changes the parameters in force only where told."""
    unknown = sorted(set(o.params) - set(ChainParams.__struct_fields__))
    if unknown or not o.params:
        raise BadRequest(f"--action chain-params needs --param NAME=VALUE with NAME one of"
                         f" {', '.join(ChainParams.__struct_fields__)}")
    return SetChainParams(msgspec.structs.replace(current, **o.params))


register_action(ActionSpec(
    SetChainParams, "chain-params", "new chain parameters (entry limits, proof of work) from the next checkpoint",
    build=_chain_params, effect=set_chain_params))

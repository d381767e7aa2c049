"""Layer 2 and state routes: finalized checkpoints, accounts as of the latest checkpoint, and
the validator sets with their history."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from msgspec import UNSET

from ...consensus.validators import ValidatorSet
from ...errors import BadRequest, NotFound
from ...execution.governance.validator_set import VALIDATOR_CHANGE_DELAY
from ...keys.address import address_from_public_key, public_key_from_address
from .. import responses as r
from ..context import MAX_LIST, NODE, finality_chain, int_query, json_response
from ..spec import ADDRESS, Route, limit_query, path_param, query
from ..spec import int_query as int_param
from ..views import checkpoint_view

if TYPE_CHECKING:
    from ..nodeview import EpochView


async def get_checkpoint(request: web.Request) -> web.Response:
    node = request.app[NODE]
    chain = finality_chain(node)
    text = request.match_info["height"]
    if text == "latest":
        height = chain.committed.height  # the chain in memory may be one ahead, still being written
    else:
        try:
            height = int(text)
        except ValueError:
            raise BadRequest("a checkpoint height is a positive integer or 'latest'") from None
    if height < 1 or height > 2**62:
        raise NotFound(f"no checkpoint at height {height}" if height >= 0 else "heights start at 1")
    stored = node.storage.checkpoint(height)
    if stored is None:
        raise NotFound(f"no checkpoint at height {height} yet (this node is at {chain.height})")
    with_entries = request.query.get("entries", "0") in ("1", "true", "yes")
    return json_response(checkpoint_view(stored, node.storage.results_at(height) if with_entries else None))


async def get_account(request: web.Request) -> web.Response:
    node = request.app[NODE]
    address = request.match_info["address"]
    public_key = public_key_from_address(address)
    chain = finality_chain(node)
    next_seq, last = chain.state.author_head(public_key)
    return json_response(r.Account(address=address, height=chain.height, balances=chain.state.balances_of(public_key),
                                   next_seq=next_seq, last_entry=last.hex() if last else None,
                                   state_root=chain.state_root.hex()))


def _members(validators: ValidatorSet) -> list[r.Validator]:
    return [r.Validator(name=v.name, public_key=v.public_key.hex(), address=address_from_public_key(v.public_key),
                        power=v.power) for v in validators.members]


def _quorum(validators: ValidatorSet) -> int:
    return validators.total_power * 2 // 3 + 1


def _change_view(epoch: EpochView) -> r.ValidatorChange:
    change, validators = epoch.change, epoch.validators
    return r.ValidatorChange(change=change.number, height=change.height,
                             executed_height=change.executed_height or None, proposals=list(change.proposals),
                             validators=_members(validators), total_power=validators.total_power,
                             max_faulty=validators.max_faulty, quorum_power=_quorum(validators))


async def get_validators(request: web.Request) -> web.Response:
    """The set that votes on the next height (or governed `?height=`), and since when."""
    node = request.app[NODE]
    chain = node.chain
    asked = int_query(request, "height", 0, 1, 2**62) if "height" in request.query else None
    if chain is None:
        return json_response(r.Validators(validators=[], total_power=0, max_faulty=0))
    height = asked if asked is not None else chain.height + 1
    if not chain.knows_validators_of(height):
        raise NotFound(f"the validator set of height {height} is not decided yet (this node is at height"
                       f" {chain.height}; sets are known {VALIDATOR_CHANGE_DELAY} heights ahead)")
    epoch = chain.epoch_at(height)
    following = chain.epoch_at(chain.height + VALIDATOR_CHANGE_DELAY)
    validators = epoch.validators
    return json_response(r.Validators(
        height=height, since_height=epoch.height, proposals=list(epoch.change.proposals),
        validators=_members(validators), total_power=validators.total_power, max_faulty=validators.max_faulty,
        quorum_power=_quorum(validators), next=_change_view(following) if following.height > height else UNSET))


async def get_validator_history(request: web.Request) -> web.Response:
    """Every validator set change, oldest first: the height it governs from and the proposals behind it."""
    node = request.app[NODE]
    chain = finality_chain(node)
    after = int_query(request, "after", 0, 0, 2**62)
    limit = int_query(request, "limit", 100, 1, MAX_LIST)
    epochs = [e for e in chain.epochs if e.change.number > after][:limit]
    return json_response(r.ValidatorHistory(height=chain.height, changes=[_change_view(e) for e in epochs]))


ROUTES = (
    Route("GET", "/v1/checkpoints/{height}", get_checkpoint, "A finalized checkpoint with its commit certificate",
          {200: r.CheckpointView}, ("bad_request", "not_found"),
          description="404 when there is no checkpoint at that height yet, or when the chain has no validators"
                      " (nothing is finalized).",
          params=(path_param("height", {"oneOf": [{"type": "integer", "minimum": 1},
                                                  {"type": "string", "enum": ["latest"]}]},
                             "a height (from 1) or 'latest'"),
                  query("entries", {"type": "string", "enum": ["0", "1", "true", "yes"], "default": "0"},
                        "1 (or true, yes) to list the entries it ordered with their outcomes"))),
    Route("GET", "/v1/accounts/{address}", get_account,
          "An account's finalized balances and author chain, at the latest checkpoint", {200: r.Account},
          ("invalid_address", "not_found"),
          description="404 when the chain has no validators (there is no finalized state).", params=(ADDRESS,)),
    Route("GET", "/v1/validators", get_validators,
          "The validator set: keys, voting power, quorum, and the height it took effect", {200: r.Validators},
          ("bad_request", "not_found"),
          description="The set that votes on the next height, or the one that governed `height`. 404 for a height"
                      " whose set is not decided yet (sets are known two heights ahead).",
          params=(int_param("height", 1),)),
    Route("GET", "/v1/validators/history", get_validator_history,
          "Every validator set change, oldest first, with its height and the proposals behind it",
          {200: r.ValidatorHistory}, ("bad_request", "not_found"),
          params=(int_param("after", 0, description="list the changes numbered after this one"), limit_query())),
)

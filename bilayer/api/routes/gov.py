"""Governance and compliance routes: proposals and the council, what the gate enforces, the
review queue, chain parameters, identities, and a dry run of a proposed action."""

from __future__ import annotations

import msgspec
from aiohttp import web

from ... import codec
from ...errors import BadRequest, BilayerError, NotFound
from ...execution.errors import ExecutionRejected
from ...execution.governance.actions import action_specs
from ...execution.governance.context import ExecContext
from ...execution.governance.council import Council, ProposalNotFound
from ...execution.governance.gate import dry_run
from ...execution.governance.identity import Identities
from ...execution.governance.params import Params
from ...execution.governance.review import ReviewQueue
from ...execution.governance.rules import keywords_in
from ...keys.address import address_from_public_key, public_key_from_address
from ...ledger.entry import EntryHeader
from ...ledger.operations import IDENTITY_LEVELS, INTERCEPTION_OUTCOMES, GovPropose, SetContentRule
from .. import responses as r
from ..actions import ACTIONS, make_action, options_from_query
from ..context import MAX_LIST, NODE, finality_chain, int_query, json_response, now_ms
from ..spec import ADDRESS, Param, Route, limit_query, path_param, query
from ..spec import int_query as int_param
from ..views import compliance, council_members, proposal_view, review_queue_view

PROPOSAL_STATUSES = ("voting", "passed", "rejected", "executed", "cancelled")
DRY_RUN_SCAN = 200_000


async def list_proposals(request: web.Request) -> web.Response:
    node = request.app[NODE]
    chain = finality_chain(node)
    wanted = request.query.get("status")
    if wanted is not None and wanted not in PROPOSAL_STATUSES:
        raise BadRequest(f"status is one of {', '.join(PROPOSAL_STATUSES)}")
    council = Council(chain.state)
    views = [proposal_view(council.proposal(n), chain.state, node.genesis.governance, now_ms())
             for n in range(council.proposal_count(), 0, -1)]
    if wanted is not None:
        views = [v for v in views if v.status == wanted]
    return json_response(r.Proposals(height=chain.height, proposals=views[:MAX_LIST]))


async def get_proposal(request: web.Request) -> web.Response:
    node = request.app[NODE]
    chain = finality_chain(node)
    try:
        number = int(request.match_info["number"])
    except ValueError:
        raise BadRequest("a proposal number is a positive integer") from None
    if not 1 <= number <= 2**62:
        raise BadRequest("a proposal number is a positive integer")
    council = Council(chain.state)
    try:
        record = council.proposal(number)
    except ProposalNotFound:
        raise NotFound(f"no proposal {number} (as of height {chain.height})") from None
    votes = []
    for member, weight in council.members():
        choice = council.vote_of(number, member)
        if choice is not None:
            votes.append(r.VoteView(voter=address_from_public_key(member), weight=weight, choice=choice))
    affected = node.storage.results_caused_by(f"proposal:{number}", MAX_LIST)
    return json_response(msgspec.structs.replace(
        proposal_view(record, chain.state, node.genesis.governance, now_ms()), votes=votes, height=chain.height,
        affected=[r.AffectedEntry(id=x.entry_id.hex(), height=x.height, kind=x.kind, outcome=x.outcome,
                                  reason=x.code or None) for x in affected]))


async def gov_dry_run(request: web.Request) -> web.Response:
    """Which already-final entries a proposed action would have refused, before anyone votes."""
    node = request.app[NODE]
    chain = finality_chain(node)
    query_ = request.query
    action_name = query_.get("action", "")
    if action_name not in ACTIONS:
        raise BadRequest(f"action is one of {', '.join(ACTIONS)}")
    options = options_from_query(query_, query_.getall)
    for name in ("min_level", "max_level"):
        level = getattr(options, name)
        if level is not None and level not in IDENTITY_LEVELS:
            raise BadRequest(f"{name} is one of {', '.join(IDENTITY_LEVELS)}")
    if options.outcome not in INTERCEPTION_OUTCOMES:
        raise BadRequest("outcome is reject or hold")
    try:
        params = Params(chain.state).current()
        action = make_action(action_name, options, params)
        GovPropose(action=action, reason="dry run", legal_ref="").check(0, params)
    except (TypeError, BilayerError) as exc:
        raise BadRequest(f"this action is not valid: {exc}") from None
    since = int_query(request, "since", 1, 1, 2**62)
    limit = int_query(request, "limit", 100, 1, MAX_LIST)
    scanned = node.storage.final_results_since(since, DRY_RUN_SCAN)
    headers = []
    for result in scanned:
        stored = node.storage.get(result.entry_id)
        if stored is not None:
            headers.append((result.entry_id, codec.decode(stored.signed.header, EntryHeader), result.height))
    found: dict[bytes, tuple[str, ...]] = {}
    if isinstance(action, SetContentRule) and action.keyword:  # the keyword is looked for in the stored payloads
        for entry_id, header, _ in headers:
            if header.kind == "data":
                hits = keywords_in(node.ingest.payload_of(entry_id) or b"", (action.keyword.lower(),))
                if hits:
                    found[entry_id] = hits
    context = ExecContext(chain.height + 1, now_ms(), node.genesis.governance, found)
    try:
        refused = dry_run(chain.state, action, context, [(i, h) for i, h, _ in headers])
    except ExecutionRejected as exc:
        raise BadRequest(f"this action cannot be applied now: {exc.code}") from None
    heights = {i: height for i, _, height in headers}
    authors = {i: h.author for i, h, _ in headers}
    kinds = {i: h.kind for i, h, _ in headers}
    return json_response(r.DryRun(
        height=chain.height, since=since, examined=len(headers), truncated=len(scanned) >= DRY_RUN_SCAN,
        would_refuse=len(refused),
        entries=[r.DryRunEntry(id=i.hex(), height=heights[i], kind=kinds[i], author=address_from_public_key(authors[i]),
                               reason=code) for i, code in refused[:limit]]))


async def get_council(request: web.Request) -> web.Response:
    node = request.app[NODE]
    chain = finality_chain(node)
    names = {bytes.fromhex(m.public_key): m.name for m in node.genesis.council}
    return json_response(r.Council(height=chain.height, members=council_members(chain.state, names),
                                   rules=msgspec.to_builtins(node.genesis.governance)))


async def get_compliance(request: web.Request) -> web.Response:
    node = request.app[NODE]
    chain = finality_chain(node)
    return json_response(compliance(chain.state, chain.height, now_ms(), MAX_LIST))


async def get_review_queue(request: web.Request) -> web.Response:
    """Transfers held for review, soonest deadline first."""
    node = request.app[NODE]
    chain = finality_chain(node)
    limit = int_query(request, "limit", 100, 1, MAX_LIST)
    queue = ReviewQueue(chain.state).queue()
    return json_response(r.ReviewQueue(height=chain.height, count=len(queue),
                                       held=review_queue_view(chain.state, limit)))


async def get_params(request: web.Request) -> web.Response:
    """The chain parameters in force, and the loosest ever (what old entries were admitted by)."""
    node = request.app[NODE]
    chain = finality_chain(node)
    params = Params(chain.state)
    return json_response(r.ChainParams(height=chain.height, params=msgspec.to_builtins(params.current()),
                                       loosest=msgspec.to_builtins(params.loosest())))


async def get_identity(request: web.Request) -> web.Response:
    """An account without an attested identity is an ordinary answer, not an error: `identity` is null."""
    node = request.app[NODE]
    address = request.match_info["address"]
    public_key = public_key_from_address(address)
    chain = finality_chain(node)
    identities = Identities(chain.state)
    record = identities.identity_of(public_key)
    if record is None:
        return json_response(r.Identity(address=address, identity=None, height=chain.height))
    return json_response(r.Identity(
        address=address, identity=record.identity.hex(), level=record.level, expires_ms=record.expires_ms,
        expired=record.expires_ms <= now_ms(), provider=address_from_public_key(record.provider),
        entry=record.entry_id.hex(), identity_banned=identities.identity_ban(record.identity) is not None,
        height=chain.height))


def _dry_run_params() -> tuple[Param, ...]:
    specs = action_specs()
    strings = ("rule_id", "asset", "max_level", "outcome", "payload_hash", "keyword", "media_type", "reason_code",
               "to")
    return (
        query("action", {"type": "string", "enum": [s.name for s in specs]},
              "; ".join(f"`{s.name}`: {s.summary}" for s in specs), required=True),
        *(query(name, {"type": "string"}) for name in ("target", "service", "identity", "min_level")),
        int_param("above", 0), int_param("emergency", 1),
        *(query(name, {"type": "string"}) for name in strings),
        *(int_param(name, 0) for name in ("max_size", "review_ms", "weight")),
        *(Param(name, "query", {}, repeated=True) for name in ("counterparties", "entries", "assets")),
        Param("param", "query", {}, "chain-params: NAME=VALUE, repeatable", repeated=True),
        int_param("since", 1), limit_query(),
    )


ROUTES = (
    Route("GET", "/v1/gov/proposals", list_proposals,
          "Council proposals, newest first, with tallies and status as of now", {200: r.Proposals},
          ("bad_request", "not_found"),
          params=(query("status", {"type": "string", "enum": list(PROPOSAL_STATUSES)}),)),
    Route("GET", "/v1/gov/proposals/{number}", get_proposal,
          "One proposal: action, reason, legal reference, tally, votes, timelock", {200: r.Proposal},
          ("bad_request", "not_found"), params=(path_param("number", {"type": "integer", "minimum": 1}),)),
    Route("GET", "/v1/gov/council", get_council,
          "Council members (address, genesis name or null, weight), and the rules decisions follow",
          {200: r.Council}, ("not_found",)),
    Route("GET", "/v1/compliance", get_compliance,
          "Freezes, bans, suspended services, application operators and the services they paused, identity"
          " providers, banned identities, identity rules, interception and content rules, the review queue,"
          " redactions and emergencies, each with the decision behind it", {200: r.Compliance}, ("not_found",)),
    Route("GET", "/v1/compliance/review", get_review_queue,
          "Transfers held for review by an interception rule, soonest deadline first; a regulator decides each"
          " with a `reg.review` entry", {200: r.ReviewQueue}, ("bad_request", "not_found"),
          params=(limit_query(),)),
    Route("GET", "/v1/params", get_params,
          "The chain parameters in force (changed by proposal), and the loosest the chain ever had, which peers'"
          " older entries are checked against", {200: r.ChainParams}, ("not_found",)),
    Route("GET", "/v1/gov/dry-run", gov_dry_run,
          "Which already-final entries a proposed action would have refused (nothing is written); identities and"
          " other rules are taken as they are now", {200: r.DryRun}, ("bad_request", "not_found"),
          params=_dry_run_params()),
    Route("GET", "/v1/identities/{address}", get_identity,
          "The identity attested for an address: id, level, expiry, provider; `identity` is null when none is"
          " attested", {200: r.Identity}, ("invalid_address", "not_found"), params=(ADDRESS,)),
)

"""Entry drafts for clients that hold a key but no canonical encoder (the web console).

`POST /v1/entries/draft` turns an operation given as JSON into the exact header bytes an
author signs: the next sequence number, parents from the tips, the payload hash and a
proof-of-work stamp. The node never sees the key. The client recomputes the id from the
bytes (SHA-256) and checks the decoded header before it signs, so a node that lies can
only get its lie refused, never signed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from .. import codec
from ..errors import BadRequest
from ..execution.governance.options import ActionOptions, parse_hex32, parse_key
from ..genesis import ChainParams
from ..keys.address import address_from_public_key
from ..ledger.dag import Dag
from ..ledger.entry import entry_id, stamped_header
from ..ledger.operations import (
    REVIEW_DECISIONS,
    Data,
    GovCancel,
    GovExecute,
    GovPropose,
    GovVote,
    Operation,
    RegFreeze,
    RegReview,
    Transfer,
)
from .actions import ACTIONS, make_action

MAX_DRAFT_PARENTS = 4  # the author's previous entry and a few tips, as the CLI picks them


class DraftRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`author`: an address or a public key in hex; `op`: the operation's fields as JSON;
    `payload`: text carried as the payload (a memo, or the data of a `data` entry)."""

    author: str
    kind: str
    op: dict[str, Any]
    payload: str = ""


class _TransferFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    to: str
    amount: int
    asset: str = "BLY"


class _DataFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    media_type: str = "text/plain"


class _ProposalNumber(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    proposal: int


class _VoteFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    proposal: int
    choice: str


class _ReviewFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    entry: str
    decision: str
    reason: str


class _FreezeFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    account: str
    reason: str
    legal_ref: str = ""


DRAFT_KINDS = ("transfer", "data", "gov.propose", "gov.vote", "gov.execute", "gov.cancel", "reg.review",
               "reg.freeze")


def _fields(op: dict[str, Any], shape: type[Any], kind: str) -> Any:
    try:
        return msgspec.convert(op, shape)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"op of a {kind} entry: {exc}") from None



def operation_from_json(kind: str, op: dict[str, Any], params: ChainParams) -> Operation:
    """The typed operation a user described; governance actions read the CLI's options (`ActionOptions`)."""
    if kind == "transfer":
        t = _fields(op, _TransferFields, kind)
        return Transfer(asset=t.asset, amount=t.amount, to=parse_key(t.to))
    if kind == "data":
        return Data(media_type=_fields(op, _DataFields, kind).media_type)
    if kind == "gov.vote":
        v = _fields(op, _VoteFields, kind)
        return GovVote(proposal=v.proposal, choice=v.choice)
    if kind in ("gov.execute", "gov.cancel"):
        number = _fields(op, _ProposalNumber, kind).proposal
        return GovExecute(proposal=number) if kind == "gov.execute" else GovCancel(proposal=number)
    if kind == "reg.review":
        r = _fields(op, _ReviewFields, kind)
        if r.decision not in REVIEW_DECISIONS:
            raise BadRequest("decision is release or reject")
        return RegReview(entry=parse_hex32(r.entry, "an entry id"), decision=r.decision, reason=r.reason)
    if kind == "reg.freeze":
        f = _fields(op, _FreezeFields, kind)
        return RegFreeze(account=parse_key(f.account), reason=f.reason, legal_ref=f.legal_ref)
    if kind == "gov.propose":
        return _proposal(op, params)
    raise BadRequest(f"kind is one of {', '.join(DRAFT_KINDS)}")


def _proposal(op: dict[str, Any], params: ChainParams) -> GovPropose:
    fields = dict(op)
    action = fields.pop("action", None)
    reason = fields.pop("reason", None)
    legal_ref = fields.pop("legal_ref", "")
    if action not in ACTIONS:
        raise BadRequest(f"op.action is one of {', '.join(ACTIONS)}")
    if not isinstance(reason, str) or not isinstance(legal_ref, str):
        raise BadRequest("op.reason and op.legal_ref are strings")
    options = _fields(fields, ActionOptions, "gov.propose")
    try:
        made = make_action(action, options, params)
    except (TypeError, KeyError) as exc:
        raise BadRequest(f"this action is not valid: {exc}") from None
    return GovPropose(action=made, reason=reason, legal_ref=legal_ref)


def choose_parents(dag: Dag, head: bytes | None, genesis_root: bytes, max_parents: int) -> list[bytes]:
    """The author's previous entry first (the format requires it), then tips, as the CLI does."""
    parents = [head] if head is not None else []
    for tip in sorted(dag.tips):
        if len(parents) >= min(MAX_DRAFT_PARENTS, max_parents):
            break
        if tip not in parents:
            parents.append(tip)
    return parents or [genesis_root]


async def make_draft(request: DraftRequest, dag: Dag, chain_id: str, genesis_root: bytes,
                     params: ChainParams) -> dict[str, Any]:
    author = parse_key(request.author)
    op = operation_from_json(request.kind, request.op, params)
    payload = request.payload.encode()
    op.check(len(payload), params)
    next_seq, head = dag.next_seq(author)
    parents = choose_parents(dag, head, genesis_root, params.max_parents)
    time_ms = int(time.time() * 1000)
    # the stamp costs 2**pow_bits hashes: off the event loop, so the node keeps serving meanwhile
    header = await asyncio.to_thread(
        lambda: stamped_header(author=author, chain_id=chain_id, seq=next_seq, parents=parents, op=op,
                               payload=payload, time_ms=time_ms, pow_bits=params.pow_bits))
    return {
        "id": entry_id(header).hex(),
        "header": header.hex(),
        "author": address_from_public_key(author),
        "chain": chain_id,
        "seq": next_seq,
        "parents": [p.hex() for p in parents],
        "kind": op.KIND,
        "op": op.view(),
        "payload_hash": codec.sha256(payload).hex(),
        "payload_size": len(payload),
        "pow_bits": params.pow_bits,
        "time_ms": time_ms,
    }

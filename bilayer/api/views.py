"""Ledger objects as the API answers them (`responses.py`): ids in hex, keys as addresses,
bytes in base64. Each view reads through a keeper's typed reads, never raw state keys."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET

from .. import codec
from ..consensus.messages import FinalizedCheckpoint
from ..execution.governance.council import Council, ProposalRecord, effective
from ..execution.governance.emergency import Emergencies, EmergencyRecord
from ..execution.governance.freezes import Freezes
from ..execution.governance.identity import Identities
from ..execution.governance.redaction import Redactions
from ..execution.governance.review import HeldRecord, ReviewQueue
from ..execution.governance.rules import Rules
from ..execution.governance.services import Services
from ..execution.state import State
from ..genesis import GovernanceParams
from ..keys.address import address_from_public_key
from ..ledger.entry import EntryHeader, SignedEntry, entry_id
from ..ledger.operations import GovPropose, decode_operation
from . import responses as r

if TYPE_CHECKING:
    from ..node.storage import ForkEvidence, StoredCheckpoint, StoredEntry, StoredResult


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def entry_view(stored: StoredEntry, result: StoredResult | None, *, review: r.HeldView | None = None,
               with_payload: bool = True) -> r.Entry:
    """An entry with its lifecycle: PENDING (stored, not yet ordered), then FINAL, REJECTED or
    HELD (then `review` says what became of it). A deleted payload shows as its tombstone."""
    signed: SignedEntry = stored.signed
    header = codec.decode(signed.header, EntryHeader)
    ordered = result is not None
    return r.Entry(
        id=entry_id(signed.header).hex(), chain=header.chain, author=address_from_public_key(header.author),
        seq=header.seq, parents=[p.hex() for p in header.parents], time_ms=header.time_ms, kind=header.kind,
        op=decode_operation(header.kind, header.body).view(), payload_hash=header.payload_hash.hex(),
        payload_size=header.payload_size, nonce=header.nonce.hex(), signature=signed.signature.hex(),
        header_bytes=b64(signed.header),
        payload=b64(signed.payload) if with_payload and stored.tombstone is None else UNSET,
        tombstone=stored.tombstone if stored.tombstone is not None else UNSET,
        review=review if review is not None else UNSET,
        status=result.outcome if result is not None else "PENDING",  # type: ignore[arg-type]
        height=result.height if result is not None else UNSET,
        index=result.position if result is not None else UNSET,
        reason=(result.code or None) if ordered and result is not None else UNSET,
        cause=(result.cause or None) if ordered and result is not None else UNSET,
        position=stored.seqno, received_ms=stored.received_ms,
    )


def checkpoint_view(stored: StoredCheckpoint, results: list[StoredResult] | None = None) -> r.CheckpointView:
    finalized = codec.decode(stored.finalized, FinalizedCheckpoint)
    checkpoint, certificate = finalized.checkpoint, finalized.certificate
    return r.CheckpointView(
        height=checkpoint.height, id=stored.id.hex(), round=certificate.round, prev_id=checkpoint.prev_id.hex(),
        proposer=checkpoint.proposer.hex(), frontier=[f.hex() for f in checkpoint.frontier],
        prev_state_root=checkpoint.state_root.hex(), prev_results_root=checkpoint.results_root.hex(),
        time_ms=checkpoint.time_ms, state_root=stored.state_root.hex(), results_root=stored.results_root.hex(),
        entry_count=stored.entry_count,
        certificate=r.Certificate(height=certificate.height, round=certificate.round,
                                  value_id=certificate.value_id.hex(),
                                  signatures=[r.Signature(validator=s.validator.hex(), signature=s.signature.hex())
                                              for s in certificate.signatures]),
        finalized=b64(stored.finalized),
        entries=UNSET if results is None else [
            r.OrderedEntry(id=x.entry_id.hex(), outcome=x.outcome, reason=x.code or None,  # type: ignore[arg-type]
                           cause=x.cause or None) for x in results],
    )


def fork_view(evidence: ForkEvidence) -> r.Fork:
    return r.Fork(kind="fork", author=address_from_public_key(evidence.author), seq=evidence.seq,
                  detected_ms=evidence.detected_ms,
                  entries=[r.ForkEntry(id=entry_id(s.header).hex(), header_bytes=b64(s.header),
                                       signature=s.signature.hex()) for s in (evidence.first, evidence.second)])


def proposal_view(record: ProposalRecord, state: State, params: GovernanceParams, now_ms: int) -> r.Proposal:
    """A proposal as of `now_ms` (its status decided at the deadline if it had not passed before)."""
    total = Council(state).total()
    current = effective(record, total, params, now_ms)
    action = GovPropose(action=record.action, reason=record.reason, legal_ref=record.legal_ref).view()["action"]
    executed = current.status == "executed"
    return r.Proposal(
        number=current.number, status=current.status, action=action,  # type: ignore[arg-type]
        reason=current.reason, legal_ref=current.legal_ref, proposer=address_from_public_key(current.proposer),
        entry=current.entry_id.hex(), created_ms=current.created_ms, deadline_ms=current.deadline_ms,
        tally=r.Tally(yes=current.yes, no=current.no, abstain=current.abstain, approvals=current.approvals,
                      council_weight=total),
        passed_ms=current.passed_ms if current.passed_ms >= 0 else None,
        executable_from_ms=current.passed_ms + params.timelock_ms if current.passed_ms >= 0 else None,
        executed_height=current.executed_height if executed else UNSET,
        executed_entry=current.executed_entry.hex() if executed else UNSET,
    )


def council_members(state: State, names: Mapping[bytes, str]) -> list[r.Member]:
    """The members with their genesis names (a member a proposal appointed has none: null)."""
    return [r.Member(address=address_from_public_key(key), name=names.get(key), weight=weight)
            for key, weight in Council(state).members()]


def council_view(state: State, names: Mapping[bytes, str]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(m) for m in council_members(state, names)]


def emergency_target(record: EmergencyRecord) -> dict[str, Any]:
    """What a regulator's emergency act applies to: an account it froze, or a rule it set."""
    if record.rule_id:
        return {"action": "intercept", "rule_id": record.rule_id, "account": None}
    return {"action": "freeze", "account": address_from_public_key(record.account)}


def held_view(record: HeldRecord) -> r.HeldView:
    return r.HeldView(
        entry=record.entry_id.hex(), status=record.status, from_=address_from_public_key(record.author),
        to=address_from_public_key(record.to), asset=record.asset, amount=record.amount, rule_id=record.rule_id,
        decision=record.decision, held_ms=record.held_ms, deadline_ms=record.deadline_ms,
        decided_height=record.decided_height or None, decided_by=record.decided_entry.hex() or None,
        reason=record.reason or None)


def review_queue_view(state: State, limit: int) -> list[r.HeldView]:
    """Transfers held for review, soonest deadline first."""
    review = ReviewQueue(state)
    rows = []
    for _, held_id in review.queue()[:limit]:
        record = review.held(held_id)
        if record is not None:
            rows.append(held_view(record))
    return rows


def compliance(state: State, height: int, now_ms: int, limit: int) -> r.Compliance:
    """Everything the gate enforces, each with the decision behind it, read from each power's
    keeper by prefix: the cost follows the length of the lists, not the size of the state."""
    identities, services, emergencies, rules = Identities(state), Services(state), Emergencies(state), Rules(state)

    def by_key(rows: list[tuple[bytes, int]]) -> list[r.ByKey]:
        return [r.ByKey(address=address_from_public_key(key), decision=decision) for key, decision in rows]

    return r.Compliance(
        height=height,
        frozen_accounts=by_key(Freezes(state).frozen_accounts()),
        banned_keys=by_key(identities.banned_keys()),
        operators=[r.Operator(address=address_from_public_key(key), kind=kind, decision=decision)
                   for key, kind, decision in services.operators()],
        paused_services=[r.Pause(kind=kind, operator=address_from_public_key(p.operator), entry=p.entry_id.hex(),
                                 reason=p.reason, time_ms=p.time_ms, height=p.height)
                         for kind, p in services.pauses()],
        interception_rules=[
            r.InterceptionRule(
                rule_id=x.rule_id, min_amount=x.min_amount, asset=x.asset or None,
                counterparties=[address_from_public_key(c) for c in x.counterparties],
                max_identity_level=x.max_identity_level, outcome=x.outcome, review_ms=x.review_ms or None,
                decision=x.decision or None, emergency=x.emergency or None,
                in_force=not x.emergency or emergencies.get(x.emergency).active(now_ms))
            for x in rules.interception_rules()],
        content_rules=[
            r.ContentRule(rule_id=x.rule_id, payload_hash=x.payload_hash.hex() or None, keyword=x.keyword or None,
                          media_type=x.media_type or None, max_size=None if x.max_size < 0 else x.max_size,
                          decision=x.decision)
            for x in rules.content_rules()],
        review_queue=review_queue_view(state, limit),
        redactions=[r.Redacted(entry=redacted.hex(), decision=record.decision, reason_code=record.reason_code,
                               time_ms=record.time_ms, height=record.height)
                    for redacted, record in Redactions(state).all()[:limit]],
        suspended_services=[r.Suspended(kind=kind, decision=decision) for kind, decision in services.suspended()],
        identity_providers=by_key(identities.providers()),
        banned_identities=[r.BannedIdentity(identity=identity.hex(), decision=decision)
                           for identity, decision in identities.banned_identities()],
        identity_rules=[r.IdentityRule(kind=kind, min_level=rule.min_level, above_amount=rule.above_amount,
                                       decision=rule.decision) for kind, rule in identities.rules()],
        emergencies=[r.Emergency(
            number=record.number, status=record.status(now_ms), **emergency_target(record),
            regulator=address_from_public_key(record.regulator), reason=record.reason, legal_ref=record.legal_ref,
            entry=record.entry_id.hex(), created_ms=record.created_ms, expires_ms=record.expires_ms,
            ratified_by=record.ratified_by or None) for record in emergencies.newest_first()[:limit]],
    )


def compliance_view(state: State, now_ms: int, limit: int) -> dict[str, Any]:
    """`compliance` as plain data, without the height."""
    view: dict[str, Any] = msgspec.to_builtins(compliance(state, 0, now_ms, limit))
    del view["height"]
    return view

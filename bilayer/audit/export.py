"""Evidence export: everything an auditor needs about one account in a time window, in a
directory that proves itself offline.

    DIR/manifest.json        format, chain id, genesis root, the query, counts, the sha256 of every file
    DIR/genesis.json         the chain's genesis (what the verifier trusts)
    DIR/account.json         an account proof at the latest certified height: balances, author head,
                             and the freezes, ban and identity, each proven present or absent
    DIR/entries/ID.json      an entry proof for every entry authored by, or transferring to, the
                             account that a checkpoint timed within the window ordered
    DIR/acts/ID.json         an entry proof for every management act behind them: the proposals
                             (proposed, each counted vote, executed) and emergencies their results
                             name as cause, the freezes and bans of the account, the review
                             decisions of its held transfers

The window is on checkpoint time (the time validators signed), not on the author's clock, so
a verifier checks it from the proofs. Entries ordered in the latest checkpoint are listed as
`unproven` (their results root is not signed yet). The same package travels as one JSON
document (`{"manifest": ..., "files": {name: text}}`, what `GET /v1/audit/export` returns);
the hashes are over the exact file texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from ..errors import BadRequest, BilayerError, ExportTooLarge
from ..execution.governance.council import Council, ProposalNotFound, ProposalRecord
from ..execution.governance.emergency import Emergencies, EmergencyNotFound
from ..execution.governance.freezes import Freezes
from ..execution.governance.identity import Identities
from ..execution.governance.review import ReviewQueue
from ..execution.state import State
from ..keys.address import public_key_from_address
from ..ledger.operations import GovVote, decode_operation

if TYPE_CHECKING:
    from ..node.storage import StoredResult
from .proof import (
    ChainSource,
    encode_proof,
    entry_concerns,
    prove_account,
    prove_entries,
)
from .verify_export import (
    ACCOUNT_FILE,
    EXPORT_FORMAT,
    FILE_NAME,
    GENESIS_FILE,
    MANIFEST,
    UNBOUNDED,
    ExportEntryMismatch,
    ExportEntryUnrelated,
    ExportFileMissing,
    ExportHashMismatch,
    ExportItem,
    ExportMalformed,
    ExportQuery,
    Manifest,
    Package,
    Unproven,
    decode_package,
    verify_directory,
    verify_document,
    verify_package,
)

MAX_EXPORT_ITEMS = 2000


class ExportDirNotEmpty(BilayerError):
    """The export directory exists and is not empty."""

    code = "export_dir_not_empty"


def parse_height(text: str, name: str) -> int:
    text = text.strip()
    if not text.isdigit() or len(text) > 19 or not 1 <= int(text) <= UNBOUNDED:
        raise BadRequest(f"{name} is a height from 1 to {UNBOUNDED}, not {text[:40]!r}")
    return int(text)


def parse_time_ms(text: str, name: str) -> int:
    """Milliseconds since the epoch, or an ISO-8601 time (UTC unless it says otherwise)."""
    text = text.strip()
    if text.isdigit():
        if len(text) > 19 or int(text) > UNBOUNDED:
            raise BadRequest(f"{name} is too far in the future")
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name} is milliseconds since the epoch or an ISO-8601 time, not {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# --- building (on a node) ----------------------------------------------------------------------


MAX_VOTES_SCANNED = 100_000


def _votes_on(source: ChainSource, proposal: ProposalRecord) -> list[bytes]:
    """The counted votes on a proposal: FINAL `gov.vote` entries naming it, from its height on."""
    proposed = source.storage.result(proposal.entry_id)
    if proposed is None:
        return []
    votes = []
    for result in source.storage.final_results_of_kind("gov.vote", proposed.height, MAX_VOTES_SCANNED):
        header = source.header(result.entry_id)
        op = decode_operation(header.kind, header.body)
        if isinstance(op, GovVote) and op.proposal == proposal.number:
            votes.append(result.entry_id)
    return votes


def _acts_of(source: ChainSource, state: State, causes: set[str]) -> list[tuple[bytes, str]]:
    """The entries that made the named decisions: proposals (proposed, voted, executed) and emergencies."""
    acts: list[tuple[bytes, str]] = []
    pending = sorted(causes)
    seen: set[str] = set()
    while pending:
        cause = pending.pop(0)
        if cause in seen:
            continue
        seen.add(cause)
        kind, _, number_text = cause.partition(":")
        if not number_text.isdigit():
            continue
        number = int(number_text)
        if kind == "proposal":
            try:
                proposal = Council(state).proposal(number)
            except ProposalNotFound:
                continue
            acts.append((proposal.entry_id, f"{cause} proposed"))
            acts.extend((vote, f"{cause} voted") for vote in _votes_on(source, proposal))
            if proposal.executed_entry:
                acts.append((proposal.executed_entry, f"{cause} executed"))
        elif kind == "emergency":
            try:
                emergency = Emergencies(state).get(number)
            except EmergencyNotFound:
                continue
            acts.append((emergency.entry_id, f"{cause} ordered"))
            if emergency.ratified_by:
                pending.append(f"proposal:{emergency.ratified_by}")
    return acts


def _account_causes(state: State, public_key: bytes) -> set[str]:
    """The decisions in force against the account: freezes (council or emergency) and key bans."""
    found = [("proposal", Freezes(state).decision(public_key)), ("proposal", Identities(state).key_ban(public_key)),
             ("emergency", Emergencies(state).freeze_of(public_key))]
    return {f"{kind}:{number}" for kind, number in found if number is not None}


def _selected(source: ChainSource, public_key: bytes, query: ExportQuery) -> list[tuple[StoredResult, str]]:
    found = []
    for height in range(max(1, query.from_height), min(source.height, query.to_height) + 1):
        time_ms = source.finalized(height).checkpoint.time_ms
        if time_ms > query.to_ms:
            break
        if not query.covers(height, time_ms):
            continue
        for result in source.storage.results_at(height):
            role = entry_concerns(source.header(result.entry_id), public_key)
            if role:
                found.append((result, role))
                if len(found) > MAX_EXPORT_ITEMS:
                    raise ExportTooLarge(f"more than {MAX_EXPORT_ITEMS} entries in the window; narrow it")
    return found


def build_package(source: ChainSource, state: State, query: ExportQuery,
                  progress: Callable[[int], None] = lambda n: None) -> Package:
    """`state` is the node's current state: it names the decisions behind outcomes and freezes."""
    public_key = public_key_from_address(query.account)
    if query.from_ms > query.to_ms or query.from_height > query.to_height:
        raise BadRequest("the window's start is after its end")
    latest = source.height
    selected = _selected(source, public_key, query)
    causes = {r.cause for r, _ in selected if r.cause} | _account_causes(state, public_key)
    found = _acts_of(source, state, causes)
    for result, _ in selected:
        held = ReviewQueue(state).held(result.entry_id)
        if held is not None and held.decided_entry:
            found.append((held.decided_entry, f"review of {result.entry_id.hex()}"))
    unique: dict[bytes, str] = {}
    for act_id, role in found:
        unique.setdefault(act_id, role)
    acts = list(unique.items())
    if len(selected) + len(acts) > MAX_EXPORT_ITEMS:
        raise ExportTooLarge(f"{len(selected)} entries and {len(acts)} acts exceed {MAX_EXPORT_ITEMS};"
                             " narrow the window")

    heights = {r.entry_id: r.height for r, _ in selected}
    for act_id, _ in acts:
        act_result = source.storage.result(act_id)
        heights[act_id] = act_result.height if act_result is not None else latest
    provable = [i for i, h in heights.items() if h < latest]
    proofs = prove_entries(source, provable, progress)

    files: dict[str, str] = {GENESIS_FILE: msgspec.json.encode(source.genesis).decode()}
    if latest >= 1:
        files[ACCOUNT_FILE] = encode_proof(prove_account(source, query.account)).decode()
    entries, act_items, unproven = [], [], []
    for result, role in selected:
        id_hex = result.entry_id.hex()
        if result.entry_id not in proofs:
            unproven.append(Unproven(id_hex, role, "not_yet_provable"))
            continue
        name = f"entries/{id_hex}.json"
        files[name] = encode_proof(proofs[result.entry_id]).decode()
        entries.append(ExportItem(id_hex, name, role))
    for act_id, role in acts:
        id_hex = act_id.hex()
        if act_id not in proofs:
            unproven.append(Unproven(id_hex, role, "not_yet_provable"))
            continue
        name = f"entries/{id_hex}.json" if f"entries/{id_hex}.json" in files else f"acts/{id_hex}.json"
        files[name] = encode_proof(proofs[act_id]).decode()
        act_items.append(ExportItem(id_hex, name, role))
    digests = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()}
    manifest = Manifest(EXPORT_FORMAT, source.genesis.chain_id, source.genesis.root.hex(),
                        query, latest, tuple(entries), tuple(act_items),
                        tuple(unproven), digests, ACCOUNT_FILE if ACCOUNT_FILE in files else None)
    return Package(manifest, files)


def write_package(package: Package, out: Path, progress: Callable[[int], None] = lambda n: None) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportDirNotEmpty(f"{out} exists and is not an empty directory")
    for name, text in package.files.items():
        if not FILE_NAME.fullmatch(name):
            raise ExportMalformed(f"the package names a file outside its layout: {name!r}")
        progress(1)
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    (out / MANIFEST).write_bytes(msgspec.json.format(msgspec.json.encode(package.manifest)) + b"\n")


__all__ = ["EXPORT_FORMAT", "GENESIS_FILE", "MANIFEST", "MAX_EXPORT_ITEMS", "UNBOUNDED", "ExportDirNotEmpty",
           "ExportEntryMismatch", "ExportEntryUnrelated", "ExportFileMissing", "ExportHashMismatch", "ExportItem",
           "ExportMalformed", "ExportQuery", "Manifest", "Package", "Unproven", "build_package", "decode_package",
           "parse_height", "parse_time_ms", "verify_directory", "verify_document", "verify_package",
           "write_package"]

"""Audit proofs, made on a node: the documents `verify.py` checks offline (what they hold,
and the trust they rest on, is described there).


Nodes keep only their current state, so the state proofs of past heights come from
re-executing the chain from genesis with the node's own stored checkpoints and entries
(`HistoricalState`): the same code that applied them first, so the roots must agree. A node
keeps the last such history (`HistoryCache`) and walks it on for later requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import codec
from ..consensus.messages import FinalizedCheckpoint
from ..errors import NotFound, NotYetProvable
from ..execution.executor import EntryResult, Outcome
from ..execution.governance.emergency import emergency_freeze_key
from ..execution.governance.freezes import frozen_key
from ..execution.governance.identity import banned_key, identity_key
from ..execution.governance.validator_set import VALIDATOR_CHANGES, Validators, validator_change_key
from ..execution.merkle import inclusion_proof, leaf_hash
from ..execution.state import StateProof, author_key, balance_key
from ..genesis import Genesis
from ..keys.address import public_key_from_address
from ..ledger.dag import Dag
from ..ledger.entry import EntryHeader
from ..node.chain import ChainState
from ..node.storage import Storage
from .verify import (
    PROOF_FORMAT,
    AccountProof,
    AuditProof,
    CertificateMismatch,
    CertificateNoQuorum,
    CertificateSignatureInvalid,
    CertificateUnknownSigner,
    CheckpointLinkInvalid,
    EntryMalformed,
    EntryProof,
    EntrySignatureInvalid,
    GenesisMismatch,
    PayloadMismatch,
    ProofMalformed,
    ProvenEntry,
    ResultInclusion,
    ResultPathInvalid,
    StateProofInvalid,
    ValidatorChain,
    ValidatorChainIncomplete,
    ValidatorChangeInvalid,
    ValidatorChangeProof,
    check_certificate,
    decode_proof,
    encode_proof,
    entry_concerns,
    genesis_change,
    verify_account_proof,
    verify_entry_proof,
    verify_proof,
    verify_validator_chain,
)

# --- proving (on a node) -----------------------------------------------------------------------


@dataclass(frozen=True)
class ChainSource:
    """What a node holds that proofs are made of. Proven entries are ordered, so a payload a
    content rule blocks is already gone (execution left a tombstone)."""

    genesis: Genesis
    storage: Storage
    dag: Dag
    header_of: Callable[[bytes], EntryHeader | None]

    def header(self, id_: bytes) -> EntryHeader:
        header = self.header_of(id_)
        if header is None:
            raise NotFound(f"no entry {id_.hex()} on this node")
        return header

    def finalized(self, height: int) -> FinalizedCheckpoint:
        stored = self.storage.checkpoint(height)
        if stored is None:
            raise NotYetProvable(f"checkpoint {height} is not final on this node yet")
        return codec.decode(stored.finalized, FinalizedCheckpoint)

    @property
    def height(self) -> int:
        latest = self.storage.latest_checkpoint()
        return 0 if latest is None else latest.height


@contextmanager
def reading_source(genesis: Genesis, path: Path, dag: Dag) -> Iterator[ChainSource]:
    """A source reading the store at `path` on a connection of its own, closed after: proof work
    runs on a thread of its own, apart from the node's commits."""
    storage = Storage(path)
    try:
        def header_of(entry_id: bytes) -> EntryHeader | None:
            stored = storage.get(entry_id)
            return None if stored is None else codec.decode(stored.signed.header, EntryHeader)

        yield ChainSource(genesis, storage, dag, header_of)
    finally:
        storage.close()


class HistoricalState:
    """The chain re-executed from genesis, walked forward only: the state after each height as
    it was, for proofs against the roots checkpoints signed then."""

    def __init__(self, source: ChainSource) -> None:
        self.source = source
        self.chain = ChainState(source.genesis)
        self._changes: list[ValidatorChangeProof] = []
        self._pending: list[tuple[int, StateProof]] = []  # (executed height, record) awaiting e+1

    @property
    def height(self) -> int:
        return self.chain.height

    def advance_to(self, height: int) -> None:
        if height < self.chain.height:
            raise ValueError("the historical state only walks forward")
        while self.chain.height < height:
            self.chain.execute_next(self.source.finalized(self.chain.height + 1), self.source.dag, self.source.header)
            self._record_changes()

    def _record_changes(self) -> None:
        state = self.chain.state
        known = 1 + len(self._changes) + len(self._pending)
        for number in range(known + 1, Validators(state).change_count() + 1):
            proof = state.prove(validator_change_key(number))
            assert proof is not None  # the count says it is there
            self._pending.append((self.chain.height, proof))

    def prove(self, key: bytes) -> StateProof | None:
        return self.chain.state.prove(key)

    def validator_chain(self, certified_height: int) -> ValidatorChain:
        """The chain for a proof resting on checkpoint `certified_height`; the count is proven in
        the state after the current height, which checkpoint height + 1 signs: the anchor, named
        when it is not that same checkpoint."""
        if certified_height > self.chain.height + 1:
            raise ValueError("the history has not walked far enough for this proof")
        while self._pending:
            executed, record = self._pending[0]
            self._changes.append(ValidatorChangeProof(record, self.source.finalized(executed + 1)))
            self._pending.pop(0)
        count = self.prove(VALIDATOR_CHANGES)
        if count is None:
            raise NotFound("this chain has no validators, so nothing is certified")
        anchor_height = self.chain.height + 1
        anchor = None if anchor_height == certified_height else self.source.finalized(anchor_height)
        return ValidatorChain(tuple(self._changes), count, anchor)


class HistoryCache:
    """The last re-executed history, kept between requests, so proofs of recent entries cost
    only the checkpoints since the previous request, and entry proofs of older heights cost no
    walk at all (their validator chain is anchored at the kept height); one request uses it at
    a time (`lock`), which also bounds the work a node spends on proofs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._kept: HistoricalState | None = None

    def history(self, source: ChainSource, height: int, *, exact: bool = True) -> HistoricalState:
        """A history at or below `height` (the kept one, or a new one from genesis), reading
        `source`; with `exact=False` the kept one also when it is further on."""
        kept = self._kept
        if kept is None or (exact and kept.height > height):
            kept = HistoricalState(source)
        kept.source = source
        self._kept = kept
        return kept

    def forget(self) -> None:
        self._kept = None


def _history(source: ChainSource, height: int, cache: HistoryCache | None, *, exact: bool = True) -> HistoricalState:
    return HistoricalState(source) if cache is None else cache.history(source, height, exact=exact)


def prove_entries(source: ChainSource, ids: Iterable[bytes], progress: Callable[[int], None] = lambda n: None,
                  cache: HistoryCache | None = None) -> dict[bytes, EntryProof]:
    """Entry proofs for many entries with one pass over the history (ascending heights)."""
    located = []
    for id_ in ids:
        result = source.storage.result(id_)
        if result is None:
            if source.storage.get(id_) is None and source.header_of(id_) is None:
                raise NotFound(f"no entry {id_.hex()} on this node")
            raise NotYetProvable(f"entry {id_.hex()} is not ordered by a final checkpoint yet")
        located.append((result.height, id_))
    located.sort()
    history = _history(source, located[0][0] if located else 0, cache, exact=False)
    proofs: dict[bytes, EntryProof] = {}
    leaves_at: dict[int, list[bytes]] = {}
    for height, id_ in located:
        certified_by = source.finalized(height + 1)
        if history.height < height:
            history.advance_to(height)
        if height not in leaves_at:
            leaves_at.clear()
            leaves_at[height] = [leaf_hash(EntryResult(r.entry_id, Outcome(r.outcome), r.code, r.cause).leaf())
                                 for r in source.storage.results_at(height)]
        proofs[id_] = _entry_proof(source, id_, leaves_at[height], height, certified_by,
                                   history.validator_chain(height + 1))
        progress(1)
    return proofs


def prove_entry(source: ChainSource, id_: bytes, cache: HistoryCache | None = None) -> EntryProof:
    return prove_entries(source, [id_], cache=cache)[id_]


def _entry_proof(source: ChainSource, id_: bytes, leaves: list[bytes], height: int,
                 certified_by: FinalizedCheckpoint, validators: ValidatorChain) -> EntryProof:
    stored = source.storage.get(id_)
    result = source.storage.result(id_)
    if stored is None or result is None:
        raise NotFound(f"no entry {id_.hex()} on this node")
    if stored.tombstone is not None:
        entry = ProvenEntry(stored.signed.header, stored.signed.signature, None, stored.tombstone)
    else:
        entry = ProvenEntry(stored.signed.header, stored.signed.signature, stored.signed.payload)
    inclusion = ResultInclusion(result.outcome, result.code, result.cause, result.position, len(leaves),
                                tuple(inclusion_proof(leaves, result.position)))
    return EntryProof(PROOF_FORMAT, source.genesis.chain_id, source.genesis.root, entry, inclusion,
                      source.finalized(height), certified_by, validators)


def _account_keys(public_key: bytes) -> list[bytes]:
    """The account's keys besides balances: its author head, and the decisions that name it
    (council freeze, emergency freeze, key ban) and its attested identity, when present."""
    return [author_key(public_key), frozen_key(public_key), emergency_freeze_key(public_key), banned_key(public_key),
            identity_key(public_key)]


def prove_account(source: ChainSource, address: str, asset: str | None = None,
                  cache: HistoryCache | None = None) -> AccountProof:
    """The account as of the latest height whose state root a final checkpoint signs (the one
    before the latest checkpoint): its balances (or the one `asset`), its author head, and the
    freezes, ban and identity recorded for it. Only keys present can be proven (there is no
    proof of absence), so a verifier learns what is recorded, not what is not."""
    public_key = public_key_from_address(address)
    latest = source.height
    if latest < 1:
        raise NotYetProvable("no checkpoint is final yet, so no state root is signed")
    certified_by = source.finalized(latest)
    history = _history(source, latest - 1, cache)
    history.advance_to(latest - 1)
    if asset is not None:
        keys = [balance_key(public_key, asset)]
    else:
        keys = [balance_key(public_key, a) for a in sorted(history.chain.state.balances_of(public_key))]
    keys.extend(_account_keys(public_key))
    items = tuple(item for key in keys if (item := history.prove(key)) is not None)
    if asset is not None and not any(item.key == keys[0] for item in items):
        raise NotFound(f"{address} holds no {asset} at height {latest - 1} (a zero balance has no leaf to prove)")
    if not items:
        raise NotFound(f"{address} has no state at height {latest - 1}")
    return AccountProof(PROOF_FORMAT, source.genesis.chain_id, source.genesis.root, address, latest - 1, items,
                        certified_by, history.validator_chain(latest))

__all__ = ["PROOF_FORMAT", "AccountProof", "AuditProof", "CertificateMismatch", "CertificateNoQuorum",
           "CertificateSignatureInvalid", "CertificateUnknownSigner", "ChainSource", "CheckpointLinkInvalid",
           "EntryMalformed", "EntryProof", "EntrySignatureInvalid", "GenesisMismatch", "HistoricalState",
           "HistoryCache", "PayloadMismatch", "ProofMalformed", "ProvenEntry", "ResultInclusion", "ResultPathInvalid",
           "StateProofInvalid", "ValidatorChain", "ValidatorChainIncomplete", "ValidatorChangeInvalid",
           "ValidatorChangeProof", "check_certificate", "decode_proof", "encode_proof", "entry_concerns",
           "genesis_change", "prove_account", "prove_entries", "prove_entry", "reading_source", "verify_account_proof",
           "verify_entry_proof", "verify_proof", "verify_validator_chain"]

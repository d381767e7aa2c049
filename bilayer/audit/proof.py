"""Audit proofs, made on a node: the documents `verify.py` checks offline (what they hold,
and the trust they rest on, is described there).

Every state proof is read from the node's store: the state tree keeps a version per height
(node/state_store.py), so a proof of presence or absence of any key at any retained height
is a walk of the tree, with no re-execution. The records of validator set changes are proven
once, when the checkpoint that executes a change commits, and kept (`validator_changes`
table), so the validator chain of a proof still comes from the store after the versions it
was proven at are pruned.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from .. import codec
from ..consensus.messages import FinalizedCheckpoint
from ..errors import NotFound, NotYetProvable
from ..execution.executor import EntryResult, Outcome
from ..execution.governance.emergency import emergency_freeze_key
from ..execution.governance.freezes import frozen_key
from ..execution.governance.identity import banned_key, identity_key
from ..execution.governance.validator_set import VALIDATOR_CHANGES, validator_change_key
from ..execution.merkle import inclusion_proof, leaf_hash
from ..execution.smt import NodeMissing, StateVersionPruned
from ..execution.smt_proof import SparseProof
from ..execution.state import author_key, balance_key
from ..genesis import Genesis
from ..keys.address import public_key_from_address
from ..ledger.dag import Dag
from ..ledger.entry import EntryHeader
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
    StateProof,
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

if TYPE_CHECKING:  # the node's store, read here; the node opens it (`Node.proof_source`)
    from ..node.state_store import TreeReader
    from ..node.storage import Storage

T = TypeVar("T")

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


class ProofQueue:
    """Proof requests run one at a time per node (`lock`): it bounds the work a node spends on
    proofs, on a thread of its own."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


def validator_change_proofs(prove: Callable[[bytes], tuple[bytes | None, SparseProof]], height: int,
                            changes: Iterable[tuple[bytes, bytes | None]]) -> list[tuple[int, int, bytes]]:
    """The records of validator set changes that height `height` wrote, each with its proof in
    that height's state (`prove`): rows (number, height, proof) the checkpoint's commit keeps."""
    prefix = validator_change_key(0)[:2]
    rows = []
    for key, value in changes:
        if value is not None and key.startswith(prefix) and len(key) == len(prefix) + 8:
            proven, proof = prove(key)
            rows.append((int.from_bytes(key[len(prefix):], "big"), height,
                         codec.encode(StateProof(key, proven, proof))))
    return rows


def _state_proof(tree: TreeReader, key: bytes, height: int) -> StateProof:
    value, proof = tree.prove(key, height)
    return StateProof(key, value, proof)


def _validator_chain(source: ChainSource, certified_height: int, latest: int) -> ValidatorChain:
    """The validator chain of a proof resting on checkpoint `certified_height`: every change
    executed before the anchor, from the stored proofs, and the change count in the state
    the anchor signs. The anchor is `certified_height` when its state (after the height
    before it) is still retained, else the latest checkpoint (a later count covers every
    earlier height)."""
    tree = source.storage.tree
    anchor_height = certified_height
    try:
        count = _state_proof(tree, VALIDATOR_CHANGES, anchor_height - 1)
    except StateVersionPruned:
        anchor_height = latest
        count = _state_proof(tree, VALIDATOR_CHANGES, anchor_height - 1)
    if count.value is None:
        raise NotFound("this chain has no validators, so nothing is certified")
    number = codec.decode(count.value, int)
    changes = []
    for n, executed, data in source.storage.validator_change_proofs(number):
        if executed + 1 > anchor_height:
            break
        changes.append(ValidatorChangeProof(codec.decode(data, StateProof), source.finalized(executed + 1)))
        assert n == len(changes) + 1
    if len(changes) != number - 1:
        raise NotFound(f"this node holds {len(changes)} of the {number - 1} validator set change proofs"
                       " (its store predates them)")
    anchor = None if anchor_height == certified_height else source.finalized(anchor_height)
    return ValidatorChain(tuple(changes), count, anchor)


def _retrying(work: Callable[[], T]) -> T:
    """Pruning runs beside proofs: a walk whose version went from under it is asked once more
    (of the latest version then retained)."""
    try:
        return work()
    except NodeMissing:
        return work()


def prove_entries(source: ChainSource, ids: Iterable[bytes], progress: Callable[[int], None] = lambda n: None
                  ) -> dict[bytes, EntryProof]:
    """Entry proofs for many entries (read from the store: results and stored validator proofs)."""
    located = []
    for id_ in ids:
        result = source.storage.result(id_)
        if result is None:
            if source.storage.get(id_) is None and source.header_of(id_) is None:
                raise NotFound(f"no entry {id_.hex()} on this node")
            raise NotYetProvable(f"entry {id_.hex()} is not ordered by a final checkpoint yet")
        located.append((result.height, id_))
    located.sort()
    latest = source.height
    proofs: dict[bytes, EntryProof] = {}
    leaves_at: dict[int, list[bytes]] = {}
    chains: dict[int, ValidatorChain] = {}
    for height, id_ in located:
        certified_by = source.finalized(height + 1)
        if height not in leaves_at:
            leaves_at.clear()
            leaves_at[height] = [leaf_hash(EntryResult(r.entry_id, Outcome(r.outcome), r.code, r.cause).leaf())
                                 for r in source.storage.results_at(height)]
        if height + 1 not in chains:
            chains[height + 1] = _retrying(functools.partial(_validator_chain, source, height + 1, latest))
        proofs[id_] = _entry_proof(source, id_, leaves_at[height], height, certified_by, chains[height + 1])
        progress(1)
    return proofs


def prove_entry(source: ChainSource, id_: bytes) -> EntryProof:
    return prove_entries(source, [id_])[id_]


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


def account_keys(public_key: bytes) -> list[bytes]:
    """The account's keys besides balances, each proven present or absent: its author head,
    the decisions that name it (council freeze, emergency freeze, key ban) and its identity."""
    return [author_key(public_key), frozen_key(public_key), emergency_freeze_key(public_key), banned_key(public_key),
            identity_key(public_key)]


def prove_account(source: ChainSource, address: str, asset: str | None = None,
                  height: int | None = None) -> AccountProof:
    """The account in the state after `height` (default: the latest height whose state root
    a final checkpoint signs, the one before the latest checkpoint), against that root and
    checkpoint `height + 1`: its balances (or the one `asset`, zero proven by absence), and
    its author head, freezes, ban and identity, each proven present or absent. A height whose
    state was pruned is refused with `state_version_pruned`."""
    public_key = public_key_from_address(address)
    latest = source.height
    if latest < 1:
        raise NotYetProvable("no checkpoint is final yet, so no state root is signed")
    if height is None:
        height = latest - 1
    elif height >= latest:
        raise NotYetProvable(f"the state after height {height} is signed by checkpoint {height + 1}, which is not"
                             f" final on this node yet (latest: {latest})")
    elif height < 0:
        raise NotFound("heights start at 0 (the genesis state)")
    certified_by = source.finalized(height + 1)
    tree = source.storage.tree
    if asset is not None:
        keys = [balance_key(public_key, asset)]
    else:
        keys = [balance_key(public_key, a) for a in source.storage.assets_of(public_key)]
    keys.extend(account_keys(public_key))
    at = height
    items = _retrying(lambda: tuple(_state_proof(tree, key, at) for key in keys))
    return AccountProof(PROOF_FORMAT, source.genesis.chain_id, source.genesis.root, address, height, items,
                        certified_by, _validator_chain(source, height + 1, latest))

__all__ = [
    "PROOF_FORMAT",
    "AccountProof",
    "AuditProof",
    "CertificateMismatch",
    "CertificateNoQuorum",
    "CertificateSignatureInvalid",
    "CertificateUnknownSigner",
    "ChainSource",
    "CheckpointLinkInvalid",
    "EntryMalformed",
    "EntryProof",
    "EntrySignatureInvalid",
    "GenesisMismatch",
    "PayloadMismatch",
    "ProofMalformed",
    "ProofQueue",
    "ProvenEntry",
    "ResultInclusion",
    "ResultPathInvalid",
    "StateProof",
    "StateProofInvalid",
    "ValidatorChain",
    "ValidatorChainIncomplete",
    "ValidatorChangeInvalid",
    "ValidatorChangeProof",
    "check_certificate",
    "decode_proof",
    "encode_proof",
    "entry_concerns",
    "genesis_change",
    "prove_account",
    "prove_entries",
    "prove_entry",
    "validator_change_proofs",
    "verify_account_proof",
    "verify_entry_proof",
    "verify_proof",
    "verify_validator_chain",
]

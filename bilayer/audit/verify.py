"""Audit proofs a light client checks offline, trusting nothing but genesis.json.

An **entry proof** says: this signed entry was ordered at height h with this outcome. It holds

* the signed entry (header and signature; the payload, or the tombstone a decision left);
* its result (outcome, reason, cause) and the RFC 6962 audit path from the result's leaf to
  the results root of height h;
* the checkpoint of height h that ordered it, and the checkpoint of height h+1 with its
  commit certificate: checkpoint h+1 carries the roots *after* h, so its certificate is what
  signs the results root (an entry is provable once h+1 is final), and its `prev_id` names
  checkpoint h;
* the **validator chain**: what lets a verifier who knows only the genesis set learn the set
  of every height it meets (below).

An **account proof** holds state proofs (`State.prove`: the siblings of the key's path in
the sparse Merkle tree, execution/smt_proof.py) of an account's keys against the state root
after height h, the checkpoint h+1 that certifies that root, and the validator chain. A
proof shows a key's value or its absence alike, and the account's balances, author head,
freezes, ban and identity must each be shown one way or the other: a proof that leaves out
whether the account is frozen or banned is refused.

**The validator chain.** Change 1 is the genesis set. Change n >= 2 is recorded by its
executing checkpoint e under the state key `Vh` + n (`ValidatorSetChange`: the whole set, the
height e+2 it governs from), and is never amended afterwards. The proof of change n is that
record with its state proof against the state root after e, and the certified checkpoint e+1
carrying that root. Checkpoint e+1 is governed by change n-1 (changes apply two heights after
execution), so a verifier walks the changes in order, each one certified by the set before
it. The chain is complete when the change count `Vc`, proven in the state the anchor
checkpoint (the one whose certificate signs the proven root) commits to, equals the number of
changes presented: no change executed up to that height is left out. The anchor is the
checkpoint the proof rests on, or a later certified one the chain names (`anchor`), since a
later count covers every earlier height; never an earlier one. A certificate is always
checked against the set governing its own height: the last change whose first height is at
most the checkpoint's height.

Trust: every certificate needs more than two thirds of the voting power of a set that the
chain from genesis made legitimate. Like any light client that trusts only genesis, this
cannot tell a real history from one a retired set's quorum signs after it left; checking a

This module is the verifier alone: pure functions over the document and genesis, with no
storage, network or node code, so `bilayer audit verify` runs anywhere. Proving (on a node)
is `proof.py`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from .. import codec
from ..consensus.messages import (
    CertificateInvalid,
    FinalizedCheckpoint,
    VoteType,
    verify_certificate,
    vote_message,
)
from ..consensus.validators import Validator, ValidatorSet
from ..errors import BadEncoding, BilayerError, ProofInvalid
from ..execution.executor import EntryResult, Outcome, genesis_state
from ..execution.governance.emergency import emergency_freeze_key
from ..execution.governance.freezes import frozen_key
from ..execution.governance.identity import IdentityRecord, banned_key, identity_key
from ..execution.governance.validator_set import (
    VALIDATOR_CHANGE_DELAY,
    VALIDATOR_CHANGES,
    Validators,
    ValidatorSetChange,
    validator_change_key,
)
from ..execution.merkle import leaf_hash, root_from_inclusion, sized_root
from ..execution.smt_proof import SparseProof
from ..execution.smt_proof import verify_proof as verify_sparse_proof
from ..execution.state import author_key, balance_key
from ..genesis import Genesis
from ..keys.address import address_from_public_key, public_key_from_address
from ..keys.signing import verify
from ..ledger.entry import EntryHeader, Tombstone, entry_id, signing_message
from ..ledger.operations import Transfer, decode_operation

PROOF_FORMAT = 3  # 3: state proofs of the sparse Merkle tree, of presence and absence (chain format 2)
# 2: the results root commits to the results' count, so a proven position is bound


# --- the failures a verifier names ------------------------------------------------------------


class ProofMalformed(ProofInvalid):
    """The document is not an audit proof of a known format."""

    code = "proof_malformed"


class GenesisMismatch(ProofInvalid):
    """The proof is for another chain than the genesis given."""

    code = "genesis_mismatch"


class EntryMalformed(ProofInvalid):
    """The entry header is not a canonical header of this chain."""

    code = "entry_malformed"


class EntrySignatureInvalid(ProofInvalid):
    """The author's signature over the entry id does not verify."""

    code = "entry_signature_invalid"


class PayloadMismatch(ProofInvalid):
    """The payload does not match the hash and size the header commits to."""

    code = "payload_mismatch"


class ResultPathInvalid(ProofInvalid):
    """The result's audit path does not lead to the certified results root."""

    code = "result_path_invalid"


class CheckpointLinkInvalid(ProofInvalid):
    """Checkpoints do not link by height and previous id as the proof claims."""

    code = "checkpoint_link_invalid"


class CertificateMismatch(ProofInvalid):
    """A certificate is not for the checkpoint (or chain) it is attached to."""

    code = "certificate_mismatch"


class CertificateUnknownSigner(ProofInvalid):
    """A certificate carries a signer outside the validator set of its height, or one twice."""

    code = "certificate_unknown_signer"


class CertificateSignatureInvalid(ProofInvalid):
    """A precommit signature in a certificate does not verify."""

    code = "certificate_signature_invalid"


class CertificateNoQuorum(ProofInvalid):
    """A certificate's signers hold no more than two thirds of the voting power of its height's set."""

    code = "certificate_no_quorum"


class ValidatorChangeInvalid(ProofInvalid):
    """A validator set change is not proven by the set before it."""

    code = "validator_change_invalid"


class ValidatorChainIncomplete(ProofInvalid):
    """The proof leaves out validator set changes the certified state records."""

    code = "validator_chain_incomplete"


class StateProofInvalid(ProofInvalid):
    """A state proof does not lead to the certified state root, or is not about the account."""

    code = "state_proof_invalid"


# --- the document -----------------------------------------------------------------------------


class ProvenEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`payload` is absent when the node no longer serves it; then `tombstone` says why."""

    header: bytes
    signature: bytes
    payload: bytes | None = None
    tombstone: Tombstone | None = None


class ResultInclusion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    outcome: str
    code: str
    cause: str
    index: int
    size: int
    path: tuple[bytes, ...]


class StateProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A state key's value, or its absence (`value` None), with its sparse Merkle proof."""

    key: bytes
    value: bytes | None
    proof: SparseProof

    def verify(self, state_root: bytes) -> bool:
        return verify_sparse_proof(state_root, self.key, self.value, self.proof)


class ValidatorChangeProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Change n's record (`Vh` + n) in the state after its executing height e, and checkpoint e+1."""

    record: StateProof
    checkpoint: FinalizedCheckpoint


class ValidatorChain(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Changes 2..n, oldest first, and the change count in the anchor's state. The anchor is
    the checkpoint the proof rests on (`certified_by`) unless `anchor` names a later one: a
    node whose re-executed history has walked past the proven height proves the count there
    rather than walking again from genesis, and a later count covers every earlier height."""

    changes: tuple[ValidatorChangeProof, ...]
    count: StateProof
    anchor: FinalizedCheckpoint | None = None


class EntryProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="entry"):
    format: int
    chain_id: str
    genesis_root: bytes
    entry: ProvenEntry
    result: ResultInclusion
    ordered_in: FinalizedCheckpoint
    certified_by: FinalizedCheckpoint
    validators: ValidatorChain


class AccountProof(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="account"):
    """The account's state keys after `height`, against the root checkpoint `height + 1` signs."""

    format: int
    chain_id: str
    genesis_root: bytes
    address: str
    height: int
    items: tuple[StateProof, ...]
    certified_by: FinalizedCheckpoint
    validators: ValidatorChain


AuditProof = EntryProof | AccountProof

class _Versioned(Protocol):
    @property
    def format(self) -> int: ...


D = TypeVar("D", bound=_Versioned)


class DocumentDecoder(Generic[D]):
    """The one decoder of proof documents (this module's, and the applications' that embed
    entry proofs): JSON to the document type, then the format this verifier reads, each
    failure a `ProofMalformed`."""

    def __init__(self, type_: Any, what: str) -> None:
        self._decoder: msgspec.json.Decoder[D] = msgspec.json.Decoder(type_)
        self.what = what

    def decode(self, data: bytes) -> D:
        try:
            document = self._decoder.decode(data)
        except (msgspec.MsgspecError, ValueError) as exc:  # ValueError: bytes that are not UTF-8
            raise ProofMalformed(f"not {self.what}: {exc}") from None
        if document.format != PROOF_FORMAT:
            raise ProofMalformed(f"proof format {document.format} is not supported (this verifier reads"
                                 f" {PROOF_FORMAT})")
        return document


_proof_decoder: DocumentDecoder[AuditProof] = DocumentDecoder(AuditProof, "an audit proof")


def encode_proof(proof: AuditProof) -> bytes:
    return msgspec.json.encode(proof)


def decode_proof(data: bytes) -> AuditProof:
    return _proof_decoder.decode(data)


# --- verifying (offline) -----------------------------------------------------------------------


def check_certificate(chain_id: str, finalized: FinalizedCheckpoint, validators: ValidatorSet) -> None:
    """Like the consensus layer's `verify_certificate`, but naming the part that fails."""
    checkpoint, certificate = finalized.checkpoint, finalized.certificate
    where = f"the certificate of height {checkpoint.height}"
    if checkpoint.chain != chain_id:
        raise CertificateMismatch(f"checkpoint {checkpoint.height} is of chain {checkpoint.chain!r}, not {chain_id!r}")
    if certificate.height != checkpoint.height or certificate.value_id != checkpoint.id:
        raise CertificateMismatch(f"{where} is for another checkpoint")
    message = vote_message(chain_id, certificate.height, certificate.round, int(VoteType.PRECOMMIT),
                           certificate.value_id)
    signers: set[bytes] = set()
    for item in certificate.signatures:
        if item.validator in signers or item.validator not in validators:
            raise CertificateUnknownSigner(f"{where} is signed by {item.validator.hex()[:16]}…, which is not a"
                                           " validator of that height (or signs twice)")
        if not verify(item.validator, message, item.signature):
            raise CertificateSignatureInvalid(f"a precommit signature in {where} does not verify")
        signers.add(item.validator)
    if not validators.is_quorum(validators.power_of(signers)):
        raise CertificateNoQuorum(f"{where} has {validators.power_of(signers)} of {validators.total_power} voting"
                                  " power: no quorum")
    try:
        verify_certificate(chain_id, checkpoint, certificate, validators)
    except CertificateInvalid as exc:  # the consensus layer's own rule must agree
        raise CertificateMismatch(f"{where}: {exc}") from None


@dataclass(frozen=True)
class ValidatorHistory:
    """The sets a proof made known, by the first height each governs."""

    heights: list[int]
    sets: list[ValidatorSet]

    def at(self, height: int) -> ValidatorSet:
        return self.sets[max(0, bisect.bisect_right(self.heights, height) - 1)]


def _set_of(change: ValidatorSetChange) -> ValidatorSet:
    return ValidatorSet(Validator(m.name, m.key, m.power) for m in change.members)


def genesis_change(genesis: Genesis) -> ValidatorSetChange:
    change = Validators(genesis_state(genesis)).change(1)
    if change is None:
        raise GenesisMismatch("the genesis names no validators, so it certifies nothing")
    return change


def verify_validator_chain(genesis: Genesis, chain: ValidatorChain, certified: FinalizedCheckpoint) -> ValidatorHistory:
    """Walk the changes from the genesis set, each certified by the set before it; then check
    the anchor's certificate (and `certified`'s, the checkpoint the proof rests on, when the
    anchor is a later one) and that the anchor's state counts exactly the changes walked. An
    anchor below `certified` could leave out changes that govern it, so it is refused."""
    anchor = chain.anchor or certified
    if anchor.checkpoint.height < certified.checkpoint.height:
        raise ValidatorChainIncomplete(f"the change count is proven at height {anchor.checkpoint.height}, below the"
                                       f" checkpoint {certified.checkpoint.height} the proof rests on")
    previous = genesis_change(genesis)
    history = ValidatorHistory([previous.height], [_set_of(previous)])
    for number, proof in enumerate(chain.changes, start=2):
        record, finalized = proof.record, proof.checkpoint
        if record.key != validator_change_key(number) or record.value is None:
            raise ValidatorChangeInvalid(f"change {number} is proven by the wrong state key, or proven absent")
        try:
            change = codec.decode(record.value, ValidatorSetChange)
            members = _set_of(change)
        except BilayerError as exc:
            raise ValidatorChangeInvalid(f"change {number} is not a validator set: {exc.message}") from None
        if (change.number != number or change.executed_height <= previous.executed_height
                or change.height != change.executed_height + VALIDATOR_CHANGE_DELAY):
            raise ValidatorChangeInvalid(f"change {number} does not follow change {number - 1}")
        if finalized.checkpoint.height != change.executed_height + 1:
            raise ValidatorChangeInvalid(f"change {number} must be proven by checkpoint {change.executed_height + 1}")
        check_certificate(genesis.chain_id, finalized, history.at(finalized.checkpoint.height))
        if not record.verify(finalized.checkpoint.state_root):
            raise ValidatorChangeInvalid(f"change {number} is not in the state checkpoint"
                                         f" {finalized.checkpoint.height} signs")
        history.heights.append(change.height)
        history.sets.append(members)
        previous = change
    check_certificate(genesis.chain_id, anchor, history.at(anchor.checkpoint.height))
    if anchor is not certified:
        check_certificate(genesis.chain_id, certified, history.at(certified.checkpoint.height))
    count = chain.count
    if count.key != VALIDATOR_CHANGES or count.value is None or not count.verify(anchor.checkpoint.state_root):
        raise ValidatorChainIncomplete(f"the change count is not proven against checkpoint {anchor.checkpoint.height}")
    try:
        recorded = codec.decode(count.value, int)
    except BadEncoding:
        raise ValidatorChainIncomplete("the change count is not a number") from None
    if recorded != 1 + len(chain.changes):
        raise ValidatorChainIncomplete(f"the certified state records {recorded} validator set changes; the proof"
                                       f" walks {1 + len(chain.changes)}")
    return history


def _check_genesis(genesis: Genesis, chain_id: str, genesis_root: bytes) -> None:
    if chain_id != genesis.chain_id or genesis_root != genesis.root:
        raise GenesisMismatch(f"the proof is for chain {chain_id!r} with genesis {genesis_root.hex()[:16]}…; the"
                              f" genesis given is {genesis.chain_id!r} with {genesis.root.hex()[:16]}…")


def _check_entry(genesis: Genesis, entry: ProvenEntry) -> tuple[bytes, EntryHeader]:
    try:
        header = codec.decode_canonical(entry.header, EntryHeader)
    except BadEncoding as exc:
        raise EntryMalformed(exc.message) from None
    if header.chain != genesis.chain_id:
        raise EntryMalformed(f"the entry is of chain {header.chain!r}")
    id_ = entry_id(entry.header)
    if not verify(header.author, signing_message(id_), entry.signature):
        raise EntrySignatureInvalid(f"the signature of entry {id_.hex()} does not verify under its author's key")
    if entry.payload is not None and (codec.sha256(entry.payload) != header.payload_hash
                                      or len(entry.payload) != header.payload_size):
        raise PayloadMismatch(f"the payload of entry {id_.hex()} is not the one its header commits to")
    return id_, header


def verify_entry_proof(proof: EntryProof, genesis: Genesis) -> dict[str, Any]:
    """Raise a `ProofInvalid` naming the first part that fails; else a summary of what is proven."""
    _check_genesis(genesis, proof.chain_id, proof.genesis_root)
    id_, header = _check_entry(genesis, proof.entry)
    ordered, certified = proof.ordered_in.checkpoint, proof.certified_by.checkpoint
    if certified.height != ordered.height + 1 or certified.prev_id != ordered.id:
        raise CheckpointLinkInvalid(f"checkpoint {certified.height} does not follow checkpoint {ordered.height}")
    result = proof.result
    try:
        leaf = leaf_hash(EntryResult(id_, Outcome(result.outcome), result.code, result.cause).leaf())
    except ValueError:
        raise ResultPathInvalid(f"{result.outcome!r} is no outcome") from None
    tree_root = root_from_inclusion(leaf, result.index, result.size, result.path)
    if tree_root is None or sized_root(result.size, tree_root) != certified.results_root:
        raise ResultPathInvalid(f"the result of entry {id_.hex()} is not in the results root of height"
                                f" {ordered.height} that checkpoint {certified.height} signs")
    history = verify_validator_chain(genesis, proof.validators, proof.certified_by)
    check_certificate(genesis.chain_id, proof.ordered_in, history.at(ordered.height))
    return {
        "valid": True, "kind": "entry", "chain_id": genesis.chain_id, "entry": id_.hex(),
        "author": address_from_public_key(header.author), "operation": header.kind, "seq": header.seq,
        "outcome": result.outcome, "reason": result.code or None, "cause": result.cause or None,
        "height": ordered.height, "checkpoint_time_ms": ordered.time_ms, "certified_by": certified.height,
        "payload": "present" if proof.entry.payload is not None else (
            f"withheld by {proof.entry.tombstone.decision} ({proof.entry.tombstone.reason_code})"
            if proof.entry.tombstone is not None else "withheld"),
        "validator_changes": len(proof.validators.changes),
    }


def verify_account_proof(proof: AccountProof, genesis: Genesis) -> dict[str, Any]:
    _check_genesis(genesis, proof.chain_id, proof.genesis_root)
    try:
        public_key = public_key_from_address(proof.address)
    except BilayerError as exc:
        raise StateProofInvalid(f"the proof's address is invalid: {exc.message}") from None
    certified = proof.certified_by.checkpoint
    if certified.height != proof.height + 1:
        raise CheckpointLinkInvalid(f"the state after height {proof.height} is signed by checkpoint"
                                    f" {proof.height + 1}, not {certified.height}")
    verify_validator_chain(genesis, proof.validators, proof.certified_by)
    balances: dict[str, int] = {}
    recorded: dict[str, Any] = {}
    balance_prefix = balance_key(public_key, "")
    # the keys whose presence or absence an account proof must show, and how a summary names them
    shown = {author_key(public_key): "next_seq", frozen_key(public_key): "frozen_by",
             emergency_freeze_key(public_key): "emergency_freeze", banned_key(public_key): "banned_by",
             identity_key(public_key): "identity"}
    for item in proof.items:
        if not item.verify(certified.state_root):
            raise StateProofInvalid(f"a state key of {proof.address} is not"
                                    f" {'absent from' if item.value is None else 'in'} the state checkpoint"
                                    f" {certified.height} signs")
        name = "balance" if item.key.startswith(balance_prefix) else shown.get(item.key)
        if name is None:
            raise StateProofInvalid(f"a proven state key is not one of {proof.address}'s")
        if name in recorded:
            raise StateProofInvalid(f"{proof.address}'s {name} is proven twice")
        try:
            if name == "balance":
                asset = item.key[len(balance_prefix):].decode()
                balances[asset] = 0 if item.value is None else codec.decode(item.value, int)
            else:
                recorded[name] = None if item.value is None else _decode_account_key(name, item.value)
        except (BadEncoding, UnicodeDecodeError):
            raise StateProofInvalid("a proven state value is malformed") from None
    missing = [name for name in shown.values() if name not in recorded]
    if missing:
        raise StateProofInvalid(f"the proof does not show {proof.address}'s {', '.join(missing)} (present or absent)")
    absent = sorted(name for name, value in recorded.items() if value is None)
    recorded["next_seq"] = recorded["next_seq"] or 0
    return {"valid": True, "kind": "account", "chain_id": genesis.chain_id, "address": proof.address,
            "height": proof.height, "certified_by": certified.height, "balances": balances, **recorded,
            "proven_absent": absent, "validator_changes": len(proof.validators.changes)}


def _decode_account_key(name: str, value: bytes) -> Any:
    if name == "next_seq":
        return codec.decode(value, tuple[int, bytes])[0]
    if name == "frozen_by" or name == "banned_by":
        return f"proposal:{codec.decode(value, int)}"
    if name == "emergency_freeze":
        return f"emergency:{codec.decode(value, int)}"
    identity = codec.decode(value, IdentityRecord)
    return {"id": identity.identity.hex(), "level": identity.level, "expires_ms": identity.expires_ms,
            "provider": address_from_public_key(identity.provider)}


def verify_proof(proof: AuditProof, genesis: Genesis) -> dict[str, Any]:
    if isinstance(proof, EntryProof):
        return verify_entry_proof(proof, genesis)
    return verify_account_proof(proof, genesis)


def entry_concerns(header: EntryHeader, public_key: bytes) -> str:
    """How an entry concerns an account: "authored", "received", or "" (not at all)."""
    if header.author == public_key:
        return "authored"
    if header.kind == "transfer":
        op = decode_operation(header.kind, header.body)
        if isinstance(op, Transfer) and op.to == public_key:
            return "received"
    return ""

__all__ = ["PROOF_FORMAT", "AccountProof", "AuditProof", "DocumentDecoder", "EntryProof", "ProofMalformed",
           "decode_proof", "encode_proof", "verify_account_proof", "verify_entry_proof", "verify_proof"]

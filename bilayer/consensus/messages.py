"""What validators decide and say: checkpoints, proposals, votes, commit certificates.

Every signature is Ed25519 over CONSENSUS_DOMAIN followed by the canonical msgpack of a
tuple that names what is signed ("proposal" or "vote", chain, height, round, ...), so a
signature for one purpose can never be replayed for another, nor on another chain.
"""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache

import msgspec

from .. import codec
from ..keys.signing import Signer, verify
from .validators import ValidatorSet

CONSENSUS_DOMAIN = b"bilayer/consensus/v1"
CHECKPOINT_DOMAIN = b"bilayer/checkpoint/v1"
MAX_FRONTIER = 512
NIL = b""


class Checkpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True, cache_hash=True):
    """The value decided at one height. Rounds are not part of it (a value may be
    re-proposed in a later round); the round that decided it is in the certificate.

    `keywords` names, for each data entry it orders whose payload holds a keyword of a
    content rule in force, the keywords found: validators check this against the payloads
    before they vote, so execution (and a node that syncs without redacted bytes) never
    needs a payload."""

    chain: str
    height: int
    prev_id: bytes
    proposer: bytes
    frontier: tuple[bytes, ...]
    state_root: bytes
    results_root: bytes
    time_ms: int
    keywords: tuple[tuple[bytes, tuple[str, ...]], ...] = ()

    @property
    def id(self) -> bytes:
        return checkpoint_id(self)


@lru_cache(maxsize=256)
def checkpoint_id(checkpoint: Checkpoint) -> bytes:
    """Remembered: the consensus rules ask for the id of the round's value at every step, and
    encoding a checkpoint with a wide frontier and hashing it cost tens of microseconds each time."""
    return codec.sha256(CHECKPOINT_DOMAIN + codec.encode(checkpoint))


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


class Vote(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    chain: str
    height: int
    round: int
    type: int
    value_id: bytes
    validator: bytes
    signature: bytes


class Proposal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A proposal; a re-proposal (`valid_round >= 0`) carries its proof: the 2f+1 prevotes
    for the value at `valid_round`, each signed by its voter (not covered by the proposer's
    signature, and not needed: receivers check every vote)."""

    chain: str
    height: int
    round: int
    valid_round: int
    value: Checkpoint
    proposer: bytes
    signature: bytes
    proof: tuple[Vote, ...] = ()


class CommitSignature(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    validator: bytes
    signature: bytes


class CommitCertificate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Precommits of more than two thirds of the voting power for one value at one round."""

    height: int
    round: int
    value_id: bytes
    signatures: tuple[CommitSignature, ...]


class FinalizedCheckpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    checkpoint: Checkpoint
    certificate: CommitCertificate


@lru_cache(maxsize=65536)
def _verified(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519 verification, remembered: relayed and rebroadcast votes arrive many times."""
    return verify(public_key, message, signature)


def vote_message(chain: str, height: int, round_: int, type_: int, value_id: bytes) -> bytes:
    return CONSENSUS_DOMAIN + codec.encode(("vote", chain, height, round_, type_, value_id))


def proposal_message(chain: str, height: int, round_: int, valid_round: int, value_id: bytes) -> bytes:
    return CONSENSUS_DOMAIN + codec.encode(("proposal", chain, height, round_, valid_round, value_id))


def sign_vote(signer: Signer, chain: str, height: int, round_: int, type_: VoteType, value_id: bytes) -> Vote:
    signature = signer.sign(vote_message(chain, height, round_, int(type_), value_id))
    return Vote(chain, height, round_, int(type_), value_id, signer.public_key, signature)


def sign_proposal(
    signer: Signer, chain: str, height: int, round_: int, valid_round: int, value: Checkpoint,
    proof: tuple[Vote, ...] = (),
) -> Proposal:
    signature = signer.sign(proposal_message(chain, height, round_, valid_round, value.id))
    return Proposal(chain, height, round_, valid_round, value, signer.public_key, signature, proof)


def vote_signature_ok(vote: Vote) -> bool:
    return _verified(vote.validator, vote_message(vote.chain, vote.height, vote.round, vote.type, vote.value_id),
                     vote.signature)


def proposal_signature_ok(proposal: Proposal) -> bool:
    message = proposal_message(proposal.chain, proposal.height, proposal.round, proposal.valid_round,
                               proposal.value.id)
    return _verified(proposal.proposer, message, proposal.signature)


class CertificateInvalid(Exception):
    """A commit certificate does not prove finality."""


def verify_certificate(chain: str, checkpoint: Checkpoint, certificate: CommitCertificate,
                       validators: ValidatorSet) -> None:
    """Raise `CertificateInvalid` unless a quorum of `validators` precommitted this checkpoint."""
    if certificate.height != checkpoint.height or certificate.value_id != checkpoint.id:
        raise CertificateInvalid("certificate is for another checkpoint")
    if checkpoint.chain != chain:
        raise CertificateInvalid("checkpoint is for another chain")
    signers: set[bytes] = set()
    for item in certificate.signatures:
        if item.validator in signers:
            raise CertificateInvalid("a validator signs twice")
        if item.validator not in validators:
            raise CertificateInvalid("a signer is not a validator")
        message = vote_message(chain, certificate.height, certificate.round, int(VoteType.PRECOMMIT),
                               certificate.value_id)
        if not _verified(item.validator, message, item.signature):
            raise CertificateInvalid("a precommit signature does not verify")
        signers.add(item.validator)
    if not validators.is_quorum(validators.power_of(signers)):
        raise CertificateInvalid("the signatures do not reach a quorum of voting power")

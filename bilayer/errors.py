"""Every refusal in bilayer is a typed exception with a stable, machine-readable code.

Codes are part of the public contract (API bodies, CLI `--json` output, metrics labels):
never rename one; add a new class instead.
"""

from __future__ import annotations

from typing import Any, ClassVar


class BilayerError(Exception):
    """Base of all expected failures: carries a stable code (its HTTP status is the API's, `api/status.py`)."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message or self.__doc__ or self.code)
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


# --- entry validation (layer 1 ingress) -------------------------------------------------


class EntryInvalid(BilayerError):
    """The entry breaks a rule of the ledger."""

    code = "entry_invalid"


class BadEncoding(EntryInvalid):
    """The bytes are not a canonical encoding of the expected structure."""

    code = "bad_encoding"


class WrongChain(EntryInvalid):
    """The entry names another chain id."""

    code = "wrong_chain"


class BadSignature(EntryInvalid):
    """The signature does not verify under the author's key."""

    code = "bad_signature"


class EntryTooLarge(EntryInvalid):
    """The encoded header exceeds the size limit."""

    code = "entry_too_large"


class PayloadTooLarge(EntryInvalid):
    """The payload exceeds the limit of its operation type."""

    code = "payload_too_large"


class ParentCountOutOfRange(EntryInvalid):
    """An entry names between 1 and the maximum number of distinct parents."""

    code = "parent_count"


class DuplicateParents(EntryInvalid):
    """The same parent is named twice."""

    code = "duplicate_parents"


class SequenceReused(EntryInvalid):
    """The author already has a different entry with this sequence number (a fork)."""

    code = "sequence_reused"


class NotAFork(EntryInvalid):
    """Fork evidence must be two different entries one author signed at one sequence number."""

    code = "invalid_fork_evidence"


class SequenceGap(EntryInvalid):
    """The sequence number does not follow the author's previous entry."""

    code = "sequence_gap"


class MissingAuthorParent(EntryInvalid):
    """The first parent must be the author's previous entry."""

    code = "missing_author_parent"


class PayloadHashMismatch(EntryInvalid):
    """The payload does not hash to the header's payload hash."""

    code = "payload_hash_mismatch"


class TimestampInFuture(EntryInvalid):
    """The timestamp is further in the future than the allowed clock skew."""

    code = "timestamp_in_future"


class InsufficientWork(EntryInvalid):
    """The entry id does not carry the proof of work the chain requires."""

    code = "insufficient_work"


class UnknownOperation(EntryInvalid):
    """The operation type is not known to this chain."""

    code = "unknown_operation"


class InvalidOperation(EntryInvalid):
    """The operation body breaks the rules of its type."""

    code = "invalid_operation"


class UnsupportedVersion(EntryInvalid):
    """The entry format version is not supported."""

    code = "unsupported_version"


# --- node and API -----------------------------------------------------------------------


class RateLimited(BilayerError):
    """Too many entries from this author or connection; retry later."""

    code = "rate_limited"
    retry_after_s = 1  # sent as `Retry-After`: clients hold back this node that long


class NotFound(BilayerError):
    """Nothing with that id is stored here."""

    code = "not_found"


class PayloadWithheld(BilayerError):
    """The payload was deleted by a decision (a redaction, or a content rule): only its tombstone remains."""

    code = "payload_withheld"


class ContentRefused(BilayerError):
    """A content rule in force blocks this payload: no node serves it."""

    code = "content_blocked"


class BadRequest(BilayerError):
    """The request is malformed."""

    code = "bad_request"


class NotYetProvable(BilayerError):
    """The entry or state is final, but the checkpoint that certifies its root is not yet."""

    code = "not_yet_provable"


class ExportTooLarge(BilayerError):
    """An evidence export would hold more than the cap; narrow the window."""

    code = "export_too_large"


class ProofInvalid(BilayerError):
    """An audit proof does not prove what it claims; subclasses name the part that failed."""

    code = "proof_invalid"


class Overloaded(BilayerError):
    """The node is at capacity; retry later."""

    code = "overloaded"
    retry_after_s = 1  # sent as `Retry-After`: clients hold back this node that long


class NotReady(BilayerError):
    """The node runs but should not take client traffic now (catching up, no peers, halted or storage failing)."""

    code = "not_ready"


class InvalidAddress(BilayerError):
    """The text is not a valid bilayer address (wrong prefix, length or checksum)."""

    code = "invalid_address"


class TraceStartInvalid(BilayerError):
    """A trace starts at an address or at the id of an entry that moved funds."""

    code = "trace_start_invalid"


class TraceDirectionInvalid(BilayerError):
    """A trace goes forward (where funds went) or backward (where they came from)."""

    code = "trace_direction_invalid"


class TraceHopsInvalid(BilayerError):
    """A trace follows between 1 and 10 hops."""

    code = "trace_hops_invalid"


class TraceAssetInvalid(BilayerError):
    """An asset name is 1-16 characters of A-Z and 0-9, starting with a letter."""

    code = "trace_asset_invalid"


class AuditFilterInvalid(BilayerError):
    """A filter of the audit index query is not valid."""

    code = "audit_filter_invalid"


class KeystoreError(BilayerError):
    """The keystore cannot satisfy the request."""

    code = "keystore_error"


class KeyNotFound(KeystoreError):
    """No key with that name is in the keystore."""

    code = "key_not_found"


class KeyExists(KeystoreError):
    """A key with that name already exists."""

    code = "key_exists"


class PassphraseRequired(KeystoreError):
    """A new key is encrypted unless asked otherwise, and no passphrase was given."""

    code = "passphrase_required"


class BadPassphrase(KeystoreError):
    """The passphrase does not decrypt the key."""

    code = "bad_passphrase"


class ConfigError(BilayerError):
    """A configuration or genesis file is missing or invalid."""

    code = "config_error"


class NodeRunning(BilayerError):
    """A node process holds this home; stop it first."""

    code = "node_running"


class NodeUnreachable(BilayerError):
    """The node did not answer."""

    code = "node_unreachable"


class WaitTimeout(BilayerError):
    """The entry reached no final outcome in the time allowed."""

    code = "wait_timeout"


class RemoteError(BilayerError):
    """The node answered with an error; the code is the node's."""

    code = "remote_error"

    def __init__(self, code: str, message: str, http_status: int, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.remote_code = code
        self.remote_status = http_status
        self.retry_after_s = retry_after_s  # the node's `Retry-After` on a 429 or 503

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.remote_code, "message": self.message}}


class PeerProtocolError(BilayerError):
    """A peer broke the link protocol; the link is closed."""

    code = "peer_protocol"

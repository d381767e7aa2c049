"""The HTTP status of each error code: the API's decision, not the domain's.

Domain errors carry a stable code; how that code travels over HTTP is said here, once. A
code not listed is bad input (400). `error_status` is what every route's failure answers
with; `/openapi.json` lists each route's codes under these statuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

BAD_INPUT: Final = 400

_NOT_BAD_INPUT: Final[dict[int, tuple[str, ...]]] = {
    404: ("not_found", "state_version_unknown"),
    405: ("method_not_allowed",),
    409: ("sequence_reused", "not_yet_provable", "node_running", "snapshot_chunk_not_pending", "state_sync_conflict"),
    410: ("payload_withheld", "state_version_pruned"),
    413: ("entry_too_large", "payload_too_large", "export_too_large", "request_too_large"),
    415: ("unsupported_media_type",),
    422: (  # a proof or evidence document that does not verify
        "proof_invalid", "proof_malformed", "genesis_mismatch", "entry_malformed", "entry_signature_invalid",
        "payload_mismatch", "result_path_invalid", "checkpoint_link_invalid", "certificate_mismatch",
        "certificate_unknown_signer", "certificate_signature_invalid", "certificate_no_quorum",
        "validator_change_invalid", "validator_chain_incomplete", "state_proof_invalid",
        "export_malformed", "export_file_missing", "export_hash_mismatch", "export_entry_mismatch",
        "export_entry_unrelated", "receipt_history_invalid",
        "alert_id_mismatch", "alert_evidence_missing", "alert_evidence_unrelated", "alert_evidence_height",
        "alert_device_mismatch", "alert_lots_mismatch", "alert_observed_mismatch", "alert_expected_mismatch",
        "snapshot_chunk_invalid", "snapshot_chunk_malformed", "snapshot_chunk_hash_mismatch",
        "snapshot_chunk_out_of_place", "snapshot_chunk_too_large", "snapshot_chunk_truncated",
    ),
    429: ("rate_limited",),
    451: ("content_blocked",),
    500: ("internal", "storage_failed", "state_diverged", "audit_index_damaged", "state_node_missing",
          "state_store_corrupt", "chain_format_old", "chain_format_unknown"),
    502: ("sdk_unexpected_response",),
    503: ("overloaded", "not_ready", "node_unreachable", "snapshot_source_unavailable", "state_sync_no_sources"),
}

STATUS_OF_CODE: Final[Mapping[str, int]] = MappingProxyType(
    {code: status for status, codes in _NOT_BAD_INPUT.items() for code in codes})
"""Every code whose status is not 400."""

HTTP_CODES: Final[Mapping[int, str]] = MappingProxyType(
    {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"})
"""The codes of failures the HTTP layer itself raises (an unknown route, a body too large)."""

RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
"""Statuses whose answer says, in `Retry-After`, how long a client waits before sending again."""


def error_status(code: str) -> int:
    return STATUS_OF_CODE.get(code, BAD_INPUT)

"""Redaction: the council deletes entries' payloads from every node; each node serves a
tombstone instead. Ids commit to payload hashes only, so the DAG and every root stay
verifiable.

Keeper of these state keys:

    b"D" + entry id  -> RedactionRecord: the entry's payload is gone from every node
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ... import codec
from ...errors import BadRequest
from ...ledger.operations import RedactEntries
from ..state import Keeper, State
from .actions import ActionSpec, register_action
from .context import ExecContext
from .options import ActionOptions, parse_hex32

ENTRY_ID_SIZE = 32


class RedactionRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    decision: int
    reason_code: str
    time_ms: int
    height: int


REDACTED = b"D"


def _redaction_key(entry_id: bytes) -> bytes:
    return REDACTED + entry_id


def _entry_of(key: bytes) -> bytes | None:
    return key[1:] if key[:1] == REDACTED and len(key) == 1 + ENTRY_ID_SIZE else None


class Redactions(Keeper):
    __slots__ = ()
    KEYS = ((REDACTED, ENTRY_ID_SIZE),)

    def of(self, entry_id: bytes) -> RedactionRecord | None:
        raw = self.state.get(_redaction_key(entry_id))
        return None if raw is None else codec.decode(raw, RedactionRecord)

    def all(self) -> list[tuple[bytes, RedactionRecord]]:
        """(entry id, record), in entry id order."""
        return [(key[1:], codec.decode(value, RedactionRecord)) for key, value in self.state.scan(REDACTED)
                if _entry_of(key) is not None]

    def redact(self, entry_id: bytes, record: RedactionRecord) -> None:
        self.state.set(_redaction_key(entry_id), codec.encode(record))


def redactions_among(changes: Iterable[tuple[bytes, bytes | None]]) -> list[tuple[bytes, RedactionRecord]]:
    """The redactions a checkpoint's state changes made: their payloads go in the same commit."""
    found = []
    for key, value in changes:
        entry_id = _entry_of(key)
        if entry_id is not None and value is not None:
            found.append((entry_id, codec.decode(value, RedactionRecord)))
    return found


def redact_entries(ctx: ExecContext, state: State, number: int, action: RedactEntries) -> None:
    redactions = Redactions(state)
    for entry_id in action.entries:
        redactions.redact(entry_id, RedactionRecord(number, action.reason_code, ctx.time_ms, ctx.height))


def _redact(o: ActionOptions) -> RedactEntries:
    if not o.entries or not o.reason_code:
        raise BadRequest("--action redact needs --entry ID (repeatable) and --reason-code")
    return RedactEntries(tuple(parse_hex32(e, "an entry id") for e in o.entries), o.reason_code)


register_action(ActionSpec(
    RedactEntries, "redact", "delete entries' payloads from every node, leaving tombstones",
    build=lambda o, _: _redact(o), effect=redact_entries))

"""The words a user describes a governance action in: CLI options, API query parameters and
draft JSON all fill one `ActionOptions`, and each action's spec builds its struct from it.

A new action that needs a word no action used before adds a field here (and its CLI option
in `cli/gov_cmd.py`); one that reuses existing words adds nothing here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ... import codec
from ...errors import BadRequest
from ...keys.address import public_key_from_address
from ...ledger.operations import IDENTITY_ID_SIZE

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ActionOptions:
    """Everything a user may say about an action; each action reads the options it needs."""

    target: str | None = None
    service: str | None = None
    emergency: int | None = None
    identity: str | None = None
    min_level: str | None = None
    above: int = 0
    weight: int | None = None
    rule_id: str | None = None
    asset: str | None = None
    counterparties: tuple[str, ...] = ()
    max_level: str | None = None
    outcome: str = "reject"
    review_ms: int = 0
    payload_hash: str | None = None
    keyword: str | None = None
    media_type: str | None = None
    max_size: int | None = None
    entries: tuple[str, ...] = ()
    reason_code: str | None = None
    to: str | None = None
    assets: tuple[str, ...] = ()
    params: dict[str, int] = field(default_factory=dict)
    power: int | None = None
    name: str = ""

    def target_key(self, action: str) -> bytes:
        """The public key at --target, an address."""
        if not self.target:
            raise BadRequest(f"--action {action} needs --target ADDRESS")
        return public_key_from_address(self.target)

    def service_kind(self, action: str) -> str:
        if not self.service:
            raise BadRequest(f"--action {action} needs --service KIND (an operation kind, e.g. data)")
        return self.service

    def rule(self, action: str) -> str:
        if not self.rule_id:
            raise BadRequest(f"--action {action} needs --rule-id")
        return self.rule_id


def parse_key(text: str) -> bytes:
    """A public key given as an address or as 64 hex characters (as genesis and node keys are shown)."""
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    return public_key_from_address(text)


def parse_identity(text: str | None) -> bytes:
    identity = codec.from_hex(text or "", IDENTITY_ID_SIZE)
    if identity is None:
        raise BadRequest(f"an identity id is {IDENTITY_ID_SIZE * 2} hex characters")
    return identity


def parse_hex32(text: str, what: str) -> bytes:
    """32 bytes given as 64 hex characters (entry ids, hashes); `what` names them in the error."""
    value = codec.from_hex(text, 32)
    if value is None:
        raise BadRequest(f"{what} is 64 hex characters")
    return value

"""Addresses: the author's Ed25519 public key in text form, with a checksum.

Format: ``bl1`` followed by the RFC 4648 base32 alphabet in lower case, without padding,
of 36 bytes: the 32-byte public key, then the first 4 bytes of
SHA-256(``b"bilayer-address"`` || public key). A mistyped character changes the checksum,
so such an address is refused (a random error slips through with odds of 1 in 2**32).
Only this canonical text is accepted: lower case only (``BL1...`` or upper-case letters
are refused), and the 2 unused low bits of the last character must be zero, so each
public key has exactly one address.
The public key itself is in the address, so a signature can be checked from it alone.
"""

from __future__ import annotations

import base64
import hashlib

from ..errors import InvalidAddress

PREFIX = "bl1"
PUBLIC_KEY_SIZE = 32
_CHECKSUM_TAG = b"bilayer-address"
_CHECKSUM_SIZE = 4
_TEXT_LENGTH = len(PREFIX) + 58
_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")


def _checksum(public_key: bytes) -> bytes:
    return hashlib.sha256(_CHECKSUM_TAG + public_key).digest()[:_CHECKSUM_SIZE]


def address_from_public_key(public_key: bytes) -> str:
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidAddress(f"a public key has {PUBLIC_KEY_SIZE} bytes, not {len(public_key)}")
    raw = public_key + _checksum(public_key)
    return PREFIX + base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def public_key_from_address(address: str) -> bytes:
    """Parse and check an address; raise `InvalidAddress` with the reason."""
    if not isinstance(address, str) or not address.startswith(PREFIX):
        raise InvalidAddress(f"an address starts with {PREFIX!r}")
    if len(address) != _TEXT_LENGTH:
        raise InvalidAddress(f"an address has {_TEXT_LENGTH} characters, not {len(address)}")
    body = address[len(PREFIX) :]
    if not _ALPHABET.issuperset(body):
        raise InvalidAddress("an address uses only the lower-case letters a-z and digits 2-7 after 'bl1'")
    raw = base64.b32decode(body.upper() + "======")
    public_key, checksum = raw[:PUBLIC_KEY_SIZE], raw[PUBLIC_KEY_SIZE:]
    # b32decode ignores the last character's 2 spare bits: compare with the canonical text.
    if _checksum(public_key) != checksum or address_from_public_key(public_key) != address:
        raise InvalidAddress("address checksum mismatch (mistyped address?)")
    return public_key


def is_address(text: str) -> bool:
    try:
        public_key_from_address(text)
    except InvalidAddress:
        return False
    return True

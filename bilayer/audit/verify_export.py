"""Verifying an evidence export offline (`bilayer audit verify DIR`, or the one-document form):
the manifest's hashes, then every entry proof (`verify.py`), that each entry concerns the
account and was ordered in the window, and the account proof (balances, author head, and
the freezes, ban and identity proven present or absent) of the same account. Like
`verify.py`, pure: no node, storage or network code; it reads only the package it is given.
Building a package, on a node, is `export.py`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from .. import codec
from ..errors import ConfigError, ProofInvalid
from ..genesis import Genesis, validate_genesis
from ..keys.address import public_key_from_address
from ..ledger.entry import EntryHeader
from .verify import (
    AccountProof,
    EntryProof,
    GenesisMismatch,
    ProofMalformed,
    decode_proof,
    entry_concerns,
    verify_account_proof,
    verify_entry_proof,
)

EXPORT_FORMAT = 2  # 2: the account proof, with proofs of absence (no freeze, no ban)
MANIFEST = "manifest.json"
GENESIS_FILE = "genesis.json"
ACCOUNT_FILE = "account.json"
FILE_NAME = re.compile(r"genesis\.json|account\.json|(entries|acts)/[0-9a-f]{64}\.json")


class ExportMalformed(ProofInvalid):
    """The package is not an evidence export this verifier reads."""

    code = "export_malformed"


class ExportFileMissing(ProofInvalid):
    """A file the manifest lists is missing."""

    code = "export_file_missing"


class ExportHashMismatch(ProofInvalid):
    """A file differs from the hash the manifest records."""

    code = "export_hash_mismatch"


class ExportEntryMismatch(ProofInvalid):
    """A listed entry's file proves another entry."""

    code = "export_entry_mismatch"


class ExportEntryUnrelated(ProofInvalid):
    """A listed entry does not concern the account, or was not ordered in the window."""

    code = "export_entry_unrelated"


UNBOUNDED = 2**62  # the largest height or time (ms) a window names


class ExportQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The account, and the window: checkpoint times and heights, both inclusive."""

    account: str
    from_ms: int = 0
    to_ms: int = UNBOUNDED
    from_height: int = 1
    to_height: int = UNBOUNDED

    def covers(self, height: int, time_ms: int) -> bool:
        return self.from_height <= height <= self.to_height and self.from_ms <= time_ms <= self.to_ms


class ExportItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`role`: authored, received (entries) or the act's part, e.g. "proposal:3 proposed"."""

    id: str
    file: str
    role: str


class Unproven(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    role: str
    reason: str


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: int
    chain_id: str
    genesis_root: str
    query: ExportQuery
    height: int
    entries: tuple[ExportItem, ...]
    acts: tuple[ExportItem, ...]
    unproven: tuple[Unproven, ...]
    files: dict[str, str]
    account: str | None = None  # the account proof's file (None: no checkpoint was final yet)


class Package(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    manifest: Manifest
    files: dict[str, str]


# --- verifying (offline) -----------------------------------------------------------------------


def _read_manifest(data: bytes) -> Manifest:
    try:
        manifest = msgspec.json.decode(data, type=Manifest)
    except (msgspec.MsgspecError, ValueError) as exc:  # ValueError: bytes that are not UTF-8
        raise ExportMalformed(f"the manifest is invalid: {exc}") from None
    if manifest.format != EXPORT_FORMAT:
        raise ExportMalformed(f"export format {manifest.format} is not supported")
    for name in manifest.files:
        if not FILE_NAME.fullmatch(name):
            raise ExportMalformed(f"the manifest names a file outside the package layout: {name!r}")
    return manifest


def verify_package(manifest_bytes: bytes, read: Callable[[str], bytes | None], genesis: Genesis | None = None,
                   progress: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    """Check the manifest's hashes, then every proof, that each entry concerns the account and
    lies in the window. `genesis`, when given, must be the package's own."""
    manifest = _read_manifest(manifest_bytes)
    contents: dict[str, bytes] = {}
    for name, digest in manifest.files.items():
        data = read(name)
        if data is None:
            raise ExportFileMissing(f"{name} is listed in the manifest but missing")
        if hashlib.sha256(data).hexdigest() != digest:
            raise ExportHashMismatch(f"{name} differs from the manifest's hash")
        contents[name] = data
    if GENESIS_FILE not in contents:
        raise ExportFileMissing("the package holds no genesis.json")
    try:
        packaged = validate_genesis(msgspec.json.decode(contents[GENESIS_FILE], type=Genesis))
    except (msgspec.MsgspecError, ValueError, ConfigError) as exc:
        raise ExportMalformed(f"genesis.json is invalid: {exc}") from None
    if genesis is not None and genesis.root != packaged.root:
        raise GenesisMismatch("the package's genesis is not the one given")
    if manifest.chain_id != packaged.chain_id or manifest.genesis_root != packaged.root.hex():
        raise GenesisMismatch("the manifest names another chain than its genesis.json")
    public_key = public_key_from_address(manifest.query.account)

    def proven(item: ExportItem) -> tuple[EntryProof, dict[str, Any]]:
        data = contents.get(item.file)
        if data is None:
            raise ExportFileMissing(f"{item.file} is not in the manifest's files")
        proof = decode_proof(data)
        if not isinstance(proof, EntryProof):
            raise ProofMalformed(f"{item.file} is not an entry proof")
        summary = verify_entry_proof(proof, packaged)
        if summary["entry"] != item.id:
            raise ExportEntryMismatch(f"{item.file} proves entry {summary['entry']}, not {item.id}")
        progress(1)
        return proof, summary

    outcomes: dict[str, int] = {}
    for item in manifest.entries:
        proof, summary = proven(item)
        header = codec.decode(proof.entry.header, EntryHeader)
        if entry_concerns(header, public_key) != item.role:
            raise ExportEntryUnrelated(f"entry {item.id} is not {item.role} by {manifest.query.account}")
        ordered = proof.ordered_in.checkpoint
        if not manifest.query.covers(ordered.height, ordered.time_ms):
            raise ExportEntryUnrelated(f"entry {item.id} was ordered outside the window")
        outcomes[summary["outcome"]] = outcomes.get(summary["outcome"], 0) + 1
    for item in manifest.acts:
        proven(item)
    account: dict[str, Any] | None = None
    if manifest.account is not None:
        data = contents.get(manifest.account)
        if data is None or manifest.account != ACCOUNT_FILE:
            raise ExportFileMissing(f"{manifest.account} is not in the manifest's files")
        account_proof = decode_proof(data)
        if not isinstance(account_proof, AccountProof):
            raise ProofMalformed(f"{manifest.account} is not an account proof")
        account = verify_account_proof(account_proof, packaged)
        if account_proof.address != manifest.query.account:
            raise ExportEntryUnrelated(f"{manifest.account} proves {account_proof.address}, not"
                                       f" {manifest.query.account}")
        progress(1)
    elif manifest.height >= 1:
        raise ExportFileMissing("the package holds no account proof")
    return {"valid": True, "kind": "export", "chain_id": packaged.chain_id, "account": manifest.query.account,
            "window": msgspec.to_builtins(manifest.query), "entries": len(manifest.entries),
            "outcomes": outcomes, "acts": len(manifest.acts), "unproven": len(manifest.unproven),
            "files": len(manifest.files), "account_state": account}


def verify_directory(directory: Path, genesis: Genesis | None = None,
                     progress: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ExportFileMissing(f"{directory} holds no {MANIFEST}")

    def read(name: str) -> bytes | None:
        path = directory / name
        return path.read_bytes() if path.is_file() else None

    return verify_package(manifest_path.read_bytes(), read, genesis, progress)


def verify_document(package: Package, genesis: Genesis | None = None) -> dict[str, Any]:
    return verify_package(msgspec.json.encode(package.manifest), lambda name: (
        package.files[name].encode() if name in package.files else None), genesis)


def decode_package(data: bytes) -> Package:
    try:
        return msgspec.json.decode(data, type=Package)
    except (msgspec.MsgspecError, ValueError) as exc:  # ValueError: bytes that are not UTF-8
        raise ExportMalformed(f"not an evidence package: {exc}") from None

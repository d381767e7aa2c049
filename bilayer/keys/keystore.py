"""A directory of named keys, one JSON file per key, readable only by its owner.

A key file may be encrypted with a passphrase: Argon2id (libsodium's pwhash, "moderate"
limits) derives a key for an XSalsa20-Poly1305 secret box around the seed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import msgspec
import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from ..errors import BadPassphrase, InvalidAddress, KeyExists, KeyNotFound, KeystoreError
from .address import PUBLIC_KEY_SIZE, address_from_public_key
from .signing import Signer

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_KEYSTORE = "BILAYER_KEYSTORE"
ENV_PASSPHRASE = "BILAYER_PASSPHRASE"


class _Encrypted(msgspec.Struct, frozen=True):
    kdf: str
    salt: str
    opslimit: int
    memlimit: int
    ciphertext: str


class _KeyFile(msgspec.Struct, frozen=True):
    name: str
    address: str
    public_key: str
    seed: str | None = None
    encrypted: _Encrypted | None = None


@dataclass(frozen=True)
class KeyInfo:
    name: str
    address: str
    public_key: bytes
    encrypted: bool


def _unhex(text: str, size: int | None) -> bytes:
    raw = bytes.fromhex(text)
    if size is not None and len(raw) != size:
        raise ValueError(f"expected {size} bytes of hex, got {len(raw)}")
    return raw


def default_keystore() -> Path:
    env = os.environ.get(ENV_KEYSTORE)
    if env:
        return Path(env)
    return Path.home() / ".bilayer" / "keys"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise KeystoreError(
            f"invalid key name {name!r}: use 1-64 letters, digits, '_', '.', '-' (starting with a letter or digit)"
        )
    return name


class Keystore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _file(self, name: str) -> Path:
        return self.path / f"{check_name(name)}.json"

    def _read(self, name: str) -> _KeyFile:
        file = self._file(name)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(f"no key named {name!r} in {self.path}") from None
        except OSError as exc:
            raise KeystoreError(f"cannot read {file}: {exc.strerror}") from None
        try:
            record = msgspec.json.decode(data, type=_KeyFile)
        except msgspec.MsgspecError as exc:
            raise KeystoreError(f"key file {file} is damaged: {exc}") from None
        try:
            public_key = _unhex(record.public_key, PUBLIC_KEY_SIZE)
            if address_from_public_key(public_key) != record.address:
                raise ValueError("address does not match public key")
            if record.seed is not None:
                _unhex(record.seed, 32)
            enc = record.encrypted
            if enc is not None:
                argon = nacl.pwhash.argon2id
                _unhex(enc.salt, argon.SALTBYTES)
                _unhex(enc.ciphertext, None)
                if enc.kdf != "argon2id":
                    raise ValueError(f"unknown kdf {enc.kdf!r}")
                if not argon.OPSLIMIT_MIN <= enc.opslimit <= argon.OPSLIMIT_SENSITIVE:
                    raise ValueError("opslimit out of range")
                if not argon.MEMLIMIT_MIN <= enc.memlimit <= argon.MEMLIMIT_SENSITIVE:
                    raise ValueError("memlimit out of range")
        except (ValueError, InvalidAddress) as exc:
            raise KeystoreError(f"key file {file} is damaged: {exc}") from None
        return record

    def create(self, name: str, signer: Signer | None = None, passphrase: str | None = None) -> KeyInfo:
        file = self._file(name)
        if file.exists():
            raise KeyExists(f"a key named {name!r} already exists in {self.path}")
        signer = signer or Signer.generate()
        record = _KeyFile(name=name, address=signer.address, public_key=signer.public_key.hex())
        if passphrase:
            salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
            ops, mem = nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE
            box_key = nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, ops, mem)
            ciphertext = nacl.secret.SecretBox(box_key).encrypt(signer.seed)
            record = msgspec.structs.replace(
                record, encrypted=_Encrypted("argon2id", salt.hex(), ops, mem, bytes(ciphertext).hex())
            )
        else:
            record = msgspec.structs.replace(record, seed=signer.seed.hex())
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if self.path.is_dir():
                raise KeyExists(f"a key named {name!r} already exists in {self.path}") from None
            raise KeystoreError(f"cannot create keystore {self.path}: it exists and is not a directory") from None
        except OSError as exc:
            raise KeystoreError(f"cannot write to keystore {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as out:
            out.write(msgspec.json.format(msgspec.json.encode(record)) + b"\n")
        return self._info(record)

    @staticmethod
    def _info(record: _KeyFile) -> KeyInfo:
        return KeyInfo(record.name, record.address, bytes.fromhex(record.public_key), record.encrypted is not None)

    def info(self, name: str) -> KeyInfo:
        return self._info(self._read(name))

    def list(self) -> list[KeyInfo]:
        if not self.path.is_dir():
            return []
        infos = []
        for file in sorted(self.path.glob("*.json")):
            try:
                infos.append(self.info(file.stem))
            except KeystoreError:
                continue
        return infos

    def load(self, name: str, passphrase: str | None = None) -> Signer:
        record = self._read(name)
        if record.encrypted is not None:
            passphrase = passphrase if passphrase is not None else os.environ.get(ENV_PASSPHRASE)
            if passphrase is None:
                raise BadPassphrase(f"key {name!r} is encrypted: give its passphrase (or set {ENV_PASSPHRASE})")
            enc = record.encrypted
            box_key = nacl.pwhash.argon2id.kdf(
                nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), bytes.fromhex(enc.salt), enc.opslimit, enc.memlimit
            )
            try:
                seed = nacl.secret.SecretBox(box_key).decrypt(bytes.fromhex(enc.ciphertext))
            except nacl.exceptions.CryptoError:
                raise BadPassphrase(f"wrong passphrase for key {name!r}") from None
        elif record.seed is not None:
            seed = bytes.fromhex(record.seed)
        else:
            raise KeystoreError(f"key file for {name!r} holds no key")
        signer = Signer(seed)
        if signer.public_key.hex() != record.public_key:
            raise KeystoreError(f"key file for {name!r} is inconsistent (seed does not match public key)")
        return signer

"""Addresses, the keystore and signature checks: every refusal is a typed error, never a crash."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bilayer.errors import BadPassphrase, InvalidAddress, KeyExists, KeyNotFound, KeystoreError
from bilayer.keys.address import PREFIX, address_from_public_key, is_address, public_key_from_address
from bilayer.keys.keystore import ENV_PASSPHRASE, Keystore, check_name
from bilayer.keys.signing import SIGNATURE_SIZE, Signer, verify
from tests.support.builders import seeded_signer

ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
ADDRESS_LENGTH = 61


@pytest.fixture(autouse=True)
def _no_passphrase_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PASSPHRASE, raising=False)


# --- addresses --------------------------------------------------------------------------


@given(st.binary(min_size=32, max_size=32))
@settings(max_examples=150, deadline=None)
def test_address_round_trip(public_key: bytes) -> None:
    address = address_from_public_key(public_key)
    assert len(address) == ADDRESS_LENGTH
    assert address.startswith("bl1") and PREFIX == "bl1"
    assert set(address[3:]) <= set(ALPHABET)
    assert address == address.lower()
    assert public_key_from_address(address) == public_key
    assert is_address(address)


def test_address_of_signer_matches_its_public_key() -> None:
    signer = seeded_signer(7)
    assert signer.address == address_from_public_key(signer.public_key)
    assert public_key_from_address(signer.address) == signer.public_key


def test_address_vector_is_stable() -> None:
    assert address_from_public_key(bytes(32)) == "bl1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaefmc7km"


@pytest.mark.parametrize("size", [0, 1, 31, 33, 64])
def test_address_from_public_key_of_wrong_size(size: int) -> None:
    with pytest.raises(InvalidAddress):
        address_from_public_key(bytes(size))


@pytest.mark.parametrize("seed", [1, 2, 3, 99])
def test_every_single_character_substitution_is_refused(seed: int) -> None:
    address = seeded_signer(seed).address
    positions = [3, 4, 10, 30, 45, 55, 58, 59, 60]
    for position in positions:
        for char in ALPHABET:
            if char == address[position]:
                continue
            typo = address[:position] + char + address[position + 1 :]
            with pytest.raises(InvalidAddress, match="checksum"):
                public_key_from_address(typo)
            assert not is_address(typo)


def test_last_character_spare_bits_must_be_zero() -> None:
    # 36 bytes are 288 bits: the last of 58 base32 characters carries 2 unused bits.
    public_key = seeded_signer(5).public_key
    address = address_from_public_key(public_key)
    last = ALPHABET.index(address[-1])
    assert last & 0b11 == 0
    for spare in (1, 2, 3):
        variant = address[:-1] + ALPHABET[last | spare]
        assert base64.b32decode(variant[3:].upper() + "======")[:32] == public_key
        with pytest.raises(InvalidAddress, match="checksum"):
            public_key_from_address(variant)


def test_transposed_characters_are_refused() -> None:
    address = seeded_signer(11).address
    swapped = 0
    for i in range(3, ADDRESS_LENGTH - 1):
        if address[i] == address[i + 1]:
            continue
        typo = address[:i] + address[i + 1] + address[i] + address[i + 2 :]
        assert not is_address(typo), i
        swapped += 1
    assert swapped > 40


@pytest.mark.parametrize("prefix", ["", "bl", "bl2", "bc1", "BL1", "Bl1", "xbl1"])
def test_wrong_prefix_is_refused(prefix: str) -> None:
    body = seeded_signer(1).address[3:]
    with pytest.raises(InvalidAddress, match="starts with"):
        public_key_from_address(prefix + body)


def test_wrong_length_is_refused() -> None:
    address = seeded_signer(1).address
    for text in ("bl1", address[:-1], address[:-8], address + "a", address + "aaaaaaaa", address + " ", " " + address):
        with pytest.raises(InvalidAddress):
            public_key_from_address(text)
    with pytest.raises(InvalidAddress, match="61 characters, not 60"):
        public_key_from_address(address[:-1])
    with pytest.raises(InvalidAddress, match="61 characters, not 62"):
        public_key_from_address(address + "q")


@pytest.mark.parametrize("bad", ["0", "1", "8", "9", "=", " ", "-", "_", "\n", "\x00", "é", "ß", "\u0663", "\uff21"])
def test_non_base32_characters_are_refused(bad: str) -> None:
    address = seeded_signer(3).address
    for position in (3, 30, 60):
        text = address[:position] + bad + address[position + 1 :]
        assert len(text) == ADDRESS_LENGTH
        with pytest.raises(InvalidAddress, match="a-z and digits 2-7"):
            public_key_from_address(text)


def test_upper_case_is_refused_as_documented() -> None:
    """Addresses are produced in lower case only, and only the lower-case form is accepted."""
    import bilayer.keys.address as address_module

    assert "lower case only" in (address_module.__doc__ or "")
    address = seeded_signer(4).address
    assert address == address.lower()
    letters = [i for i in range(3, ADDRESS_LENGTH) if address[i].isalpha()]
    assert len(letters) > 10
    with pytest.raises(InvalidAddress, match="starts with"):
        public_key_from_address(address.upper())
    variants = [PREFIX + address[3:].upper()] + [address[:i] + address[i].upper() + address[i + 1 :] for i in letters]
    for text in variants:
        with pytest.raises(InvalidAddress, match="lower-case"):
            public_key_from_address(text)
        assert not is_address(text)


@pytest.mark.parametrize("value", [None, 42, b"bl1", ["bl1"]])
def test_non_text_is_refused(value: object) -> None:
    with pytest.raises(InvalidAddress):
        public_key_from_address(value)  # type: ignore[arg-type]
    assert not is_address(value)  # type: ignore[arg-type]


@given(st.text(max_size=80) | st.text(alphabet="bl1" + ALPHABET + "AZ01=", min_size=61, max_size=61))
@settings(max_examples=150, deadline=None)
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        public_key = public_key_from_address(text)
    except InvalidAddress:
        return
    assert address_from_public_key(public_key) == text


# --- keystore ---------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keystore_create_list_info_load(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "keys")
    assert store.list() == []
    alice = store.create("alice")
    signer = seeded_signer(9)
    bob = store.create("bob", signer=signer)
    assert bob.address == signer.address and bob.public_key == signer.public_key
    assert not alice.encrypted
    assert [i.name for i in store.list()] == ["alice", "bob"]
    assert store.info("alice") == alice
    assert store.load("bob") == signer
    loaded = store.load("alice")
    assert loaded.address == alice.address
    assert verify(alice.public_key, b"m", loaded.sign(b"m"))
    assert _mode(store.path) == 0o700
    for name in ("alice", "bob"):
        assert _mode(store.path / f"{name}.json") == 0o600
    record = json.loads((store.path / "alice.json").read_text())
    assert record["address"] == alice.address and record["public_key"] == alice.public_key.hex()


def test_keystore_new_directory_is_private_even_with_lax_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = Keystore(tmp_path / "a" / "keys")
        store.create("k")
    finally:
        os.umask(old)
    assert _mode(store.path) == 0o700
    assert _mode(store.path / "k.json") == 0o600


def test_duplicate_name_is_refused_and_keeps_the_first_key(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    first = store.create("alice")
    with pytest.raises(KeyExists) as info:
        store.create("alice")
    assert info.value.code == "key_exists"
    assert store.info("alice") == first
    assert len(store.list()) == 1


def test_unknown_key(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "missing")
    for call in (store.info, store.load):
        with pytest.raises(KeyNotFound) as info:
            call("nobody")
        assert info.value.code == "key_not_found"
        assert isinstance(info.value, KeystoreError)


@pytest.mark.parametrize(
    "name",
    [
        *("", "../x", "..", ".", "a/b", "/abs", ".hidden", "-dash", "_under", "a b", "a\nb", "alice\n", "a\x00"),
        *("é", "a" * 65, "../../etc/passwd", "a/../b", "C:\\x", "~"),
    ],
)
def test_invalid_names_are_refused(tmp_path: Path, name: str) -> None:
    store = Keystore(tmp_path / "keys")
    with pytest.raises(KeystoreError, match="invalid key name"):
        check_name(name)
    with pytest.raises(KeystoreError, match="invalid key name"):
        store.create(name)
    with pytest.raises(KeystoreError, match="invalid key name"):
        store.info(name)
    with pytest.raises(KeystoreError, match="invalid key name"):
        store.load(name)
    assert not (tmp_path / "x.json").exists()
    assert not store.path.exists() or list(store.path.iterdir()) == []


@pytest.mark.parametrize("name", ["a", "A1", "node_key", "x.y-z_1", "a" * 64])
def test_valid_names(tmp_path: Path, name: str) -> None:
    store = Keystore(tmp_path)
    assert check_name(name) == name
    store.create(name)
    assert store.info(name).name == name
    assert (tmp_path / f"{name}.json").is_file()


@pytest.fixture(scope="module")
def encrypted_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Keystore, Signer]]:
    store = Keystore(tmp_path_factory.mktemp("enc") / "keys")
    signer = seeded_signer(21)
    info = store.create("secret", signer=signer, passphrase="correct horse")
    assert info.encrypted
    yield store, signer


def test_encrypted_key_file_holds_no_seed(encrypted_store: tuple[Keystore, Signer]) -> None:
    store, signer = encrypted_store
    text = (store.path / "secret.json").read_text()
    record = json.loads(text)
    assert record.get("seed") is None
    assert record["encrypted"]["kdf"] == "argon2id"
    import nacl.pwhash

    moderate = (nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE)
    assert (record["encrypted"]["opslimit"], record["encrypted"]["memlimit"]) == moderate  # the keystore's own cost
    assert signer.seed.hex() not in text
    assert store.info("secret").encrypted
    assert _mode(store.path / "secret.json") == 0o600


def test_encrypted_key_loads_with_the_right_passphrase(encrypted_store: tuple[Keystore, Signer]) -> None:
    store, signer = encrypted_store
    assert store.load("secret", passphrase="correct horse") == signer


def test_encrypted_key_loads_with_the_passphrase_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the passphrase comes from is apart from the KDF's cost: a cheap file says it (the right
    passphrase at the keystore's own cost is proven above)."""
    signer = seeded_signer(22)
    store = _cheap_store(tmp_path, "cheap", signer, b"correct horse")
    monkeypatch.setenv(ENV_PASSPHRASE, "correct horse")
    assert store.load("cheap") == signer


def test_encrypted_key_refuses_a_wrong_passphrase(tmp_path: Path) -> None:
    store = _cheap_store(tmp_path, "cheap", seeded_signer(22), b"correct horse")
    with pytest.raises(BadPassphrase, match="wrong passphrase") as info:
        store.load("cheap", passphrase="Correct horse")
    assert info.value.code == "bad_passphrase"


def test_encrypted_key_refuses_no_passphrase(encrypted_store: tuple[Keystore, Signer]) -> None:
    store, _ = encrypted_store
    with pytest.raises(BadPassphrase, match="encrypted"):
        store.load("secret")


def _cheap_store(path: Path, name: str, signer: Signer, passphrase: bytes) -> Keystore:
    """A keystore holding one key encrypted by hand with the KDF's least limits (milliseconds to
    derive where the keystore's own limits take about a second)."""
    import nacl.pwhash
    import nacl.secret

    argon = nacl.pwhash.argon2id
    salt = bytes(range(argon.SALTBYTES))
    box_key = argon.kdf(32, passphrase, salt, argon.OPSLIMIT_MIN, argon.MEMLIMIT_MIN)
    ciphertext = bytes(nacl.secret.SecretBox(box_key).encrypt(signer.seed))
    record = {
        "name": name,
        "address": signer.address,
        "public_key": signer.public_key.hex(),
        "encrypted": {
            "kdf": "argon2id",
            "salt": salt.hex(),
            "opslimit": argon.OPSLIMIT_MIN,
            "memlimit": argon.MEMLIMIT_MIN,
            "ciphertext": ciphertext.hex(),
        },
    }
    (path / f"{name}.json").write_text(json.dumps(record))
    return Keystore(path)


def test_encrypted_key_with_cheap_kdf_written_by_hand(tmp_path: Path) -> None:
    """The KDF limits come from the file, so a wrong passphrase is refused for any stored limits."""
    signer = seeded_signer(22)
    store = _cheap_store(tmp_path, "cheap", signer, b"pw")
    assert store.load("cheap", passphrase="pw") == signer
    for wrong in ("", "pw ", "PW"):
        with pytest.raises(BadPassphrase):
            store.load("cheap", passphrase=wrong)


def _good_record(signer: Signer) -> dict[str, object]:
    return {"name": "k", "address": signer.address, "public_key": signer.public_key.hex(), "seed": signer.seed.hex()}


def _variant(**changes: object) -> bytes:
    return json.dumps(_good_record(seeded_signer(31)) | changes).encode()


_ENCRYPTED = {"kdf": "argon2id", "salt": "00" * 16, "opslimit": 1, "memlimit": 8192, "ciphertext": "00" * 72}


def _unreadable_files() -> list[tuple[str, bytes]]:
    """Damage that `info` and `list` already notice."""
    signer = seeded_signer(31)
    other = seeded_signer(32)
    good = _good_record(signer)
    variant = _variant
    encrypted = _ENCRYPTED
    return [
        ("empty", b""),
        ("truncated", json.dumps(good).encode()[:40]),
        ("not json", b"\x00\xff garbage"),
        ("a list", b"[]"),
        ("wrong types", variant(seed=5)),
        ("missing public key", json.dumps({"name": "k", "address": signer.address}).encode()),
        ("non-hex public key", variant(public_key="zz" * 32)),
        ("short public key", variant(public_key="ab" * 31)),
        ("odd-length seed", variant(seed="abc")),
        ("short seed", variant(seed="00" * 31)),
        ("non-hex seed", variant(seed="xy" * 32)),
        ("address of another key", variant(address=other.address)),
        ("invalid address", variant(address="bl1nonsense")),
        ("bad salt", variant(seed=None, encrypted=encrypted | {"salt": "00"})),
        ("non-hex ciphertext", variant(seed=None, encrypted=encrypted | {"ciphertext": "nothex"})),
        ("unknown kdf", variant(seed=None, encrypted=encrypted | {"kdf": "scrypt"})),
        ("zero opslimit", variant(seed=None, encrypted=encrypted | {"opslimit": 0})),
        ("huge memlimit", variant(seed=None, encrypted=encrypted | {"memlimit": 2**60})),
    ]


@pytest.mark.parametrize(("label", "content"), _unreadable_files(), ids=[label for label, _ in _unreadable_files()])
def test_damaged_key_file_is_a_keystore_error(tmp_path: Path, label: str, content: bytes) -> None:
    store = Keystore(tmp_path)
    store.create("fine")
    (tmp_path / "k.json").write_bytes(content)
    with pytest.raises(KeystoreError, match="damaged") as info:
        store.info("k")
    assert type(info.value) is KeystoreError, label
    with pytest.raises(KeystoreError, match="damaged") as info:
        store.load("k", passphrase="pw")
    assert type(info.value) is KeystoreError, label
    with pytest.raises(KeyExists):
        store.create("k")
    assert [i.name for i in store.list()] == ["fine"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (_variant(seed=seeded_signer(32).seed.hex()), "inconsistent"),
        (_variant(seed=None), "holds no key"),
    ],
    ids=["seed of another key", "no key at all"],
)
def test_key_file_whose_seed_is_unusable(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "k.json").write_bytes(content)
    store = Keystore(tmp_path)
    assert store.info("k").address == seeded_signer(31).address
    with pytest.raises(KeystoreError, match=reason) as info:
        store.load("k")
    assert type(info.value) is KeystoreError


def test_key_file_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d.json").mkdir()
    store = Keystore(tmp_path)
    with pytest.raises(KeystoreError):
        store.info("d")
    with pytest.raises(KeystoreError):
        store.create("d")
    assert store.list() == []


def test_keystore_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    store = Keystore(path)
    with pytest.raises(KeystoreError) as info:
        store.create("alice")
    assert not isinstance(info.value, KeyExists)
    assert store.list() == []
    with pytest.raises(KeystoreError):
        store.info("alice")


# --- signatures -------------------------------------------------------------------------


def test_sign_and_verify() -> None:
    signer = seeded_signer(41)
    signature = signer.sign(b"message")
    assert len(signature) == SIGNATURE_SIZE
    assert verify(signer.public_key, b"message", signature)
    assert signer.sign(b"message") == signature
    assert not verify(signer.public_key, b"messagE", signature)
    assert not verify(seeded_signer(42).public_key, b"message", signature)
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify(signer.public_key, b"message", flipped)


def test_verify_refuses_wrong_lengths_without_raising() -> None:
    signer = seeded_signer(43)
    signature = signer.sign(b"m")
    pk = signer.public_key
    for bad_pk in (b"", pk[:31], pk + b"\x00", pk * 2):
        assert verify(bad_pk, b"m", signature) is False
    for bad_sig in (b"", signature[:63], signature + b"\x00", signature * 2):
        assert verify(pk, b"m", bad_sig) is False
    assert verify(pk, b"", signature) is False
    assert verify(pk, b"m" * 100_000, signature) is False
    empty_signature = signer.sign(b"")
    assert verify(pk, b"", empty_signature) is True


def test_verify_refuses_degenerate_keys_and_signatures() -> None:
    signer = seeded_signer(44)
    signature = signer.sign(b"m")
    identity = bytes([1]) + bytes(31)
    for pk in (bytes(32), identity, b"\xff" * 32):
        assert verify(pk, b"m", signature) is False
        assert verify(pk, b"m", bytes(64)) is False
        assert verify(pk, b"m", identity + bytes(32)) is False
    assert verify(signer.public_key, b"m", b"\xff" * 64) is False
    # S >= L (non-canonical): R || (S + L) must not verify.
    order = 2**252 + 27742317777372353535851937790883648493
    s_value = int.from_bytes(signature[32:], "little") + order
    assert s_value < 2**256
    assert verify(signer.public_key, b"m", signature[:32] + s_value.to_bytes(32, "little")) is False


@given(st.binary(max_size=40), st.binary(max_size=64), st.binary(max_size=70))
@settings(max_examples=150, deadline=None)
def test_verify_never_raises_on_arbitrary_bytes(public_key: bytes, message: bytes, signature: bytes) -> None:
    assert verify(public_key, message, signature) is False


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=64), st.binary(min_size=64, max_size=64))
@settings(max_examples=150, deadline=None)
def test_verify_never_raises_on_right_sized_random_input(public_key: bytes, message: bytes, signature: bytes) -> None:
    assert verify(public_key, message, signature) is False

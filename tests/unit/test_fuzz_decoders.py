"""Property tests: every decoder and the entry checker, fed arbitrary and mutated input.

The only failure any of them may report is a `BilayerError` (the framing reader may also
report the end of the stream as `ConnectionResetError`). Canonical decoding must round-trip
and must refuse every other encoding of the same value.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import string
import struct
from typing import Any, cast

import msgspec
import nacl.public
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bilayer import codec
from bilayer.api.routes.entries import JsonBatch
from bilayer.apps.notary.operations import NotaryRegister, NotaryTransfer
from bilayer.errors import BadEncoding, BilayerError, PeerProtocolError
from bilayer.execution.application import installed_applications
from bilayer.genesis import ChainParams, Genesis
from bilayer.keys.address import address_from_public_key, public_key_from_address
from bilayer.ledger.entry import EntryHeader, SignedEntry, entry_id, signing_message
from bilayer.ledger.operations import Operation, decode_operation, operation_kinds
from bilayer.ledger.validation import check_entry, decode_signed_entry
from bilayer.node import messages, transport
from bilayer.node.messages import EntriesMsg, TipsMsg, WantMsg, decode_message
from tests.support.builders import make_entry, seeded_signer
from tests.support.warehouse_samples import SAMPLES as WAREHOUSE_SAMPLES

installed_applications()  # their operation kinds are fuzzed like the chain's own

PROPERTY = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

GENESIS = Genesis(chain_id="test-chain", genesis_time_ms=1_700_000_000_000, params=ChainParams(pow_bits=4))
NO_WORK = ChainParams(pow_bits=0)
NOW_MS = 1_800_000_000_000
FIELD_NAMES = [
    *EntryHeader.__struct_fields__,
    *SignedEntry.__struct_fields__,
    *transport.Hello.__struct_fields__,
    "type",
    "items",
    "ids",
    "media_type",
    "asset",
    "amount",
    "to",
]

# --- strategies ---------------------------------------------------------------------------

u64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    u64,
    st.floats(allow_nan=True),
    st.binary(max_size=80),
    st.text(max_size=30),
    st.sampled_from(["entries", "want", "tips", "data", "transfer", "test-chain", "BLY", "text/plain"]),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8), st.integers(-3, 3))
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=12,
)


def _msgpack(value: Any) -> bytes:
    return codec.encode(value)


msgpack_bytes = structures.map(_msgpack)
arbitrary = st.one_of(st.binary(max_size=1200), msgpack_bytes)
hashes = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40))

HEADER_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "version": st.one_of(st.just(1), u64),
    "chain": st.one_of(st.just(GENESIS.chain_id), st.text(max_size=20)),
    "author": st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40)),
    "seq": st.one_of(st.integers(0, 3), u64),
    "parents": st.one_of(st.just((GENESIS.root,)), st.lists(hashes, max_size=10).map(tuple)),
    "time_ms": st.one_of(st.integers(0, NOW_MS), u64),
    "kind": st.one_of(st.sampled_from(operation_kinds()), st.text(max_size=12)),
    "body": st.one_of(msgpack_bytes, st.binary(max_size=100)),
    "payload_hash": hashes,
    "payload_size": st.one_of(st.integers(0, 100), u64),
    "nonce": st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=12)),
}
headers = st.builds(EntryHeader, **HEADER_FIELDS)
signed_entries = st.builds(
    SignedEntry, header=st.binary(max_size=600), signature=st.binary(max_size=80), payload=st.binary(max_size=200)
)


def _valid_bodies() -> st.SearchStrategy[tuple[str, bytes]]:
    data = st.builds(
        dict, media_type=st.one_of(st.sampled_from(["text/plain", "a/b", "text/plain\n"]), st.text(max_size=70))
    )
    transfer = st.builds(
        dict,
        asset=st.one_of(st.just("BLY"), st.text(max_size=20)),
        amount=u64,
        to=st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40)),
    )
    from bilayer.ledger import operations as ops

    key = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40))
    action = st.one_of(
        st.builds(ops.FreezeAccount, key),
        st.builds(ops.BanKey, key),
        st.builds(ops.SuspendService, st.text(max_size=12)),
        st.builds(ops.AppointOperator, key, st.text(max_size=12)),
        st.builds(ops.RatifyEmergency, st.integers(-5, 2**40)),
        st.builds(ops.SetIdentityRule, st.text(max_size=12), st.integers(-2, 5), st.integers(-5, 2**40)),
        st.builds(ops.SetCouncilMember, key, st.integers(-5, 2**40)),
        st.builds(ops.BanIdentity, st.binary(max_size=20)),
        st.builds(ops.SetContentRule, st.text(max_size=12), st.binary(max_size=40), st.text(max_size=70),
                  st.text(max_size=20), st.integers(-5, 2**40)),
        st.builds(ops.RedactEntries, st.lists(st.binary(max_size=40), max_size=3).map(tuple), st.text(max_size=50)),
        st.builds(ops.RecoverAssets, key, key, st.lists(st.text(max_size=5), max_size=3).map(tuple)),
        st.builds(ops.SetInterceptionRule, st.text(max_size=12), st.integers(-5, 2**40), st.text(max_size=5),
                  st.just(()), st.integers(-3, 3), st.text(max_size=8), st.integers(-5, 2**40)),
    )
    management = st.one_of(
        st.builds(ops.GovPropose, action=action, reason=st.text(max_size=50), legal_ref=st.text(max_size=20)),
        st.builds(ops.GovVote, proposal=st.integers(-5, 2**40), choice=st.sampled_from(["yes", "no", "maybe"])),
        st.builds(ops.GovExecute, proposal=st.integers(-5, 2**40)),
        st.builds(ops.RegFreeze, account=key, reason=st.text(max_size=50), legal_ref=st.text(max_size=20)),
        st.builds(ops.IdAttest, subject=key, identity=st.binary(max_size=20), level=st.integers(-2, 5),
                  expires_ms=st.integers(-5, 2**50)),
        st.builds(ops.RegReview, entry=key, decision=st.sampled_from(["release", "reject", "keep"]),
                  reason=st.text(max_size=50)),
        st.builds(ops.AppPause, kind=st.text(max_size=12), reason=st.text(max_size=50)),
        st.builds(ops.AppResume, kind=st.text(max_size=12), reason=st.text(max_size=50)),
        st.builds(NotaryRegister, document=key, title=st.text(max_size=210)),
        st.builds(NotaryTransfer, document=key, to=key),
        st.sampled_from(list(WAREHOUSE_SAMPLES.values())),
        st.builds(ops.RegIntercept, rule=st.builds(ops.SetInterceptionRule, st.text(max_size=12),
                                                   st.integers(-5, 2**40)),
                  reason=st.text(max_size=50), legal_ref=st.text(max_size=20)),
    )
    return st.one_of(
        data.map(lambda d: ("data", codec.encode(d))),
        transfer.map(lambda d: ("transfer", codec.encode(d))),
        management.map(lambda op: (op.KIND, codec.encode(op))),
    )


def only_bilayer_errors(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call; a BilayerError is an answer (returned as None), anything else fails the test."""
    try:
        return function(*args, **kwargs)
    except BilayerError:
        return None


# --- decoders -------------------------------------------------------------------------------


@PROPERTY
@given(data=arbitrary)
def test_decode_signed_entry(data: bytes) -> None:
    signed = only_bilayer_errors(decode_signed_entry, data)
    if signed is not None:
        assert isinstance(signed, SignedEntry)
        assert codec.encode(signed) == data


@PROPERTY
@given(data=arbitrary)
def test_decode_entry_header(data: bytes) -> None:
    header = only_bilayer_errors(codec.decode_canonical, data, EntryHeader)
    if header is not None:
        assert isinstance(header, EntryHeader)
        assert codec.encode(header) == data


def _message_bytes() -> st.SearchStrategy[bytes]:
    items = st.lists(st.one_of(signed_entries, structures), max_size=4)
    ids = st.lists(st.one_of(hashes, structures), max_size=6)
    tagged = st.one_of(
        st.builds(lambda t, v: {"type": t, "items": v}, st.sampled_from(["entries", "want", "tips", "x"]), items),
        st.builds(lambda t, v: {"type": t, "ids": v}, st.sampled_from(["entries", "want", "tips", "x"]), ids),
    )
    return st.one_of(arbitrary, tagged.map(_msgpack))


@PROPERTY
@given(data=_message_bytes())
def test_decode_message(data: bytes) -> None:
    message = only_bilayer_errors(decode_message, data)
    if message is None:
        return
    assert isinstance(message, EntriesMsg | WantMsg | TipsMsg)
    if isinstance(message, EntriesMsg):
        assert len(message.items) <= messages.MAX_ITEMS
        assert all(isinstance(item, SignedEntry) for item in message.items)
    else:
        assert len(message.ids) <= messages.MAX_IDS
        assert all(isinstance(i, bytes) for i in message.ids)


def test_decode_message_refuses_oversized_lists() -> None:
    with pytest.raises(BadEncoding):
        decode_message(codec.encode(WantMsg([b""] * (messages.MAX_IDS + 1))))
    with pytest.raises(BadEncoding):
        decode_message(codec.encode(EntriesMsg([SignedEntry(b"", b"", b"")] * (messages.MAX_ITEMS + 1))))
    with pytest.raises(BadEncoding):
        decode_message(b"\x82\xa4type\xa7entries\xa5items\xdd\xff\xff\xff\xff")  # claims 4 G items


@PROPERTY
@given(
    data=st.one_of(
        arbitrary,
        st.builds(transport.Hello, u64, st.text(max_size=20), hashes, hashes, st.text(max_size=30)).map(_msgpack),
    )
)
def test_decode_hello(data: bytes) -> None:
    hello = only_bilayer_errors(codec.decode_canonical, data, transport.Hello)
    if hello is not None:
        assert codec.encode(hello) == data


@PROPERTY
@given(data=st.one_of(arbitrary, st.builds(transport.Auth, st.binary(max_size=80)).map(_msgpack)))
def test_decode_auth(data: bytes) -> None:
    auth = only_bilayer_errors(codec.decode_canonical, data, transport.Auth)
    if auth is not None:
        assert codec.encode(auth) == data


@PROPERTY
@given(
    kind=st.one_of(st.sampled_from(operation_kinds()), st.text(max_size=15)),
    body=st.one_of(arbitrary, _valid_bodies().map(lambda pair: pair[1])),
    payload_size=st.integers(0, 2**20),
)
def test_decode_operation_every_kind(kind: str, body: bytes, payload_size: int) -> None:
    op = only_bilayer_errors(decode_operation, kind, body)
    if op is None:
        return
    assert isinstance(op, Operation) and kind == op.KIND
    assert codec.encode(op) == body
    only_bilayer_errors(op.check, payload_size, GENESIS.params)
    only_bilayer_errors(op.view)


@pytest.mark.parametrize("kind", operation_kinds())
def test_every_operation_kind_is_fuzzed(kind: str) -> None:
    """Each registered kind decodes a valid body and refuses a broken one."""
    from bilayer.ledger import operations as ops

    bodies: dict[str, Any] = {
        "data": {"media_type": "text/plain"},
        "transfer": {"asset": "BLY", "amount": 1, "to": bytes(32)},
        "gov.propose": ops.GovPropose(action=ops.FreezeAccount(bytes(32)), reason="r", legal_ref=""),
        "gov.vote": ops.GovVote(proposal=1, choice="yes"),
        "gov.execute": ops.GovExecute(proposal=1),
        "gov.cancel": ops.GovCancel(proposal=1),
        "reg.freeze": ops.RegFreeze(account=bytes(32), reason="r", legal_ref=""),
        "reg.review": ops.RegReview(entry=bytes(32), decision="release", reason="r"),
        "reg.intercept": ops.RegIntercept(rule=ops.SetInterceptionRule("r"), reason="r", legal_ref=""),
        "id.attest": ops.IdAttest(subject=bytes(32), identity=bytes(16), level=1, expires_ms=1),
        "app.pause": ops.AppPause(kind="data", reason="r"),
        "app.resume": ops.AppResume(kind="data", reason="r"),
        "notary.register": NotaryRegister(document=bytes(32), title="deed"),
        "notary.transfer": NotaryTransfer(document=bytes(32), to=bytes(32)),
        **WAREHOUSE_SAMPLES,
    }
    assert kind in bodies, f"add a valid {kind!r} body to this test and to _valid_bodies"
    assert kind == decode_operation(kind, codec.encode(bodies[kind])).KIND
    with pytest.raises(BilayerError):
        decode_operation(kind, b"\xc1")


ADDRESS_ALPHABET = string.ascii_lowercase + "234567"


@PROPERTY
@given(
    text=st.one_of(
        st.text(max_size=80),
        st.text(alphabet=ADDRESS_ALPHABET, min_size=58, max_size=58).map(lambda s: "bl1" + s),
        st.binary(min_size=32, max_size=32).map(address_from_public_key),
        st.builds(
            lambda key, i, c: (lambda a: a[:i] + c + a[i + 1 :])(address_from_public_key(key)),
            st.binary(min_size=32, max_size=32),
            st.integers(3, 60),
            st.sampled_from(ADDRESS_ALPHABET),
        ),
    )
)
def test_public_key_from_address(text: str) -> None:
    key = only_bilayer_errors(public_key_from_address, text)
    if key is not None:
        assert len(key) == 32
        assert address_from_public_key(key) == text  # exactly one text per key


def _api_json_entry(body: bytes) -> SignedEntry:
    """What POST /v1/entries does with a JSON body."""
    try:
        return msgspec.json.decode(body, type=SignedEntry)
    except msgspec.MsgspecError as exc:
        raise BadEncoding(f"body is not an entry: {exc}") from None


def _api_batch(body: bytes, is_msgpack: bool) -> list[SignedEntry]:
    """What POST /v1/entries/batch does with its body."""
    try:
        if is_msgpack:
            return msgspec.msgpack.decode(body, type=list[SignedEntry])
        return msgspec.json.decode(body, type=JsonBatch).entries
    except msgspec.MsgspecError as exc:
        raise BadEncoding(f"body is not a list of entries: {exc}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return None
    return value


json_bytes = st.one_of(
    st.binary(max_size=2000),
    structures.map(lambda v: json.dumps(_jsonable(v), allow_nan=True).encode()),
    st.builds(lambda items: json.dumps({"entries": _jsonable(items)}).encode(), st.lists(structures, max_size=4)),
)


@PROPERTY
@given(body=json_bytes)
def test_api_json_decoding(body: bytes) -> None:
    signed = only_bilayer_errors(_api_json_entry, body)
    if signed is not None:
        assert isinstance(signed.header, bytes) and isinstance(signed.payload, bytes)
        only_bilayer_errors(check_entry, signed, chain_id=GENESIS.chain_id, params=NO_WORK, now_ms=NOW_MS)
    batch = only_bilayer_errors(_api_batch, body, False)
    assert batch is None or all(isinstance(item, SignedEntry) for item in batch)


@PROPERTY
@given(body=arbitrary)
def test_api_msgpack_batch_decoding(body: bytes) -> None:
    batch = only_bilayer_errors(_api_batch, body, True)
    assert batch is None or all(isinstance(item, SignedEntry) for item in batch)


# --- the entry checker ---------------------------------------------------------------------


@PROPERTY
@given(
    signed=st.one_of(signed_entries, st.builds(SignedEntry, arbitrary, st.binary(max_size=80), st.binary(max_size=80)))
)
def test_check_entry_on_arbitrary_bytes(signed: SignedEntry) -> None:
    with pytest.raises(BilayerError):
        check_entry(signed, chain_id=GENESIS.chain_id, params=NO_WORK, now_ms=NOW_MS)


SIGNER = seeded_signer(7)


@PROPERTY
@given(
    header=headers,
    payload=st.binary(max_size=120),
    body=st.one_of(st.none(), _valid_bodies()),
    sign=st.booleans(),
    consistent=st.booleans(),
)
def test_check_entry_on_arbitrary_headers(
    header: EntryHeader, payload: bytes, body: tuple[str, bytes] | None, sign: bool, consistent: bool
) -> None:
    """Headers of any shape, signed by their author or not: a typed answer either way."""
    if body is not None:
        header = msgspec.structs.replace(header, kind=body[0], body=body[1])
    if consistent:  # let more headers reach the later checks
        header = msgspec.structs.replace(header, payload_hash=codec.sha256(payload), payload_size=len(payload))
    if sign:
        header = msgspec.structs.replace(header, author=SIGNER.public_key)
    header_bytes = codec.encode(header)
    id_ = entry_id(header_bytes)
    signature = SIGNER.sign(signing_message(id_)) if sign else bytes(64)
    signed = SignedEntry(header_bytes, signature, payload)
    entry = only_bilayer_errors(check_entry, signed, chain_id=GENESIS.chain_id, params=NO_WORK, now_ms=NOW_MS)
    if entry is None:
        return
    assert sign and entry.id == id_ and entry.header == header
    assert header.chain == GENESIS.chain_id and header.version == 1
    assert 1 <= len(header.parents) <= NO_WORK.max_parents and len(set(header.parents)) == len(header.parents)
    assert codec.sha256(payload) == header.payload_hash and header.payload_size == len(payload)
    assert header.time_ms <= NOW_MS + NO_WORK.max_future_ms
    entry.op.view()


@PROPERTY
@given(
    body=_valid_bodies(),
    payload=st.binary(max_size=300),
    changes=st.lists(st.sampled_from(sorted(HEADER_FIELDS)), max_size=3, unique=True),
    data=st.data(),
)
def test_check_entry_on_near_valid_headers(
    body: tuple[str, bytes], payload: bytes, changes: list[str], data: st.DataObject
) -> None:
    """A signed, well-formed header with a few fields replaced by arbitrary values."""
    header = EntryHeader(
        version=1,
        chain=GENESIS.chain_id,
        author=SIGNER.public_key,
        seq=0,
        parents=(GENESIS.root,),
        time_ms=NOW_MS - 1000,
        kind=body[0],
        body=body[1],
        payload_hash=codec.sha256(payload),
        payload_size=len(payload),
        nonce=bytes(8),
    )
    header = msgspec.structs.replace(header, **{name: data.draw(HEADER_FIELDS[name], label=name) for name in changes})
    header_bytes = codec.encode(header)
    id_ = entry_id(header_bytes)
    signed = SignedEntry(header_bytes, SIGNER.sign(signing_message(id_)), payload)
    entry = only_bilayer_errors(check_entry, signed, chain_id=GENESIS.chain_id, params=NO_WORK, now_ms=NOW_MS)
    if entry is None:
        return
    assert entry.id == id_ and entry.header == header and entry.author == SIGNER.public_key
    assert header.version == 1 and header.chain == GENESIS.chain_id and len(header.nonce) == 8
    assert 1 <= len(header.parents) <= NO_WORK.max_parents and all(len(p) == 32 for p in header.parents)
    assert codec.sha256(payload) == header.payload_hash and header.payload_size == len(payload)
    assert 0 <= header.time_ms <= NOW_MS + NO_WORK.max_future_ms and header.seq >= 0
    entry.op.check(len(payload), NO_WORK)
    entry.op.view()


VALID_ID, VALID = make_entry(seeded_signer(3), GENESIS, payload=b"a payload to mutate", time_ms=NOW_MS - 1000)


def test_valid_entry_passes() -> None:
    entry = check_entry(VALID, chain_id=GENESIS.chain_id, params=GENESIS.params, now_ms=NOW_MS)
    assert entry.id == VALID_ID


@PROPERTY
@given(
    part=st.sampled_from(["header", "signature", "payload"]), position=st.integers(0, 10_000), mask=st.integers(1, 255)
)
def test_check_entry_refuses_every_single_byte_flip(part: str, position: int, mask: int) -> None:
    original = getattr(VALID, part)
    assume(len(original) > 0)
    index = position % len(original)
    mutated = bytearray(original)
    mutated[index] ^= mask
    signed = msgspec.structs.replace(VALID, **{part: bytes(mutated)})
    with pytest.raises(BilayerError):
        check_entry(signed, chain_id=GENESIS.chain_id, params=GENESIS.params, now_ms=NOW_MS)


@PROPERTY
@given(
    part=st.sampled_from(["header", "signature", "payload"]), cut=st.integers(0, 10_000), extra=st.binary(max_size=4)
)
def test_check_entry_refuses_truncation_and_extension(part: str, cut: int, extra: bytes) -> None:
    original = getattr(VALID, part)
    changed = original[: cut % (len(original) + 1)] + extra
    assume(changed != original)
    signed = msgspec.structs.replace(VALID, **{part: changed})
    with pytest.raises(BilayerError):
        check_entry(signed, chain_id=GENESIS.chain_id, params=GENESIS.params, now_ms=NOW_MS)


# --- canonical encoding -------------------------------------------------------------------


class NoLongerForm(Exception):
    """The integer already needs the widest msgpack form."""


def _uint(value: int, wide: bool) -> bytes:
    if not wide:
        return codec.encode(value)
    if value >= 0:
        forms = [
            (0xCC, ">B", 0, 2**8 - 1),
            (0xCD, ">H", 0, 2**16 - 1),
            (0xCE, ">I", 0, 2**32 - 1),
            (0xCF, ">Q", 0, 2**64 - 1),
        ]
    else:
        forms = [
            (0xD0, ">b", -(2**7), -1),
            (0xD1, ">h", -(2**15), -1),
            (0xD2, ">i", -(2**31), -1),
            (0xD3, ">q", -(2**63), -1),
        ]
    for marker, fmt, low, high in forms:
        if low <= value <= high:
            candidate = bytes([marker]) + struct.pack(fmt, value)
            if candidate != codec.encode(value):
                return candidate
    raise NoLongerForm(value)


def _str(value: str, wide: bool) -> bytes:
    raw = value.encode()
    return b"\xdb" + struct.pack(">I", len(raw)) + raw if wide else codec.encode(value)


def _bin(value: bytes, wide: bool) -> bytes:
    return b"\xc6" + struct.pack(">I", len(value)) + value if wide else codec.encode(value)


def _array_head(count: int, wide: bool) -> bytes:
    return b"\xdd" + struct.pack(">I", count) if wide else codec.encode([None] * count)[: -count or None]


def _map_head(count: int, wide: bool) -> bytes:
    return b"\xdf" + struct.pack(">I", count) if wide else bytes([0x80 | count])


def encode_header(header: EntryHeader, widen: int | None = None, order: list[str] | None = None) -> bytes:
    """EntryHeader as msgpack by hand; `widen` picks one element to write in a longer form."""
    pieces: list[tuple[str, Any]] = []
    for name in order or list(EntryHeader.__struct_fields__):
        pieces.append(("key", name))
        pieces.append((name, getattr(header, name)))
    counter = 0

    def wide() -> bool:
        nonlocal counter
        counter += 1
        return widen == counter - 1

    out = bytearray(_map_head(len(EntryHeader.__struct_fields__), wide()))
    for tag, value in pieces:
        if tag == "key":
            out += _str(value, wide())
        elif isinstance(value, bool) or value is None:
            raise AssertionError("no such field")
        elif isinstance(value, int):
            out += _uint(value, wide())
        elif isinstance(value, str):
            out += _str(value, wide())
        elif isinstance(value, bytes):
            out += _bin(value, wide())
        else:
            out += _array_head(len(value), wide())
            for item in value:
                out += _bin(item, wide())
    return bytes(out)


def element_count(header: EntryHeader) -> int:
    return 1 + 2 * len(EntryHeader.__struct_fields__) + len(header.parents)


@PROPERTY
@given(header=headers)
def test_entry_header_round_trip(header: EntryHeader) -> None:
    data = codec.encode(header)
    assert codec.decode_canonical(data, EntryHeader) == header
    assert encode_header(header) == data  # the hand encoder agrees with the canonical one


@PROPERTY
@given(signed=signed_entries)
def test_signed_entry_round_trip(signed: SignedEntry) -> None:
    data = codec.encode(signed)
    assert decode_signed_entry(data) == signed
    for field_name in SignedEntry.__struct_fields__:
        # each bytes field in a longer length form than needed: same value, refused
        pieces = []
        for name in SignedEntry.__struct_fields__:
            pieces.append(codec.encode(name) + _bin(getattr(signed, name), wide=name == field_name))
        longer = b"\x83" + b"".join(pieces)
        assert codec.decode(longer, SignedEntry) == signed
        with pytest.raises(BadEncoding):
            decode_signed_entry(longer)


@PROPERTY
@given(header=headers, data=st.data())
def test_longer_forms_are_refused(header: EntryHeader, data: st.DataObject) -> None:
    element = data.draw(st.integers(0, element_count(header) - 1))
    try:
        longer = encode_header(header, widen=element)
    except NoLongerForm:
        assume(False)
    assert longer != codec.encode(header)
    assert codec.decode(longer, EntryHeader) == header  # the same value ...
    with pytest.raises(BadEncoding):
        codec.decode_canonical(longer, EntryHeader)  # ... is refused in any other encoding
    signed = SignedEntry(longer, SIGNER.sign(signing_message(entry_id(longer))), b"")
    with pytest.raises(BadEncoding):
        check_entry(signed, chain_id=GENESIS.chain_id, params=NO_WORK, now_ms=NOW_MS)


@PROPERTY
@given(header=headers, order=st.permutations(list(EntryHeader.__struct_fields__)))
def test_reordered_fields_are_refused(header: EntryHeader, order: list[str]) -> None:
    assume(order != list(EntryHeader.__struct_fields__))
    reordered = encode_header(header, order=order)
    assert codec.decode(reordered, EntryHeader) == header
    with pytest.raises(BadEncoding):
        codec.decode_canonical(reordered, EntryHeader)


def test_the_valid_header_in_another_form_is_refused() -> None:
    """A concrete case: seq 0 written as uint64 gives another id for the same header."""
    header = codec.decode_canonical(VALID.header, EntryHeader)
    seq_element = 1 + 2 * EntryHeader.__struct_fields__.index("seq") + 1
    longer = encode_header(header, widen=seq_element)
    assert b"\xa3seq\xcc\x00" in longer and entry_id(longer) != VALID_ID
    with pytest.raises(BadEncoding):
        codec.decode_canonical(longer, EntryHeader)


# --- framing and secure links ---------------------------------------------------------------


async def _read_frames(data: bytes, limit: int) -> list[bytes]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    for _ in range(len(data) + 1):
        frames.append(await asyncio.wait_for(transport.read_frame(reader, limit), 1))
    raise AssertionError(f"read {len(frames)} frames from {len(data)} bytes")


@FEW
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.lists(st.binary(max_size=60), max_size=5).map(
            lambda fs: b"".join(struct.pack(">I", len(f)) + f for f in fs)
        ),
    ),
    limit=st.sampled_from([16, 4096, transport.MAX_FRAME]),
)
def test_read_frame_on_arbitrary_streams(data: bytes, limit: int) -> None:
    # a refused frame, or the end of the stream (the link is gone): the only allowed outcomes
    with contextlib.suppress(PeerProtocolError, ConnectionResetError):
        asyncio.run(_read_frames(data, limit))


class _Sink:
    def write(self, data: bytes) -> None:
        pass


PEER = transport.Hello(1, "test-chain", bytes(32), bytes(32), "127.0.0.1:1")


@FEW
@given(frames=st.lists(st.tuples(st.booleans(), st.one_of(st.binary(max_size=120), _message_bytes())), max_size=5))
def test_secure_link_recv_on_arbitrary_frames(frames: list[tuple[bool, bytes]]) -> None:
    """Frames sealed by the peer decrypt and decode (or are refused); any other frame ends the link."""

    async def scenario() -> None:
        ours, theirs = nacl.public.PrivateKey.generate(), nacl.public.PrivateKey.generate()
        sealer = nacl.public.Box(theirs, ours.public_key)
        reader = asyncio.StreamReader()
        sealed_before_garbage: list[bytes] = []
        counter = 0
        garbage_seen = False
        for sealed, data in frames:
            if sealed:
                nonce = bytes([1]) + bytes(15) + counter.to_bytes(8, "big")
                counter += 1
                frame = sealer.encrypt(data, nonce).ciphertext
                if not garbage_seen:
                    sealed_before_garbage.append(data)
            else:
                frame = data
                garbage_seen = True
            reader.feed_data(struct.pack(">I", len(frame)) + frame)
        reader.feed_eof()
        sink = cast(asyncio.StreamWriter, _Sink())
        link = transport.SecureLink(reader, sink, nacl.public.Box(ours, theirs.public_key), 0, PEER)
        received: list[bytes] = []
        with pytest.raises((PeerProtocolError, ConnectionResetError)):
            for _ in range(len(frames) + 1):
                plaintext = await asyncio.wait_for(link.recv(), 1)
                received.append(plaintext)
                only_bilayer_errors(decode_message, plaintext)
        assert received == sealed_before_garbage

    asyncio.run(scenario())

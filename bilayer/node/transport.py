"""Authenticated, encrypted peer links over asyncio TCP.

Handshake (both sides at once, so neither waits on the other):

1. each sends `Hello`: chain id, its long-term node key (Ed25519), a fresh X25519
   ephemeral key and the address it listens on;
2. each sends `Auth`: its node key's signature over HANDSHAKE_DOMAIN, the chain id, its own
   ephemeral key, the peer's ephemeral key and the peer's node key;
3. each checks the peer's signature. A link that fails any step is closed.

Signing both ephemeral keys binds the session to the two node keys, so a man in the middle
cannot splice in keys of its own. Every later frame is a NaCl box (X25519 +
XSalsa20-Poly1305) under the ephemeral keys, with a counter nonce per direction: frames are
private, tamper-evident and cannot be replayed or reordered.

Frames are a 4-byte big-endian length followed by that many bytes; a frame over
`MAX_FRAME` closes the link before it is read.
"""

from __future__ import annotations

import asyncio
import struct

import msgspec
import nacl.exceptions
import nacl.public

from .. import codec
from ..errors import BadEncoding, PeerProtocolError
from ..keys.signing import Signer, verify
from ..replica.messages import MAX_FRAME

HANDSHAKE_DOMAIN = b"bilayer/handshake/v1"
PROTOCOL_VERSION = 1
MAX_HANDSHAKE_FRAME = 4096
_LENGTH = struct.Struct(">I")


class Hello(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int
    chain: str
    node_key: bytes
    ephemeral: bytes
    listen: str


class Auth(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    signature: bytes


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes:
    try:
        header = await reader.readexactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(header)
        if length > limit:
            raise PeerProtocolError(f"frame of {length} bytes exceeds the limit of {limit}")
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ConnectionResetError("peer closed the link") from None


def write_frame(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(_LENGTH.pack(len(data)) + data)


def _auth_message(chain: str, own_ephemeral: bytes, peer_ephemeral: bytes, peer_node_key: bytes) -> bytes:
    return HANDSHAKE_DOMAIN + chain.encode() + own_ephemeral + peer_ephemeral + peer_node_key


class SecureLink:
    """One authenticated link; `send` and `recv` move whole encrypted frames."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        box: nacl.public.Box,
        own_direction: int,
        peer: Hello,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._box = box
        self._own_direction = own_direction
        self._sent = 0
        self._received = 0
        self.peer_key = peer.node_key
        self.peer_listen = peer.listen

    @staticmethod
    def _nonce(direction: int, counter: int) -> bytes:
        return bytes([direction]) + bytes(15) + counter.to_bytes(8, "big")

    async def send(self, data: bytes) -> None:
        ciphertext = self._box.encrypt(data, self._nonce(self._own_direction, self._sent)).ciphertext
        self._sent += 1
        write_frame(self.writer, ciphertext)
        await self.writer.drain()

    async def recv(self) -> bytes:
        ciphertext = await read_frame(self.reader)
        try:
            data = self._box.decrypt(ciphertext, self._nonce(1 - self._own_direction, self._received))
        except nacl.exceptions.CryptoError:
            raise PeerProtocolError("frame failed authentication") from None
        self._received += 1
        return bytes(data)

    def close(self) -> None:
        self.writer.close()


async def handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    signer: Signer,
    chain: str,
    listen: str,
    timeout: float = 5.0,
) -> SecureLink:
    """Run the handshake; raise `PeerProtocolError` (or a connection error) when it fails."""
    ephemeral = nacl.public.PrivateKey.generate()
    own_ephemeral = bytes(ephemeral.public_key)
    hello = Hello(PROTOCOL_VERSION, chain, signer.public_key, own_ephemeral, listen)

    async def run() -> SecureLink:
        write_frame(writer, codec.encode(hello))
        await writer.drain()
        try:
            peer = codec.decode_canonical(await read_frame(reader, MAX_HANDSHAKE_FRAME), Hello)
        except BadEncoding as exc:
            raise PeerProtocolError(f"bad hello: {exc.message}") from None
        if peer.version != PROTOCOL_VERSION:
            raise PeerProtocolError(f"peer speaks protocol {peer.version}, this node {PROTOCOL_VERSION}")
        if peer.chain != chain:
            raise PeerProtocolError(f"peer is on chain {peer.chain!r}")
        if len(peer.node_key) != 32 or len(peer.ephemeral) != 32 or peer.ephemeral == own_ephemeral:
            raise PeerProtocolError("bad keys in hello")
        if peer.node_key == signer.public_key:
            raise PeerProtocolError("connected to itself")
        try:  # libsodium refuses low-order points (e.g. all zeros): no shared secret
            box = nacl.public.Box(ephemeral, nacl.public.PublicKey(peer.ephemeral))
        except nacl.exceptions.CryptoError:
            raise PeerProtocolError("bad keys in hello") from None
        signature = signer.sign(_auth_message(chain, own_ephemeral, peer.ephemeral, peer.node_key))
        write_frame(writer, codec.encode(Auth(signature)))
        await writer.drain()
        try:
            auth = codec.decode_canonical(await read_frame(reader, MAX_HANDSHAKE_FRAME), Auth)
        except BadEncoding as exc:
            raise PeerProtocolError(f"bad auth: {exc.message}") from None
        expected = _auth_message(chain, peer.ephemeral, own_ephemeral, signer.public_key)
        if not verify(peer.node_key, expected, auth.signature):
            raise PeerProtocolError("peer failed to prove its node key")
        direction = 0 if own_ephemeral < peer.ephemeral else 1
        return SecureLink(reader, writer, box, direction, peer)

    try:
        return await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        raise PeerProtocolError("handshake timed out") from None

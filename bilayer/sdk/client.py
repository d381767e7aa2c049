"""`Client` (blocking) and `AsyncClient` (asyncio): the same methods over one connection pool
each, with retries and failover across the listed nodes (the rules are in `retry.py`).

Writing an entry takes the author's next sequence number and parents from a node, stamps
the proof of work the chain asks for, signs, and submits (`build_entry`, as the CLI does).
A client remembers the last entry it wrote for each key, so a key's entries written one
after another through one client follow each other even when the node asked next has not
seen the previous one yet; writes by one key through one client are serialised, so they
never fork each other.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
import msgspec

from .. import codec
from ..errors import BadRequest, BilayerError, NodeUnreachable, RemoteError, WaitTimeout
from ..genesis import ChainParams
from ..keys.keystore import Keystore, default_keystore
from ..keys.signing import Signer
from ..ledger.entry import SignedEntry, build_entry
from .errors import NoSigningKey, UnexpectedResponse
from .ops import Op
from .retry import Failure, RetryPolicy, Rotation, next_try, parse_retry_after
from .types import (
    Account,
    Author,
    Checkpoint,
    Identity,
    Outcome,
    Proposal,
    Status,
    Submitted,
    _Error,
    _Params,
    _Proposals,
    _Tips,
)

T = TypeVar("T")
DEFAULT_RETRIES = RetryPolicy()

MAX_PARENTS = 4  # the author's previous entry and up to three tips: enough to knit the DAG
LONG_POLL_S = 10.0  # one long-poll of an entry's outcome; the node allows up to 30
NOT_FOUND_PAUSE_S = 0.1  # an entry not yet on the node asked (it travels by gossip)


def load_key(name: str, keystore: str | None = None, passphrase: str | None = None) -> Signer:
    """A signing key from a keystore directory (default `$BILAYER_KEYSTORE`, then
    `~/.bilayer/keys`); an encrypted key's passphrase defaults to `$BILAYER_PASSPHRASE`."""
    from pathlib import Path

    return Keystore(Path(keystore) if keystore else default_keystore()).load(name, passphrase)


@dataclass
class _Written:
    """The last entry this client wrote for a key."""

    next_seq: int
    head: bytes


def _nodes(nodes: Sequence[str] | str) -> list[str]:
    listed = [nodes] if isinstance(nodes, str) else list(nodes)
    if not listed:
        raise BadRequest("list at least one node URL")
    urls = []
    for url in listed:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise BadRequest(f"node URL {url!r} must start with http:// or https://")
        urls.append(url.rstrip("/"))
    return urls


def _policy(retries: RetryPolicy | int) -> RetryPolicy:
    if isinstance(retries, RetryPolicy):
        return retries
    return RetryPolicy(attempts=retries + 1)


def _decode(content: bytes, type_: type[T], what: str) -> T:
    try:
        return msgspec.json.decode(content, type=type_)
    except msgspec.DecodeError as exc:
        raise UnexpectedResponse(f"the node's answer is not {what}: {exc}") from None


def _failure(response: httpx.Response, url: str) -> tuple[Failure, RemoteError]:
    """Classify an error answer and make the exception that carries the node's code."""
    try:
        body = msgspec.json.decode(response.content, type=_Error).error
        error = RemoteError(body.code, body.message or f"HTTP {response.status_code}", response.status_code)
    except msgspec.DecodeError:
        error = RemoteError("http_error", f"HTTP {response.status_code} from {url}", response.status_code)
    retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
    return Failure("status", response.status_code, error.remote_code, retry_after), error


def _transport_failure(exc: httpx.HTTPError, url: str) -> tuple[Failure, BilayerError]:
    # connect errors and pool timeouts: the request never left this process
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return (Failure("transport" if sent else "connect"),
            NodeUnreachable(f"cannot reach node at {url}: {type(exc).__name__} {exc}".rstrip()))


def _query(path: str, params: dict[str, Any]) -> str:
    """Query parameters as the API reads them: booleans as `true`/`false`, None left out."""
    present = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}
    return path + ("?" + urlencode(present, doseq=True) if present else "")


def _checkpoint_path(height: int | str, entries: bool) -> str:
    if height != "latest" and (not isinstance(height, int) or isinstance(height, bool) or height < 1):
        raise BadRequest("a checkpoint height is a positive integer or 'latest'")
    return f"/v1/checkpoints/{height}" + ("?entries=1" if entries else "")


def _proposal_path(number: int) -> str:
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise BadRequest("a proposal number is a positive integer")
    return f"/v1/gov/proposals/{number}"


def _entry_hex(entry_id: str | bytes) -> str:
    text = entry_id.hex() if isinstance(entry_id, bytes) else entry_id
    if codec.from_hex(text, 32) is None:
        raise BadRequest("an entry id is 64 hex characters")
    return text


def _entry_path(entry_id: str | bytes) -> str:
    return f"/v1/entries/{_entry_hex(entry_id)}"


def _outcome(code: int, content: bytes) -> Outcome:
    if code == 202:  # the node holds the entry but not yet one of its parents
        return Outcome(id=_decode(content, Submitted, "an entry").id, status="ORPHAN")
    return _decode(content, Outcome, "an entry")


def build_signed(op: Op, signer: Signer, status: Status, author: Author, tips: list[str],
                 written: _Written | None, time_ms: int) -> tuple[bytes, SignedEntry, int]:
    """The author's next entry carrying `op`: (id, signed entry, its sequence number).
    Pure: everything it needs from the node is passed in."""
    next_seq, head = author.next_seq, bytes.fromhex(author.head) if author.head else None
    if written is not None and written.next_seq > next_seq:  # this node has not seen our last entry yet
        next_seq, head = written.next_seq, written.head
    parents: list[bytes] = [head] if head is not None else []
    limit = min(MAX_PARENTS, status.params.max_parents)
    for tip in tips:
        if len(parents) >= limit:
            break
        tip_id = bytes.fromhex(tip)
        if tip_id not in parents:
            parents.append(tip_id)
    if not parents:
        parents.append(bytes.fromhex(status.genesis_root))
    entry_id, signed = build_entry(signer, chain_id=status.chain_id, seq=next_seq, parents=parents,
                                   op=op.operation, payload=op.payload, time_ms=time_ms,
                                   pow_bits=status.params.pow_bits)
    return entry_id, signed, next_seq


def _decided(outcome: Outcome, finality: bool) -> bool:
    return outcome.decided or (outcome.status == "PENDING" and not finality)


class _Base:
    def __init__(self, nodes: Sequence[str] | str, key: Signer | None, timeout: float,
                 retries: RetryPolicy | int, rng: random.Random | None) -> None:
        if timeout <= 0:
            raise BadRequest("timeout is a positive number of seconds")
        self.nodes = _nodes(nodes)
        self.key = key
        self.timeout = timeout
        self.retries = _policy(retries)
        self._rng = rng or random.Random()
        self._rotation = Rotation(len(self.nodes))
        self._written: dict[bytes, _Written] = {}

    def _signer(self, key: Signer | None) -> Signer:
        signer = key or self.key
        if signer is None:
            raise NoSigningKey("give the client a key, or pass key= to this call")
        return signer

    def _remember(self, signer: Signer, seq: int, entry_id: bytes) -> None:
        known = self._written.get(signer.public_key)
        if known is None or known.next_seq <= seq:
            self._written[signer.public_key] = _Written(seq + 1, entry_id)


class Client(_Base):
    """A blocking client of one or more nodes of the same chain.

    `nodes`: URLs tried in order (the client stays with the one that answers); `key`: the
    default signer of `submit`; `timeout`: seconds for one HTTP request; `retries`: extra
    tries of a failed request (or a `RetryPolicy`). Use it as a context manager, or `close()` it.
    """

    def __init__(self, nodes: Sequence[str] | str, key: Signer | None = None, *, timeout: float = 15.0,
                 retries: RetryPolicy | int = DEFAULT_RETRIES, rng: random.Random | None = None) -> None:
        super().__init__(nodes, key, timeout, retries, rng)
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), limits=httpx.Limits(max_connections=16))
        self._lock = threading.Lock()
        self._key_locks: dict[bytes, threading.Lock] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- transport --------------------------------------------------------------------------

    def request(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None,
                idempotent: bool = True, timeout: float | None = None) -> tuple[int, bytes]:
        """One API call with retries and failover: (HTTP status, body) of the first success;
        an error answer raises `RemoteError` with the node's code, no answer `NodeUnreachable`."""
        headers = {"Content-Type": content_type} if content_type else {}
        failures = 0
        with self._lock:
            node, wait = self._rotation.pick(time.monotonic())
        while True:
            if wait > 0:
                time.sleep(wait)
            url = self.nodes[node] + path
            try:
                response = self._http.request(method, url, content=body, headers=headers,
                                              timeout=timeout or self.timeout)
            except httpx.HTTPError as exc:
                failure, error = _transport_failure(exc, url)
            else:
                if response.status_code < 400:
                    with self._lock:
                        self._rotation.answered(node)
                    return response.status_code, response.content
                failure, error = _failure(response, url)
            failures += 1
            with self._lock:
                decided = next_try(self.retries, self._rotation, node, failure, failures, idempotent,
                                   time.monotonic(), self._rng)
            if decided is None:
                raise error
            node, wait = decided

    def get_json(self, path: str, **params: Any) -> Any:
        """Any GET route of the API as plain JSON (the typed methods cover the common ones)."""
        return _decode(self.request("GET", _query(path, params))[1], Any, "JSON")

    def _get(self, path: str, type_: type[T], what: str) -> T:
        return _decode(self.request("GET", path)[1], type_, what)

    # --- reads ------------------------------------------------------------------------------

    def status(self) -> Status:
        return self._get("/v1/status", Status, "a node status")

    def author(self, address: str) -> Author:
        return self._get(f"/v1/authors/{quote(address)}", Author, "an author")

    def account(self, address: str) -> Account:
        return self._get(f"/v1/accounts/{quote(address)}", Account, "an account")

    def tips(self) -> list[str]:
        return self._get("/v1/tips?limit=64", _Tips, "tips").tips

    def params(self) -> ChainParams:
        return self._get("/v1/params", _Params, "chain parameters").params

    def entry(self, entry_id: str | bytes, wait_s: float = 0.0) -> Outcome:
        """An entry with its outcome so far; `wait_s` long-polls (up to 30 s) for a decision."""
        path = _entry_path(entry_id) + (f"?wait={wait_s:.2f}" if wait_s > 0 else "")
        return _outcome(*self.request("GET", path, timeout=self.timeout + wait_s))

    def checkpoint(self, height: int | str = "latest", entries: bool = False) -> Checkpoint:
        return self._get(_checkpoint_path(height, entries), Checkpoint, "a checkpoint")

    def proposal(self, number: int) -> Proposal:
        return self._get(_proposal_path(number), Proposal, "a proposal")

    def proposals(self, status: str | None = None) -> list[Proposal]:
        """Proposals, newest first (at most 1000)."""
        return self._get(_query("/v1/gov/proposals", {"status": status}), _Proposals, "proposals").proposals

    def proposal_of(self, entry_id: str | bytes) -> Proposal:
        """The proposal a FINAL `gov.propose` entry made (its number is decided on the chain)."""
        text = _entry_hex(entry_id)
        for proposal in self.proposals():
            if proposal.entry == text:
                return proposal
        raise RemoteError("not_found", f"no proposal was made by entry {text}", 404)

    def identity(self, address: str) -> Identity:
        return self._get(f"/v1/identities/{quote(address)}", Identity, "an identity")

    def app_query(self, app: str, query: str, **params: Any) -> dict[str, Any]:
        """An installed application's read query, e.g. `app_query("warehouse", "register",
        status="pledged")`; its answer as the application renders it."""
        return dict(self.get_json(f"/v1/apps/{quote(app)}/{quote(query)}", **params))

    # --- writes -----------------------------------------------------------------------------

    def _key_lock(self, signer: Signer) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(signer.public_key, threading.Lock())

    def prepare(self, op: Op, key: Signer | None = None) -> tuple[bytes, SignedEntry, int]:
        """Build, stamp and sign the key's next entry without sending it: (id, entry, seq)."""
        signer = self._signer(key)
        status = self.status()
        return build_signed(op, signer, status, self.author(signer.address), self.tips(),
                            self._written.get(signer.public_key), int(time.time() * 1000))

    def submit_signed(self, signed: SignedEntry) -> Submitted:
        """Send a signed entry. Sending the same entry again is harmless (same id, `known`),
        so this is retried like a read."""
        _, content = self.request("POST", "/v1/entries", body=codec.encode(signed),
                                  content_type="application/msgpack")
        return _decode(content, Submitted, "a submission result")

    def submit(self, op: Op, key: Signer | None = None) -> Submitted:
        """Sign `op` as the key's next entry and submit it; the answer carries the entry id."""
        signer = self._signer(key)
        with self._key_lock(signer):
            entry_id, signed, seq = self.prepare(op, signer)
            submitted = self.submit_signed(signed)
            self._remember(signer, seq, entry_id)
            return submitted

    def wait(self, entry_id: str | bytes, timeout: float = 30.0) -> Outcome:
        """Block until the entry is FINAL, REJECTED or HELD (on a chain without validators:
        stored, PENDING); `WaitTimeout` after `timeout` seconds."""
        entry_id = _entry_hex(entry_id)
        deadline = time.monotonic() + timeout
        finality = self.status().finality
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"entry {_entry_hex(entry_id)} has no final outcome after {timeout:g} s")
            try:
                outcome = self.entry(entry_id, wait_s=min(remaining, LONG_POLL_S))
            except RemoteError as exc:
                if exc.remote_code != "not_found":
                    raise
                time.sleep(min(NOT_FOUND_PAUSE_S, max(0.0, deadline - time.monotonic())))
                continue
            if _decided(outcome, finality):
                return outcome
            if outcome.status == "ORPHAN":
                time.sleep(min(NOT_FOUND_PAUSE_S, max(0.0, deadline - time.monotonic())))

    def submit_and_wait(self, op: Op, timeout: float = 30.0, key: Signer | None = None) -> Outcome:
        """Submit and wait for the outcome; a REJECTED outcome is an answer, not an exception."""
        started = time.monotonic()
        submitted = self.submit(op, key)
        return self.wait(submitted.id, max(0.0, timeout - (time.monotonic() - started)))


class AsyncClient(_Base):
    """The asyncio twin of `Client`: the same methods, awaited. Use `async with`, or `aclose()`."""

    def __init__(self, nodes: Sequence[str] | str, key: Signer | None = None, *, timeout: float = 15.0,
                 retries: RetryPolicy | int = DEFAULT_RETRIES, rng: random.Random | None = None) -> None:
        super().__init__(nodes, key, timeout, retries, rng)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout), limits=httpx.Limits(max_connections=16))
        self._key_locks: dict[bytes, asyncio.Lock] = {}

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- transport --------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None,
                      idempotent: bool = True, timeout: float | None = None) -> tuple[int, bytes]:
        """As `Client.request`."""
        headers = {"Content-Type": content_type} if content_type else {}
        failures = 0
        node, wait = self._rotation.pick(time.monotonic())
        while True:
            if wait > 0:
                await asyncio.sleep(wait)
            url = self.nodes[node] + path
            try:
                response = await self._http.request(method, url, content=body, headers=headers,
                                                    timeout=timeout or self.timeout)
            except httpx.HTTPError as exc:
                failure, error = _transport_failure(exc, url)
            else:
                if response.status_code < 400:
                    self._rotation.answered(node)
                    return response.status_code, response.content
                failure, error = _failure(response, url)
            failures += 1
            decided = next_try(self.retries, self._rotation, node, failure, failures, idempotent,
                               time.monotonic(), self._rng)
            if decided is None:
                raise error
            node, wait = decided

    async def get_json(self, path: str, **params: Any) -> Any:
        return _decode((await self.request("GET", _query(path, params)))[1], Any, "JSON")

    async def _get(self, path: str, type_: type[T], what: str) -> T:
        return _decode((await self.request("GET", path))[1], type_, what)

    # --- reads ------------------------------------------------------------------------------

    async def status(self) -> Status:
        return await self._get("/v1/status", Status, "a node status")

    async def author(self, address: str) -> Author:
        return await self._get(f"/v1/authors/{quote(address)}", Author, "an author")

    async def account(self, address: str) -> Account:
        return await self._get(f"/v1/accounts/{quote(address)}", Account, "an account")

    async def tips(self) -> list[str]:
        return (await self._get("/v1/tips?limit=64", _Tips, "tips")).tips

    async def params(self) -> ChainParams:
        return (await self._get("/v1/params", _Params, "chain parameters")).params

    async def entry(self, entry_id: str | bytes, wait_s: float = 0.0) -> Outcome:
        path = _entry_path(entry_id) + (f"?wait={wait_s:.2f}" if wait_s > 0 else "")
        return _outcome(*await self.request("GET", path, timeout=self.timeout + wait_s))

    async def checkpoint(self, height: int | str = "latest", entries: bool = False) -> Checkpoint:
        return await self._get(_checkpoint_path(height, entries), Checkpoint, "a checkpoint")

    async def proposal(self, number: int) -> Proposal:
        return await self._get(_proposal_path(number), Proposal, "a proposal")

    async def proposals(self, status: str | None = None) -> list[Proposal]:
        return (await self._get(_query("/v1/gov/proposals", {"status": status}), _Proposals, "proposals")).proposals

    async def proposal_of(self, entry_id: str | bytes) -> Proposal:
        text = _entry_hex(entry_id)
        for proposal in await self.proposals():
            if proposal.entry == text:
                return proposal
        raise RemoteError("not_found", f"no proposal was made by entry {text}", 404)

    async def identity(self, address: str) -> Identity:
        return await self._get(f"/v1/identities/{quote(address)}", Identity, "an identity")

    async def app_query(self, app: str, query: str, **params: Any) -> dict[str, Any]:
        return dict(await self.get_json(f"/v1/apps/{quote(app)}/{quote(query)}", **params))

    # --- writes -----------------------------------------------------------------------------

    async def prepare(self, op: Op, key: Signer | None = None) -> tuple[bytes, SignedEntry, int]:
        """As `Client.prepare`; the proof of work runs in a worker thread, off the event loop."""
        signer = self._signer(key)
        status, author, tips = await asyncio.gather(self.status(), self.author(signer.address), self.tips())
        return await asyncio.to_thread(build_signed, op, signer, status, author, tips,
                                       self._written.get(signer.public_key), int(time.time() * 1000))

    async def submit_signed(self, signed: SignedEntry) -> Submitted:
        _, content = await self.request("POST", "/v1/entries", body=codec.encode(signed),
                                        content_type="application/msgpack")
        return _decode(content, Submitted, "a submission result")

    async def submit(self, op: Op, key: Signer | None = None) -> Submitted:
        signer = self._signer(key)
        async with self._key_locks.setdefault(signer.public_key, asyncio.Lock()):
            entry_id, signed, seq = await self.prepare(op, signer)
            submitted = await self.submit_signed(signed)
            self._remember(signer, seq, entry_id)
            return submitted

    async def wait(self, entry_id: str | bytes, timeout: float = 30.0) -> Outcome:
        entry_id = _entry_hex(entry_id)
        deadline = time.monotonic() + timeout
        finality = (await self.status()).finality
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"entry {_entry_hex(entry_id)} has no final outcome after {timeout:g} s")
            try:
                outcome = await self.entry(entry_id, wait_s=min(remaining, LONG_POLL_S))
            except RemoteError as exc:
                if exc.remote_code != "not_found":
                    raise
                await asyncio.sleep(min(NOT_FOUND_PAUSE_S, max(0.0, deadline - time.monotonic())))
                continue
            if _decided(outcome, finality):
                return outcome
            if outcome.status == "ORPHAN":
                await asyncio.sleep(min(NOT_FOUND_PAUSE_S, max(0.0, deadline - time.monotonic())))

    async def submit_and_wait(self, op: Op, timeout: float = 30.0, key: Signer | None = None) -> Outcome:
        started = time.monotonic()
        submitted = await self.submit(op, key)
        return await self.wait(submitted.id, max(0.0, timeout - (time.monotonic() - started)))

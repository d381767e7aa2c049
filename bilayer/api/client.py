"""A small synchronous client of the node API for the CLI: the standard library only, so a
command starts quickly. Programs should use `bilayer.sdk` (pooling, retries and failover,
typed answers, operation builders)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from .. import codec
from ..errors import BadRequest, NodeUnreachable, RemoteError, WaitTimeout
from ..keys.signing import Signer
from ..ledger.entry import SignedEntry, build_entry
from ..ledger.operations import Operation

__all__ = ["NodeClient", "WaitTimeout"]

# A node that is behind refuses a new entry early (429 or 503 with Retry-After): the same
# signed entry is sent again after that wait, growing each time (sending it twice is harmless:
# the second answer is "known").
SUBMIT_ATTEMPTS = 6
MAX_RETRY_WAIT_S = 10.0


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: not sent by bilayer nodes


class NodeClient:
    def __init__(self, url: str, timeout: float = 15.0) -> None:
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise BadRequest(f"node URL {url!r} must start with http:// or https://")
        self.url = url
        self.timeout = timeout

    def _fetch(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> bytes:
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            retry_after = _retry_after(exc.headers.get("Retry-After")) if exc.code in (429, 503) else None
            try:
                error = json.loads(raw)["error"]
                raise RemoteError(str(error["code"]), str(error["message"]), exc.code, retry_after) from None
            except (ValueError, KeyError, TypeError):
                raise RemoteError("http_error", f"HTTP {exc.code} from {self.url}", exc.code) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NodeUnreachable(f"cannot reach node at {self.url}: {reason}") from None

    def _request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        data = self._fetch(method, path, body, content_type)
        try:
            return json.loads(data)
        except ValueError:
            raise RemoteError(
                "bad_response", f"node at {self.url} answered with something that is not JSON", 502
            ) from None

    def get_bytes(self, path: str) -> bytes:
        """A non-JSON answer (an SVG drawing), as the node sent it."""
        return self._fetch("GET", path)

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def status(self) -> dict[str, Any]:
        return dict(self.get("/v1/status"))

    def tips(self) -> list[bytes]:
        return [bytes.fromhex(t) for t in self.get("/v1/tips?limit=64")["tips"]]

    def author(self, address: str) -> dict[str, Any]:
        return dict(self.get(f"/v1/authors/{address}"))

    def entry(self, entry_id: str) -> dict[str, Any]:
        return dict(self.get(f"/v1/entries/{entry_id}"))

    def wait_for_outcome(self, entry_id: str, timeout: float) -> dict[str, Any]:
        """Block until the entry is FINAL, REJECTED or HELD for review (or merely stored on a
        chain without validators); the node long-polls, so the answer comes as soon as it is known."""
        deadline = time.monotonic() + timeout
        finality = bool(self.status().get("finality"))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"entry {entry_id} has no final outcome after {timeout:.0f} s")
            try:
                view = self.get(f"/v1/entries/{entry_id}?wait={min(remaining, 10.0):.2f}")
            except RemoteError as exc:
                if exc.remote_code != "not_found":
                    raise
                view = {"status": "ORPHAN"}
                time.sleep(0.1)
            status = view.get("status")
            if status in ("FINAL", "REJECTED", "HELD") or (status == "PENDING" and not finality):
                return dict(view)

    def submit(self, signed: SignedEntry) -> dict[str, Any]:
        """Send one entry; while the node refuses it with Retry-After, wait and send it again."""
        body = codec.encode(signed)
        for attempt in range(SUBMIT_ATTEMPTS - 1):
            try:
                return dict(self._request("POST", "/v1/entries", body, "application/msgpack"))
            except RemoteError as refused:
                if refused.retry_after_s is None:
                    raise
                time.sleep(min(MAX_RETRY_WAIT_S, max(refused.retry_after_s, 0.5 * 2**attempt)))
        return dict(self._request("POST", "/v1/entries", body, "application/msgpack"))

    def build_and_submit(self, signer: Signer, op: Operation, payload: bytes = b"") -> dict[str, Any]:
        """Pick the author's next sequence and parents from the node, stamp, sign, submit."""
        status = self.status()
        author = self.author(signer.address)
        parents: list[bytes] = []
        if author["head"]:
            parents.append(bytes.fromhex(author["head"]))
        max_parents = int(status["params"]["max_parents"])
        for tip in self.tips():
            if len(parents) >= min(4, max_parents):
                break
            if tip not in parents:
                parents.append(tip)
        if not parents:
            parents.append(bytes.fromhex(status["genesis_root"]))
        started = time.perf_counter()
        _, signed = build_entry(
            signer,
            chain_id=status["chain_id"],
            seq=int(author["next_seq"]),
            parents=parents,
            op=op,
            payload=payload,
            time_ms=int(time.time() * 1000),
            pow_bits=int(status["params"]["pow_bits"]),
        )
        work_s = time.perf_counter() - started
        result = self.submit(signed)
        result["work_ms"] = round(work_s * 1000, 1)
        return result

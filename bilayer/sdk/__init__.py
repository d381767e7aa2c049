"""The bilayer SDK: a documented client of the node API for integrators.

    from bilayer.sdk import Client, AsyncClient, ops, load_key

    with Client(["http://127.0.0.1:8700", "http://127.0.0.1:8701"], key=load_key("alice")) as client:
        outcome = client.submit_and_wait(ops.transfer("bl1...", 10))
        print(outcome.status, outcome.code, outcome.height)

* `Client` (blocking) and `AsyncClient` (asyncio) have the same methods: reads that return
  typed structs (`status`, `account`, `entry`, `checkpoint`, `proposal`, `identity`, ...),
  `submit(op)`, `wait(entry_id)` and `submit_and_wait(op)`, which returns the entry's
  `Outcome` (FINAL, REJECTED or HELD, with its reason `code` and `cause`).
* `ops` builds every operation kind the chain knows, including installed applications'
  (`ops.app("warehouse.accept_receipt", receipt=...)`), checked before signing.
* Each client keeps one connection pool, retries with exponential backoff and full jitter,
  honours `Retry-After`, and fails over across the listed nodes; only requests that are safe
  to repeat are repeated when a node may have taken them (`retry.py`).
* Errors are typed and carry stable codes: `RemoteError.remote_code` is the node's.
"""

from __future__ import annotations

from ..errors import NodeUnreachable, RemoteError, WaitTimeout
from . import ops
from .client import AsyncClient, Client, load_key
from .errors import NoSigningKey, UnexpectedResponse
from .ops import Op
from .retry import RetryPolicy
from .types import Account, Author, Checkpoint, Identity, Outcome, Proposal, Status, Submitted

__all__ = [
    "Account",
    "AsyncClient",
    "Author",
    "Checkpoint",
    "Client",
    "Identity",
    "NoSigningKey",
    "NodeUnreachable",
    "Op",
    "Outcome",
    "Proposal",
    "RemoteError",
    "RetryPolicy",
    "Status",
    "Submitted",
    "UnexpectedResponse",
    "WaitTimeout",
    "load_key",
    "ops",
]

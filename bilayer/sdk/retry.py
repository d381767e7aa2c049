"""When to try a request again, where, and after how long: decisions only, no I/O.

Both clients run the same loop: send to the node `Rotation.pick` names, classify what
happened as a `Failure`, and ask `next_try` whether and when to try again. Keeping the
decisions here means the sync and asyncio clients cannot drift apart, and the rules can be
read (and tested) in one place:

* A request that never left (the connection was refused or could not be made in time) is
  tried again, whatever it is.
* A request that may have reached the node (a read timeout, a connection cut mid-answer, a
  502 or 504 from a gateway) is tried again only when it is idempotent. Every request the
  SDK makes is: reads, and submitting a signed entry (the same bytes have the same id, and a
  node that has it answers `known`).
* 429 and 503 are the node's own "not now": the answer says it did not take the request
  (codes `rate_limited`, `overloaded`, `not_ready`), so even a request that is not
  idempotent is tried again. `Retry-After` holds that node back for as long as it asks
  (bounded by `retry_after_max_s`); meanwhile the next listed node is tried.
* Between tries the client sleeps an exponential backoff with full jitter: a uniformly
  random time in `[0, min(backoff_max_s, backoff_base_s * 2**n)]` after the n-th failure,
  so clients that failed together do not come back together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Literal

import msgspec

from ..errors import BadRequest

# Node answers that say the request was refused before any of it was acted on.
REFUSED_CODES = frozenset({"rate_limited", "overloaded", "not_ready"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

FailureKind = Literal["connect", "transport", "status"]


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`attempts` counts every try of one request, across all nodes (1: never retry)."""

    attempts: int = 5
    backoff_base_s: float = 0.1
    backoff_max_s: float = 5.0
    retry_after_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s \
                or self.retry_after_max_s < 0:
            raise BadRequest("retries: attempts >= 1 and 0 <= backoff_base_s <= backoff_max_s, retry_after_max_s >= 0")

    def worst_case_sleep_s(self) -> float:
        """The longest a request can spend sleeping between its tries (not counting the tries)."""
        backoff = sum(min(self.backoff_max_s, self.backoff_base_s * 2.0**n) for n in range(self.attempts - 1))
        return backoff + (self.attempts - 1) * self.retry_after_max_s


@dataclass(frozen=True)
class Failure:
    """What went wrong with one try: `connect` (nothing was sent), `transport` (the request
    may have arrived: no complete answer), or `status` (an HTTP error answer)."""

    kind: FailureKind
    status: int = 0
    remote_code: str = ""
    retry_after_s: float | None = None


def may_retry(failure: Failure, idempotent: bool) -> bool:
    if failure.kind == "connect":
        return True
    if failure.kind == "transport":
        return idempotent
    if failure.status not in RETRYABLE_STATUSES:
        return False
    if failure.status in (429, 503) and failure.remote_code in REFUSED_CODES:
        return True
    return idempotent


def backoff_s(policy: RetryPolicy, failures: int, rng: random.Random) -> float:
    """Full jitter after the `failures`-th failure (1-based)."""
    ceiling = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** max(0, failures - 1))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_s)


@dataclass
class Rotation:
    """The listed nodes in order, each with the time before which it is not to be asked
    again. A client sticks to the node that last answered, and moves on when it fails."""

    count: int
    current: int = 0
    held_until: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.held_until = [0.0] * self.count

    def pick(self, now: float) -> tuple[int, float]:
        """The node to try, and how long to wait first: the current node if it is not held
        back, else the one whose hold ends soonest (the first listed among equals)."""
        if self.held_until[self.current] <= now:
            return self.current, 0.0
        order = [(self.current + step) % self.count for step in range(self.count)]
        best = min(order, key=lambda i: max(0.0, self.held_until[i] - now))
        self.current = best
        return best, max(0.0, self.held_until[best] - now)

    def failed(self, node: int, now: float, hold_s: float) -> None:
        """Hold `node` back for `hold_s` and make the next listed node current."""
        self.held_until[node] = max(self.held_until[node], now + hold_s)
        if node == self.current:
            self.current = (node + 1) % self.count

    def answered(self, node: int) -> None:
        self.current = node
        self.held_until[node] = 0.0


def next_try(policy: RetryPolicy, rotation: Rotation, node: int, failure: Failure, failures: int,
             idempotent: bool, now: float, rng: random.Random) -> tuple[int, float] | None:
    """After the `failures`-th failed try of a request (on `node`): the node to try next and
    the seconds to sleep first, or None to give up."""
    if failures >= policy.attempts or not may_retry(failure, idempotent):
        return None
    hold = 0.0
    if failure.retry_after_s is not None and failure.status in (429, 503):
        hold = min(policy.retry_after_max_s, failure.retry_after_s)
    rotation.failed(node, now, hold)
    chosen, wait = rotation.pick(now)
    return chosen, max(wait, backoff_s(policy, failures, rng))

"""Token buckets: each key earns `rate` tokens per second up to `burst`; a request spends one."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class RateLimiter:
    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def allow(self, key: Hashable, now_s: float, cost: float = 1.0) -> bool:
        if self.rate <= 0:
            return True
        tokens, last = self._buckets.pop(key, (self.burst, now_s))
        tokens = min(self.burst, tokens + (now_s - last) * self.rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[key] = (tokens, now_s)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed

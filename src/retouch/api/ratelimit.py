"""Per-key rate limits (default 120/min and 4/s), with Claid's RateLimit-* headers.

Fixed windows per key: in process memory for the embedded default, in Redis when the service runs
as several replicas (:class:`RedisRateLimiter`), so they share one budget.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

__all__ = ["RateLimiter", "RedisRateLimiter", "Verdict"]

log = logging.getLogger("retouch.ratelimit")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]


class RateLimiter:
    def __init__(self, per_minute: int, per_second: int) -> None:
        self.windows = [(w, n) for w, n in ((60, per_minute), (1, per_second)) if n > 0]
        self._counts: dict[tuple[str, int], tuple[int, int]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.windows)

    def _policy(self) -> str:
        return ", ".join(f"{n};w={w}" for w, n in self.windows)

    def hit(self, key: str, count: bool = True) -> Verdict:
        if not self.windows:
            return Verdict(True, {})
        now = time.time()
        results = []
        with self._lock:
            if len(self._counts) > 100_000:  # forget old windows so memory stays bounded
                current = {(k, w): v for (k, w), v in self._counts.items() if v[0] == int(now // w)}
                self._counts = current
            for window, limit in self.windows:
                slot = int(now // window)
                start, used = self._counts.get((key, window), (slot, 0))
                if start != slot:
                    used = 0
                if count:
                    used += 1
                self._counts[(key, window)] = (slot, used)
                reset = math.ceil((slot + 1) * window - now)
                results.append((window, limit, used, reset))
        return self._verdict(results)

    def _verdict(self, results: list[tuple[int, int, int, int]]) -> Verdict:
        # Like Claid: the first policy named is the widest window, or the one just exceeded.
        exceeded = [r for r in results if r[2] > r[1]]
        _window, limit, _used, reset = exceeded[0] if exceeded else results[0]
        remaining = -1 if exceeded else max(0, min(lim - u for _, lim, u, _ in results))
        headers = {
            "RateLimit-Limit": f"{limit}, {self._policy()}",
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(max(0, reset)),
        }
        return Verdict(not exceeded, headers)


class RedisRateLimiter(RateLimiter):
    """The same windows kept in Redis, so every API replica spends one budget per key.

    One INCR per window (a pipeline, one round trip); keys expire with their window. If Redis is
    unreachable the request is let through (a limiter outage must not become an API outage) and
    the failure is logged once per minute.
    """

    def __init__(self, per_minute: int, per_second: int, url: str) -> None:
        super().__init__(per_minute, per_second)
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._last_warning = 0.0

    def hit(self, key: str, count: bool = True) -> Verdict:
        if not self.windows:
            return Verdict(True, {})
        now = time.time()
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # never store API keys in Redis
        slots = [(window, limit, int(now // window)) for window, limit in self.windows]
        try:
            pipe = self._redis.pipeline(transaction=False)
            for window, _limit, slot in slots:
                name = f"retouch:rl:{digest}:{window}:{slot}"
                if count:
                    pipe.incr(name)
                    pipe.expire(name, window + 1)
                else:
                    pipe.get(name)
            replies = pipe.execute()
        except Exception as exc:
            if now - self._last_warning > 60:
                self._last_warning = now
                log.warning("rate limiter: Redis unavailable (%s); requests are not limited meanwhile", exc)
            return Verdict(True, {})
        step = 2 if count else 1
        results = []
        for index, (window, limit, slot) in enumerate(slots):
            used = int(replies[index * step] or 0)
            results.append((window, limit, used, math.ceil((slot + 1) * window - now)))
        return self._verdict(results)

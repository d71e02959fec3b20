"""Per-key rate limits as token buckets (default 120/min and 4/s with a burst of 20), with Claid's
RateLimit-* headers.

Why buckets and not fixed windows: a newcomer pasting the README's curl commands sends five or six
requests within a second and was refused by a fixed 4-per-second window, although over any longer
span they stay far below the limit. Two buckets per key:

- the minute bucket holds ``per_minute`` tokens and refills at ``per_minute / 60`` per second;
- the second bucket holds ``burst`` tokens and refills at ``per_second`` per second.

A request spends one token from each, or is refused (and spends none, so a client that keeps
retrying too fast recovers as soon as it slows down). The sustained rate is the same as before:
``per_second`` per second, ``per_minute`` per minute; only short bursts are kinder.

The buckets live in process memory for the embedded default, in Redis when the service runs as
several replicas (:class:`RedisRateLimiter`, one Lua script per request, Redis's clock) so they
share one budget.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

__all__ = ["Bucket", "RateLimiter", "RedisRateLimiter", "Verdict", "buckets"]

log = logging.getLogger("retouch.ratelimit")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]


@dataclass(frozen=True)
class Bucket:
    """One limit: at most ``capacity`` requests at once, refilled at ``rate`` per second.

    ``limit`` and ``window`` describe it in the RateLimit-Limit header's ``N;w=S`` form."""

    capacity: float
    rate: float
    limit: int
    window: int
    burst: int | None = None

    @property
    def policy(self) -> str:
        return f"{self.limit};w={self.window}" + (f";burst={self.burst}" if self.burst else "")


def buckets(per_minute: int, per_second: int, burst: int) -> list[Bucket]:
    """The buckets of the settings; a limit of 0 is off. ``burst`` below ``per_second`` means no burst."""
    found = []
    if per_minute > 0:
        found.append(Bucket(float(per_minute), per_minute / 60, per_minute, 60))
    if per_second > 0:
        size = max(burst, per_second)
        found.append(Bucket(float(size), float(per_second), per_second, 1, size if size > per_second else None))
    return found


class RateLimiter:
    """In-process token buckets: the embedded default, one API process."""

    def __init__(self, per_minute: int, per_second: int, burst: int = 0) -> None:
        self.buckets = buckets(per_minute, per_second, burst)
        self._levels: dict[tuple[str, int], tuple[float, float]] = {}  # (key, bucket) -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.buckets)

    def _policy(self) -> str:
        return ", ".join(b.policy for b in self.buckets)

    def hit(self, key: str, count: bool = True) -> Verdict:
        if not self.buckets:
            return Verdict(True, {})
        now = time.monotonic()
        spend = 1.0 if count else 0.0
        with self._lock:
            if len(self._levels) > 100_000:  # forget full buckets so memory stays bounded
                self._levels = {
                    k: v
                    for k, v in self._levels.items()
                    if self._refilled(self.buckets[k[1]], v, now) < self.buckets[k[1]].capacity
                }
            tokens = [self._refilled(b, self._levels.get((key, i)), now) for i, b in enumerate(self.buckets)]
            allowed = all(level >= spend for level in tokens)
            if allowed:
                tokens = [level - spend for level in tokens]
            for i, level in enumerate(tokens):
                self._levels[(key, i)] = (level, now)
        return self._verdict(allowed, tokens)

    @staticmethod
    def _refilled(bucket: Bucket, state: tuple[float, float] | None, now: float) -> float:
        """The bucket's tokens now: a new key starts full."""
        if state is None:
            return bucket.capacity
        tokens, at = state
        return min(bucket.capacity, tokens + (now - at) * bucket.rate)

    def _verdict(self, allowed: bool, tokens: list[float]) -> Verdict:
        """Headers from each bucket's tokens left (after this request, if it was allowed)."""
        if allowed:
            # The binding bucket is the one with the fewest whole tokens left; Reset is when it is full again.
            index = min(range(len(tokens)), key=lambda i: math.floor(tokens[i]))
            bucket = self.buckets[index]
            remaining = str(math.floor(tokens[index]))
            reset = math.ceil((bucket.capacity - tokens[index]) / bucket.rate)
        else:
            # The bucket that refused, the one that takes longest to give a token back; Reset is that wait.
            short = [i for i in range(len(tokens)) if tokens[i] < 1]
            index = max(short, key=lambda i: (1 - tokens[i]) / self.buckets[i].rate)
            bucket = self.buckets[index]
            remaining = "-1"
            reset = max(1, math.ceil((1 - tokens[index]) / bucket.rate))
        headers = {
            # Like Claid: the first number is the binding (or the just exceeded) limit, then every policy.
            "RateLimit-Limit": f"{bucket.limit}, {self._policy()}",
            "RateLimit-Remaining": remaining,
            "RateLimit-Reset": str(max(0, reset)),
        }
        return Verdict(allowed, headers)


# Both buckets checked and spent in one atomic step on Redis's own clock (replicas' clocks may differ).
# Returns {allowed, tokens_1, tokens_2, ...}; tokens as strings because Lua numbers become integers.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local spend = tonumber(ARGV[1])
local levels = {}
local allowed = 1
for i = 1, #KEYS do
  local cap = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens = tonumber(v[1])
  local at = tonumber(v[2])
  if tokens == nil or at == nil then tokens = cap; at = now end
  tokens = math.min(cap, tokens + math.max(0, now - at) * rate)
  levels[i] = tokens
  if tokens < spend then allowed = 0 end
end
local out = {allowed}
for i = 1, #KEYS do
  local cap = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local tokens = levels[i]
  if allowed == 1 then tokens = tokens - spend end
  redis.call('HSET', KEYS[i], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[i], math.ceil(cap / rate) + 1)
  out[i + 1] = tostring(tokens)
end
return out
"""


class RedisRateLimiter(RateLimiter):
    """The same buckets kept in Redis, so every API replica spends one budget per key.

    If Redis is unreachable the request is let through (a limiter outage must not become an API
    outage) and the failure is logged once per minute."""

    def __init__(self, per_minute: int, per_second: int, url: str, burst: int = 0) -> None:
        super().__init__(per_minute, per_second, burst)
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self._redis.register_script(_SCRIPT)
        self._last_warning = 0.0

    def hit(self, key: str, count: bool = True) -> Verdict:
        if not self.buckets:
            return Verdict(True, {})
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # never store API keys in Redis
        keys = [f"retouch:tb:{digest}:{b.window}" for b in self.buckets]
        args: list[float] = [1 if count else 0]
        for b in self.buckets:
            args += [b.capacity, b.rate]
        try:
            reply = self._script(keys=keys, args=args)
        except Exception as exc:
            now = time.monotonic()
            if now - self._last_warning > 60 or not self._last_warning:
                self._last_warning = now
                log.warning("rate limiter: Redis unavailable (%s); requests are not limited meanwhile", exc)
            return Verdict(True, {})
        allowed = int(reply[0]) == 1
        return self._verdict(allowed, [float(value) for value in reply[1:]])

"""Per-key rate limits (default 120/min and 4/s), with Claid's RateLimit-* headers.

Fixed windows per key, kept in process memory; the scale-out issue moves them to Redis so replicas
share one budget.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

__all__ = ["RateLimiter", "Verdict"]


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
        # Like Claid: the first policy named is the widest window, or the one just exceeded.
        exceeded = [r for r in results if r[2] > r[1]]
        window, limit, used, reset = exceeded[0] if exceeded else results[0]
        remaining = -1 if exceeded else max(0, min(lim - u for _, lim, u, _ in results))
        headers = {
            "RateLimit-Limit": f"{limit}, {self._policy()}",
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(max(0, reset)),
        }
        return Verdict(not exceeded, headers)

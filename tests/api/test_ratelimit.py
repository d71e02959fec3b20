"""The token buckets' arithmetic, on a clock the test moves (the HTTP and Redis paths have their own tests)."""

from __future__ import annotations

import pytest

from retouch.api import ratelimit
from retouch.api.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(ratelimit.time, "monotonic", c)
    return c


def test_burst_then_sustained_rate(clock: Clock) -> None:
    limiter = RateLimiter(per_minute=120, per_second=4, burst=20)
    assert all(limiter.hit("k").allowed for _ in range(20))  # a pasted README session: 20 at once
    refused = limiter.hit("k")
    assert not refused.allowed
    assert refused.headers["RateLimit-Reset"] == "1"
    clock.now += 1.0  # 4 tokens per second come back
    assert [limiter.hit("k").allowed for _ in range(5)] == [True] * 4 + [False]
    # Sustained: over 60 s a steady client gets 4/s until the minute bucket runs dry at 120.
    served = 0
    for _ in range(600):
        clock.now += 0.1
        served += limiter.hit("k").allowed
    assert 4 * 60 * 0.5 - 10 < served <= 4 * 60  # bounded by both: 2/s (minute bucket) sustained, not more than 4/s


def test_minute_bucket_binds_over_a_minute(clock: Clock) -> None:
    limiter = RateLimiter(per_minute=120, per_second=4, burst=20)
    served = 0
    for _ in range(6000):  # 10 minutes of a client trying 10 times a second
        clock.now += 0.1
        served += limiter.hit("k").allowed
    assert abs(served - (120 + 2 * 600)) <= 25  # the first full bucket, then 2 per second


def test_refusals_spend_nothing(clock: Clock) -> None:
    limiter = RateLimiter(per_minute=0, per_second=1, burst=1)
    assert limiter.hit("k").allowed
    for _ in range(50):  # hammering does not push the next token further away
        assert not limiter.hit("k").allowed
    clock.now += 1.0
    assert limiter.hit("k").allowed


def test_headers(clock: Clock) -> None:
    limiter = RateLimiter(per_minute=120, per_second=4, burst=20)
    first = limiter.hit("k")
    assert first.headers == {
        "RateLimit-Limit": "4, 120;w=60, 4;w=1;burst=20",
        "RateLimit-Remaining": "19",
        "RateLimit-Reset": "1",
    }
    peek = limiter.hit("k", count=False)  # uncounted paths see the budget without spending it
    assert peek.headers["RateLimit-Remaining"] == "19"
    no_burst = RateLimiter(per_minute=0, per_second=3, burst=0).hit("k")
    assert no_burst.headers["RateLimit-Limit"] == "3, 3;w=1" and no_burst.headers["RateLimit-Remaining"] == "2"


def test_off() -> None:
    limiter = RateLimiter(per_minute=0, per_second=0, burst=20)
    assert not limiter.enabled
    assert limiter.hit("k").allowed and limiter.hit("k").headers == {}

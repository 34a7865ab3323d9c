"""Request counters for rate limits: in process (embedded) or in Redis (scale-out).

Both count in *fixed windows* aligned to the clock: a window of ``W`` seconds
starting at ``floor(now / W) * W``, reset when the next one starts. The price
of the simplicity is a burst at a boundary: a client may spend one window's
allowance at its end and the next one's at the start, so at most twice the
limit in any ``W`` seconds, never more than the limit per window on average.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

Clock = Callable[[], float]

REDIS_PREFIX = "docwiz:ratelimit:"


@dataclass(frozen=True)
class Quota:
    """Where one counter stands in its current window."""

    limit: int
    count: int
    reset_at: float
    """When the window ends, in seconds since the epoch."""
    now: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    @property
    def exhausted(self) -> bool:
        """No attempt is left: the next one would exceed the limit."""
        return self.count >= self.limit

    @property
    def retry_after(self) -> int:
        """Whole seconds until the window resets (at least one)."""
        return max(1, math.ceil(self.reset_at - self.now))


def window_start(now: float, window: int) -> int:
    return int(now // window) * window


def subject_key(kind: str, value: str) -> str:
    """A counter name that does not store the address or email itself."""
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"{kind}:{digest}"


class RateLimiter(Protocol):
    """Counters per key, each in windows of ``window`` seconds."""

    async def hit(self, key: str, limit: int, window: int) -> Quota:
        """Count one event under ``key`` and return where the counter stands."""
        ...

    async def peek(self, key: str, limit: int, window: int) -> Quota:
        """Where the counter stands, without counting."""
        ...

    async def reset(self, key: str, window: int) -> None:
        """Forget the current window's count of ``key``."""
        ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Counters in a dict of this process: the embedded, single-process mode."""

    PRUNE_EVERY = 1024

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._counters: dict[tuple[str, int], tuple[int, int]] = {}
        self._hits = 0

    async def hit(self, key: str, limit: int, window: int) -> Quota:
        now = self._clock()
        start = window_start(now, window)
        slot = (key, window)
        seen_start, count = self._counters.get(slot, (start, 0))
        count = count + 1 if seen_start == start else 1
        self._counters[slot] = (start, count)
        self._hits += 1
        if self._hits % self.PRUNE_EVERY == 0:
            self._prune(now)
        return Quota(limit=limit, count=count, reset_at=start + window, now=now)

    async def peek(self, key: str, limit: int, window: int) -> Quota:
        now = self._clock()
        start = window_start(now, window)
        seen_start, count = self._counters.get((key, window), (start, 0))
        if seen_start != start:
            count = 0
        return Quota(limit=limit, count=count, reset_at=start + window, now=now)

    async def reset(self, key: str, window: int) -> None:
        self._counters.pop((key, window), None)

    def _prune(self, now: float) -> None:
        # Counters of past windows are dead weight; drop them all at once.
        stale = [
            slot
            for slot, (start, _count) in self._counters.items()
            if start + slot[1] <= now
        ]
        for slot in stale:
            del self._counters[slot]

    def __len__(self) -> int:
        return len(self._counters)

    async def close(self) -> None:
        self._counters.clear()


class RedisRateLimiter:
    """Counters in Redis, shared by every process: the scale-out mode.

    One key per subject and window (``INCR`` then ``EXPIRE`` in one
    transaction), so a key disappears on its own after its window.
    """

    def __init__(self, redis: Redis, clock: Clock = time.time) -> None:
        self._redis = redis
        self._clock = clock

    @classmethod
    def from_url(cls, url: str) -> RedisRateLimiter:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2))

    def _name(self, key: str, window: int, start: int) -> str:
        return f"{REDIS_PREFIX}{key}:{window}:{start}"

    async def hit(self, key: str, limit: int, window: int) -> Quota:
        now = self._clock()
        start = window_start(now, window)
        name = self._name(key, window, start)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window + 1)
            count, _ = await pipe.execute()
        return Quota(limit=limit, count=int(count), reset_at=start + window, now=now)

    async def peek(self, key: str, limit: int, window: int) -> Quota:
        now = self._clock()
        start = window_start(now, window)
        raw = await self._redis.get(self._name(key, window, start))
        count = int(raw) if raw is not None else 0
        return Quota(limit=limit, count=count, reset_at=start + window, now=now)

    async def reset(self, key: str, window: int) -> None:
        start = window_start(self._clock(), window)
        await self._redis.delete(self._name(key, window, start))

    async def close(self) -> None:
        await self._redis.aclose()

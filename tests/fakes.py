"""Test doubles shared by the test modules."""

from __future__ import annotations

import asyncio


class FakeTime:
    """A monotonic clock whose ``sleep`` advances it at once (after yielding to the loop).

    Hand ``clock`` and ``sleep`` to a RetryPolicy and a RateLimiter so that no test waits.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

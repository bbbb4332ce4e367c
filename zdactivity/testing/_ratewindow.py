"""The emulator's account-wide rate limit: one fixed window, like Zendesk's per-minute budget.

Named ``FixedWindow`` (not ``RateLimiter``) so it is never confused with the client-side
``zdactivity.RateLimiter``: this one is the *server's* budget that the client must respect.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FixedWindow", "RateState"]


@dataclass(frozen=True, slots=True)
class RateState:
    """What one request saw of the window: whether it was allowed, and the rate headers."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # whole seconds until the window resets, >= 1


class FixedWindow:
    """One account-wide fixed window: ``limit`` requests per ``window`` seconds."""

    def __init__(
        self, limit: int, window: float, monotonic: Callable[[], float], enforce: bool
    ) -> None:
        self.limit = limit
        self.window = window
        self.enforce = enforce
        self._monotonic = monotonic
        self._start: float | None = None
        self._used = 0

    def _roll(self) -> float:
        now = self._monotonic()
        if self._start is None or now >= self._start + self.window:
            self._start = now
            self._used = 0
        return now

    def _state(self, now: float, allowed: bool) -> RateState:
        assert self._start is not None
        reset = max(1, math.ceil(self._start + self.window - now))
        return RateState(allowed, self.limit, max(0, self.limit - self._used), reset)

    def consume(self) -> RateState:
        """Count one request against the window."""
        now = self._roll()
        self._used += 1
        allowed = self._used <= self.limit or not self.enforce
        return self._state(now, allowed)

    def peek(self) -> RateState:
        """The window's state without counting a request."""
        return self._state(self._roll(), True)

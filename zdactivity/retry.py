"""When and how long to retry a failed request.

Retries wrap one request coroutine, never an iterator: a failure in the middle of a listing retries
that page only, and the listing continues from its cursor.

- 429 and 503 with ``Retry-After``: wait exactly that long; a wait above ``max_retry_after``
  raises at once instead of sleeping.
- Other 5xx, connection errors, timeouts, truncated bodies: exponential backoff with full jitter
  (backoff's ``expo`` and ``full_jitter``).
- Other 4xx, bodies of the wrong shape, bodies over the size limit, TLS certificates that
  cannot be verified, and the local rate limiter's refusals (``LocalRateLimitError``): never
  retried.
- ``max_time`` bounds one request's time across attempts, retry delays and the rate limiter's
  sleeps; ``max_retry_after`` bounds any single ``Retry-After`` wait and the account-wide pause a
  429 causes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import backoff

from .errors import (
    CertificateError,
    DecodeError,
    LocalRateLimitError,
    RateLimitError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
    ZendeskError,
)

__all__ = ["RetryPolicy"]


async def _no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


@dataclass(frozen=True)
class RetryPolicy:
    """How a :class:`~zdactivity.Client` retries one request.

    ``max_tries`` counts attempts (1 means no retry); ``max_time`` bounds the seconds spent on
    one request across attempts and waits, the rate limiter's included. ``max_retry_after``
    bounds a ``Retry-After`` wait and the account-wide pause after a 429. ``sleep``, ``clock``
    and ``jitter`` are injectable so that tests never wait (the client's rate-limiter waits go
    through ``sleep`` too); :meth:`testing` gives a policy that does not sleep at all.
    """

    max_tries: int = 5
    max_time: float = 120.0
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    retry_decode_errors: bool = True
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    jitter: Callable[[float], float] = field(default=backoff.full_jitter, repr=False)

    def __post_init__(self) -> None:
        if self.max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        if not self.max_time > 0:
            raise ValueError("max_time must be positive")
        for name in ("base_delay", "max_delay", "max_retry_after"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ValueError(f"{name} must be a number >= 0")

    @classmethod
    def no_retry(cls) -> RetryPolicy:
        """A policy that never retries: every error is raised at once."""
        return cls(max_tries=1)

    def testing(self) -> RetryPolicy:
        """The same policy, minus the waiting: for test suites. Retry delays and the rate
        limiter's waits (a 429's pause, a window's reset) are skipped, as if they had passed."""
        return replace(self, sleep=_no_sleep)

    def backoff_delay(self, attempt: int) -> float:
        """The jittered exponential delay after failed attempt number ``attempt`` (1-based)."""
        waits = backoff.expo(base=2, factor=self.base_delay, max_value=self.max_delay)
        next(waits)  # backoff's generators are primed with a first send(None)
        delay = self.base_delay
        for _ in range(attempt):
            delay = next(waits)
        return self.jitter(delay)

    def delay_for(self, error: ZendeskError, attempt: int, elapsed: float) -> float | None:
        """Seconds to wait before retrying after ``error`` on attempt ``attempt``, or None to
        give up and raise it. Pure: a function of its arguments and the policy."""
        if attempt >= self.max_tries or isinstance(
            error, ResponseTooLargeError | CertificateError | LocalRateLimitError
        ):
            return None
        if isinstance(error, RateLimitError) or (
            isinstance(error, ServerError) and error.status == 503
        ):
            if error.retry_after is not None:
                if error.retry_after > self.max_retry_after:
                    return None
                delay: float = error.retry_after
            else:
                delay = self.backoff_delay(attempt)
        elif isinstance(error, ServerError | TransportError) or (
            isinstance(error, DecodeError) and self.retry_decode_errors and error.path is None
        ):
            delay = self.backoff_delay(attempt)
        else:
            return None
        if elapsed + delay > self.max_time:
            return None
        return delay

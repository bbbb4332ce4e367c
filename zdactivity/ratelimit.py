"""One request budget per Zendesk account.

Zendesk counts every request of an account (all agents, tokens and integrations) against one
per-minute budget. A :class:`RateLimiter` is shared by every client of an account (``with_auth``
views share it automatically; pass the same object to separately built clients) and spends that
budget proactively:

- It learns the limit, the remaining budget and the window's reset from each response
  (``X-Rate-Limit``/``rate-limit``/``ratelimit-limit``, ``...-remaining``, ``rate-limit-reset``),
  or starts from a configured plan limit. A reported reset is capped at ``window``, and a
  reported limit below 1 is ignored: a header cannot stall the account beyond one window.
- It grants requests while the window has budget left above a ``reserve`` share kept free for
  the account's other integrations, then holds the rest until the window resets.
- Its own in-flight requests are counted locally, so a burst of concurrent requests cannot
  overshoot what the last response said was left; the window's last 1% goes one request at a
  time, so that budget spent unseen (other integrations, resends) shows before it is too late.
- A 429 anywhere pauses every request of the account until ``Retry-After`` has passed (the
  client caps that pause at its policy's ``max_retry_after``).
- At the start and after each reset of the window, one request goes first (a probe) and the
  others wait for its answer, which anchors the window; a server that sends no rate-limit
  headers is not throttled. A probe that fails (error, timeout, cancellation) lets every waiter
  go at once, and so does a failure in the window's one-at-a-time tail: a server that never
  answers cannot make requests queue one timeout after another.
- What bounds a wait in :meth:`RateLimiter.acquire`: ``max_wait`` a 429's pause, ``budget`` the
  sum of its sleeps (the client passes what is left of the policy's ``max_time``), and
  ``answer_timeout`` its waits for another request's answer (the client passes the attempt's
  ``total`` timeout). A wait past ``max_wait`` or ``budget`` raises
  :class:`~zdactivity.LocalRateLimitError` at once instead of sleeping.

The client talks to its limiter only through :class:`RateLimitBackend`, whose calls are all
awaitable: ``acquire`` a :class:`Permit`, then ``aobserve`` the response's rate-limit headers
or ``arelease`` a permit whose request got no response, and ``apause`` the account on a 429.
:class:`RateLimiter` implements it in process (its ``observe`` / ``release`` / ``pause`` are the
synchronous originals of the ``a``-prefixed methods); a backend that keeps the account's state
elsewhere (another process, Redis) implements the same four coroutines.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .errors import LocalRateLimitError
from .protocol import RateLimitHeaders

__all__ = ["Permit", "RateLimitBackend", "RateLimitState", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """A snapshot of a limiter. Times are seconds from now; None where unknown."""

    limit: int | None
    remaining: int | None
    reserved: int
    in_flight: int
    resets_in: float | None
    paused_for: float | None


class Permit:
    """One granted request; hand it back with ``aobserve`` (or ``observe``) once answered, or
    ``arelease`` (``release``) when it got no answer.

    ``waited_for_answer``: real seconds the request waited for another request's answer before
    it was granted (the client takes them off the attempt's ``total`` timeout); the only
    attribute the client reads. ``seq`` and ``epoch`` are the granting backend's bookkeeping:
    another backend may subclass Permit to carry its own.
    """

    __slots__ = ("done", "epoch", "seq", "waited_for_answer")

    def __init__(self, seq: int, epoch: int) -> None:
        self.seq = seq
        self.epoch = epoch
        self.done = False
        self.waited_for_answer = 0.0


@runtime_checkable
class RateLimitBackend(Protocol):
    """What a :class:`~zdactivity.Client` needs of an account's rate limiter: four coroutines.

    The client calls, for each attempt: ``permit = await acquire(...)``; then, once the
    response is read, ``await aobserve(permit, headers)`` with its rate-limit headers (success
    or error status alike), or ``await arelease(permit)`` if no response came (an error, a
    timeout, cancellation); and ``await apause(seconds)`` when a server 429 says to hold every
    request of the account. Every permit is handed back exactly once.
    """

    async def acquire(
        self,
        *,
        max_wait: float | None = None,
        budget: float | None = None,
        answer_timeout: float | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> Permit:
        """Wait for the account's budget and take one request of it.

        Raise :class:`~zdactivity.LocalRateLimitError` at once rather than sleep past
        ``max_wait`` (a 429's pause) or ``budget`` (all sleeps of this call); raise
        ``TimeoutError`` after ``answer_timeout`` real seconds waiting for another request's
        answer. Sleep through ``sleep`` when given (a test's no-op sleep counts as served).
        """
        ...

    async def aobserve(self, permit: Permit, headers: RateLimitHeaders) -> None:
        """Learn from the response to ``permit``'s request, and return the permit."""
        ...

    async def arelease(self, permit: Permit) -> None:
        """Return a permit whose request got no response."""
        ...

    async def apause(self, seconds: float) -> None:
        """A server 429 said to wait ``seconds``: hold every request of the account."""
        ...


def check_budget(limit: int | None, reserve: float, window: float) -> None:
    """Refuse a limit below 1, a reserve outside [0, 1) or a window that is not positive
    (the settings every rate limiter of an account takes)."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be a positive number of requests per window")
    if not 0.0 <= reserve < 1.0:
        raise ValueError("reserve must be a share between 0 and 1")
    if not window > 0:
        raise ValueError("window must be positive")


class RateLimiter:
    """The request budget of one account, shared by all of its clients, in this process.

    Implements :class:`RateLimitBackend`; ``observe``, ``release`` and ``pause`` are the
    synchronous forms of ``aobserve``, ``arelease`` and ``apause``.

    ``limit``: the plan's requests per window if known (Team 200, Growth/Professional 400,
    Enterprise 700, High Volume 2,500 per minute); learnt from responses otherwise.
    ``reserve``: the share of the budget left free for the account's other integrations.
    ``window``: the length of Zendesk's window in seconds (60), also the longest a reported
    reset can make a request wait. ``clock`` and ``sleep`` are injectable for tests; a
    :class:`~zdactivity.Client` sleeps through its retry policy's ``sleep`` instead, so that
    ``RetryPolicy.testing()`` skips the limiter's waits too.
    """

    def __init__(
        self,
        limit: int | None = None,
        *,
        reserve: float = 0.0,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        check_budget(limit, reserve, window)
        self.reserve = reserve
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._limit = limit
        self._remaining: int | None = None
        self._window_end: float | None = None
        self._anchored = False  # True once a response of this window measured its end
        self._paused_until = 0.0
        self._reports_budget: bool | None = None  # unknown until the first response
        self._epoch = 0
        self._seq = 0
        # The window in which a request of the one-at-a-time phases (the probe, the tail) got
        # no answer: its waiters all go instead of queueing behind one timeout after another.
        self._unserialized_epoch = -1
        # Permits out, by seq (sorted: seqs only grow) and by window: counting those granted
        # after a given one, or in earlier windows, stays cheap with thousands in flight.
        self._seqs: list[int] = []
        self._per_epoch: dict[int, int] = {}
        self._changed: asyncio.Event | None = None

    # --- state ---

    @property
    def limit(self) -> int | None:
        """Requests per window, as configured or last reported."""
        return self._limit

    @property
    def remaining(self) -> int | None:
        """Requests believed left in the current window (reserve included), or None."""
        return self._remaining

    @property
    def paused_until(self) -> float | None:
        """The ``clock()`` time a 429 paused the account until, if that is still ahead."""
        return self._paused_until if self._paused_until > self._clock() else None

    def state(self) -> RateLimitState:
        """A snapshot: limit, remaining, reserve, in flight, reset and pause (seconds from now)."""
        now = self._clock()
        return RateLimitState(
            limit=self._limit,
            remaining=self._remaining,
            reserved=self._reserved(),
            in_flight=len(self._seqs),
            resets_in=None if self._window_end is None else max(0.0, self._window_end - now),
            paused_for=self._paused_until - now if self._paused_until > now else None,
        )

    def __repr__(self) -> str:
        s = self.state()
        return (
            f"RateLimiter(limit={s.limit}, remaining={s.remaining}, reserve={self.reserve}, "
            f"in_flight={s.in_flight}, paused_for={s.paused_for})"
        )

    def _tail(self) -> int:
        return max(1, self._limit // 100) if self._limit else 1

    def _reserved(self) -> int:
        return math.ceil(self._limit * self.reserve) if self._limit else 0

    # --- granting ---

    async def acquire(
        self,
        *,
        max_wait: float | None = None,
        budget: float | None = None,
        answer_timeout: float | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> Permit:
        """Wait until the account's budget allows one more request, and take it.

        ``max_wait``: if a 429 paused the account for longer than that many seconds, raise
        :class:`~zdactivity.LocalRateLimitError` at once instead of sleeping.
        ``budget``: the seconds this call may sleep in all (for the pause and the window's
        reset); a sleep that would go past it raises LocalRateLimitError at once too.
        ``answer_timeout``: the real seconds this call may wait for another request's answer
        (the window's first, or its tail's); past it, TimeoutError.
        ``sleep``: sleeps for this call instead of the limiter's own. One that returns early
        (a test's no-op sleep) counts as served: the limiter acts as if that time had passed.
        """
        sleep = sleep if sleep is not None else self._sleep
        served = -math.inf  # the clock time this call's sleeps reached, served or not
        slept = 0.0
        answer_waited = 0.0
        while True:
            now = max(self._clock(), served)
            if now < self._paused_until:
                wait = self._paused_until - now
                if max_wait is not None and wait > max_wait:
                    raise self._refuse(
                        wait,
                        "the account is paused by an earlier 429 for longer than the retry "
                        f"policy's max_retry_after ({max_wait:g}s)",
                    )
            else:
                self._roll(now)
                granted = self._try_grant(now)
                if isinstance(granted, Permit):
                    granted.waited_for_answer = answer_waited
                    return granted
                if granted is None:
                    answer_waited += await self._wait_for_change(answer_timeout, answer_waited)
                    continue
                wait = granted
            if budget is not None and slept + wait > budget:
                raise self._refuse(
                    wait,
                    f"waiting for the account's budget would overrun the request's max_time "
                    f"({max(budget - slept, 0.0):.3g}s left)",
                )
            await sleep(wait)
            slept += wait
            served = now + wait

    @staticmethod
    def _refuse(wait: float, why: str) -> LocalRateLimitError:
        return LocalRateLimitError(429, retry_after=wait, description=why)

    def _try_grant(self, now: float) -> Permit | float | None:
        """A permit, or seconds to sleep, or None to wait for the next response."""
        if self._reports_budget is False:
            return self._grant()
        # One at a time while the window is probed and in its tail, unless one of those
        # requests failed in this window: then the waiters' own timeouts bound their wait.
        serial = self._unserialized_epoch != self._epoch
        if self._remaining is None:
            # Nothing known of this window yet: probe with one request at a time.
            return None if serial and self._per_epoch.get(self._epoch) else self._grant()
        available = self._remaining - self._reserved()
        if available >= 1:
            if serial and available <= self._tail() and self._per_epoch.get(self._epoch):
                # The window's last requests go one at a time: each answer's remaining count
                # shows what others spent unseen (other integrations, transparent resends).
                return None
            self._remaining -= 1
            return self._grant()
        if self._window_end is not None:
            # At most one window: an end rolled forward in floats can land 1e-13 s beyond.
            return min(max(self._window_end - now, 0.001), self.window)
        return None if self._seqs else self.window

    def _grant(self) -> Permit:
        self._seq += 1
        permit = Permit(self._seq, self._epoch)
        self._seqs.append(permit.seq)
        self._per_epoch[permit.epoch] = self._per_epoch.get(permit.epoch, 0) + 1
        return permit

    def _roll(self, now: float) -> None:
        end = self._window_end
        if end is None or now < end:
            return
        self._window_end = end + self.window * (math.floor((now - end) / self.window) + 1)
        self._anchored = False
        self._epoch += 1
        # Probe the new window with one request: its reset header anchors the window, whether
        # the server's windows follow a fixed grid or start at the first request after a reset.
        self._remaining = None

    async def _wait_for_change(self, allowed: float | None, waited: float) -> float:
        """Wait for the next answer or release; the real seconds waited. TimeoutError past
        ``allowed`` seconds in all (``waited`` already spent)."""
        if self._changed is None:
            self._changed = asyncio.Event()
        changed = self._changed
        loop = asyncio.get_running_loop()
        started = loop.time()
        if allowed is None:
            await changed.wait()
        else:
            left = allowed - waited
            if left <= 0:
                raise TimeoutError
            async with asyncio.timeout(left):
                await changed.wait()
        return loop.time() - started

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # --- feedback ---

    def release(self, permit: Permit) -> None:
        """Return a permit whose request got no response (error or cancellation).

        If it was sent while this window goes one request at a time (its probe, its tail),
        the requests waiting for its answer all go now instead of queueing one after another.
        """
        if not permit.done and permit.epoch == self._epoch:
            self._unserialized_epoch = self._epoch
        self._return(permit)

    def _return(self, permit: Permit) -> None:
        if not permit.done:
            permit.done = True
            seqs = self._seqs
            i = bisect.bisect_left(seqs, permit.seq)
            if i < len(seqs) and seqs[i] == permit.seq:
                del seqs[i]
                left = self._per_epoch[permit.epoch] - 1
                if left:
                    self._per_epoch[permit.epoch] = left
                else:
                    del self._per_epoch[permit.epoch]
            self._notify()

    def observe(self, permit: Permit, headers: RateLimitHeaders) -> None:
        """Learn from the response to ``permit``'s request, and return the permit."""
        if permit.done:
            return
        now = self._clock()
        self._return(permit)
        reported = headers.limit is not None or headers.remaining is not None
        if self._reports_budget is None or reported:
            self._reports_budget = reported
        if not reported:
            return
        if headers.limit is not None and headers.limit >= 1:
            self._limit = headers.limit
        self._roll(now)
        if permit.epoch == self._epoch:
            self._unserialized_epoch = -1  # an answer: one at a time again where due
        # A reset is at most one window away: a hostile or broken header cannot stall the
        # account for longer (rate-limit-reset: 1000000000 would be 31 years).
        end = None if headers.reset is None else now + min(max(headers.reset, 0.0), self.window)
        if self._window_end is None:
            self._start_window(end if end is not None else now + self.window)
        elif end is not None and end > self._window_end + self.window / 2:
            self._start_window(end)  # the server is in a window we did not know about
        elif permit.epoch != self._epoch:
            return  # granted before the window rolled: its counts belong to the old window
        elif end is not None:
            # The reset header is rounded up to whole seconds, so each measured end is at or
            # after the true one and the earliest is the best. A rolled estimate is no
            # measurement: the first answer of the window replaces it.
            self._window_end = min(self._window_end, end) if self._anchored else end
            self._anchored = True
        if headers.remaining is not None:
            # The server counted this request. Ours granted after it are not in its count yet,
            # nor may be stragglers granted in an earlier window: they can still land in this one.
            # (Earlier windows' permits all have smaller seqs: the two counts do not overlap.)
            later = len(self._seqs) - bisect.bisect_right(self._seqs, permit.seq)
            later += sum(n for epoch, n in self._per_epoch.items() if epoch < permit.epoch)
            estimate = headers.remaining - later
            self._remaining = (
                estimate if self._remaining is None else min(self._remaining, estimate)
            )
            self._remaining = max(self._remaining, 0)
        elif self._remaining is None and self._limit is not None:
            self._remaining = self._limit - len(self._seqs)

    async def aobserve(self, permit: Permit, headers: RateLimitHeaders) -> None:
        """:meth:`observe`, as the :class:`RateLimitBackend` coroutine."""
        self.observe(permit, headers)

    async def arelease(self, permit: Permit) -> None:
        """:meth:`release`, as the :class:`RateLimitBackend` coroutine."""
        self.release(permit)

    async def apause(self, seconds: float) -> None:
        """:meth:`pause`, as the :class:`RateLimitBackend` coroutine."""
        self.pause(seconds)

    def _start_window(self, end: float) -> None:
        self._window_end = end
        self._anchored = True
        self._epoch += 1
        self._remaining = None

    def pause(self, seconds: float) -> None:
        """A 429 said to wait ``seconds``: hold every request of the account until then."""
        now = self._clock()
        until = now + max(seconds, 0.0)
        if until > self._paused_until:
            self._paused_until = until
        # The budget is spent until then; a fresh window starts when the pause ends.
        self._window_end = until
        self._anchored = True
        self._remaining = 0
        self._notify()

"""One account budget for every process: :class:`RedisRateLimiter`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import ConnectionFailedError, LocalRateLimitError
from ..protocol import RateLimitHeaders
from ..ratelimit import Permit, RateLimiter, check_budget
from . import _scripts

__all__ = ["RedisRateLimiter"]

logger = logging.getLogger("zdactivity.redis")

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisPermit(Permit):
    """A permit granted by Redis (``seq``/``epoch`` are the account's, shared by processes)."""

    __slots__ = ()


class RedisRateLimiter:
    """The request budget of one Zendesk account, shared by every process through Redis.

    Implements :class:`~zdactivity.ratelimit.RateLimitBackend` with the rules of the in-process
    :class:`~zdactivity.RateLimiter`, run atomically as Lua scripts with Redis ``TIME`` as the
    one clock: one probe at a time until the window's budget is known; limit and window learnt
    from the response headers (a reported reset capped at ``window``); the permits in flight of
    every process counted against what the server last reported; the window's last 1% one at a
    time; a 429 pauses every process for its ``Retry-After``. Pass one per process (or one per
    account shared by every client of the process): ``Client(..., rate_limiter=
    RedisRateLimiter(redis, "acme"))``.

    ``redis``: a ``redis.asyncio.Redis``. ``account``: names the account (its subdomain, say);
    its keys are ``{key_prefix}:{{account}}:state`` / ``:permits`` (hash-tagged: one Redis
    Cluster slot) and its channel ``{key_prefix}:{{account}}:changed``; every key has a TTL.
    ``limit``, ``reserve``, ``window``: as for :class:`~zdactivity.RateLimiter` (the first
    process to configure a limit sets it; responses override it). ``permit_ttl``: seconds after
    which a permit that was never handed back (its process crashed) stops counting; keep it
    above the longest attempt (the client's ``total`` timeout, 60 s by default).
    ``wake_interval``: the longest a waiter sleeps without a message before it asks Redis
    again (a lost message cannot hang it).

    If Redis is unreachable: with ``on_redis_error="fallback"`` (the default) the limiter logs a
    warning once and spends an in-process :class:`~zdactivity.RateLimiter` (``fallback``, or a
    new one with the same settings) until Redis answers again (it is retried after
    ``retry_redis_after`` seconds), so an outage of Redis does not stop a web app: each process
    then only knows its own requests. With ``"raise"``, every call raises
    :class:`~zdactivity.ConnectionFailedError` (a ``TransportError``) instead. No redis-py
    exception leaves the public methods.

    ``round_trips`` counts the calls made to Redis (scripts and the subscription).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        account: str,
        *,
        limit: int | None = None,
        reserve: float = 0.0,
        window: float = 60.0,
        key_prefix: str = "zdactivity",
        permit_ttl: float = 90.0,
        on_redis_error: Literal["fallback", "raise"] = "fallback",
        fallback: RateLimiter | None = None,
        wake_interval: float = 1.0,
        retry_redis_after: float = 5.0,
    ) -> None:
        check_budget(limit, reserve, window)
        if permit_ttl <= 0 or wake_interval <= 0:
            raise ValueError("permit_ttl and wake_interval must be positive")
        if on_redis_error not in ("fallback", "raise"):
            raise ValueError('on_redis_error must be "fallback" or "raise"')
        if not account:
            raise ValueError("account must name the Zendesk account")
        self.redis = redis
        self.account = account
        self.limit = limit
        self.reserve = reserve
        self.window = window
        self.permit_ttl = permit_ttl
        self.on_redis_error = on_redis_error
        self.wake_interval = wake_interval
        self.retry_redis_after = retry_redis_after
        base = f"{key_prefix}:{{{account}}}"
        self.keys = (f"{base}:state", f"{base}:permits", f"{base}:changed")
        self.fallback = (
            fallback if fallback is not None else RateLimiter(limit, reserve=reserve, window=window)
        )
        self.round_trips = 0
        self._scripts = {
            name: redis.register_script(source)
            for name, source in (
                ("acquire", _scripts.ACQUIRE),
                ("observe", _scripts.OBSERVE),
                ("release", _scripts.RELEASE),
                ("pause", _scripts.PAUSE),
                ("state", _scripts.STATE),
            )
        }
        self._down_until: float | None = None  # loop time until which Redis is not retried
        self._warned = False
        self._changed: asyncio.Event | None = None
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._orphans: set[asyncio.Future[Any]] = set()

    def __repr__(self) -> str:
        return f"RedisRateLimiter(account={self.account!r}, round_trips={self.round_trips})"

    # --- Redis calls ---

    def _args(self, *extra: str | int | float) -> list[str | int | float]:
        return [round(self.window * 1000), round(self.permit_ttl * 1000), *extra]

    async def _call(self, name: str, *extra: str | int | float) -> Any:
        self.round_trips += 1
        return await self._scripts[name](keys=list(self.keys), args=self._args(*extra))

    def _using_fallback(self) -> bool:
        if self._down_until is None:
            return False
        if asyncio.get_running_loop().time() < self._down_until:
            return True
        self._down_until = None  # time to try Redis again
        return False

    def _redis_failed(self, error: Exception) -> None:
        if self.on_redis_error == "raise":
            raise ConnectionFailedError(
                f"the rate limiter's Redis is unreachable: {type(error).__name__}: {error}"
            ) from error
        self._down_until = asyncio.get_running_loop().time() + self.retry_redis_after
        self._stop_listening()
        if not self._warned:
            self._warned = True
            logger.warning(
                "Redis is unreachable (%s: %s): account %r falls back to this process's own "
                "rate limiter, blind to the other processes, until Redis answers again",
                type(error).__name__,
                error,
                self.account,
            )

    async def state(self) -> dict[str, Any]:
        """The account's shared state as Redis holds it (for tests and diagnostics)."""
        now, fields, in_flight = await self._call("state")
        texts = [f.decode() if isinstance(f, bytes) else str(f) for f in fields]
        state = dict(zip(texts[::2], texts[1::2], strict=True))
        return {"now_ms": now, "in_flight": in_flight, **state}

    # --- waking ---

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.done():
            return
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.round_trips += 1
        await pubsub.subscribe(self.keys[2])
        self._pubsub = pubsub
        self._listener = asyncio.get_running_loop().create_task(self._read(pubsub))

    async def _read(self, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is not None:
                    self._notify()
        except asyncio.CancelledError:
            raise
        except Exception:  # the connection broke: waiters fall back on their timers
            logger.debug("rate limiter subscription of %r lost", self.account, exc_info=True)
            self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().create_task(pubsub.aclose())

    async def aclose(self) -> None:
        """Stop listening for other processes' answers, once the permits of cancelled calls
        are handed back (the Redis client stays open)."""
        while self._orphans:
            # Drop what was awaited here: a done future's discard callback runs only when the
            # loop gets control, and gather() of done futures does not give it (Python 3.13).
            orphans = set(self._orphans)
            await asyncio.gather(*orphans, return_exceptions=True)
            self._orphans -= orphans
        listener, pubsub = self._listener, self._pubsub
        self._listener = self._pubsub = None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    # --- the backend ---

    async def acquire(
        self,
        *,
        max_wait: float | None = None,
        budget: float | None = None,
        answer_timeout: float | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> Permit:
        """Wait until the account's budget allows one more request, and take it (as
        :meth:`zdactivity.RateLimiter.acquire`, across processes)."""
        sleep = sleep if sleep is not None else asyncio.sleep
        loop = asyncio.get_running_loop()
        served_ms = -1  # the Redis time this call's sleeps reached, served or not
        slept = 0.0
        answer_waited = 0.0
        while True:
            if self._using_fallback():
                return await self._fallback_acquire(max_wait, budget, answer_timeout, sleep)
            if self._changed is None:
                self._changed = asyncio.Event()
            changed = self._changed  # taken before the script: a message after it wakes us
            try:
                await self._listen()
                status, value, epoch, now_ms = await self._grant_or_wait(served_ms)
            except _UNREACHABLE as error:
                self._redis_failed(error)
                continue
            except RedisError as error:
                raise ConnectionFailedError(
                    f"the rate limiter's Redis failed: {type(error).__name__}: {error}"
                ) from error
            if status == 0:
                permit = RedisPermit(int(value), int(epoch))
                permit.waited_for_answer = answer_waited
                return permit
            if status == 3:  # wait for another request's answer
                started = loop.time()
                left = self.wake_interval
                if answer_timeout is not None:
                    if answer_timeout - answer_waited <= 0:
                        raise TimeoutError
                    left = min(left, answer_timeout - answer_waited)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await changed.wait()
                answer_waited += loop.time() - started
                continue
            wait = int(value) / 1000
            if status == 1 and max_wait is not None and wait > max_wait:
                raise self._refuse(
                    wait,
                    "the account is paused by an earlier 429 for longer than the retry "
                    f"policy's max_retry_after ({max_wait:g}s)",
                )
            if budget is not None and slept + wait > budget:
                raise self._refuse(
                    wait,
                    f"waiting for the account's budget would overrun the request's max_time "
                    f"({max(budget - slept, 0.0):.3g}s left)",
                )
            await sleep(wait)
            slept += wait
            served_ms = int(now_ms) + int(value)

    async def _grant_or_wait(self, served_ms: int) -> Any:
        """One run of the acquire script. Cancelled meanwhile, a permit Redis granted anyway
        is handed back at once: a lost probe would hold every process until it expired."""
        call = asyncio.ensure_future(
            self._call(
                "acquire", "" if self.limit is None else self.limit, repr(self.reserve), served_ms
            )
        )
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            self._orphans.add(call)
            call.add_done_callback(self._orphans.discard)
            call.add_done_callback(self._release_orphan)
            raise

    def _release_orphan(self, call: asyncio.Future[Any]) -> None:
        if call.cancelled() or call.exception() is not None:
            return
        status, value, epoch, _ = call.result()
        if status == 0:
            task = asyncio.ensure_future(self._release_quietly(RedisPermit(int(value), int(epoch))))
            self._orphans.add(task)
            task.add_done_callback(self._orphans.discard)

    async def _release_quietly(self, permit: RedisPermit) -> None:
        with contextlib.suppress(Exception):
            await self.arelease(permit)

    async def _fallback_acquire(
        self,
        max_wait: float | None,
        budget: float | None,
        answer_timeout: float | None,
        sleep: Callable[[float], Awaitable[None]],
    ) -> Permit:
        return await self.fallback.acquire(
            max_wait=max_wait, budget=budget, answer_timeout=answer_timeout, sleep=sleep
        )

    @staticmethod
    def _refuse(wait: float, why: str) -> LocalRateLimitError:
        return LocalRateLimitError(429, retry_after=wait, description=why)

    async def aobserve(self, permit: Permit, headers: RateLimitHeaders) -> None:
        """Learn from the response to ``permit``'s request, and return the permit."""
        if not isinstance(permit, RedisPermit):
            self.fallback.observe(permit, headers)
            return
        if permit.done:
            return
        permit.done = True

        def text(value: float | None) -> str:
            return "" if value is None else repr(value)

        await self._quietly(
            "observe",
            permit.seq,
            permit.epoch,
            text(headers.limit),
            text(headers.remaining),
            text(headers.reset),
        )

    async def arelease(self, permit: Permit) -> None:
        """Return a permit whose request got no response."""
        if not isinstance(permit, RedisPermit):
            self.fallback.release(permit)
            return
        if permit.done:
            return
        permit.done = True
        await self._quietly("release", permit.seq, permit.epoch)

    async def apause(self, seconds: float) -> None:
        """A 429 said to wait ``seconds``: hold every request of the account, in every process."""
        self.fallback.pause(seconds)  # this process holds too, whether Redis answers or not
        if not self._using_fallback():
            await self._quietly("pause", repr(max(float(seconds), 0.0)))

    async def _quietly(self, name: str, *extra: str | int | float) -> None:
        """Hand back or report: a permit Redis cannot take expires there on its own."""
        try:
            await self._call(name, *extra)
        except _UNREACHABLE as error:
            self._redis_failed(error)
        except RedisError as error:
            raise ConnectionFailedError(
                f"the rate limiter's Redis failed: {type(error).__name__}: {error}"
            ) from error

"""The async client: the activities API, and the loop that sends one request with retries.

Each attempt reads: acquire budget from the account's rate limiter (``ratelimit.py``), send
through the transport (``transport.py``), interpret the response (``protocol.interpret``:
a decoded value or a typed error, with its retry facts), then decide: return, refresh the
OAuth token, retry after a delay, or raise.

Every wait of a request is bounded: the rate limiter's sleeps by what is left of the retry
policy's ``max_time`` (a 429's account-wide pause also by ``max_retry_after``), its wait for
another request's answer by the attempt's ``total`` timeout, and the HTTP exchange by the
:class:`~zdactivity.Timeout`. The limiter sleeps through the policy's ``sleep``, so
``RetryPolicy.testing()`` never sleeps there either.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar, Unpack, cast

import aiohttp

from . import protocol
from ._aio import AsyncClosing
from ._version import __version__
from .auth import APIToken, Auth, OAuthToken, RefreshableAuth, _unusable
from .errors import (
    AuthenticationError,
    LocalRateLimitError,
    RateLimitError,
    RequestTimeoutError,
    ZendeskError,
)
from .models import (
    DEFAULT_USER_CACHE_BYTES,
    DEFAULT_USER_CACHE_SIZE,
    Activity,
    ActivityCount,
    ActivityPage,
    UserCache,
)
from .pagination import DEFAULT_MAX_PAGES, DEFAULT_PREFETCH, ActivityPager
from .protocol import Decoder, Pagination, Request
from .ratelimit import Permit, RateLimitBackend, RateLimiter
from .retry import RetryPolicy
from .transport import AiohttpTransport, Response, Timeout, Transport, check_seconds
from .watch import ActivityWatcher, WatchOptions, WatchSettings

if TYPE_CHECKING:
    from .checkpoint import CheckpointStore

__all__ = ["ActivitiesAPI", "Client", "ClientStats", "RequestEvent"]

log = logging.getLogger("zdactivity")
T = TypeVar("T")

DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024
DEFAULT_TIMEOUT = Timeout()
DEFAULT_USER_AGENT = (
    f"zdactivity/{__version__} aiohttp/{aiohttp.__version__} "
    f"python/{sys.version_info.major}.{sys.version_info.minor}"
)


@dataclass
class ClientStats:
    """Counters of one account's traffic (shared by a client and its ``with_auth`` views)."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: int = 0
    refreshes: int = 0
    bytes_received: int = 0


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """What a ``on_request`` hook is told after each attempt. Carries no credentials.

    ``elapsed``: seconds from the attempt's start (waiting in the rate limiter included) to its
    end; ``limiter_wait``: the part of it spent waiting in the rate limiter. ``params``: the
    query parameters (a listing's cursor and ``since`` among them). ``activities``: how many
    activities a successful answer carries (a page's, 1 for one activity; None otherwise).
    """

    method: str
    path: str
    attempt: int
    status: int | None
    request_id: str | None
    elapsed: float
    error: ZendeskError | None = None
    retry_in: float | None = None
    limiter_wait: float = 0.0
    params: tuple[tuple[str, str], ...] = ()
    activities: int | None = None


RequestHook = Callable[[RequestEvent], None]


class _Shared:
    """What a client and all its ``with_auth`` views share: transport, limiter, counters, and
    the cache of user records (one account: its records are the same whoever asks)."""

    __slots__ = ("closed", "limiter", "stats", "transport", "users")

    def __init__(self, transport: Transport, limiter: RateLimitBackend, users: UserCache) -> None:
        self.users = users
        self.transport = transport
        self.closed = False
        self.limiter = limiter
        self.stats = ClientStats()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.users.close()
        if isinstance(self.transport, AiohttpTransport):
            await self.transport.close()  # a borrowed session stays open

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The aiohttp session of the default transport (None before the first request)."""
        transport = self.transport
        return transport.session if isinstance(transport, AiohttpTransport) else None


class Client(AsyncClosing):
    """An async client of one Zendesk account's Ticket Activities API.

    Use it as an async context manager, or call :meth:`close` when done::

        async with zdactivity.Client(subdomain="acme", auth=zdactivity.OAuthToken(token)) as zd:
            async for activity in zd.activities.list(since=yesterday):
                print(activity.title, activity.actor.name if activity.actor else "?")

    It owns one :class:`aiohttp.ClientSession`, or borrows ``session`` (and then never closes
    it). :meth:`with_auth` gives a client for another agent of the same account that shares the
    session, the rate limiter and the counters. ``base_url`` must be https except on loopback
    (the emulator) or with ``allow_http=True``.

    ``transport``: instead of aiohttp, any :class:`~zdactivity.transport.Transport` (borrowed:
    the client never closes it; ``session``, ``max_connections`` and ``trace_configs`` then do
    not apply).
    ``rate_limiter``: pass one object to every client of an account (a
    :class:`~zdactivity.RateLimiter` is made otherwise); any
    :class:`~zdactivity.ratelimit.RateLimitBackend` will do.
    ``user_cache_size`` / ``user_cache_bytes``: how many user records (512), and how much memory
    by estimate (8 MiB), the client keeps to decode a recurring actor once across pages; shared
    with its views, released by :meth:`close`; 0 turns it off.
    ``on_request``: a callable told of every attempt (:class:`RequestEvent`).
    ``trace_configs``: aiohttp trace configs for the owned session (they see raw headers,
    credentials included: redact before logging).
    """

    def __init__(
        self,
        *,
        subdomain: str | None = None,
        base_url: str | None = None,
        auth: Auth,
        session: aiohttp.ClientSession | None = None,
        timeout: Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        allow_http: bool = False,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_connections: int = 100,
        rate_limiter: RateLimitBackend | None = None,
        on_request: RequestHook | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        user_cache_size: int = DEFAULT_USER_CACHE_SIZE,
        user_cache_bytes: int = DEFAULT_USER_CACHE_BYTES,
        transport: Transport | None = None,
    ) -> None:
        self.base_url = protocol.resolve_base_url(subdomain, base_url, allow_http=allow_http)
        self._auth, self._refreshable = _check_auth(auth)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise TypeError("session must be an aiohttp.ClientSession")
        if transport is not None:
            if session is not None:
                raise ValueError("give session= or transport=, not both")
            if not isinstance(transport, Transport):
                raise TypeError("transport must implement zdactivity.transport.Transport")
        else:
            transport = AiohttpTransport(
                session, max_connections=max_connections, trace_configs=trace_configs
            )
        if not isinstance(timeout, Timeout):
            timeout = Timeout(total=check_seconds("timeout", timeout))
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        if max_body_size < 1:
            raise ValueError("max_body_size must be positive")
        self.max_body_size = max_body_size
        if rate_limiter is not None and not isinstance(rate_limiter, RateLimitBackend):
            raise TypeError("rate_limiter must be a zdactivity.RateLimiter (or a RateLimitBackend)")
        self._shared = _Shared(
            transport,
            rate_limiter or RateLimiter(),
            UserCache(user_cache_size, user_cache_bytes),
        )
        self.on_request = on_request
        self._is_view = False
        self._owner = self  # with_auth views are copies: theirs stays this client
        self.activities = ActivitiesAPI(self)

    # --- lifecycle ---

    async def close(self) -> None:
        """Close the owned session (idempotent). A borrowed session or transport stays open;
        closing a ``with_auth`` view does nothing, since the session belongs to the client it
        came from."""
        if not self._is_view:
            await self._shared.close()

    @property
    def closed(self) -> bool:
        """True once the client (or the client a view came from) has been closed."""
        return self._shared.closed

    @property
    def owner(self) -> Client:
        """The client that owns the session: this one, or the one a ``with_auth`` view (of a
        view...) came from. ``await client.owner.close()`` closes the session of the account."""
        return self._owner

    def with_auth(self, auth: Auth) -> Client:
        """A client for another agent of the same account, sharing this client's session."""
        view = object.__new__(type(self))  # a shallow copy, as copy.copy, in a tenth the time
        view.__dict__.update(self.__dict__)
        view._auth, view._refreshable = _check_auth(auth)
        view._is_view = True
        view.activities = ActivitiesAPI(view)
        return view

    @property
    def rate_limiter(self) -> RateLimitBackend:
        """The account's shared rate limiter (a :class:`~zdactivity.RateLimiter` by default)."""
        return self._shared.limiter

    @property
    def stats(self) -> ClientStats:
        """Counters of the account's requests, retries, 429s and bytes received."""
        return self._shared.stats

    @property
    def auth(self) -> Auth:
        """The credentials this client sends (their repr hides the secret)."""
        return self._auth

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, auth={self._auth!r})"

    # --- one request: acquire, send, interpret, decide ---

    async def _call(self, request: Request, decode: Decoder[T]) -> T:
        """Send ``request`` with retries; ``decode`` turns a successful body into the result.

        Each attempt waits for the account's rate limiter; a 429 pauses the whole account.
        A 401 with refreshable credentials (:class:`~zdactivity.auth.RefreshableAuth`)
        refreshes them once and retries.
        """
        policy, shared, refreshable = self.retry, self._shared, self._refreshable
        limiter = shared.limiter
        started = policy.clock()
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            generation = refreshable.generation if refreshable is not None else 0
            authorization = _authorization(self._auth)
            sent = policy.clock()
            status = request_id = None
            # The limiter's sleeps count against max_time like the retry delays do.
            budget = policy.max_time - (sent - started)
            waited: float | None = None  # None: the whole attempt was spent in the limiter
            try:
                permit = await self._acquire(request, budget)
                waited = policy.clock() - sent
                shared.stats.requests += 1  # only what is sent: a local refusal is not a request
                response = await self._send(request, authorization, permit)
            except ZendeskError as exc:
                error: ZendeskError = exc
            else:
                status = response.status
                shared.stats.bytes_received += len(response.body)
                outcome = await self._interpret(request, response, permit, decode)
                request_id = outcome.request_id
                if outcome.error is None:
                    self._report(
                        request,
                        attempt,
                        status,
                        request_id,
                        sent,
                        None,
                        None,
                        waited,
                        _activities_in(outcome.value),
                    )
                    return outcome.value  # type: ignore[return-value]
                error = outcome.error
            # decide
            shared.stats.errors += 1
            if (
                isinstance(error, AuthenticationError)
                and refreshable is not None
                and refreshable.can_refresh
                and not refreshed
            ):
                self._report(request, attempt, status, request_id, sent, error, 0.0, waited)
                refreshed = True
                await self._refresh(refreshable, generation)
                continue
            delay = policy.delay_for(error, attempt, policy.clock() - started)
            if status == 429 and isinstance(error, RateLimitError):
                # Every request of the account waits, not only this one.
                shared.stats.rate_limited += 1
                # A Retry-After above max_retry_after fails this request (delay is None)
                # and holds the account for max_retry_after at most, never 31 years.
                pause = error.retry_after if error.retry_after is not None else delay
                await limiter.apause(min(pause or 0.0, policy.max_retry_after))
            self._report(request, attempt, status, request_id, sent, error, delay, waited)
            if delay is None:
                raise error
            shared.stats.retries += 1
            await policy.sleep(delay)

    async def _acquire(self, request: Request, budget: float | None) -> Permit:
        """Wait for the rate limiter (sleeping at most ``budget`` seconds in all)."""
        policy = self.retry
        total = self.timeout.total
        error: ZendeskError
        try:
            return await self._shared.limiter.acquire(
                max_wait=policy.max_retry_after,
                budget=budget,
                answer_timeout=total,
                sleep=policy.sleep,
            )
        except TimeoutError:
            error = self._limiter_timeout(request)
        except LocalRateLimitError as refused:
            error = LocalRateLimitError(
                429,
                retry_after=refused.retry_after,
                description=refused.description,
                method=request.method,
                path=request.path,
            )
        raise error

    def _limiter_timeout(self, request: Request) -> RequestTimeoutError:
        return RequestTimeoutError(
            f"{request.method} {self.base_url}{request.path}: timed out after "
            f"{self.timeout.total:g}s waiting in the rate limiter for the answer to the "
            "request it let out first"
        )

    async def _send(self, request: Request, authorization: str | None, permit: Permit) -> Response:
        """Send through the transport; the permit goes back to the limiter if no answer."""
        shared = self._shared
        timeout = self.timeout
        total = timeout.total
        if permit.waited_for_answer and total is not None:
            # The wait for another request's answer was part of this attempt's total.
            left = total - permit.waited_for_answer
            if left <= 0:
                await shared.limiter.arelease(permit)
                raise self._limiter_timeout(request)
            timeout = type(timeout)(connect=timeout.connect, read=timeout.read, total=left)
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if authorization is not None:
            headers["Authorization"] = authorization
        try:
            return await shared.transport.send(
                request.method,
                self.base_url + request.path,
                params=request.params,
                headers=headers,
                form=request.form,
                timeout=timeout,
                max_body_size=self.max_body_size,
            )
        except BaseException:
            await shared.limiter.arelease(permit)
            raise

    async def _interpret(
        self,
        request: Request,
        response: Response,
        permit: Permit,
        decode: Decoder[T],
        *,
        require_json: bool = True,
    ) -> protocol.Outcome[T]:
        """:func:`protocol.interpret`, then hand the permit back with what it learnt."""
        limiter = self._shared.limiter
        try:
            outcome = protocol.interpret(
                request,
                response.status,
                response.headers,
                response.body,
                decode,
                require_json=require_json,
            )
        except BaseException:  # a bug in a decoder: the permit must still go back
            await limiter.arelease(permit)
            raise
        await limiter.aobserve(permit, outcome.rate_limit)
        return outcome

    def _report(
        self,
        request: Request,
        attempt: int,
        status: int | None,
        request_id: str | None,
        sent: float,
        error: ZendeskError | None,
        retry_in: float | None,
        limiter_wait: float | None,
        activities: int | None = None,
    ) -> None:
        elapsed = self.retry.clock() - sent
        if error is None:
            log.debug(
                "%s %s -> %s (request id %s, attempt %d, %.3fs)",
                request.method,
                request.path,
                status,
                request_id,
                attempt,
                elapsed,
            )
        else:
            then = "giving up" if retry_in is None else f"retry in {retry_in:.2f}s"
            if status is None:  # no response: say what happened instead of "-> None"
                log.debug(
                    "%s %s -> no response (attempt %d, %.3fs): %s: %s; %s",
                    request.method,
                    request.path,
                    attempt,
                    elapsed,
                    type(error).__name__,
                    error,
                    then,
                )
            else:
                log.debug(
                    "%s %s -> %s (request id %s, attempt %d): %s; %s",
                    request.method,
                    request.path,
                    status,
                    request_id,
                    attempt,
                    type(error).__name__,
                    then,
                )
        if self.on_request is not None:
            self.on_request(
                RequestEvent(
                    request.method,
                    request.path,
                    attempt,
                    status,
                    request_id,
                    elapsed,
                    error,
                    retry_in,
                    elapsed if limiter_wait is None else limiter_wait,
                    request.params,
                    activities,
                )
            )

    async def _refresh(self, auth: RefreshableAuth, generation: int) -> None:
        policy, shared = self.retry, self._shared

        async def send_refresh(request: Request) -> tuple[str, str]:
            # Transient failures (5xx, 429, resets, timeouts) are retried under the client's
            # policy; whatever ends it is an AuthenticationError naming the refresh.
            started = policy.clock()
            attempt = 0
            while True:
                attempt += 1
                try:
                    # The limiter's sleeps count against max_time here too.
                    budget = policy.max_time - (policy.clock() - started)
                    permit = await self._acquire(request, budget)
                    shared.stats.requests += 1
                    response = await self._send(request, None, permit)
                except ZendeskError as exc:
                    error: ZendeskError = exc
                else:
                    outcome = await self._interpret(
                        request, response, permit, protocol.decode_token_pair, require_json=False
                    )
                    if outcome.error is None:
                        shared.stats.refreshes += 1
                        return outcome.value  # type: ignore[return-value]
                    if outcome.status < 300:  # a 2xx without a usable token pair: final
                        raise outcome.error
                    error = outcome.error
                shared.stats.errors += 1
                delay = policy.delay_for(error, attempt, policy.clock() - started)
                if delay is None:
                    raise protocol.refresh_error(error) from error
                if isinstance(error, RateLimitError):
                    shared.stats.rate_limited += 1
                    pause = error.retry_after if error.retry_after is not None else delay
                    await shared.limiter.apause(pause)
                log.debug(
                    "POST %s failed (attempt %d): %s; retry in %.2fs",
                    protocol.TOKEN_PATH,
                    attempt,
                    type(error).__name__,
                    delay,
                )
                shared.stats.retries += 1
                await policy.sleep(delay)

        await auth.refresh(generation, send_refresh)


class ActivitiesAPI:
    """``client.activities``: list, show and count the calling agent's activities."""

    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self,
        *,
        since: datetime | str | None = None,
        page_size: int | None = None,
        cursor: str | None = None,
        pagination: Pagination = "cursor",
        resume: str | None = None,
        max_pages: int | None = DEFAULT_MAX_PAGES,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> ActivityPager:
        """The activities of the last 30 days (newest first, as Zendesk sends them).

        ``since``: an aware datetime or ISO 8601 string; only activities since then.
        ``page_size``: 1..100 (None: 100, or the resume token's).
        ``resume``: a saved ``page.resume_token``; lists the rest of that page's listing, with
        its ``since`` and page size (``since=`` / ``page_size=`` may be repeated but must agree).
        ``cursor``: a bare Zendesk ``after_cursor``, which carries no filter: pass the same
        ``since=`` and ``page_size=`` again, or the rest comes unfiltered. Prefer ``resume=``.
        ``pagination="offset"`` uses offset pages (limited by Zendesk to 100 pages).
        ``max_pages``: at most this many pages (10,000 by default; None: no bound); a listing
        that still has more then raises :class:`PaginationError` after its last page.
        ``prefetch``: pages kept fetched or in flight ahead of the consumer (1 by default; 0:
        each page is requested when the one before is used up). Read-ahead never runs past
        ``collect(limit=)``; an early ``break`` costs at most ``prefetch`` pages, and leaving
        (``break``, an error, cancellation) cancels the page in flight.
        Bad arguments raise ValueError/TypeError here, before any request.
        """
        if resume is not None:
            if cursor is not None:
                raise ValueError("give resume= or cursor=, not both")
            if pagination != "cursor":
                raise ValueError("resume= only works with cursor pagination")
            first = protocol.resume_request(resume, since=since, page_size=page_size)
        else:
            first = protocol.list_request(
                since=since,
                page_size=protocol.MAX_PAGE_SIZE if page_size is None else page_size,
                cursor=cursor,
                pagination=pagination,
            )
        return ActivityPager(self._fetch_page, first, max_pages=max_pages, prefetch=prefetch)

    def watch(
        self,
        options: WatchOptions | None = None,
        *,
        checkpoint: CheckpointStore | None = None,
        key: str | None = None,
        poll_gate: asyncio.Semaphore | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], datetime] | None = None,
        **settings: Unpack[WatchSettings],
    ) -> ActivityWatcher:
        """Follow the stream forever: each new activity once, delivered as pages arrive.

        Use it as ``async with zd.activities.watch(...) as stream: async for a in stream:``,
        so that leaving the loop commits the activity taken last.

        How it polls is a :class:`WatchOptions` (``since``, ``interval``, ``jitter``,
        ``lookback``, ``page_size``, ``max_pages_per_poll``, ``prefetch``): pass ``options=``,
        or those as keywords (given on top of ``options``). With ``checkpoint=`` (and
        ``key=``), each activity is committed once the consumer has taken it, and a restart
        resumes there: exactly once within a process that ends cleanly, at most one activity
        again after a crash. ``poll_gate`` limits concurrent page requests across watchers;
        ``sleep`` and ``clock`` (aware UTC wall clock) are injectable for tests.
        """
        return ActivityWatcher(
            self._fetch_page,
            WatchOptions.build(options, **settings),
            checkpoint=checkpoint,
            key=key,
            poll_gate=poll_gate,
            sleep=sleep,
            clock=clock,
        )

    async def _fetch_page(self, request: Request) -> ActivityPage:
        return await self._client._call(request, self._decode_page)

    def _decode_page(self, body: bytes, request_id: str | None) -> ActivityPage:
        return protocol.decode_page(body, request_id=request_id, cache=self._client._shared.users)

    async def get(self, activity_id: int) -> Activity:
        """One activity of the calling agent's stream (NotFoundError for anyone else's)."""
        cache = self._client._shared.users
        return await self._client._call(
            protocol.show_request(activity_id),
            lambda body, _request_id: protocol.decode_activity(body, cache=cache),
        )

    async def count(self) -> ActivityCount:
        """The approximate number of activities of the last 30 days."""
        return await self._client._call(
            protocol.count_request(), lambda body, _request_id: protocol.decode_count(body)
        )


def _activities_in(value: object) -> int | None:
    """How many activities a decoded answer carries, for :class:`RequestEvent`."""
    if isinstance(value, ActivityPage):
        return len(value.activities)
    return 1 if isinstance(value, Activity) else None


def _authorization(auth: Auth) -> str:
    """The header value of ``auth``; a custom ``Auth`` may not smuggle a line break into it."""
    value = auth.authorization()
    if not isinstance(value, str) or _unusable(value) is not None:
        raise ValueError(
            f"the Authorization value from {type(auth).__name__} is empty or contains a control "
            "character (CR, LF, NUL...); nothing was sent"
        )
    return value


def _check_auth(auth: object) -> tuple[Auth, RefreshableAuth | None]:
    """``auth``, and the same object if it can refresh itself (checked once, not per request)."""
    # The built-in kinds skip the runtime Protocol checks (tens of microseconds each, paid
    # per with_auth view: per agent in a fan-out).
    kind = type(auth)
    if kind is APIToken:
        return cast(APIToken, auth), None
    if kind is OAuthToken:
        return cast(OAuthToken, auth), cast(OAuthToken, auth)
    if auth is None:
        raise ValueError("credentials are missing: pass auth=APIToken(...) or OAuthToken(...)")
    if not isinstance(auth, Auth):
        raise TypeError(f"auth must be an APIToken or OAuthToken, not {type(auth).__name__}")
    return auth, auth if isinstance(auth, RefreshableAuth) else None

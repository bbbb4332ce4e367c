"""The HTTP side of the emulator: an aiohttp application and its request pipeline.

Pipeline, outermost first (``Server.middlewares``)::

    track       request id, in-flight/peak counters, writes the response, records the request
    finalize    errors -> Zendesk-shaped bodies, common headers (rate limit, request ids), gzip
    rate_limit  the account-wide fixed window; answers 429 (text/html) when exhausted
    dispatch    route table (``Server.routes``) -> authentication -> handler

Extension points, so later layers need no restructuring:

* a fault-injection layer (scripted statuses, latency, stalls, resets, malformed bodies) is one
  more middleware, slotted in after ``finalize`` so its responses still get the common headers
  and are recorded (or after ``rate_limit`` if faults should consume the budget);
* new endpoints (e.g. ``POST /oauth/tokens``) are ``Route`` entries with ``auth=False``; handlers
  receive the authenticated user id (or ``None``) and the path's regex match.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import logging
import math
import random
import re
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

import msgspec
from aiohttp import web
from multidict import CIMultiDict

from ._data import (
    Account,
    CursorError,
    decode_cursor,
    encode_cursor,
    format_time,
    json_escape,
)

__all__ = ["ApiError", "RateLimiter", "RecordedRequest", "Route", "Server", "ServerConfig"]

log = logging.getLogger("zdactivity.testing")

JSON_TYPE: Final = "application/json; charset=utf-8"
MAX_PAGE_SIZE: Final = 100
MAX_OFFSET_PAGE: Final = 100

_raw = msgspec.Raw
_encode = msgspec.json.encode

_REQUEST_ID: Final = web.RequestKey("zdemu_request_id", str)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the emulator answered, as it arrived, with the status it got."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    host: str
    status: int
    request_id: str


class ApiError(Exception):
    """Raised by handlers; ``finalize`` turns it into a JSON error response."""

    def __init__(self, status: int, body: object) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def _not_found_endpoint() -> ApiError:
    return ApiError(404, {"error": "InvalidEndpoint", "description": "Not found"})


def _record_not_found() -> ApiError:
    return ApiError(404, {"error": "RecordNotFound", "description": "Not found"})


_UNAUTHORIZED = {"error": "Couldn't authenticate you"}
_FORBIDDEN = {
    "error": {
        "title": "Forbidden",
        "message": "You do not have access to this page. Please contact the account owner of "
        "this help desk for further help.",
    }
}
_BAD_PAGE_SIZE = {
    "error": "InvalidPaginationParameter",
    "description": f"page[size] must be between 1 and {MAX_PAGE_SIZE}",
}
_DEPTH_EXCEEDED = {
    "errors": [
        {
            "code": "InvalidPaginationDepth",
            "title": "Pagination depth exceeded",
            "detail": "Offset pagination is limited to 100 pages / 10,000 records. "
            "Use cursor pagination instead.",
        }
    ]
}
_TOO_MANY = (
    b"<html>\n<head><title>429 Too Many Requests</title></head>\n<body>\n"
    b"<h1>Too Many Requests</h1>\n<p>You have been rate limited. Retry after the number of "
    b"seconds in the Retry-After header.</p>\n</body>\n</html>\n"
)


def _cursor_error(detail: str) -> ApiError:
    return ApiError(
        400,
        {
            "errors": [
                {"code": "InvalidPaginationParameter", "title": "Invalid cursor", "detail": detail}
            ]
        },
    )


def json_response(status: int, body: object) -> web.Response:
    return web.Response(status=status, body=_encode(body), headers={"Content-Type": JSON_TYPE})


def _raw_response(body: bytes) -> web.Response:
    return web.Response(status=200, body=body, headers={"Content-Type": JSON_TYPE})


# --------------------------------------------------------------------------------------------
# Rate limiting


@dataclass(frozen=True, slots=True)
class RateState:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # whole seconds until the window resets, >= 1


_RATE: Final = web.RequestKey("zdemu_rate", RateState)


class RateLimiter:
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
        now = self._roll()
        self._used += 1
        allowed = self._used <= self.limit or not self.enforce
        return self._state(now, allowed)

    def peek(self) -> RateState:
        return self._state(self._roll(), True)


# --------------------------------------------------------------------------------------------
# Routing

UserId = int | None
Handler = Callable[[web.Request, UserId, "re.Match[str]"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]  # full-matched against the request path
    handler: Handler
    auth: bool = True  # require an agent's credentials


@dataclass(frozen=True, slots=True)
class ServerConfig:
    canonical_host: str | None = None
    since_inclusive: bool = True
    zendesk_request_id: bool = True
    count_cap: int = 100_000


def _accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


_OFFSET_IN_QUERY = re.compile(r" (\d\d(?::?\d\d)?)$")


def _int_or(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return default


@dataclass(slots=True)
class _Counters:
    in_flight: int = 0
    max_in_flight: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)


class Server:
    """Builds the aiohttp application for one ``Account``."""

    def __init__(
        self,
        account: Account,
        config: ServerConfig,
        limiter: RateLimiter,
        *,
        request_id_seed: int = 0,
    ) -> None:
        self.account = account
        self.config = config
        self.limiter = limiter
        self.counters = _Counters()
        self._ids = itertools.count(random.Random(request_id_seed ^ 0x5EED).getrandbits(60))
        self.routes: list[Route] = [
            Route("GET", re.compile(r"/api/v2/activities/count(?:\.json)?"), self.handle_count),
            Route("GET", re.compile(r"/api/v2/activities(?:\.json)?"), self.handle_list),
            Route("GET", re.compile(r"/api/v2/activities/([^/]+?)(?:\.json)?"), self.handle_show),
        ]
        self.middlewares: list[Callable[..., Awaitable[web.StreamResponse]]] = [
            self.track,
            self.finalize,
            self.rate_limit,
        ]

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=self.middlewares)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    # -- middlewares --------------------------------------------------------------------------

    @web.middleware
    async def track(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        rid = f"{next(self._ids) & 0xFFFF_FFFF_FFFF_FFFF:016x}-EMU"
        request[_REQUEST_ID] = rid
        counters = self.counters
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        status = 500
        try:
            await asyncio.sleep(0)  # let concurrently arriving requests overlap
            resp = await handler(request)
            status = resp.status
            # Write here, so in_flight covers sending the body too.
            try:
                await resp.prepare(request)
                await resp.write_eof()
            except ConnectionError:
                pass  # the client went away; aiohttp notices too
            return resp
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            counters.in_flight -= 1
            counters.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers=dict(request.headers),
                    host=request.host,
                    status=status,
                    request_id=rid,
                )
            )

    @web.middleware
    async def finalize(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except ApiError as exc:
            resp = json_response(exc.status, exc.body)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("emulator handler failed")
            resp = json_response(500, {"status": 500, "error": "Internal Server Error"})
        if resp.prepared:
            return resp
        rate = request.get(_RATE) or self.limiter.peek()
        headers = resp.headers
        headers.setdefault("Content-Type", JSON_TYPE)
        limit, remaining, reset = str(rate.limit), str(rate.remaining), str(rate.reset)
        headers["X-Rate-Limit"] = limit
        headers["X-Rate-Limit-Remaining"] = remaining
        headers["rate-limit"] = limit
        headers["rate-limit-remaining"] = remaining
        headers["rate-limit-reset"] = reset
        rid = request[_REQUEST_ID]
        headers.add("x-request-id", rid)
        headers.add("x-request-id", rid)
        if self.config.zendesk_request_id:
            headers["X-Zendesk-Request-Id"] = rid
        headers["x-zendesk-api-version"] = "v2"
        if (
            isinstance(resp, web.Response)
            and isinstance(resp.body, bytes)
            and "Content-Encoding" not in headers
            and _accepts_gzip(request.headers.get("Accept-Encoding", ""))
        ):
            # Level 1: the fastest; compressing in a thread measured slower (GIL handoffs).
            resp.body = zlib.compress(resp.body, 1, wbits=31)
            headers["Content-Encoding"] = "gzip"
        return resp

    @web.middleware
    async def rate_limit(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        state = self.limiter.consume()
        request[_RATE] = state
        if not state.allowed:
            headers = CIMultiDict({"Content-Type": "text/html", "Retry-After": str(state.reset)})
            return web.Response(status=429, body=_TOO_MANY, headers=headers)
        return await handler(request)

    # -- dispatch -----------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is not None and route.method == request.method:
                break
        else:
            raise _not_found_endpoint()
        user_id = self.authenticate(request) if route.auth else None
        return await route.handler(request, user_id, match)

    def authenticate(self, request: web.Request) -> int:
        """The agent's user id, or ApiError 401 (unknown credentials) / 403 (not an agent)."""
        account = self.account
        scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
        credentials = credentials.strip()
        user_id: int | None = None
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            email, sep, token = decoded.partition("/token:")
            if sep:
                user_id = account.authenticate_basic(email, token)
        elif scheme.lower() == "bearer":
            user_id = account.authenticate_bearer(credentials)
        if user_id is None:
            raise ApiError(401, _UNAUTHORIZED)
        if not account.is_agent(user_id):
            raise ApiError(403, _FORBIDDEN)
        return user_id

    # -- helpers ------------------------------------------------------------------------------

    def base_url(self, request: web.Request) -> str:
        if self.config.canonical_host:
            return f"https://{self.config.canonical_host}"
        return f"http://{request.host}"

    def _min_created_at(self, request: web.Request) -> int:
        """Lower bound on created_at: the 30-day window, narrowed by ``since``."""
        lower = self.account.window_start()
        since = request.query.get("since")
        if since is None:
            return lower
        text = _OFFSET_IN_QUERY.sub(r"+\1", since.strip())  # an unencoded "+" arrives as " "
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ApiError(
                400, {"error": "InvalidValue", "description": "since must be an ISO 8601 time"}
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        ts = when.timestamp()
        threshold = math.ceil(ts) if self.config.since_inclusive else math.floor(ts) + 1
        return max(lower, threshold)

    def _link(self, base: str, params: list[tuple[str, str]], request: web.Request) -> str:
        since = request.query.get("since")
        if since is not None:
            params = [*params, ("since", since)]
        return f"{base}/api/v2/activities.json?{urlencode(params)}"

    # -- handlers -----------------------------------------------------------------------------

    async def handle_list(
        self, request: web.Request, user_id: UserId, match: re.Match[str]
    ) -> web.StreamResponse:
        assert user_id is not None
        account = self.account
        stream = account.stream_of(user_id)
        end = stream.end_for(self._min_created_at(request))
        query = request.query
        base = self.base_url(request)
        cursor_mode = "page[size]" in query or "page[after]" in query or "page[before]" in query
        if cursor_mode:
            raw_size = query.get("page[size]", str(MAX_PAGE_SIZE)).strip()
            if not raw_size.isdigit() or not 1 <= int(raw_size) <= MAX_PAGE_SIZE:
                raise ApiError(400, _BAD_PAGE_SIZE)
            size = int(raw_size)
            after, before = query.get("page[after]"), query.get("page[before]")
            if after is not None and before is not None:
                raise _cursor_error("page[after] and page[before] cannot be used together")
            try:
                if after is not None:
                    start = min(account.cursor_after(stream, decode_cursor(after)), end)
                    stop = min(start + size, end)
                elif before is not None:
                    stop = min(account.cursor_before(stream, decode_cursor(before)), end)
                    start = max(0, stop - size)
                else:
                    start, stop = 0, min(size, end)
            except CursorError as exc:
                raise _cursor_error(str(exc)) from None
        else:
            page = max(1, _int_or(query.get("page"), 1))
            per_page = _int_or(query.get("per_page"), MAX_PAGE_SIZE)
            per_page = MAX_PAGE_SIZE if per_page < 1 else min(per_page, MAX_PAGE_SIZE)
            if page > MAX_OFFSET_PAGE:
                raise ApiError(400, _DEPTH_EXCEEDED)
            start = min((page - 1) * per_page, end)
            stop = min(start + per_page, end)
        items = stream.items[start:stop]

        base_json = json_escape(base)
        users = account.rendered_users(base_json)
        render = account.render
        activities = [_raw(render(act, base_json, users)) for act in items]
        actor_ids = dict.fromkeys(act.actor_id for act in items if act.actor_id >= 0)
        user_ids = dict.fromkeys(act.user_id for act in items)
        body: dict[str, Any] = {
            "activities": activities,
            "actors": [_raw(users[uid]) for uid in actor_ids],
            "users": [_raw(users[uid]) for uid in user_ids],
        }
        if cursor_mode:
            if items:
                first, last = items[0], items[-1]
                after_cursor = encode_cursor(last.created_at, last.id)
                before_cursor = encode_cursor(first.created_at, first.id)
                size_param = ("page[size]", str(size))
                prev = self._link(base, [("page[before]", before_cursor), size_param], request)
                nxt = self._link(base, [("page[after]", after_cursor), size_param], request)
                meta = {
                    # The real service says has_more whenever the page is full.
                    "has_more": len(items) == size,
                    "after_cursor": after_cursor,
                    "before_cursor": before_cursor,
                }
                body["meta"] = meta
                body["links"] = {"prev": prev, "next": nxt}
            else:
                body["meta"] = {"has_more": False, "after_cursor": None, "before_cursor": None}
                body["links"] = {"prev": None, "next": None}
        else:
            pp = ("per_page", str(per_page))
            has_next = stop < end
            body["next_page"] = (
                self._link(base, [("page", str(page + 1)), pp], request) if has_next else None
            )
            body["previous_page"] = (
                self._link(base, [("page", str(page - 1)), pp], request) if page > 1 else None
            )
            body["count"] = end
        return _raw_response(_encode(body))

    async def handle_show(
        self, request: web.Request, user_id: UserId, match: re.Match[str]
    ) -> web.StreamResponse:
        assert user_id is not None
        stream = self.account.stream_of(user_id)
        raw_id = match.group(1)
        act = stream.by_id.get(int(raw_id)) if raw_id.isdigit() else None
        if act is None:
            raise _record_not_found()
        base_json = json_escape(self.base_url(request))
        users = self.account.rendered_users(base_json)
        return _raw_response(
            b"".join((b'{"activity":', self.account.render(act, base_json, users), b"}"))
        )

    async def handle_count(
        self, request: web.Request, user_id: UserId, match: re.Match[str]
    ) -> web.StreamResponse:
        assert user_id is not None
        account = self.account
        value = account.stream_of(user_id).end_for(account.window_start())
        refreshed_at: str | None = format_time(account.clock().timestamp())
        if value > self.config.count_cap:
            value, refreshed_at = self.config.count_cap, None
        return json_response(200, {"count": {"value": value, "refreshed_at": refreshed_at}})

"""The HTTP side of the emulator: an aiohttp application and its request pipeline.

Pipeline, outermost first (``Server.middlewares``)::

    track       request id, in-flight/peak counters, writes the response, records the request
    finalize    errors -> Zendesk-shaped bodies, common headers (rate limit, request ids), gzip
    faults      ``latency``, then the next matching queued ``Fault``: a faulted request consumes
                rate budget itself and never reaches ``rate_limit``/``dispatch``
    rate_limit  the account-wide fixed window; answers 429 (text/html) when exhausted
    dispatch    route table (``Server.routes``) -> authentication -> handler

Extension points, so later layers need no restructuring:

* new endpoints are ``Route`` entries (``POST /oauth/tokens`` is one, with ``auth=False``);
  handlers receive the authenticated user id (or ``None``) and the path's regex match;
* waits (latency, stalls) go through ``Server.pause``/``Server.hold``, which end when the
  emulator stops, so ``stop()`` stays prompt.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import logging
import math
import random
import re
import socket
import struct
import zlib
from collections.abc import Awaitable, Callable, Mapping
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
from ._faults import (
    TOO_MANY,
    Fault,
    FaultQueue,
    canned_body,
    malformed_body,
    status_body,
)

__all__ = ["ApiError", "RateLimiter", "RecordedRequest", "Route", "Server", "ServerConfig"]

log = logging.getLogger("zdactivity.testing")

JSON_TYPE: Final = "application/json; charset=utf-8"
MAX_PAGE_SIZE: Final = 100
MAX_OFFSET_PAGE: Final = 100

_raw = msgspec.Raw
_encode = msgspec.json.encode

_REQUEST_ID: Final = web.RequestKey("zdemu_request_id", str)
_FAULT: Final = web.RequestKey("zdemu_fault", Fault)
_SENT_STATUS: Final = web.RequestKey("zdemu_sent_status", int)  # overrides the response's
_TOKEN_PARAMS: Final[web.RequestKey[dict[str, str]]] = web.RequestKey("zdemu_token_params", dict)

_HOLD_POLL: Final = 0.02  # how often a stalled request checks whether its client left


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the emulator answered, as it arrived, with the status it got."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    host: str
    status: int  # 0: nothing was sent (``Fault.reset``/``Fault.stall``)
    request_id: str
    fault: Fault | None = None  # the injected fault this request consumed, if any


class ApiError(Exception):
    """Raised by handlers; ``finalize`` turns it into a JSON error response."""

    def __init__(self, status: int, body: object, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers


def _not_found_endpoint() -> ApiError:
    return ApiError(404, {"error": "InvalidEndpoint", "description": "Not found"})


def _record_not_found() -> ApiError:
    return ApiError(404, {"error": "RecordNotFound", "description": "Not found"})


_UNAUTHORIZED = {"error": "Couldn't authenticate you"}
_INVALID_TOKEN = {
    "error": "invalid_token",
    "error_description": "The access token provided is expired, revoked, malformed or invalid "
    "for other reasons.",
}
_INVALID_TOKEN_HEADERS = {
    "WWW-Authenticate": 'Bearer realm="Zendesk", error="invalid_token", '
    'error_description="The access token is invalid or has expired"'
}
_OAUTH_ERRORS = {
    "invalid_request": "The request is missing a required parameter, includes an unsupported "
    "parameter value, or is otherwise malformed.",
    "invalid_client": "Client authentication failed due to unknown client, no client "
    "authentication included, or unsupported authentication method.",
    "invalid_grant": "The provided authorization grant is invalid, expired, or revoked.",
    "unsupported_grant_type": "The authorization grant type is not supported by the "
    "authorization server.",
}
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
_TOO_MANY = TOO_MANY


def _cursor_error(detail: str) -> ApiError:
    return ApiError(
        400,
        {
            "errors": [
                {"code": "InvalidPaginationParameter", "title": "Invalid cursor", "detail": detail}
            ]
        },
    )


def _oauth_error(status: int, error: str, description: str | None = None) -> ApiError:
    return ApiError(
        status, {"error": error, "error_description": description or _OAUTH_ERRORS[error]}
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
    oauth_client_id: str = "zdactivity-emulator"
    oauth_client_secret: str = "emulator-secret"


def _authorization(request: web.Request) -> tuple[str, str]:
    """(lower-cased scheme, credentials) of the Authorization header."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    return scheme.lower(), credentials.strip()


def _basic_pair(credentials: str) -> tuple[str, str] | None:
    """``user:password`` of a Basic credential, or None if it does not decode."""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


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
        self.fault_queue = FaultQueue()
        self.latency = 0.0  # seconds added before every request is handled
        self.stopping = asyncio.Event()  # set by Emulator.stop(): waits end early
        self._ids = itertools.count(random.Random(request_id_seed ^ 0x5EED).getrandbits(60))
        self.routes: list[Route] = [
            Route("GET", re.compile(r"/api/v2/activities/count(?:\.json)?"), self.handle_count),
            Route("GET", re.compile(r"/api/v2/activities(?:\.json)?"), self.handle_list),
            Route("GET", re.compile(r"/api/v2/activities/([^/]+?)(?:\.json)?"), self.handle_show),
            Route("POST", re.compile(r"/oauth/tokens(?:\.json)?"), self.handle_token, auth=False),
        ]
        self.middlewares: list[Callable[..., Awaitable[web.StreamResponse]]] = [
            self.track,
            self.finalize,
            self.faults,
            self.rate_limit,
        ]

    def make_app(self) -> web.Application:
        self.stopping = asyncio.Event()
        app = web.Application(middlewares=self.middlewares)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    # -- waiting ------------------------------------------------------------------------------

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the emulator stops meanwhile."""
        if seconds <= 0 or self.stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()

    async def hold(self, request: web.Request) -> None:
        """Wait until the client disconnects or the emulator stops."""
        while not self.stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await self.pause(_HOLD_POLL)

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
            status = request.get(_SENT_STATUS, resp.status)
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
                    fault=request.get(_FAULT),
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
            if exc.headers:
                resp.headers.update(exc.headers)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("emulator handler failed")
            resp = json_response(500, {"status": 500, "error": "Internal Server Error"})
        if resp.prepared:
            return resp
        headers = resp.headers
        self.decorate(request, headers)
        if (
            isinstance(resp, web.Response)
            and isinstance(resp.body, bytes)
            and resp.body  # nothing to compress in an empty body
            and "Content-Encoding" not in headers
            and _accepts_gzip(request.headers.get("Accept-Encoding", ""))
        ):
            # Level 1: the fastest; compressing in a thread measured slower (GIL handoffs).
            resp.body = zlib.compress(resp.body, 1, wbits=31)
            headers["Content-Encoding"] = "gzip"
        return resp

    def decorate(self, request: web.Request, headers: CIMultiDict[str]) -> None:
        """Add the headers every answer carries: rate limit, request ids, API version."""
        rate = request.get(_RATE) or self.limiter.peek()
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

    @web.middleware
    async def faults(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        fault: Fault | None = None
        queue = self.fault_queue
        if len(queue):  # chosen on arrival, so concurrent requests take faults in order
            user_id = await self.identify(request) if queue.wants_user else None
            fault = queue.take(request.path, user_id)
            if fault is not None:
                request[_FAULT] = fault
        delay = self.latency + (fault.seconds if fault is not None else 0.0)
        if delay > 0:
            await self.pause(delay)
        if fault is None or not fault.answers:
            return await handler(request)
        request[_RATE] = self.limiter.consume()  # faulted requests count, whatever the budget
        return await self.answer_fault(request, fault)

    async def answer_fault(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        kind = fault.kind
        if kind == "status":
            assert fault.code is not None
            if fault.body is None:
                body, content_type = status_body(fault.code)
            else:
                body, content_type = fault.body, JSON_TYPE
            headers = CIMultiDict({"Content-Type": fault.content_type or content_type})
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            return web.Response(status=fault.code, body=body, headers=headers)
        if kind == "malformed":
            assert fault.variant is not None
            body, extra = malformed_body(fault.variant, request.path, self.base_url(request))
            return web.Response(status=200, body=body, headers=extra)
        if kind in ("reset", "stall"):
            request[_SENT_STATUS] = 0
            if kind == "stall":
                await self.hold(request)
            self._drop(request, reset=True)
            return web.Response()  # never reaches the client: writing it fails quietly
        # stall_mid_body, reset_mid_body: the headers promise the whole body, half arrives
        full = canned_body(request.path, self.base_url(request))
        resp = web.StreamResponse(status=200)
        self.decorate(request, resp.headers)
        resp.content_length = len(full)
        try:
            await resp.prepare(request)
            await resp.write(full[: len(full) // 2])
        except ConnectionError:  # the client already left: nothing was sent
            request[_SENT_STATUS] = 0
        if kind == "stall_mid_body":
            await self.hold(request)
        self._drop(request, reset=False)
        return resp

    @staticmethod
    def _drop(request: web.Request, *, reset: bool) -> None:
        """Close the connection: after flushing what was written, or at once with a TCP RST."""
        transport = request.transport
        if transport is None:
            return
        if not reset:
            transport.close()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # linger 0: close() sends RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

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

    def _basic_user(self, credentials: str) -> int | None:
        """The user of a Basic ``{email}/token:{api_token}`` credential."""
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        email, sep, token = decoded.partition("/token:")
        return self.account.authenticate_basic(email, token) if sep else None

    def authenticate(self, request: web.Request) -> int:
        """The agent's user id, or ApiError 401 (unknown credentials, or an expired or replaced
        OAuth token: ``invalid_token``) / 403 (not an agent)."""
        account = self.account
        scheme, credentials = _authorization(request)
        user_id: int | None = None
        if scheme == "basic":
            user_id = self._basic_user(credentials)
        elif scheme == "bearer":
            state = account.bearer_state(credentials)
            if state is not None and not state.valid:
                raise ApiError(401, _INVALID_TOKEN, _INVALID_TOKEN_HEADERS)
            user_id = None if state is None else state.user_id
        if user_id is None:
            raise ApiError(401, _UNAUTHORIZED)
        if not account.is_agent(user_id):
            raise ApiError(403, _FORBIDDEN)
        return user_id

    async def identify(self, request: web.Request) -> int | None:
        """Who is calling, by their credentials, valid or not (for fault matching): the
        Authorization header, or the refresh token posted to ``/oauth/tokens``."""
        scheme, credentials = _authorization(request)
        if scheme == "basic":
            return self._basic_user(credentials)
        if scheme == "bearer":
            return self.account.token_owner(credentials)
        if request.method == "POST" and request.path.startswith("/oauth/tokens"):
            try:
                params = await self.token_params(request)
            except ApiError:
                return None
            refresh_token = params.get("refresh_token")
            return None if refresh_token is None else self.account.token_owner(refresh_token)
        return None

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

    async def token_params(self, request: web.Request) -> dict[str, str]:
        """The string parameters of a form-urlencoded, multipart or JSON body."""
        if _TOKEN_PARAMS in request:
            return request[_TOKEN_PARAMS]
        params: dict[str, str] = {}
        if request.content_type == "application/json" or request.content_type.endswith("+json"):
            raw = await request.read()
            try:
                data = msgspec.json.decode(raw) if raw.strip() else {}
            except msgspec.DecodeError:
                raise _oauth_error(
                    400, "invalid_request", "The request body is not valid JSON."
                ) from None
            if not isinstance(data, dict):
                raise _oauth_error(400, "invalid_request", "The request body must be an object.")
            params = {k: v for k, v in data.items() if isinstance(v, str)}
        else:
            form = await request.post()
            params = {k: v for k, v in form.items() if isinstance(v, str)}
        request[_TOKEN_PARAMS] = params
        return params

    async def handle_token(
        self, request: web.Request, user_id: UserId, match: re.Match[str]
    ) -> web.StreamResponse:
        """``POST /oauth/tokens`` with ``grant_type=refresh_token``: rotate the pair."""
        params = await self.token_params(request)
        grant_type = params.get("grant_type")
        if not grant_type:
            raise _oauth_error(400, "invalid_request", "Missing required parameter: grant_type.")
        if grant_type != "refresh_token":
            raise _oauth_error(400, "unsupported_grant_type")
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        if client_id is None and client_secret is None:
            scheme, credentials = _authorization(request)  # RFC 6749 2.3.1 client_secret_basic
            pair = _basic_pair(credentials) if scheme == "basic" else None
            if pair is not None:
                client_id, client_secret = pair
        config = self.config
        if client_id != config.oauth_client_id or client_secret != config.oauth_client_secret:
            raise _oauth_error(401, "invalid_client")
        refresh_token = params.get("refresh_token")
        if not refresh_token:
            raise _oauth_error(400, "invalid_request", "Missing required parameter: refresh_token.")
        grant = self.account.refresh(refresh_token)
        if grant is None:
            raise _oauth_error(400, "invalid_grant")
        ttl = self.account.token_ttl
        expires_in: float | None = None if ttl is None else (int(ttl) if ttl == int(ttl) else ttl)
        resp = json_response(
            200,
            {
                "access_token": grant.access,
                "refresh_token": grant.refresh,
                "token_type": "bearer",
                "scope": "read",
                "expires_in": expires_in,
            },
        )
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Pragma"] = "no-cache"
        return resp

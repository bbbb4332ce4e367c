"""The HTTP side of the emulator: an aiohttp application and its request pipeline.

Pipeline, outermost first (``Server.middlewares``)::

    track       request id, in-flight/peak counters, writes the response, records the request
    finalize    errors -> Zendesk-shaped bodies, common headers (rate limit, request ids), gzip
    faults      ``latency``, then the next matching queued ``Fault``: a faulted request consumes
                rate budget itself and never reaches ``rate_limit``/``dispatch``
    rate_limit  the account-wide fixed window; answers 429 (text/html) when exhausted
    dispatch    route table (``Server.routes``) -> authentication (``_auth``) -> handler
                (``_handlers``)

Extension points, so later layers need no restructuring:

* new endpoints are ``Route`` entries (``POST /oauth/tokens`` is one, with ``auth=False``);
  handlers receive the authenticated user id (or ``None``) and the path's regex match;
* waits (latency, stalls) go through ``Server.pause``/``Server.hold``, which end when the
  emulator stops, so ``stop()`` stays prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import socket
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from multidict import CIMultiDict

from ._account import Account
from ._auth import Authenticator
from ._errors import JSON_TYPE, ApiError, json_response, not_found_endpoint
from ._faults import (
    TOO_MANY,
    Fault,
    FaultQueue,
    canned_body,
    malformed_body,
    status_body,
)
from ._handlers import Handlers, Route, ServerConfig, base_url
from ._ratewindow import FixedWindow, RateState

__all__ = ["RecordedRequest", "Route", "Server", "ServerConfig"]

log = logging.getLogger("zdactivity.testing")

_REQUEST_ID: Final = web.RequestKey("zdemu_request_id", str)
_FAULT: Final = web.RequestKey("zdemu_fault", Fault)
_SENT_STATUS: Final = web.RequestKey("zdemu_sent_status", int)  # overrides the response's
_RATE: Final = web.RequestKey("zdemu_rate", RateState)

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
        limiter: FixedWindow,
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
        self.auth = Authenticator(account)
        self.handlers = Handlers(account, config)
        self.routes: list[Route] = self.handlers.routes()
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
            return web.Response(status=429, body=TOO_MANY, headers=headers)
        return await handler(request)

    @web.middleware
    async def faults(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        fault: Fault | None = None
        queue = self.fault_queue
        if len(queue):  # chosen on arrival, so concurrent requests take faults in order
            user_id = await self.auth.identify(request) if queue.wants_user else None
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
            body, extra = malformed_body(
                fault.variant, request.path, base_url(self.config, request)
            )
            return web.Response(status=200, body=body, headers=extra)
        if kind in ("reset", "stall"):
            request[_SENT_STATUS] = 0
            if kind == "stall":
                await self.hold(request)
            self._drop(request, reset=True)
            return web.Response()  # never reaches the client: writing it fails quietly
        # stall_mid_body, reset_mid_body: the headers promise the whole body, half arrives
        full = canned_body(request.path, base_url(self.config, request))
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
            raise not_found_endpoint()
        user_id = self.auth.authenticate(request) if route.auth else None
        return await route.handler(request, user_id, match)

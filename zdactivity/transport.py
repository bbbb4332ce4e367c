"""The wire: send one request, get ``(status, headers, body)`` back.

:class:`Transport` is the seam the client sends through. :class:`AiohttpTransport` is the
default and the only module-level user of aiohttp's request API; :class:`MemoryTransport`
answers from a script, for fast tests of the client's decisions without a server.

A transport raises only :class:`~zdactivity.TransportError` subclasses:
:class:`~zdactivity.RequestTimeoutError` when the attempt ran out of its :class:`Timeout`,
:class:`~zdactivity.ConnectionFailedError` when the connection failed or broke,
:class:`~zdactivity.ResponseTooLargeError` past ``max_body_size`` and
:class:`~zdactivity.CertificateError` for a certificate that cannot be verified. Redirects are
not followed, so the ``Authorization`` header never reaches another host.

The aiohttp transport raises its TransportError outside the ``except`` block that caught
aiohttp's exception, so that neither its ``__cause__`` nor its ``__context__`` holds it:
aiohttp's exceptions carry the request's headers, ``Authorization`` included. Their message is
kept, as text.
"""

from __future__ import annotations

import asyncio
import errno
import math
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
import msgspec

from .errors import (
    CertificateError,
    ConnectionFailedError,
    RequestTimeoutError,
    ResponseTooLargeError,
    TransportError,
)
from .protocol import Headers

__all__ = [
    "AiohttpTransport",
    "MemoryTransport",
    "Response",
    "SentRequest",
    "Timeout",
    "Transport",
    "check_seconds",
]


@dataclass(frozen=True, slots=True)
class Timeout:
    """Timeouts in seconds: positive finite numbers, or None to disable one deliberately.

    ``connect``: establishing a connection (including waiting for a pooled one);
    ``read``: the longest silence between two chunks of a response;
    ``total``: one attempt, from sending to the last byte of the body, including the time it
    waited in the rate limiter for another request's answer (the first of a window).
    Zero, negative, NaN or infinite values raise ValueError; non-numbers and bools TypeError.

    The defaults, connect 10 s, read 30 s, total 60 s, give up on a host that cannot be
    reached sooner than on a slow answer. A :class:`~zdactivity.RequestTimeoutError` says
    which ran out: ``could not connect to HOST within 10 s``, ``no answer from HOST after
    30 s``, ``no complete answer from HOST within 60 s``.
    """

    connect: float | None = 10.0
    read: float | None = 30.0
    total: float | None = 60.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if value is not None:
                check_seconds(f"Timeout.{name}", value)


def check_seconds(name: str, value: object) -> float:
    """``value`` as a positive finite number of seconds, or TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number of seconds, not {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response. ``headers`` is case-insensitive (a protocol ``Headers``)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@runtime_checkable
class Transport(Protocol):
    """Sends one HTTP request and reads its whole response.

    ``url`` is absolute; ``params`` the query; ``form`` a urlencoded body (None: no body).
    Within ``timeout`` (the attempt's connect/read/total) and ``max_body_size`` bytes, or a
    :class:`~zdactivity.TransportError` subclass (see this module's docstring). The returned
    headers must be a case-insensitive mapping (a :class:`zdactivity.protocol.Headers`).
    Redirects must not be followed.
    """

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        form: Sequence[tuple[str, str]] | None,
        timeout: Timeout,  # noqa: ASYNC109 - the attempt's limits, enforced by the transport
        max_body_size: int,
    ) -> Response: ...


# --- aiohttp ---------------------------------------------------------------------------------


class AiohttpTransport:
    """The default transport: one :class:`aiohttp.ClientSession`.

    Without ``session``, it creates one lazily (inside the running loop) with a connection pool
    of ``max_connections`` and the given ``trace_configs``, and :meth:`close` closes it. A
    ``session`` passed in is borrowed: never closed here.
    """

    __slots__ = (
        "_last_client_timeout",
        "_last_timeout",
        "borrowed",
        "closed",
        "max_connections",
        "session",
        "trace_configs",
    )

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        max_connections: int = 100,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise TypeError("session must be an aiohttp.ClientSession")
        self.session = session
        self.borrowed = session is not None
        self.closed = False
        self.max_connections = max_connections
        self.trace_configs = list(trace_configs)
        self._last_timeout: Timeout | None = None
        self._last_client_timeout: aiohttp.ClientTimeout | None = None

    async def close(self) -> None:
        """Close the owned session (idempotent); a borrowed one stays open."""
        if self.closed:
            return
        self.closed = True
        if self.session is not None and not self.borrowed:
            await self.session.close()

    def _session(self) -> aiohttp.ClientSession:
        if self.closed:
            raise RuntimeError("this zdactivity Client is closed")
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections)
            self.session = aiohttp.ClientSession(
                connector=connector, trace_configs=self.trace_configs or None
            )
        return self.session

    def _client_timeout(self, timeout: Timeout) -> aiohttp.ClientTimeout:
        # Nearly every request uses the client's one Timeout: convert it once.
        if timeout is not self._last_timeout or self._last_client_timeout is None:
            self._last_client_timeout = to_aiohttp(timeout)
            self._last_timeout = timeout
        return self._last_client_timeout

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        form: Sequence[tuple[str, str]] | None,
        timeout: Timeout,  # noqa: ASYNC109 - the attempt's limits, enforced by the transport
        max_body_size: int,
    ) -> Response:
        """Send one request and read the whole body (at most ``max_body_size`` bytes)."""
        parts = urlsplit(url)
        host = parts.netloc
        where = f"{method} {parts.path or '/'}"
        answered = False  # the status line and headers came back
        error: TransportError
        try:
            async with self._session().request(
                method,
                url,
                params=params,
                headers=headers,
                data=dict(form) if form is not None else None,
                timeout=self._client_timeout(timeout),
                allow_redirects=False,
            ) as resp:
                answered = True
                length = resp.content_length
                if (
                    length is not None
                    and length > max_body_size
                    and not resp.headers.get("Content-Encoding")
                ):
                    raise ResponseTooLargeError(
                        f"{method} {url}: response of {length} bytes exceeds "
                        f"max_body_size={max_body_size}"
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_any():
                    size += len(chunk)
                    if size > max_body_size:
                        raise ResponseTooLargeError(
                            f"{method} {url}: response body exceeds max_body_size={max_body_size}"
                        )
                    chunks.append(chunk)
                return Response(resp.status, Headers(resp.headers), b"".join(chunks))
        except ResponseTooLargeError:
            raise  # ours, raised outside any except block: no aiohttp exception in its chain
        except TimeoutError as exc:
            error = RequestTimeoutError(
                f"{_timed_out(exc, host, timeout, answered)} (timed out on {where})"
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            error = CertificateError(
                f"the TLS certificate of {exc.host} could not be verified: "
                f"{_certificate_reason(exc.certificate_error)} ({where})"
            )
        except aiohttp.ClientConnectorDNSError as exc:
            error = ConnectionFailedError(f"cannot resolve {exc.host}{_why(exc)} ({where})")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ConnectionRefusedError):
                error = ConnectionFailedError(f"connection refused by {host} ({where})")
            else:
                error = ConnectionFailedError(f"cannot connect to {host}{_why(exc)} ({where})")
        except aiohttp.ClientPayloadError:
            error = ConnectionFailedError(f"the answer from {host} was cut off ({where})")
        except aiohttp.ServerDisconnectedError:
            error = ConnectionFailedError(
                f"{host} closed the connection without answering ({where})"
            )
        except aiohttp.ClientResponseError as exc:  # the response itself is not valid HTTP
            error = ConnectionFailedError(
                f"{host} sent a malformed HTTP response{_why(exc, 'message')} ({where})"
            )
        except (aiohttp.ClientError, OSError) as exc:
            error = ConnectionFailedError(f"{_broken(exc, host)} ({where})")
        except asyncio.IncompleteReadError:
            error = ConnectionFailedError(f"the answer from {host} was cut off ({where})")
        # Raised here, outside the except blocks: neither __cause__ nor __context__ holds
        # aiohttp's exception, whose repr shows the request headers (Authorization included).
        raise error


def to_aiohttp(timeout: Timeout) -> aiohttp.ClientTimeout:
    """``timeout`` as aiohttp's :class:`aiohttp.ClientTimeout`."""
    return aiohttp.ClientTimeout(
        total=timeout.total, connect=timeout.connect, sock_read=timeout.read
    )


def _certificate_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    return _why(exc).removeprefix(": ") or type(exc).__name__


def _timed_out(exc: TimeoutError, host: str, timeout: Timeout, answered: bool) -> str:
    """What ran out: connecting, the wait for an answer, a silence mid-answer, or the total."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError) and timeout.connect is not None:
        return f"could not connect to {host} within {timeout.connect:g} s"
    if isinstance(exc, aiohttp.SocketTimeoutError) and timeout.read is not None:
        if answered:
            return f"{host} went silent for {timeout.read:g} s in the middle of its answer"
        return f"no answer from {host} after {timeout.read:g} s"
    if timeout.total is not None:
        return f"no complete answer from {host} within {timeout.total:g} s"
    return f"no answer from {host} in time"


def _broken(exc: BaseException, host: str) -> str:
    """A connection that broke (reset, aborted, ...), in words."""
    if isinstance(exc, ConnectionResetError) or (
        isinstance(exc, OSError) and exc.errno == errno.ECONNRESET
    ):
        return f"the connection to {host} was reset"
    return f"the connection to {host} failed{_why(exc)}"


def _why(exc: BaseException, attribute: str = "strerror") -> str:
    """``: reason`` in the operating system's (or the HTTP parser's) own words, if any:
    never the exception's text, which may quote the request."""
    reason = getattr(exc, attribute, None)
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror
    if not isinstance(reason, str) or not reason.strip():
        return ""
    return f": {reason.strip()}"


# --- in memory -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentRequest:
    """A request a :class:`MemoryTransport` received (``headers`` include Authorization)."""

    method: str
    url: str
    params: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    form: tuple[tuple[str, str], ...] | None
    timeout: Timeout


Scripted = Response | TransportError | Callable[[SentRequest], Awaitable[Response] | Response]


class MemoryTransport:
    """A transport that answers from a script, in order: for tests of the client's decisions.

    Each entry is a :class:`Response`, a :class:`~zdactivity.TransportError` to raise, or a
    callable taking the :class:`SentRequest` and returning a Response (or an awaitable of
    one). :meth:`respond` builds a Response from a status, a JSON-able body and headers.
    ``sent`` records every request. An empty script raises AssertionError.
    """

    def __init__(self, script: Iterable[Scripted] = ()) -> None:
        self.script: deque[Scripted] = deque(script)
        self.sent: list[SentRequest] = []

    @staticmethod
    def respond(
        status: int = 200,
        body: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """A JSON response (``body`` bytes are sent as they are)."""
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        return Response(status, Headers(all_headers), data)

    def add(self, *entries: Scripted) -> None:
        """Append entries to the script."""
        self.script.extend(entries)

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        form: Sequence[tuple[str, str]] | None,
        timeout: Timeout,  # noqa: ASYNC109 - the attempt's limits, enforced by the transport
        max_body_size: int,
    ) -> Response:
        sent = SentRequest(
            method,
            url,
            tuple(params),
            dict(headers),
            tuple(form) if form is not None else None,
            timeout,
        )
        self.sent.append(sent)
        await asyncio.sleep(0)
        if not self.script:
            raise AssertionError(f"MemoryTransport: no scripted answer for {method} {url}")
        entry = self.script.popleft()
        if isinstance(entry, TransportError):
            raise entry
        if callable(entry):
            answer = entry(sent)
            response = await answer if isinstance(answer, Awaitable) else answer
        else:
            response = entry
        if len(response.body) > max_body_size:
            raise ResponseTooLargeError(
                f"{method} {url}: response body exceeds max_body_size={max_body_size}"
            )
        return Response(response.status, Headers.of(response.headers), response.body)

"""Every error zdactivity raises. Nothing from aiohttp or msgspec escapes the public API.

::

    ZendeskError                 base class: ``except zdactivity.ZendeskError`` catches them all
    ├── APIError                 the server answered with an error status
    │   ├── AuthenticationError      401 (bad or expired credentials, failed OAuth refresh)
    │   ├── PermissionDeniedError    403 (not an agent, or no access)
    │   ├── NotFoundError            404 (unknown id, or another agent's activity)
    │   ├── InvalidRequestError      400, 422
    │   ├── RateLimitError           429 from the server (``.retry_after`` seconds, when known)
    │   │   └── LocalRateLimitError      NOT from the server: the local rate limiter refused to
    │   │                                wait that long and nothing was sent (``.request_id``
    │   │                                None; never retried)
    │   └── ServerError              5xx
    ├── TransportError           no usable answer (catches all four below)
    │   ├── ConnectionFailedError    connection refused or reset, DNS, a body cut off
    │   ├── RequestTimeoutError      an attempt ran out of its Timeout (connect, read, total),
    │   │                            waiting in the rate limiter for another request included
    │   ├── ResponseTooLargeError    a body over ``max_body_size`` (never retried)
    │   └── CertificateError         the server's TLS certificate could not be verified (never
    │                                retried)
    ├── DecodeError              a body that is not JSON, is truncated, or has the wrong shape
    ├── PaginationError          a cursor that repeats, a page that promises more with no cursor,
    │   │                        ``max_pages`` reached
    │   └── PaginationDepthError     offset pagination past 100 pages / 10,000 records
    ├── AgentError               one agent of ``fan_out`` failed (``.key``, ``.error``); also
    │                            importable from ``zdactivity.fanout``
    └── CheckpointError          a checkpoint store could not be read or written (``.path``);
        │                        also importable from ``zdactivity.checkpoint``
        └── FencedOutError           a save with a stale fencing token: another worker owns
                                     the agent now (``zdactivity.redis``)

``APIError`` carries ``.status``, ``.request_id`` (quote it to Zendesk support), ``.body`` (a
short text snippet), Zendesk's ``.code`` / ``.description`` parsed from whichever of its error
body shapes came back, and ``.retry_after`` (seconds, from ``Retry-After`` on 429 and 503).
Messages never contain credentials, and no exception reachable from a zdactivity error
(``__cause__``, ``__context__``, attributes) holds an aiohttp or msgspec exception.

Outside the tree: bad arguments raise ``ValueError`` / ``TypeError`` where they are given (a
constructor, ``list(...)``), before any request; a closed client raises ``RuntimeError``;
cancellation stays ``asyncio.CancelledError``. ``fan_out`` raises its ``AgentError`` values in
an ``ExceptionGroup`` (``except* zdactivity.AgentError``).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

import msgspec

__all__ = [
    "APIError",
    "AgentError",
    "AuthenticationError",
    "CertificateError",
    "CheckpointError",
    "ConnectionFailedError",
    "DecodeError",
    "FencedOutError",
    "InvalidRequestError",
    "LocalRateLimitError",
    "NotFoundError",
    "PaginationDepthError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "ServerError",
    "TransportError",
    "ZendeskError",
]


class ZendeskError(Exception):
    """Base class of every zdactivity error."""


class APIError(ZendeskError):
    """Zendesk answered with an error status."""

    def __init__(
        self,
        status: int,
        *,
        code: str | None = None,
        description: str | None = None,
        request_id: str | None = None,
        body: str = "",
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.code = code
        self.description = description
        self.request_id = request_id
        self.body = body
        self.method = method
        self.path = path
        super().__init__(self._message())

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuild from the attributes, not from args (which hold the formatted message).
        return (_rebuild, (type(self), self.__dict__.copy()))

    def _message(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.method and self.path:
            parts.append(f"on {self.method} {self.path}")
        detail = ": ".join(p for p in (self.code, self.description) if p)
        if detail:
            parts.append(f"- {detail}")
        if self.retry_after is not None:
            parts.append(f"- retry after {self.retry_after:g}s")
        if self.request_id:
            parts.append(f"(request id {self.request_id})")
        return " ".join(parts)


def _rebuild(cls: type[APIError], state: dict[str, object]) -> APIError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._message())
    return error


class AuthenticationError(APIError):
    """401: the credentials were refused, or an OAuth refresh failed."""


class PermissionDeniedError(APIError):
    """403: the user is not allowed to call this endpoint (only agents may)."""


class NotFoundError(APIError):
    """404: no such activity in the calling agent's stream, or no such endpoint."""


class InvalidRequestError(APIError):
    """400 or 422: Zendesk rejected the request's parameters."""


class RateLimitError(APIError):
    """429: the account's rate limit is exhausted.

    ``retry_after`` is the number of seconds Zendesk asked us to wait, or None if it did not say.
    """


class LocalRateLimitError(RateLimitError):
    """The client's own rate limiter refused to wait, and sent nothing.

    Raised when the account is paused by an earlier 429 for longer than the retry policy's
    ``max_retry_after``, or when waiting for the account's budget would overrun the request's
    ``max_time``. ``retry_after`` is the wait that was refused; ``status`` is 429 and
    ``request_id`` None: the server was not asked. It subclasses :class:`RateLimitError` so
    that ``except RateLimitError`` handles both; catch this class first to tell a local refusal
    from the server's 429.
    """

    def _message(self) -> str:
        wait = f" ({self.retry_after:g}s)" if self.retry_after is not None else ""
        where = f" for {self.method} {self.path}" if self.method and self.path else ""
        return (
            f"the local rate limiter refused to wait{wait}{where}, no request was sent: "
            f"{self.description}"
        )


class ServerError(APIError):
    """5xx: a temporary failure on Zendesk's side."""


class TransportError(ZendeskError):
    """No usable HTTP answer: connection failure, reset, timeout, or a body too large.

    Catch :class:`ConnectionFailedError` or :class:`RequestTimeoutError` to tell a refused or
    broken connection from one that was too slow; ``TransportError`` catches both.
    """


class ConnectionFailedError(TransportError):
    """The connection could not be made or broke: refused, reset, DNS failure, a body cut off.

    Retried with backoff.
    """


class RequestTimeoutError(TransportError):
    """An attempt ran out of time: its :class:`~zdactivity.Timeout` (``connect``, ``read``,
    ``total``), including the time it waited in the rate limiter for another request's answer.

    Retried with backoff.
    """


class ResponseTooLargeError(TransportError):
    """A response body larger than the client's ``max_body_size``; not retried."""


class CertificateError(TransportError):
    """The server's TLS certificate could not be verified (self-signed, expired, wrong host).

    Not transient: never retried.
    """


class DecodeError(ZendeskError):
    """A response body that is not JSON, is truncated, or does not have the expected shape.

    ``snippet`` holds the start of the offending body; ``path`` the JSON path, when known.
    """

    def __init__(self, message: str, *, snippet: str = "", path: str | None = None) -> None:
        self.snippet = snippet
        self.path = path
        super().__init__(f"{message} (body starts: {snippet!r})" if snippet else message)


class PaginationError(ZendeskError):
    """The server's pagination cannot be followed safely (a repeated cursor, a missing cursor)."""


class PaginationDepthError(PaginationError):
    """Offset pagination went past Zendesk's limit of 100 pages / 10,000 records.

    Use cursor pagination (the default) to read deeper.
    """


K = TypeVar("K", bound=Hashable)


class AgentError(ZendeskError, Generic[K]):
    """One agent's stream of :func:`~zdactivity.fan_out` failed; ``key`` says which, ``error``
    (and ``__cause__``) why.

    ``error`` is usually a :class:`ZendeskError`, but any exception of one agent's stream is
    reported this way rather than stopping the other agents.
    """

    def __init__(self, key: K, error: Exception) -> None:
        self.key = key
        self.error = error
        super().__init__(f"agent {key!r}: {error}")

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuild from key and error (args hold the formatted message), so it survives pickle
        # (a process pool, a task queue).
        return (type(self), (self.key, self.error))


class CheckpointError(ZendeskError):
    """A checkpoint store could not be read or written: an unreadable, corrupt or foreign
    database file, or a stored checkpoint that does not decode. ``.path`` names the store."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class FencedOutError(CheckpointError):
    """A checkpoint save carried a fencing token older than the store's: another worker owns
    this agent now, so this (paused, or partitioned) worker must stop writing its progress."""


# --- helpers for the package's JSON decoders (protocol, models, sideloads) ----------------------


def snippet(raw: bytes | memoryview | msgspec.Raw, limit: int = 120) -> str:
    """The start of ``raw`` as text, for :attr:`DecodeError.snippet`."""
    return bytes(raw)[:limit].decode("utf-8", "replace")


def decode_error(
    exc: msgspec.DecodeError | RecursionError, raw: bytes | msgspec.Raw, base: str
) -> DecodeError:
    """The :class:`DecodeError` for msgspec's ``exc`` raised while decoding ``raw``, which sits
    at JSON path ``base`` of the response (msgspec's own path is appended to it)."""
    if isinstance(exc, RecursionError):  # msgspec recurses into arrays and objects, even skipped
        return DecodeError(f"JSON nested too deeply - at `{base}`", snippet=snippet(raw), path=base)
    message = str(exc)
    path = base
    if " - at `$" in message:
        message, _, rest = message.partition(" - at `$")
        path = base + rest.rstrip("`")
    return DecodeError(f"{message} - at `{path}`", snippet=snippet(raw), path=path)

"""Credentials. Their secrets never appear in ``repr``, ``str``, logs or error messages."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from .protocol import Request, credential_problem, refresh_request

__all__ = ["APIToken", "Auth", "OAuthToken", "OnRefresh", "RefreshSender", "RefreshableAuth"]


@runtime_checkable
class Auth(Protocol):
    """Anything that can produce an ``Authorization`` header value.

    Such credentials are sent as they are; a 401 is raised. Credentials that can renew
    themselves on a 401 implement :class:`RefreshableAuth` too (as :class:`OAuthToken` does).
    """

    def authorization(self) -> str:
        """Return the value of the ``Authorization`` header."""
        ...


RefreshSender = Callable[[Request], Awaitable[tuple[str, str]]]
"""Sends a token request (:func:`zdactivity.protocol.refresh_request`) with the client's
retries and returns the new ``(access_token, refresh_token)``, or raises AuthenticationError."""


@runtime_checkable
class RefreshableAuth(Auth, Protocol):
    """Credentials the client renews on a 401, then retries the request once.

    The client reads :attr:`generation` before each attempt; on a 401 it calls
    ``await auth.refresh(generation, send)`` when :attr:`can_refresh` is true. ``refresh`` must
    refresh at most once for all requests that failed with the same generation (later callers
    share its outcome), build its request with :func:`zdactivity.protocol.refresh_request`,
    hand it to ``send``, and install the pair ``send`` returns.
    """

    @property
    def can_refresh(self) -> bool:
        """True when a refresh is possible (a refresh token is known)."""
        ...

    @property
    def generation(self) -> int:
        """Counts finished refreshes; read before sending, passed to :meth:`refresh`."""
        ...

    async def refresh(self, failed_generation: int, send: RefreshSender) -> None:
        """Refresh once for all requests sent with ``failed_generation``."""
        ...


def _require(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    problem = _unusable(value)
    if problem is not None:
        raise ValueError(f"{name} {problem}")  # never the value: it may be a secret
    return value


def _optional(value: object, name: str) -> str | None:
    return None if value is None else _require(value, name)


_unusable = credential_problem


class APIToken:
    """An API token of an agent: ``Basic base64("{email}/token:{token}")``.

    ``email`` and ``token`` must be non-empty and free of control characters (ValueError).

    Zendesk stops accepting API tokens on 2027-04-30; prefer :class:`OAuthToken`.
    """

    __slots__ = ("_header", "email")

    def __init__(self, email: str, token: str) -> None:
        self.email = _require(email, "email")
        raw = f"{self.email}/token:{_require(token, 'token')}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode("ascii")

    def authorization(self) -> str:
        return self._header

    def __repr__(self) -> str:
        return f"APIToken(email={self.email!r}, token='***')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, APIToken) and other._header == self._header

    def __hash__(self) -> int:
        return hash(self._header)


OnRefresh = Callable[[str, str], Awaitable[None]]
"""Called with ``(access_token, refresh_token)`` after a refresh, before the new pair is used."""


def _fresh(error: Exception) -> Exception:
    """A new exception object equal to ``error``, without its traceback or chain."""
    try:
        return copy.copy(error)
    except Exception:  # an exception type that cannot be rebuilt from its args
        return error.with_traceback(None)


class OAuthToken:
    """An OAuth access token: ``Bearer {access_token}``, optionally refreshable
    (a :class:`RefreshableAuth`).

    With ``refresh_token`` (and ``client_id`` / ``client_secret``), a 401 triggers exactly one
    refresh (``POST /oauth/tokens``, ``grant_type=refresh_token``) however many requests are in
    flight. Zendesk invalidates the old pair, so the new one is handed to the awaited
    ``on_refresh`` callback (save it there) before any request uses it. The client retries a
    refresh that fails transiently (5xx, 429, resets, timeouts) under its retry policy; a refresh
    that still fails is an :class:`~zdactivity.AuthenticationError` for the requests that were
    waiting on it, and the next 401 tries again.

    Every token, the client id and the client secret must be non-empty and free of control
    characters (CR, LF, NUL...): ValueError otherwise, which never quotes them.
    """

    __slots__ = (
        "_access_token",
        "_client_id",
        "_client_secret",
        "_failure",
        "_generation",
        "_lock",
        "_on_refresh",
        "_refresh_token",
        "_token_generation",
    )

    def __init__(
        self,
        access_token: str,
        *,
        refresh_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        on_refresh: OnRefresh | None = None,
    ) -> None:
        self._access_token = _require(access_token, "access_token")
        self._refresh_token = _optional(refresh_token, "refresh_token")
        self._client_id = _optional(client_id, "client_id")
        self._client_secret = _optional(client_secret, "client_secret")
        self._on_refresh = on_refresh
        self._generation = 0  # refreshes finished, successful or not
        self._token_generation = 0  # the generation at which the access token was installed
        self._lock: asyncio.Lock | None = None
        self._failure: Exception | None = None  # the last refresh's error, until one succeeds

    @property
    def access_token(self) -> str:
        """The current access token (a secret: do not log it)."""
        return self._access_token

    @property
    def can_refresh(self) -> bool:
        """True when a refresh token was given."""
        return self._refresh_token is not None

    @property
    def generation(self) -> int:
        """Counts finished refreshes (successful or failed): read it before sending a request,
        and pass it to :meth:`refresh` if that request gets a 401."""
        return self._generation

    def authorization(self) -> str:
        return f"Bearer {self._access_token}"

    async def refresh(self, failed_generation: int, send: RefreshSender) -> None:
        """Refresh once for all requests sent with token state ``failed_generation``.

        Refreshes are serialized. If a refresh finished since that request was sent, its outcome
        is shared: return at once if it succeeded (retry with the new token), or raise a fresh
        copy of its error if it failed. A 401 of a request sent after a failed refresh tries
        again (the token endpoint may be back).
        """
        if self._refresh_token is None:
            raise ValueError("this OAuthToken has no refresh_token")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._token_generation > failed_generation:
                return  # refreshed since the request was sent: it can retry with the new token
            if self._generation != failed_generation and self._failure is not None:
                # A refresh failed after the request was sent: share its outcome, as a new
                # exception (re-raising one object would grow its traceback with every raise).
                raise _fresh(self._failure)
            request = refresh_request(
                self._refresh_token, client_id=self._client_id, client_secret=self._client_secret
            )
            try:
                access, refresh = await send(request)
            except Exception as exc:
                self._failure = _fresh(exc)  # no traceback: no frame of this call is kept
                self._generation += 1
                raise
            self._failure = None
            try:
                if self._on_refresh is not None:
                    await self._on_refresh(access, refresh)
            finally:
                # Zendesk has invalidated the old pair: the new one is the only usable one, even
                # if saving it failed (that error still reaches the caller).
                self._access_token, self._refresh_token = access, refresh
                self._generation += 1
                self._token_generation = self._generation

    def __repr__(self) -> str:
        refresh = ", refresh_token='***'" if self._refresh_token is not None else ""
        return f"OAuthToken(access_token='***'{refresh})"

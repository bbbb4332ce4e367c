"""Credentials. Their secrets never appear in ``repr``, ``str``, logs or error messages."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

__all__ = ["APIToken", "Auth", "OAuthToken", "OnRefresh"]


@runtime_checkable
class Auth(Protocol):
    """Anything that can produce an ``Authorization`` header value."""

    def authorization(self) -> str:
        """Return the value of the ``Authorization`` header."""
        ...


def _require(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} is missing or empty")
    return value


class APIToken:
    """An API token of an agent: ``Basic base64("{email}/token:{token}")``.

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

RefreshSender = Callable[[dict[str, str]], Awaitable[tuple[str, str]]]


class OAuthToken:
    """An OAuth access token: ``Bearer {access_token}``, optionally refreshable.

    With ``refresh_token`` (and ``client_id`` / ``client_secret``), a 401 triggers exactly one
    refresh (``POST /oauth/tokens``, ``grant_type=refresh_token``) however many requests are in
    flight. Zendesk invalidates the old pair, so the new one is handed to the awaited
    ``on_refresh`` callback (save it there) before any request uses it.
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
        self._refresh_token = (
            None if refresh_token is None else _require(refresh_token, "refresh_token")
        )
        self._client_id = client_id
        self._client_secret = client_secret
        self._on_refresh = on_refresh
        self._generation = 0
        self._lock: asyncio.Lock | None = None
        self._failure: tuple[int, BaseException] | None = None

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
        """How many refreshes have succeeded; identifies the access token in use."""
        return self._generation

    def authorization(self) -> str:
        return f"Bearer {self._access_token}"

    async def refresh(self, failed_generation: int, send: RefreshSender) -> None:
        """Refresh once for all requests that failed with token ``failed_generation``.

        Concurrent callers wait for the one refresh; if it already happened they return at
        once, and if it failed they all get its error.
        """
        if self._refresh_token is None:
            raise ValueError("this OAuthToken has no refresh_token")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._generation != failed_generation:
                return
            if self._failure is not None and self._failure[0] == failed_generation:
                raise self._failure[1]
            form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
            if self._client_id is not None:
                form["client_id"] = self._client_id
            if self._client_secret is not None:
                form["client_secret"] = self._client_secret
            try:
                access, refresh = await send(form)
            except Exception as exc:
                self._failure = (failed_generation, exc)
                raise
            try:
                if self._on_refresh is not None:
                    await self._on_refresh(access, refresh)
            finally:
                # Zendesk has invalidated the old pair: the new one is the only usable one, even
                # if saving it failed (that error still reaches the caller).
                self._access_token, self._refresh_token = access, refresh
                self._generation += 1

    def __repr__(self) -> str:
        refresh = ", refresh_token='***'" if self._refresh_token is not None else ""
        return f"OAuthToken(access_token='***'{refresh})"

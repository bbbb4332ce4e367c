"""Credentials. Their secrets never appear in ``repr``, ``str``, logs or error messages."""

from __future__ import annotations

import base64
from typing import Protocol, runtime_checkable

__all__ = ["APIToken", "Auth", "OAuthToken"]


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


class OAuthToken:
    """An OAuth access token: ``Bearer {access_token}``."""

    __slots__ = ("_access_token",)

    def __init__(self, access_token: str) -> None:
        self._access_token = _require(access_token, "access_token")

    @property
    def access_token(self) -> str:
        """The current access token (a secret: do not log it)."""
        return self._access_token

    def authorization(self) -> str:
        return f"Bearer {self._access_token}"

    def __repr__(self) -> str:
        return "OAuthToken(access_token='***')"

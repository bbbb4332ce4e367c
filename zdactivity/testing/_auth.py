"""Who is calling the emulator: Basic ``{email}/token:{api_token}`` and Bearer credentials.

``authenticate`` admits agents and admins (401 for unknown credentials or an expired/replaced
OAuth token, 403 for end-users); ``identify`` names the caller, valid or not, so faults can be
aimed at one agent (``Fault`` with ``agent=``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import msgspec
from aiohttp import web

from ._account import Account
from ._errors import (
    FORBIDDEN,
    INVALID_TOKEN,
    INVALID_TOKEN_HEADERS,
    UNAUTHORIZED,
    ApiError,
    oauth_error,
)

__all__ = ["Authenticator", "authorization", "basic_pair", "token_params"]

_TOKEN_PARAMS: Final[web.RequestKey[dict[str, str]]] = web.RequestKey("zdemu_token_params", dict)


def authorization(request: web.Request) -> tuple[str, str]:
    """(lower-cased scheme, credentials) of the Authorization header."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    return scheme.lower(), credentials.strip()


def basic_pair(credentials: str) -> tuple[str, str] | None:
    """``user:password`` of a Basic credential, or None if it does not decode."""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


async def token_params(request: web.Request) -> dict[str, str]:
    """The string parameters of a form-urlencoded, multipart or JSON body (read once)."""
    if _TOKEN_PARAMS in request:
        return request[_TOKEN_PARAMS]
    params: dict[str, str] = {}
    if request.content_type == "application/json" or request.content_type.endswith("+json"):
        raw = await request.read()
        try:
            data = msgspec.json.decode(raw) if raw.strip() else {}
        except msgspec.DecodeError:
            raise oauth_error(
                400, "invalid_request", "The request body is not valid JSON."
            ) from None
        if not isinstance(data, dict):
            raise oauth_error(400, "invalid_request", "The request body must be an object.")
        params = {k: v for k, v in data.items() if isinstance(v, str)}
    else:
        form = await request.post()
        params = {k: v for k, v in form.items() if isinstance(v, str)}
    request[_TOKEN_PARAMS] = params
    return params


class Authenticator:
    """Maps a request's credentials to a user of ``account``."""

    def __init__(self, account: Account) -> None:
        self.account = account

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
        scheme, credentials = authorization(request)
        user_id: int | None = None
        if scheme == "basic":
            user_id = self._basic_user(credentials)
        elif scheme == "bearer":
            state = account.tokens.bearer_state(credentials)
            if state is not None and not state.valid:
                raise ApiError(401, INVALID_TOKEN, INVALID_TOKEN_HEADERS)
            user_id = None if state is None else state.user_id
        if user_id is None:
            raise ApiError(401, UNAUTHORIZED)
        if not account.is_agent(user_id):
            raise ApiError(403, FORBIDDEN)
        return user_id

    async def identify(self, request: web.Request) -> int | None:
        """Who is calling, by their credentials, valid or not (for fault matching): the
        Authorization header, or the refresh token posted to ``/oauth/tokens``."""
        scheme, credentials = authorization(request)
        if scheme == "basic":
            return self._basic_user(credentials)
        tokens = self.account.tokens
        if scheme == "bearer":
            return tokens.owner(credentials)
        if request.method == "POST" and request.path.startswith("/oauth/tokens"):
            try:
                params = await token_params(request)
            except ApiError:
                return None
            refresh_token = params.get("refresh_token")
            return None if refresh_token is None else tokens.owner(refresh_token)
        return None

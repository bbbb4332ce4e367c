"""The emulator's endpoints: list (cursor and offset), show, count, and ``POST /oauth/tokens``.

Each handler gets the request, the authenticated user id (``None`` on routes with
``auth=False``) and the path's regex match, reads ``Account`` state and answers Zendesk-shaped
JSON; errors are raised as ``ApiError``. ``Handlers.routes()`` is the route table the server
dispatches on (new endpoints are ``Route`` entries).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from ._account import Account
from ._auth import authorization, basic_pair, token_params
from ._cursor import CursorError, decode_cursor, encode_cursor
from ._errors import (
    BAD_PAGE_SIZE,
    DEPTH_EXCEEDED,
    MAX_OFFSET_PAGE,
    MAX_PAGE_SIZE,
    ApiError,
    cursor_error,
    json_response,
    oauth_error,
    raw_response,
    record_not_found,
)
from ._render import format_time, json_escape, render

__all__ = ["Handler", "Handlers", "Route", "ServerConfig", "UserId", "base_url"]

_raw = msgspec.Raw
_encode = msgspec.json.encode

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


def base_url(config: ServerConfig, request: web.Request) -> str:
    """``https://{canonical_host}`` when configured, else ``http://{Host header}``."""
    if config.canonical_host:
        return f"https://{config.canonical_host}"
    return f"http://{request.host}"


_OFFSET_IN_QUERY = re.compile(r" (\d\d(?::?\d\d)?)$")


def _int_or(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return default


class Handlers:
    """The endpoints of one account."""

    def __init__(self, account: Account, config: ServerConfig) -> None:
        self.account = account
        self.config = config

    def routes(self) -> list[Route]:
        return [
            Route("GET", re.compile(r"/api/v2/activities/count(?:\.json)?"), self.handle_count),
            Route("GET", re.compile(r"/api/v2/activities(?:\.json)?"), self.handle_list),
            Route("GET", re.compile(r"/api/v2/activities/([^/]+?)(?:\.json)?"), self.handle_show),
            Route("POST", re.compile(r"/oauth/tokens(?:\.json)?"), self.handle_token, auth=False),
        ]

    # -- helpers ------------------------------------------------------------------------------

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
        base = base_url(self.config, request)
        cursor_mode = "page[size]" in query or "page[after]" in query or "page[before]" in query
        if cursor_mode:
            raw_size = query.get("page[size]", str(MAX_PAGE_SIZE)).strip()
            if not raw_size.isdigit() or not 1 <= int(raw_size) <= MAX_PAGE_SIZE:
                raise ApiError(400, BAD_PAGE_SIZE)
            size = int(raw_size)
            after, before = query.get("page[after]"), query.get("page[before]")
            if after is not None and before is not None:
                raise cursor_error("page[after] and page[before] cannot be used together")
            try:
                if after is not None:
                    start = min(stream.after(decode_cursor(after)), end)
                    stop = min(start + size, end)
                elif before is not None:
                    stop = min(stream.before(decode_cursor(before)), end)
                    start = max(0, stop - size)
                else:
                    start, stop = 0, min(size, end)
            except CursorError as exc:
                raise cursor_error(str(exc)) from None
        else:
            page = max(1, _int_or(query.get("page"), 1))
            per_page = _int_or(query.get("per_page"), MAX_PAGE_SIZE)
            per_page = MAX_PAGE_SIZE if per_page < 1 else min(per_page, MAX_PAGE_SIZE)
            if page > MAX_OFFSET_PAGE:
                raise ApiError(400, DEPTH_EXCEEDED)
            start = min((page - 1) * per_page, end)
            stop = min(start + per_page, end)
        items = stream.items[start:stop]

        base_json = json_escape(base)
        users = account.rendered_users(base_json)
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
        return raw_response(_encode(body))

    async def handle_show(
        self, request: web.Request, user_id: UserId, match: re.Match[str]
    ) -> web.StreamResponse:
        assert user_id is not None
        stream = self.account.stream_of(user_id)
        raw_id = match.group(1)
        act = stream.by_id.get(int(raw_id)) if raw_id.isdigit() else None
        if act is None:
            raise record_not_found()
        base_json = json_escape(base_url(self.config, request))
        users = self.account.rendered_users(base_json)
        return raw_response(b"".join((b'{"activity":', render(act, base_json, users), b"}")))

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

    async def handle_token(
        self, request: web.Request, user_id: UserId, match: re.Match[str]
    ) -> web.StreamResponse:
        """``POST /oauth/tokens`` with ``grant_type=refresh_token``: rotate the pair."""
        params = await token_params(request)
        grant_type = params.get("grant_type")
        if not grant_type:
            raise oauth_error(400, "invalid_request", "Missing required parameter: grant_type.")
        if grant_type != "refresh_token":
            raise oauth_error(400, "unsupported_grant_type")
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        if client_id is None and client_secret is None:
            scheme, credentials = authorization(request)  # RFC 6749 2.3.1 client_secret_basic
            pair = basic_pair(credentials) if scheme == "basic" else None
            if pair is not None:
                client_id, client_secret = pair
        config = self.config
        if client_id != config.oauth_client_id or client_secret != config.oauth_client_secret:
            raise oauth_error(401, "invalid_client")
        refresh_token = params.get("refresh_token")
        if not refresh_token:
            raise oauth_error(400, "invalid_request", "Missing required parameter: refresh_token.")
        grant = self.account.tokens.refresh(refresh_token)
        if grant is None:
            raise oauth_error(400, "invalid_grant")
        ttl = self.account.tokens.token_ttl
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

"""The async client: one aiohttp session, the activities API, retries per request."""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

import aiohttp

from . import protocol
from ._version import __version__
from .auth import Auth
from .errors import ZendeskError
from .models import Activity, ActivityCount, ActivityPage
from .pagination import ActivityPager
from .protocol import Pagination, Request
from .retry import RetryPolicy
from .transport import Response, Timeout, send

__all__ = ["ActivitiesAPI", "Client"]

log = logging.getLogger("zdactivity")
T = TypeVar("T")

DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024
DEFAULT_TIMEOUT = Timeout()
DEFAULT_USER_AGENT = (
    f"zdactivity/{__version__} aiohttp/{aiohttp.__version__} "
    f"python/{sys.version_info.major}.{sys.version_info.minor}"
)


class _Shared:
    """What a client and all its ``with_auth`` views share: the session and its owner flag."""

    __slots__ = ("borrowed", "closed", "max_connections", "session")

    def __init__(self, session: aiohttp.ClientSession | None, max_connections: int) -> None:
        self.session = session
        self.borrowed = session is not None
        self.closed = False
        self.max_connections = max_connections

    def get_session(self) -> aiohttp.ClientSession:
        if self.closed:
            raise RuntimeError("this zdactivity Client is closed")
        if self.session is None:
            # Created lazily, inside the running event loop.
            connector = aiohttp.TCPConnector(limit=self.max_connections)
            self.session = aiohttp.ClientSession(connector=connector)
        return self.session


class Client:
    """An async client of one Zendesk account's Ticket Activities API.

    Use it as an async context manager, or call :meth:`close` when done::

        async with zdactivity.Client(subdomain="acme", auth=zdactivity.OAuthToken(token)) as zd:
            async for activity in zd.activities.list(since=yesterday):
                print(activity.title, activity.actor.name)

    It owns one :class:`aiohttp.ClientSession`, or borrows ``session`` (and then never closes
    it). :meth:`with_auth` gives a client for another agent of the same account that shares the
    session. ``base_url`` must be https except on loopback (the emulator) or with
    ``allow_http=True``.
    """

    def __init__(
        self,
        *,
        subdomain: str | None = None,
        base_url: str | None = None,
        auth: Auth,
        session: aiohttp.ClientSession | None = None,
        timeout: Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        allow_http: bool = False,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_connections: int = 100,
    ) -> None:
        self.base_url = protocol.resolve_base_url(subdomain, base_url, allow_http=allow_http)
        self._auth = _check_auth(auth)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise TypeError("session must be an aiohttp.ClientSession")
        if isinstance(timeout, int | float):
            timeout = Timeout(total=float(timeout))
        self.timeout = timeout
        self._client_timeout = timeout.to_aiohttp()
        self.retry = retry if retry is not None else RetryPolicy()
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        if max_body_size < 1:
            raise ValueError("max_body_size must be positive")
        self.max_body_size = max_body_size
        self._shared = _Shared(session, max_connections)
        self._is_view = False
        self.activities = ActivitiesAPI(self)

    # --- lifecycle ---

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the owned session (idempotent). A borrowed session stays open; closing a
        ``with_auth`` view does nothing, since the session belongs to the client it came from."""
        shared = self._shared
        if self._is_view or shared.closed:
            return
        shared.closed = True
        if shared.session is not None and not shared.borrowed:
            await shared.session.close()

    @property
    def closed(self) -> bool:
        """True once the client (or the client a view came from) has been closed."""
        return self._shared.closed

    def with_auth(self, auth: Auth) -> Client:
        """A client for another agent of the same account, sharing this client's session."""
        view = copy.copy(self)
        view._auth = _check_auth(auth)
        view._is_view = True
        view.activities = ActivitiesAPI(view)
        return view

    @property
    def auth(self) -> Auth:
        """The credentials this client sends (their repr hides the secret)."""
        return self._auth

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, auth={self._auth!r})"

    # --- requests ---

    async def _send_once(self, request: Request) -> Response:
        return await send(
            self._shared.get_session(),
            self.base_url + request.path,
            method=request.method,
            params=request.params,
            headers={
                "Authorization": self._auth.authorization(),
                "Accept": "application/json",
                "User-Agent": self.user_agent,
            },
            client_timeout=self._client_timeout,
            max_body_size=self.max_body_size,
        )

    async def call(self, request: Request, decode: Callable[[Response], T]) -> T:
        """Send ``request`` with retries and decode a successful response with ``decode``."""
        policy = self.retry
        started = policy.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._send_once(request)
                log.debug(
                    "%s %s -> %s (request id %s, attempt %d)",
                    request.method,
                    request.path,
                    response.status,
                    protocol.request_id_from_headers(response.headers),
                    attempt,
                )
                if response.status >= 300:
                    raise protocol.error_from_response(
                        response.status,
                        response.headers,
                        response.body,
                        method=request.method,
                        path=request.path,
                    )
                protocol.check_content_type(response.headers, response.body)
                return decode(response)
            except ZendeskError as error:
                delay = policy.delay_for(error, attempt, policy.clock() - started)
                if delay is None:
                    raise
                log.debug(
                    "%s %s failed (%s); retry %d in %.2fs",
                    request.method,
                    request.path,
                    type(error).__name__,
                    attempt,
                    delay,
                )
                await policy.sleep(delay)


class ActivitiesAPI:
    """``client.activities``: list, show and count the calling agent's activities."""

    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self,
        *,
        since: datetime | str | None = None,
        page_size: int = protocol.MAX_PAGE_SIZE,
        cursor: str | None = None,
        pagination: Pagination = "cursor",
    ) -> ActivityPager:
        """The activities of the last 30 days (newest first, as Zendesk sends them).

        ``since``: an aware datetime or ISO 8601 string; only activities since then.
        ``page_size``: 1..100. ``cursor``: resume after a saved ``page.after_cursor``.
        ``pagination="offset"`` uses offset pages (limited by Zendesk to 100 pages).
        Bad arguments raise ValueError/TypeError here, before any request.
        """
        first = protocol.list_request(
            since=since,
            page_size=page_size,
            cursor=cursor,
            pagination=pagination,
        )
        return ActivityPager(self._fetch_page, first)

    async def _fetch_page(self, request: Request) -> ActivityPage:
        return await self._client.call(request, _decode_page)

    async def get(self, activity_id: int) -> Activity:
        """One activity of the calling agent's stream (NotFoundError for anyone else's)."""
        return await self._client.call(
            protocol.show_request(activity_id), lambda r: protocol.decode_activity(r.body)
        )

    async def count(self) -> ActivityCount:
        """The approximate number of activities of the last 30 days."""
        return await self._client.call(
            protocol.count_request(), lambda r: protocol.decode_count(r.body)
        )


def _decode_page(response: Response) -> ActivityPage:
    return protocol.decode_page(
        response.body, request_id=protocol.request_id_from_headers(response.headers)
    )


def _check_auth(auth: object) -> Auth:
    if auth is None:
        raise ValueError("credentials are missing: pass auth=APIToken(...) or OAuthToken(...)")
    if not isinstance(auth, Auth):
        raise TypeError(f"auth must be an APIToken or OAuthToken, not {type(auth).__name__}")
    return auth

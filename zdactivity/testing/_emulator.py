"""``Emulator``: a local, seeded Zendesk account serving the Ticket Activities API."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Self

from aiohttp import web

from ._account import Account, Agent
from ._faults import Fault
from ._handlers import ServerConfig
from ._ratewindow import FixedWindow
from ._server import RecordedRequest, Server

__all__ = ["Emulator"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Emulator:
    """A fake Zendesk account serving ``/api/v2/activities`` on a local port.

    See the ``zdactivity.testing`` module docstring for usage.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        agents: int = 3,
        actors: int = 20,
        activities_per_agent: int = 50,
        host: str = "127.0.0.1",
        port: int = 0,
        canonical_host: str | None = None,
        rate_limit: int = 700,
        rate_limit_window: float = 60.0,
        enforce_rate_limit: bool = True,
        since_inclusive: bool = True,
        zendesk_request_id: bool = True,
        count_cap: int = 100_000,
        system_actor_share: float = 0.05,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
        token_ttl: float | None = None,
        oauth_client_id: str = "zdactivity-emulator",
        oauth_client_secret: str = "emulator-secret",
    ) -> None:
        if agents < 0 or actors < 0 or activities_per_agent < 0:
            raise ValueError("agents, actors and activities_per_agent must be >= 0")
        if token_ttl is not None and not (math.isfinite(token_ttl) and token_ttl >= 0):
            raise ValueError("token_ttl must be None or a finite number of seconds >= 0")
        monotonic = monotonic or time.monotonic
        if rate_limit < 0 or rate_limit_window <= 0:
            raise ValueError("rate_limit must be >= 0 and rate_limit_window > 0")
        if not 0.0 <= system_actor_share <= 1.0:
            raise ValueError("system_actor_share must be between 0 and 1")
        self._host = host
        self._port = port
        self._canonical_host = canonical_host
        self._account = Account(
            seed=seed,
            agents=agents,
            actors=actors,
            activities_per_agent=activities_per_agent,
            system_actor_share=system_actor_share,
            clock=clock or _utc_now,
            monotonic=monotonic,
            token_ttl=token_ttl,
        )
        self._server = Server(
            self._account,
            ServerConfig(
                canonical_host=canonical_host,
                since_inclusive=since_inclusive,
                zendesk_request_id=zendesk_request_id,
                count_cap=count_cap,
                oauth_client_id=oauth_client_id,
                oauth_client_secret=oauth_client_secret,
            ),
            FixedWindow(rate_limit, rate_limit_window, monotonic, enforce_rate_limit),
            request_id_seed=seed,
        )
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving. Raises RuntimeError if already started."""
        if self._runner is not None:
            raise RuntimeError("Emulator already started")
        # Stalled and delayed requests end when stop() sets ``stopping``; the short shutdown
        # timeout only bounds handlers added from outside (custom routes).
        runner = web.AppRunner(
            self._server.make_app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        address = runner.addresses[0]
        self._bound_port = int(address[1])
        self._runner = runner

    async def stop(self) -> None:
        """Close every connection and stop serving. Safe to call more than once."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self._server.stopping.set()  # wakes stalled and delayed requests: they close
            # Let connections already in the accept queue (e.g. a client's retry after a
            # dropped connection) become transports first: on Python 3.11 a connection
            # accepted while the server closes leaks its socket (asyncio Server._attach).
            for _ in range(3):
                await asyncio.sleep(0)
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- addresses ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL to call, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._bound_port is None:
            raise RuntimeError("Emulator not started: call start() or use `async with`")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._bound_port}"

    def _base(self) -> str:
        """Base URL of ``url`` fields in returned activities: what a client of ``url`` sees."""
        if self._canonical_host:
            return f"https://{self._canonical_host}"
        if self._bound_port is not None:
            return self.url
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    # -- account ------------------------------------------------------------------------------

    @property
    def agents(self) -> list[Agent]:
        """The agents (role agent/admin) with credentials: seeded ones, then ``add_agent`` ones."""
        return list(self._account.agents)

    def add_agent(
        self, name: str | None = None, *, email: str | None = None, role: str = "agent"
    ) -> Agent:
        """Create an agent (``role`` "agent" or "admin") with credentials and no activities."""
        return self._account.add_agent(name=name, email=email, role=role)

    def add_end_user(self, name: str | None = None, *, email: str | None = None) -> Agent:
        """Create an end-user with credentials; the activities endpoints answer it 403."""
        return self._account.add_end_user(name=name, email=email)

    def add_activity(
        self,
        agent: Agent | int,
        *,
        verb: str = "tickets.comment",
        actor_id: int | None = None,
        created_at: datetime | str | None = None,
        ticket_id: int | None = None,
        object: Any = None,  # the API's field name
        target: Any = None,
        title: str | None = None,
    ) -> dict[str, Any]:
        """Append one activity to ``agent``'s stream and return it as the API would show it.

        ``created_at`` defaults to ``clock()`` (whole seconds; naive datetimes are UTC);
        ``actor_id`` to a random actor (or -1, the system user, with ``system_actor_share``);
        ``object``/``target``/``title`` override the generated content, so any JSON (an unknown
        kind such as ``{"sla_event": {...}}``) can be served. Safe while clients are polling.
        """
        act = self._account.add_activity(
            agent.user_id if isinstance(agent, Agent) else agent,
            verb=verb,
            actor_id=actor_id,
            created_at=created_at,
            ticket_id=ticket_id,
            obj=object,
            target=target,
            title=title,
        )
        return self._account.as_dict(act, self._base())

    def activities_for(self, agent: Agent | int, *, window: bool = True) -> list[dict[str, Any]]:
        """``agent``'s activities in server order (newest first), as the list endpoint shows them.

        With ``window=False`` also those older than the 30-day window.
        """
        account = self._account
        stream = account.stream_of(agent.user_id if isinstance(agent, Agent) else agent)
        items = stream.items[: stream.end_for(account.window_start())] if window else stream.items
        base = self._base()
        return [account.as_dict(act, base) for act in items]

    # -- faults -------------------------------------------------------------------------------

    def inject(
        self, *faults: Fault, path: str | None = None, agent: Agent | int | None = None
    ) -> None:
        """Queue ``faults`` (FIFO, after those already queued).

        Each request takes the first queued fault it matches and gets it instead of normal
        handling; with none, it is served normally. ``path`` is a prefix of the request path
        (``"/api/v2/activities"`` matches list, show and count); ``agent`` the caller, by its
        credentials (Basic, or a current or replaced OAuth token, or the refresh token posted
        to ``/oauth/tokens``). A faulted request counts against the rate limit and is recorded.
        """
        user_id = None if agent is None else self._user_id(agent)
        self._server.fault_queue.add(faults, path, user_id)

    @property
    def pending_faults(self) -> int:
        """Queued faults no request has taken yet."""
        return len(self._server.fault_queue)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self._server.fault_queue.clear()

    @property
    def latency(self) -> float:
        """Seconds of delay added before every request is handled (default 0.0; settable)."""
        return self._server.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError("latency must be a finite number of seconds >= 0")
        self._server.latency = float(seconds)

    # -- OAuth --------------------------------------------------------------------------------

    def expire_tokens(self, agent: Agent | int | None = None) -> None:
        """Expire the current access token of ``agent`` (of every user when None) now.

        Its refresh token keeps working; requests with the expired token get 401
        ``invalid_token``.
        """
        self._account.tokens.expire(None if agent is None else self._user_id(agent))

    def current_tokens(self, agent: Agent | int) -> tuple[str, str]:
        """``agent``'s current ``(access_token, refresh_token)``; at first the seeded
        ``Agent.oauth_token``/``Agent.refresh_token``, then those of the last refresh."""
        return self._account.tokens.current(self._user_id(agent))

    @property
    def refresh_count(self) -> int:
        """Successful ``POST /oauth/tokens`` refreshes so far."""
        return self._account.tokens.refresh_count

    def _user_id(self, agent: Agent | int) -> int:
        user_id = agent.user_id if isinstance(agent, Agent) else agent
        if user_id not in self._account.credentials:
            raise ValueError(f"user {user_id} has no credentials in this account")
        return user_id

    # -- observation --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far (a snapshot), oldest first."""
        return list(self._server.counters.requests)

    @property
    def in_flight(self) -> int:
        """Requests being handled (body writing included) right now."""
        return self._server.counters.in_flight

    @property
    def max_in_flight(self) -> int:
        """Peak of ``in_flight`` since start or the last ``reset_log()``."""
        return self._server.counters.max_in_flight

    def reset_log(self) -> None:
        """Forget recorded requests and reset ``max_in_flight`` to the current ``in_flight``."""
        counters = self._server.counters
        counters.requests.clear()
        counters.max_in_flight = counters.in_flight

    def __repr__(self) -> str:
        where = self.url if self._bound_port is not None and self._runner else "not started"
        return f"<Emulator {where} agents={len(self._account.agents)}>"

"""A local emulator of Zendesk Support's Ticket Activities API, for tests, demos and benchmarks.

The emulator is a real HTTP server (aiohttp) bound to a local port. It serves one fake account
with seeded, deterministic data and behaves like the recorded service: per-agent streams,
newest-first cursor pagination with the trailing empty page, offset pagination with its depth
limit, the 30-day window, ``since``, count, show, Basic/Bearer auth, the account-wide rate limit
(429 + ``Retry-After``), Zendesk's headers and error bodies, gzip. It imports nothing else from
zdactivity.

Usage::

    from zdactivity.testing import Emulator

    async with Emulator(seed=0, agents=3, activities_per_agent=50) as emu:
        agent = emu.agents[0]          # Agent(user_id, name, email, role, + tokens)
        # point a client at emu.url with either credential:
        #   Authorization: Basic base64(f"{agent.email}/token:{agent.api_token}")
        #   Authorization: Bearer {agent.oauth_token}
        expected = emu.activities_for(agent)          # what the list endpoint will return
        emu.add_activity(agent, verb="tickets.assignment")   # shows up in the next request
        emu.add_activity(agent, object={"sla_event": {"id": 1}})  # unknown kinds are fine
        ...
        assert emu.max_in_flight <= 4
        assert all(r.status == 200 for r in emu.requests)

Constructor keywords (all optional): ``seed`` (deterministic data), ``agents``, ``actors``
(non-credentialed users who cause activities), ``activities_per_agent`` (spread over the last
~31 days, so a few fall outside the 30-day window), ``host``/``port`` (default 127.0.0.1 and a
free port), ``canonical_host`` (links and ``url`` fields then use ``https://{canonical_host}``,
like a real account called through an alias host; otherwise ``http://{Host header}``),
``rate_limit``/``rate_limit_window``/``enforce_rate_limit``, ``since_inclusive`` (whether
``since`` includes activities created exactly at that second), ``zendesk_request_id`` (send
``X-Zendesk-Request-Id`` besides the doubled ``x-request-id``), ``count_cap`` (above it count
answers the cap with ``refreshed_at: null``), ``system_actor_share`` (share of activities by the
system user, ``actor_id`` -1, which have no inline ``actor`` and are not sideloaded),
``clock`` (aware UTC wall clock: created_at, the window, count's refreshed_at) and
``monotonic`` (the rate-limit window). Inject both to test time-dependent behaviour.

Other helpers: ``add_agent(name)``, ``add_end_user(name)`` (credentials that get 403),
``requests`` (``RecordedRequest`` log), ``in_flight``/``max_in_flight``, ``reset_log()``,
``start()``/``stop()`` (idempotent) for use without ``async with``.
"""

from ._data import Agent
from ._emulator import Emulator
from ._server import RecordedRequest

__all__ = ["Agent", "Emulator", "RecordedRequest"]

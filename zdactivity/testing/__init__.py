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

Layout (private modules, one job each): ``_emulator`` (the ``Emulator`` facade), ``_account``
(users, credentials, activity streams), ``_fakedata`` (seeded names, user records, ticket
content), ``_oauth`` (OAuth pairs: grant, expire, rotate), ``_cursor`` (the cursor codec),
``_render`` (cached JSON rendering), ``_auth`` (who is calling), ``_handlers`` (the endpoints),
``_errors`` (Zendesk-shaped error answers), ``_ratewindow`` (the account-wide ``FixedWindow``),
``_faults`` (``Fault`` and its canned bodies), ``_server`` (the aiohttp middleware pipeline).

Faults (``from zdactivity.testing import Fault``)::

    emu.inject(Fault.status(503, retry_after=2), Fault.ok(), Fault.reset())   # FIFO
    emu.inject(Fault.stall(), path="/api/v2/activities/count", agent=emu.agents[1])
    emu.latency = 0.05                      # added before every request
    emu.pending_faults, emu.clear_faults()

Each request takes the first queued fault it matches (``path`` prefix, ``agent`` = the caller
by its credentials) instead of normal handling. Kinds: ``ok()`` (a placeholder),
``status(code, retry_after=, body=, content_type=)`` (Zendesk-shaped default bodies),
``latency(s)``, ``stall()``, ``stall_mid_body()``, ``reset()`` (TCP RST, nothing sent),
``reset_mid_body()``, ``malformed("truncated" | "html" | "empty" | "wrong_types" |
"not_json" | "bad_gzip")``. Faulted requests count against the rate limit and are recorded
(``RecordedRequest.status`` 0 when nothing was sent, ``.fault`` the fault). ``stop()`` ends
stalls at once. Note: aiohttp's client (3.10+) retries an idempotent request (GET) once,
silently, when the connection drops before the response starts, so a single ``reset()`` is
invisible to an aiohttp GET (the retry is served normally): queue two to see the error.

OAuth: ``POST /oauth/tokens`` (form or JSON) with ``grant_type=refresh_token``,
``refresh_token``, ``client_id``/``client_secret`` (constructor ``oauth_client_id``/
``oauth_client_secret``) answers a new pair and invalidates the old one. ``token_ttl``
(seconds on ``monotonic``; None = never) makes access tokens expire (401 ``invalid_token``);
``expire_tokens(agent=None)``, ``current_tokens(agent)``, ``refresh_count``. The seeded
``Agent.oauth_token``/``refresh_token`` are the initial pair.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._account import Agent
    from ._emulator import Emulator
    from ._faults import Fault
    from ._server import RecordedRequest

__all__ = ["Agent", "Emulator", "Fault", "RecordedRequest"]

# Loaded on first use: the pytest plugin (``zdactivity.testing.pytest_plugin``), which pytest
# loads in every run where zdactivity is installed, costs no aiohttp import until it is used.
_LAZY = {
    "Agent": "_account",
    "Emulator": "_emulator",
    "Fault": "_faults",
    "RecordedRequest": "_server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zdactivity.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

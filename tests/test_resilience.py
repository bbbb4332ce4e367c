"""Retries, timeouts, rate limits, OAuth refresh and security, against the emulator's faults."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import warnings
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from conftest import NOW, oauth_token, token, wait_until
from fakes import FakeTime

import zdactivity
from zdactivity.client import RequestEvent
from zdactivity.testing import Agent, Emulator, Fault


def fake_client(
    emu: Emulator, t: FakeTime, agent: Agent | None = None, **policy: float
) -> zdactivity.Client:
    retry = zdactivity.RetryPolicy(
        sleep=t.sleep,
        clock=t.clock,
        jitter=lambda d: d,
        **policy,  # type: ignore[arg-type]
    )
    limiter = zdactivity.RateLimiter(clock=t.clock, sleep=t.sleep)
    return zdactivity.Client(
        base_url=emu.url,
        auth=token(agent or emu.agents[0]),
        retry=retry,
        rate_limiter=limiter,
        timeout=zdactivity.Timeout(connect=2, read=0.5, total=2),
    )


pytestmark = pytest.mark.emulator(seed=8, agents=3, activities_per_agent=60)


def expected(emu: Emulator, agent: Agent) -> list[int]:
    return [int(a["id"]) for a in emu.activities_for(agent)]


# --- retries -------------------------------------------------------------------------------


async def test_5xx_and_resets_are_retried_with_exponential_backoff(emu: Emulator) -> None:
    t = FakeTime()
    # aiohttp itself resends an idempotent request once after a reset: the second one is ours.
    emu.inject(
        Fault.reset(), Fault.reset(), Fault.status(500), Fault.status(502), Fault.status(504)
    )
    async with fake_client(emu, t, base_delay=0.5) as zd:
        count = await zd.activities.count()
        assert count.value == 60
        assert t.slept == [0.5, 1.0, 2.0, 4.0]
        assert zd.stats.retries == 4 and zd.stats.requests == 5
    assert [r.status for r in emu.requests] == [0, 0, 500, 502, 504, 200]


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [("3", 3.0), ("0.25", 0.25), (None, 0.5)],
)
async def test_429_and_503_wait_for_retry_after(
    emu: Emulator, retry_after: str | None, waited: float
) -> None:
    for status in (429, 503):
        t = FakeTime()
        emu.inject(Fault.status(status, retry_after=retry_after))
        async with fake_client(emu, t, base_delay=0.5) as zd:
            assert (await zd.activities.count()).value == 60
        assert t.slept == [pytest.approx(waited)]


async def test_retry_after_as_an_http_date(emu: Emulator) -> None:
    t = FakeTime()
    when = datetime.now(UTC) + timedelta(seconds=30)
    emu.inject(Fault.status(429, retry_after=format_datetime(when, usegmt=True)))
    async with fake_client(emu, t) as zd:
        await zd.activities.count()
    assert len(t.slept) == 1 and 25 < t.slept[0] <= 31


async def test_a_retry_after_above_the_cap_raises_at_once(emu: Emulator) -> None:
    t = FakeTime()
    emu.inject(Fault.status(429, retry_after=3600))
    async with fake_client(emu, t, max_retry_after=60) as zd:
        with pytest.raises(zdactivity.RateLimitError) as info:
            await zd.activities.count()
        assert info.value.retry_after == 3600
        assert t.slept == []
        # The account is paused for max_retry_after, not the hour asked: the next request
        # waits that long, then gets through.
        await zd.activities.count()
    assert t.slept == [pytest.approx(60)]
    assert len(emu.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_4xx_are_never_retried(emu: Emulator, status: int) -> None:
    t = FakeTime()
    emu.inject(Fault.status(status))
    async with fake_client(emu, t) as zd:
        with pytest.raises(zdactivity.APIError) as info:
            await zd.activities.count()
    assert info.value.status == status
    assert len(emu.requests) == 1 and t.slept == []


async def test_a_failure_mid_listing_retries_that_page_only(emu: Emulator) -> None:
    t = FakeTime()
    agent = emu.agents[0]
    emu.inject(Fault.ok(), Fault.ok(), Fault.status(500), Fault.reset_mid_body(), Fault.ok())
    async with fake_client(emu, t) as zd:
        got = [a.id async for a in zd.activities.list(page_size=10)]
    assert got == expected(emu, agent)
    cursors = [r.query.get("page[after]") for r in emu.requests]
    assert cursors[2] == cursors[3] == cursors[4]  # the third page, three times
    assert len(set(cursors)) == len(cursors) - 2


async def test_retries_give_up_after_max_tries(emu: Emulator) -> None:
    t = FakeTime()
    emu.inject(*[Fault.status(500)] * 3)
    async with fake_client(emu, t, max_tries=3) as zd:
        with pytest.raises(zdactivity.ServerError):
            await zd.activities.count()
    assert len(emu.requests) == 3


async def test_no_retry_policy(emu: Emulator) -> None:
    emu.inject(Fault.status(503, retry_after=1))
    async with zdactivity.Client(
        base_url=emu.url, auth=token(emu.agents[0]), retry=zdactivity.RetryPolicy.no_retry()
    ) as zd:
        with pytest.raises(zdactivity.ServerError) as info:
            await zd.activities.count()
    assert info.value.retry_after == 1


# --- timeouts, bad bodies, cancellation -----------------------------------------------------


async def test_a_stalled_server_ends_in_a_retry_then_transport_error(emu: Emulator) -> None:
    t = FakeTime()
    emu.inject(Fault.stall())
    async with fake_client(emu, t) as zd:
        started = time.monotonic()
        assert (await zd.activities.count()).value == 60  # the retry succeeds
        emu.inject(Fault.stall(), Fault.stall_mid_body(), Fault.stall())
        zd.retry = zdactivity.RetryPolicy(max_tries=3).testing()
        with pytest.raises(zdactivity.TransportError, match="timed out") as info:
            await zd.activities.count()
        assert isinstance(info.value, zdactivity.RequestTimeoutError)
        assert time.monotonic() - started < 10
        assert emu.pending_faults == 0


@pytest.mark.parametrize(
    ("kind", "retried"),
    [
        ("truncated", True),
        ("html", True),
        ("empty", True),
        ("not_json", True),
        ("bad_gzip", True),
        ("wrong_types", False),
    ],
)
async def test_bad_bodies_are_typed_errors_after_the_retries_that_fit(
    emu: Emulator, kind: str, retried: bool
) -> None:
    t = FakeTime()
    emu.inject(Fault.malformed(kind))  # type: ignore[arg-type]
    async with fake_client(emu, t) as zd:
        if retried:
            got = await zd.activities.list().collect()
            assert len(got) == 60
            assert zd.stats.retries == 1
        else:
            with pytest.raises(zdactivity.DecodeError) as info:
                await zd.activities.list().collect()
            assert info.value.path is not None and info.value.path.startswith("$.activities")
        emu.inject(*[Fault.malformed(kind)] * 5)  # type: ignore[arg-type]
        with pytest.raises((zdactivity.DecodeError, zdactivity.TransportError)) as err:
            await zd.activities.list().collect()
        assert isinstance(err.value, zdactivity.ZendeskError)


async def test_an_oversized_body_is_an_error_not_an_out_of_memory(emu: Emulator) -> None:
    async with zdactivity.Client(
        base_url=emu.url, auth=token(emu.agents[0]), max_body_size=10_000
    ) as zd:
        with pytest.raises(zdactivity.ResponseTooLargeError, match="max_body_size"):
            await zd.activities.list().collect()
    assert len(emu.requests) == 1  # not retried


@pytest.mark.parametrize("where", ["call", "iteration"])
async def test_cancelling_leaves_nothing_open(emu: Emulator, where: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        zd = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0]))
        if where == "call":
            emu.inject(Fault.stall())
            task = asyncio.ensure_future(zd.activities.count())
        else:
            emu.inject(Fault.ok(), Fault.stall_mid_body())

            async def consume(client: zdactivity.Client) -> None:
                async for _ in client.activities.list(page_size=10):
                    pass

            task = asyncio.ensure_future(consume(zd))
        await wait_until(lambda: emu.in_flight > 0 and not emu.pending_faults)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        session = zd._shared.session
        assert session is not None
        assert session.connector is not None
        await zd.close()
        assert session.closed
        del zd, session, task
        gc.collect()
    assert not [w for w in caught if "nclosed" in str(w.message)]


# --- the account-wide rate limiter ----------------------------------------------------------


async def test_views_and_clients_given_one_limiter_share_it(emu: Emulator) -> None:
    limiter = zdactivity.RateLimiter(limit=700)
    a = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0]), rate_limiter=limiter)
    b = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[1]), rate_limiter=limiter)
    view = a.with_auth(token(emu.agents[2]))
    assert a.rate_limiter is b.rate_limiter is view.rate_limiter is limiter
    await asyncio.gather(a.activities.count(), b.activities.count(), view.activities.count())
    state = limiter.state()
    assert state.limit == 700 and state.remaining is not None and state.remaining <= 697
    await a.close()
    await b.close()


async def test_a_429_pauses_the_whole_account(emu: Emulator) -> None:
    t = FakeTime()
    root = fake_client(emu, t)
    other = root.with_auth(token(emu.agents[1]))
    await root.activities.count()  # learn the budget
    emu.inject(Fault.status(429, retry_after=7), agent=emu.agents[0])
    await root.activities.count()
    assert t.slept == [7.0]
    paused_until = t.now
    await other.activities.count()
    assert t.now == paused_until  # already waited out; nothing more
    emu.inject(Fault.status(429, retry_after=9), agent=emu.agents[0])
    await asyncio.gather(root.activities.count(), other.activities.count())
    assert sum(t.slept[1:]) == pytest.approx(9.0)  # both waited out one pause together
    assert root.stats.rate_limited == 2
    await root.close()


async def test_many_agents_under_a_small_budget_get_no_429() -> None:
    """The figure for the note: budget utilisation and 429s of many agents on one account."""
    limit, window, agents, pages = 40, 1.0, 20, 8  # 160 requests: 4 windows' worth
    async with Emulator(
        seed=9,
        agents=agents,
        activities_per_agent=pages * 5 - 1,  # 8 pages of 5 (the last one short)
        rate_limit=limit,
        rate_limit_window=window,
        clock=lambda: NOW,
    ) as emu:
        for agent in emu.agents:  # only activities in the 30-day window count
            while len(emu.activities_for(agent)) < pages * 5 - 1:
                emu.add_activity(agent, created_at=NOW - timedelta(hours=1))
        limiter = zdactivity.RateLimiter(window=window)
        root = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0]), rate_limiter=limiter)

        async def stream(agent: Agent) -> int:
            return len(await root.with_auth(token(agent)).activities.list(page_size=5).collect())

        started = time.monotonic()
        counts = await asyncio.gather(*(stream(a) for a in emu.agents))
        elapsed = time.monotonic() - started
        await root.close()
        statuses = [r.status for r in emu.requests]
    total = len(statuses)
    assert counts == [pages * 5 - 1] * agents
    assert statuses.count(429) == 0
    # The budget allows `limit` per window, so total requests need at least this long:
    ideal = (total / limit - 1) * window
    utilisation = ideal / elapsed
    print(
        f"\nmany-agents: {total} requests, 429s={statuses.count(429)}, "
        f"elapsed={elapsed:.2f}s, ideal={ideal:.2f}s, utilisation={utilisation:.1%}"
    )
    assert utilisation > 0.75  # generous for a loaded CI machine; the note reports the figure


# --- OAuth refresh --------------------------------------------------------------------------


async def test_100_concurrent_requests_on_an_expired_token_refresh_once() -> None:
    async with Emulator(seed=10, agents=1, activities_per_agent=5, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        saved: list[tuple[str, str]] = []
        log_size_at_save: list[int] = []

        async def on_refresh(access: str, refresh: str) -> None:
            await asyncio.sleep(0.01)  # e.g. a database write
            saved.append((access, refresh))
            log_size_at_save.append(len(emu.requests))

        auth = oauth_token(agent, on_refresh=on_refresh)
        async with zdactivity.Client(base_url=emu.url, auth=auth) as zd:
            await zd.activities.count()
            emu.expire_tokens(agent)
            counts = await asyncio.gather(*(zd.activities.count() for _ in range(100)))
            assert [c.value for c in counts] == [5] * 100
            assert emu.refresh_count == 1 and zd.stats.refreshes == 1
            assert saved == [emu.current_tokens(agent)]
            assert auth.access_token == saved[0][0]
            new_header = f"Bearer {saved[0][0]}"
            first_use = min(
                i
                for i, r in enumerate(emu.requests)
                if r.headers.get("Authorization") == new_header
            )
            assert first_use >= log_size_at_save[0]  # saved before it was used
            assert sum(1 for r in emu.requests if r.path == "/oauth/tokens") == 1
        assert agent.refresh_token not in repr(auth) and saved[0][1] not in repr(auth)


async def test_a_failed_refresh_is_an_authentication_error_for_all() -> None:
    async with Emulator(seed=10, agents=1, activities_per_agent=5) as emu:
        agent = emu.agents[0]
        auth = oauth_token(agent, client_secret="wrong-secret")
        async with zdactivity.Client(base_url=emu.url, auth=auth) as zd:
            emu.expire_tokens(agent)
            results = await asyncio.gather(
                *(zd.activities.count() for _ in range(20)), return_exceptions=True
            )
        assert all(isinstance(r, zdactivity.AuthenticationError) for r in results)
        assert "wrong-secret" not in "".join(str(r) for r in results)
        assert sum(1 for r in emu.requests if r.path == "/oauth/tokens") == 1
        assert emu.refresh_count == 0


async def test_token_ttl_expiry_refreshes_transparently() -> None:
    clock = [0.0]
    async with Emulator(
        seed=12, agents=1, activities_per_agent=5, token_ttl=60, monotonic=lambda: clock[0]
    ) as emu:
        agent = emu.agents[0]
        auth = oauth_token(agent)
        async with zdactivity.Client(base_url=emu.url, auth=auth) as zd:
            await zd.activities.count()
            clock[0] += 61
            await zd.activities.count()
            clock[0] += 61
            await zd.activities.count()
        assert emu.refresh_count == 2 and auth.generation == 2


# --- security -------------------------------------------------------------------------------


async def test_authorization_never_follows_a_redirect_to_another_host() -> None:
    received: list[str | None] = []

    async def elsewhere(request: web.Request) -> web.Response:
        received.append(request.headers.get("Authorization"))
        return web.json_response({"count": {"value": 1, "refreshed_at": None}})

    other = web.Application()
    other.router.add_get("/{tail:.*}", elsewhere)
    other_runner = web.AppRunner(other)
    await other_runner.setup()
    other_site = web.TCPSite(other_runner, "127.0.0.2", 0)
    await other_site.start()
    other_port = other_runner.addresses[0][1]

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{other_port}/api/v2/activities/count")

    app = web.Application()
    app.router.add_get("/{tail:.*}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with zdactivity.Client(
            base_url=f"http://127.0.0.1:{port}", auth=zdactivity.OAuthToken("s3cret")
        ) as zd:
            with pytest.raises(zdactivity.APIError) as info:
                await zd.activities.count()
        assert info.value.status == 302
        assert received == []
    finally:
        await runner.cleanup()
        await other_runner.cleanup()


def test_plain_http_only_on_loopback_unless_allowed() -> None:
    auth = zdactivity.OAuthToken("t")
    with pytest.raises(ValueError, match="http"):
        zdactivity.Client(base_url="http://acme.zendesk.com", auth=auth)
    assert zdactivity.Client(base_url="http://127.0.0.1:8080", auth=auth).base_url.startswith(
        "http://127.0.0.1"
    )
    allowed = zdactivity.Client(base_url="http://proxy.internal", auth=auth, allow_http=True)
    assert allowed.base_url == "http://proxy.internal"


async def test_no_secret_in_logs_errors_or_reprs(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    agent = emu.agents[0]
    secrets = [agent.api_token, agent.oauth_token, agent.refresh_token, "emulator-secret"]
    caplog.set_level(logging.DEBUG, logger="zdactivity")
    events: list[RequestEvent] = []
    api = token(agent)
    oauth = oauth_token(agent)
    t = FakeTime()
    async with zdactivity.Client(
        base_url=emu.url,
        auth=api,
        on_request=events.append,
        retry=zdactivity.RetryPolicy(sleep=t.sleep),
    ) as zd:
        emu.inject(Fault.status(500), Fault.status(429, retry_after=0))
        await zd.activities.list().collect()
        bad = zd.with_auth(zdactivity.APIToken(agent.email, "wrong-" + agent.api_token))
        with pytest.raises(zdactivity.AuthenticationError) as info:
            await bad.activities.count()
        view = zd.with_auth(oauth)
        emu.expire_tokens(agent)
        await view.activities.count()
        texts = [
            caplog.text,
            str(info.value),
            repr(info.value),
            repr(zd),
            repr(view),
            repr(api),
            repr(oauth),
            str(oauth),
            repr(events),
            repr(zd.rate_limiter),
        ]
    blob = "\n".join(texts)
    import base64

    basic = base64.b64encode(f"{agent.email}/token:{agent.api_token}".encode()).decode()
    for secret in [*secrets, basic, oauth.access_token]:
        assert secret not in blob
    assert "GET /api/v2/activities" in caplog.text
    assert "attempt" in caplog.text and "retry in" in caplog.text


# --- observability --------------------------------------------------------------------------


async def test_counters_hook_and_trace_config(emu: Emulator) -> None:
    started: list[str] = []

    async def on_start(
        session: aiohttp.ClientSession,
        ctx: object,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        started.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    events: list[RequestEvent] = []
    t = FakeTime()
    emu.inject(Fault.status(502), Fault.status(429, retry_after=0))
    async with zdactivity.Client(
        base_url=emu.url,
        auth=token(emu.agents[0]),
        trace_configs=[trace],
        on_request=events.append,
        retry=zdactivity.RetryPolicy(sleep=t.sleep, clock=t.clock),
        rate_limiter=zdactivity.RateLimiter(clock=t.clock, sleep=t.sleep),
    ) as zd:
        await zd.activities.list(page_size=30).collect()
        stats = zd.stats
    assert stats.requests == 5 and stats.retries == 2 and stats.rate_limited == 1
    assert stats.bytes_received > 50_000
    assert len(started) == 5
    assert [e.status for e in events] == [502, 429, 200, 200, 200]
    assert events[0].retry_in is not None and events[0].error is not None
    assert all(e.request_id for e in events)
    assert events[-1].error is None and events[-1].retry_in is None

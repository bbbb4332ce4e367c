"""RateLimiter decisions with an injected clock and sleep: nothing here waits for real time."""

from __future__ import annotations

import asyncio

import pytest
from fakes import FakeTime
from hypothesis import given, settings
from hypothesis import strategies as st

import zdactivity
from zdactivity.protocol import RateLimitHeaders
from zdactivity.ratelimit import RateLimiter


def limiter(t: FakeTime, **kw: object) -> RateLimiter:
    return RateLimiter(clock=t.clock, sleep=t.sleep, **kw)  # type: ignore[arg-type]


def hdr(limit: int | None, remaining: int | None, reset: float | None = None) -> RateLimitHeaders:
    return RateLimitHeaders(limit=limit, remaining=remaining, reset=reset)


async def test_first_request_probes_and_others_wait_for_its_answer() -> None:
    t = FakeTime()
    rl = limiter(t)
    probe = await rl.acquire()
    waiter = asyncio.ensure_future(rl.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()  # nothing is known yet: one request at a time
    rl.observe(probe, hdr(100, 99, 30))
    second = await asyncio.wait_for(waiter, 1)
    assert second.seq == 2
    assert rl.limit == 100 and rl.remaining == 98
    assert t.slept == []


async def test_grants_the_window_budget_then_waits_for_the_reset() -> None:
    t = FakeTime()
    rl = limiter(t)
    rl.observe(await rl.acquire(), hdr(10, 9, 30))
    permits = [await rl.acquire() for _ in range(8)]  # a burst, unanswered
    assert rl.remaining == 1 and t.slept == []
    last = asyncio.ensure_future(rl.acquire())
    await asyncio.sleep(0)
    assert not last.done()  # the window's tail goes one at a time, after the answers
    for i, p in enumerate(permits):
        rl.observe(p, hdr(10, 8 - i, 30))
    rl.observe(await asyncio.wait_for(last, 1), hdr(10, 0, 30))
    nxt = asyncio.ensure_future(rl.acquire())
    await asyncio.sleep(0)
    assert await asyncio.wait_for(nxt, 1)
    assert t.slept == [pytest.approx(30.0)]  # slept until the window's reset, then probed
    assert rl.remaining is None  # a probe of the new window


async def test_budget_spent_unseen_shows_at_the_tail() -> None:
    t = FakeTime()
    rl = limiter(t)
    rl.observe(await rl.acquire(), hdr(10, 9, 30))
    burst = [await rl.acquire() for _ in range(8)]
    for p in burst:
        rl.observe(p, hdr(10, 0, 30))  # someone else spent the last one meanwhile
    waiter = asyncio.ensure_future(rl.acquire())
    await asyncio.sleep(0)
    assert rl.remaining == 0
    assert await asyncio.wait_for(waiter, 1)
    assert t.slept == [pytest.approx(30.0)]  # nothing sent into an empty window


async def test_reserve_is_left_for_other_integrations() -> None:
    t = FakeTime()
    rl = limiter(t, reserve=0.2)
    rl.observe(await rl.acquire(), hdr(10, 9, 60))
    granted = 0
    while True:
        waiter = asyncio.ensure_future(rl.acquire())
        await asyncio.sleep(0)
        if t.slept:  # it had to wait for the next window: the budget above the reserve is spent
            waiter.cancel()
            break
        rl.observe(await waiter, hdr(10, 9 - granted - 1, 60))
        granted += 1
    assert granted == 7  # 10 - 1 probe - 2 reserved
    assert rl.state().reserved == 2


async def test_other_clients_usage_lowers_the_estimate() -> None:
    t = FakeTime()
    rl = limiter(t)
    rl.observe(await rl.acquire(), hdr(100, 99, 60))
    p = await rl.acquire()
    rl.observe(p, hdr(100, 40, 60))  # someone else spent 58
    assert rl.remaining == 40


async def test_in_flight_requests_granted_later_are_not_double_counted() -> None:
    t = FakeTime()
    rl = limiter(t)
    rl.observe(await rl.acquire(), hdr(100, 99, 60))
    a, _b, _c = [await rl.acquire() for _ in range(3)]
    rl.observe(a, hdr(100, 98, 60))  # b and c are not in the server's count yet
    assert rl.remaining == 96


async def test_429_pauses_every_request_of_the_account() -> None:
    t = FakeTime()
    rl = limiter(t)
    rl.observe(await rl.acquire(), hdr(100, 99, 60))
    rl.pause(12.5)
    assert rl.state().paused_for == pytest.approx(12.5)
    assert rl.paused_until == pytest.approx(t.now + 12.5)
    await rl.acquire()
    assert t.slept == [pytest.approx(12.5)]
    assert rl.paused_until is None


async def test_a_pause_beyond_max_wait_raises_instead_of_sleeping() -> None:
    t = FakeTime()
    rl = limiter(t)
    rl.pause(600)
    with pytest.raises(zdactivity.RateLimitError) as info:
        await rl.acquire(max_wait=60)
    assert info.value.retry_after == pytest.approx(600)
    assert t.slept == []


async def test_a_server_without_rate_limit_headers_is_not_throttled() -> None:
    t = FakeTime()
    rl = limiter(t)
    rl.observe(await rl.acquire(), hdr(None, None))
    permits = [await rl.acquire() for _ in range(500)]
    assert len(permits) == 500 and t.slept == []


async def test_released_probe_lets_the_next_request_probe() -> None:
    t = FakeTime()
    rl = limiter(t)
    probe = await rl.acquire()
    waiter = asyncio.ensure_future(rl.acquire())
    await asyncio.sleep(0)
    rl.release(probe)  # e.g. a connection error: no headers came back
    assert (await asyncio.wait_for(waiter, 1)).seq == 2


async def test_stale_answers_from_the_previous_window_are_ignored() -> None:
    t = FakeTime()
    rl = limiter(t, window=60.0)
    rl.observe(await rl.acquire(), hdr(100, 99, 5))
    old = [await rl.acquire() for _ in range(9)]
    t.now += 6  # the window reset; the old requests are still in flight
    probe = await rl.acquire()
    rl.observe(probe, hdr(100, 99, 60))
    assert rl.remaining == 99 - 9  # the 9 stragglers may still land in this window
    for p in old:
        rl.observe(p, hdr(100, 0, 1))  # answers counted in the old window
    assert rl.remaining == 90
    assert rl.state().resets_in == pytest.approx(60)


async def test_a_rolled_estimate_is_replaced_by_the_first_measurement() -> None:
    t = FakeTime()
    rl = limiter(t, window=60.0)
    rl.observe(await rl.acquire(), hdr(10, 9, 60))
    t.now += 61  # our estimate rolls to the next window (end + 60)
    probe = await rl.acquire()
    t.now += 1
    rl.observe(probe, hdr(10, 9, 60))  # the server's window started at the probe
    assert rl.state().resets_in == pytest.approx(60)


def test_state_and_repr_and_validation() -> None:
    t = FakeTime()
    rl = limiter(t, limit=400, reserve=0.1)
    state = rl.state()
    assert (state.limit, state.remaining, state.reserved, state.in_flight) == (400, None, 40, 0)
    assert "limit=400" in repr(rl)
    for bad in ({"limit": 0}, {"reserve": 1.0}, {"reserve": -0.1}, {"window": 0}):
        with pytest.raises(ValueError):
            RateLimiter(**bad)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 50),
    others=st.integers(0, 20),
    requests=st.integers(1, 120),
    concurrency=st.integers(1, 12),
)
def test_never_exceeds_the_server_budget(
    limit: int, others: int, requests: int, concurrency: int
) -> None:
    """Against a modelled fixed-window server, the limiter causes no 429 in steady state."""

    async def scenario() -> None:
        t = FakeTime()
        rl = limiter(t, window=60.0)
        start, used = t.now, min(others, limit)  # other integrations spent some already
        rejected = 0

        def serve() -> RateLimitHeaders:
            nonlocal start, used, rejected
            if t.now >= start + 60:
                start, used = t.now, 0
            used += 1
            if used > limit:
                rejected += 1
            reset = max(1.0, float(int(start + 60 - t.now + 0.999999)))
            return hdr(limit, max(0, limit - used), reset)

        async def one() -> None:
            permit = await rl.acquire(max_wait=3600)
            await asyncio.sleep(0)
            rl.observe(permit, serve())

        todo = list(range(requests))
        while todo:
            batch, todo = todo[:concurrency], todo[concurrency:]
            await asyncio.gather(*(one() for _ in batch))
        # Only the very first request knows nothing; it is refused if others emptied the window.
        assert rejected <= (1 if others >= limit else 0)

    asyncio.run(scenario())

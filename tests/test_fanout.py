"""fan_out over many agents of one account, against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tracemalloc
from collections import defaultdict
from datetime import datetime

import pytest
from conftest import client_tasks, token, wait_until

import zdactivity
import zdactivity.testing
from zdactivity.testing import Emulator, Fault

pytestmark = pytest.mark.emulator(seed=21, agents=30, activities_per_agent=45, rate_limit=100_000)


def views(emu: Emulator, root: zdactivity.Client) -> dict[int, zdactivity.Client]:
    return {a.user_id: root.with_auth(token(a)) for a in emu.agents}


async def test_every_agent_exactly_once_in_order(emu: Emulator) -> None:
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:
        got: dict[int, list[int]] = defaultdict(list)
        async for key, activity in zdactivity.fan_out(
            views(emu, root), page_size=10, concurrency=8
        ):
            assert activity.user_id == key
            got[key].append(activity.id)
    for agent in emu.agents:
        assert got[agent.user_id] == [a["id"] for a in emu.activities_for(agent)]


async def test_in_flight_never_exceeds_concurrency(emu: Emulator) -> None:
    emu.latency = 0.01
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:
        count = 0
        async for _ in zdactivity.fan_out(views(emu, root), page_size=5, concurrency=7):
            count += 1
    assert count == sum(len(emu.activities_for(a)) for a in emu.agents)
    assert emu.max_in_flight == 7  # reached, never exceeded


async def test_a_bad_agent_is_isolated_and_reported_with_its_key(emu: Emulator) -> None:
    customer = emu.add_end_user(name="Not An Agent")
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:
        clients: dict[object, zdactivity.Client] = dict(views(emu, root))
        clients["bad-token"] = root.with_auth(zdactivity.APIToken(emu.agents[1].email, "nope"))
        clients["customer"] = root.with_auth(token(customer))
        got: dict[object, int] = defaultdict(int)
        with pytest.raises(ExceptionGroup) as info:
            async for key, _ in zdactivity.fan_out(clients, concurrency=4):
                got[key] += 1
    failures = {e.key: e for e in info.value.exceptions}  # type: ignore[attr-defined]
    assert set(failures) == {"bad-token", "customer"}
    assert isinstance(failures["bad-token"].error, zdactivity.AuthenticationError)
    assert isinstance(failures["customer"].error, zdactivity.PermissionDeniedError)
    assert all(isinstance(e, zdactivity.AgentError) for e in info.value.exceptions)
    for agent in emu.agents:  # everyone else was delivered in full
        assert got[agent.user_id] == len(emu.activities_for(agent))


async def test_backpressure_bounds_what_is_fetched_ahead(emu: Emulator) -> None:
    concurrency = 3
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:
        stream = zdactivity.fan_out(views(emu, root), page_size=5, concurrency=concurrency)
        consumed_pages = 0
        async with contextlib.aclosing(stream):
            async for _key, _activity in stream:
                consumed_pages += 1  # an upper bound: one page has at least one activity
                await asyncio.sleep(0.002)  # a slow consumer
                ahead = len(emu.requests) - consumed_pages
                assert ahead <= 2 * concurrency + concurrency
                if consumed_pages > 60:
                    break
        await asyncio.sleep(0.05)
        assert emu.in_flight == 0


async def test_cancelling_the_consumer_cancels_every_fetch(emu: Emulator) -> None:
    emu.latency = 0.05
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:

        async def consume() -> None:
            async for _ in zdactivity.fan_out(views(emu, root), page_size=5, concurrency=10):
                pass

        task = asyncio.create_task(consume())
        await wait_until(lambda: emu.in_flight > 0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        requests_at_cancel = len(emu.requests)
        # The server sees the dropped connections end (how soon depends on the machine's load).
        await wait_until(lambda: emu.in_flight == 0, within=10)
        await asyncio.sleep(0.2)
        assert len(emu.requests) <= requests_at_cancel + 10  # only those already on the wire
        assert emu.in_flight == 0
        assert not root.closed


async def test_bad_arguments_fail_before_any_request(emu: Emulator) -> None:
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:
        with pytest.raises(ValueError):
            async for _ in zdactivity.fan_out(views(emu, root), concurrency=0):
                pass
        with pytest.raises(ValueError):
            async for _ in zdactivity.fan_out(views(emu, root), page_size=500):
                pass
        assert [x async for x in zdactivity.fan_out({})] == []
    assert emu.requests == []


async def _peak_memory(agents: int) -> int:
    async with (
        Emulator(seed=agents, agents=agents, activities_per_agent=120, rate_limit=100_000) as emu,
        zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root,
    ):
        clients = views(emu, root)
        # Warm up: the in-process emulator caches each activity's JSON when first served;
        # only the client's memory should be measured.
        async for _ in zdactivity.fan_out(clients, concurrency=4):
            pass
        gc.collect()
        tracemalloc.start()
        tracemalloc.reset_peak()
        seen = 0
        async for _key, activity in zdactivity.fan_out(clients, concurrency=4):
            seen += activity.actor is not None
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert seen > agents * 100
        return peak


async def test_memory_stays_bounded_as_the_fan_out_grows() -> None:
    small = await _peak_memory(10)
    large = await _peak_memory(60)  # six times the agents and activities
    print(f"\nfan-out peak traced memory: 10 agents {small:,} B, 60 agents {large:,} B")
    assert large < small * 1.5


# -- the specification, continued: backpressure, cancellation, ordering, partial failure ------


def list_requests(emu: Emulator) -> int:
    """Page requests that reached the emulator (answered or still being answered)."""
    return sum(r.path.startswith("/api/v2/activities") for r in emu.requests) + emu.in_flight


async def test_a_stalled_consumer_holds_at_most_two_pages_per_worker(emu: Emulator) -> None:
    """The queue has ``concurrency`` slots and each worker holds one more page while it waits:
    a consumer that stops reading stops the fetching at ``2 * concurrency + 1`` pages."""
    concurrency = 4
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:
        stream = zdactivity.fan_out(views(emu, root), page_size=5, concurrency=concurrency)
        async with contextlib.aclosing(stream):
            await anext(stream)  # the consumer takes one activity, then does something else
            await asyncio.sleep(0.3)
            fetched = list_requests(emu)
            await asyncio.sleep(0.3)
            assert list_requests(emu) == fetched  # stopped, not just slowed down
            assert concurrency + 1 <= fetched <= 2 * concurrency + 1
            # Reading on releases the workers again.
            for _ in range(100):
                await anext(stream)
            assert list_requests(emu) > fetched


async def test_leaving_early_leaves_no_task_and_sends_nothing_more(emu: Emulator) -> None:
    emu.latency = 0.02
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:
        stream = zdactivity.fan_out(views(emu, root), page_size=5, concurrency=10)
        async with contextlib.aclosing(stream):
            async for _ in stream:
                if emu.in_flight >= 5:  # requests on the wire right now
                    break
        assert client_tasks() == []  # every worker is gone once aclose returns
        sent = list_requests(emu)
        await asyncio.sleep(0.1)
        assert list_requests(emu) == sent  # and none of them sends another request
        # The shared client is unharmed: the next call works.
        assert (await root.activities.count()).value > 0


async def test_with_one_worker_agents_come_one_after_another_in_the_given_order(
    emu: Emulator,
) -> None:
    agents = emu.agents[:5]
    async with zdactivity.Client(base_url=emu.url, auth=token(agents[0])) as root:
        clients = {a.user_id: root.with_auth(token(a)) for a in reversed(agents)}
        got = [
            (key, activity.id)
            async for key, activity in zdactivity.fan_out(clients, page_size=7, concurrency=1)
        ]
    want = [(a.user_id, act["id"]) for a in reversed(agents) for act in emu.activities_for(a)]
    assert got == want


async def test_with_many_workers_agents_interleave_each_in_its_own_order(emu: Emulator) -> None:
    emu.latency = 0.005  # pages of different agents arrive while others are being read
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:
        got = [
            (key, activity.id)
            async for key, activity in zdactivity.fan_out(
                views(emu, root), page_size=5, concurrency=6
            )
        ]
    keys = [key for key, _ in got]
    finished_before_next_started = all(
        keys.index(b) > len(keys) - 1 - keys[::-1].index(a)
        for a, b in zip(dict.fromkeys(keys), list(dict.fromkeys(keys))[1:], strict=False)
    )
    assert not finished_before_next_started  # interleaved, not one agent after another
    for agent in emu.agents:
        mine = [activity_id for key, activity_id in got if key == agent.user_id]
        assert mine == [a["id"] for a in emu.activities_for(agent)]


async def test_an_agent_failing_mid_stream_keeps_what_it_delivered_and_stops(
    emu: Emulator,
) -> None:
    victim = emu.agents[3]
    async with zdactivity.Client(
        base_url=emu.url, auth=token(emu.agents[0]), retry=zdactivity.RetryPolicy.no_retry()
    ) as root:
        got: dict[int, list[int]] = defaultdict(list)
        with pytest.raises(ExceptionGroup) as info:
            async for key, activity in zdactivity.fan_out(
                views(emu, root), page_size=5, concurrency=4
            ):
                if key == victim.user_id and not got[key]:
                    emu.inject(Fault.status(403), agent=victim)  # its next page is refused
                got[key].append(activity.id)
    [failure] = info.value.exceptions
    assert isinstance(failure, zdactivity.AgentError) and failure.key == victim.user_id
    assert isinstance(failure.error, zdactivity.PermissionDeniedError)
    want = [a["id"] for a in emu.activities_for(victim)]
    delivered = got[victim.user_id]
    assert 0 < len(delivered) < len(want) and delivered == want[: len(delivered)]  # a prefix
    for agent in emu.agents:
        if agent is not victim:
            assert got[agent.user_id] == [a["id"] for a in emu.activities_for(agent)]


async def test_since_and_page_size_apply_to_every_agent(emu: Emulator) -> None:
    since = datetime.fromisoformat(emu.activities_for(emu.agents[0])[20]["created_at"])
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:
        got: dict[int, list[int]] = defaultdict(list)
        async for key, activity in zdactivity.fan_out(
            views(emu, root), since=since, page_size=4, concurrency=5
        ):
            assert activity.created_at >= since
            got[key].append(activity.id)
    for agent in emu.agents:
        want = [
            a["id"]
            for a in emu.activities_for(agent)
            if datetime.fromisoformat(a["created_at"]) >= since
        ]
        assert got[agent.user_id] == want
    sizes = {r.query.get("page[size]") for r in emu.requests if r.path.startswith("/api/v2/act")}
    assert sizes == {"4"}

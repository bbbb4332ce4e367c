"""fan_out over many agents of one account, against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tracemalloc
from collections import defaultdict

import pytest
from conftest import token

import zdactivity
from zdactivity.testing import Emulator

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
        await asyncio.sleep(0.2)
        assert emu.in_flight > 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        requests_at_cancel = len(emu.requests)
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

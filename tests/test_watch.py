"""client.activities.watch(): incremental polling with dedupe, late arrivals and checkpoints."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta

import pytest
from conftest import NOW, token
from fakes import FakeTime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zdactivity
from zdactivity.checkpoint import Checkpoint, MemoryCheckpointStore
from zdactivity.testing import Agent, Emulator

pytestmark = pytest.mark.emulator(seed=31, agents=2, activities_per_agent=25)


def oldest_first(emu: Emulator, agent: Agent) -> list[int]:
    return [a["id"] for a in reversed(emu.activities_for(agent))]


async def take(watcher: zdactivity.ActivityWatcher, n: int) -> list[int]:
    return [(await watcher.__anext__()).id for _ in range(n)]


async def test_first_poll_delivers_the_window_oldest_first_then_only_new(
    emu: Emulator, client: zdactivity.Client
) -> None:
    agent = emu.agents[0]
    t = FakeTime()
    watcher = client.activities.watch(interval=30, sleep=t.sleep)
    backlog = oldest_first(emu, agent)
    assert await take(watcher, len(backlog)) == backlog
    assert t.slept == [] and watcher.polls == 1
    added = [emu.add_activity(agent, created_at=NOW + timedelta(seconds=i))["id"] for i in range(3)]
    assert await take(watcher, 3) == added
    assert len(t.slept) == 1 and 24 <= t.slept[0] <= 36  # one jittered interval
    assert watcher.polls == 2
    # The boundary activity (the bound is inclusive) came back in that poll, and was dropped.
    assert emu.requests[-1].query["since"] <= f"{NOW:%Y-%m-%dT%H:%M:%SZ}"


async def test_late_activities_inside_the_lookback_are_delivered_once(
    emu: Emulator, client: zdactivity.Client
) -> None:
    agent = emu.agents[0]
    t = FakeTime()
    watcher = client.activities.watch(since=NOW, lookback=timedelta(minutes=5), sleep=t.sleep)
    first = emu.add_activity(agent, created_at=NOW + timedelta(minutes=10))
    assert await take(watcher, 1) == [first["id"]]
    late = emu.add_activity(agent, created_at=NOW + timedelta(minutes=7))  # shows up late
    newer = emu.add_activity(agent, created_at=NOW + timedelta(minutes=11))
    assert await take(watcher, 2) == [late["id"], newer["id"]]
    emu.add_activity(agent, created_at=NOW + timedelta(minutes=1))  # beyond the lookback
    nxt = emu.add_activity(agent, created_at=NOW + timedelta(minutes=12))
    assert await take(watcher, 1) == [nxt["id"]]


async def test_checkpoint_is_committed_only_after_the_activity_is_taken(
    emu: Emulator, client: zdactivity.Client
) -> None:
    store = MemoryCheckpointStore()
    watcher = client.activities.watch(checkpoint=store, key="agent-0", sleep=FakeTime().sleep)
    first = await watcher.__anext__()
    assert store.snapshot() == {}  # taken, not yet handled
    second = await watcher.__anext__()  # asking for the next one says the first was handled
    saved = store.snapshot()["agent-0"]
    assert first.id in saved.recent_ids and second.id not in saved.recent_ids
    # The mark moves when the poll has read its listing to the end; until then the checkpoint
    # says where the poll stands.
    assert saved.high_water is None and saved.position is not None
    await watcher.aclose()
    assert second.id in store.snapshot()["agent-0"].recent_ids


async def test_a_restart_resumes_where_it_left_off(emu: Emulator) -> None:
    agent = emu.agents[0]
    backlog = oldest_first(emu, agent)
    store = MemoryCheckpointStore()
    async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
        watcher = zd.activities.watch(checkpoint=store, key="a", sleep=FakeTime().sleep)
        got = await take(watcher, 10)
        # The process dies while handling the 10th: it was never committed.
    assert got == backlog[:10]
    async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
        watcher = zd.activities.watch(checkpoint=store, key="a", sleep=FakeTime().sleep)
        rest = await take(watcher, len(backlog) - 9)
    assert rest == backlog[9:]  # the 10th again (at least once), then the rest, nothing else


async def test_many_polls_with_random_arrivals_never_lose_or_duplicate(emu: Emulator) -> None:
    agent = emu.agents[1]
    rng = random.Random(5)
    store = MemoryCheckpointStore()
    delivered: list[int] = []
    expected = set(oldest_first(emu, agent))
    async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
        for restart in range(4):
            watcher = zd.activities.watch(
                checkpoint=store, key="b", lookback=timedelta(minutes=60), sleep=FakeTime().sleep
            )
            for _ in range(6):
                # Arrivals up to 40 minutes late: within the lookback, so none may be missed.
                for _ in range(rng.randint(0, 4)):
                    when = NOW + timedelta(minutes=restart * 60 + rng.randint(-20, 20))
                    expected.add(emu.add_activity(agent, created_at=when)["id"])
                async with asyncio.timeout(10):
                    while len(delivered) < len(expected):
                        delivered.append((await watcher.__anext__()).id)
            await watcher.aclose()
    assert len(delivered) == len(set(delivered))
    assert set(delivered) == expected


async def test_arguments_are_checked_before_any_request(
    emu: Emulator, client: zdactivity.Client
) -> None:
    with pytest.raises(ValueError, match="key"):
        client.activities.watch(checkpoint=MemoryCheckpointStore())
    with pytest.raises(ValueError):
        client.activities.watch(interval=0)
    with pytest.raises(ValueError):
        client.activities.watch(since=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        client.activities.watch(page_size=1000)
    assert emu.requests == []


async def test_jitter_spreads_the_polls(client: zdactivity.Client) -> None:
    watcher = client.activities.watch(interval=60, jitter=0.25)
    delays = [watcher.next_delay() for _ in range(200)]
    assert all(45 <= d <= 75 for d in delays)
    assert max(delays) - min(delays) > 20


async def test_cancelling_a_watcher_is_clean(emu: Emulator, client: zdactivity.Client) -> None:
    emu.latency = 0.2
    watcher = client.activities.watch()
    task = asyncio.create_task(watcher.__anext__())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.25)
    assert emu.in_flight == 0


def test_checkpoint_defaults() -> None:
    assert Checkpoint() == Checkpoint(None, frozenset())


# One step of a watcher's life: take some activities, add arrivals, crash, or stop cleanly.
_steps = st.one_of(
    st.tuples(st.just("take"), st.integers(1, 40)),
    st.tuples(
        st.just("add"),
        # Seconds from the wall clock: late arrivals inside the lookback, ties, the near future,
        # and now and then a day ahead.
        st.lists(st.sampled_from([-240, -60, -1, 0, 0, 5, 30, 86_400]), min_size=1, max_size=8),
    ),
    st.just(("crash", 0)),
    st.just(("stop", 0)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    backlog=st.integers(0, 60),
    page_size=st.integers(1, 25),
    steps=st.lists(_steps, max_size=12),
)
async def test_crashes_arrivals_and_page_sizes_never_lose_and_repeat_at_most_once_per_crash(
    backlog: int, page_size: int, steps: list[tuple[str, object]]
) -> None:
    wall = [NOW]
    async with Emulator(seed=9, agents=1, activities_per_agent=backlog, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        expected = {a["id"] for a in emu.activities_for(agent)}
        store = MemoryCheckpointStore()
        delivered: list[int] = []
        crashes = 0
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:

            def new_watcher() -> zdactivity.ActivityWatcher:
                return zd.activities.watch(
                    checkpoint=store,
                    key="k",
                    page_size=page_size,
                    max_pages_per_poll=3,
                    sleep=FakeTime().sleep,
                    clock=lambda: wall[0],
                )

            watcher = new_watcher()
            async with asyncio.timeout(20):
                for kind, arg in [*steps, ("stop", 0)]:
                    wall[0] += timedelta(seconds=30)
                    if kind == "take":
                        pending = len(expected - set(delivered))
                        for _ in range(min(int(arg), pending)):  # type: ignore[call-overload]
                            delivered.append((await watcher.__anext__()).id)
                    elif kind == "add":
                        for offset in arg:  # type: ignore[attr-defined]
                            when = wall[0] + timedelta(seconds=offset)
                            expected.add(emu.add_activity(agent, created_at=when)["id"])
                    elif kind == "crash":
                        crashes += 1  # no commit of the activity in hand
                        watcher = new_watcher()
                    else:
                        await watcher.aclose()
                        watcher = new_watcher()
                while not expected <= set(delivered):
                    delivered.append((await watcher.__anext__()).id)
                await watcher.aclose()
    assert set(delivered) == expected
    assert len(delivered) - len(set(delivered)) <= crashes

"""The fleet runner: many agents, durable checkpoints, kill and restart, isolation, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import NOW, token

import zdactivity
from zdactivity.checkpoint import (
    Checkpoint,
    CheckpointStore,
    MemoryCheckpointStore,
    SQLiteCheckpointStore,
)
from zdactivity.fleet import Fleet
from zdactivity.testing import Agent, Emulator


def expected_pairs(emu: Emulator, agents: list[Agent]) -> set[tuple[str, int]]:
    return {(str(a.user_id), act["id"]) for a in agents for act in emu.activities_for(a)}


def committed(emu: Emulator, checkpoint: Checkpoint, activity_id: int) -> bool:
    """Would a restart leave this activity out? Its id is kept, or it is behind the lookback."""
    if activity_id in checkpoint.recent_ids:
        return True
    created = next(
        datetime.fromisoformat(a["created_at"])
        for agent in emu.agents
        for a in emu.activities_for(agent)
        if a["id"] == activity_id
    )
    mark = checkpoint.high_water
    return mark is not None and created < mark - timedelta(minutes=10)


def make_fleet(
    emu: Emulator, store: CheckpointStore, agents: list[Agent], **kw: object
) -> tuple[Fleet, zdactivity.Client]:
    root = zdactivity.Client(base_url=emu.url, auth=token(agents[0]), max_connections=60)
    options: dict[str, object] = {"interval": 2.0, "jitter": 0.5, "grace": 10.0}
    options.update(kw)
    fleet = Fleet(store, **options)  # type: ignore[arg-type]
    for agent in agents:
        fleet.add(str(agent.user_id), root.with_auth(token(agent)))
    return fleet, root


async def run_until(fleet: Fleet, delivered: list[tuple[str, int]], done: object) -> None:
    """Run the fleet until ``done()``, then cancel it (with the fleet's grace period)."""

    async def handler(key: str, activity: zdactivity.Activity) -> None:
        delivered.append((key, activity.id))

    task = asyncio.create_task(fleet.run(handler))
    async with asyncio.timeout(60):
        while not done():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_500_agents_kill_and_restart_lose_nothing_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    """A worker killed the way workers are (cancelled / SIGTERM) mid-stream, then restarted."""
    async with Emulator(
        seed=41, agents=500, activities_per_agent=3, rate_limit=1_000_000, clock=lambda: NOW
    ) as emu:
        agents = emu.agents
        delivered: list[tuple[str, int]] = []
        rng = random.Random(41)
        appended = 0

        async def append_while_polling(count: int) -> None:
            nonlocal appended
            for _ in range(count):
                agent = rng.choice(agents)
                emu.add_activity(agent, created_at=NOW + timedelta(seconds=rng.randint(0, 600)))
                appended += 1
                await asyncio.sleep(0.002)

        # First life: stream, with activities appended meanwhile, then a kill.
        store = SQLiteCheckpointStore(tmp_path / "checkpoints.db")
        fleet, root = make_fleet(emu, store, agents)
        appender = asyncio.create_task(append_while_polling(300))
        await run_until(fleet, delivered, lambda: len(delivered) >= 1000)
        killed_at = len(delivered)
        await root.close()
        await store.close()

        # Second life: a new process would open the same file and resume.
        store = SQLiteCheckpointStore(tmp_path / "checkpoints.db")
        fleet, root = make_fleet(emu, store, agents)
        await appender
        want = expected_pairs(emu, agents)
        await run_until(fleet, delivered, lambda: len(set(delivered)) >= len(want))
        await root.close()
        await store.close()

    assert appended == 300
    assert 1000 <= killed_at < len(want)
    duplicates = [pair for pair, n in Counter(delivered).items() if n > 1]
    assert duplicates == []
    assert set(delivered) == want


async def test_a_failing_agent_is_isolated_and_retried_with_backoff() -> None:
    async with Emulator(seed=42, agents=4, activities_per_agent=5, clock=lambda: NOW) as emu:
        store = MemoryCheckpointStore()
        fleet, root = make_fleet(emu, store, emu.agents, retry_delay=0.05, max_retry_delay=0.2)
        fleet.add("bad", root.with_auth(zdactivity.APIToken(emu.agents[0].email, "wrong")))
        delivered: list[tuple[str, int]] = []
        want = expected_pairs(emu, emu.agents)
        await run_until(
            fleet,
            delivered,
            lambda: set(delivered) >= want and fleet.status()["bad"].failures >= 3,
        )
        await root.close()
    bad = fleet.status()["bad"]
    assert isinstance(bad.last_error, zdactivity.AuthenticationError)
    assert bad.delivered == 0 and bad.consecutive_failures >= 3
    assert set(delivered) == want and len(delivered) == len(want)


async def test_a_failing_handler_gets_the_activity_again() -> None:
    async with Emulator(seed=43, agents=2, activities_per_agent=4, clock=lambda: NOW) as emu:
        store = MemoryCheckpointStore()
        fleet, root = make_fleet(emu, store, emu.agents, retry_delay=0.01)
        target = emu.activities_for(emu.agents[1])[-1]["id"]  # the oldest: delivered first
        calls: list[int] = []

        async def flaky(key: str, activity: zdactivity.Activity) -> None:
            calls.append(activity.id)
            if activity.id == target and calls.count(target) == 1:
                raise RuntimeError("downstream unavailable")

        task = asyncio.create_task(fleet.run(flaky))
        want = {p[1] for p in expected_pairs(emu, emu.agents)}
        async with asyncio.timeout(20):
            while not want <= set(calls):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        fleet.stop()
        await task
        await root.close()
    assert calls.count(target) == 2  # at least once: redelivered after the handler failed
    assert sorted(calls) == sorted([*want, target])
    assert isinstance(fleet.status()[str(emu.agents[1].user_id)].last_error, RuntimeError)


async def test_stop_and_sigterm_shut_down_gracefully_with_everything_committed() -> None:
    async with Emulator(seed=44, agents=5, activities_per_agent=6, clock=lambda: NOW) as emu:
        store = MemoryCheckpointStore()
        fleet, root = make_fleet(emu, store, emu.agents, grace=5.0)
        handled: list[tuple[str, int]] = []

        async def handler(key: str, activity: zdactivity.Activity) -> None:
            await asyncio.sleep(0.001)
            handled.append((key, activity.id))

        fleet.install_signal_handlers()
        task = asyncio.create_task(fleet.run(handler))
        want = expected_pairs(emu, emu.agents)
        async with asyncio.timeout(20):
            while set(handled) != want:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 10)  # returns, not cancelled
        await fleet.close()
        assert root.closed
        saved = store.snapshot()
        for key, activity_id in handled:
            assert committed(emu, saved[key], activity_id)


async def test_stream_mode_commits_what_the_consumer_took() -> None:
    async with Emulator(seed=45, agents=3, activities_per_agent=4, clock=lambda: NOW) as emu:
        store = MemoryCheckpointStore()
        fleet, root = make_fleet(emu, store, emu.agents)
        want = expected_pairs(emu, emu.agents)
        got: list[tuple[str, int]] = []
        async with contextlib.aclosing(fleet.stream()) as stream:
            async for key, activity in stream:
                got.append((key, activity.id))
                if len(got) == len(want):
                    break
        await root.close()
        assert set(got) == want and len(got) == len(want)
        saved = store.snapshot()
        # Handled means "asked for the next one": the last one is not committed (at least once).
        *handled, (last_key, last_id) = got
        for key, activity_id in handled:
            assert committed(emu, saved[key], activity_id)
        assert not committed(emu, saved[last_key], last_id)


async def test_a_hard_kill_loses_nothing_and_redelivers_at_most_one_per_agent(
    tmp_path: Path,
) -> None:
    """No grace at all (like SIGKILL): at least once, so only in-progress work comes back."""
    async with Emulator(
        seed=46, agents=100, activities_per_agent=8, rate_limit=1_000_000, clock=lambda: NOW
    ) as emu:
        delivered: list[tuple[str, int]] = []
        want = expected_pairs(emu, emu.agents)
        store = SQLiteCheckpointStore(tmp_path / "hard.db")
        fleet, root = make_fleet(emu, store, emu.agents, grace=0.0)
        await run_until(fleet, delivered, lambda: len(delivered) >= len(want) // 2)
        await root.close()
        await store.close()
        store = SQLiteCheckpointStore(tmp_path / "hard.db")
        fleet, root = make_fleet(emu, store, emu.agents)
        await run_until(fleet, delivered, lambda: set(delivered) >= want)
        await root.close()
        await store.close()
    counts = Counter(delivered)
    assert set(counts) == want
    assert max(counts.values()) <= 2
    redelivered = Counter(key for (key, _), n in counts.items() if n > 1)
    assert all(n == 1 for n in redelivered.values())  # at most one per agent


async def test_one_fleet_watches_agents_of_two_accounts() -> None:
    async with (
        Emulator(seed=47, agents=3, activities_per_agent=5, clock=lambda: NOW) as acme,
        Emulator(seed=48, agents=2, activities_per_agent=5, clock=lambda: NOW) as globex,
    ):
        store = MemoryCheckpointStore()
        fleet = Fleet(store, interval=0.5)
        roots = []
        want: set[tuple[str, int]] = set()
        for name, emu in (("acme", acme), ("globex", globex)):
            root = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0]))
            roots.append(root)
            for agent in emu.agents:
                key = f"{name}/{agent.user_id}"
                fleet.add(key, root.with_auth(token(agent)))
                want |= {(key, a["id"]) for a in emu.activities_for(agent)}
        assert roots[0].rate_limiter is not roots[1].rate_limiter  # one limiter per account
        got: list[tuple[str, int]] = []
        await run_until(fleet, got, lambda: set(got) >= want)
        await fleet.close()
        assert all(root.closed for root in roots)
    assert sorted(got) == sorted(want)


def test_fleet_arguments() -> None:
    fleet = Fleet(MemoryCheckpointStore())
    client = zdactivity.Client(base_url="http://127.0.0.1:1", auth=zdactivity.OAuthToken("t"))
    fleet.add("a", client)
    with pytest.raises(ValueError):
        fleet.add("a", client)
    with pytest.raises(ValueError):
        fleet.add("", client)
    with pytest.raises(ValueError):
        Fleet(MemoryCheckpointStore(), max_concurrent_polls=0)
    assert fleet.keys == ["a"]


def test_fleet_options_are_one_watch_options() -> None:
    store = MemoryCheckpointStore()
    options = zdactivity.WatchOptions(interval=5, page_size=10)
    assert Fleet(store, options).options is options
    assert Fleet(store, options, page_size=20).options == options.replace(page_size=20)
    assert Fleet(store, interval=3).options == zdactivity.WatchOptions(interval=3)
    with pytest.raises(ValueError, match="page_size"):
        Fleet(store, page_size=0)  # refused at once, not when an agent starts


async def test_async_with_closes_each_accounts_session_once_and_not_the_store() -> None:
    async with Emulator(seed=49, agents=2, activities_per_agent=3, clock=lambda: NOW) as emu:
        store = MemoryCheckpointStore()
        root = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0]))
        view = root.with_auth(token(emu.agents[1]))
        assert view.owner is root and view.with_auth(token(emu.agents[0])).owner is root
        async with Fleet(store, interval=0.5) as fleet:
            fleet.add("a", root.with_auth(token(emu.agents[0])))
            fleet.add("b", view)
            got: list[tuple[str, int]] = []
            want = expected_pairs(emu, emu.agents)
            want = {(("a" if k == str(emu.agents[0].user_id) else "b"), i) for k, i in want}
            await run_until(fleet, got, lambda: set(got) >= want)
            assert not root.closed
        assert root.closed
        assert len(await store.keys()) == 2  # the store is still open: the caller's to close
        await fleet.close()  # idempotent
        await store.close()


async def test_leaving_a_stream_early_returns_at_once_even_with_a_long_grace() -> None:
    """The hand-overs in flight are released when the consumer leaves, not after the grace."""
    async with Emulator(seed=50, agents=4, activities_per_agent=5, clock=lambda: NOW) as emu:
        store = MemoryCheckpointStore()
        fleet, root = make_fleet(emu, store, emu.agents, grace=60.0)
        async with asyncio.timeout(10), contextlib.aclosing(fleet.stream()) as stream:
            async for _key, _activity in stream:
                break
        await root.close()
        assert sum(s.delivered for s in fleet.status().values()) <= len(emu.agents)

"""What zdactivity survives: a broken or hostile server, a wrong clock, a careless caller.

Each test is one case, named for what the client does about it, against a real server on
loopback (``hostile.HostileServer``, or the emulator where it can produce the fault). Read the
test names top to bottom as the list of what the long-running paths are proven to survive.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from fakes import FakeTime
from hostile import Handler, HostileServer, activity, json_response, page, respond

import zdactivity
from zdactivity.checkpoint import MemoryCheckpointStore
from zdactivity.testing import Agent, Emulator

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def token(agent: Agent) -> zdactivity.APIToken:
    return zdactivity.APIToken(agent.email, agent.api_token)


async def test_the_hostile_server_serves_a_page() -> None:
    async with HostileServer(respond(page([activity(1)]))) as server, server.client() as zd:
        listed = await zd.activities.list().collect()
    assert [a.id for a in listed] == [1]
    assert server.paths == ["/api/v2/activities?page%5Bsize%5D=100"]


# === Data loss: watch, tail and resumption ====================================================


async def test_a_future_dated_activity_does_not_hide_the_ones_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wall = [NOW]
    async with Emulator(seed=1, agents=1, activities_per_agent=0, clock=lambda: wall[0]) as emu:
        agent = emu.agents[0]
        store = MemoryCheckpointStore()
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
            watcher = zd.activities.watch(
                since=NOW - timedelta(minutes=1),
                checkpoint=store,
                key="a",
                sleep=FakeTime().sleep,
                clock=lambda: wall[0],
            )
            future = emu.add_activity(agent, created_at=NOW + timedelta(days=1))["id"]
            got = []
            async with asyncio.timeout(5), watcher:
                got.append((await watcher.__anext__()).id)
                later = []
                for i in range(5):
                    wall[0] = NOW + timedelta(minutes=1 + i)
                    later.append(emu.add_activity(agent, created_at=wall[0])["id"])
                    got.append((await watcher.__anext__()).id)
        assert got == [future, *later]
        saved = store.snapshot()["a"]
        assert saved.high_water is not None
        assert saved.high_water <= wall[0] + zdactivity.ActivityWatcher.max_skew
        assert "ahead of the local clock" in caplog.text


async def test_leaving_a_watch_with_break_commits_the_activity_taken_last() -> None:
    async with Emulator(seed=2, agents=1, activities_per_agent=12, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        store = MemoryCheckpointStore()
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
            first: list[int] = []
            async with zd.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
                async for a in s:
                    first.append(a.id)
                    if len(first) == 3:
                        break
            rest: list[int] = []
            async with zd.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
                async for a in s:
                    rest.append(a.id)
                    if len(first) + len(rest) == len(emu.activities_for(agent)):
                        break
    assert not set(first) & set(rest)  # the third did not come again
    assert sorted(first + rest) == sorted(a["id"] for a in emu.activities_for(agent))


async def test_an_exception_out_of_a_watch_leaves_the_activity_in_hand_uncommitted() -> None:
    async with Emulator(seed=3, agents=1, activities_per_agent=5, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        store = MemoryCheckpointStore()
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
            taken: list[int] = []
            with pytest.raises(RuntimeError):
                async with zd.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
                    async for a in s:
                        taken.append(a.id)
                        if len(taken) == 2:
                            raise RuntimeError("the handler failed")
            async with zd.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
                again = (await s.__anext__()).id
    assert again == taken[1]


async def test_a_crash_in_the_middle_of_a_many_page_poll_loses_nothing() -> None:
    """Pages come newest first: a restart must go on with the poll, not skip its older pages."""
    async with Emulator(seed=4, agents=1, activities_per_agent=250, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        want = {a["id"] for a in emu.activities_for(agent)}
        store = MemoryCheckpointStore()
        delivered: list[int] = []
        for life in range(4):
            async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
                watcher = zd.activities.watch(
                    checkpoint=store,
                    key="a",
                    page_size=20,
                    sleep=FakeTime().sleep,
                    clock=lambda: NOW,
                )
                async with asyncio.timeout(10):
                    for _ in range(70):
                        if set(delivered) == want:
                            break
                        delivered.append((await watcher.__anext__()).id)
            # The process dies here: no aclose, the last activity taken is not committed.
            if life == 0:
                assert store.snapshot()["a"].position is not None
    assert set(delivered) == want
    repeats = len(delivered) - len(set(delivered))
    assert repeats <= 3  # at most one per crash
    # The restarts went on from the saved page: the first listing was never read again whole.
    firsts = [r for r in emu.requests if "page[after]" not in r.query]
    assert len(firsts) == 1


def endless_pages(per_page: int = 100) -> Handler:
    """A server that always has more: fresh ids, each a minute older than the last."""
    served = [0]

    async def handler(_request: web.Request) -> web.StreamResponse:
        start = served[0]
        served[0] += per_page
        acts = [
            activity(start + i + 1, NOW - timedelta(minutes=start + i)) for i in range(per_page)
        ]
        return json_response(page(acts, has_more=True, after_cursor=f"c{served[0]}"))

    return handler


async def test_a_server_that_always_has_more_is_delivered_while_paging_in_bounded_memory() -> None:
    t = FakeTime()
    async with HostileServer(endless_pages()) as server, server.client() as zd:
        store = MemoryCheckpointStore()
        watcher = zd.activities.watch(
            checkpoint=store, key="a", max_pages_per_poll=5, sleep=t.sleep, clock=lambda: NOW
        )
        async with asyncio.timeout(10), watcher:
            await watcher.__anext__()
            assert len(server.requests) == 1  # delivered from the first page, not the last
            for _ in range(1_200):
                await watcher.__anext__()
        assert len(server.requests) == 13
        assert len(t.slept) == 2  # a pause after each 5 pages
        assert len(store.snapshot()["a"].recent_ids) <= 100 + 11  # one page and the lookback


async def test_commits_of_a_long_catch_up_stay_small() -> None:
    """Each commit writes the ids near the mark, not every id delivered so far."""
    sizes: list[int] = []

    class Recording(MemoryCheckpointStore):
        async def save(self, key: str, checkpoint: zdactivity.Checkpoint) -> None:
            sizes.append(len(checkpoint.recent_ids))
            await super().save(key, checkpoint)

    async with Emulator(seed=5, agents=1, activities_per_agent=2_000, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        n = len(emu.activities_for(agent))
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
            watcher = zd.activities.watch(checkpoint=Recording(), key="a", clock=lambda: NOW)
            async with watcher:
                for _ in range(n):
                    await watcher.__anext__()
    assert len(sizes) >= n - 1
    assert max(sizes) <= 100 + 50  # a page, and the activities within the 10-minute lookback


async def test_tail_commits_only_what_it_printed(tmp_path: Path) -> None:
    """The reader of ``tail`` goes away: the line that could not be written comes again."""
    now = datetime.now(UTC).replace(microsecond=0)
    async with Emulator(seed=6, agents=1, activities_per_agent=0) as emu:
        agent = emu.agents[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZENDESK_")}
        env.update(
            PYTHONPATH=str(ROOT),
            ZENDESK_URL=emu.url,
            ZENDESK_EMAIL=agent.email,
            ZENDESK_API_TOKEN=agent.api_token,
        )
        state = str(tmp_path / "tail.db")
        command = [sys.executable, "-m", "zdactivity", "tail", "--interval", "0.2"]
        command += ["--state", state]

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT
            )

        async def read_ids(proc: subprocess.Popen[bytes], n: int) -> list[int]:
            assert proc.stdout is not None
            lines = [await asyncio.to_thread(proc.stdout.readline) for _ in range(n)]
            return [json.loads(line)["id"] for line in lines]

        first = [
            emu.add_activity(agent, created_at=now - timedelta(seconds=30 - s))["id"]
            for s in range(3)
        ]
        proc = start()
        try:
            async with asyncio.timeout(20):
                assert await read_ids(proc, 3) == first
                assert proc.stdout is not None
                proc.stdout.close()  # the reader goes away (`| head -3`)
                later = [
                    emu.add_activity(agent, created_at=now - timedelta(seconds=10 - s))["id"]
                    for s in range(3)
                ]
                assert await asyncio.to_thread(proc.wait) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        proc = start()
        try:
            async with asyncio.timeout(20):
                assert await read_ids(proc, 3) == later  # the unprinted first one included
        finally:
            proc.kill()
            await asyncio.to_thread(proc.wait)
            if proc.stdout is not None:
                proc.stdout.close()


async def test_a_fleet_agent_that_cannot_commit_backs_off_instead_of_redelivering_fast() -> None:
    class Failing(MemoryCheckpointStore):
        async def save(self, key: str, checkpoint: zdactivity.Checkpoint) -> None:
            if key == "bad":
                raise zdactivity.CheckpointError("the disk is full")
            await super().save(key, checkpoint)

    async with Emulator(seed=7, agents=3, activities_per_agent=4, clock=lambda: NOW) as emu:
        root = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0]))
        fleet = zdactivity.Fleet(Failing(), interval=0.05, retry_delay=0.01, max_retry_delay=60)
        for agent in emu.agents[1:]:
            fleet.add(str(agent.user_id), root.with_auth(token(agent)))
        fleet.add("bad", root.with_auth(token(emu.agents[0])))
        calls: list[str] = []

        async def handler(key: str, _activity: zdactivity.Activity) -> None:
            calls.append(key)

        task = asyncio.create_task(fleet.run(handler))
        await asyncio.sleep(1.5)
        fleet.stop()
        await task
        await root.close()
    good = sum(len(emu.activities_for(a)) for a in emu.agents[1:])
    assert len(calls) - calls.count("bad") == good
    # 10 ms, 20 ms, 40 ms...: a handful of attempts in 1.5 s, not one every 10 ms.
    assert 3 <= calls.count("bad") <= 9
    status = fleet.status()["bad"]
    assert isinstance(status.last_error, zdactivity.CheckpointError)
    assert status.consecutive_failures == calls.count("bad")


# (end of data loss)


# === Hangs and account-wide stalls: rate limits, Retry-After, timeouts ========================


# (end of hangs)


# === Failures that are final, or escape the error tree ========================================


# (end of failures)


# === The command line =========================================================================


# (end of command line)


# === Security: credentials, hosts and shared caches ===========================================


# (end of security)

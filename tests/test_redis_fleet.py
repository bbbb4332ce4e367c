"""Workers that share a fleet on Redis: leases, fencing tokens and takeover, with real processes.

The emulator runs in the test's event loop with activities arriving all the time; the workers
(tests/redis_fleet_worker.py) are separate processes sharing one real ``redis-server``, so
SIGKILL and SIGSTOP are the real thing.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from conftest import start_script, wait_until
from redis_server import RedisServer

from zdactivity.checkpoint import Checkpoint
from zdactivity.errors import FencedOutError
from zdactivity.redis import RedisCheckpointStore, RedisCoordinator
from zdactivity.testing import Emulator

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "redis_fleet_worker.py"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LEASE = 2.0
HEARTBEAT = LEASE / 3
#: The documented takeover bound (lease + heartbeat), plus slack for a loaded 2-core machine.
TAKEOVER = LEASE + HEARTBEAT + 2.0


# --------------------------------------------------------------------------- the coordinator


async def test_membership_rendezvous_leases_and_fences(redis_server: RedisServer) -> None:
    r = aioredis.Redis.from_url(redis_server.url)
    keys = sorted(f"agent{i}" for i in range(12))
    a = RedisCoordinator(r, "g", worker_id="a", lease=1.0)
    b = RedisCoordinator(r, "g", worker_id="b", lease=1.0)
    try:
        assert (await a.tick(keys)).acquired == []  # the first heartbeat only joins
        await b.tick(keys)
        got_a = await a.tick(keys)
        got_b = await b.tick(keys)
        # Every agent owned by exactly one worker, the one rendezvous hashing names.
        owned = {o.key: "a" for o in got_a.acquired} | {o.key: "b" for o in got_b.acquired}
        assert sorted(owned) == keys
        assert all(a.owner_of(k) == w for k, w in owned.items())
        assert {o.fence for o in got_a.acquired + got_b.acquired} == {1}
        for key in keys:
            assert await r.ttl(a.lease_key(key)) >= 0  # every key expires
            assert await r.ttl(a.fence_key(key)) > 0
        assert await r.pttl(a.members_key) > 0
        assert all(k.startswith(b"zdactivity:{g}:") for k in await r.keys("*"))

        # b leaves gracefully: a takes its agents at its next heartbeat, with new fences.
        await b.leave()
        took = await a.tick(keys)
        assert sorted(o.key for o in took.acquired) == sorted(
            k for k, w in owned.items() if w == "b"
        )
        assert {o.fence for o in took.acquired} == {2}
        assert sorted(a.owned) == keys

        # b comes back: a hands over b's share (the fleet commits, then releases).
        await b.tick(keys)
        handing = await a.tick(keys)
        assert sorted(handing.handoff) == sorted(k for k in keys if a.owner_of(k) == "b")
        for key in handing.handoff:
            await a.release(key)
        took = await b.tick(keys)
        assert sorted(o.key for o in took.acquired) == sorted(handing.handoff)
        assert {o.fence for o in took.acquired} == {3}

        # b stops heartbeating: its leases and membership expire; a loses nothing, takes all.
        taken = []
        for _ in range(5):  # a keeps heartbeating for longer than the lease
            await asyncio.sleep(0.3)
            tick = await a.tick(keys)
            assert tick.lost == []
            taken += [o.key for o in tick.acquired]
        assert sorted(taken) == sorted(handing.handoff)
        assert sorted(a.owned) == keys
        # ... and b, back from its pause, finds its leases lost at once.
        lost = await b.tick(keys)
        assert sorted(o.key for o in lost.lost) == sorted(handing.handoff)
        assert all(o.lost and not o.valid() for o in lost.lost)
        assert b.owned == {}
    finally:
        await r.aclose()


async def test_a_zombies_stale_save_is_refused(redis_server: RedisServer) -> None:
    r = aioredis.Redis.from_url(redis_server.url)
    store = RedisCheckpointStore(r)
    old = RedisCoordinator(r, "g", worker_id="old", lease=0.5)
    new = RedisCoordinator(r, "g", worker_id="new", lease=0.5)
    try:
        await old.tick(["k"])
        (mine,) = (await old.tick(["k"])).acquired
        await store.claim("k", mine.fence)
        ahead = Checkpoint(high_water=datetime(2026, 1, 2, tzinfo=UTC))
        await store.save("k", ahead, fence=mine.fence)
        await asyncio.sleep(0.6)  # "old" pauses past its lease
        await new.tick(["k"])
        (theirs,) = (await new.tick(["k"])).acquired
        assert theirs.fence > mine.fence
        await store.claim("k", theirs.fence)
        behind = Checkpoint(high_water=datetime(2026, 1, 1, tzinfo=UTC))
        with pytest.raises(FencedOutError):
            await store.save("k", behind, fence=mine.fence)  # the zombie cannot move it back
        assert (await store.load("k")) == ahead
        assert not mine.valid()
    finally:
        await r.aclose()


# --------------------------------------------------------------------------- real processes


def lines(path: Path) -> list[tuple[str, int]]:
    """Every complete line a worker wrote (a partial last line is not a delivery yet)."""
    if not path.exists():
        return []
    text = path.read_text().split("\n")[:-1]
    return [(key, int(activity_id)) for key, activity_id in (line.split() for line in text)]


def owned_by(folder: Path, names: list[str]) -> dict[str, list[str]]:
    """Agent key -> the workers that say they own it (from their ``.owned`` files)."""
    owners: dict[str, list[str]] = {}
    for name in names:
        path = folder / f"{name}.owned"
        if path.exists():
            for line in path.read_text().splitlines():
                owners.setdefault(line.split()[0], []).append(name)
    return owners


async def test_three_workers_share_a_fleet_through_a_kill_and_a_pause(tmp_path: Path) -> None:
    n_agents = 30
    with RedisServer() as server:
        async with Emulator(
            seed=11, agents=n_agents, activities_per_agent=3, rate_limit=100_000
        ) as emu:
            await _run_fleet(emu, server, tmp_path)


async def test_output_committed_with_the_checkpoint_is_exactly_once(tmp_path: Path) -> None:
    """The same kill and pause, with the handler recording each activity in a Redis list only
    through ``fleet.writes``: 0 lost and 0 duplicates there, though handlers ran twice."""
    with RedisServer() as server:
        async with Emulator(seed=12, agents=30, activities_per_agent=3, rate_limit=100_000) as emu:
            await _run_fleet(emu, server, tmp_path, exact=True)


async def _run_fleet(
    emu: Emulator, server: RedisServer, folder: Path, *, exact: bool = False
) -> None:
    agents = {str(a.user_id): a for a in emu.agents}
    config = folder / "worker.json"
    config.write_text(
        json.dumps(
            {
                "url": emu.url,
                "redis": server.url,
                "group": "fleet",
                "lease": LEASE,
                "out": str(folder),
                "delay": 0.1,
                "exact": exact,
                "agents": {key: [a.email, a.api_token] for key, a in agents.items()},
            }
        )
    )
    workers: dict[str, asyncio.subprocess.Process] = {}

    async def start(name: str) -> None:
        workers[name] = await start_script(WORKER, str(config), name)

    def live() -> list[str]:
        for name, proc in workers.items():
            if proc.returncode is not None and name not in gone:
                raise AssertionError(f"worker {name} exited with {proc.returncode}")
        return [n for n in workers if n not in gone]

    def all_owned_once(names: list[str]) -> bool:
        owners = owned_by(folder, names)
        return sorted(owners) == sorted(agents) and all(len(w) == 1 for w in owners.values())

    def sharing() -> int:  # how many workers own agents
        return len({w for ws in owned_by(folder, live()).values() for w in ws})

    def want() -> set[tuple[str, int]]:
        return {(key, act["id"]) for key, a in agents.items() for act in emu.activities_for(a)}

    def delivered() -> list[tuple[str, int]]:
        return [d for name in workers for d in lines(folder / f"{name}.txt")]

    rng = random.Random(3)
    feeding = True

    async def feed() -> None:  # activities arriving all the time, for every agent
        while feeding:
            emu.add_activity(rng.choice(emu.agents), created_at=datetime.now(UTC))
            await asyncio.sleep(0.02)

    async def recorded() -> list[tuple[str, int]]:  # what the handlers wrote through the hook
        r = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:
            return [(k, int(i)) for k, i in (e.split() for e in await r.lrange("out", 0, -1))]
        finally:
            await r.aclose()

    gone: set[str] = set()
    feeder = asyncio.create_task(feed())
    try:
        for name in ("w0", "w1", "w2"):
            await start(name)
        # Every worker runs a share once all three have joined (a loaded machine starts some late).
        await wait_until(lambda: all_owned_once(live()) and sharing() == 3, within=30)
        counts = Counter(w for ws in owned_by(folder, live()).values() for w in ws)
        assert len(counts) == 3, counts  # every worker runs a share

        # 1. SIGKILL the worker that owns the most agents.
        victim = max(counts, key=lambda w: counts[w])
        crashed = set(k for k, ws in owned_by(folder, [victim]).items())
        await asyncio.sleep(0.5)
        workers[victim].send_signal(signal.SIGKILL)
        await workers[victim].wait()
        gone.add(victim)
        (folder / f"{victim}.owned").write_text("")  # its last word no longer counts
        killed_at = time.monotonic()
        await wait_until(lambda: all_owned_once(live()), within=TAKEOVER + 5)
        takeover_after_kill = time.monotonic() - killed_at
        assert takeover_after_kill <= TAKEOVER, takeover_after_kill

        # A new worker joins: the others hand it its share (committed first: no repeats).
        await start("w3")
        await wait_until(lambda: all_owned_once(live()) and sharing() == 3, within=15)

        # 2. SIGSTOP one worker for longer than its lease, then SIGCONT it.
        zombie = max(live(), key=lambda w: len(owned_by(folder, [w])))
        paused = set(owned_by(folder, [zombie]))
        # Pause it mid-handler (it writes the line, then works, then commits): its commit of
        # that activity comes after SIGCONT, with a stale fence.
        output = folder / f"{zombie}.txt"
        size = output.stat().st_size
        await wait_until(lambda: output.stat().st_size > size, within=10)
        workers[zombie].send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        others = [w for w in live() if w != zombie]
        await wait_until(lambda: all_owned_once(others), within=TAKEOVER + 5)
        takeover_after_pause = time.monotonic() - stopped_at
        assert takeover_after_pause <= TAKEOVER, takeover_after_pause
        await asyncio.sleep(max(0.0, LEASE * 1.5 - takeover_after_pause))
        workers[zombie].send_signal(signal.SIGCONT)
        # It finds its leases lost, rejoins, and gets a share again.
        await wait_until(lambda: all_owned_once(live()) and sharing() == 3, within=15)

        # Everything that arrived is delivered.
        feeding = False
        await feeder
        await wait_until(lambda: live() and set(delivered()) >= want(), within=20)
        if exact:  # and committed with the checkpoints
            async with asyncio.timeout(20):
                while not (live() and set(await recorded()) >= want()):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        for name in live():
            workers[name].send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            for name in live():
                assert await workers[name].wait() == 0, name
    finally:
        feeding = False
        feeder.cancel()
        for proc in workers.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                await proc.wait()

    got = delivered()
    assert set(got) == want()  # nothing lost, nothing invented
    repeats = Counter(key for (key, _), n in Counter(got).items() for _ in range(n - 1))
    # At most one repeat per agent per crash (or pause) of a worker that owned it; none
    # elsewhere (graceful handovers commit before they release).
    bound = Counter(crashed) + Counter(paused)
    assert all(n <= bound[key] for key, n in repeats.items()), (repeats, bound)

    # The zombie's stale saves were refused, never applied: every agent's stored fence is the
    # newest ownership's, and the zombie counted its refusals.
    summary = json.loads((folder / f"{zombie}.json").read_text())
    r = aioredis.Redis.from_url(server.url)
    try:
        store = RedisCheckpointStore(r)
        coordinator = RedisCoordinator(r, "fleet")
        for key in agents:
            assert await store.fence(key) == int(await r.get(coordinator.fence_key(key)))
    finally:
        await r.aclose()
    assert summary["refused"] >= 1  # at least the save of the activity it was handling
    output = ""
    if exact:
        out = await recorded()
        duplicates = len(out) - len(set(out))
        assert set(out) == want() and duplicates == 0  # exactly once, though handlers repeated
        output = f"; output {len(out)} entries, {duplicates} duplicates"
    print(
        f"\ntakeover after SIGKILL {takeover_after_kill:.2f}s, after SIGSTOP"
        f" {takeover_after_pause:.2f}s (bound {LEASE + HEARTBEAT:.2f}s); repeats"
        f" {sum(repeats.values())} over {len(crashed)} crashed + {len(paused)} paused agents;"
        f" the zombie's refused saves {summary['refused']}, claims {summary['refused_claims']}"
        f"{output}"
    )


async def test_fleet_tells_a_handler_its_ownership(redis_server: RedisServer) -> None:
    from zdactivity.fleet import Fleet

    r = aioredis.Redis.from_url(redis_server.url)
    coordinator = RedisCoordinator(r, "g", worker_id="solo", lease=1.0)
    fleet = Fleet(RedisCheckpointStore(r), coordinator=coordinator)
    try:
        assert fleet.ownership("k") is None
        await coordinator.tick(["k"])
        await coordinator.tick(["k"])
        ownership = fleet.ownership("k")
        assert ownership is not None and ownership.fence == 1 and ownership.valid()
        assert Fleet(RedisCheckpointStore(r)).ownership("k") is None
    finally:
        await r.aclose()

"""Consumer writes committed with the checkpoint (``RedisWrites``, ``Fleet.writes``).

The staging object is pure and tested without Redis; the fenced script against a real
redis-server: writes and checkpoint are stored together or refused together, a write that cannot
run writes nothing, a retried save runs its writes once. The fleet's hook is tested in-process
here and with real worker processes (SIGKILL, SIGSTOP) in tests/test_redis_fleet.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from conftest import NOW, token
from hypothesis import given
from hypothesis import strategies as st
from redis_server import RedisServer

import zdactivity
from zdactivity.checkpoint import (
    Checkpoint,
    CheckpointError,
)
from zdactivity.errors import FencedOutError
from zdactivity.fleet import Fleet
from zdactivity.redis import RedisCheckpointStore, RedisWrites
from zdactivity.redis._checkpoint import CHECKPOINT_SAVE_LUA
from zdactivity.testing import Emulator

T0 = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)


def cp(seconds: float, *ids: int) -> Checkpoint:
    return Checkpoint(high_water=T0 + timedelta(seconds=seconds), recent_ids=frozenset(ids))


@pytest.fixture
async def r(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def store(r: aioredis.Redis) -> AsyncIterator[RedisCheckpointStore]:
    async with RedisCheckpointStore(r) as s:
        yield s


# --------------------------------------------------------------------------- staging (pure)


def test_staging_chains_and_encodes_keys_once() -> None:
    w = RedisWrites().rpush("inbox", 7, "x").hincrby("counts", "a", 2).rpush("inbox", b"\x00")
    w.set("last", 1.5).xadd("stream", {"id": 7}).sadd("seen", 7).zadd("z", {"m": 2})
    w.hset("h", {"f": "v"}).incrby("n", -3)
    assert len(w) == 9 and repr(w) == "<RedisWrites 9 commands>"
    assert w.commands[0] == ("RPUSH", "inbox", ("7", "x"))
    keys, argv = w.encode(first_key_index=2)
    assert keys == ["inbox", "counts", "last", "stream", "seen", "z", "h", "n"]
    assert argv[:9] == ["9", "RPUSH", "2", "2", "7", "x", "HINCRBY", "3", "2"]
    assert argv[11:15] == ["RPUSH", "2", "1", b"\x00"]  # the same key, the same index
    assert ["XADD", "5", "3", "*", "id", "7"] in [argv[i : i + 6] for i in range(len(argv))]
    assert ["ZADD", "7", "2", "2.0", "m"] in [argv[i : i + 5] for i in range(len(argv))]
    w.clear()
    assert len(w) == 0 and not w and w.encode(2) == ([], ["0"])


@pytest.mark.parametrize(
    ("stage", "error"),
    [
        (lambda w: w.rpush("k"), ValueError),  # nothing to push
        (lambda w: w.rpush("", 1), ValueError),
        (lambda w: w.rpush(b"k", 1), TypeError),
        (lambda w: w.rpush("k", True), TypeError),
        (lambda w: w.rpush("k", None), TypeError),
        (lambda w: w.set("k", float("nan")), ValueError),
        (lambda w: w.set("k", "\ud800"), ValueError),
        (lambda w: w.incrby("k", 1.0), TypeError),
        (lambda w: w.incrby("k", 10**15 + 1), ValueError),
        (lambda w: w.hset("k", {}), ValueError),
        (lambda w: w.zadd("k", {"m": "1"}), TypeError),
        (lambda w: w.xadd("k", {}), ValueError),
        (lambda w: w.rpush("k", 1).sadd("k", 1), ValueError),  # one type per key
        (lambda w: w.set("k", 1).incrby("k"), ValueError),  # set and incremented
        (lambda w: w.hincrby("h", "f").hset("h", {"f": 1}), ValueError),
        (lambda w: w.rpush("k", *range(1001)), ValueError),
        (lambda w: [w.incrby("k") for _ in range(1001)], ValueError),
        (lambda w: w.rpush("zdactivity:cp:{a}", 1), ValueError),  # the checkpoint's own key
    ],
)
def test_staging_refuses_what_could_fail_half_way(stage: object, error: type) -> None:
    w = RedisWrites("zdactivity:cp:{a}")
    with pytest.raises(error):
        stage(w)  # type: ignore[operator]


def test_fields_of_one_hash_may_be_set_and_incremented_apart() -> None:
    w = RedisWrites().hset("h", {"name": "x"}).hincrby("h", "count")
    assert len(w) == 2


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(-(10**15), 10**15)), max_size=30))
def test_increments_encode_in_order(incs: list[tuple[str, int]]) -> None:
    w = RedisWrites()
    for name, amount in incs:
        w.incrby(name, amount)
    keys, argv = w.encode(first_key_index=2)
    assert sorted(keys) == sorted({n for n, _ in incs})
    decoded = [(keys[int(argv[2 + 4 * i]) - 2], int(argv[4 + 4 * i])) for i in range(len(incs))]
    assert decoded == incs


# --------------------------------------------------------------------------- the fenced script


async def test_writes_are_stored_with_the_checkpoint(
    store: RedisCheckpointStore, r: aioredis.Redis
) -> None:
    await store.claim("a", 3)
    writes = store.writes("a").rpush("inbox", 1, 2).hincrby("n", "a", 2).xadd("s", {"id": 1})
    await store.save("a", cp(1, 1, 2), fence=3, writes=writes)
    assert await store.load("a") == cp(1, 1, 2)
    assert await r.lrange("inbox", 0, -1) == ["1", "2"]
    assert await r.hget("n", "a") == "2"
    assert [fields for _id, fields in await r.xrange("s")] == [{"id": "1"}]
    # No writes (or none staged): a plain save.
    await store.save("a", cp(2, 3), fence=3, writes=store.writes("a"))
    await store.save("a", cp(3, 4), fence=3)
    assert await r.lrange("inbox", 0, -1) == ["1", "2"] and await store.load("a") == cp(3, 4)
    with pytest.raises(TypeError):
        await store.save("a", cp(4), fence=3, writes=[("RPUSH", "inbox", "x")])  # type: ignore[arg-type]


async def test_a_stale_fence_refuses_the_writes_with_the_checkpoint(
    store: RedisCheckpointStore, r: aioredis.Redis
) -> None:
    await store.claim("a", 1)
    await store.save("a", cp(1, 1), fence=1, writes=store.writes("a").rpush("inbox", 1))
    await store.claim("a", 2)  # a new owner
    zombie = store.writes("a").rpush("inbox", 2).incrby("total", 1).set("last", 2)
    with pytest.raises(FencedOutError):
        await store.save("a", cp(2, 2), fence=1, writes=zombie)
    with pytest.raises(FencedOutError):  # an unfenced writer on a fenced key, likewise
        await store.save("a", cp(2, 2), writes=zombie)
    assert store.refused == 2
    assert await r.lrange("inbox", 0, -1) == ["1"]
    assert await r.exists("total", "last") == 0
    assert await store.load("a") == cp(1, 1) and await store.fence("a") == 2
    await store.save("a", cp(2, 2), fence=2, writes=store.writes("a").rpush("inbox", 2))
    assert await r.lrange("inbox", 0, -1) == ["1", "2"]


@pytest.mark.parametrize(
    ("setup", "stage", "message"),
    [
        (("hset", "out", {"f": "v"}), lambda w: w.rpush("out", 1), "RPUSH on a hash key"),
        (("rpush", "out", "x"), lambda w: w.hset("out", {"f": 1}), "HSET on a list key"),
        (("set", "out", "12a"), lambda w: w.incrby("out"), "not an integer"),
        (("set", "out", "0012"), lambda w: w.incrby("out"), "not an integer"),
        (("set", "out", "1" * 19), lambda w: w.incrby("out"), "not an integer"),
        (("hset", "out", {"f": "x"}), lambda w: w.hincrby("out", "f"), "not an integer"),
        (("rpush", "out", "x"), lambda w: w.xadd("out", {"f": 1}), "XADD on a list key"),
    ],
)
async def test_a_write_that_cannot_run_writes_nothing(
    store: RedisCheckpointStore,
    r: aioredis.Redis,
    setup: tuple[str, str, object],
    stage: object,
    message: str,
) -> None:
    method, name, value = setup
    await (r.hset(name, mapping=value) if method == "hset" else getattr(r, method)(name, value))  # type: ignore[arg-type]
    await store.save("a", cp(1), fence=1)
    before = await r.dump(name)
    writes = store.writes("a").rpush("first", 1)  # staged before the failing one: not run
    stage(writes)  # type: ignore[operator]
    with pytest.raises(CheckpointError, match=message) as caught:
        await store.save("a", cp(2, 9), fence=1, writes=writes)
    assert "nothing was written" in str(caught.value)
    assert await r.exists("first") == 0 and await r.dump(name) == before
    assert await store.load("a") == cp(1)


async def test_every_command_runs(store: RedisCheckpointStore, r: aioredis.Redis) -> None:
    scores = [0.0, -0.0, 1.5, -2.25, 1e300, -1e-300, 5e-324, 2**53 + 1.0]
    writes = store.writes("a").set("s", b"\xff\x00").sadd("set", 1, "b").incrby("n", 10**15)
    writes.zadd("z", {f"m{i}": x for i, x in enumerate(scores)}).hset("h", {"f": 1.25})
    await store.save("a", cp(1), writes=writes.xadd("x", {"a": 1, "b": "two"}))
    raw = aioredis.Redis.from_url(store_url(r))
    try:
        assert await raw.get("s") == b"\xff\x00"
    finally:
        await raw.aclose()
    assert await r.smembers("set") == {"1", "b"} and await r.get("n") == str(10**15)
    assert [s for _m, s in await r.zrange("z", 0, -1, withscores=True)] == sorted(scores)
    assert await r.hget("h", "f") == "1.25"
    assert [f for _id, f in await r.xrange("x")] == [{"a": "1", "b": "two"}]


def store_url(r: aioredis.Redis) -> str:
    kwargs = r.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


async def test_increments_on_integers_run(store: RedisCheckpointStore, r: aioredis.Redis) -> None:
    await r.set("n", "-5")
    await r.hset("h", "f", "0")
    await store.save("a", cp(1), writes=store.writes("a").incrby("n", 7).hincrby("h", "f", -2))
    assert await r.get("n") == "2" and await r.hget("h", "f") == "-2"


async def test_the_script_refuses_commands_outside_the_whitelist(
    store: RedisCheckpointStore, r: aioredis.Redis
) -> None:
    """Defence in depth: even a hand-made call cannot make the script run another command."""
    rkey = store.redis_key("a")
    base = ["1", "[]", "0", "", "0", "", "id1"]
    for argv, keys in [
        (["1", "DEL", "2", "0"], [rkey, "victim"]),
        (["1", "FLUSHALL", "2", "0"], [rkey, "victim"]),
        (["1", "RPUSH", "1", "1", "x"], [rkey]),  # the checkpoint's own key
        (["1", "RPUSH", "3", "1", "x"], [rkey, "victim"]),  # no such key
        (["2", "SET", "2", "1", "x", "RPUSH", "2", "1", "x"], [rkey, "victim"]),  # two types
        (["1", "SET", "2", "0"], [rkey, "victim"]),  # no value
        (["1", "SET", "2", "2", "x", "NX"], [rkey, "victim"]),  # options
        (["1", "INCRBY", "3", "1", "1.5"], [rkey, "victim", "n"]),
        (["1", "HSET", "3", "1", "f"], [rkey, "victim", "h"]),
        (["1", "XADD", "3", "3", "0-1", "f", "v"], [rkey, "victim", "s"]),  # an explicit id
        (["1", "ZADD", "3", "2", "nan", "m"], [rkey, "victim", "z"]),
        (["1", "ZADD", "3", "3", "XX", "1", "m"], [rkey, "victim", "z"]),
        (["2", "RPUSH", "3", "1", "x", "SET", "2", "1"], [rkey, "victim", "l"]),  # arguments
    ]:
        await r.set("victim", "kept")
        with pytest.raises(Exception, match="ZDACTIVITY writes"):
            await r.eval(CHECKPOINT_SAVE_LUA, len(keys), *keys, *base, *argv)
        assert await r.get("victim") == "kept" and await r.exists(rkey) == 0
        assert await r.exists("n", "h", "s", "z", "l") == 0


async def test_a_retried_save_runs_its_writes_once(r: aioredis.Redis) -> None:
    """The writes' id: a save retried after a dropped connection is not applied twice."""
    store = RedisCheckpointStore(r)
    rkey = store.redis_key("a")
    argv = ["1", "[5]", "0", "", "0", "", "same-id", "1", "RPUSH", "2", "1", "5"]
    assert await r.eval(CHECKPOINT_SAVE_LUA, 2, rkey, "inbox", *argv) == [1]
    assert await r.eval(CHECKPOINT_SAVE_LUA, 2, rkey, "inbox", *argv) == [1]
    assert await r.lrange("inbox", 0, -1) == ["5"]
    await store.save("a", cp(1), fence=1, writes=store.writes("a").rpush("inbox", 6))
    assert await r.lrange("inbox", 0, -1) == ["5", "6"]


# --------------------------------------------------------------------------- the fleet's hook


async def test_fleet_writes_are_exactly_once_through_a_failing_handler(
    redis_server: RedisServer,
) -> None:
    """A handler that staged writes and then failed leaves nothing: its activity comes again
    and is staged again; the output holds each activity once."""
    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    async with Emulator(seed=71, agents=3, activities_per_agent=5, clock=lambda: NOW) as emu:
        store = RedisCheckpointStore(r)
        root = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0]))
        fleet = Fleet(store, interval=0.05, jitter=0.0, retry_delay=0.01)
        for agent in emu.agents:
            fleet.add(str(agent.user_id), root.with_auth(token(agent)))
        want = {f"{a.user_id} {act['id']}" for a in emu.agents for act in emu.activities_for(a)}
        calls: list[int] = []
        crossed: list[str] = []
        keys = fleet.keys

        async def handler(key: str, activity: zdactivity.Activity) -> None:
            calls.append(activity.id)
            other = keys[(keys.index(key) + 1) % len(keys)]
            try:
                fleet.writes(other)  # only its own agent's: never another activity's commit
            except RuntimeError as exc:
                crossed.append(str(exc))
            fleet.writes(key).rpush("out", f"{key} {activity.id}").hincrby("count", key, 1)
            if calls.count(activity.id) == 1 and activity.id % 2:
                raise RuntimeError("downstream failed after staging")

        with pytest.raises(RuntimeError, match="while it runs"):
            fleet.writes(str(emu.agents[0].user_id))
        task = asyncio.create_task(fleet.run(handler))
        async with asyncio.timeout(30):
            while await r.llen("out") < len(want):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        fleet.stop()
        await task
        await root.close()
    out = await r.lrange("out", 0, -1)
    counts = await r.hgetall("count")
    await r.aclose()
    assert len(crossed) == len(calls) and "cannot stage writes" in crossed[0]
    assert len(calls) > len(want)  # handlers ran more than once...
    assert sorted(out) == sorted(want)  # ...the output holds each activity once
    assert sum(int(n) for n in counts.values()) == len(want)

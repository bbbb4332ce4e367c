"""RedisCheckpointStore against a real redis-server: round trips, fenced saves, corrupt data, an
unreachable server, durability through a SIGKILL of redis-server with AOF, and a watcher on it."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from conftest import token, wait_until
from fakes import FakeTime
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis_server import RedisServer

import zdactivity
from zdactivity.checkpoint import Checkpoint, CheckpointError, CheckpointStore
from zdactivity.errors import FencedOutError
from zdactivity.redis import RedisCheckpointStore
from zdactivity.testing import Emulator

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=UTC)
BIG = 2**63 - 1


def cp(seconds: float | None = 0, *ids: int, position: str | None = None) -> Checkpoint:
    hw = None if seconds is None else T0 + timedelta(seconds=seconds)
    return Checkpoint(high_water=hw, recent_ids=frozenset(ids), position=position)


def client_for(server: RedisServer, **kwargs: Any) -> aioredis.Redis:
    return aioredis.Redis.from_url(server.url, **kwargs)


@pytest.fixture(params=[False, True], ids=["bytes", "decoded"])
async def r(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[aioredis.Redis]:
    client = client_for(redis_server, decode_responses=request.param)
    yield client
    await client.aclose()


@pytest.fixture
async def store(r: aioredis.Redis) -> AsyncIterator[RedisCheckpointStore]:
    async with RedisCheckpointStore(r) as s:
        yield s


# --------------------------------------------------------------------------- the protocol


async def test_implements_the_protocol(store: RedisCheckpointStore) -> None:
    assert isinstance(store, CheckpointStore)
    assert await store.load("nothing") is None
    assert await store.fence("nothing") is None


@pytest.mark.parametrize(
    "checkpoint",
    [
        Checkpoint(),
        cp(None, 1, 2, 3),
        cp(0),
        cp(0, BIG, -BIG - 1, 0, 7),
        cp(-(10**9), 5),  # long ago
        Checkpoint(high_water=datetime(1, 1, 1, tzinfo=UTC)),
        Checkpoint(high_water=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        cp(0, 1, position="page-cursor:abc/123=="),
        cp(None, position=""),
        cp(0, 9, position="ünïcødé ✓ " * 200),
        cp(0, *range(1000, 3000)),
    ],
)
async def test_round_trip(store: RedisCheckpointStore, checkpoint: Checkpoint) -> None:
    await store.save("agent:1", checkpoint)
    assert await store.load("agent:1") == checkpoint
    # Overwriting with fewer fields leaves none of the old ones behind.
    await store.save("agent:1", Checkpoint())
    assert await store.load("agent:1") == Checkpoint()


async def test_other_offsets_come_back_as_the_same_instant_in_utc(
    store: RedisCheckpointStore,
) -> None:
    local = datetime(2026, 11, 1, 14, 30, 15, 5, tzinfo=timezone(timedelta(hours=2)))
    await store.save("k", Checkpoint(high_water=local, recent_ids={3, 4}))  # type: ignore[arg-type]
    loaded = await store.load("k")
    assert loaded is not None and loaded.high_water == local
    assert loaded.high_water.tzinfo is UTC and loaded.recent_ids == frozenset({3, 4})


async def test_keys_are_separate_and_odd_keys_work(store: RedisCheckpointStore) -> None:
    keys = ["a", "agent:{1}", "}{", "ключ", " ", "x" * 1000, "*?[]"]
    for i, key in enumerate(keys):
        await store.save(key, cp(i, i))
    for i, key in enumerate(keys):
        assert await store.load(key) == cp(i, i)


async def test_the_layout_is_one_hash_per_key(r: aioredis.Redis) -> None:
    async with RedisCheckpointStore(r, key_prefix="app") as store:
        await store.save("agent:7", cp(0, 3, 1, 2, position="p"), fence=4)
        assert store.redis_key("agent:7") == "app:cp:{agent:7}"
    raw = await r.hgetall("app:cp:{agent:7}")
    fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    assert {k: (v.decode() if isinstance(v, bytes) else v) for k, v in fields.items()} == {
        "high_water": "2026-11-01T12:30:15.123456Z",
        "recent_ids": "[1,2,3]",
        "position": "p",
        "fence": "4",
    }


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"high_water": T0}, TypeError),
        (Checkpoint(high_water=datetime(2026, 1, 1)), ValueError),
        (Checkpoint(recent_ids=frozenset({2**63})), ValueError),
        (Checkpoint(recent_ids=frozenset({True})), TypeError),
        (Checkpoint(position=5), TypeError),  # type: ignore[arg-type]
        (Checkpoint(position="\ud800"), ValueError),
    ],
)
async def test_unstorable_checkpoints(
    store: RedisCheckpointStore, bad: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.save("k", bad)
    assert await store.load("k") is None


@pytest.mark.parametrize(
    ("key", "error"),
    [("", ValueError), (None, TypeError), (b"k", TypeError), ("\udcff", ValueError)],
)
async def test_bad_keys(store: RedisCheckpointStore, key: Any, error: type[Exception]) -> None:
    for call in (store.load(key), store.save(key, cp()), store.claim(key, 1), store.fence(key)):
        with pytest.raises(error):
            await call


@pytest.mark.parametrize(
    ("fence", "error"),
    [(-1, ValueError), (2**63, ValueError), (True, TypeError), ("3", TypeError), (1.0, TypeError)],
)
async def test_bad_fences(store: RedisCheckpointStore, fence: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        await store.claim("k", fence)
    with pytest.raises(error):
        await store.save("k", cp(), fence=fence)
    assert await store.fence("k") is None


async def test_bad_arguments(r: aioredis.Redis) -> None:
    with pytest.raises(ValueError):
        RedisCheckpointStore(r, key_prefix="")
    with pytest.raises(TypeError):
        RedisCheckpointStore(r, key_prefix=b"x")  # type: ignore[arg-type]


async def test_close_is_idempotent_and_leaves_the_client_open(r: aioredis.Redis) -> None:
    store = RedisCheckpointStore(r)
    await store.save("k", cp(1))
    await store.close()
    await store.close()
    assert store.closed and "closed" in repr(store)
    for call in (store.load("k"), store.save("k", cp()), store.claim("k", 1), store.fence("k")):
        with pytest.raises(RuntimeError):
            await call
    assert await r.ping()  # the client it was given still works
    async with RedisCheckpointStore(r) as again:
        assert await again.load("k") == cp(1)


async def test_500_concurrent_saves_from_tasks(store: RedisCheckpointStore) -> None:
    await asyncio.gather(*(store.save(f"k{i}", cp(i, i)) for i in range(500)))
    loaded = await asyncio.gather(*(store.load(f"k{i}") for i in range(500)))
    assert loaded == [cp(i, i) for i in range(500)]


async def test_a_small_connection_pool_is_not_overrun(redis_server: RedisServer) -> None:
    # redis-py's default pool refuses a command beyond max_connections: the store queues its own.
    r = client_for(redis_server, max_connections=3)
    try:
        store = RedisCheckpointStore(r, max_concurrency=3)
        await asyncio.gather(*(store.save(f"k{i}", cp(i, i), fence=i) for i in range(300)))
        assert await asyncio.gather(*(store.load(f"k{i}") for i in range(300))) == [
            cp(i, i) for i in range(300)
        ]
    finally:
        await r.aclose()


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (True, TypeError), ("2", TypeError)])
async def test_bad_max_concurrency(r: aioredis.Redis, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        RedisCheckpointStore(r, max_concurrency=value)


async def test_close_waits_for_pending_commands(store: RedisCheckpointStore) -> None:
    saves = [asyncio.create_task(store.save(f"k{i}", cp(i), fence=1)) for i in range(100)]
    await asyncio.sleep(0)  # they have started
    await store.close()
    assert all(t.done() and t.exception() is None for t in saves)


async def test_a_restarted_redis_is_reconnected_without_an_error(
    redis_server: RedisServer, r: aioredis.Redis
) -> None:
    store = RedisCheckpointStore(r)
    await store.save("k", cp(1))
    redis_server.restart(signal.SIGKILL)  # no AOF: the data is gone, the pooled connection too
    assert await store.load("k") is None
    await store.save("k", cp(2), fence=1)
    assert await store.load("k") == cp(2)


# --------------------------------------------------------------------------- fencing


async def test_claim_raises_the_fence_and_refuses_a_lower_one(store: RedisCheckpointStore) -> None:
    await store.claim("a", 3)
    assert await store.fence("a") == 3
    assert await store.load("a") is None  # claimed, not saved
    await store.claim("a", 3)  # the same owner again: fine
    await store.claim("a", 10)
    assert await store.fence("a") == 10
    with pytest.raises(FencedOutError, match="fence 10"):
        await store.claim("a", 9)
    assert store.refused_claims == 1 and store.refused == 0
    assert await store.fence("a") == 10


async def test_stale_saves_are_refused_and_newer_accepted(store: RedisCheckpointStore) -> None:
    await store.claim("a", 5)
    await store.save("a", cp(1, 1), fence=5)
    with pytest.raises(FencedOutError) as info:
        await store.save("a", cp(0, 0), fence=4)  # a zombie tries to move it back
    assert isinstance(info.value, CheckpointError)
    assert "'a'" in str(info.value) and "fence 4" in str(info.value)
    assert await store.load("a") == cp(1, 1)
    assert store.refused == 1
    await store.save("a", cp(2, 2), fence=6)  # a newer owner, even without a claim
    assert await store.fence("a") == 6 and await store.load("a") == cp(2, 2)
    with pytest.raises(FencedOutError):
        await store.save("a", cp(3, 3), fence=5)
    assert store.refused == 2
    assert await store.load("a") == cp(2, 2)


async def test_fences_compare_as_integers_up_to_2_63(store: RedisCheckpointStore) -> None:
    # 2**53 + 1 and 2**53 are equal as doubles: the script must not compare them as Lua numbers.
    await store.claim("a", 2**53 + 1)
    with pytest.raises(FencedOutError):
        await store.save("a", cp(1), fence=2**53)
    await store.save("a", cp(2), fence=BIG)
    assert await store.fence("a") == BIG
    await store.claim("b", 9)
    await store.claim("b", 10)  # longer text, higher number
    with pytest.raises(FencedOutError):
        await store.claim("b", 9)
    await store.claim("c", 0)
    assert await store.fence("c") == 0


async def test_an_unfenced_save_after_a_claim_is_refused(store: RedisCheckpointStore) -> None:
    await store.save("a", cp(1))  # unfenced: a single process
    await store.save("a", cp(2))
    assert await store.fence("a") is None
    await store.save("a", cp(3), fence=1)  # a fleet takes the key over
    with pytest.raises(FencedOutError, match="unfenced"):
        await store.save("a", cp(9))
    assert store.refused == 1
    await store.claim("b", 1)
    with pytest.raises(FencedOutError):
        await store.save("b", cp(9))
    assert await store.load("a") == cp(3) and await store.load("b") is None


async def test_two_processes_with_different_fences_only_the_highest_wins(
    redis_server: RedisServer,
) -> None:
    # Two store objects on two connections stand for two worker processes racing on one key.
    r1, r2 = client_for(redis_server), client_for(redis_server)
    try:
        old, new = RedisCheckpointStore(r1), RedisCheckpointStore(r2)
        await old.claim("agent", 1)
        await old.save("agent", cp(0), fence=1)
        await new.claim("agent", 2)  # the takeover

        async def writer(store: RedisCheckpointStore, fence: int) -> list[int]:
            accepted = []
            for i in range(200):
                try:
                    await store.save("agent", cp(i, fence * 1000 + i), fence=fence)
                except FencedOutError:
                    continue
                accepted.append(i)
            return accepted

        old_ok, new_ok = await asyncio.gather(writer(old, 1), writer(new, 2))
        assert old_ok == [] and old.refused == 200
        assert new_ok == list(range(200)) and new.refused == 0
        assert await old.load("agent") == cp(199, 2199)
        assert await old.fence("agent") == 2
    finally:
        await r1.aclose()
        await r2.aclose()


RACER = """
import asyncio, sys
from datetime import UTC, datetime, timedelta
import redis.asyncio as aioredis
from zdactivity.checkpoint import Checkpoint
from zdactivity.errors import FencedOutError
from zdactivity.redis import RedisCheckpointStore

async def main(url, fence):
    r = aioredis.Redis.from_url(url)
    store = RedisCheckpointStore(r)
    log = []
    try:
        await store.claim("agent", fence)
        log.append("C")
    except FencedOutError:
        log.append("c")
    for i in range(300):
        hw = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=i)
        try:
            await store.save("agent", Checkpoint(hw, frozenset({fence})), fence=fence)
            log.append("S")
        except FencedOutError:
            log.append("s")
    await r.aclose()
    print("".join(log), store.refused)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_two_worker_processes_race_and_the_higher_fence_wins(
    redis_server: RedisServer,
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            RACER,
            redis_server.url,
            str(fence),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for fence in (1, 2)
    ]
    outs = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        outs.append(out.decode().split())
    (old_log, old_refused), (new_log, new_refused) = outs
    assert new_log == "C" + "S" * 300 and new_refused == "0"  # the highest fence is never refused
    # The older worker writes until the newer one first claims, then is refused for good.
    assert re.fullmatch(r"[Cc]S*s*", old_log), old_log
    assert int(old_refused) == old_log.count("s")
    r = client_for(redis_server)
    try:
        store = RedisCheckpointStore(r)
        assert await store.fence("agent") == 2
        assert await store.load("agent") == Checkpoint(
            datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=299), frozenset({2})
        )
    finally:
        await r.aclose()


async def test_racing_claims_leave_the_highest_fence(redis_server: RedisServer) -> None:
    clients = [client_for(redis_server) for _ in range(8)]
    try:
        stores = [RedisCheckpointStore(c) for c in clients]

        async def claim(store: RedisCheckpointStore, fence: int) -> bool:
            try:
                await store.claim("k", fence)
                await store.save("k", cp(fence, fence), fence=fence)
            except FencedOutError:
                return False
            return True

        results = await asyncio.gather(*(claim(s, f) for f, s in enumerate(stores, 1)))
        assert results[-1] is True  # the highest always gets through
        assert await stores[0].fence("k") == 8
        assert await stores[0].load("k") == cp(8, 8)
    finally:
        for c in clients:
            await c.aclose()


async def test_random_claims_and_saves_from_four_workers_match_a_model(
    redis_server: RedisServer,
) -> None:
    rng = random.Random(11)
    clients = [client_for(redis_server) for _ in range(4)]
    try:
        stores = [RedisCheckpointStore(c) for c in clients]
        model_fence: dict[str, int] = {}
        model_cp: dict[str, Checkpoint] = {}
        refused = 0
        for step in range(400):
            store, key = rng.choice(stores), rng.choice(["a", "b", "c"])
            fence = rng.randint(0, 12)
            if rng.random() < 0.3:
                ok = model_fence.get(key, -1) <= fence
                try:
                    await store.claim(key, fence)
                except FencedOutError:
                    assert not ok
                else:
                    assert ok
                    model_fence[key] = fence
            else:
                checkpoint = cp(step, step, position=rng.choice([None, f"p{step}"]))
                ok = model_fence.get(key, -1) <= fence
                try:
                    await store.save(key, checkpoint, fence=fence)
                except FencedOutError:
                    assert not ok
                    refused += 1
                else:
                    assert ok
                    model_fence[key], model_cp[key] = fence, checkpoint
            assert await store.fence(key) == model_fence.get(key)
            assert await store.load(key) == model_cp.get(key)
        assert sum(s.refused for s in stores) == refused > 0
    finally:
        for c in clients:
            await c.aclose()


# --------------------------------------------------------------------------- corrupt data


@pytest.mark.parametrize(
    "fields",
    [
        {"recent_ids": "not json"},
        {"recent_ids": '[1, 2, "x"]'},
        {"recent_ids": "{}"},
        {"recent_ids": f"[{2**64}]"},
        {"recent_ids": "[1]", "high_water": "yesterday"},
        {"recent_ids": "[1]", "high_water": "2026-11-01T12:00:00"},  # naive
        {"recent_ids": b"[1]", "position": b"\xff\xfe"},
        {"recent_ids": b"\xff"},
        {"high_water": "2026-11-01T12:00:00Z"},  # no recent_ids
        {"position": "p"},
    ],
)
async def test_a_corrupt_hash_is_a_checkpoint_error_naming_the_key(
    r: aioredis.Redis, store: RedisCheckpointStore, fields: dict[str, Any]
) -> None:
    await r.hset(store.redis_key("agent:9"), mapping=fields)  # type: ignore[misc]
    with pytest.raises(CheckpointError, match="agent:9") as info:
        await store.load("agent:9")
    assert info.value.__cause__ is None and info.value.__context__ is None


async def test_a_key_of_another_type_is_a_checkpoint_error(
    r: aioredis.Redis, store: RedisCheckpointStore
) -> None:
    await r.set(store.redis_key("s"), "a string")
    for call in (store.load("s"), store.save("s", cp()), store.claim("s", 1), store.fence("s")):
        with pytest.raises(CheckpointError, match="'s'") as info:
            await call
        assert not isinstance(info.value, FencedOutError)
        assert info.value.__cause__ is None and info.value.__context__ is None


@pytest.mark.parametrize("stored", ["1e3", "-1", "007", "", " 5", str(2**63), "9" * 30])
async def test_a_corrupt_fence_is_a_checkpoint_error(
    r: aioredis.Redis, store: RedisCheckpointStore, stored: str
) -> None:
    await r.hset(store.redis_key("f"), mapping={"fence": stored, "recent_ids": "[]"})  # type: ignore[misc]
    calls = [store.save("f", cp(), fence=5), store.save("f", cp()), store.claim("f", 1)]
    for call in [*calls, store.fence("f")]:
        with pytest.raises(CheckpointError, match="'f'") as info:
            await call
        assert not isinstance(info.value, FencedOutError)
        assert info.value.__cause__ is None and info.value.__context__ is None
    assert await store.load("f") == Checkpoint()  # the checkpoint itself is intact
    assert store.refused == store.refused_claims == 0


# --------------------------------------------------------------------------- an unreachable Redis


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


async def test_a_stopped_server_is_a_checkpoint_error_with_no_redis_exception_chained(
    redis_server: RedisServer,
) -> None:
    secret = "s3cr3t-pa55word"
    url = f"redis://zd-user:{secret}@127.0.0.1:{redis_server.port}/0"
    await (r0 := client_for(redis_server)).execute_command(
        "ACL", "SETUSER", "zd-user", "on", f">{secret}", "~*", "+@all"
    )
    await r0.aclose()
    r = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        store = RedisCheckpointStore(r)
        await store.save("k", cp(1), fence=1)
        redis_server.stop()
        calls = [
            store.load("k"),
            store.save("k", cp(2), fence=2),
            store.claim("k", 3),
            store.fence("k"),
        ]
        for call in calls:
            with pytest.raises(CheckpointError, match="'k'") as info:
                async with asyncio.timeout(30):
                    await call
            chain = _chain(info.value)
            assert chain == [info.value], chain  # nothing from redis-py is attached
            assert not isinstance(info.value, FencedOutError)
            assert secret not in str(info.value) and secret not in repr(info.value)
            assert "zd-user" not in str(info.value)
        # The server comes back (empty, without AOF): the same store and client work again.
        redis_server.start()
        await (r0 := client_for(redis_server)).execute_command(
            "ACL", "SETUSER", "zd-user", "on", f">{secret}", "~*", "+@all"
        )
        await r0.aclose()
        assert await store.load("k") is None
        await store.save("k", cp(3), fence=3)
        assert await store.fence("k") == 3
    finally:
        await r.aclose()


async def test_a_refused_connection_from_the_start(redis_server: RedisServer) -> None:
    port = redis_server.port
    redis_server.stop()
    # (No backoff between redis-py's own retries: the default one takes seconds here.)
    r = aioredis.Redis(
        host="127.0.0.1",
        port=port,
        password="hunter2-secret",
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 1),
    )
    try:
        store = RedisCheckpointStore(r)
        with pytest.raises(CheckpointError) as info:
            await store.load("k")
        assert _chain(info.value) == [info.value]
        assert "hunter2-secret" not in str(info.value)
    finally:
        await r.aclose()


# --------------------------------------------------------------------------- durability


async def test_saved_checkpoints_survive_a_sigkill_of_redis_with_aof() -> None:
    with RedisServer(aof=True) as server:
        r = client_for(server)
        try:
            store = RedisCheckpointStore(r)
            expected: dict[str, Checkpoint] = {}
            for i in range(200):
                key = f"agent:{i % 20}"
                checkpoint = cp(i, i, BIG - i, position=None if i % 3 else f"pos-{i}")
                if i % 2 == 0:
                    await store.claim(key, i)  # a new owner every other save
                await store.save(key, checkpoint, fence=i)
                expected[key] = checkpoint
                unfenced = cp(-i, -i)  # and keys of a single, unfenced process
                await store.save(f"single:{i % 7}", unfenced)
                expected[f"single:{i % 7}"] = unfenced
            # The last save returned: SIGKILL redis-server (no shutdown, no final fsync).
            server.restart(signal.SIGKILL)
            loaded = {key: await store.load(key) for key in expected}
            assert loaded == expected
            assert [await store.fence(f"agent:{k}") for k in range(20)] == [
                180 + k for k in range(20)
            ]
            with pytest.raises(FencedOutError):  # the fences survived too
                await store.save("agent:0", cp(0), fence=179)
        finally:
            await r.aclose()


async def test_a_sigkill_during_saves_keeps_every_acknowledged_one() -> None:
    # Writers save continuously; redis-server is SIGKILLed under them. After the restart each
    # key holds its last acknowledged save, or a later one that was in flight: never an older.
    with RedisServer(aof=True) as server:
        r = client_for(server, socket_connect_timeout=1, socket_timeout=2)
        try:
            store = RedisCheckpointStore(r)
            acked = dict.fromkeys(range(8), -1)
            attempted = dict.fromkeys(range(8), -1)

            async def writer(k: int) -> None:
                for i in range(100_000):
                    attempted[k] = i
                    try:
                        await store.save(f"agent:{k}", cp(i, i), fence=k)
                    except CheckpointError:
                        return
                    acked[k] = i

            tasks = [asyncio.create_task(writer(k)) for k in range(8)]
            await wait_until(lambda: min(acked.values()) >= 20)
            await asyncio.to_thread(server.stop, signal.SIGKILL)
            async with asyncio.timeout(60):
                await asyncio.gather(*tasks)
            server.start()
            for k in range(8):
                loaded = await store.load(f"agent:{k}")
                assert loaded is not None and loaded.high_water is not None
                i = round((loaded.high_water - T0).total_seconds())
                assert acked[k] <= i <= attempted[k], (k, acked[k], i, attempted[k])
                assert loaded == cp(i, i)
                assert await store.fence(f"agent:{k}") == k
        finally:
            await r.aclose()


# --------------------------------------------------------------------------- a watcher on it


@pytest.mark.emulator(seed=31, agents=1, activities_per_agent=25)
async def test_a_watcher_delivers_everything_and_resumes_after_restarts(emu: Emulator) -> None:
    agent = emu.agents[0]
    backlog = [a["id"] for a in reversed(emu.activities_for(agent))]
    with RedisServer(aof=True) as server:
        r = client_for(server)
        try:
            async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
                store = RedisCheckpointStore(r)
                watcher = zd.activities.watch(
                    checkpoint=store, key="agent-0", sleep=FakeTime().sleep
                )
                got = [(await watcher.__anext__()).id for _ in range(10)]
                # The process dies while handling the 10th (never committed), and Redis crashes.
            assert got == backlog[:10]
            server.restart(signal.SIGKILL)
            async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
                store = RedisCheckpointStore(r)
                watcher = zd.activities.watch(
                    checkpoint=store, key="agent-0", sleep=FakeTime().sleep
                )
                rest = [(await watcher.__anext__()).id for _ in range(len(backlog) - 9)]
                await watcher.aclose()
            assert rest == backlog[9:]  # the 10th again (at least once), then the rest
            saved = await store.load("agent-0")
            assert saved is not None and backlog[-1] in saved.recent_ids
        finally:
            await r.aclose()

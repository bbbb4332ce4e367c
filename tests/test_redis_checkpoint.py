"""RedisCheckpointStore against a real redis-server: round trips, fenced saves, corrupt data, an
unreachable server, durability through a SIGKILL of redis-server with AOF, and a watcher on it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import redis.asyncio as aioredis
from conftest import token
from fakes import FakeTime
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis_server import RedisServer

import zdactivity
from zdactivity.checkpoint import Checkpoint, CheckpointError, CheckpointStore
from zdactivity.errors import FencedOutError
from zdactivity.redis import RedisCheckpointStore
from zdactivity.testing import Emulator

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


async def test_a_corrupt_fence_is_a_checkpoint_error(
    r: aioredis.Redis, store: RedisCheckpointStore
) -> None:
    await r.hset(store.redis_key("f"), mapping={"fence": "1e3", "recent_ids": "[]"})  # type: ignore[misc]
    for call in (
        store.save("f", cp(), fence=5),
        store.save("f", cp()),
        store.claim("f", 1),
        store.fence("f"),
    ):
        with pytest.raises(CheckpointError, match="'f'") as info:
            await call
        assert not isinstance(info.value, FencedOutError)
    assert await store.load("f") == Checkpoint()  # the checkpoint itself is intact


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
                if i % 2:
                    await store.save(key, checkpoint, fence=i)
                    expected_fence = i
                else:
                    await store.claim(key, i)
                    await store.save(key, checkpoint, fence=i)
                    expected_fence = i
                expected[key] = checkpoint
                assert expected_fence == i
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

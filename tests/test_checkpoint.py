"""Checkpoint stores: both behave alike; SQLite survives a SIGKILL and stays off the loop."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zdactivity.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointStore,
    MemoryCheckpointStore,
    SQLiteCheckpointStore,
)

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=UTC)
BIG = 2**63 - 1

Store = MemoryCheckpointStore | SQLiteCheckpointStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    s = (
        MemoryCheckpointStore()
        if request.param == "memory"
        else SQLiteCheckpointStore(tmp_path / "cp.sqlite3")
    )
    async with s:
        yield s


def cp(seconds: float | None = 0, *ids: int) -> Checkpoint:
    hw = None if seconds is None else T0 + timedelta(seconds=seconds)
    return Checkpoint(high_water=hw, recent_ids=frozenset(ids))


# --------------------------------------------------------------------------- both stores


async def test_implements_the_protocol(store: Store) -> None:
    assert isinstance(store, CheckpointStore)


async def test_unknown_key_loads_none(store: Store) -> None:
    assert await store.load("agent:1") is None
    assert await store.keys() == []


@pytest.mark.parametrize(
    "checkpoint",
    [
        Checkpoint(),
        Checkpoint(high_water=T0),
        Checkpoint(high_water=None, recent_ids=frozenset({1, 2, 3})),
        Checkpoint(high_water=T0, recent_ids=frozenset()),
        Checkpoint(high_water=T0, recent_ids=frozenset({0, 1, BIG, 2**40 + 7})),
        Checkpoint(high_water=T0, recent_ids=frozenset(range(10**12, 10**12 + 5000))),
        Checkpoint(high_water=datetime(1, 1, 1, tzinfo=UTC)),
        Checkpoint(high_water=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
    ids=["empty", "hw-only", "ids-only", "no-ids", "64-bit", "5000-ids", "min", "max"],
)
async def test_round_trip(store: Store, checkpoint: Checkpoint) -> None:
    await store.save("agent:1", checkpoint)
    loaded = await store.load("agent:1")
    assert loaded == checkpoint
    assert loaded is not None
    assert type(loaded.recent_ids) is frozenset
    if loaded.high_water is not None:
        assert loaded.high_water.tzinfo is UTC


@pytest.mark.parametrize("offset", [timedelta(hours=5, minutes=30), timedelta(hours=-8)])
async def test_other_offsets_come_back_as_the_same_instant_in_utc(
    store: Store, offset: timedelta
) -> None:
    local = T0.astimezone(timezone(offset))
    await store.save("k", Checkpoint(high_water=local, recent_ids=frozenset({7})))
    loaded = await store.load("k")
    assert loaded is not None and loaded.high_water is not None
    assert loaded.high_water == T0 == local
    assert loaded.high_water.tzinfo is UTC
    assert loaded.high_water.replace(tzinfo=None) == T0.replace(tzinfo=None)


async def test_overwrite(store: Store) -> None:
    await store.save("k", cp(0, 1, 2))
    await store.save("k", cp(60, 3))
    await store.save("k", cp(None))
    assert await store.load("k") == cp(None)
    assert await store.keys() == ["k"]


async def test_many_keys_and_keys(store: Store) -> None:
    for n in range(50):
        await store.save(f"agent:{n:03}", cp(n, n, n + 1))
    await store.save("agent:007", cp(-1))
    assert await store.keys() == [f"agent:{n:03}" for n in range(50)]
    for n in range(50):
        assert await store.load(f"agent:{n:03}") == (cp(-1) if n == 7 else cp(n, n, n + 1))


async def test_500_concurrent_saves_from_tasks(store: Store) -> None:
    async def agent(n: int) -> None:
        await store.save(f"agent:{n}", cp(n, n, 10**15 + n))

    await asyncio.gather(*(agent(n) for n in range(500)))
    loads = await asyncio.gather(*(store.load(f"agent:{n}") for n in range(500)))
    assert loads == [cp(n, n, 10**15 + n) for n in range(500)]
    assert len(await store.keys()) == 500


async def test_interleaved_saves_and_loads_of_one_key_keep_call_order(store: Store) -> None:
    results = await asyncio.gather(
        *(store.save("k", cp(n, n)) if n % 2 == 0 else store.load("k") for n in range(200))
    )
    # Each load (odd n) sees the save made just before it (n - 1).
    for n in range(1, 200, 2):
        assert results[n] == cp(n - 1, n - 1)


async def test_naive_high_water_is_a_value_error(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.save("k", Checkpoint(high_water=datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="out of range"):
        await store.save(
            "k", Checkpoint(high_water=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
        )
    assert await store.load("k") is None


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (Checkpoint(recent_ids=frozenset({2**63})), ValueError),
        (Checkpoint(recent_ids=frozenset({-(2**63) - 1})), ValueError),
        (Checkpoint(recent_ids=frozenset({"1"})), TypeError),  # type: ignore[arg-type]
        (Checkpoint(recent_ids=frozenset({True})), TypeError),
        (Checkpoint(recent_ids=[1, 2]), TypeError),  # type: ignore[arg-type]
        (Checkpoint(high_water="2026-01-01T00:00:00Z"), TypeError),  # type: ignore[arg-type]
        ({"high_water": None}, TypeError),
    ],
)
async def test_unstorable_checkpoints(store: Store, bad: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        await store.save("k", bad)
    assert await store.load("k") is None


async def test_a_mutable_set_is_stored_as_a_frozenset(store: Store) -> None:
    ids = {1, 2}
    await store.save("k", Checkpoint(T0, ids))  # type: ignore[arg-type]
    ids.add(3)
    assert await store.load("k") == cp(0, 1, 2)


@pytest.mark.parametrize(
    ("key", "error"), [("", ValueError), (None, TypeError), (7, TypeError), ("\ud800", ValueError)]
)
async def test_bad_keys(store: Store, key: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        await store.save(key, cp())
    with pytest.raises(error):
        await store.load(key)
    assert await store.keys() == []


async def test_odd_but_valid_keys(store: Store) -> None:
    keys = [" ", "a\x00b", "ключ", "🙂", "x" * 10_000, "agent:1/'; DROP TABLE x; --"]
    for n, key in enumerate(keys):
        await store.save(key, cp(n, n))
    for n, key in enumerate(keys):
        assert await store.load(key) == cp(n, n)
    assert await store.keys() == sorted(keys)


async def test_close_is_idempotent_and_use_after_close_raises(store: Store) -> None:
    await store.save("k", cp())
    await store.close()
    await store.close()
    for call in (store.load("k"), store.save("k", cp()), store.keys()):
        with pytest.raises(RuntimeError, match="closed"):
            await call


async def test_memory_snapshot_is_a_copy() -> None:
    async with MemoryCheckpointStore() as store:
        await store.save("a", cp(1, 1))
        snap = store.snapshot()
        snap["b"] = cp()
        await store.save("a", cp(2))
        assert snap == {"a": cp(1, 1), "b": cp()}
    assert store.snapshot() == {"a": cp(2)}


# --------------------------------------------------------------------------- SQLite only


async def test_reopen_after_close(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    async with SQLiteCheckpointStore(path, synchronous="FULL") as s:
        await s.save("a", cp(1, 1, BIG))
        await s.save("b", cp(None))
    assert not (tmp_path / "cp.sqlite3-wal").exists()  # the last close checkpointed the WAL
    async with SQLiteCheckpointStore(str(path)) as s:
        assert await s.keys() == ["a", "b"]
        assert await s.load("a") == cp(1, 1, BIG)
        assert await s.load("b") == cp(None)
        await s.save("a", cp(2))
    async with SQLiteCheckpointStore(path) as s:
        assert await s.load("a") == cp(2)


async def test_schema_is_one_table_with_iso_text_and_compact_json(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    hw = T0.astimezone(timezone(timedelta(hours=2)))
    async with SQLiteCheckpointStore(path) as s:
        await s.save("agent:1", Checkpoint(hw, frozenset({30, 10, 20})))
        await s.save("agent:2", Checkpoint())
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = db.execute("SELECT * FROM zdactivity_checkpoints ORDER BY key").fetchall()
    finally:
        db.close()
    assert rows == [
        ("agent:1", "2026-11-01T12:30:15.123456Z", "[10,20,30]", None),
        ("agent:2", None, "[]", None),
    ]


async def test_open_is_lazy_and_close_without_use_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    s = SQLiteCheckpointStore(path)
    assert not path.exists()
    await s.close()
    assert not path.exists()
    assert s.closed


async def test_close_waits_for_pending_operations(tmp_path: Path) -> None:
    store = SQLiteCheckpointStore(tmp_path / "cp.sqlite3")
    saves = [asyncio.ensure_future(store.save(f"k{n}", cp(n))) for n in range(100)]
    await asyncio.sleep(0)  # every save has been submitted to the worker
    await store.close()
    assert all(f.done() and f.exception() is None for f in saves)
    async with SQLiteCheckpointStore(tmp_path / "cp.sqlite3") as s:
        assert len(await s.keys()) == 100


async def test_concurrent_closes_all_wait(tmp_path: Path) -> None:
    store = SQLiteCheckpointStore(tmp_path / "cp.sqlite3")
    await store.save("a", cp())
    await asyncio.gather(store.close(), store.close(), store.close())
    assert store.closed


async def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteCheckpointStore(tmp_path / "x", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SQLiteCheckpointStore("")
    with pytest.raises(TypeError):
        SQLiteCheckpointStore(b"/tmp/x")  # type: ignore[arg-type]


SIGKILL_CHILD = """
import asyncio, os, signal, sys
from datetime import datetime, timedelta, timezone
from zdactivity.checkpoint import Checkpoint, SQLiteCheckpointStore

async def main(path, n):
    store = SQLiteCheckpointStore(path)
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    await asyncio.gather(*(
        store.save(f"agent:{i}", Checkpoint(t0 + timedelta(seconds=i), frozenset({i, 2**63 - 1})))
        for i in range(n)
    ))
    print("saved", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no atexit, no finally

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
async def test_saved_checkpoints_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    n = 300
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SIGKILL_CHILD,
        str(path),
        str(n),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert out == b"saved\n", err.decode()
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "cp.sqlite3-wal").exists()  # the saves live in the WAL, not yet merged

    async with SQLiteCheckpointStore(path) as s:
        assert await s.keys() == sorted(f"agent:{i}" for i in range(n))
        for i in range(n):
            assert await s.load(f"agent:{i}") == Checkpoint(
                datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=i), frozenset({i, BIG})
            )


async def test_the_event_loop_is_not_blocked_and_sqlite_runs_on_one_other_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statement_threads: set[int] = set()
    real_connect = sqlite3.connect

    def slow_statement(_sql: str) -> None:
        statement_threads.add(threading.get_ident())
        time.sleep(0.0003)  # a slow disk: a blocking store would stall the loop ~0.15 s

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = real_connect(*args, **kwargs)
        conn.set_trace_callback(slow_statement)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            await asyncio.sleep(0.001)
            ticks += 1

    async with SQLiteCheckpointStore(tmp_path / "cp.sqlite3") as store:
        tick_task = asyncio.create_task(ticker())
        await asyncio.sleep(0.005)
        ticks = 0
        started = time.perf_counter()
        await asyncio.gather(*(store.save(f"agent:{n}", cp(n, n)) for n in range(500)))
        elapsed = time.perf_counter() - started
        stop = True
        await tick_task
        assert await store.load("agent:499") == cp(499, 499)

    assert elapsed > 0.1
    # A store running sqlite on the loop would let the ticker run ~0 times during the batch.
    assert ticks >= 20, (ticks, elapsed)
    assert len(statement_threads) == 1
    assert threading.get_ident() not in statement_threads


async def test_a_corrupt_file_is_a_checkpoint_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    path.write_bytes(b"this is not a database, just garbage bytes \x00\xff" * 200)
    async with SQLiteCheckpointStore(path) as s:
        for call in (lambda: s.load("k"), lambda: s.save("k", cp()), s.keys):
            with pytest.raises(CheckpointError, match="corrupt or not a SQLite database") as info:
                await call()
            assert str(path) in str(info.value)
            assert info.value.path == str(path)
            assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


async def test_an_unopenable_path_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "cp.sqlite3"
    async with SQLiteCheckpointStore(path) as s:
        with pytest.raises(CheckpointError, match="could not open") as info:
            await s.save("k", cp())
        assert str(path) in str(info.value)


async def test_a_corrupt_row_is_a_checkpoint_error_naming_path_and_key(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    async with SQLiteCheckpointStore(path) as s:
        await s.save("good", cp())
        await s.save("bad-ids", cp())
        await s.save("bad-time", cp())
    db = sqlite3.connect(path)
    try:
        db.execute("UPDATE zdactivity_checkpoints SET recent_ids = '[1,' WHERE key = 'bad-ids'")
        db.execute("UPDATE zdactivity_checkpoints SET high_water = 'soon' WHERE key = 'bad-time'")
        db.commit()
    finally:
        db.close()
    async with SQLiteCheckpointStore(path) as s:
        assert await s.load("good") == cp()
        for key in ("bad-ids", "bad-time"):
            with pytest.raises(CheckpointError, match="does not decode") as info:
                await s.load(key)
            assert str(path) in str(info.value) and repr(key) in str(info.value)


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    async with SQLiteCheckpointStore(path) as s:
        with pytest.raises(CheckpointError, match="schema version 99"):
            await s.load("k")


# --------------------------------------------------------------------------- property

offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23)),
)
high_waters = st.none() | st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets
)
checkpoints = st.builds(
    Checkpoint,
    high_water=high_waters,
    recent_ids=st.frozensets(st.integers(-(2**63), 2**63 - 1), max_size=8),
)
ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["a", "b", "agent:1", "ü", "x" * 40]), checkpoints),
        st.just(("reopen", None)),
    ),
    max_size=25,
)


def run_model(make: Callable[[], Store], operations: list[tuple[str, Checkpoint | None]]) -> None:
    async def main() -> None:
        model: dict[str, Checkpoint] = {}
        store = make()
        try:
            for key, checkpoint in operations:
                if checkpoint is None:
                    if isinstance(store, SQLiteCheckpointStore):
                        await store.close()
                        store = make()
                    continue
                await store.save(key, checkpoint)
                model[key] = checkpoint
            assert await store.keys() == sorted(model)
            for key, expected in model.items():
                loaded = await store.load(key)
                assert loaded == expected
                assert loaded is not None
                assert loaded.high_water is None or loaded.high_water.tzinfo is UTC
        finally:
            await store.close()

    asyncio.run(main())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=ops)
def test_final_loads_equal_a_dict_model_memory(
    operations: list[tuple[str, Checkpoint | None]],
) -> None:
    run_model(MemoryCheckpointStore, operations)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=ops)
def test_final_loads_equal_a_dict_model_sqlite(
    operations: list[tuple[str, Checkpoint | None]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cp.sqlite3"
        run_model(lambda: SQLiteCheckpointStore(path), operations)


async def test_the_position_of_a_poll_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite3"
    saved = Checkpoint(T0, frozenset({1}), position='{"cursor":"abc"}')
    async with SQLiteCheckpointStore(path) as s:
        await s.save("a", saved)
    async with SQLiteCheckpointStore(path) as s:
        assert await s.load("a") == saved
    memory = MemoryCheckpointStore()
    await memory.save("a", saved)
    assert await memory.load("a") == saved
    with pytest.raises(TypeError, match="position"):
        await memory.save("a", Checkpoint(position=b"x"))  # type: ignore[arg-type]


async def test_a_version_1_file_gains_the_position_column(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE zdactivity_checkpoints"
        " (key TEXT PRIMARY KEY NOT NULL, high_water TEXT, recent_ids TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO zdactivity_checkpoints VALUES ('a', '2026-11-01T12:30:15.123456Z', '[5]')"
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    async with SQLiteCheckpointStore(path) as s:
        assert await s.load("a") == Checkpoint(T0, frozenset({5}))
        await s.save("a", Checkpoint(T0, frozenset({5}), position="p"))
        assert (await s.load("a")) == Checkpoint(T0, frozenset({5}), position="p")
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (2,)
    db.close()

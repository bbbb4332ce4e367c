"""A consumer's SQL committed in the transaction that saves the checkpoint (``SQLiteWrites``,
``Fleet.writes`` with a ``SQLiteCheckpointStore``): both or neither, through failures and real
SIGKILLs of a worker process (tests/fleet_worker.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import NOW, start_script, token, wait_until

import zdactivity
from zdactivity.checkpoint import (
    Checkpoint,
    CheckpointError,
    MemoryCheckpointStore,
    SQLiteCheckpointStore,
    SQLiteWrites,
    WritesNotSupportedError,
)
from zdactivity.fleet import Fleet
from zdactivity.testing import Emulator

WORKER = Path(__file__).resolve().parent / "fleet_worker.py"
T0 = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)


def cp(*ids: int) -> Checkpoint:
    return Checkpoint(high_water=T0, recent_ids=frozenset(ids))


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        found = db.execute(sql).fetchall()
    db.close()
    return found


def make_inbox(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE inbox (agent TEXT, id INTEGER UNIQUE)")
    db.close()


# --------------------------------------------------------------------------- staging (pure)


def test_staging_statements() -> None:
    w = SQLiteWrites().execute("INSERT INTO t VALUES (?)", [1]).execute("DELETE FROM t", {})
    assert len(w) == 2 and repr(w) == "<SQLiteWrites 2 statements>"
    assert w.statements == [("INSERT INTO t VALUES (?)", (1,)), ("DELETE FROM t", {})]
    for bad, error in [
        ((b"SELECT 1",), TypeError),
        (("  ",), ValueError),
        (("SELECT ?", "x"), TypeError),  # a str is not a parameter sequence
        (("SELECT ?", 1), TypeError),
    ]:
        with pytest.raises(error):
            SQLiteWrites().execute(*bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the transaction


async def test_writes_commit_with_the_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    make_inbox(db)
    async with SQLiteCheckpointStore(db) as store:
        writes = store.writes("a").execute("INSERT INTO inbox VALUES (?, ?)", ("a", 1))
        writes.execute("INSERT INTO inbox VALUES (:agent, :id)", {"agent": "a", "id": 2})
        await store.save("a", cp(1, 2), writes=writes)
        assert await store.load("a") == cp(1, 2)
        await store.save("a", cp(3), writes=store.writes("a"))  # nothing staged: a plain save
        with pytest.raises(TypeError):
            await store.save("a", cp(4), writes=[("DELETE FROM inbox", ())])  # type: ignore[arg-type]
    assert rows(db, "SELECT agent, id FROM inbox ORDER BY id") == [("a", 1), ("a", 2)]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO inbox VALUES ('b', 1)",  # violates UNIQUE: the statement fails
        "INSERT INTO no_such_table VALUES (1)",
        "COMMIT",  # the transaction is the store's
        "SAVEPOINT s",
        "PRAGMA journal_mode=DELETE",
        "ATTACH DATABASE ':memory:' AS other",
        "DELETE FROM zdactivity_checkpoints",  # the checkpoints are the store's
        "UPDATE zdactivity_checkpoints SET recent_ids = '[]'",
        "DROP TABLE zdactivity_checkpoints",
        "INSERT INTO inbox VALUES ('b', 7); DELETE FROM inbox",  # one statement only
    ],
)
async def test_a_statement_that_fails_or_is_refused_writes_nothing(
    tmp_path: Path, sql: str
) -> None:
    db = tmp_path / "c.sqlite3"
    make_inbox(db)
    async with SQLiteCheckpointStore(db) as store:
        await store.save(
            "a", cp(1), writes=store.writes("a").execute("INSERT INTO inbox VALUES ('a', 1)")
        )
        writes = store.writes("a").execute("INSERT INTO inbox VALUES ('a', 2)").execute(sql)
        with pytest.raises(CheckpointError, match=r"with its writes.*nothing was written"):
            await store.save("a", cp(1, 2), writes=writes)
        assert await store.load("a") == cp(1)
        # The store goes on: the next save and its writes commit.
        await store.save(
            "a", cp(1, 3), writes=store.writes("a").execute("INSERT INTO inbox VALUES ('a', 3)")
        )
        assert await store.load("a") == cp(1, 3)
    assert rows(db, "SELECT id FROM inbox ORDER BY id") == [(1,), (3,)]
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]


# --------------------------------------------------------------------------- the fleet


async def test_fleet_stream_and_a_failing_handler_keep_sql_output_exactly_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "c.sqlite3"
    make_inbox(db)
    async with Emulator(seed=73, agents=3, activities_per_agent=5, clock=lambda: NOW) as emu:
        want = {(str(a.user_id), act["id"]) for a in emu.agents for act in emu.activities_for(a)}
        async with SQLiteCheckpointStore(db) as store:
            root = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0]))
            fleet = Fleet(store, interval=0.05, jitter=0.0, retry_delay=0.01)
            for agent in emu.agents:
                fleet.add(str(agent.user_id), root.with_auth(token(agent)))
            calls: list[int] = []

            async def handler(key: str, activity: zdactivity.Activity) -> None:
                calls.append(activity.id)
                insert = "INSERT INTO inbox VALUES (?, ?)"
                fleet.writes(key).execute(insert, (key, activity.id))
                if calls.count(activity.id) == 1 and activity.id % 2:
                    raise RuntimeError("failed after staging")

            task = asyncio.create_task(fleet.run(handler))
            await wait_until(lambda: len(rows(db, "SELECT id FROM inbox")) == len(want), within=30)
            fleet.stop()
            await task

            # The same through stream(): the consumer stages while it holds the item, and the
            # row commits when it asks for the next one.
            for agent in emu.agents:
                emu.add_activity(agent)
            taken: list[tuple[str, int]] = []
            async with Fleet(store, interval=0.05, jitter=0.0) as streaming:
                for agent in emu.agents:
                    streaming.add(str(agent.user_id), root.with_auth(token(agent)))
                async with contextlib.aclosing(streaming.stream()) as stream:
                    async for key, activity in stream:
                        insert = "INSERT INTO inbox VALUES (?, ?)"
                        streaming.writes(key).execute(insert, (key, activity.id))
                        taken.append((key, activity.id))
                        if len(taken) == len(emu.agents):
                            break  # the last one taken is not committed: nor is its row
            await root.close()
    got = rows(db, "SELECT agent, id FROM inbox")
    assert len(calls) > len(want)  # handlers ran again after failures...
    assert len(got) == len(set(got))  # ...and no row is there twice
    assert set(got) == want | set(taken[:-1])


async def test_fleet_writes_with_a_memory_store_is_a_typed_error() -> None:
    async with Emulator(seed=74, agents=1, activities_per_agent=1, clock=lambda: NOW) as emu:
        (agent,) = emu.agents
        async with Fleet(MemoryCheckpointStore(), interval=0.05, retry_delay=10.0) as fleet:
            fleet.add("a", zdactivity.Client(base_url=emu.url, auth=token(agent)))
            errors: list[BaseException] = []

            async def handler(key: str, activity: zdactivity.Activity) -> None:
                try:
                    fleet.writes(key)
                except WritesNotSupportedError as exc:
                    errors.append(exc)
                    fleet.stop()

            with pytest.raises(RuntimeError, match="while it runs"):
                fleet.writes("a")
            await asyncio.wait_for(fleet.run(handler), 10)
    assert len(errors) == 1 and isinstance(errors[0], TypeError)
    assert "MemoryCheckpointStore cannot commit writes" in str(errors[0])


# --------------------------------------------------------------------------- real processes


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_sigkilled_worker_sql_output_is_exactly_once(tmp_path: Path) -> None:
    """A worker SIGKILLed three times mid-run, restarted each time: its handler saw some
    activities twice, its inbox table holds each once."""
    async with Emulator(seed=75, agents=4, activities_per_agent=40, rate_limit=100_000) as emu:
        agents = {str(a.user_id): a for a in emu.agents}
        db = tmp_path / "checkpoints.sqlite3"
        out = tmp_path / "handled.txt"
        config = tmp_path / "worker.json"
        config.write_text(
            json.dumps(
                {
                    "url": emu.url,
                    "db": str(db),
                    "out": str(out),
                    "delay": 0.01,
                    "exact": True,
                    "agents": {key: [a.email, a.api_token] for key, a in agents.items()},
                }
            )
        )
        want = {(key, act["id"]) for key, a in agents.items() for act in emu.activities_for(a)}

        def handled() -> list[str]:
            return out.read_text().splitlines() if out.exists() else []

        async def run_until(enough: Callable[[], bool], stop: signal.Signals) -> int:
            worker = await start_script(WORKER, str(config))
            try:
                await wait_until(lambda: worker.returncode is None and enough(), within=30)
            finally:
                worker.send_signal(stop)
                async with asyncio.timeout(10):
                    await worker.wait()
            return worker.returncode

        for _ in range(3):
            target = len(handled()) + len(want) // 5
            code = await run_until(lambda: len(handled()) >= target, signal.SIGKILL)  # noqa: B023
            assert code == -signal.SIGKILL
        inbox = "SELECT id FROM inbox"
        assert await run_until(lambda: len(rows(db, inbox)) >= len(want), signal.SIGTERM) == 0
    got = rows(db, "SELECT agent, id FROM inbox")
    assert sorted(got) == sorted(want)  # each once: nothing lost, nothing twice
    calls = Counter(handled())
    print(
        f"\nhandler calls {sum(calls.values())}, repeats {sum(n - 1 for n in calls.values())}; "
        f"inbox {len(got)} rows, {len(got) - len(set(got))} duplicates"
    )

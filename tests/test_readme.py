"""The README's Python blocks and the examples run against the emulator: the docs cannot rot.

The blocks run in order in one namespace, like a reader going down the page, with top-level
``await`` allowed. The test provides what the prose leaves to the reader (``access_token``,
``agents``, ``since``, ``save_tokens``...) and points ``subdomain="acme"`` at the emulator.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis_server import RedisServer

import zdactivity
from zdactivity.checkpoint import SQLiteCheckpointStore
from zdactivity.testing import Emulator

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


def python_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)


def prepare(source: str) -> str:
    return source.replace('subdomain="acme"', "base_url=emulator_url").replace(
        "asyncio.run(main())", "await main()"
    )


async def run_block(index: int, source: str, ns: dict[str, Any]) -> None:
    code = compile(
        prepare(source), f"README.md python block {index}", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    result = eval(code, ns)
    if inspect.iscoroutine(result):
        await result


def test_the_readme_has_the_blocks_this_test_knows() -> None:
    blocks = python_blocks()
    assert len(blocks) == 11  # the last (Telemetry) runs in tests/test_otel.py
    assert sum('subdomain="acme"' in b for b in blocks) == 6


async def test_readme_python_blocks_run_against_the_emulator(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    redis_server: RedisServer,
) -> None:
    monkeypatch.chdir(tmp_path)  # checkpoints.db lands here
    saved: list[tuple[str, str]] = []

    async def save_tokens(access: str, refresh: str) -> None:
        saved.append((access, refresh))

    async with Emulator(seed=5, agents=4, activities_per_agent=30) as emu:
        first = emu.agents[0]
        monkeypatch.setenv("ZENDESK_OAUTH_TOKEN", first.oauth_token)
        expected = {a.email: [act["id"] for act in emu.activities_for(a)] for a in emu.agents}
        since = datetime.now(UTC) - timedelta(days=10)
        recent = {
            a.email: [
                act["id"] for act in emu.activities_for(a) if act["created_at"] >= f"{since:%FT%TZ}"
            ]
            for a in emu.agents
        }
        ns: dict[str, Any] = {
            "__name__": "readme",
            "asyncio": asyncio,
            "zdactivity": zdactivity,
            "emulator_url": emu.url,
            "access_token": first.oauth_token,
            "refresh_token": first.refresh_token,
            "client_secret": "emulator-secret",
            "save_tokens": save_tokens,
            "other_token": emu.agents[1].oauth_token,
            "admin_token": first.oauth_token,
            "agents": [SimpleNamespace(email=a.email, token=a.oauth_token) for a in emu.agents],
            "since": since,
        }
        blocks = python_blocks()

        # Quickstart: one agent's stream, then the count.
        await run_block(0, blocks[0], ns)
        printed = capsys.readouterr().out.splitlines()
        week_ago = f"{datetime.now(UTC) - timedelta(days=7):%FT%TZ}"
        last_week = [a for a in emu.activities_for(first) if a["created_at"] >= week_ago]
        assert 0 < len(last_week) < len(expected[first.email])
        assert len(printed) == len(last_week) + 1
        assert printed[-1].startswith("ActivityCount(value=")

        # aiohttp.web app with one client opened at startup and closed at cleanup.
        await run_block(1, blocks[1], ns)
        async with TestClient(TestServer(ns["app"])) as http:
            response = await http.get("/activities")
            assert response.status == 200
            assert [a["id"] for a in await response.json()] == expected[first.email][:20]
        # ASGI lifespan.
        await run_block(2, blocks[2], ns)
        async with ns["lifespan"](None) as state:
            count = await state["zendesk"].activities.count()
            assert count.value == len(expected[first.email])
        assert state["zendesk"].closed

        # Fan-out over every agent (with_auth views of one root client).
        await run_block(3, blocks[3], ns)
        lines = capsys.readouterr().out.splitlines()
        assert sorted(lines) == sorted(
            f"{email} {title}"
            for a in emu.agents
            for email, title in [
                (a.email, act["title"])
                for act in emu.activities_for(a)
                if act["id"] in set(recent[a.email])
            ]
        )
        assert "failed" not in "\n".join(lines)

        # The fleet worker: runs until stopped; stop it once it has caught up.
        task = asyncio.create_task(run_block(4, blocks[4], ns))
        total = sum(len(ids) for ids in expected.values())
        for _ in range(200):
            fleet = ns.get("fleet")
            if fleet is not None and sum(s.delivered for s in fleet.status().values()) >= total:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the fleet did not deliver every activity")
        ns["fleet"].stop()
        await asyncio.wait_for(task, 15)
        assert (tmp_path / "checkpoints.db").exists()
        assert ns["account"].closed

        # One agent followed with a checkpoint; leaving with break commits the one handled last.
        await run_block(5, blocks[5], ns)
        handled: list[int] = []
        stop = asyncio.Event()

        async def notify(key: str, activity: zdactivity.Activity) -> None:
            handled.append(activity.id)
            if len(handled) == 5:
                stop.set()

        ns["notify"] = notify
        async with zdactivity.Client(
            base_url=emu.url, auth=zdactivity.OAuthToken(first.oauth_token)
        ) as zd:
            await asyncio.wait_for(ns["follow"](zd, stop), 15)
        async with SQLiteCheckpointStore(tmp_path / "me.db") as store:
            saved = await store.load("me")
        assert len(handled) == 5 and saved is not None
        assert set(handled) <= saved.recent_ids

        # Past one machine: a client whose budget lives in Redis.
        ns["redis_url"] = redis_server.url
        ns["auth"] = zdactivity.OAuthToken(first.oauth_token)
        await run_block(6, blocks[6], ns)
        async with ns["zd"] as zd:
            assert (await zd.activities.count()).value == len(expected[first.email])
            assert await ns["shared"].exists(*await ns["shared"].keys("zdactivity:{acme}:*"))
        await ns["limiter"].aclose()

        # A fleet worker sharing its agents through Redis: it delivers every agent's stream.
        ns["account"] = zdactivity.Client(
            base_url=emu.url, auth=zdactivity.OAuthToken(first.oauth_token)
        )
        await run_block(7, blocks[7], ns)
        fleet = ns["fleet"]
        delivered: set[int] = set()

        async def collect(key: str, activity: zdactivity.Activity) -> None:
            delivered.add(activity.id)
            await ns["notify"](key, activity)  # the README's: output through fleet.writes

        runner = asyncio.create_task(fleet.run(collect))
        want = {i for ids in expected.values() for i in ids}
        for _ in range(400):
            if delivered >= want:
                break
            await asyncio.sleep(0.05)
        fleet.stop()
        await asyncio.wait_for(runner, 15)
        await fleet.close()
        inbox = [
            int(i)
            for key in fleet.keys
            for i in await ns["shared"].lrange(f"inbox:{{{key}}}", 0, -1)
        ]
        handled = [await ns["shared"].get(f"handled:{{{key}}}") for key in fleet.keys]
        await ns["shared"].aclose()
        assert delivered == want
        assert sorted(inbox) == sorted(want)  # each activity once, committed with its checkpoint
        assert sum(int(n or 0) for n in handled) == len(want)

        # Configuration: a fully configured client works.
        await run_block(8, blocks[8], ns)
        async with ns["zd"] as zd:
            assert (await zd.activities.count()).value == len(expected[first.email])
            assert (await ns["agent_b"].activities.count()).value == len(
                expected[emu.agents[1].email]
            )

    # Testing with the emulator: the block defines a test of the pytest plugin's fixtures; run it
    # on the emulator and client they would give (tests/test_pytest_plugin.py runs it in pytest).
    await run_block(9, blocks[9], ns)
    async with Emulator(agents=3, activities_per_agent=50) as emu:
        agent = emu.agents[0]
        async with zdactivity.Client(
            base_url=emu.url,
            auth=zdactivity.APIToken(agent.email, agent.api_token),
            retry=zdactivity.RetryPolicy().testing(),
        ) as zd:
            await ns["test_my_sync_survives_a_flaky_zendesk"](emu, zd)
        assert [r.status for r in emu.requests][:3] == [503, 500, 0]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_against_the_emulator(example: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENDESK_")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, example.name],
        cwd=example.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip()


def test_every_quickstart_has_an_example() -> None:
    assert {p.name for p in EXAMPLES} >= {"web_app.py", "fan_out.py", "worker.py"}

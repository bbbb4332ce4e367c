"""``--redis URL`` and ``zdactivity worker``, as subprocesses against the emulator and a real
redis-server (tests/redis_server.py)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis_server import RedisServer
from test_cli import (
    ROOT,
    Lines,
    LiveEmulator,
    agent_env,
    base_env,
    check_output,
    expected_pairs,
    free_port,
    json_lines,
    one_error_line,
    zd,
)

PASSWORD = "s3cret-Pa55"


@pytest.fixture(scope="module")
def live() -> Iterator[LiveEmulator]:
    live = LiveEmulator(seed=5, agents=6, activities_per_agent=40, rate_limit=5000)
    yield live
    live.close()


def redis_call(url: str, *command: str) -> object:
    """One command on the server, from the test process."""
    import redis.asyncio as aioredis

    async def go() -> object:
        client = aioredis.from_url(url)
        try:
            return await client.execute_command(*command)
        finally:
            await client.aclose()

    return asyncio.run(go())


def agents_csv(tmp_path: Path, live: LiveEmulator, n: int) -> Path:
    path = tmp_path / "agents.csv"
    rows = [f"a{i},{a.email},{a.api_token}" for i, a in enumerate(live.emu.agents[:n])]
    path.write_text("key,email,api_token\n" + "\n".join(rows) + "\n")
    return path


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("command", ["fan-out", "tail", "worker"])
def test_without_redis_py_it_says_what_to_install(tmp_path: Path, command: str) -> None:
    fake = tmp_path / "no-redis" / "redis"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named redis')\n")
    agents = tmp_path / "agents.csv"
    agents.write_text("key,oauth_token\nx,tok\n")
    args = {
        "fan-out": ["fan-out", "--agents", str(agents)],
        "tail": ["tail", "--oauth-token", "tok"],
        "worker": ["worker", "--agents", str(agents), "--group", "g"],
    }[command]
    result = subprocess.run(
        [sys.executable, "-m", "zdactivity", *args, "--redis", f"redis://:{PASSWORD}@h:1/0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **base_env(),
            "PYTHONPATH": f"{fake.parent}:{ROOT}",
            "ZENDESK_URL": "http://127.0.0.1:9",
        },
        check=False,
    )
    one_error_line(result, 2, r"--redis needs redis-py: pip install 'zdactivity\[redis\]'")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        (
            f"http://:{PASSWORD}@127.0.0.1:6379",
            r"--redis http://:\*\*\*@127.0.0.1:6379: not a Redis URL",
        ),
        (f"127.0.0.1:{PASSWORD}", r"not a Redis URL"),
        (
            f"redis://:{PASSWORD}@127.0.0.1:notaport/0",
            r"--redis redis://:\*\*\*@127.0.0.1:notaport/0",
        ),
    ],
)
def test_a_bad_url_is_exit_2_without_the_password(url: str, pattern: str) -> None:
    env = {"ZENDESK_URL": "http://127.0.0.1:9", "ZENDESK_OAUTH_TOKEN": "tok"}
    result = zd(None, "tail", "--redis", url, env=env)
    one_error_line(result, 2, pattern)
    assert PASSWORD not in result.stderr


def test_worker_needs_redis(tmp_path: Path) -> None:
    agents = tmp_path / "agents.csv"
    agents.write_text("key,oauth_token\nx,tok\n")
    env = {"ZENDESK_URL": "http://127.0.0.1:9"}
    result = zd(None, "worker", "--agents", str(agents), "--group", "g", env=env)
    one_error_line(result, 2, r"worker needs Redis: --redis URL \(or ZDACTIVITY_REDIS_URL\)")


def test_tail_state_and_redis_exclude_each_other(tmp_path: Path) -> None:
    env = {"ZENDESK_URL": "http://127.0.0.1:9", "ZENDESK_OAUTH_TOKEN": "tok"}
    args = ["tail", "--state", str(tmp_path / "s.db"), "--redis", "redis://127.0.0.1:1/0"]
    one_error_line(zd(None, *args, env=env), 2, r"--state and --redis are both given")


@pytest.mark.parametrize("command", ["fan-out", "tail", "worker"])
def test_unreachable_redis_is_exit_5_in_one_line(
    live: LiveEmulator, tmp_path: Path, command: str
) -> None:
    url = f"redis://user:{PASSWORD}@127.0.0.1:{free_port()}/0"
    agents = agents_csv(tmp_path, live, 1)
    args = {
        "fan-out": ["fan-out", "--agents", str(agents)],
        "tail": ["tail"],
        "worker": ["worker", "--agents", str(agents), "--group", "g"],
    }[command]
    env = {**agent_env(live, live.emu.agents[0]), "ZDACTIVITY_REDIS_URL": url}
    result = zd(live, *args, env=env)
    one_error_line(result, 5, r"Redis at redis://user:\*\*\*@127\.0\.0\.1:\d+/0 is unreachable")
    assert PASSWORD not in result.stderr


def test_wrong_redis_password_is_exit_3(live: LiveEmulator, redis_server: RedisServer) -> None:
    redis_call(redis_server.url, "CONFIG", "SET", "requirepass", PASSWORD)
    url = f"redis://:wrong-{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    env = agent_env(live, live.emu.agents[0])
    result = zd(live, "tail", "--redis", url, env=env)
    one_error_line(
        result, 3, r"Redis at redis://:\*\*\*@127\.0\.0\.1:\d+/0 refused the credentials"
    )
    assert PASSWORD not in result.stderr


# --------------------------------------------------------------------------- fan-out, tail


def test_fan_out_with_redis_shares_the_budget(
    live: LiveEmulator, redis_server: RedisServer, tmp_path: Path
) -> None:
    agents = agents_csv(tmp_path, live, 3)
    env = {"ZENDESK_URL": live.emu.url}
    result = zd(live, "fan-out", "--agents", str(agents), "--redis", redis_server.url, env=env)
    assert result.returncode == 0, result.stderr
    got = [(r["agent"], r["id"]) for r in json_lines(result.stdout)]
    assert len(got) == len(set(got))
    assert set(got) == expected_pairs(live, {f"a{i}": a for i, a in enumerate(live.emu.agents[:3])})
    keys = redis_call(redis_server.url, "KEYS", "zdactivity:*")
    assert isinstance(keys, list)
    host = live.emu.url.split("://", 1)[1]
    assert any(f"{{{host}}}".encode() in key for key in keys), keys  # the account's budget


def test_two_fan_outs_share_one_account_limit_without_429(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    tight = LiveEmulator(
        seed=9, agents=4, activities_per_agent=300, rate_limit=30, rate_limit_window=2
    )
    try:
        agents = agents_csv(tmp_path, tight, 4)
        expected = expected_pairs(tight, {f"a{i}": a for i, a in enumerate(tight.emu.agents)})
        env = {**base_env(), "ZENDESK_URL": tight.emu.url, "ZDACTIVITY_REDIS_URL": redis_server.url}
        args = [
            sys.executable,
            "-m",
            "zdactivity",
            "fan-out",
            "--agents",
            str(agents),
            "--page-size",
            "10",
            "--concurrency",
            "8",
        ]
        procs = [
            subprocess.Popen(
                args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
            )
            for _ in range(2)
        ]
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=180)
            assert proc.returncode == 0, stderr
            check_output(tight, stdout, stderr)
            got = {(r["agent"], r["id"]) for r in json_lines(stdout)}
            assert got == expected
        statuses = [r.status for r in tight.emu.requests]
        assert statuses.count(429) == 0, statuses.count(429)
        assert statuses.count(200) >= 2 * len(expected) // 10  # every page, twice
    finally:
        tight.close()


def test_tail_keeps_its_checkpoint_in_redis(live: LiveEmulator, redis_server: RedisServer) -> None:
    emu = live.emu
    agent = live.call(emu.add_agent, "Redis Tail Agent")
    now = datetime.now(UTC).replace(microsecond=0)
    added = [
        live.call(emu.add_activity, agent, created_at=now - timedelta(minutes=m))["id"]
        for m in (3, 2, 1)
    ]
    env = {**agent_env(live, agent), "ZDACTIVITY_REDIS_URL": redis_server.url}
    args = ["tail", "--interval", "0.3", "--key", "tail-me", "--since", "10m"]
    first = Lines(args, env)
    seen = [r["id"] for r in first.take(3)]
    assert seen == added
    code, rest, stderr = first.stop(signal.SIGTERM)
    check_output(live, "", stderr)
    assert code == 0, stderr
    assert rest == []
    assert redis_call(redis_server.url, "EXISTS", "zdactivity:cp:{tail-me}") == 1

    while_down = [live.call(emu.add_activity, agent)["id"] for _ in range(2)]
    second = Lines(args, env)
    again = [r["id"] for r in second.take(2)]
    time.sleep(1.0)  # a few more polls: nothing else may come
    code, rest, stderr = second.stop(signal.SIGTERM)
    check_output(live, "", stderr)
    assert code == 0, stderr
    again += [r["id"] for r in rest]
    assert sorted(again) == sorted(while_down)


# --------------------------------------------------------------------------- worker


def test_two_workers_split_the_agents_and_hand_over_on_sigterm(
    live: LiveEmulator, redis_server: RedisServer, tmp_path: Path
) -> None:
    agents = agents_csv(tmp_path, live, 6)
    env = {"ZENDESK_URL": live.emu.url, "ZDACTIVITY_REDIS_URL": redis_server.url}
    args = ["worker", "--agents", str(agents), "--group", "g1", "--interval", "0.3", "--lease", "2"]
    expected = expected_pairs(live, {f"a{i}": a for i, a in enumerate(live.emu.agents[:6])})
    total = len(expected)
    one = Lines([*args, "--worker-id", "one"], env)
    two = Lines([*args, "--worker-id", "two"], env)
    got: list[tuple[str, int]] = []
    deadline = time.monotonic() + 60
    # Both workers have joined (so both handle SIGTERM: a loaded machine may start one late).
    members: object = []
    while time.monotonic() < deadline:
        members = redis_call(redis_server.url, "ZRANGE", "zdactivity:{g1}:members", "0", "-1")
        if isinstance(members, list) and {b"one", b"two"} <= set(members):
            break
        time.sleep(0.1)
    assert isinstance(members, list) and {b"one", b"two"} <= set(members), members
    while len(set(got)) < total and time.monotonic() < deadline:
        for worker in (one, two):
            while not worker.lines.empty():
                record = json_lines(worker.lines.get())[0]
                got.append((record["agent"], record["id"]))
        time.sleep(0.1)
    assert set(got) == expected
    code, rest, stderr = one.stop(signal.SIGTERM)
    check_output(live, "", stderr)
    assert code == 0, stderr
    got += [(r["agent"], r["id"]) for r in rest]
    # Worker one's agents are now worker two's: a new activity for each agent reaches two.
    new = {
        f"a{i}": live.call(live.emu.add_activity, a)["id"]
        for i, a in enumerate(live.emu.agents[:6])
    }
    taken = {(r["agent"], r["id"]) for r in two.take(len(new), timeout=30)}
    assert taken == set(new.items())
    code, rest, stderr = two.stop(signal.SIGTERM)
    check_output(live, "", stderr)
    assert code == 0, stderr
    assert len(got) == len(set(got))  # no repeats across a graceful hand-over


def test_tail_stops_in_one_line_when_redis_goes_away(
    live: LiveEmulator, redis_server: RedisServer
) -> None:
    emu = live.emu
    agent = live.call(emu.add_agent, "Redis Outage Agent")
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    redis_call(redis_server.url, "CONFIG", "SET", "requirepass", PASSWORD)
    env = {**agent_env(live, agent), "ZDACTIVITY_REDIS_URL": url}
    tail = Lines(["tail", "--interval", "0.3", "--key", "outage", "--since", "10m"], env)
    first = live.call(emu.add_activity, agent)["id"]
    assert [r["id"] for r in tail.take(1)] == [first]
    redis_server.stop(signal.SIGKILL)
    live.call(emu.add_activity, agent)
    code = tail.proc.wait(timeout=30)
    assert tail.proc.stderr is not None and tail.proc.stdout is not None
    stderr = tail.proc.stderr.read()
    tail.reader.join(timeout=5)
    tail.proc.stderr.close()
    tail.proc.stdout.close()
    assert code == 5, stderr
    check_output(live, "", stderr)
    *before, last = stderr.splitlines()
    assert last.startswith("zdactivity: checkpoint in Redis:"), stderr
    # A request read ahead may have met the outage first: the limiter's one warning that it
    # falls back to this process's own budget may come before the error, nothing else.
    assert len(before) <= 1, stderr
    assert all(line.startswith("Redis is unreachable") for line in before), stderr
    assert PASSWORD not in stderr

"""``zdactivity worker`` when Redis goes away: it stops in one line, with exit code 5, within
``--redis-timeout`` + the documented shutdown bound (a real worker process, a real redis-server
killed under it)."""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import pytest
from redis_server import RedisServer
from test_cli import Lines, LiveEmulator, check_output
from test_cli_redis import PASSWORD, agents_csv, redis_call

from zdactivity.cli.worker import SHUTDOWN

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

REDIS_TIMEOUT = 2.0
#: The documented bound after the last heartbeat, plus a heartbeat and slack for a loaded
#: machine (interpreter start-up is before the kill, so not counted).
BOUND = REDIS_TIMEOUT + 2 * SHUTDOWN + 2 + 10


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_worker_exits_in_one_line_when_redis_is_gone(
    redis_server: RedisServer, tmp_path: Path, how: str
) -> None:
    """Killed: connections refused at once. Frozen (SIGSTOP, like a partition): every command
    hangs until its socket timeout."""
    live = LiveEmulator(seed=8, agents=2, activities_per_agent=4, rate_limit=5000)
    try:
        agents = agents_csv(tmp_path, live, 2)
        redis_call(redis_server.url, "CONFIG", "SET", "requirepass", PASSWORD)
        url = f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
        env = {"ZENDESK_URL": live.emu.url, "ZDACTIVITY_REDIS_URL": url}
        worker = Lines(
            [
                "worker",
                "--agents",
                str(agents),
                "--group",
                "outage",
                "--interval",
                "0.3",
                "--lease",
                "1.5",
                "--redis-timeout",
                f"{REDIS_TIMEOUT:g}",
            ],
            env,
        )
        first = worker.take(3, timeout=30)  # it works, and commits, through Redis
        assert {r["agent"] for r in first} <= {"a0", "a1"}
        if how == "killed":
            redis_server.stop(signal.SIGKILL)
        else:
            assert redis_server.process is not None
            redis_server.process.send_signal(signal.SIGSTOP)
        killed = time.monotonic()
        for agent in live.emu.agents[:2]:  # work arrives while Redis is away
            live.call(live.emu.add_activity, agent)
        code = worker.proc.wait(timeout=BOUND)
        took = time.monotonic() - killed
        assert worker.proc.stderr is not None and worker.proc.stdout is not None
        stderr = worker.proc.stderr.read()
        worker.reader.join(timeout=5)
        worker.proc.stderr.close()
        worker.proc.stdout.close()
    finally:
        live.close()
    assert code == 5, stderr
    check_output(live, "", stderr)
    assert PASSWORD not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("zdactivity: ")]
    assert len(lines) == 1 and stderr.splitlines()[-1] == lines[0], stderr
    pattern = (
        r"zdactivity: Redis at redis://:\*\*\*@127\.0\.0\.1:\d+/0 unreachable for \d+ s "
        r"\(--redis-timeout 2\): the worker stopped; workers that reach Redis take its agents "
        r"over$"
    )
    assert re.match(pattern, lines[0]), lines[0]
    print(f"\nthe worker exited {took:.1f}s after redis-server was {how} (bound {BOUND:.0f}s)")

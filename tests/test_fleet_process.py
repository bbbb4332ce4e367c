"""A fleet in a real process, killed with SIGKILL mid-run and restarted: nothing is lost.

The emulator runs in the test's event loop; the worker (tests/fleet_worker.py) is a separate
Python process with its own SQLite checkpoint file, so the kill is the real thing: no
``finally``, no grace period, no last checkpoint write.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import start_script, wait_until

from zdactivity.testing import Emulator

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "fleet_worker.py"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


async def start_worker(config: Path) -> asyncio.subprocess.Process:
    return await start_script(WORKER, str(config))


def alive(worker: asyncio.subprocess.Process) -> bool:
    """True while the worker runs; a worker that died on its own fails the test at once."""
    if worker.returncode is not None:
        raise AssertionError(f"the worker exited with {worker.returncode}")
    return True


def handled(out: Path) -> list[tuple[str, int]]:
    """Every complete line the worker wrote (a partial last line is not a delivery yet)."""
    if not out.exists():
        return []
    lines = out.read_text().split("\n")[:-1]
    return [(key, int(activity_id)) for key, activity_id in (line.split() for line in lines)]


async def test_a_fleet_killed_with_sigkill_and_restarted_loses_nothing(tmp_path: Path) -> None:
    async with Emulator(seed=5, agents=4, activities_per_agent=40, rate_limit=100_000) as emu:
        agents = {str(a.user_id): a for a in emu.agents}
        out = tmp_path / "handled.txt"
        config = tmp_path / "worker.json"
        config.write_text(
            json.dumps(
                {
                    "url": emu.url,
                    "db": str(tmp_path / "checkpoints.sqlite3"),
                    "out": str(out),
                    "delay": 0.01,
                    "agents": {key: [a.email, a.api_token] for key, a in agents.items()},
                }
            )
        )

        def want() -> set[tuple[str, int]]:
            return {(key, act["id"]) for key, a in agents.items() for act in emu.activities_for(a)}

        seeded = want()
        worker = await start_worker(config)
        try:
            await wait_until(
                lambda: alive(worker) and len(handled(out)) >= len(seeded) // 3, within=20
            )
        finally:
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
        assert worker.returncode == -signal.SIGKILL
        before_kill = handled(out)
        assert len(set(before_kill)) < len(seeded)  # killed mid-run, not after the work was done

        # While it is down, each agent gets new activity; the restarted worker must see it too.
        now = datetime.now(UTC)
        for a in emu.agents:
            emu.add_activity(a, created_at=now - timedelta(seconds=1))

        worker = await start_worker(config)
        try:
            await wait_until(lambda: alive(worker) and set(handled(out)) >= want(), within=20)
            worker.send_signal(signal.SIGTERM)  # a graceful stop, once everything is in
            async with asyncio.timeout(10):
                assert await worker.wait() == 0
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()

    delivered = handled(out)
    assert set(delivered) == want()  # nothing lost, nothing invented
    repeats = Counter(key for (key, _), n in Counter(delivered).items() for _ in range(n - 1))
    # At least once: the activity in hand when the process died may come again, at most that.
    assert all(n <= 1 for n in repeats.values()), repeats

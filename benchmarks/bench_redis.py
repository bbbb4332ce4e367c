"""One account budget shared by N processes through ``RedisRateLimiter``: utilisation and Redis
round trips per request, for 1, 4 and 8 processes.

    .venv/bin/python -m benchmarks.bench_redis [--tasks 25] [--limit 100] [--window 3]

Needs ``redis-server`` on the machine (a private one is started on a free loopback port). The
emulator enforces the account limit in this process; the clients are real processes
(``tests/limiter_worker.py``), each with ``tasks`` concurrent tasks listing pages. Not part of
``python -m benchmarks``: it needs Redis and takes about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from redis_server import RedisServer  # noqa: E402
from test_redis_limiter import run_processes  # noqa: E402

from zdactivity.testing import Emulator  # noqa: E402


async def measure(processes: int, tasks: int, limit: int, window: float) -> dict[str, Any]:
    duration = 2.8 * window  # three windows, none started after the deadline
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        async with Emulator(
            seed=processes, agents=processes + 1, rate_limit=limit, rate_limit_window=window
        ) as emu:
            return await run_processes(
                server.url,
                emu,
                Path(tmp),
                processes=processes,
                tasks=tasks,
                duration=duration,
                window=window,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=25)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--processes", type=int, nargs="*", default=[1, 4, 8])
    args = parser.parse_args()
    print(f"{args.limit} requests per {args.window:g} s, {args.tasks} tasks per process")
    print("| processes | answered | 429s | utilisation | Redis round trips / request |")
    print("|---:|---:|---:|---:|---:|")
    for n in args.processes:
        r = asyncio.run(measure(n, args.tasks, args.limit, args.window))
        print(
            f"| {n} | {r['answered']} | {r['too_many']} | {r['utilisation']:.0%} "
            f"| {r['round_trips_per_request']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

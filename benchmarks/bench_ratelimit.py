"""Rate-limit utilisation: many agents sharing an account budget scaled down to a short window.

Run: ``python -m benchmarks.bench_ratelimit`` (``--quick`` for a smoke run).

The emulator (child process) enforces ``limit`` requests per ``window`` seconds for the whole
account, answering 429 beyond it. ``agents`` agents each read ``windows * limit / agents``
pages of 5 through ``with_auth`` views of one client (one shared
:class:`zdactivity.RateLimiter`): exactly ``windows`` windows' worth of requests in total.
The budget allows ``limit`` per window, so
``total`` requests need at least ``ideal = (total / limit - 1) * window`` seconds (the first
window's budget is spent at once); utilisation is ``ideal / elapsed``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import zdactivity
from zdactivity.client import RequestEvent
from zdactivity.testing import Agent

from ._common import median
from ._server import emulator_process

PAGE_SIZE = 5


async def _stream_all(
    url: str, agents: list[Agent], window: float, pages: int
) -> tuple[int, int, int, float]:
    limiter = zdactivity.RateLimiter(window=window)
    statuses: list[int] = []

    def on_request(event: RequestEvent) -> None:
        statuses.append(event.status or 0)

    root = zdactivity.Client(
        base_url=url,
        auth=zdactivity.OAuthToken(agents[0].oauth_token),
        rate_limiter=limiter,
        on_request=on_request,
    )
    async with root:

        async def stream(agent: Agent) -> int:
            view = root.with_auth(zdactivity.OAuthToken(agent.oauth_token))
            # Exactly `pages` requests per agent: the stream is longer, and collect() stops
            # once the last page's activities are in (no look-ahead request).
            return len(
                await view.activities.list(page_size=PAGE_SIZE).collect(pages * PAGE_SIZE - 1)
            )

        started = time.monotonic()
        counts = await asyncio.gather(*(stream(a) for a in agents))
        elapsed = time.monotonic() - started
    return sum(counts), len(statuses), statuses.count(429), elapsed


def measure_ratelimit(
    limit: int, window: float, agents: int, windows: int, runs: int
) -> dict[str, Any]:
    pages = max(1, round(windows * limit / agents))  # requests per agent
    rows = []
    with emulator_process(
        agents=agents,
        activities_per_agent=pages * PAGE_SIZE * 2,  # more than read, whatever the 30-day cut
        rate_limit=limit,
        rate_limit_window=window,
        seed=9,
    ) as remote:
        for _ in range(runs):
            time.sleep(window * 1.2)  # each run starts in a fresh window, with a full budget
            activities, total, throttled, elapsed = asyncio.run(
                _stream_all(remote.url, remote.agents, window, pages)
            )
            ideal = (total / limit - 1) * window
            rows.append((ideal / elapsed, total, throttled, elapsed, activities))
    rows.sort()
    util, total, _, elapsed, activities = rows[len(rows) // 2]
    return {
        "limit": limit,
        "window": window,
        "agents": agents,
        "runs": runs,
        "requests": total,
        "activities": activities,
        "utilisation": util,
        "elapsed": elapsed,
        "ideal": (total / limit - 1) * window,
        "utilisations": [r[0] for r in rows],
        "throttled": sum(r[2] for r in rows),
        "median_utilisation": median([r[0] for r in rows]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        r = measure_ratelimit(limit=20, window=1.0, agents=5, windows=2, runs=1)
    else:
        r = measure_ratelimit(limit=40, window=1.0, agents=20, windows=4, runs=5)
    print(
        f"{r['requests']} requests, {r['agents']} agents, {r['limit']}/{r['window']}s: "
        f"utilisation {r['median_utilisation']:.1%} (runs {r['utilisations']}), "
        f"429s in all runs: {r['throttled']}"
    )


if __name__ == "__main__":
    main()

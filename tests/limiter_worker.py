"""A client process sharing one account budget, for tests/test_redis_limiter.py and the benchmark.

``python tests/limiter_worker.py CONFIG.json`` waits until the config's ``start`` (a wall-clock
time, so that every process begins together), then runs ``tasks`` concurrent tasks, each listing
pages through one ``Client`` with a ``RedisRateLimiter``, all stopped at ``start + duration``,
and prints one JSON line: its requests, 429s and Redis round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

import zdactivity
from zdactivity.redis import RedisRateLimiter


async def main(config: dict[str, Any]) -> dict[str, Any]:
    redis = aioredis.Redis.from_url(config["redis"])
    limiter = RedisRateLimiter(
        redis, config["account"], window=float(config["window"]), reserve=config["reserve"]
    )
    email, api_token = config["auth"]
    policy = zdactivity.RetryPolicy(max_retry_after=10.0)
    client = zdactivity.Client(
        base_url=config["url"],
        auth=zdactivity.APIToken(email, api_token),
        rate_limiter=limiter,
        retry=policy,
    )
    delay = float(config["start"]) - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    deadline = time.monotonic() + float(config["duration"])

    async def task() -> None:
        while time.monotonic() < deadline:
            async for _page in client.activities.list(page_size=10).pages():
                if time.monotonic() >= deadline:
                    break

    try:
        # At the deadline every task stops, waiting or in flight: no request starts after it.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(float(config["duration"])):
                await asyncio.gather(*(task() for _ in range(int(config["tasks"]))))
    finally:
        await client.close()
        await limiter.aclose()
        await redis.aclose()
    stats = client.stats
    return {
        "requests": stats.requests,
        "rate_limited": stats.rate_limited,
        "round_trips": limiter.round_trips,
    }


if __name__ == "__main__":
    settings = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(main(settings))), flush=True)

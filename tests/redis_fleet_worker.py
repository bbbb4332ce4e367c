"""One worker of a Redis-coordinated fleet, for tests/test_redis_fleet.py.

``python tests/redis_fleet_worker.py CONFIG.json NAME`` adds every agent of the config to a
``Fleet(RedisCheckpointStore, coordinator=RedisCoordinator(group))`` and watches its share. It
appends ``"{key} {activity id}"`` to ``{out}/{NAME}.txt`` for every activity it handles (line
buffered: a SIGKILL loses nothing handled), and every heartbeat rewrites ``{out}/{NAME}.owned``
with the agents it owns (``"{key} {fence}"`` lines). SIGTERM stops it gracefully; it then
writes ``{out}/{NAME}.json``: the saves its store refused (stale fences) and per-agent counts.

With ``"exact": true`` in the config the handler also records each activity in the Redis list
``out`` through ``fleet.writes`` only, so that it is committed together with the checkpoint.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import redis.asyncio as aioredis

import zdactivity
from zdactivity.fleet import Fleet
from zdactivity.redis import RedisCheckpointStore, RedisCoordinator


async def main(config: dict[str, Any], name: str, out: TextIO) -> None:
    agents: dict[str, list[str]] = config["agents"]  # key -> [email, api token]
    delay = float(config["delay"])
    exact = bool(config.get("exact"))
    folder = Path(config["out"])
    r = aioredis.Redis.from_url(config["redis"])
    store = RedisCheckpointStore(r)
    coordinator = RedisCoordinator(r, config["group"], worker_id=name, lease=config["lease"])
    first = next(iter(agents.values()))
    root = zdactivity.Client(base_url=config["url"], auth=zdactivity.APIToken(*first))
    fleet = Fleet(store, coordinator=coordinator, interval=0.2, jitter=0.0, page_size=20, grace=5.0)
    for key, (email, api_token) in agents.items():
        fleet.add(key, root.with_auth(zdactivity.APIToken(email, api_token)))

    async def handler(key: str, activity: zdactivity.Activity) -> None:
        out.write(f"{key} {activity.id}\n")
        await asyncio.sleep(delay)  # a handler with work to do: signals land mid-handler
        if exact:
            fleet.writes(key).rpush("out", f"{key} {activity.id}")

    async def report_owned() -> None:
        owned = folder / f"{name}.owned"
        while True:
            text = "".join(f"{k} {o.fence}\n" for k, o in coordinator.owned.items() if o.valid())
            owned.with_suffix(".tmp").write_text(text)
            os.replace(owned.with_suffix(".tmp"), owned)
            await asyncio.sleep(0.1)

    fleet.install_signal_handlers()
    reporter = asyncio.create_task(report_owned())
    try:
        await fleet.run(handler)
    finally:
        reporter.cancel()
        (folder / f"{name}.owned").write_text("")
        summary = {
            "refused": store.refused,
            "refused_claims": store.refused_claims,
            "fenced_out": {k: s.fenced_out for k, s in fleet.status().items() if s.fenced_out},
        }
        (folder / f"{name}.json").write_text(json.dumps(summary))
        await root.close()
        await r.aclose()


if __name__ == "__main__":
    settings = json.loads(Path(sys.argv[1]).read_text())
    worker = sys.argv[2]
    with open(Path(settings["out"]) / f"{worker}.txt", "a", buffering=1) as handled:
        asyncio.run(main(settings, worker, handled))

"""A fleet worker process for tests/test_fleet_process.py.

``python tests/fleet_worker.py CONFIG.json`` watches the agents the config names with a
``Fleet`` and a ``SQLiteCheckpointStore``, and appends ``"{key} {activity id}"`` to the config's
``out`` file for every activity it handles, one line each, written through at once (a SIGKILL
loses nothing that was handled). SIGTERM stops it gracefully. With ``"exact": true`` the handler
also inserts each activity into the table ``inbox`` of the checkpoint file, through
``fleet.writes`` only (committed in the checkpoint's transaction).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any, TextIO

import zdactivity
from zdactivity.checkpoint import SQLiteCheckpointStore
from zdactivity.fleet import Fleet


async def main(config: dict[str, Any], out: TextIO) -> None:
    agents: dict[str, list[str]] = config["agents"]  # key -> [email, api token]
    delay = float(config["delay"])
    exact = bool(config.get("exact"))
    if exact:
        with sqlite3.connect(config["db"]) as db:
            db.execute("CREATE TABLE IF NOT EXISTS inbox (agent TEXT, id INTEGER)")
        db.close()
    async with SQLiteCheckpointStore(config["db"]) as store:
        first = next(iter(agents.values()))
        root = zdactivity.Client(base_url=config["url"], auth=zdactivity.APIToken(*first))
        fleet = Fleet(store, interval=0.2, jitter=0.0, page_size=10, grace=5.0)
        for key, (email, api_token) in agents.items():
            fleet.add(key, root.with_auth(zdactivity.APIToken(email, api_token)))

        async def handler(key: str, activity: zdactivity.Activity) -> None:
            out.write(f"{key} {activity.id}\n")
            await asyncio.sleep(delay)  # a handler with work to do: the kill lands mid-run
            if exact:
                fleet.writes(key).execute("INSERT INTO inbox VALUES (?, ?)", (key, activity.id))

        fleet.install_signal_handlers()
        try:
            await fleet.run(handler)
        finally:
            await root.close()


if __name__ == "__main__":
    settings = json.loads(Path(sys.argv[1]).read_text())
    with open(settings["out"], "a", buffering=1) as handled:  # line-buffered: written at once
        asyncio.run(main(settings, handled))

"""A worker that follows agents with durable checkpoints (Fleet).

It runs until SIGTERM or Ctrl-C, then commits and exits; restarted, it carries on where it
stopped (checkpoints in ./checkpoints.db, or $CHECKPOINTS). Against the emulator it stops by
itself once it has caught up with every agent.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

from _account import account

import zdactivity
from zdactivity.checkpoint import SQLiteCheckpointStore
from zdactivity.fleet import Fleet


async def main() -> None:
    async with account() as acct:
        emulated = acct.emulator is not None
        scratch = tempfile.TemporaryDirectory() if emulated else None
        path = os.environ.get("CHECKPOINTS", "checkpoints.db")
        if scratch is not None:  # a throwaway store: the emulator's data is new each run
            path = os.path.join(scratch.name, "checkpoints.db")
        expected = (
            sum(len(acct.emulator.activities_for(a)) for a in acct.emulator.agents)
            if acct.emulator
            else None
        )
        handled = 0
        root = zdactivity.Client(**acct.where, auth=acct.auth)

        async with SQLiteCheckpointStore(path) as store:
            fleet = Fleet(store, interval=30 if not emulated else 1)

            async def notify(key: str, activity: zdactivity.Activity) -> None:
                nonlocal handled
                handled += 1
                if handled <= 5:
                    print(key, activity.created_at, activity.title)
                if expected is not None and handled >= expected:
                    fleet.stop()  # the demo is over: stop, commit, return

            for key, auth in acct.agents.items():
                fleet.add(key, root.with_auth(auth))
            fleet.install_signal_handlers()  # SIGTERM / SIGINT: stop polling, finish, commit
            await fleet.run(notify)
            await fleet.close()
        print(f"handled {handled} activities; checkpoints in {path}")
        if scratch is not None:
            scratch.cleanup()


if __name__ == "__main__":
    asyncio.run(main())

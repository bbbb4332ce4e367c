"""A worker that follows agents with durable checkpoints (Fleet).

It runs until SIGTERM or Ctrl-C, then commits and exits; restarted, it carries on where it
stopped (checkpoints in ./checkpoints.db, or $CHECKPOINTS). Against the emulator it stops by
itself once it has caught up with every agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile

from _account import account

import zdactivity
from zdactivity.checkpoint import SQLiteCheckpointStore
from zdactivity.fleet import Fleet


async def main() -> None:
    async with account() as acct, contextlib.AsyncExitStack() as stack:
        emulator = acct.emulator
        if emulator is None:
            path = os.environ.get("CHECKPOINTS", "checkpoints.db")
            expected = None
        else:  # a throwaway store, removed at the end: the emulator's data is new each run
            path = os.path.join(stack.enter_context(tempfile.TemporaryDirectory()), "ckpt.db")
            expected = sum(len(emulator.activities_for(a)) for a in emulator.agents)
        handled = 0
        root = acct.client()

        async with SQLiteCheckpointStore(path) as store:
            fleet = Fleet(store, interval=30 if emulator is None else 1)

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
        if emulator is None:
            print(f"handled {handled} activities; checkpoints in {path}")
        else:
            print(
                f"handled {handled} activities of the emulator; its throwaway checkpoints are gone"
            )


if __name__ == "__main__":
    asyncio.run(main())

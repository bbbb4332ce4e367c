"""``zdactivity tail``: follow one agent's stream, printing each new activity once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Mapping
from datetime import UTC, datetime

from .._signals import signal_handlers
from ..checkpoint import CheckpointStore, MemoryCheckpointStore, SQLiteCheckpointStore
from ..client import Client
from .arguments import SINCE_HELP, Parser, Parsers, interval, optional_since
from .common import EXIT_INTERRUPTED, EXIT_OK, UsageError
from .credentials import client_from, identity, run_with_client
from .output import JSONLines, activity_record
from .redis_options import (
    add_redis_option,
    connect,
    redis_connection,
    redis_errors,
    redis_url,
    shared_limiter,
)

__all__ = ["register"]

#: How long a poll in flight may go on after a stop signal before it is cancelled.
BACKSTOP = 2.0


class _Stopped(Exception):
    """Raised out of ``tail``'s sleep when a signal asks it to stop."""


def register(sub: Parsers, parents: list[Parser]) -> None:
    tail = sub.add_parser(
        "tail",
        parents=parents,
        help="follow the agent's stream, printing each new activity once",
        description="Poll the agent's stream and print each new activity as a JSON line. "
        "It starts from NOW: only activities created after it starts are printed, unless "
        "--since says otherwise (--since 30d: the whole 30-day window first) or --state FILE "
        "holds a checkpoint, which wins over both. With --state, progress is saved after each "
        "printed activity, so a restart continues where the last run stopped. Ctrl-C stops it "
        "(exit 130), SIGTERM too (exit 0).",
    )
    tail.add_argument(
        "--interval",
        type=interval,
        default=60.0,
        metavar="SECONDS",
        help="seconds between polls (default 60)",
    )
    tail.add_argument("--state", metavar="FILE", help="SQLite checkpoint file to resume from")
    tail.add_argument(
        "--since",
        help="where to start without a checkpoint (default: now). " + SINCE_HELP,
    )
    tail.add_argument("--key", help="the checkpoint's key in FILE (default: the agent)")
    add_redis_option(
        tail,
        "share the account's request budget with every process using it, and keep the "
        "checkpoint in Redis instead of --state",
    )
    tail.set_defaults(run=run)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    url = redis_url(args, env)
    if url is None:
        return run_with_client(tail_activities)(args, env)
    if args.state:
        raise UsageError("--state and --redis are both given: the checkpoint goes to one")
    redis = connect(url)
    client = client_from(args, env, limiter_for=shared_limiter(redis))
    from ..redis import RedisCheckpointStore  # redis-py is there: connect() checked

    async def go() -> int:
        async with client, redis_connection(redis, url):
            return await tail_activities(args, client, RedisCheckpointStore(redis))

    with redis_errors(url):
        return asyncio.run(go())


class _Stop:
    """SIGINT / SIGTERM ask ``tail`` to stop: at once between polls; a poll in flight is
    cancelled after :data:`BACKSTOP` seconds; a second signal cancels at once."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signalled: list[int] = []
        self._task = asyncio.current_task()
        self._backstop: asyncio.TimerHandle | None = None

    def __call__(self, signum: int) -> None:
        task = self._task
        if self.signalled and task is not None:
            task.cancel()  # a second signal: stop now
        self.signalled.append(signum)
        self.event.set()
        if task is not None and self._backstop is None:
            # A poll in flight (a slow server, retries) is cancelled after a moment: the
            # checkpoint was committed before the poll began, so nothing is lost.
            self._backstop = asyncio.get_running_loop().call_later(BACKSTOP, task.cancel)

    def disarm(self) -> None:
        if self._backstop is not None:
            self._backstop.cancel()

    async def sleep(self, seconds: float) -> None:
        """The watcher's sleep: ``seconds``, or until a signal."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)
        if self.event.is_set():
            raise _Stopped

    def exit_code(self) -> int:
        if self.signalled and self.signalled[0] == signal.SIGTERM:
            return EXIT_OK
        return EXIT_INTERRUPTED if self.signalled else EXIT_OK


async def tail_activities(
    args: argparse.Namespace, client: Client, store: CheckpointStore | None = None
) -> int:
    # Without --since (and no checkpoint), from now: `tail` follows, it does not dump 30 days.
    since = optional_since(args.since) or datetime.now(UTC)
    stop = _Stop()
    if store is None:
        store = SQLiteCheckpointStore(args.state) if args.state else MemoryCheckpointStore()
    out = JSONLines(flush_each=True)
    with signal_handlers(asyncio.get_running_loop(), stop):
        try:
            watcher = client.activities.watch(
                since=since,
                interval=args.interval,
                checkpoint=store,
                key=args.key or identity(client),
                sleep=stop.sleep,
            )
            try:
                # A clean exit commits the activity printed last; one that failed to print
                # (a closed pipe) is not committed, so it comes again next time.
                async with watcher:
                    async for activity in watcher:
                        out.write(activity_record(activity))
                        if stop.event.is_set():
                            break
            except (_Stopped, asyncio.CancelledError):
                pass
            finally:
                stop.disarm()
        finally:
            await store.close()
    return stop.exit_code()

"""``zdactivity worker --redis URL --agents FILE --group NAME``: one worker of a fleet shared
through Redis.

Every worker of a group is given the same agents file; each watches only the agents it owns
(:class:`~zdactivity.redis.RedisCoordinator`), takes over a dead worker's agents, and keeps their
checkpoints in Redis with fenced saves (:class:`~zdactivity.redis.RedisCheckpointStore`); all of
them share the account's request budget (:class:`~zdactivity.redis.RedisRateLimiter`).
Activities go to stdout as JSON lines carrying the agent's key, each committed once written.
SIGTERM or Ctrl-C commits and releases the worker's agents at once, so the others take them
over without waiting for the lease to expire (exit 0 on SIGTERM, 130 on Ctrl-C).

Without Redis a worker can neither commit nor keep its agents, and other workers that still
reach Redis take them over when their leases lapse. So once no heartbeat has reached Redis for
``--redis-timeout`` seconds (30), the worker stops (handlers in progress get a few seconds),
prints one line, ``zdactivity: Redis at URL unreachable for N s: ...``, and exits with code 5,
within ``--redis-timeout`` + 2 x :data:`SHUTDOWN` + 2 seconds of its last heartbeat, whether
Redis refuses connections or hangs. Nothing is lost: what it handled but could not commit is
delivered again by the next owner.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._signals import signal_handlers
from ..fleet import Fleet
from ..models import Activity
from .agents_file import AgentsFileError, AgentSpec, read_agents
from .arguments import Parser, Parsers, add_page_size, interval, optional_since
from .common import EXIT_INTERRUPTED, EXIT_NETWORK, EXIT_OK, UsageError, say
from .credentials import client_from
from .output import JSONLines, activity_record
from .redis_options import (
    ENV_VAR,
    RedisFailure,
    add_redis_option,
    connect,
    redacted,
    redis_connection,
    redis_errors,
    redis_url,
    shared_limiter,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..client import Client

__all__ = ["SHUTDOWN", "register"]

#: Seconds a worker that lost Redis gives its fleet to stop, then as long again to its tasks
#: once cancelled: a bound on the exit, whatever Redis (or a handler) does.
SHUTDOWN = 5.0


def register(sub: Parsers, parents: list[Parser]) -> None:
    worker = sub.add_parser(
        "worker",
        parents=parents,
        help="run one worker of a fleet shared through Redis (agents split between workers)",
        description="Start the same command, with the same agents FILE (CSV or TOML, as for "
        "fan-out) and group NAME, on several machines: each worker watches its share of the "
        "agents, takes over those of a worker that dies, and prints their activities as JSON "
        "lines. Checkpoints live in Redis (enable AOF for durable ones). SIGTERM or Ctrl-C "
        "hands the worker's agents over at once.",
    )
    add_redis_option(worker, "the Redis holding the group, the checkpoints and the budget")
    worker.add_argument("--agents", required=True, metavar="FILE", help="CSV or .toml file")
    worker.add_argument(
        "--group", required=True, metavar="NAME", help="the fleet's name, shared by its workers"
    )
    worker.add_argument(
        "--worker-id",
        help="this worker's name in the group (default: host name, pid and a random suffix)",
    )
    worker.add_argument(
        "--lease",
        type=interval,
        default=10.0,
        help="seconds a silent worker keeps its agents before others take them (default 10)",
    )
    worker.add_argument(
        "--redis-timeout",
        type=interval,
        default=30.0,
        metavar="S",
        help="seconds without reaching Redis after which the worker stops and exits with code 5 "
        "(default 30)",
    )
    worker.add_argument("--interval", type=interval, default=60.0, help="seconds between polls")
    worker.add_argument("--since", help="where an agent without a checkpoint starts")
    add_page_size(worker)
    worker.set_defaults(run=run)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        specs = read_agents(args.agents)
    except AgentsFileError as exc:
        raise UsageError(str(exc)) from None
    group = args.group
    if not group.strip() or not group.isprintable() or any(c in group for c in "{}"):
        raise UsageError("--group must be a non-empty, printable name without { or }")
    url = redis_url(args, env)
    if url is None:
        raise UsageError(f"worker needs Redis: --redis URL (or {ENV_VAR})")
    redis = connect(url)
    root = client_from(args, env, specs[0].auth, limiter_for=shared_limiter(redis))
    optional_since(args.since)  # usage errors before anything starts
    with redis_errors(url):
        return asyncio.run(work(args, root, specs, redis, url))


async def work(
    args: argparse.Namespace, root: Client, specs: list[AgentSpec], redis: Redis, url: str
) -> int:
    from ..redis import RedisCheckpointStore, RedisCoordinator

    out = JSONLines(flush_each=True)
    signalled: list[int] = []
    async with root, redis_connection(redis, url):
        # The group's own checkpoints: two groups may name their agents alike.
        store = RedisCheckpointStore(redis, key_prefix=f"zdactivity:{args.group}")
        coordinator = RedisCoordinator(
            redis,
            args.group,
            worker_id=args.worker_id,
            lease=args.lease,
        )
        fleet = Fleet(
            store,
            coordinator=coordinator,
            since=optional_since(args.since),
            interval=args.interval,
            page_size=args.page_size,
        )
        for spec in specs:
            fleet.add(spec.key, root.with_auth(spec.auth))

        async def handler(key: str, activity: Activity) -> None:
            out.write(activity_record(activity, agent=key))

        def on_signal(signum: int) -> None:
            signalled.append(signum)
            fleet.stop()

        loop = asyncio.get_running_loop()
        cut_off: list[float] = []  # seconds without Redis, once the worker gave up

        async def watch_redis() -> None:
            started = loop.time()
            while True:
                await asyncio.sleep(min(1.0, args.redis_timeout / 4))
                silent = loop.time() - (coordinator.last_contact or started)
                if silent >= args.redis_timeout:
                    cut_off.append(silent)
                    fleet.stop()
                    return

        with signal_handlers(loop, on_signal):
            runner = asyncio.create_task(fleet.run(handler))
            watchdog = asyncio.create_task(watch_redis())
            try:
                await asyncio.wait({runner, watchdog}, return_when=asyncio.FIRST_COMPLETED)
                if cut_off:
                    await _stop_within(runner, SHUTDOWN)
                else:
                    await runner
            finally:
                watchdog.cancel()
                out.flush()
                with contextlib.suppress(TimeoutError):  # its saves ended with the tasks
                    await asyncio.wait_for(store.close(), 1.0 if cut_off else SHUTDOWN)
        if cut_off:
            raise RedisFailure(
                EXIT_NETWORK,
                f"Redis at {redacted(url)} unreachable for {cut_off[0]:.0f} s (--redis-timeout "
                f"{args.redis_timeout:g}): the worker stopped; workers that reach Redis take its "
                "agents over",
            )
        for key, status in sorted(fleet.status().items()):
            if status.last_error is not None:
                say(f"agent {key}: {status.last_error}")
    if signalled and signalled[0] != signal.SIGTERM:  # SIGTERM: a clean stop, exit 0
        return EXIT_INTERRUPTED
    return EXIT_OK


async def _stop_within(runner: asyncio.Task[None], seconds: float) -> None:
    """Wait ``seconds`` for the stopping fleet; then cancel every task left (handlers, polls,
    saves retrying against a Redis that is gone) and wait as long again for them."""
    done, _ = await asyncio.wait({runner}, timeout=seconds)
    if not done:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.wait(others, timeout=seconds)
    if runner.done() and not runner.cancelled():
        runner.exception()  # retrieved: its failure is the lost Redis, reported by the caller

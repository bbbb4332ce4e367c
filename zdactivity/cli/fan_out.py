"""``zdactivity fan-out --agents FILE``: many agents' activities at once, as JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..client import Client
from ..fanout import AgentError, fan_out
from .agents_file import AgentsFileError, AgentSpec, read_agents
from .arguments import SINCE_HELP, Parser, Parsers, add_page_size, optional_since, positive_int
from .common import EXIT_API, EXIT_OK, UsageError, say
from .credentials import client_from
from .output import JSONLines, activity_record
from .redis_options import (
    add_redis_option,
    connect,
    redis_connection,
    redis_errors,
    redis_url,
    shared_limiter,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["register"]


def register(sub: Parsers, parents: list[Parser]) -> None:
    fan = sub.add_parser(
        "fan-out",
        parents=parents,
        help="stream many agents' activities (credentials from a file) as JSON lines",
        description="FILE is CSV (header key,email,api_token or key,oauth_token) or TOML "
        "([[agent]] tables with the same keys). Each line of output carries the agent's "
        "key; failed agents are reported on stderr (exit 4).",
    )
    fan.add_argument("--agents", required=True, metavar="FILE", help="CSV or .toml file")
    fan.add_argument("--since", help=SINCE_HELP + " (default: all of them)")
    fan.add_argument(
        "--concurrency", type=positive_int, default=20, help="requests in flight (default 20)"
    )
    add_page_size(fan)
    add_redis_option(fan, "share the account's request budget with every process using it")
    fan.set_defaults(run=run)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    # The account comes from the flags/env, the credentials from the agents file.
    try:
        specs = read_agents(args.agents)
    except AgentsFileError as exc:
        raise UsageError(str(exc)) from None
    url = redis_url(args, env)
    redis = connect(url) if url else None
    limiter_for = shared_limiter(redis) if redis is not None else None
    root = client_from(args, env, specs[0].auth, limiter_for=limiter_for)
    with redis_errors(url):
        return asyncio.run(stream_agents(args, root, specs, redis=redis, url=url))


async def stream_agents(
    args: argparse.Namespace,
    root: Client,
    specs: list[AgentSpec],
    *,
    redis: Redis | None = None,
    url: str | None = None,
) -> int:
    since = optional_since(args.since)
    out = JSONLines()
    delivered = 0
    failures: list[AgentError[str]] = []
    async with root, redis_connection(redis, url):
        started = time.perf_counter()
        clients = {spec.key: root.with_auth(spec.auth) for spec in specs}
        try:
            async for key, activity in fan_out(
                clients, since=since, page_size=args.page_size, concurrency=args.concurrency
            ):
                out.write(activity_record(activity, agent=key))
                delivered += 1
        except* AgentError as group:
            failures.extend(e for e in group.exceptions if isinstance(e, AgentError))
        finally:
            out.flush()
    for failure in failures:
        say(f"agent {failure.key} failed: {failure.error}")
    elapsed = time.perf_counter() - started
    say(
        f"{delivered} activities from {len(specs) - len(failures)} of {len(specs)} agents "
        f"in {elapsed:.2f} s ({root.stats.requests} requests, {root.stats.retries} retries)"
    )
    return EXIT_API if failures else EXIT_OK

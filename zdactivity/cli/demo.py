"""``zdactivity demo``: fan out over a realistic emulated account and print a summary."""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from .._version import __version__
from ..auth import APIToken
from ..client import Client
from ..fanout import AgentError, fan_out
from ..models import Activity
from ..protocol import MAX_PAGE_SIZE
from ..ratelimit import RateLimiter
from ..retry import RetryPolicy
from .arguments import Parsers, add_page_size, whole_number
from .common import EXIT_API, EXIT_OK

if TYPE_CHECKING:
    from ..testing import Emulator, RecordedRequest

__all__ = ["register", "run_demo"]

PLAN_LIMIT = 700  # Enterprise: requests per minute for the whole account
PLAN_WINDOW = 60.0
TARGET_SECONDS = 3.0  # how long the scaled rate limit should make the fan-out take
LIST_PATH = "/api/v2/activities"


def register(sub: Parsers) -> None:
    demo = sub.add_parser(
        "demo",
        help="fan out over a built-in emulated account and print a summary",
        description="Start the built-in emulator with a realistic account (activities spread "
        "over the last 31 days, of which Zendesk lists 30; a scaled-down Enterprise rate "
        "limit; six injected faults), fan out over every agent and print what happened: "
        "activities listed, requests the emulator saw and how it answered them, retries.",
    )
    demo.add_argument(
        "--agents", type=whole_number(1, 10_000), default=200, help="1..10,000 (default 200)"
    )
    demo.add_argument(
        "--activities",
        type=whole_number(0, 10_000),
        default=50,
        help="activities per agent, 0..10,000 (default 50)",
    )
    add_page_size(demo, help=f"1..{MAX_PAGE_SIZE} (default {MAX_PAGE_SIZE})")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    return asyncio.run(run_demo(args.agents, args.activities, args.page_size))


def _scaled_limit(expected_requests: int) -> tuple[int, float]:
    """A 1-second window whose budget lets ``expected_requests`` through in about
    ``TARGET_SECONDS`` (never slower than the real plan's pace)."""
    window = 1.0
    per_second = max(PLAN_LIMIT / PLAN_WINDOW, expected_requests / TARGET_SECONDS)
    return math.ceil(per_second * window), window


async def _progress(state: dict[str, int], started: float) -> None:
    try:
        while True:
            await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - started
            sys.stderr.write(
                f"\r  {state['activities']:>7} activities, {state['requests']:>5} requests, "
                f"{elapsed:5.1f} s"
            )
            sys.stderr.flush()
    finally:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


async def run_demo(
    agents: int,
    activities: int,
    page_size: int,
    actors: int = 80,
    *,
    on_done: Callable[[Emulator], None] | None = None,
) -> int:
    """Run the demo and print its summary; ``on_done`` sees the emulator before it stops (the
    tests compare the printed figures with its own counts)."""
    from ..testing import Emulator, Fault

    expected = agents * (activities // page_size + 1)
    limit, window = _scaled_limit(expected)
    async with Emulator(
        seed=7,
        agents=agents,
        actors=actors,
        activities_per_agent=activities,
        rate_limit=limit,
        rate_limit_window=window,
    ) as emu:
        roster = emu.agents
        # A few of the failures a real account sees, spread over the agents: the client
        # retries them (a 429 pauses the whole account for its Retry-After).
        faults = [
            Fault.status(500),
            Fault.status(429, retry_after=1),
            Fault.status(503, retry_after=1),
            Fault.reset(),
            Fault.reset(),  # two in a row: aiohttp silently resends a GET reset on reuse
            Fault.status(502),
        ]
        for i, fault in enumerate(faults):
            if roster:
                emu.inject(fault, path=LIST_PATH, agent=roster[(i * 37 + 11) % len(roster)])
        print(f"zdactivity {__version__} demo, against the built-in emulator at {emu.url}")
        print(
            f"account:     {agents} agents, {activities} activities each over the last 31 days "
            f"(Zendesk lists 30); {len(faults)} faults injected"
        )
        scale = limit / window / (PLAN_LIMIT / PLAN_WINDOW)
        pace = f"{scale:.1f}x faster: the demo takes seconds" if scale > 1.05 else "same pace"
        print(
            f"rate limit:  {PLAN_LIMIT} requests / {PLAN_WINDOW:.0f} s (Enterprise plan), "
            f"scaled to {limit} requests / {window:.0f} s ({pace})",
            flush=True,
        )

        root_agent = roster[0] if roster else emu.add_agent("Demo Admin", role="admin")
        limiter = RateLimiter(limit=limit, window=window)
        policy = RetryPolicy(max_tries=6, max_time=30)
        state = {"activities": 0, "requests": 0}
        latest: list[tuple[float, int, str, Activity]] = []  # a min-heap of the newest five
        verbs: Counter[str] = Counter()
        failed: list[AgentError[str]] = []
        started = time.perf_counter()
        progress = asyncio.create_task(_progress(state, started)) if sys.stderr.isatty() else None
        async with Client(
            base_url=emu.url,
            auth=APIToken(root_agent.email, root_agent.api_token),
            rate_limiter=limiter,
            retry=policy,
        ) as root:
            clients = {a.email: root.with_auth(APIToken(a.email, a.api_token)) for a in roster}
            names = {a.email: a.name for a in roster}
            try:
                try:
                    async for email, activity in fan_out(
                        clients, page_size=page_size, concurrency=50
                    ):
                        state["activities"] += 1
                        state["requests"] = root.stats.requests
                        verbs[activity.verb] += 1
                        item = (activity.created_at.timestamp(), activity.id, email, activity)
                        if len(latest) < 5:
                            heapq.heappush(latest, (*item[:3], activity.detach()))
                        elif item[:2] > latest[0][:2]:
                            heapq.heapreplace(latest, (*item[:3], activity.detach()))
                except* AgentError as group:
                    failed.extend(e for e in group.exceptions if isinstance(e, AgentError))
            finally:
                if progress is not None:
                    progress.cancel()
                    await asyncio.gather(progress, return_exceptions=True)
            elapsed = time.perf_counter() - started
            stats = root.stats
        seen = emu.requests
        pages = sum(1 for r in seen if r.path == LIST_PATH and r.status == 200)
        listable = sum(len(emu.activities_for(a)) for a in roster)
        older = sum(len(emu.activities_for(a, window=False)) for a in roster) - listable
        if on_done is not None:
            on_done(emu)
        total = state["activities"]
        print(f"agents:      {len(roster)} ({len(roster) - len(failed)} streamed in full)")
        complete = "all" if total == listable else f"{total:,} of the {listable:,}"
        print(
            f"activities:  {total} in {pages} pages: {complete} of the last 30 days "
            f"({older:,} older are outside the window)"
        )
        print(f"requests:    {len(seen)} seen by the emulator ({_statuses(seen)})")
        # aiohttp sends an idempotent request again, once, when a reused connection is reset
        # before the answer: the emulator sees it, zdactivity does not.
        resent = len(seen) - stats.requests
        print(
            f"             {stats.requests} sent by zdactivity, {stats.retries} of them retries"
            + (f"; aiohttp resent {resent} itself after a reset" if resent > 0 else "")
        )
        print(f"elapsed:     {elapsed:.2f} s")
        scaled = f", under the rate limit scaled {scale:.1f}x" if scale > 1.05 else ""
        print(f"throughput:  {total / elapsed if elapsed > 0 else 0:,.0f} activities/s{scaled}")
        print("verbs:       " + ", ".join(f"{v} {n}" for v, n in verbs.most_common()))
        for error in failed:
            print(f"failed:      {names.get(error.key, error.key)}: {error.error}")
        print("latest:")
        for _ts, _id, email, activity in sorted(latest, reverse=True):
            name = names.get(email, email)
            actor = activity.actor
            who = actor.name if actor is not None else "?"
            print(
                f"  {activity.created_at:%Y-%m-%d %H:%M}  {who:<22} -> {name:<22} {activity.title}"
            )
    return EXIT_API if failed else EXIT_OK


def _statuses(seen: Sequence[RecordedRequest]) -> str:
    """``200 answered 200; 1 429, 2 resets``: what the emulator did with the requests."""
    counts = Counter(r.status for r in seen)
    natural = Counter(r.status for r in seen if r.fault is None)  # not injected
    parts = [
        f"{counts[s]} {s}" + (f" ({natural[s]} from the rate limit itself)" if natural[s] else "")
        if s == 429
        else f"{counts[s]} {s}" + (f" ({natural[s]} not injected)" if natural[s] else "")
        for s in sorted(counts)
        if s and s != 200
    ]
    if counts[0]:
        parts.append(f"{counts[0]} reset{'s' if counts[0] > 1 else ''}")
    answered = f"{counts[200]} answered 200"
    return f"{answered}; {', '.join(parts)}" if parts else answered

"""Lazy sideload merge vs decoding everything eagerly, on one 100-activity page.

Run: ``python -m benchmarks.bench_sideloads`` (add ``--quick`` for a smoke run).

The page comes from the emulator (full inline and sideloaded user records, as Zendesk sends).
"Eager" is the usual msgspec approach: every inline ``actor``/``user`` and every sideloaded record
decoded into ``User`` structs up front. All figures are medians of several runs, reported as
ratios measured side by side in this one run. The lazy cases start from an empty user cache
(a fresh client) except the one labelled "warm cache", whose cache holds the page's users before
its timing starts (a steady stream's later pages).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import msgspec

from zdactivity import protocol
from zdactivity.models import User, UserCache
from zdactivity.testing import Emulator


class EagerActivity(msgspec.Struct):
    id: int
    url: str | None = None
    verb: str = ""
    title: str = ""
    actor_id: int | None = None
    user_id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    object: dict[str, Any] = {}
    target: dict[str, Any] = {}
    actor: User | None = None
    user: User | None = None


class EagerPage(msgspec.Struct):
    activities: list[EagerActivity]
    actors: list[User] = []
    users: list[User] = []


EAGER = msgspec.json.Decoder(EagerPage)


async def fetch_page(actors: int) -> bytes:
    async with Emulator(seed=11, agents=1, actors=actors, activities_per_agent=100) as emu:
        agent = emu.agents[0]
        headers = {"Authorization": f"Bearer {agent.oauth_token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{emu.url}/api/v2/activities?page[size]=100", headers=headers) as resp,
        ):
            return await resp.read()


def medians(cases: dict[str, Callable[[], object]], runs: int, inner: int) -> dict[str, float]:
    """Median seconds per call of each case; cases run round-robin so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            gc.collect()
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--actors", type=int, default=20)
    args = parser.parse_args()
    runs, inner = (3, 5) if args.quick else (15, 100)
    body = asyncio.run(fetch_page(args.actors))
    # A client's cache, warmed by the first call of the "warm" case (outside its timing) and
    # reused after: what a steady stream that repeats its actors sees. Every other lazy case
    # starts from an empty cache (a fresh client), so no decode is saved outside the timing.
    users = UserCache()

    def lazy_decode() -> object:
        return protocol.decode_page(body, cache=UserCache())

    def lazy_actor_names() -> object:
        return [
            a.actor.name
            for a in protocol.decode_page(body, cache=UserCache())
            if a.actor is not None
        ]

    def lazy_actor_names_warm() -> object:
        return [
            a.actor.name for a in protocol.decode_page(body, cache=users) if a.actor is not None
        ]

    def lazy_actor_and_user() -> object:
        return [
            (a.actor, a.user)
            for a in protocol.decode_page(body, cache=UserCache())
            if a.actor is not None and a.user is not None
        ]

    def eager_decode() -> object:
        return EAGER.decode(body)

    def eager_actor_names() -> object:
        return [a.actor.name for a in EAGER.decode(body).activities if a.actor is not None]

    def json_loads() -> object:
        import json

        return json.loads(body)

    page = protocol.decode_page(body, cache=users)
    distinct = len({a.actor_id for a in page} | {a.user_id for a in page})
    results = medians(
        {
            "lazy: decode page only": lazy_decode,
            "lazy: decode + .actor.name on all": lazy_actor_names,
            "lazy, warm cache (not cold!): same": lazy_actor_names_warm,
            "lazy: decode + .actor and .user on all": lazy_actor_and_user,
            "eager msgspec: decode everything": eager_decode,
            "eager msgspec: decode + .actor.name": eager_actor_names,
            "json.loads (no models)": json_loads,
        },
        runs,
        inner,
    )
    base = results["eager msgspec: decode + .actor.name"]
    print(f"page: {len(body):,} bytes, {len(page)} activities, {distinct} distinct users")
    print(f"{'case':<42} {'us/page':>9} {'vs eager':>9}")
    for name, seconds in results.items():
        print(f"{name:<42} {seconds * 1e6:>9.1f} {seconds / base:>8.2f}x")


if __name__ == "__main__":
    main()

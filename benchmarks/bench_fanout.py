"""Fan-out scaling: N agents x 3 pages against an emulator with injected latency.

Run: ``python -m benchmarks.bench_fanout`` (``--quick`` for a smoke run).

The emulator runs in its own process with ``--latency`` seconds added to every request. For each
agent count the wall time of ``zdactivity.fan_out`` is compared with the latency-bound ideal
(each agent needs 3 sequential requests; ``concurrency`` agents proceed at once, so the ideal is
``ceil(N / concurrency) * 3 * latency``) and, for small N, with a sequential loop. Peak memory is
the client process's peak RSS growth and its peak traced Python allocations.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import resource
import statistics
import time
import tracemalloc
from dataclasses import dataclass

import aiohttp
import msgspec

import zdactivity

from ._server import emulator_process

PAGE_SIZE = 10
ACTIVITIES = 27  # seeded over 31 days: 21 to 27 fall in the 30-day window, three pages


@dataclass
class Row:
    agents: int
    concurrency: int
    wall: float
    ideal: float
    sequential: float | None
    activities: int
    peak_traced: int
    floor: float | None = None  # aiohttp alone, same requests and concurrency, no decoding


class _Meta(msgspec.Struct):
    has_more: bool = False
    after_cursor: str | None = None


class _MetaOnly(msgspec.Struct):
    meta: _Meta | None = None


_META = msgspec.json.Decoder(_MetaOnly)


async def run_floor(url: str, agents: list[zdactivity.testing.Agent], concurrency: int) -> int:
    """The transport floor: the same requests, ``concurrency`` agents at a time, with aiohttp
    alone; only the cursor is read from each body (a msgspec skim), nothing else decoded."""
    from urllib.parse import quote

    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def agent_stream(agent: zdactivity.testing.Agent) -> int:
            headers = {"Authorization": f"Bearer {agent.oauth_token}"}
            page_url: str | None = f"{url}/api/v2/activities?page%5Bsize%5D={PAGE_SIZE}"
            pages = 0
            async with semaphore:
                while page_url is not None:
                    async with session.get(page_url, headers=headers) as resp:
                        meta = _META.decode(await resp.read()).meta
                    pages += 1
                    page_url = (
                        f"{url}/api/v2/activities?page%5Bafter%5D={quote(meta.after_cursor)}"
                        f"&page%5Bsize%5D={PAGE_SIZE}"
                        if meta is not None and meta.has_more and meta.after_cursor
                        else None
                    )
            return pages

        return sum(await asyncio.gather(*(agent_stream(a) for a in agents)))


async def run_fan_out(url: str, agents: list[zdactivity.testing.Agent], concurrency: int) -> int:
    root = zdactivity.Client(base_url=url, auth=_token(agents[0]), max_connections=concurrency)
    async with root:
        clients = {a.user_id: root.with_auth(_token(a)) for a in agents}
        count = 0
        async for _key, activity in zdactivity.fan_out(
            clients, page_size=PAGE_SIZE, concurrency=concurrency
        ):
            count += activity.actor is not None
        return count


async def run_sequential(url: str, agents: list[zdactivity.testing.Agent]) -> int:
    async with zdactivity.Client(base_url=url, auth=_token(agents[0])) as root:
        count = 0
        for agent in agents:
            async for activity in root.with_auth(_token(agent)).activities.list(
                page_size=PAGE_SIZE
            ):
                count += activity.actor is not None
        return count


def _token(agent: zdactivity.testing.Agent) -> zdactivity.APIToken:
    return zdactivity.APIToken(agent.email, agent.api_token)


def measure(
    agent_counts: list[int],
    latency: float,
    concurrency: int,
    runs: int,
    sequential_max: int,
    floor: bool = False,
) -> list[Row]:
    rows = []
    with emulator_process(
        latency=latency, agents=max(agent_counts), activities_per_agent=ACTIVITIES, seed=3
    ) as remote:
        for n in agent_counts:
            agents = remote.agents[:n]
            walls = []
            floors = []
            count = 0
            for _ in range(runs):
                gc.collect()
                started = time.perf_counter()
                count = asyncio.run(run_fan_out(remote.url, agents, concurrency))
                walls.append(time.perf_counter() - started)
                if floor:
                    gc.collect()
                    started = time.perf_counter()
                    asyncio.run(run_floor(remote.url, agents, concurrency))
                    floors.append(time.perf_counter() - started)
            # Memory in a separate, untimed run: tracing allocations slows everything down.
            gc.collect()
            tracemalloc.start()
            asyncio.run(run_fan_out(remote.url, agents, concurrency))
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            sequential = None
            if n <= sequential_max:
                started = time.perf_counter()
                asyncio.run(run_sequential(remote.url, agents))
                sequential = time.perf_counter() - started
            ideal = math.ceil(n / concurrency) * 3 * latency
            rows.append(
                Row(
                    n,
                    concurrency,
                    statistics.median(walls),
                    ideal,
                    sequential,
                    count,
                    peak,
                    statistics.median(floors) if floors else None,
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    counts = [1, 10] if args.quick else [1, 10, 100, 1000]
    runs = 1 if args.quick else args.runs
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = measure(counts, args.latency, args.concurrency, runs, sequential_max=100, floor=True)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, "
        f"{PAGE_SIZE}-activity pages, 3 per agent, median of {runs}"
    )
    print(
        f"{'agents':>7} {'activities':>10} {'wall s':>8} {'ideal s':>8} {'wall/ideal':>10} "
        f"{'sequential s':>12} {'floor s':>8} {'peak traced':>12}"
    )
    for r in rows:
        seq = f"{r.sequential:.2f}" if r.sequential is not None else "-"
        print(
            f"{r.agents:>7} {r.activities:>10} {r.wall:>8.2f} {r.ideal:>8.2f} "
            f"{r.wall / r.ideal:>10.2f} {seq:>12} {r.floor or 0:>8.2f} "
            f"{r.peak_traced / 1e6:>10.1f}MB"
        )
    print(
        f"client process peak RSS: {rss_after / 1024:.0f} MB (before: {rss_before / 1024:.0f} MB)"
    )


if __name__ == "__main__":
    main()

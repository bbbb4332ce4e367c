"""Memory: peak RSS while streaming, and bytes per retained Activity.

Run: ``python -m benchmarks.bench_memory`` (``--quick`` for a smoke run).

Streaming: a fresh child process (so that its peak RSS is its own) streams one agent's whole
stream (pages of 100) from the emulator, reading every actor's name and keeping nothing; its peak
RSS (``ru_maxrss``) is compared for a short and a 5x longer stream. It must not grow with the
total.

Retention: ``n`` activities decoded from captured pages are kept in a list, with and without
``Activity.detach()``; tracemalloc measures the bytes the retained objects hold (the pages' bodies
included when not detached), divided by ``n``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import resource
import tracemalloc
from multiprocessing.connection import Connection
from typing import Any

import zdactivity
from zdactivity import protocol
from zdactivity.models import UserCache
from zdactivity.testing import Agent

from ._server import emulator_process


def _stream(conn: Connection, url: str, agent: Agent) -> None:
    async def run() -> int:
        count = 0
        async with zdactivity.Client(
            base_url=url, auth=zdactivity.OAuthToken(agent.oauth_token)
        ) as zd:
            async for activity in zd.activities.list(page_size=100):
                actor = activity.actor
                count += actor is not None
        return count

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = asyncio.run(run())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send((count, baseline * 1024, peak * 1024))


def _stream_in_child(url: str, agent: Agent) -> tuple[int, int, int]:
    parent, child = mp.Pipe()
    process = mp.get_context("spawn").Process(target=_stream, args=(child, url, agent))
    process.start()
    try:
        if not parent.poll(600):
            raise RuntimeError("the streaming process did not finish")
        result: tuple[int, int, int] = parent.recv()
        return result
    finally:
        process.join(10)


def measure_streaming(small: int, large: int) -> dict[str, Any]:
    """Peak RSS of a child process streaming ``small`` and then ``large`` activities."""
    out: dict[str, Any] = {}
    for n in (small, large):
        # ~3% of the seeded activities fall outside the 30-day window.
        with emulator_process(agents=1, activities_per_agent=round(n / 0.965), seed=21) as remote:
            count, baseline, peak = _stream_in_child(remote.url, remote.agents[0])
        out[n] = {"activities": count, "baseline_rss": baseline, "peak_rss": peak}
    return out


def measure_retained(bodies: list[bytes], n: int) -> dict[str, Any]:
    """Bytes per retained Activity, with and without detach()."""

    def retain(detach: bool) -> float:
        gc.collect()
        tracemalloc.start()
        kept: list[zdactivity.Activity] = []
        users = UserCache()  # as a client has
        while len(kept) < n:
            for body in bodies:
                # bytes(memoryview(...)) copies: every page gets a body of its own
                for activity in protocol.decode_page(bytes(memoryview(body)), cache=users):
                    _ = activity.actor  # read, as a consumer would, before keeping it
                    kept.append(activity.detach() if detach else activity)
                    if len(kept) >= n:
                        break
                if len(kept) >= n:
                    break
        gc.collect()
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del kept
        return size / n

    return {"n": n, "attached": retain(False), "detached": retain(True)}


async def _capture(url: str, agent: Agent, pages: int) -> list[bytes]:
    bodies = []
    async with zdactivity.Client(base_url=url, auth=zdactivity.OAuthToken(agent.oauth_token)) as zd:
        request = protocol.list_request(page_size=100)
        for _ in range(pages):
            body = await zd._call(request, lambda body, _request_id: body)
            bodies.append(body)
            page = protocol.decode_page(body)
            if not page.has_more:
                break
            request = request.with_param("page[after]", page.after_cursor or "")
    return bodies


def measure_memory(small: int, large: int, retained: int) -> dict[str, Any]:
    streaming = measure_streaming(small, large)
    with emulator_process(agents=1, activities_per_agent=1000, seed=22) as remote:
        bodies = asyncio.run(_capture(remote.url, remote.agents[0], pages=5))
    return {"streaming": streaming, "retained": measure_retained(bodies, retained)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    small, large, retained = (500, 2500, 500) if args.quick else (20_000, 100_000, 10_000)
    r = measure_memory(small, large, retained)
    for n, row in r["streaming"].items():
        print(
            f"stream {n:>7} (read {row['activities']}): peak RSS {row['peak_rss'] / 2**20:.1f} MB"
            f" (baseline {row['baseline_rss'] / 2**20:.1f} MB)"
        )
    ret = r["retained"]
    print(
        f"retained {ret['n']}: {ret['attached']:,.0f} B/activity attached, "
        f"{ret['detached']:,.0f} B/activity detached"
    )


if __name__ == "__main__":
    main()

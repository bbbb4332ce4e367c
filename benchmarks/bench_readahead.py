"""Read-ahead: one stream with and without ``prefetch``, against the transport floor and the
overlapped ideal.

Run: ``python -m benchmarks.bench_readahead`` (``--quick`` for a smoke run); ``python -m
benchmarks`` runs it as part of the suite. The emulator runs in a child process (see
``_server.py``); every client runs in this process, round-robin, and each figure is the median
of the runs.

(a) **No latency**, one agent's stream in pages of 100, a consumer that only reads
``activity.actor.name``: zdactivity sequential (``prefetch=0``), with its default settings,
and with deeper read-ahead, against the transport floor: aiohttp GETs of the same page URLs
(captured beforehand), one after another, reading the bytes (gzip decoded) and nothing else.

(b) **50 ms of latency** injected by the emulator before each request, and a consumer that
batches activities by 100 and spends 50 ms on each batch (``asyncio.sleep``: a batched
database write), so one write per page. Sequential zdactivity against read-ahead, and against
the overlapped ideal: the network time per page is measured by the transport floor over the
same URLs in the same run; with R requests of ``net`` seconds and W writes of ``c`` seconds,
no pipeline can beat ``max(R * net + c, W * c + net)`` (the busier stage all the way, plus one
step of the other to fill or drain the pipeline).

Every zdactivity variant must read the same activities and actor names, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

import zdactivity
from zdactivity.pagination import DEFAULT_PREFETCH
from zdactivity.testing import Agent

from ._common import median, round_robin
from ._server import emulator_process
from .bench_throughput import SYSTEM_NAME, capture, transport_floor

FLOOR = "transport floor (aiohttp, bytes only)"
PAGES_ONLY = "zdactivity pages only, no consumer (prefetch=0)"
LATENCY = 0.05  # seconds the emulator waits before answering each request, in (b)
WRITE = 0.05  # seconds the consumer of (b) spends on each batch
BATCH = 100  # activities per batch: one page

Result = tuple[int, int]  # activities, checksum of actor names


def label(prefetch: int) -> str:
    """The name of a zdactivity case."""
    if prefetch == 0:
        return "zdactivity, prefetch=0 (sequential)"
    if prefetch == DEFAULT_PREFETCH:
        return f"zdactivity, prefetch={prefetch} (default settings)"
    return f"zdactivity, prefetch={prefetch}"


def depths() -> list[int]:
    """The read-ahead depths measured: none, the default, and deeper."""
    return sorted({0, DEFAULT_PREFETCH, 2, 4})


def _client(url: str, agent: Agent) -> zdactivity.Client:
    return zdactivity.Client(base_url=url, auth=zdactivity.OAuthToken(agent.oauth_token))


async def names_only(url: str, agent: Agent, prefetch: int | None) -> Result:
    """(a): read every activity's actor name; ``prefetch=None`` leaves the default."""
    count = checksum = 0
    async with _client(url, agent) as zd:
        pager = zd.activities.list() if prefetch is None else zd.activities.list(prefetch=prefetch)
        async for activity in pager:
            actor = activity.actor
            count += 1
            checksum += len(actor.name if actor is not None else SYSTEM_NAME)
    return count, checksum


async def pages_only(url: str, agent: Agent) -> Result:
    """(a)'s bound for read-ahead: fetch and decode every page, one after another, and touch
    nothing (the next request needs the decoded page's cursor: this path stays serial)."""
    count = 0
    async with _client(url, agent) as zd:
        async for page in zd.activities.list(prefetch=0).pages():
            count += len(page.activities)
    return count, -1


async def batched_writes(url: str, agent: Agent, prefetch: int) -> Result:
    """(b): batch activities by 100 and 'write' each batch (``WRITE`` seconds)."""
    count = checksum = 0
    batch: list[str] = []

    async def write(names: list[str]) -> None:
        await asyncio.sleep(WRITE)  # a batched INSERT, a notification...

    async with _client(url, agent) as zd:
        async for activity in zd.activities.list(prefetch=prefetch):
            actor = activity.actor
            batch.append(actor.name if actor is not None else SYSTEM_NAME)
            if len(batch) == BATCH:
                await write(batch)
                count += len(batch)
                checksum += sum(map(len, batch))
                batch = []
        if batch:
            await write(batch)
            count += len(batch)
            checksum += sum(map(len, batch))
    return count, checksum


def _same(results: dict[str, Any]) -> Result:
    expected: Result | None = None
    for name, result in results.items():
        if name in (FLOOR, PAGES_ONLY):
            continue
        if expected is None:
            expected = result
        elif result != expected:
            raise AssertionError(f"{name} read {result}, another variant read {expected}")
    assert expected is not None
    return expected


def measure_no_latency(activities: int, runs: int) -> dict[str, Any]:
    """(a): activities per second of each case, one stream, no injected latency."""
    with emulator_process(agents=1, activities_per_agent=activities, seed=5) as remote:
        url, agent = remote.url, remote.agents[0]
        urls, _ = asyncio.run(capture(url, agent))
        cases: dict[str, Callable[[], Any]] = {
            FLOOR: lambda: asyncio.run(transport_floor(urls, agent))
        }
        for depth in depths():
            # The default case uses list() without prefetch=: the settings a user gets.
            prefetch = None if depth == DEFAULT_PREFETCH else depth
            cases[label(depth)] = lambda p=prefetch: asyncio.run(names_only(url, agent, p))
        cases[PAGES_ONLY] = lambda: asyncio.run(pages_only(url, agent))
        for fn in cases.values():  # warm up, untimed (imports, first connections)
            fn()
        samples, results = round_robin(cases, runs)
    count, _ = _same(results)
    if results[PAGES_ONLY][0] != count:
        raise AssertionError(f"{PAGES_ONLY} read {results[PAGES_ONLY][0]}, not {count}")
    walls = {name: median(values) for name, values in samples.items()}
    return {
        "activities": count,
        "pages": len(urls),
        "runs": runs,
        "walls": walls,
        "rates": {name: count / wall for name, wall in walls.items()},
    }


def measure_latency(activities: int, runs: int) -> dict[str, Any]:
    """(b): wall time of each case with ``LATENCY`` per request and ``WRITE`` per batch."""
    with emulator_process(
        latency=LATENCY, agents=1, activities_per_agent=activities, seed=5
    ) as remote:
        url, agent = remote.url, remote.agents[0]
        urls, _ = asyncio.run(capture(url, agent))
        cases: dict[str, Callable[[], Any]] = {
            FLOOR: lambda: asyncio.run(transport_floor(urls, agent))
        }
        for depth in depths():
            cases[label(depth)] = lambda p=depth: asyncio.run(batched_writes(url, agent, p))
        for fn in cases.values():
            fn()
        samples, results = round_robin(cases, runs)
    count, _ = _same(results)
    walls = {name: median(values) for name, values in samples.items()}
    requests = len(urls)
    writes = -(-count // BATCH)
    net = walls[FLOOR] / requests
    ideal = max(requests * net + WRITE, writes * WRITE + net)
    return {
        "activities": count,
        "pages": requests,
        "writes": writes,
        "runs": runs,
        "latency": LATENCY,
        "write": WRITE,
        "walls": walls,
        "network_per_page": net,
        "ideal": ideal,
    }


def measure(quick: bool) -> dict[str, Any]:
    """Both figures, at smoke size when ``quick``."""
    return {
        "no_latency": measure_no_latency(300 if quick else 5000, 1 if quick else 7),
        "latency": measure_latency(500 if quick else 3000, 1 if quick else 5),
    }


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def targets(r: dict[str, Any]) -> list[tuple[str, str, str, float, str, bool]]:
    """Summary rows: (figure, zdactivity, compared with, ratio, target, met)."""
    a, b = r["no_latency"], r["latency"]
    default = label(DEFAULT_PREFETCH)
    seq = label(0)
    ra_rate, floor_rate = a["rates"][default], a["rates"][FLOOR]
    ra_wall, seq_wall, ideal = b["walls"][default], b["walls"][seq], b["ideal"]
    return [
        (
            f"read-ahead, no latency, `.actor.name` only (prefetch={DEFAULT_PREFETCH})",
            f"{ra_rate:,.0f} act/s",
            f"transport floor {floor_rate:,.0f} act/s",
            ra_rate / floor_rate,
            ">= 0.95x",
            ra_rate / floor_rate >= 0.95,
        ),
        (
            "read-ahead, 50 ms latency + 50 ms write per page",
            f"{ra_wall:.2f} s",
            f"sequential zdactivity {seq_wall:.2f} s",
            seq_wall / ra_wall,
            ">= 1.8x",
            seq_wall / ra_wall >= 1.8,
        ),
        (
            "read-ahead, 50 ms latency + 50 ms write per page",
            f"{ra_wall:.2f} s",
            f"overlapped ideal {ideal:.2f} s",
            ideal / ra_wall,
            ">= 0.9x",
            ideal / ra_wall >= 0.9,
        ),
    ]


def report(r: dict[str, Any]) -> str:
    """The RESULTS.md sections of both figures (Markdown)."""
    a, b = r["no_latency"], r["latency"]
    out: list[str] = []
    w = out.append
    w("## Read-ahead\n")
    w("| figure | zdactivity | compared with | ratio | target | status |")
    w("|---|---|---|---|---|---|")
    for name, ours, other, ratio, target, ok in targets(r):
        w(f"| {name} | {ours} | {other} | {ratio:.2f} | {target} | {_mark(ok)} |")
    w("")
    w("### One stream, no latency\n")
    w(f"One agent, {a['activities']:,} activities in {a['pages']} pages of 100, a consumer that")
    w("reads only `activity.actor.name`; median of")
    w(f"{a['runs']} runs each. The transport floor GETs the same page URLs one after another")
    w("with aiohttp and reads the bytes (gzip decoded), nothing else. The last row fetches and")
    w("decodes every page with zdactivity and reads nothing: what read-ahead cannot overlap,")
    w("since the next request needs the decoded page's cursor.\n")
    w("| client | activities/s | x transport floor |")
    w("|---|---|---|")
    floor = a["rates"][FLOOR]
    for name, rate in a["rates"].items():
        w(f"| {name} | {rate:,.0f} | {rate / floor:.2f} |")
    w("")
    w(f"### One stream, {b['latency'] * 1e3:.0f} ms latency, {b['write'] * 1e3:.0f} ms per batch\n")
    w(f"The emulator waits {b['latency'] * 1e3:.0f} ms before answering each request; the")
    w(f"consumer batches activities by {BATCH} and spends {b['write'] * 1e3:.0f} ms on each batch")
    w(f"(`asyncio.sleep`, a batched database write). {b['activities']:,} activities,")
    net = b["network_per_page"] * 1e3
    w(f"{b['pages']} requests, {b['writes']} writes; median of {b['runs']} runs each. Network")
    w(f"time per page, from the transport floor over the same URLs: {net:.1f}")
    w("ms. Overlapped ideal: max(requests x network, writes x write) plus one step of the")
    w("other stage to fill the pipeline.\n")
    w("| client | wall s | pages/s | x sequential | x overlapped ideal |")
    w("|---|---|---|---|---|")
    seq = b["walls"][label(0)]
    for name, wall in b["walls"].items():
        if name == FLOOR:
            continue
        w(
            f"| {name} | {wall:.2f} | {b['pages'] / wall:.1f} | {seq / wall:.2f} |"
            f" {b['ideal'] / wall:.2f} |"
        )
    w(
        f"| overlapped ideal | {b['ideal']:.2f} | {b['pages'] / b['ideal']:.1f} |"
        f" {seq / b['ideal']:.2f} | 1.00 |"
    )
    w(
        f"| {FLOOR}, no consumer | {b['walls'][FLOOR]:.2f} | {b['pages'] / b['walls'][FLOOR]:.1f}"
        " | | |"
    )
    w("")
    w(
        "**Bounded by:** with no latency, the serial part of each page. Read-ahead hides the"
        " consumer's work (`.actor`, the user decodes) behind the server's work on the next page,"
        " but the next request needs the decoded page's cursor, so fetching and decoding a page"
        " stay serial: the 'pages only' row is the most read-ahead can reach, and it sits below"
        " the transport floor by zdactivity's decode (figure 2). Closing it needs less CPU per"
        " page, or reading `meta.after_cursor` before the full decode. With latency, the"
        " overlapped ideal: the two stages are not equal (network time per page above includes"
        " the server's rendering and transfer besides the 50 ms), so 2x is out of reach; read-ahead"
        " comes within a few percent of the ideal.\n"
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    print(report(measure(args.quick)))


if __name__ == "__main__":
    main()

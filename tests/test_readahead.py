"""Read-ahead (``prefetch=``): pages requested while the consumer works, at no other cost.

What is proven here, against the emulator (requests counted where it serves them):

- the next page is requested as soon as the consumer takes one, ``prefetch`` pages ahead and
  never more, one request of a listing at a time;
- ``collect(limit=N)`` requests exactly the pages it needs, whatever the read-ahead;
- leaving early (``break``, ``aclose``, ``async with``, a dropped iterator), cancelling the
  consumer, or an error leaves no task running and no rate-limiter permit held;
- whatever the page size, read-ahead depth, faults and their positions, the consumer sees
  exactly what it sees without read-ahead: the same pages, errors and resume tokens, in the
  same order, from the same requests;
- ``watch()`` reads ahead within a poll only, and its poll gate holds every request;
- ``fan_out(prefetch=)`` delivers the same and keeps at most ``concurrency`` requests in flight.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from conftest import NOW, client_tasks, token, wait_until
from fakes import FakeTime
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import zdactivity
from zdactivity import PaginationError, RetryPolicy, ZendeskError
from zdactivity.pagination import DEFAULT_PREFETCH, ActivityIterator, PageIterator
from zdactivity.testing import Emulator, Fault

pytestmark = pytest.mark.emulator(seed=12, agents=3, activities_per_agent=60)

LIST_PATH = "/api/v2/activities"


def list_requests(emu: Emulator) -> int:
    """Page requests that reached the emulator (answered, or being answered)."""
    return sum(r.path == LIST_PATH for r in emu.requests) + emu.in_flight


async def settled(emu: Emulator, zd: zdactivity.Client) -> None:
    """Wait until no client task runs and the emulator serves nothing, then check that no
    rate-limiter permit is held."""
    await wait_until(lambda: not client_tasks() and emu.in_flight == 0)
    assert zd.rate_limiter.state().in_flight == 0


def expected_ids(emu: Emulator, agent_index: int = 0) -> list[int]:
    return [a["id"] for a in emu.activities_for(emu.agents[agent_index])]


# --------------------------------------------------------------------------- the read-ahead


@pytest.mark.parametrize("prefetch", [1, 2, 4])
async def test_pages_are_requested_ahead_while_the_consumer_holds_one(
    emu: Emulator, client: zdactivity.Client, prefetch: int
) -> None:
    async with client.activities.list(page_size=5, prefetch=prefetch).pages() as pages:
        first = await anext(pages)  # ... and the consumer works on it
        await wait_until(lambda: pages.pages_fetched == 1 + prefetch)
        await wait_until(lambda: not client_tasks())  # idle: it stopped by itself
        assert list_requests(emu) == 1 + prefetch
        assert emu.max_in_flight == 1  # one request of a listing at a time
        # Taking a page lets one more be requested, at once.
        await anext(pages)
        await wait_until(lambda: pages.pages_fetched == 2 + prefetch)
        await wait_until(lambda: not client_tasks())
        assert list_requests(emu) == 2 + prefetch
    assert len(first.activities) == 5
    assert client.rate_limiter.state().in_flight == 0


async def test_without_read_ahead_nothing_is_requested_until_asked(
    emu: Emulator, client: zdactivity.Client
) -> None:
    pages = client.activities.list(page_size=5, prefetch=0).pages()
    await anext(pages)
    assert client_tasks() == [] and list_requests(emu) == 1
    await anext(pages)
    assert client_tasks() == [] and list_requests(emu) == 2


async def test_the_default_reads_one_page_ahead(emu: Emulator, client: zdactivity.Client) -> None:
    pager = client.activities.list(page_size=5)
    assert pager.prefetch == DEFAULT_PREFETCH == 1
    assert zdactivity.WatchOptions().prefetch == DEFAULT_PREFETCH
    activities = aiter(pager)
    assert isinstance(activities, ActivityIterator)
    async with activities:
        await anext(activities)
        await wait_until(lambda: activities.pages.pages_fetched == 2)
    assert list_requests(emu) == 2


@pytest.mark.parametrize("prefetch", [0, 1, 2, 4])
async def test_a_whole_listing_is_the_same_with_read_ahead(
    emu: Emulator, client: zdactivity.Client, prefetch: int
) -> None:
    listed = [a.id async for a in client.activities.list(page_size=7, prefetch=prefetch)]
    assert listed == expected_ids(emu)
    assert list_requests(emu) == len(listed) // 7 + 1  # the trailing page too, nothing more
    await settled(emu, client)


@pytest.mark.parametrize("prefetch", [0, 1, 2, 4])
@pytest.mark.parametrize(
    ("page_size", "limit", "requests"),
    [(20, 20, 1), (20, 1, 1), (20, 21, 2), (20, 40, 2), (7, 15, 3), (10, 50, 5), (20, 0, 0)],
)
async def test_collect_with_a_limit_requests_only_the_pages_it_needs(
    emu: Emulator,
    client: zdactivity.Client,
    prefetch: int,
    page_size: int,
    limit: int,
    requests: int,
) -> None:
    emu.latency = 0.005  # so that a read-ahead past the limit would have the time to start
    pager = client.activities.list(page_size=page_size, prefetch=prefetch)
    got = await pager.collect(limit=limit)
    assert [a.id for a in got] == expected_ids(emu)[:limit]
    assert client_tasks() == []  # nothing left running when collect returns
    assert client.rate_limiter.state().in_flight == 0
    assert client.stats.requests == requests  # sent, even if cancelled later
    await settled(emu, client)
    assert list_requests(emu) == requests


# --------------------------------------------------------------------------- leaving early


@pytest.mark.parametrize("prefetch", [1, 3])
async def test_a_break_costs_at_most_prefetch_pages_and_leaves_nothing_running(
    emu: Emulator, client: zdactivity.Client, prefetch: int
) -> None:
    emu.latency = 0.02  # the page read ahead is still in flight at the break
    async for _ in client.activities.list(page_size=5, prefetch=prefetch):
        break  # the iterator is dropped: its read-ahead is cancelled on the loop's next turn
    await settled(emu, client)
    assert 1 <= list_requests(emu) <= 1 + prefetch
    served = list_requests(emu)
    await asyncio.sleep(0.05)
    assert list_requests(emu) == served  # nothing more, ever


@pytest.mark.parametrize("prefetch", [1, 3])
async def test_aclose_and_async_with_cancel_the_page_in_flight_before_returning(
    emu: Emulator, client: zdactivity.Client, prefetch: int
) -> None:
    emu.latency = 0.05
    pager = client.activities.list(page_size=5, prefetch=prefetch)
    async with aiter(pager) as activities:
        await anext(activities)
        await wait_until(lambda: emu.in_flight == 1)  # the read-ahead is on the wire
    assert client_tasks() == []  # cancelled and awaited: nothing runs after the block
    assert client.rate_limiter.state().in_flight == 0
    with pytest.raises(StopAsyncIteration):
        await anext(activities)  # closed for good
    pages = pager.pages()
    await anext(pages)
    await wait_until(lambda: emu.in_flight == 1)
    await pages.aclose()
    await pages.aclose()  # idempotent
    assert client_tasks() == []
    assert client.rate_limiter.state().in_flight == 0


async def test_a_dropped_iterator_cancels_its_read_ahead_when_collected(
    emu: Emulator, client: zdactivity.Client
) -> None:
    emu.latency = 0.05
    pages: PageIterator | None = client.activities.list(page_size=5, prefetch=2).pages()
    assert pages is not None
    await anext(pages)
    await wait_until(lambda: emu.in_flight == 1)
    assert len(client_tasks()) == 1
    pages = None
    gc.collect()  # (CPython frees it at once; this only makes it explicit)
    await settled(emu, client)
    assert list_requests(emu) == 2


async def test_cancelling_a_consumer_that_works_on_a_page_cancels_the_read_ahead(
    emu: Emulator, client: zdactivity.Client
) -> None:
    emu.latency = 0.05
    working = asyncio.Event()

    async def consume() -> None:
        async for _ in client.activities.list(page_size=5, prefetch=2):
            working.set()
            await asyncio.sleep(3600)  # a slow handler

    task = asyncio.create_task(consume())
    await working.wait()
    await wait_until(lambda: emu.in_flight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settled(emu, client)


async def test_cancelling_a_consumer_that_waits_for_a_page_cancels_its_request(
    emu: Emulator, client: zdactivity.Client
) -> None:
    emu.latency = 0.2
    pages = client.activities.list(page_size=5, prefetch=2).pages()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await anext(pages)
    assert client_tasks() == []  # cancelled and awaited before the consumer saw the timeout
    assert client.rate_limiter.state().in_flight == 0
    emu.latency = 0
    # As without read-ahead, the listing stays where it was: asking again asks again.
    assert (await anext(pages)).activities[0].id == expected_ids(emu)[0]
    await pages.aclose()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("prefetch", [1, 2, 4])
async def test_an_error_comes_after_every_page_before_it_and_leaves_nothing_running(
    emu: Emulator, prefetch: int
) -> None:
    async with zdactivity.Client(
        base_url=emu.url, auth=token(emu.agents[0]), retry=RetryPolicy.no_retry()
    ) as zd:
        # The last page read ahead while the consumer holds the first one fails.
        emu.inject(*[Fault.ok()] * prefetch, Fault.status(404), path=LIST_PATH)
        pages = zd.activities.list(page_size=5, prefetch=prefetch).pages()
        got = [await anext(pages)]
        await wait_until(lambda: list_requests(emu) == 1 + prefetch and not client_tasks())
        assert zd.rate_limiter.state().in_flight == 0
        got += [await anext(pages) for _ in range(prefetch - 1)]  # every page before it
        with pytest.raises(zdactivity.NotFoundError):
            await anext(pages)
        assert client_tasks() == []
        # As without read-ahead, asking again asks for the failed page again.
        got.append(await anext(pages))
        await pages.aclose()
        ids = [a.id for p in got for a in p.activities]
        assert ids == expected_ids(emu)[: 5 * (1 + prefetch)]
        await settled(emu, zd)


async def test_max_pages_and_its_error_hold_with_read_ahead(
    emu: Emulator, client: zdactivity.Client
) -> None:
    pages = client.activities.list(page_size=5, max_pages=3, prefetch=4).pages()
    got = [page async for page in _until_error(pages)]
    assert len(got) == 4 and isinstance(got[-1], PaginationError)  # 3 pages, then the error
    assert list_requests(emu) == 3  # none past the bound
    resumed = client.activities.list(resume=got[-2].resume_token, prefetch=4)
    rest = [a.id async for a in resumed]
    seen = [a.id for p in got[:-1] for a in p.activities]
    assert seen + rest == expected_ids(emu)


async def _until_error(pages: PageIterator) -> Any:
    """Yield the pages, then the error that ends them (if any)."""
    while True:
        try:
            page = await anext(pages)
        except StopAsyncIteration:
            return
        except ZendeskError as exc:
            yield exc
            return
        yield page


# --------------------------------------------------------------------------- the property


_FAULTS = {
    "ok": Fault.ok,
    "500": lambda: Fault.status(500),  # retried once (max_tries=2), then a ServerError
    "503": lambda: Fault.status(503, retry_after=0),
    "404": lambda: Fault.status(404),  # final: the page is asked again on the next call
    "400": lambda: Fault.status(400),  # final: ends the listing
    "truncated": lambda: Fault.malformed("truncated"),
    "wrong_types": lambda: Fault.malformed("wrong_types"),
    "latency": lambda: Fault.latency(0.002),
}
_WEIGHTED = ["404", "404", "400", "wrong_types", "500", "503", "truncated", "latency"]


async def _observe(
    emu: Emulator,
    page_size: int,
    prefetch: int,
    max_pages: int | None,
    faults: list[str],
    pauses: list[int],
) -> tuple[list[object], int]:
    """What a consumer sees of one listing (pages as ids and resume token, errors by type),
    asking again after each error (three at most), and the page requests it took."""
    emu.clear_faults()
    emu.reset_log()
    emu.inject(*(_FAULTS[name]() for name in faults), path=LIST_PATH)
    seen: list[object] = []
    async with zdactivity.Client(
        base_url=emu.url, auth=token(emu.agents[0]), retry=RetryPolicy(max_tries=2).testing()
    ) as zd:
        pager = zd.activities.list(page_size=page_size, max_pages=max_pages, prefetch=prefetch)
        errors = 0
        async with pager.pages() as pages:
            while errors < 3:
                try:
                    page = await anext(pages)
                except StopAsyncIteration:
                    seen.append("end")
                    break
                except ZendeskError as exc:
                    errors += 1
                    seen.append(type(exc).__name__)
                    continue
                seen.append(([a.id for a in page.activities], page.resume_token))
                # The consumer's own work: a few turns of the event loop, none, or long
                # enough for the read-ahead to fill up (-1).
                pause = pauses[len(seen) % len(pauses)]
                if pause < 0:
                    await wait_until(lambda: not client_tasks())
                for _ in range(pause):
                    await asyncio.sleep(0)
        assert client_tasks() == []
        assert zd.rate_limiter.state().in_flight == 0
    return seen, len(emu.requests)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    activities=st.integers(0, 40),
    page_size=st.integers(1, 8),
    prefetch=st.integers(1, 4),
    max_pages=st.one_of(st.none(), st.integers(1, 6)),
    # Which requests fail, and how (the others are served normally); final failures weigh
    # more, and the consumer mostly lets the read-ahead fill up: where order could break.
    positions=st.dictionaries(st.integers(0, 8), st.sampled_from(_WEIGHTED), max_size=4),
    pauses=st.lists(st.sampled_from([-1, -1, -1, 0, 1]), min_size=1, max_size=5),
)
@example(  # a failure read ahead behind a page the consumer has not taken yet
    activities=30, page_size=5, prefetch=3, max_pages=None, positions={2: "404"}, pauses=[-1]
)
async def test_read_ahead_yields_exactly_what_sequential_reading_yields(
    activities: int,
    page_size: int,
    prefetch: int,
    max_pages: int | None,
    positions: dict[int, str],
    pauses: list[int],
) -> None:
    faults = [positions.get(i, "ok") for i in range(max(positions, default=-1) + 1)]
    async with Emulator(
        seed=3, agents=1, activities_per_agent=activities, clock=lambda: NOW
    ) as emu:
        sequential = await _observe(emu, page_size, 0, max_pages, faults, pauses)
        ahead = await _observe(emu, page_size, prefetch, max_pages, faults, pauses)
        listed = [a["id"] for a in emu.activities_for(emu.agents[0])]
    assert ahead == sequential
    seen, _requests = sequential
    if not faults and max_pages is None:
        assert seen[-1] == "end"
        assert [i for step in seen[:-1] for i in step[0]] == listed  # type: ignore[index]


# --------------------------------------------------------------------------- watch, fan_out


async def test_a_watch_reads_ahead_within_a_poll_and_never_past_its_page_budget(
    emu: Emulator, client: zdactivity.Client
) -> None:
    watcher = client.activities.watch(
        page_size=5, max_pages_per_poll=3, prefetch=4, sleep=FakeTime().sleep
    )
    async with watcher:
        await anext(watcher)
        await wait_until(lambda: list_requests(emu) == 3)
        await wait_until(lambda: not client_tasks())
        assert list_requests(emu) == 3  # the poll's budget, not prefetch + 1
        await anext(watcher)
        assert list_requests(emu) == 3
    assert client_tasks() == []


async def test_a_watch_left_with_an_error_cancels_its_read_ahead(
    emu: Emulator, client: zdactivity.Client
) -> None:
    emu.latency = 0.05
    with pytest.raises(RuntimeError, match="handler failed"):
        async with client.activities.watch(page_size=5, prefetch=2) as watcher:
            async for _ in watcher:
                await wait_until(lambda: emu.in_flight == 1)
                raise RuntimeError("handler failed")
    assert client_tasks() == []
    assert client.rate_limiter.state().in_flight == 0


async def test_the_poll_gate_holds_every_request_read_ahead_included(emu: Emulator) -> None:
    emu.latency = 0.01
    gate = asyncio.Semaphore(1)
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:
        watchers = [
            root.with_auth(token(agent)).activities.watch(
                page_size=5, prefetch=3, poll_gate=gate, sleep=FakeTime().sleep
            )
            for agent in emu.agents
        ]

        async def take(watcher: zdactivity.watch.ActivityWatcher, n: int) -> list[int]:
            async with watcher:
                return [(await anext(watcher)).id for _ in range(n)]

        got = await asyncio.gather(*(take(w, 12) for w in watchers))
    for agent, ids in zip(emu.agents, got, strict=True):
        listed = [a["id"] for a in emu.activities_for(agent)]  # newest first, pages of 5
        pages = [listed[i : i + 5] for i in range(0, len(listed), 5)]
        assert ids == [i for page in pages for i in reversed(page)][:12]  # oldest first each
    assert emu.max_in_flight == 1


@pytest.mark.parametrize("prefetch", [0, 2])
async def test_fan_out_with_read_ahead_delivers_the_same_within_its_concurrency(
    emu: Emulator, prefetch: int
) -> None:
    emu.latency = 0.005
    async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as root:
        clients = {a.user_id: root.with_auth(token(a)) for a in emu.agents}
        got: dict[int, list[int]] = {}
        async for key, activity in zdactivity.fan_out(
            clients, page_size=7, concurrency=2, prefetch=prefetch
        ):
            got.setdefault(key, []).append(activity.id)
            await asyncio.sleep(0.001)
        await settled(emu, root)
    assert got == {a.user_id: [x["id"] for x in emu.activities_for(a)] for a in emu.agents}
    assert emu.max_in_flight <= 2


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("prefetch", "error"), [(-1, ValueError), (True, TypeError), (1.5, TypeError)]
)
async def test_a_bad_prefetch_is_refused_before_any_request(
    emu: Emulator, client: zdactivity.Client, prefetch: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="prefetch"):
        client.activities.list(prefetch=prefetch)
    with pytest.raises(error, match="prefetch"):
        client.activities.watch(prefetch=prefetch)
    with pytest.raises(error, match="prefetch"):
        zdactivity.WatchOptions(prefetch=prefetch)
    with pytest.raises(error, match="prefetch"):
        async for _ in zdactivity.fan_out({1: client}, prefetch=prefetch):
            pass
    assert emu.requests == []


async def test_a_pages_resume_token_is_made_when_read_and_stays_the_same(
    emu: Emulator, client: zdactivity.Client
) -> None:
    since = "2020-01-01T00:00:00Z"
    pages = [page async for page in client.activities.list(page_size=5, since=since).pages()]
    assert len(pages) > 2
    for page in pages[:-1]:
        token = page.resume_token
        assert token is not None and page.resume_token == token  # read twice: the same
        point = zdactivity.protocol.ResumePoint.parse(token)
        assert point == zdactivity.protocol.ResumePoint(page.after_cursor or "", since, 5)
    last = pages[-1]
    assert (last.resume_token is None) == (not last.after_cursor)
    pages[0].resume_token = None  # still assignable, as before it was made lazily
    assert pages[0].resume_token is None

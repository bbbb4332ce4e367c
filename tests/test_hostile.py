"""What zdactivity survives: a broken or hostile server, a wrong clock, a careless caller.

Each test is one case, named for what the client does about it, against a real server on
loopback (``hostile.HostileServer``, or the emulator where it can produce the fault). Read the
test names top to bottom as the list of what the long-running paths are proven to survive.
"""

from __future__ import annotations

import gc
import itertools
import tracemalloc

import pytest
from aiohttp import web
from hostile import HostileServer, activity, json_response, page, respond

import zdactivity
from zdactivity import PaginationError
from zdactivity.pagination import DEFAULT_MAX_PAGES, REMEMBERED_CURSORS


async def test_the_hostile_server_serves_a_page() -> None:
    async with HostileServer(respond(page([activity(1)]))) as server, server.client() as zd:
        listed = await zd.activities.list().collect()
    assert [a.id for a in listed] == [1]
    assert server.paths == ["/api/v2/activities?page%5Bsize%5D=100"]


# === Data loss: watch, tail and resumption ====================================================


def _ids(activities: object) -> list[int]:
    return [a.id for a in activities]  # type: ignore[attr-defined]


async def test_an_endless_listing_keeps_bounded_memory_and_stops_at_max_pages() -> None:
    served = itertools.count()

    async def endless(_request: web.Request) -> web.StreamResponse:
        server.requests.clear()  # the test server keeps nothing either
        server.paths.clear()
        n = next(served)
        cursor = f"{n:09d}" + "x" * 1000  # always has_more, always a fresh (long) cursor
        return json_response(page([activity(n + 1)], has_more=True, after_cursor=cursor))

    server = HostileServer(endless)
    delivered, held = 0, []
    async with server, server.client() as zd:
        pages = zd.activities.list(page_size=1, max_pages=2500).pages()
        try:
            with pytest.raises(PaginationError, match="max_pages=2500"):
                async for _ in pages:
                    delivered += 1
                    if delivered == 1400:
                        tracemalloc.start()  # (it slows everything down: not from the start)
                    # From page 1,600 on, the remembered cursors (and aiohttp's and yarl's own
                    # bounded caches of URLs) are full: whatever grows now is kept for good.
                    if delivered == 1600:
                        gc.collect()
                        held.append(tracemalloc.get_traced_memory()[0])
            gc.collect()
            held.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
        remembered = len(pages._seen)
    assert delivered == 2500  # every page it got was delivered, then the error
    assert next(served) == 2500  # and no page past the bound was asked for
    assert remembered == REMEMBERED_CURSORS
    # 900 more pages of 1 KB cursors: the old pager kept every one (about 1 MB here).
    assert held[1] - held[0] < 100 * 1024, held


async def test_a_listing_of_exactly_max_pages_ends_without_error() -> None:
    pages = [
        respond(page([activity(1)], has_more=True, after_cursor="C1")),
        respond(page([activity(2)], has_more=True, after_cursor="C2")),
        respond(page([activity(3)])),
    ]
    async with HostileServer(*pages) as server, server.client() as zd:
        listed = await zd.activities.list(max_pages=3).collect()
        assert zd.activities.list().max_pages == DEFAULT_MAX_PAGES
    assert _ids(listed) == [1, 2, 3]
    assert len(server.paths) == 3


async def test_a_cursor_cycle_within_the_remembered_cursors_is_still_caught() -> None:
    served = itertools.count()

    async def cycle(_request: web.Request) -> web.StreamResponse:
        n = next(served)
        return json_response(page([activity(n + 1)], has_more=True, after_cursor=f"C{n % 300}"))

    async with HostileServer(cycle) as server, server.client() as zd:
        with pytest.raises(PaginationError, match="repeated"):
            await zd.activities.list().collect()
    assert len(server.paths) == 301


@pytest.mark.parametrize("max_pages", [0, -1])
def test_max_pages_below_one_is_a_value_error(max_pages: int) -> None:
    zd = zdactivity.Client(base_url="http://127.0.0.1:9", auth=zdactivity.OAuthToken("t"))
    with pytest.raises(ValueError, match="max_pages"):
        zd.activities.list(max_pages=max_pages)
    with pytest.raises(TypeError, match="max_pages"):
        zd.activities.list(max_pages=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("page_size", "limit", "requests"),
    [(20, 20, 1), (20, 1, 1), (20, 21, 2), (20, 40, 2), (7, 15, 3), (20, 0, 0)],
)
async def test_collect_with_a_limit_requests_no_page_it_does_not_need(
    page_size: int, limit: int, requests: int
) -> None:
    served = itertools.count()

    async def full_pages(request: web.Request) -> web.StreamResponse:
        n = next(served)
        size = int(request.query["page[size]"])
        records = [activity(n * size + i + 1) for i in range(size)]
        return json_response(page(records, has_more=True, after_cursor=f"C{n}"))

    async with HostileServer(full_pages) as server, server.client() as zd:
        got = await zd.activities.list(page_size=page_size).collect(limit=limit)
    assert _ids(got) == list(range(1, limit + 1))
    assert len(server.paths) == requests  # the README's list(page_size=20).collect(limit=20): 1


@pytest.mark.parametrize(
    ("limit", "error"), [(-1, ValueError), (True, TypeError), (2.0, TypeError)]
)
async def test_collect_with_a_bad_limit_fails_before_any_request(
    limit: object, error: type[Exception]
) -> None:
    async with HostileServer(respond(page([activity(1)]))) as server, server.client() as zd:
        with pytest.raises(error, match="limit"):
            await zd.activities.list().collect(limit=limit)  # type: ignore[arg-type]
    assert server.paths == []


# (end of data loss)


# === Hangs and account-wide stalls: rate limits, Retry-After, timeouts ========================


# (end of hangs)


# === Failures that are final, or escape the error tree ========================================


# (end of failures)


# === The command line =========================================================================


# (end of command line)


# === Security: credentials, hosts and shared caches ===========================================


# (end of security)

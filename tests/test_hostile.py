"""What zdactivity survives: a broken or hostile server, a wrong clock, a careless caller.

Each test is one case, named for what the client does about it, against a real server on
loopback (``hostile.HostileServer``, or the emulator where it can produce the fault). Read the
test names top to bottom as the list of what the long-running paths are proven to survive.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import itertools
import json
import os
import pickle
import re
import subprocess
import sys
import time
import traceback
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
import yarl
from aiohttp import web
from conftest import NOW, oauth_token, token
from fakes import FakeTime
from hostile import (
    Handler,
    HostileServer,
    TLSHostileServer,
    activity,
    exception_web,
    json_response,
    never_answer,
    page,
    reset_connection,
    respond,
    run_cli,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import zdactivity
from zdactivity import ActivityPage, PaginationError, RetryPolicy, models
from zdactivity import protocol as p
from zdactivity.checkpoint import Checkpoint, MemoryCheckpointStore
from zdactivity.fleet import Fleet
from zdactivity.pagination import DEFAULT_MAX_PAGES, DEFAULT_PREFETCH, REMEMBERED_CURSORS
from zdactivity.protocol import (
    RateLimitHeaders,
    ResumePoint,
    format_since,
    list_request,
    resolve_base_url,
    resume_request,
    resume_token,
)
from zdactivity.testing import Emulator, Fault
from zdactivity.watch import ActivityWatcher

ROOT = Path(__file__).resolve().parents[1]
AUTH = zdactivity.OAuthToken("s3cret-token")


async def test_the_hostile_server_serves_a_page() -> None:
    async with HostileServer(respond(page([activity(1)]))) as server, server.client() as zd:
        listed = await zd.activities.list().collect()
    assert [a.id for a in listed] == [1]
    assert server.paths == ["/api/v2/activities?page%5Bsize%5D=100"]


# === Data loss: watch, tail and resumption ====================================================


async def test_a_future_dated_activity_does_not_hide_the_ones_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wall = [NOW]
    async with Emulator(seed=1, agents=1, activities_per_agent=0, clock=lambda: wall[0]) as emu:
        agent = emu.agents[0]
        store = MemoryCheckpointStore()
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
            watcher = zd.activities.watch(
                since=NOW - timedelta(minutes=1),
                checkpoint=store,
                key="a",
                sleep=FakeTime().sleep,
                clock=lambda: wall[0],
            )
            future = emu.add_activity(agent, created_at=NOW + timedelta(days=1))["id"]
            got = []
            async with asyncio.timeout(5), watcher:
                got.append((await watcher.__anext__()).id)
                later = []
                for i in range(5):
                    wall[0] = NOW + timedelta(minutes=1 + i)
                    later.append(emu.add_activity(agent, created_at=wall[0])["id"])
                    got.append((await watcher.__anext__()).id)
        assert got == [future, *later]
        saved = store.snapshot()["a"]
        assert saved.high_water is not None
        assert saved.high_water <= wall[0] + ActivityWatcher.max_skew
        assert "ahead of the local clock" in caplog.text


@pytest.mark.emulator(seed=2, agents=1, activities_per_agent=12)
async def test_leaving_a_watch_with_break_commits_the_activity_taken_last(
    emu: Emulator, client: zdactivity.Client
) -> None:
    agent = emu.agents[0]
    store = MemoryCheckpointStore()
    first: list[int] = []
    async with client.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
        async for a in s:
            first.append(a.id)
            if len(first) == 3:
                break
    rest: list[int] = []
    async with client.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
        async for a in s:
            rest.append(a.id)
            if len(first) + len(rest) == len(emu.activities_for(agent)):
                break
    assert not set(first) & set(rest)  # the third did not come again
    assert sorted(first + rest) == sorted(a["id"] for a in emu.activities_for(agent))


@pytest.mark.emulator(seed=3, agents=1, activities_per_agent=5)
async def test_an_exception_out_of_a_watch_leaves_the_activity_in_hand_uncommitted(
    client: zdactivity.Client,
) -> None:
    store = MemoryCheckpointStore()
    taken: list[int] = []
    with pytest.raises(RuntimeError):
        async with client.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
            async for a in s:
                taken.append(a.id)
                if len(taken) == 2:
                    raise RuntimeError("the handler failed")
    async with client.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
        again = (await s.__anext__()).id
    assert again == taken[1]


async def test_a_crash_in_the_middle_of_a_many_page_poll_loses_nothing() -> None:
    """Pages come newest first: a restart must go on with the poll, not skip its older pages."""
    async with Emulator(seed=4, agents=1, activities_per_agent=250, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        want = {a["id"] for a in emu.activities_for(agent)}
        store = MemoryCheckpointStore()
        delivered: list[int] = []
        for life in range(4):
            async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
                watcher = zd.activities.watch(
                    checkpoint=store,
                    key="a",
                    page_size=20,
                    sleep=FakeTime().sleep,
                    clock=lambda: NOW,
                )
                async with asyncio.timeout(10):
                    for _ in range(70):
                        if set(delivered) == want:
                            break
                        delivered.append((await watcher.__anext__()).id)
            # The process dies here: no aclose, the last activity taken is not committed.
            if life == 0:
                assert store.snapshot()["a"].position is not None
    assert set(delivered) == want
    repeats = len(delivered) - len(set(delivered))
    assert repeats <= 3  # at most one per crash
    # The restarts went on from the saved page: the first listing was never read again whole.
    firsts = [r for r in emu.requests if "page[after]" not in r.query]
    assert len(firsts) == 1


def endless_pages(per_page: int = 100) -> Handler:
    """A server that always has more: fresh ids, each a minute older than the last."""
    served = [0]

    async def handler(_request: web.Request) -> web.StreamResponse:
        start = served[0]
        served[0] += per_page
        acts = [
            activity(start + i + 1, NOW - timedelta(minutes=start + i)) for i in range(per_page)
        ]
        return json_response(page(acts, has_more=True, after_cursor=f"c{served[0]}"))

    return handler


async def test_a_server_that_always_has_more_is_delivered_while_paging_in_bounded_memory() -> None:
    t = FakeTime()
    async with HostileServer(endless_pages()) as server, server.client() as zd:
        store = MemoryCheckpointStore()
        watcher = zd.activities.watch(
            checkpoint=store, key="a", max_pages_per_poll=5, sleep=t.sleep, clock=lambda: NOW
        )
        async with asyncio.timeout(10), watcher:
            await watcher.__anext__()
            # Delivered from the first page, not the last (read-ahead may have asked for one more).
            assert len(server.requests) <= 1 + DEFAULT_PREFETCH
            for _ in range(1_200):
                await watcher.__anext__()
        assert 13 <= len(server.requests) <= 13 + DEFAULT_PREFETCH
        assert len(t.slept) == 2  # a pause after each 5 pages
        assert len(store.snapshot()["a"].recent_ids) <= 100 + 11  # one page and the lookback


async def test_commits_of_a_long_catch_up_stay_small() -> None:
    """Each commit writes the ids near the mark, not every id delivered so far."""
    sizes: list[int] = []

    class Recording(MemoryCheckpointStore):
        async def save(self, key: str, checkpoint: Checkpoint) -> None:
            sizes.append(len(checkpoint.recent_ids))
            await super().save(key, checkpoint)

    async with Emulator(seed=5, agents=1, activities_per_agent=2_000, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        n = len(emu.activities_for(agent))
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
            watcher = zd.activities.watch(checkpoint=Recording(), key="a", clock=lambda: NOW)
            async with watcher:
                for _ in range(n):
                    await watcher.__anext__()
    assert len(sizes) >= n - 1
    assert max(sizes) <= 100 + 50  # a page, and the activities within the 10-minute lookback


async def test_tail_commits_only_what_it_printed(tmp_path: Path) -> None:
    """The reader of ``tail`` goes away: the line that could not be written comes again."""
    now = datetime.now(UTC).replace(microsecond=0)
    async with Emulator(seed=6, agents=1, activities_per_agent=0) as emu:
        agent = emu.agents[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZENDESK_")}
        env.update(
            PYTHONPATH=str(ROOT),
            ZENDESK_URL=emu.url,
            ZENDESK_EMAIL=agent.email,
            ZENDESK_API_TOKEN=agent.api_token,
        )
        state = str(tmp_path / "tail.db")
        command = [sys.executable, "-m", "zdactivity", "tail", "--interval", "0.2"]
        command += ["--since", "10m"]  # tail starts from now without it
        command += ["--state", state]

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT
            )

        async def read_ids(proc: subprocess.Popen[bytes], n: int) -> list[int]:
            assert proc.stdout is not None
            lines = [await asyncio.to_thread(proc.stdout.readline) for _ in range(n)]
            return [json.loads(line)["id"] for line in lines]

        first = [
            emu.add_activity(agent, created_at=now - timedelta(seconds=30 - s))["id"]
            for s in range(3)
        ]
        proc = start()
        try:
            async with asyncio.timeout(20):
                assert await read_ids(proc, 3) == first
                assert proc.stdout is not None
                proc.stdout.close()  # the reader goes away (`| head -3`)
                later = [
                    emu.add_activity(agent, created_at=now - timedelta(seconds=10 - s))["id"]
                    for s in range(3)
                ]
                assert await asyncio.to_thread(proc.wait) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        proc = start()
        try:
            async with asyncio.timeout(20):
                assert await read_ids(proc, 3) == later  # the unprinted first one included
        finally:
            proc.kill()
            await asyncio.to_thread(proc.wait)
            if proc.stdout is not None:
                proc.stdout.close()


async def test_a_fleet_agent_that_cannot_commit_backs_off_instead_of_redelivering_fast() -> None:
    class Failing(MemoryCheckpointStore):
        async def save(self, key: str, checkpoint: Checkpoint) -> None:
            if key == "bad":
                raise zdactivity.CheckpointError("the disk is full")
            await super().save(key, checkpoint)

    async with Emulator(seed=7, agents=3, activities_per_agent=4, clock=lambda: NOW) as emu:
        root = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0]))
        fleet = Fleet(Failing(), interval=0.05, retry_delay=0.01, max_retry_delay=60)
        for agent in emu.agents[1:]:
            fleet.add(str(agent.user_id), root.with_auth(token(agent)))
        fleet.add("bad", root.with_auth(token(emu.agents[0])))
        calls: list[str] = []

        async def handler(key: str, _activity: zdactivity.Activity) -> None:
            calls.append(key)

        task = asyncio.create_task(fleet.run(handler))
        await asyncio.sleep(1.5)
        fleet.stop()
        await task
        await root.close()
    good = sum(len(emu.activities_for(a)) for a in emu.agents[1:])
    assert len(calls) - calls.count("bad") == good
    # 10 ms, 20 ms, 40 ms...: a handful of attempts in 1.5 s, not one every 10 ms.
    assert 3 <= calls.count("bad") <= 9
    status = fleet.status()["bad"]
    assert isinstance(status.last_error, zdactivity.CheckpointError)
    assert status.consecutive_failures == calls.count("bad")


def _ids(activities: object) -> list[int]:
    return [a.id for a in activities]  # type: ignore[attr-defined]


async def test_a_since_listing_cut_short_resumes_from_its_token_with_its_since_and_loses_none() -> (
    None
):
    async with Emulator(seed=5, agents=1, activities_per_agent=60) as emu:
        agent = emu.agents[0]
        everything = emu.activities_for(agent)
        since = str(everything[37]["created_at"])  # newest first: about 38 are since then
        auth = zdactivity.APIToken(agent.email, agent.api_token)
        async with zdactivity.Client(
            base_url=emu.url, auth=auth, retry=RetryPolicy.no_retry()
        ) as zd:
            wanted = _ids(await zd.activities.list(since=since).collect())
            assert 15 < len(wanted) < len(everything)
            delivered: list[int] = []
            token = None
            with pytest.raises(zdactivity.ServerError):
                async for got in zd.activities.list(since=since, page_size=5).pages():
                    delivered += _ids(got)
                    token = got.resume_token  # saved once the page is handled
                    if len(delivered) == 15:
                        emu.inject(Fault.status(500))  # the listing breaks here
            assert delivered == wanted[:15]
            assert token is not None
            first_resumed = len(emu.requests)
            rest = _ids(await zd.activities.list(resume=token).collect())
        resumed = emu.requests[first_resumed:]
        assert resumed
        assert {r.query.get("since") for r in resumed} == {format_since(since)}
        assert {r.query.get("page[size]") for r in resumed} == {"5"}
        assert delivered + rest == wanted  # exactly the rest: nothing older, nothing twice


async def test_a_resume_token_repeated_with_the_same_since_and_page_size_is_accepted() -> None:
    async with HostileServer(respond(page([activity(1)]))) as server, server.client() as zd:
        token = ResumePoint("C1", "2026-11-01T00:00:00Z", 20).token()
        same = datetime(2026, 11, 1, 1, tzinfo=timezone(timedelta(hours=1)))
        listed = await zd.activities.list(resume=token, since=same, page_size=20).collect()
    assert _ids(listed) == [1]
    assert server.paths == [
        "/api/v2/activities?since=2026-11-01T00:00:00Z&page%5Bsize%5D=20&page%5Bafter%5D=C1"
    ]


_SINCES = st.none() | st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@given(
    cursor=st.text(st.characters(exclude_categories=("Cs",)), min_size=1),
    since=_SINCES,
    page_size=st.integers(1, 100),
)
def test_a_resume_token_is_url_safe_and_carries_cursor_since_and_page_size(
    cursor: str, since: datetime | None, page_size: int
) -> None:
    first = list_request(since=since, page_size=page_size)
    token = resume_token(first, ActivityPage([], has_more=True, after_cursor=cursor))
    assert token is not None
    assert re.fullmatch(r"zr1\.[A-Za-z0-9_-]+", token)
    assert resume_request(token) == first.with_param("page[after]", cursor)
    assert resume_request(token, since=since, page_size=page_size) == resume_request(token)


def test_pages_without_an_after_cursor_or_of_offset_listings_have_no_resume_token() -> None:
    cursor_listing = list_request(page_size=10)
    assert resume_token(cursor_listing, ActivityPage([], has_more=False)) is None
    offset = list_request(pagination="offset")
    assert resume_token(offset, ActivityPage([], has_more=True, after_cursor="C")) is None


def _encoded(body: bytes, prefix: str = "zr1.") -> str:
    return prefix + base64.urlsafe_b64encode(body).rstrip(b"=").decode()


_GOOD = ResumePoint("C9", "2026-11-01T00:00:00Z", 50).token()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "C9",  # a bare cursor is not a token
        "zr1.",
        "zr1.!!!!",
        "zr1.é",
        _GOOD[:8] + "!" + _GOOD[8:],  # a character outside base64url, anywhere
        _GOOD + "=",
        _GOOD + "\n",
        _GOOD.replace("zr1.", "zr1. "),
        _GOOD[:-3],  # truncated
        _GOOD.replace("zr1.", "ZR1."),
        _encoded(b"not json"),
        _encoded(b'{"after": "C9"}'),
        _encoded(b'["C9", null]'),
        _encoded(b'["C9", null, 50, "extra"]'),
        _encoded(b'["", null, 50]'),
        _encoded(b'["C9", null, 0]'),
        _encoded(b'["C9", null, 101]'),
        _encoded(b'["C9", null, true]'),
        _encoded(b'["C9", "yesterday", 50]'),
        _encoded(b'["C9", "2026-13-01T00:00:00Z", 50]'),
        _encoded(b'["C9", "2026-11-01T00:00:00+01:00", 50]'),
        _encoded(b'["C9", null, 50]', prefix="zr2."),
    ],
)
def test_a_malformed_resume_token_is_a_value_error(token: str) -> None:
    with pytest.raises(ValueError, match="resume token") as info:
        resume_request(token)
    assert token not in str(info.value) or not token


@given(st.integers(0, len(_GOOD)), st.text(max_size=8), st.integers(0, 4))
def test_a_damaged_resume_token_is_refused_or_still_a_valid_one(
    at: int, junk: str, cut: int
) -> None:
    damaged = _GOOD[:at] + junk + _GOOD[at + cut :]
    try:
        point = ResumePoint.parse(damaged)
    except ValueError:
        return
    assert point.after_cursor and 1 <= point.page_size <= 100


def test_a_resume_token_that_is_not_a_str_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="resume"):
        resume_request(b"zr1.abc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"resume": "not a token"},
        {"resume": _GOOD, "since": "2026-10-01T00:00:00Z"},
        {"resume": ResumePoint("C9", None, 50).token(), "since": "2026-10-01T00:00:00Z"},
        {"resume": _GOOD, "page_size": 100},
        {"resume": _GOOD, "cursor": "C9"},
        {"resume": _GOOD, "pagination": "offset"},
    ],
)
async def test_a_bad_or_conflicting_resume_is_refused_before_any_request(
    kwargs: dict[str, object],
) -> None:
    async with HostileServer(respond(page([activity(1)]))) as server, server.client() as zd:
        with pytest.raises(ValueError):
            zd.activities.list(**kwargs)  # type: ignore[arg-type]
    assert server.paths == []


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


def fake_timed(t: FakeTime, **policy: Any) -> dict[str, Any]:
    """Client options under a fake clock: the policy and the limiter sleep through ``t``."""
    return {
        "retry": zdactivity.RetryPolicy(clock=t.clock, sleep=t.sleep, **policy),
        "rate_limiter": zdactivity.RateLimiter(clock=t.clock, sleep=t.sleep),
    }


TWO_PAGES = (page([activity(2)], has_more=True, after_cursor="c2"), page([activity(1)]))


@pytest.mark.parametrize(
    "reset_header",
    [{"ratelimit-reset": "1000000000"}, {"rate-limit-reset": "86400"}],
)
async def test_a_rate_limit_reset_of_31_years_waits_at_most_one_window(
    reset_header: dict[str, str],
) -> None:
    t = FakeTime()
    exhausted = {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "0", **reset_header}
    first, last = TWO_PAGES
    async with (
        HostileServer(respond(first, headers=exhausted), respond(last)) as server,
        server.client(**fake_timed(t)) as zd,
    ):
        listed = await zd.activities.list().collect()
    assert [a.id for a in listed] == [2, 1]
    assert t.slept and max(t.slept) <= 60.0  # one window, not 1e9 seconds


async def test_a_rate_limit_of_zero_from_a_header_is_ignored() -> None:
    t = FakeTime()
    first, last = TWO_PAGES
    zero = {"X-Rate-Limit": "0", "X-Rate-Limit-Remaining": "5", "rate-limit-reset": "30"}
    async with (
        HostileServer(respond(first, headers=zero), respond(last, headers=zero)) as server,
        server.client(**fake_timed(t)) as zd,
    ):
        listed = await zd.activities.list().collect()
        assert zd.rate_limiter.limit is None
    assert [a.id for a in listed] == [2, 1]
    assert t.slept == []


async def test_a_limiter_wait_past_max_time_fails_at_once_naming_the_local_limiter() -> None:
    t = FakeTime()
    first, last = TWO_PAGES
    exhausted = {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "0", "rate-limit-reset": "45"}
    async with (
        HostileServer(respond(first, headers=exhausted), respond(last)) as server,
        server.client(**fake_timed(t, max_time=10.0)) as zd,
    ):
        with pytest.raises(zdactivity.LocalRateLimitError) as info:
            await zd.activities.list().collect()
    assert t.slept == []  # refused instead of sleeping 45 s
    assert len(server.requests) == 1  # the second page was never sent
    message = str(info.value)
    assert "local rate limiter" in message and "no request was sent" in message
    assert "max_time" in message and "HTTP 429" not in message
    assert info.value.retry_after == pytest.approx(45.0)
    assert info.value.request_id is None


@pytest.mark.parametrize("retry_after", ["1000000000", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_a_retry_after_of_31_years_pauses_the_account_for_at_most_max_retry_after(
    retry_after: str,
) -> None:
    t = FakeTime()
    refused = respond({"error": "slow down"}, status=429, headers={"Retry-After": retry_after})
    async with (
        HostileServer(refused, respond(page([activity(1)]))) as server,
        server.client(**fake_timed(t, max_retry_after=20.0)) as zd,
    ):
        other_agent = zd.with_auth(zdactivity.OAuthToken("other-token"))
        with pytest.raises(zdactivity.RateLimitError) as info:
            await zd.activities.list().collect()
        assert not isinstance(info.value, zdactivity.LocalRateLimitError)
        assert t.slept == []  # that request failed at once
        paused_for = zd.rate_limiter.state().paused_for
        assert paused_for is not None and paused_for <= 20.0
        # Another agent of the account waits out the capped pause, then gets through.
        listed = await other_agent.activities.list().collect()
    assert [a.id for a in listed] == [1]
    assert sum(t.slept) == pytest.approx(20.0)


async def test_a_testing_policy_never_sleeps_through_the_limiters_429_pause() -> None:
    refused = respond({"error": "slow down"}, status=429, headers={"Retry-After": "3"})
    async with (
        HostileServer(refused, respond(page([activity(1)]))) as server,
        server.client(retry=zdactivity.RetryPolicy().testing()) as zd,
    ):
        started = time.monotonic()
        listed = await zd.activities.list().collect()
        elapsed = time.monotonic() - started
    assert [a.id for a in listed] == [1]
    assert len(server.requests) == 2
    assert elapsed < 1.0  # was 3 s: the limiter slept through the pause


async def test_ten_calls_behind_a_probe_that_never_answers_each_fail_within_their_own_timeout() -> (
    None
):
    async with (
        HostileServer(never_answer) as server,
        server.client(retry=zdactivity.RetryPolicy.no_retry(), timeout=0.3) as zd,
    ):

        async def one() -> float:
            started = time.monotonic()
            with pytest.raises(zdactivity.TransportError, match="timed out"):
                await zd.activities.count()
            return time.monotonic() - started

        waits = await asyncio.gather(*(one() for _ in range(10)))
    assert max(waits) < 0.3 * 2.5  # about one timeout each; they queued to 3 s before


async def test_a_failed_probe_lets_every_waiter_go_at_once() -> None:
    # Timeouts of 0.3 s with a total of 5 s: the waiters are not timed out while they wait
    # for the probe, and they all go the moment it fails (not one read timeout after another).
    async with (
        HostileServer(never_answer) as server,
        server.client(
            retry=zdactivity.RetryPolicy.no_retry(),
            timeout=zdactivity.Timeout(connect=5, read=0.3, total=5),
        ) as zd,
    ):
        started = time.monotonic()
        results = await asyncio.gather(
            *(zd.activities.count() for _ in range(10)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
    assert all(isinstance(r, zdactivity.TransportError) for r in results)
    assert elapsed < 0.3 * 3.5  # the probe's read timeout, then the others' together


async def test_a_failure_in_the_windows_one_at_a_time_tail_lets_the_waiters_go() -> None:
    t = FakeTime()
    rl = zdactivity.RateLimiter(clock=t.clock, sleep=t.sleep)
    rl.observe(await rl.acquire(), RateLimitHeaders(limit=300, remaining=4, reset=60))
    last = await rl.acquire()  # the tail: one at a time
    waiters = [asyncio.ensure_future(rl.acquire()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    rl.release(last)  # no answer (timed out): the waiters must not queue behind each other
    granted = await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert len(granted) == 2 and rl.remaining == 1
    assert t.slept == []


@pytest.mark.parametrize("value", [0, 0.0, -1, float("nan"), float("inf"), -float("inf")])
def test_a_timeout_that_is_not_a_positive_finite_number_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="positive finite"):
        zdactivity.Client(base_url="http://127.0.0.1:1", auth=AUTH, timeout=value)
    for field in ("connect", "read", "total"):
        with pytest.raises(ValueError, match=field):
            zdactivity.Timeout(**{field: value})


@pytest.mark.parametrize("value", [True, False, "30", b"30"])
def test_a_timeout_that_is_not_a_number_is_refused(value: object) -> None:
    with pytest.raises(TypeError):
        zdactivity.Client(base_url="http://127.0.0.1:1", auth=AUTH, timeout=value)  # type: ignore[arg-type]
    for field in ("connect", "read", "total"):
        with pytest.raises(TypeError):
            zdactivity.Timeout(**{field: value})


def test_a_timeout_of_none_still_disables_one_deliberately() -> None:
    assert zdactivity.Timeout(connect=None, read=None, total=None).total is None


async def test_a_tls_certificate_that_cannot_be_verified_fails_at_once_with_a_clear_message(
    tmp_path: Path,
) -> None:
    async with (
        TLSHostileServer(tmp_path, respond(page([activity(1)]))) as server,
        server.client(retry=zdactivity.RetryPolicy(max_tries=5).testing()) as zd,
    ):
        with pytest.raises(zdactivity.CertificateError) as info:
            await zd.activities.list().collect()
        assert zd.stats.retries == 0  # not transient: never retried
    message = str(info.value)
    assert "TLS certificate of 127.0.0.1 could not be verified: self-signed" in message
    assert isinstance(info.value, zdactivity.TransportError)
    assert not any(
        type(e).__module__.startswith(("aiohttp", "ssl")) for e in exception_web(info.value)
    )


async def test_a_refresh_waits_in_the_limiter_no_longer_than_max_time() -> None:
    t = FakeTime()
    limiter = zdactivity.RateLimiter(clock=t.clock, sleep=t.sleep)

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/oauth/tokens":
            return json_response({"access_token": "a2", "refresh_token": "r2"})
        # The account is held for a minute (another process's 429, say) as the 401 arrives.
        limiter.pause(60)
        return json_response({"error": "Couldn't authenticate you"}, status=401)

    auth = zdactivity.OAuthToken("s3cret-token", refresh_token="r3fresh", client_id="c")
    policy = RetryPolicy(max_time=5, max_retry_after=300, sleep=t.sleep, clock=t.clock)
    async with (
        HostileServer(handler) as server,
        server.client(auth=auth, retry=policy, rate_limiter=limiter) as zd,
    ):
        with pytest.raises(zdactivity.AuthenticationError, match="refresh"):
            await zd.activities.count()
        assert server.paths == ["/api/v2/activities/count"]  # the refresh was never sent
    assert sum(t.slept) <= 5


# (end of hangs)


# === Failures that are final, or escape the error tree ========================================


async def test_a_refresh_that_fails_while_the_token_endpoint_is_down_recovers_when_it_is_back() -> (
    None
):
    async with Emulator(seed=10, agents=1, activities_per_agent=5) as emu:
        agent = emu.agents[0]
        saved: list[tuple[str, str]] = []

        async def on_refresh(access: str, refresh: str) -> None:
            saved.append((access, refresh))

        auth = oauth_token(agent, on_refresh=on_refresh)
        policy = zdactivity.RetryPolicy(max_tries=3).testing()
        async with zdactivity.Client(base_url=emu.url, auth=auth, retry=policy) as zd:
            emu.expire_tokens(agent)
            # The token endpoint is down for a while: longer than one call's retries.
            emu.inject(*[Fault.status(503) for _ in range(6)], path="/oauth/tokens")
            errors = []
            for _ in range(2):
                with pytest.raises(zdactivity.AuthenticationError) as info:
                    await zd.activities.count()
                errors.append(info.value)
            assert errors[0] is not errors[1]  # a fresh exception each time
            assert "emulator-secret" not in str(errors[0]) + repr(errors[0])
            tokens = [r for r in emu.requests if r.path == "/oauth/tokens"]
            assert len(tokens) == 6  # 3 tries per call: transient failures are retried
            # ... and back: the next call refreshes and succeeds.
            count = await zd.activities.count()
        assert count.value == 5
        assert emu.refresh_count == 1 and saved == [emu.current_tokens(agent)]


async def test_a_transient_refresh_failure_is_retried_within_the_same_call() -> None:
    async with Emulator(seed=10, agents=1, activities_per_agent=5) as emu:
        agent = emu.agents[0]
        auth = oauth_token(agent)
        async with zdactivity.Client(
            base_url=emu.url, auth=auth, retry=zdactivity.RetryPolicy().testing()
        ) as zd:
            emu.expire_tokens(agent)
            emu.inject(
                Fault.status(503, retry_after=0),
                Fault.reset(),
                Fault.status(429, retry_after=0),
                path="/oauth/tokens",
            )
            count = await zd.activities.count()
        assert count.value == 5 and emu.refresh_count == 1


async def test_a_failed_refresh_raised_again_and_again_does_not_grow_its_traceback() -> None:
    async def refused(request: web.Request) -> web.StreamResponse:
        if request.path == "/oauth/tokens":
            return json_response({"error": "invalid_grant"}, status=400)
        return json_response({"error": "Couldn't authenticate you"}, status=401)

    auth = zdactivity.OAuthToken("s3cret-token", refresh_token="r3fresh", client_id="c")
    async with HostileServer(refused) as server, server.client(auth=auth) as zd:
        depths = []
        for _ in range(5):
            with pytest.raises(zdactivity.AuthenticationError) as info:
                await zd.activities.count()
            depths.append(len(traceback.extract_tb(info.value.__traceback__)))
        assert len(set(depths)) == 1
        # A later 401 tries the refresh again (no failure is cached forever).
        assert server.paths.count("/oauth/tokens") == 5


async def test_concurrent_401s_share_one_failed_refresh_each_with_an_exception_of_its_own() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/oauth/tokens":
            await asyncio.sleep(0.05)  # every other request's 401 arrives while this runs
            return json_response({"error": "invalid_grant"}, status=400)
        await asyncio.sleep(0.01)
        return json_response({"error": "Couldn't authenticate you"}, status=401)

    auth = zdactivity.OAuthToken("s3cret-token", refresh_token="r3fresh", client_id="c")
    async with HostileServer(handler) as server, server.client(auth=auth) as zd:
        results = await asyncio.gather(
            *(zd.activities.count() for _ in range(10)), return_exceptions=True
        )
        assert all(isinstance(r, zdactivity.AuthenticationError) for r in results)
        assert len({id(r) for r in results}) == 10
        assert server.paths.count("/oauth/tokens") == 1
        # A request sent after that failure refreshes again.
        with pytest.raises(zdactivity.AuthenticationError):
            await zd.activities.count()
        assert server.paths.count("/oauth/tokens") == 2


@pytest.mark.parametrize(
    "pair",
    [
        {"access_token": "new\r\nX-Evil: 1", "refresh_token": "r2"},
        {"access_token": "new", "refresh_token": "r2\x00"},
        {"access_token": "", "refresh_token": "r2"},
    ],
)
async def test_a_refreshed_token_with_control_characters_is_an_authentication_error(
    pair: dict[str, str],
) -> None:
    saved: list[tuple[str, str]] = []

    async def on_refresh(access: str, refresh: str) -> None:
        saved.append((access, refresh))

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/oauth/tokens":
            return json_response(pair)
        return json_response({"error": "Couldn't authenticate you"}, status=401)

    auth = zdactivity.OAuthToken("s3cret-token", refresh_token="r1", on_refresh=on_refresh)
    async with HostileServer(handler) as server, server.client(auth=auth) as zd:
        with pytest.raises(zdactivity.AuthenticationError, match="unusable") as info:
            await zd.activities.count()
    assert saved == [] and auth.access_token == "s3cret-token"
    assert "X-Evil" not in str(info.value)


def test_a_credential_with_control_characters_is_refused_when_created_without_echoing_it() -> None:
    secret = "s3cret\nInjected: yes"
    attempts = [
        lambda: zdactivity.APIToken("agent@acme.com", secret),
        lambda: zdactivity.APIToken("agent@acme.com\r", "tok"),
        lambda: zdactivity.OAuthToken(secret),
        lambda: zdactivity.OAuthToken("ok", refresh_token=secret),
        lambda: zdactivity.OAuthToken("ok", refresh_token="r", client_id="id\x00"),
        lambda: zdactivity.OAuthToken("ok", refresh_token="r", client_secret=secret),
        lambda: zdactivity.OAuthToken("ok\x7f"),
    ]
    for attempt in attempts:
        with pytest.raises(ValueError, match="control character") as info:
            attempt()
        assert "s3cret" not in str(info.value) and "Injected" not in str(info.value)


#: Deeper than any supported interpreter lets msgspec recurse (Python's limit of 1,000 frames up
#: to 3.12; 3.13's C recursion limit of about 10,000): nested too deeply to read, on every version.
TOO_DEEP = 100_000


@pytest.mark.parametrize("depth", [2000, TOO_DEEP])
async def test_an_error_body_nested_deep_is_a_readable_api_error(depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    async with HostileServer(respond(body, status=500)) as server, server.client() as zd:
        with pytest.raises(zdactivity.ServerError) as info:
            await zd.activities.count()
    assert len(str(info.value)) < 300
    if depth == TOO_DEEP:  # too deep to read as JSON on every version: its text describes it
        assert info.value.description is not None and info.value.description.startswith("[[[")


def test_an_error_body_with_a_deeply_nested_detail_is_a_readable_api_error() -> None:
    deep = b"[" * 900 + b"]" * 900
    body = b'{"errors": [{"code": "X", "detail": ' + deep + b"}]}"
    error = p.error_from_response(422, {}, body)
    assert isinstance(error, zdactivity.InvalidRequestError)


def _nest(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_pages() -> dict[str, bytes]:
    base = page([activity(1)])
    deep = _nest(TOO_DEEP)
    a = msgspec.json.encode(base).decode()
    return {
        "unknown activity field": a.replace('"verb"', f'"extra": {deep}, "verb"', 1),
        "unknown top-level field": a.replace('"actors"', f'"extra": {deep}, "actors"', 1),
        "object": a.replace('"object":{', f'"object":{{"x": {deep}, ', 1),
        "inline actor": a.replace('"verb"', f'"actor": {{"id": 7, "x": {deep}}}, "verb"', 1),
        "sideloaded user_fields": a.replace(
            '"actors":[]', f'"actors":[{{"id": 7, "user_fields": {{"a": {deep}}}}}]', 1
        ),
    }.items()  # type: ignore[return-value]


@pytest.mark.parametrize(("where", "body"), list(_deep_pages()))
def test_a_page_nested_too_deep_anywhere_is_a_decode_error(where: str, body: str) -> None:
    assert _nest(TOO_DEEP) in body, where
    with pytest.raises(zdactivity.DecodeError):
        decoded = p.decode_page(body.encode())
        for a in decoded:
            a.actor, a.user, a.object, a.target  # noqa: B018 (lazy decoding)


def test_a_single_activity_or_a_content_nested_too_deep_is_a_decode_error() -> None:
    deep = _nest(TOO_DEEP)
    show = {"activity": activity(1, extra=msgspec.Raw(deep.encode()))}
    with pytest.raises(zdactivity.DecodeError):
        p.decode_activity(msgspec.json.encode(show))
    # What may be decoded lazily, when read (object, target, actor), is guarded as well: the
    # error comes at decode time or on first access, never as a RecursionError.
    change = msgspec.Raw(b'{"change": {"field": "f", "value": ' + deep.encode() + b"}}")
    user = msgspec.Raw(b'{"id": 7, "user_fields": {"a": ' + deep.encode() + b"}}")
    for fields, read in [
        ({"object": change}, lambda a: a.object),
        ({"target": change}, lambda a: a.target),
        ({"actor": user}, lambda a: a.actor),
    ]:
        body = msgspec.json.encode({"activity": activity(1, **fields)})
        with pytest.raises(zdactivity.DecodeError, match="nested too deeply"):
            read(p.decode_activity(body))


async def test_a_token_answer_nested_too_deep_is_an_authentication_error() -> None:
    deep = msgspec.Raw(_nest(TOO_DEEP).encode())
    tokens = {"access_token": "a", "refresh_token": "r", "x": deep}

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/oauth/tokens":
            return json_response(tokens)
        return json_response({"error": "Couldn't authenticate you"}, status=401)

    auth = zdactivity.OAuthToken("s3cret-token", refresh_token="r3fresh", client_id="c")
    async with HostileServer(handler) as server, server.client(auth=auth) as zd:
        with pytest.raises(zdactivity.AuthenticationError, match="no token pair"):
            await zd.activities.count()
        # The answer was refused, not half-used: nothing was sent with what it held.
        assert server.paths == ["/api/v2/activities/count", "/oauth/tokens"]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"id": 2**63}, "id"),
        ({"id": 2**64 + 5}, "id"),
        ({"actor_id": -(2**63) - 1}, "actor_id"),
        ({"user_id": 2**63}, "user_id"),
        ({"created_at": "2026-11-20T12:00:00"}, "created_at"),
        ({"updated_at": "2026-11-20T12:00:00"}, "updated_at"),
        ({"created_at": "0001-01-01T00:00:00Z"}, "created_at"),
        ({"created_at": "0001-01-01T00:00:00+05:00"}, "created_at"),
        ({"updated_at": "9999-12-31T23:59:59Z"}, "updated_at"),
    ],
)
def test_an_id_past_int64_a_naive_time_or_year_1_is_a_decode_error(
    fields: dict[str, object], where: str
) -> None:
    record = activity(1, **fields)
    with pytest.raises(zdactivity.DecodeError, match=where) as info:
        p.decode_page(msgspec.json.encode(page([activity(2), record])))
    assert info.value.path is not None and info.value.path.startswith("$.activities[1]")
    with pytest.raises(zdactivity.DecodeError, match=where):
        p.decode_activity(msgspec.json.encode({"activity": record}))


@pytest.mark.parametrize(
    "count",
    [
        {"value": 2**63, "refreshed_at": None},
        {"value": 3, "refreshed_at": "2026-11-20T12:00:00"},
        {"value": 3, "refreshed_at": "0001-01-01T00:00:00Z"},
    ],
)
def test_a_count_past_int64_or_with_a_naive_or_year_1_time_is_a_decode_error(
    count: dict[str, object],
) -> None:
    with pytest.raises(zdactivity.DecodeError):
        p.decode_count(msgspec.json.encode({"count": count}))


def test_the_extreme_years_accepted_survive_a_lookback_of_a_year() -> None:
    for when in ("0003-01-01T00:00:00+14:00", "9997-12-31T23:59:59-12:00"):
        (decoded,) = p.decode_page(msgspec.json.encode(page([activity(1, created_at=when)])))
        utc = decoded.created_at.astimezone(UTC)
        assert utc - timedelta(days=366) < utc < utc + timedelta(days=366)


async def test_an_id_past_int64_in_a_listing_is_a_decode_error_not_a_value_error() -> None:
    body = page([activity(2**63 + 1)])
    async with HostileServer(respond(body)) as server, server.client() as zd:
        with pytest.raises(zdactivity.DecodeError, match="9223372036854775807"):
            await zd.activities.list().collect()


class _UnsendableAuth:
    """A custom credential whose header cannot be sent (aiohttp refuses it: ValueError)."""

    def authorization(self) -> str:
        return "Bearer s3cret\r\nX-Injected: 1"


@pytest.mark.parametrize("bad", ["nested 500 body", "unsendable credential", "auth raises"])
async def test_one_agent_failing_with_any_exception_never_stops_fan_out_for_the_others(
    bad: str,
) -> None:
    good = [activity(i) for i in range(1, 4)]

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") == "Bearer bad-agent":
            return json_response(b"[" * 5000 + b"]" * 5000, status=500)
        cursor = request.query.get("page[after]")
        if cursor is None:
            return json_response(page(good[:2], has_more=True, after_cursor="c2"))
        return json_response(page(good[2:]))

    class Raising:
        def authorization(self) -> str:
            raise RuntimeError("credential store unavailable")

    bad_auth: zdactivity.Auth = {
        "nested 500 body": zdactivity.OAuthToken("bad-agent"),
        "unsendable credential": _UnsendableAuth(),
        "auth raises": Raising(),
    }[bad]
    async with HostileServer(handler) as server, server.client() as zd:
        clients = {"alice": zd, "mallory": zd.with_auth(bad_auth), "bob": zd.with_auth(zd.auth)}
        delivered: dict[str, list[int]] = {"alice": [], "bob": []}
        with pytest.raises(ExceptionGroup) as info:
            async for key, got in zdactivity.fan_out(clients, concurrency=2):
                delivered[key].append(got.id)
    assert delivered == {"alice": [1, 2, 3], "bob": [1, 2, 3]}
    (failure,) = info.value.exceptions
    assert isinstance(failure, zdactivity.AgentError) and failure.key == "mallory"
    assert isinstance(failure.error, Exception) and failure.__cause__ is failure.error
    assert "s3cret" not in str(failure)


async def test_cancelling_the_consumer_of_fan_out_still_propagates() -> None:
    async with HostileServer(never_answer) as server, server.client() as zd:

        async def consume() -> None:
            async for _ in zdactivity.fan_out({"a": zd, "b": zd}):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    "settings",
    [
        {"interval": float("inf")},
        {"interval": 1e308},
        {"interval": float("nan")},
        {"lookback": timedelta(days=31)},
        {"lookback": timedelta(days=-1)},
    ],
)
def test_watch_options_no_sleep_or_clock_arithmetic_can_overflow_are_refused(
    settings: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match=r"interval|lookback"):
        zdactivity.WatchOptions(**settings)


def test_watch_options_of_the_wrong_type_are_type_errors() -> None:
    with pytest.raises(TypeError, match="lookback"):
        zdactivity.WatchOptions(lookback=600)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="interval"):
        zdactivity.WatchOptions(interval=True)


def test_an_agent_error_survives_pickle() -> None:
    error = zdactivity.AgentError("agent-7", zdactivity.NotFoundError(404, description="gone"))
    again = pickle.loads(pickle.dumps(error))
    assert (again.key, type(again.error), str(again)) == (
        "agent-7",
        zdactivity.NotFoundError,
        str(error),
    )


async def test_a_megabyte_of_error_text_gives_a_readable_message() -> None:
    detail = "x" * 1_000_000
    body = {"errors": [{"code": "c" * 10_000, "title": "t", "detail": detail}]}
    async with HostileServer(respond(body, status=422)) as server, server.client() as zd:
        with pytest.raises(zdactivity.InvalidRequestError) as info:
            await zd.activities.count()
    assert len(str(info.value)) < 1_000 and len(info.value.body) <= 2_000


async def test_a_request_the_local_limiter_refused_is_not_counted_as_sent() -> None:
    limiter = zdactivity.RateLimiter()
    limiter.pause(3600)
    async with (
        HostileServer(respond(page([]))) as server,
        server.client(rate_limiter=limiter, retry=RetryPolicy(max_retry_after=1).testing()) as zd,
    ):
        with pytest.raises(zdactivity.LocalRateLimitError):
            await zd.activities.count()
        assert zd.stats.requests == 0 and server.requests == []


# (end of failures)


# === The command line =========================================================================


_NOWHERE = {"ZENDESK_URL": "http://127.0.0.1:9", "ZENDESK_OAUTH_TOKEN": "tok"}


def _one_usage_line(result: tuple[int, str, str], pattern: str, *secrets: str) -> None:
    code, stdout, stderr = result
    assert "Traceback" not in stderr, stderr
    assert code == 2, (code, stderr)
    assert stdout == ""
    lines = [line for line in stderr.splitlines() if line.startswith("zdactivity: ")]
    assert len(lines) == 1, stderr
    assert re.search(pattern, lines[0]), lines[0]
    for secret in secrets:
        assert secret not in stderr


@pytest.mark.parametrize("command", ["list", "tail"])
@pytest.mark.parametrize("since", ["999999999d", "9999999999999d", "99999999999999999999999s"])
async def test_the_cli_refuses_a_since_too_far_back_in_one_line(command: str, since: str) -> None:
    result = await run_cli(command, "--since", since, env=_NOWHERE)
    _one_usage_line(result, r"bad --since .*too far back")


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--agents", "99999999999"],
        ["demo", "--activities", "-1"],
        ["emulator", "--agents", "-3"],
        ["emulator", "--activities", "1e9"],
        ["emulator", "--rate-limit", "0"],
    ],
)
async def test_the_cli_refuses_sizes_no_machine_could_hold_in_one_line(args: list[str]) -> None:
    result = await run_cli(*args, env=_NOWHERE)
    _one_usage_line(result, re.escape(args[1]))


@pytest.mark.parametrize("interval", ["1e308", "100000", "inf", "nan", "0", "-5"])
async def test_the_cli_refuses_an_interval_no_watcher_could_sleep_in_one_line(
    interval: str,
) -> None:
    result = await run_cli("tail", f"--interval={interval}", env=_NOWHERE)
    _one_usage_line(result, r"--interval")


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        ({"ZENDESK_OAUTH_TOKEN": "good\nSECRET-PART"}, [], "ZENDESK_OAUTH_TOKEN"),
        ({"ZENDESK_OAUTH_TOKEN": "good\rSECRET-PART"}, [], "ZENDESK_OAUTH_TOKEN"),
        (
            {"ZENDESK_EMAIL": "a@acme.com", "ZENDESK_API_TOKEN": "good\nSECRET-PART"},
            [],
            "ZENDESK_API_TOKEN",
        ),
        (
            {"ZENDESK_EMAIL": "a@acme.com", "ZENDESK_API_TOKEN": "good\rSECRET-PART"},
            [],
            "ZENDESK_API_TOKEN",
        ),
        ({}, ["--oauth-token", "good\x1b[2JSECRET-PART"], "--oauth-token"),
        (
            {"ZENDESK_EMAIL": "a@acme.com\r\nX-Injected: 1", "ZENDESK_API_TOKEN": "SECRET-PART"},
            [],
            "ZENDESK_EMAIL",
        ),
    ],
)
async def test_the_cli_refuses_a_credential_with_a_control_character_without_printing_it(
    env: dict[str, str], args: list[str], named: str
) -> None:
    async with HostileServer(respond(page([activity(1)]))) as server:
        result = await run_cli("list", *args, env={"ZENDESK_URL": server.url, **env})
    _one_usage_line(result, re.escape(named) + " contains a control", "SECRET-PART")
    assert server.paths == []  # refused before any request


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("agents.csv", 'key,oauth_token\nalice,"good\nSECRET-PART"\n', "line 3: oauth_token"),
        ("agents.csv", 'key,oauth_token\nalice,"good\rSECRET-PART"\n', "oauth_token"),
        ("agents.csv", "key,oauth_token\nalice,good\0SECRET-PART\n", "line 2: oauth_token"),
        (
            "agents.csv",
            "key,email,api_token\nalice,a@acme.com,good\0SECRET-PART\n",
            "line 2: api_token",
        ),
        (
            "agents.toml",
            '[[agent]]\nkey = "alice"\noauth_token = "good\\nSECRET-PART"\n',
            r"\[\[agent\]\] #1: oauth_token",
        ),
        (
            "agents.toml",
            '[[agent]]\nkey = "alice"\noauth_token = "good\\u0000SECRET-PART"\n',
            "oauth_token",
        ),
        (
            "agents.toml",
            '[[agent]]\nkey = "alice"\nemail = "a@acme.com"\napi_token = "good\\rSECRET-PART"\n',
            "api_token",
        ),
    ],
)
async def test_the_cli_refuses_an_agents_file_credential_with_a_control_character(
    tmp_path: Path, name: str, content: str, where: str
) -> None:
    agents = tmp_path / name
    agents.write_bytes(content.encode())
    async with HostileServer(respond(page([activity(1)]))) as server:
        result = await run_cli("fan-out", "--agents", str(agents), env={"ZENDESK_URL": server.url})
    _one_usage_line(result, where + " contains a control", "SECRET-PART")
    assert server.paths == []


_HOSTILE_TEXT = "Forbidden\x1b[2J\x1b]0;owned\x07 \r\nzdactivity: all good\x1b[31m\u202e\x00"


@pytest.mark.parametrize(
    ("status", "body", "content_type", "code", "verbose"),
    [
        (403, {"error": {"title": _HOSTILE_TEXT, "message": _HOSTILE_TEXT}}, None, 3, False),
        (500, _HOSTILE_TEXT.encode(), "text/plain", 4, True),
        (404, {"error": "RecordNotFound", "description": _HOSTILE_TEXT}, None, 4, False),
    ],
)
async def test_the_cli_prints_no_control_character_a_server_sends_in_an_error(
    status: int, body: object, content_type: str | None, code: int, verbose: bool
) -> None:
    async def hostile(_request: web.Request) -> web.StreamResponse:
        if content_type is None:
            return json_response(body, status=status)
        assert isinstance(body, bytes)
        return web.Response(body=body, status=status, content_type=content_type)

    async with HostileServer(hostile) as server:
        args = ["-v"] if verbose else []
        returncode, stdout, stderr = await run_cli(
            *args, "show", "5", "--max-tries", "1", env={**_NOWHERE, "ZENDESK_URL": server.url}
        )
    assert returncode == code, stderr
    assert stdout == ""
    assert stderr.endswith("\n")
    lines = stderr[:-1].split("\n")
    assert all(line.isprintable() for line in lines), stderr
    errors = [line for line in lines if line.startswith("zdactivity: ")]
    assert len(errors) == 1, stderr  # the server's "zdactivity: all good" stays inside it
    assert "Forbidden" in errors[0]
    if verbose:
        assert len(lines) > 1  # the -v log lines are as clean


# (end of command line)


# === Security: credentials, hosts and shared caches ===========================================


def oversized_header() -> Handler:
    return respond(page([]), headers={"X-Padding": "a" * 9000})


async def bad_content_encoding(_request: web.Request) -> web.StreamResponse:
    response = web.Response(body=b"this is not gzip", content_type="application/json")
    response.headers["Content-Encoding"] = "gzip"
    return response


FAILURES: dict[str, tuple[Handler, type[zdactivity.ZendeskError]]] = {
    "oversized header": (oversized_header(), zdactivity.TransportError),
    "bad Content-Encoding": (bad_content_encoding, zdactivity.TransportError),
    "reset": (reset_connection, zdactivity.TransportError),
    "timeout": (never_answer, zdactivity.TransportError),
    "bad JSON": (respond(b'{"activities": [nope'), zdactivity.DecodeError),
    "401": (
        respond({"error": "Couldn't authenticate you"}, status=401),
        zdactivity.AuthenticationError,
    ),
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
@pytest.mark.parametrize(
    "auth",
    [
        zdactivity.APIToken("agent@acme.com", "s3cret-api-token"),
        zdactivity.OAuthToken("s3cret-oauth-token"),
    ],
    ids=["api-token", "oauth"],
)
async def test_no_credential_is_reachable_from_any_error_of_a_broken_response(
    kind: str, auth: zdactivity.Auth
) -> None:
    handler, expected = FAILURES[kind]
    authorization = auth.authorization()
    secrets = {authorization, authorization.split()[-1], "s3cret"}
    async with (
        HostileServer(handler) as server,
        server.client(auth=auth, retry=zdactivity.RetryPolicy.no_retry(), timeout=0.3) as zd,
    ):
        with pytest.raises(zdactivity.ZendeskError) as info:
            await zd.activities.list().collect()
    assert isinstance(info.value, expected), repr(info.value)
    web_of_errors = exception_web(info.value)
    for error in web_of_errors:
        assert not type(error).__module__.startswith("aiohttp"), repr(error)
        for text in (
            repr(error),
            str(error),
            repr(vars(error) if hasattr(error, "__dict__") else ""),
        ):
            assert not any(secret in text for secret in secrets), (kind, text)


@pytest.mark.parametrize("subdomain", ["acme\u017f", "acme\u0131", "\u0130stanbul", "\u212aelvin"])
def test_a_non_ascii_subdomain_is_refused_not_folded_onto_another_account(
    subdomain: str,
) -> None:
    with pytest.raises(ValueError, match="DNS label"):
        zdactivity.Client(subdomain=subdomain, auth=zdactivity.OAuthToken("s3cret-token"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70))
def test_any_accepted_subdomain_is_an_ascii_label_and_the_host_is_exactly_it(
    subdomain: str,
) -> None:
    try:
        url = resolve_base_url(subdomain=subdomain)
    except ValueError:
        return
    assert subdomain.isascii()
    assert re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", subdomain)
    assert urlsplit(url).hostname == f"{subdomain.lower()}.zendesk.com"
    assert yarl.URL(url).host == f"{subdomain.lower()}.zendesk.com"


@pytest.mark.parametrize(
    "base_url",
    [
        "https://acme.zendesk.com\n.evil.com",
        "https://acme.zendesk.com\r.evil.com",
        "https://acme.zendesk.com\t.evil.com",
        "https://acme.zendesk.com\x00.evil.com",
        "https://acme .zendesk.com",
        "https://acme.zendesk.com\x7f",
        "https://acme\u017f.zendesk.com",
        "https://acme%2eevil.com",
        "https://acme.zendesk.com%00",
    ],
)
def test_a_base_url_with_whitespace_control_or_non_ascii_characters_is_refused(
    base_url: str,
) -> None:
    with pytest.raises(ValueError, match=r"whitespace or control|ASCII|DNS name"):
        resolve_base_url(base_url=base_url)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.text(max_size=12))
def test_any_accepted_base_url_names_exactly_the_host_that_was_written(
    middle: str, tail: str
) -> None:
    written = f"https://acme{middle}.zendesk.com{tail}"
    try:
        url = resolve_base_url(base_url=written)
    except ValueError:
        return
    assert url.isascii() and url.isprintable() and " " not in url
    host = urlsplit(url).hostname
    assert host is not None and host in written.lower()
    assert yarl.URL(url).host == host


def _actor(user_id: int, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "id": user_id,
        "name": f"Agent {user_id}",
        "role": "agent",
        "user_fields": {"team": "blue", "skills": ["billing", "refunds"], "nested": {"a": [1]}},
    }
    record.update(fields)
    return record


def _paged_actors(actors: list[dict[str, object]]) -> Handler:
    """One activity per page, by ``actors[i]``; the cursor is the page number."""

    async def handler(request: web.Request) -> web.StreamResponse:
        i = int(request.query.get("page[after]", "0"))
        body = page(
            [activity(i + 1, actor_id=actors[i]["id"])],
            has_more=i + 1 < len(actors),
            after_cursor=str(i + 1),
        )
        body["actors"] = [actors[i]]
        return json_response(body)

    return handler


async def test_two_clients_never_share_user_records_but_views_of_one_client_do() -> None:
    same = [_actor(7), _actor(7)]
    async with (
        HostileServer(_paged_actors(same)) as server,
        server.client() as one,
        server.client() as two,
    ):
        first = [a.actor for a in await one.activities.list().collect()]
        other = [a.actor for a in await two.activities.list().collect()]
        view = one.with_auth(zdactivity.OAuthToken("another-agent"))
        viewed = [a.actor for a in await view.activities.list().collect()]
    assert first[0] is first[1]  # one client: decoded once across its pages
    assert viewed[0] is first[0]  # its with_auth views are the same account
    assert other[0] == first[0] and other[0] is not first[0]  # another client: its own


async def test_a_shared_user_record_cannot_be_changed_from_one_page_for_the_others() -> None:
    async with (
        HostileServer(_paged_actors([_actor(7), _actor(7)])) as server,
        server.client() as zd,
    ):
        pages = [p async for p in zd.activities.list().pages()]
    mine = pages[0].activities[0].actor
    assert mine is not None
    with pytest.raises(TypeError, match="read-only"):
        mine.user_fields["team"] = "red"
    with pytest.raises(TypeError):
        mine.user_fields.update(team="red")
    with pytest.raises(AttributeError):
        mine.user_fields["skills"].append("hacking")
    with pytest.raises(TypeError):
        mine.user_fields["nested"]["a"] = 2
    copied = dict(mine.user_fields)
    copied["team"] = "red"  # a copy is yours to change
    theirs = pages[1].activities[0].actor
    assert theirs is not None and theirs.user_fields["team"] == "blue"
    assert theirs.user_fields == {
        "team": "blue",
        "skills": ("billing", "refunds"),
        "nested": {"a": (1,)},
    }
    assert msgspec.json.decode(msgspec.json.encode(theirs))["user_fields"]["skills"] == [
        "billing",
        "refunds",
    ]


async def test_the_user_cache_is_bounded_by_bytes_and_released_when_the_client_closes() -> None:
    big = [_actor(i, notes="x" * 20_000) for i in range(1, 201)]  # 4 MB of distinct actors
    cap = 1024 * 1024
    async with HostileServer(_paged_actors(big)) as server:
        zd = server.client(user_cache_bytes=cap)
        gc.collect()
        tracemalloc.start()
        try:
            async for page_ in zd.activities.list().pages():
                assert page_.activities[0].actor is not None
            del page_
            users = zd._shared.users
            assert 0 < users.nbytes <= cap and len(users) < len(big)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0]
            await zd.close()
            gc.collect()
            released = held - tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    assert len(users) == 0 and users.nbytes == 0
    assert cap // 2 < released <= cap * 1.05  # what the cache held: its estimate is close


def test_the_user_cache_evicts_the_oldest_records_to_stay_under_its_byte_cap() -> None:
    cache = models.UserCache(size=100, max_bytes=10_000)
    for i in range(50):
        cache.add(b"%d" % i + b" " * 244, models.User(id=i))  # 246 bytes, estimated 1004
        assert cache.nbytes <= 10_000 and len(cache) <= 9
    assert [u.id for u in cache._users.values()] == list(range(41, 50))
    cache.add(b" " * 400, models.User(id=99))  # estimated 1312, over an eighth of the cap
    assert len(cache) == 9 and cache.get(b" " * 400) is None
    cache.close()
    cache.add(b"late", models.User(id=1))
    assert len(cache) == 0 and cache.nbytes == 0


async def test_a_custom_auth_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    class Smuggler:
        def authorization(self) -> str:
            return "Bearer s3cret\r\nX-Evil: 1"

    async with HostileServer(respond(page([]))) as server, server.client(auth=Smuggler()) as zd:
        with pytest.raises(ValueError, match="control character") as info:
            await zd.activities.count()
    assert "s3cret" not in str(info.value) and info.value.__context__ is None
    assert server.requests == []


# (end of security)


# === Network failures in words (issue 13, item 7) =============================================

_JARGON = ("Cannot connect to host", "ssl:default", "ClientConnector", "aiohttp", "-> None")


def _no_jargon(text: str) -> None:
    for word in _JARGON:
        assert word not in text, text


async def test_a_server_that_never_answers_gets_retry_lines_then_one_error_line() -> None:
    # Was: silent for 122.6 s, then aiohttp's words. Now each retry says so on stderr, and the
    # whole run is bounded by --timeout and --max-tries (3 attempts of 0.3 s, two short waits).
    async with HostileServer(never_answer) as server:
        started = time.monotonic()
        code, stdout, stderr = await run_cli(
            "count",
            "--timeout",
            "0.3",
            "--max-tries",
            "3",
            env={**_NOWHERE, "ZENDESK_URL": server.url},
        )
        elapsed = time.monotonic() - started
        attempts = len(server.requests)
    host = urlsplit(server.url).netloc
    assert code == 5, stderr
    assert stdout == ""
    _no_jargon(stderr)
    lines = stderr.splitlines()
    no_answer = re.escape(
        f"no answer from {host} after 0.3 s (timed out on GET /api/v2/activities/count)"
    )
    assert len(lines) == 3, stderr
    for tried, line in enumerate(lines[:2], start=2):
        assert re.fullmatch(
            rf"zdactivity: {no_answer}; retrying \({tried} of 3\) in \d+\.\d s", line
        )
    assert re.fullmatch(rf"zdactivity: network error: {no_answer}", lines[2])
    assert attempts == 3
    assert (
        elapsed < 30
    )  # the bound is about 3 x 0.3 s plus two backoff waits (< 1.5 s); was 122.6 s


async def test_the_verbose_log_of_an_attempt_without_a_response_says_what_happened() -> None:
    async with HostileServer(never_answer) as server:
        code, _stdout, stderr = await run_cli(
            "count",
            "-v",
            "--timeout",
            "0.2",
            "--max-tries",
            "2",
            env={**_NOWHERE, "ZENDESK_URL": server.url},
        )
    assert code == 5, stderr
    _no_jargon(stderr)
    logged = [line for line in stderr.splitlines() if "GET /api/v2/activities/count ->" in line]
    assert len(logged) == 2, stderr
    assert "-> no response (attempt 1, " in logged[0] and "retry in" in logged[0]
    assert "-> no response (attempt 2, " in logged[1] and logged[1].endswith("giving up")
    assert all("RequestTimeoutError: no answer from" in line for line in logged)


async def test_a_refused_connection_is_said_in_words_with_its_retries() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, stdout, stderr = await run_cli(
        "list", "--max-tries", "2", env={**_NOWHERE, "ZENDESK_URL": f"http://127.0.0.1:{port}"}
    )
    assert code == 5 and stdout == ""
    _no_jargon(stderr)
    lines = stderr.splitlines()
    refused = re.escape(f"connection refused by 127.0.0.1:{port} (GET /api/v2/activities)")
    assert len(lines) == 2, stderr
    assert re.fullmatch(rf"zdactivity: {refused}; retrying \(2 of 2\) in \d+\.\d s", lines[0])
    assert lines[1] == f"zdactivity: network error: {refused.replace(chr(92), '')}"


async def test_a_host_that_does_not_resolve_is_said_in_words() -> None:
    # .invalid never resolves (RFC 6761); without a reachable resolver the lookup runs out of
    # its connect time instead: either way, words, and no aiohttp text.
    code, stdout, stderr = await run_cli(
        "count",
        "--max-tries",
        "1",
        "--timeout",
        "5",
        env={**_NOWHERE, "ZENDESK_URL": "https://acme.invalid"},
    )
    assert code == 5 and stdout == ""
    _no_jargon(stderr)
    assert re.fullmatch(
        r"zdactivity: network error: (cannot resolve acme\.invalid: .+|could not connect to "
        r"acme\.invalid:443 within 5 s \(timed out on) .*GET /api/v2/activities/count\)\n",
        stderr,
    ), stderr


async def test_transport_errors_name_the_host_and_what_happened_in_their_type() -> None:
    async with HostileServer(never_answer) as server:
        host = urlsplit(server.url).netloc
        timeout = zdactivity.Timeout(connect=1, read=0.2, total=5)
        async with server.client(retry=RetryPolicy.no_retry(), timeout=timeout) as zd:
            with pytest.raises(zdactivity.RequestTimeoutError) as timed_out:
                await zd.activities.count()
    assert str(timed_out.value) == (
        f"no answer from {host} after 0.2 s (timed out on GET /api/v2/activities/count)"
    )
    async with HostileServer(reset_connection) as server:
        host = urlsplit(server.url).netloc
        async with server.client(retry=RetryPolicy.no_retry()) as zd:
            with pytest.raises(zdactivity.ConnectionFailedError) as reset:
                await zd.activities.count()
    assert re.fullmatch(
        rf"(the connection to {host} was reset|{host} closed the connection without "
        r"answering) \(GET /api/v2/activities/count\)",
        str(reset.value),
    ), str(reset.value)
    for error in (timed_out.value, reset.value):
        assert not any(
            isinstance(e, Exception) and type(e).__module__.startswith("aiohttp")
            for e in exception_web(error)
        )


def test_the_default_timeout_connects_sooner_than_it_waits_for_an_answer() -> None:
    default = zdactivity.Timeout()
    assert default.connect is not None and default.read is not None and default.total is not None
    assert default.connect < default.read < default.total

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
import re
import subprocess
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
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
from hypothesis import given
from hypothesis import strategies as st

import zdactivity
from zdactivity import ActivityPage, PaginationError, RetryPolicy
from zdactivity.checkpoint import MemoryCheckpointStore
from zdactivity.pagination import DEFAULT_MAX_PAGES, REMEMBERED_CURSORS
from zdactivity.protocol import (
    RateLimitHeaders,
    ResumePoint,
    format_since,
    list_request,
    resume_request,
    resume_token,
)
from zdactivity.testing import Agent, Emulator, Fault

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]
AUTH = zdactivity.OAuthToken("s3cret-token")


def token(agent: Agent) -> zdactivity.APIToken:
    return zdactivity.APIToken(agent.email, agent.api_token)


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
        assert saved.high_water <= wall[0] + zdactivity.ActivityWatcher.max_skew
        assert "ahead of the local clock" in caplog.text


async def test_leaving_a_watch_with_break_commits_the_activity_taken_last() -> None:
    async with Emulator(seed=2, agents=1, activities_per_agent=12, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        store = MemoryCheckpointStore()
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
            first: list[int] = []
            async with zd.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
                async for a in s:
                    first.append(a.id)
                    if len(first) == 3:
                        break
            rest: list[int] = []
            async with zd.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
                async for a in s:
                    rest.append(a.id)
                    if len(first) + len(rest) == len(emu.activities_for(agent)):
                        break
    assert not set(first) & set(rest)  # the third did not come again
    assert sorted(first + rest) == sorted(a["id"] for a in emu.activities_for(agent))


async def test_an_exception_out_of_a_watch_leaves_the_activity_in_hand_uncommitted() -> None:
    async with Emulator(seed=3, agents=1, activities_per_agent=5, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        store = MemoryCheckpointStore()
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
            taken: list[int] = []
            with pytest.raises(RuntimeError):
                async with zd.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
                    async for a in s:
                        taken.append(a.id)
                        if len(taken) == 2:
                            raise RuntimeError("the handler failed")
            async with zd.activities.watch(checkpoint=store, key="a", clock=lambda: NOW) as s:
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
            assert len(server.requests) == 1  # delivered from the first page, not the last
            for _ in range(1_200):
                await watcher.__anext__()
        assert len(server.requests) == 13
        assert len(t.slept) == 2  # a pause after each 5 pages
        assert len(store.snapshot()["a"].recent_ids) <= 100 + 11  # one page and the lookback


async def test_commits_of_a_long_catch_up_stay_small() -> None:
    """Each commit writes the ids near the mark, not every id delivered so far."""
    sizes: list[int] = []

    class Recording(MemoryCheckpointStore):
        async def save(self, key: str, checkpoint: zdactivity.Checkpoint) -> None:
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
        async def save(self, key: str, checkpoint: zdactivity.Checkpoint) -> None:
            if key == "bad":
                raise zdactivity.CheckpointError("the disk is full")
            await super().save(key, checkpoint)

    async with Emulator(seed=7, agents=3, activities_per_agent=4, clock=lambda: NOW) as emu:
        root = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0]))
        fleet = zdactivity.Fleet(Failing(), interval=0.05, retry_delay=0.01, max_retry_delay=60)
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


# (end of hangs)


# === Failures that are final, or escape the error tree ========================================


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


# (end of security)

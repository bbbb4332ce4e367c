"""What zdactivity survives: a broken or hostile server, a wrong clock, a careless caller.

Each test is one case, named for what the client does about it, against a real server on
loopback (``hostile.HostileServer``, or the emulator where it can produce the fault). Read the
test names top to bottom as the list of what the long-running paths are proven to survive.
"""

from __future__ import annotations

import base64
import gc
import itertools
import re
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp import web
from hostile import HostileServer, activity, json_response, page, respond, run_cli
from hypothesis import given
from hypothesis import strategies as st

import zdactivity
from zdactivity import ActivityPage, PaginationError, RetryPolicy
from zdactivity.pagination import DEFAULT_MAX_PAGES, REMEMBERED_CURSORS
from zdactivity.protocol import (
    ResumePoint,
    format_since,
    list_request,
    resume_request,
    resume_token,
)
from zdactivity.testing import Emulator, Fault


async def test_the_hostile_server_serves_a_page() -> None:
    async with HostileServer(respond(page([activity(1)]))) as server, server.client() as zd:
        listed = await zd.activities.list().collect()
    assert [a.id for a in listed] == [1]
    assert server.paths == ["/api/v2/activities?page%5Bsize%5D=100"]


# === Data loss: watch, tail and resumption ====================================================


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


# (end of security)

"""The fault matrix: random fault sequences x page sizes x stream lengths, against the emulator.

Every activity is delivered exactly once and in order, or a typed ZendeskError is raised after a
duplicate-free prefix; never a hang, never a raw aiohttp/msgspec exception.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web
from conftest import NOW
from fakes import FakeTime
from hostile import HostileServer, activity, json_response, page
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zdactivity
from zdactivity.testing import Emulator, Fault

MAX_TRIES = 4

RETRYABLE = {
    "500": lambda: Fault.status(500),
    "502": lambda: Fault.status(502),
    "503": lambda: Fault.status(503, retry_after=0),
    "504": lambda: Fault.status(504),
    "429": lambda: Fault.status(429, retry_after="0"),
    "reset": Fault.reset,
    "reset_mid_body": Fault.reset_mid_body,
    "stall": Fault.stall,
    "stall_mid_body": Fault.stall_mid_body,
    "truncated": lambda: Fault.malformed("truncated"),
    "empty": lambda: Fault.malformed("empty"),
    "not_json": lambda: Fault.malformed("not_json"),
    "html": lambda: Fault.malformed("html"),
    "bad_gzip": lambda: Fault.malformed("bad_gzip"),
}
FATAL = {
    "400": lambda: Fault.status(400),
    "404": lambda: Fault.status(404),
    "wrong_types": lambda: Fault.malformed("wrong_types"),
}
HARMLESS = {"ok": Fault.ok, "latency": lambda: Fault.latency(0.005)}

fault_names = st.one_of(
    st.sampled_from(sorted(HARMLESS)),
    st.sampled_from(sorted(n for n in RETRYABLE if not n.startswith("stall"))),
    st.sampled_from(["stall", "stall_mid_body"]),  # costly (a timeout each): drawn less often
    st.sampled_from(sorted(FATAL)),
)


def longest_failure_run(names: list[str]) -> int:
    longest = run = 0
    for name in names:
        run = run + 1 if name in RETRYABLE else 0
        longest = max(longest, run)
    return longest


async def scenario(length: int, page_size: int, names: list[str]) -> None:
    async with Emulator(seed=length, agents=1, activities_per_agent=0, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        for i in range(length):
            emu.add_activity(agent, created_at=NOW - timedelta(minutes=i + 1))
        expected = [int(a["id"]) for a in emu.activities_for(agent)]
        emu.inject(*[{**RETRYABLE, **FATAL, **HARMLESS}[n]() for n in names])
        got: list[int] = []
        error: Exception | None = None
        async with zdactivity.Client(
            base_url=emu.url,
            auth=zdactivity.APIToken(agent.email, agent.api_token),
            retry=zdactivity.RetryPolicy(max_tries=MAX_TRIES).testing(),
            timeout=zdactivity.Timeout(connect=1, read=0.15, total=0.6),
        ) as zd:
            try:
                async with asyncio.timeout(60):  # "never a hang"
                    async for activity in zd.activities.list(page_size=page_size):
                        got.append(activity.id)
            except zdactivity.ZendeskError as exc:
                error = exc
    assert len(got) == len(set(got)), "duplicate delivered"
    assert got == expected[: len(got)], "out of order, or something lost"
    if error is None:
        assert got == expected
    clean = not any(n in FATAL for n in names) and longest_failure_run(names) < MAX_TRIES
    if clean:
        assert error is None, f"{names} should have been survived, got {error!r}"


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    length=st.integers(0, 250),
    page_size=st.integers(1, 100),
    names=st.lists(fault_names, max_size=10),
)
def test_fault_matrix(length: int, page_size: int, names: list[str]) -> None:
    asyncio.run(scenario(length, page_size, names))


# --- server-controlled header values ------------------------------------------------------------

HOSTILE_NUMBERS = [
    *("0", "-1", "0.5", "3", "59", "61", "700", "86400", "1000000000", "1e9", "1e400"),
    *("nan", "inf", "-inf", "abc", "", " 5 ", "5, 7", "9" * 400),
]
RATE_LIMIT_HEADERS = [
    *("X-Rate-Limit", "rate-limit", "ratelimit-limit"),
    *("X-Rate-Limit-Remaining", "rate-limit-remaining", "ratelimit-remaining"),
    *("rate-limit-reset", "ratelimit-reset"),
]
RETRY_AFTERS = [
    *HOSTILE_NUMBERS,
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "Mon, 99 Foo 2026 99:99:99 GMT",
]
MAX_RETRY_AFTER = 30.0
WINDOW = 60.0

hostile_answers = st.lists(
    st.tuples(
        st.sampled_from([200, 200, 429, 503]),
        st.dictionaries(st.sampled_from(RATE_LIMIT_HEADERS), st.sampled_from(HOSTILE_NUMBERS)),
        st.none() | st.sampled_from(RETRY_AFTERS),
    ),
    max_size=8,
)


async def header_scenario(answers: list[tuple[int, dict[str, str], str | None]]) -> None:
    pages = {
        None: page([activity(3)], has_more=True, after_cursor="c2"),
        "c2": page([activity(2)], has_more=True, after_cursor="c3"),
        "c3": page([activity(1)]),
    }
    todo = list(answers)

    async def handler(request: web.Request) -> web.StreamResponse:
        status, headers, retry_after = todo.pop(0) if todo else (200, {}, None)
        if retry_after is not None:
            headers = {**headers, "Retry-After": retry_after}
        if status != 200:
            return json_response({"error": "hostile"}, status=status, headers=headers)
        return json_response(pages[request.query.get("page[after]")], headers=headers)

    t = FakeTime()
    got: list[int] = []
    async with (
        HostileServer(handler) as server,
        server.client(
            retry=zdactivity.RetryPolicy(
                max_tries=4, max_retry_after=MAX_RETRY_AFTER, clock=t.clock, sleep=t.sleep
            ),
            rate_limiter=zdactivity.RateLimiter(window=WINDOW, clock=t.clock, sleep=t.sleep),
        ) as zd,
    ):
        try:
            async with asyncio.timeout(10):  # real time: "never a hang"
                async for one in zd.activities.list():
                    got.append(one.id)
        except zdactivity.ZendeskError as exc:
            # Typed: allowed, after a prefix. Hostile headers on 200s alone are survived.
            assert any(status != 200 for status, _, _ in answers), repr(exc)
        else:
            assert got == [3, 2, 1]
    assert got == [3, 2, 1][: len(got)]
    assert all(0 <= wait <= max(MAX_RETRY_AFTER, WINDOW) for wait in t.slept), t.slept


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=hostile_answers)
def test_hostile_rate_limit_and_retry_after_headers_never_stall(
    answers: list[tuple[int, dict[str, str], str | None]],
) -> None:
    """Drawn rate-limit and Retry-After values (0, negative, NaN, 1e9, far-future dates, both
    spellings): the listing arrives or a typed error is raised, and no sleep exceeds the
    policy's max_retry_after or the limiter's window."""
    asyncio.run(header_scenario(answers))

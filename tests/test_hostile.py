"""What zdactivity survives: a broken or hostile server, a wrong clock, a careless caller.

Each test is one case, named for what the client does about it, against a real server on
loopback (``hostile.HostileServer``, or the emulator where it can produce the fault). Read the
test names top to bottom as the list of what the long-running paths are proven to survive.
"""

from __future__ import annotations

import asyncio
import time
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
    never_answer,
    page,
    reset_connection,
    respond,
)

import zdactivity
from zdactivity.protocol import RateLimitHeaders

AUTH = zdactivity.OAuthToken("s3cret-token")


async def test_the_hostile_server_serves_a_page() -> None:
    async with HostileServer(respond(page([activity(1)]))) as server, server.client() as zd:
        listed = await zd.activities.list().collect()
    assert [a.id for a in listed] == [1]
    assert server.paths == ["/api/v2/activities?page%5Bsize%5D=100"]


# === Data loss: watch, tail and resumption ====================================================


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

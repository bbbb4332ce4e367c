"""The client's decisions (return, refresh, retry, raise), against scripted responses.

No server and no sockets: a :class:`MemoryTransport` answers, a :class:`FakeTime` sleeps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fakes import FakeTime

import zdactivity
from zdactivity.auth import RefreshableAuth
from zdactivity.protocol import RateLimitHeaders
from zdactivity.ratelimit import Permit, RateLimitBackend
from zdactivity.transport import MemoryTransport, Response, SentRequest

URL = "https://acme.zendesk.com"
ok = MemoryTransport.respond
COUNT = {"count": {"value": 42, "refreshed_at": "2026-11-20T12:00:00Z"}}


def page(ids: list[int], after: str | None = None) -> dict[str, Any]:
    return {
        "activities": [
            {
                "id": i,
                "verb": "tickets.comment",
                "title": f"t{i}",
                "user_id": 1,
                "actor_id": 1,
                "created_at": "2026-11-20T11:00:00Z",
                "updated_at": "2026-11-20T11:00:00Z",
                "url": f"{URL}/api/v2/activities/{i}.json",
            }
            for i in ids
        ],
        "actors": [],
        "users": [],
        "meta": {"has_more": after is not None, "after_cursor": after, "before_cursor": None},
    }


def make(
    *script: Any,
    auth: zdactivity.Auth | None = None,
    rate_limiter: RateLimitBackend | None = None,
    **retry: Any,
) -> tuple[zdactivity.Client, MemoryTransport, FakeTime]:
    t = FakeTime()
    transport = MemoryTransport(script)
    client = zdactivity.Client(
        base_url=URL,
        auth=auth or zdactivity.OAuthToken("a1"),
        transport=transport,
        retry=zdactivity.RetryPolicy(clock=t.clock, sleep=t.sleep, jitter=lambda d: d, **retry),
        rate_limiter=rate_limiter or zdactivity.RateLimiter(clock=t.clock, sleep=t.sleep),
    )
    return client, transport, t


async def test_returns_the_decoded_result_and_sends_the_built_request() -> None:
    client, transport, t = make(ok(200, COUNT, {"X-Zendesk-Request-Id": "r1"}))
    count = await client.activities.count()
    assert count.value == 42
    [sent] = transport.sent
    assert (sent.method, sent.url, sent.form) == ("GET", f"{URL}/api/v2/activities/count", None)
    assert sent.headers["Authorization"] == "Bearer a1"
    assert sent.headers["Accept"] == "application/json"
    assert sent.timeout == client.timeout
    assert t.slept == []
    assert client.stats.requests == 1 and client.stats.errors == 0


async def test_a_listing_follows_cursors_on_the_configured_host() -> None:
    client, transport, _ = make(ok(200, page([3, 2], after="c2")), ok(200, page([1])))
    got = [a.id async for a in client.activities.list(since="2026-11-01T00:00:00Z", page_size=2)]
    assert got == [3, 2, 1]
    assert [s.params for s in transport.sent] == [
        (("since", "2026-11-01T00:00:00Z"), ("page[size]", "2")),
        (("since", "2026-11-01T00:00:00Z"), ("page[size]", "2"), ("page[after]", "c2")),
    ]


async def test_retry_after_is_waited_then_the_request_retried() -> None:
    client, transport, t = make(ok(503, {"error": "busy"}, {"Retry-After": "3"}), ok(200, COUNT))
    assert (await client.activities.count()).value == 42
    assert t.slept == [3.0]
    assert len(transport.sent) == 2
    assert client.stats.retries == 1 and client.stats.errors == 1


async def test_transport_failures_back_off_and_retry() -> None:
    client, _, t = make(
        zdactivity.ConnectionFailedError("reset"),
        zdactivity.RequestTimeoutError("slow"),
        ok(200, COUNT),
        base_delay=0.5,
    )
    assert (await client.activities.count()).value == 42
    assert t.slept == [0.5, 1.0]  # exponential backoff from base_delay (jitter off)


async def test_retries_end_with_the_last_error() -> None:
    client, transport, _ = make(*[ok(500, {"error": "boom"})] * 3, max_tries=3)
    with pytest.raises(zdactivity.ServerError) as info:
        await client.activities.count()
    assert info.value.status == 500 and len(transport.sent) == 3


async def test_client_errors_are_raised_at_once() -> None:
    client, transport, t = make(ok(404, {"error": "RecordNotFound"}, {"X-Request-Id": "r9"}))
    with pytest.raises(zdactivity.NotFoundError) as info:
        await client.activities.get(7)
    assert info.value.request_id == "r9" and info.value.path == "/api/v2/activities/7"
    assert len(transport.sent) == 1 and t.slept == []


async def test_a_429_pauses_the_account_and_a_long_retry_after_fails_at_once() -> None:
    client, transport, t = make(
        ok(429, {"error": "slow"}, {"Retry-After": "900"}), max_retry_after=60
    )
    with pytest.raises(zdactivity.RateLimitError) as info:
        await client.activities.count()
    assert not isinstance(info.value, zdactivity.LocalRateLimitError)
    assert len(transport.sent) == 1 and t.slept == []
    state = client.rate_limiter.state()  # type: ignore[attr-defined]
    assert state.paused_for == pytest.approx(60)  # capped at max_retry_after
    assert client.stats.rate_limited == 1


async def test_a_401_refreshes_once_then_retries_with_the_new_token() -> None:
    saved: list[tuple[str, str]] = []

    async def on_refresh(access: str, refresh: str) -> None:
        saved.append((access, refresh))

    auth = zdactivity.OAuthToken(
        "a1", refresh_token="r1", client_id="app", client_secret="s", on_refresh=on_refresh
    )
    client, transport, _ = make(
        ok(401, {"error": "Couldn't authenticate you"}),
        ok(200, {"access_token": "a2", "refresh_token": "r2"}),
        ok(200, COUNT),
        auth=auth,
    )
    assert (await client.activities.count()).value == 42
    first, refresh, retried = transport.sent
    assert first.headers["Authorization"] == "Bearer a1"
    assert (refresh.method, refresh.url) == ("POST", f"{URL}/oauth/tokens")
    assert "Authorization" not in refresh.headers
    assert dict(refresh.form or ()) == {
        "grant_type": "refresh_token",
        "refresh_token": "r1",
        "client_id": "app",
        "client_secret": "s",
    }
    assert retried.headers["Authorization"] == "Bearer a2"
    assert saved == [("a2", "r2")] and client.stats.refreshes == 1


async def test_a_failed_refresh_is_an_authentication_error_and_not_repeated() -> None:
    auth = zdactivity.OAuthToken("a1", refresh_token="r1")
    client, transport, _ = make(
        ok(401, {"error": "Couldn't authenticate you"}),
        ok(400, {"error": "invalid_grant", "error_description": "expired"}),
        auth=auth,
    )
    with pytest.raises(zdactivity.AuthenticationError, match="OAuth refresh failed"):
        await client.activities.count()
    assert [s.method for s in transport.sent] == ["GET", "POST"]


async def test_a_refresh_answer_without_tokens_is_final() -> None:
    auth = zdactivity.OAuthToken("a1", refresh_token="r1")
    client, transport, _ = make(
        ok(401, {"error": "Couldn't authenticate you"}), ok(200, {"nope": 1}), auth=auth
    )
    with pytest.raises(zdactivity.AuthenticationError, match="no token pair"):
        await client.activities.count()
    assert len(transport.sent) == 2


async def test_credentials_that_cannot_refresh_raise_the_401() -> None:
    client, transport, _ = make(
        ok(401, {"error": "Couldn't authenticate you"}), auth=zdactivity.APIToken("a@b.c", "t")
    )
    with pytest.raises(zdactivity.AuthenticationError):
        await client.activities.count()
    assert len(transport.sent) == 1


class RecordingLimiter:
    """A RateLimitBackend with only the four coroutines: what another process's would have."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.out: set[int] = set()
        self.seq = 0

    async def acquire(
        self,
        *,
        max_wait: float | None = None,
        budget: float | None = None,
        answer_timeout: float | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> Permit:
        self.seq += 1
        self.out.add(self.seq)
        self.calls.append("acquire")
        return Permit(self.seq, 0)

    async def aobserve(self, permit: Permit, headers: RateLimitHeaders) -> None:
        self.out.remove(permit.seq)
        self.calls.append(f"observe {headers.remaining}")

    async def arelease(self, permit: Permit) -> None:
        self.out.remove(permit.seq)
        self.calls.append("release")

    async def apause(self, seconds: float) -> None:
        self.calls.append(f"pause {seconds:g}")


async def test_any_rate_limit_backend_plugs_in_and_gets_every_permit_back() -> None:
    limiter = RecordingLimiter()
    assert isinstance(limiter, RateLimitBackend)
    client, _, _ = make(
        zdactivity.ConnectionFailedError("reset"),
        ok(429, {"error": "slow"}, {"Retry-After": "2", "X-Rate-Limit-Remaining": "0"}),
        ok(200, COUNT, {"X-Rate-Limit-Remaining": "9"}),
        rate_limiter=limiter,
    )
    assert client.rate_limiter is limiter
    assert (await client.activities.count()).value == 42
    assert limiter.calls == [
        "acquire",
        "release",
        "acquire",
        "observe 0",
        "pause 2",
        "acquire",
        "observe 9",
    ]
    assert not limiter.out


async def test_a_local_refusal_is_its_own_type_and_nothing_is_sent() -> None:
    limiter = zdactivity.RateLimiter()
    limiter.pause(1000)
    client, transport, _ = make(rate_limiter=limiter, max_retry_after=10)
    with pytest.raises(zdactivity.LocalRateLimitError) as info:
        await client.activities.count()
    assert info.value.request_id is None and transport.sent == []


async def test_a_scripted_answer_can_inspect_the_request() -> None:
    def answer(sent: SentRequest) -> Response:
        assert sent.headers["User-Agent"].startswith("zdactivity/")
        return ok(200, COUNT)

    client, _, _ = make(answer)
    assert (await client.activities.count()).value == 42


def test_transport_and_session_are_exclusive() -> None:
    import aiohttp

    with pytest.raises(TypeError, match="Transport"):
        zdactivity.Client(base_url=URL, auth=zdactivity.OAuthToken("a"), transport=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        zdactivity.Client(
            base_url=URL,
            auth=zdactivity.OAuthToken("a"),
            transport=MemoryTransport(),
            session=aiohttp.ClientSession.__new__(aiohttp.ClientSession),
        )


class RotatingAuth:
    """Credentials of the user's own making that renew themselves: a RefreshableAuth."""

    def __init__(self) -> None:
        self.token = "old"
        self.generation = 0
        self.requests: list[zdactivity.protocol.Request] = []

    @property
    def can_refresh(self) -> bool:
        return True

    def authorization(self) -> str:
        return f"Bearer {self.token}"

    async def refresh(
        self,
        failed_generation: int,
        send: Callable[[zdactivity.protocol.Request], Awaitable[tuple[str, str]]],
    ) -> None:
        request = zdactivity.protocol.refresh_request("mine")
        self.requests.append(request)
        self.token, _ = await send(request)
        self.generation += 1


async def test_any_refreshable_auth_is_refreshed_on_a_401() -> None:
    auth = RotatingAuth()
    assert isinstance(auth, RefreshableAuth)
    client, transport, _ = make(
        ok(401, {"error": "Couldn't authenticate you"}),
        ok(200, {"access_token": "new", "refresh_token": "r"}),
        ok(200, COUNT),
        auth=auth,
    )
    assert (await client.activities.count()).value == 42
    assert [s.headers.get("Authorization") for s in transport.sent] == [
        "Bearer old",
        None,
        "Bearer new",
    ]
    assert auth.generation == 1

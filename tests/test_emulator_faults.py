"""Wire-level tests of the emulator's fault injection and OAuth token lifecycle, with a plain
aiohttp.ClientSession (not the zdactivity client)."""

from __future__ import annotations

import asyncio
import base64
import gc
import gzip
import json
import logging
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import msgspec
import pytest
from conftest import (
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    Clock,
    basic,
    running_emulator,
    wait_until,
)

from zdactivity.testing import Agent, Emulator, Fault

LIST = "/api/v2/activities.json"
COUNT = "/api/v2/activities/count.json"
TOKENS = "/oauth/tokens"
CLIENT = {"client_id": EMULATOR_CLIENT_ID, "client_secret": EMULATOR_CLIENT_SECRET}
INVALID_TOKEN = {
    "error": "invalid_token",
    "error_description": "The access token provided is expired, revoked, malformed or invalid "
    "for other reasons.",
}
INVALID_GRANT = {
    "error": "invalid_grant",
    "error_description": "The provided authorization grant is invalid, expired, or revoked.",
}
JSON_TYPE = "application/json; charset=utf-8"
SHORT_READ = aiohttp.ClientTimeout(total=5, sock_read=0.2)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def running(**kwargs: Any) -> AbstractAsyncContextManager[tuple[Emulator, aiohttp.ClientSession]]:
    """A small account: 2 agents with 10 activities each, unless told otherwise."""
    return running_emulator(**{"agents": 2, "activities_per_agent": 10, **kwargs})


async def call(
    session: aiohttp.ClientSession,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    method: str = "GET",
    **kwargs: Any,
) -> tuple[int, bytes, aiohttp.ClientResponse]:
    async with session.request(method, path, headers=headers, **kwargs) as resp:
        return resp.status, await resp.read(), resp


async def status_of(session: aiohttp.ClientSession, path: str, agent: Agent) -> int:
    status, _, _ = await call(session, path, bearer(agent.oauth_token))
    return status


async def refresh(
    session: aiohttp.ClientSession, refresh_token: str, *, as_json: bool = False, **extra: str
) -> tuple[int, Any]:
    params = {"grant_type": "refresh_token", "refresh_token": refresh_token, **CLIENT, **extra}
    body = {"json": params} if as_json else {"data": params}
    async with session.post(TOKENS, **body) as resp:  # type: ignore[arg-type]
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


# -- status faults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "content_type", "expected"),
    [
        (400, JSON_TYPE, {"error": "RecordInvalid"}),
        (401, JSON_TYPE, {"error": "Couldn't authenticate you"}),
        (403, JSON_TYPE, {"error": {"title": "Forbidden"}}),
        (404, JSON_TYPE, {"error": "RecordNotFound", "description": "Not found"}),
        (422, JSON_TYPE, {"error": "RecordInvalid"}),
        (429, "text/html", b"<html>"),
        (500, JSON_TYPE, {"status": 500, "error": "Internal Server Error"}),
        (502, "text/html", b"502 Bad Gateway"),
        (503, JSON_TYPE, {"error": "ServiceUnavailable"}),
        (504, "text/html", b"504 Gateway Time-out"),
    ],
)
async def test_status_fault_default_bodies(
    code: int, content_type: str, expected: dict[str, Any] | bytes
) -> None:
    async with running() as (emu, session):
        emu.inject(Fault.status(code))
        status, body, resp = await call(session, LIST, bearer(emu.agents[0].oauth_token))
        assert status == code
        assert resp.headers["Content-Type"] == content_type
        assert "Retry-After" not in resp.headers
        # still a Zendesk answer: common headers
        assert resp.headers["X-Rate-Limit"] == "700"
        assert resp.headers.getall("x-request-id") == [emu.requests[-1].request_id] * 2
        if isinstance(expected, bytes):
            assert expected in body
        else:
            decoded = json.loads(body)
            for key, value in expected.items():
                if isinstance(value, dict):
                    assert value.items() <= decoded[key].items()
                else:
                    assert decoded[key] == value
            if code == 503:
                assert decoded["description"]
        # the next request is served normally
        assert await status_of(session, LIST, emu.agents[0]) == 200


async def test_status_fault_retry_after_and_custom_body() -> None:
    async with running() as (emu, session):
        date = "Wed, 01 May 2024 12:00:05 GMT"
        emu.inject(
            Fault.status(429, retry_after=2),
            Fault.status(503, retry_after=0.5),
            Fault.status(503, retry_after=date),
            Fault.status(500, body=b"oops", content_type="text/plain"),
            Fault.status(409, body=b'{"error":"Conflict"}'),
            Fault.status(418),
        )
        headers = bearer(emu.agents[0].oauth_token)
        seen = []
        for _ in range(6):
            status, body, resp = await call(session, COUNT, headers)
            seen.append((status, resp.headers.get("Retry-After"), resp.content_type, body))
        assert seen[0][:3] == (429, "2", "text/html")
        assert seen[1][:3] == (503, "0.5", "application/json")
        assert seen[2][:2] == (503, date)
        assert seen[3] == (500, None, "text/plain", b"oops")
        assert seen[4] == (409, None, "application/json", b'{"error":"Conflict"}')
        assert seen[5][0] == 418 and json.loads(seen[5][3]) == {"error": "I'm a Teapot"}


async def test_status_fault_body_is_gzipped_when_asked() -> None:
    async with running() as (emu, _):
        async with aiohttp.ClientSession(base_url=emu.url, auto_decompress=False) as raw:
            emu.inject(Fault.status(500))
            headers = {**bearer(emu.agents[0].oauth_token), "Accept-Encoding": "gzip"}
            status, body, resp = await call(raw, LIST, headers)
        assert status == 500 and resp.headers["Content-Encoding"] == "gzip"
        assert json.loads(gzip.decompress(body)) == {
            "status": 500,
            "error": "Internal Server Error",
        }


def test_fault_constructors_validate() -> None:
    assert Fault.status(503, retry_after=2).retry_after == "2"
    assert Fault.status(503, retry_after=1.5).retry_after == "1.5"
    assert Fault.ok() == Fault.ok()
    assert repr(Fault.status(503, retry_after="2")) == "Fault.status(503, retry_after='2')"
    assert repr(Fault.malformed("empty")) == "Fault.malformed('empty')"
    for code in (99, 199, 600):
        with pytest.raises(ValueError):
            Fault.status(code)
    with pytest.raises(ValueError):
        Fault.latency(-1)
    with pytest.raises(ValueError):
        Fault.malformed("weird")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Fault.status(500, retry_after=True)
    with pytest.raises(TypeError):
        Fault.status(500, body="text")  # type: ignore[arg-type]


async def test_inject_validates() -> None:
    emu = Emulator(agents=1, activities_per_agent=1, clock=Clock())
    with pytest.raises(TypeError):
        emu.inject("500")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        emu.inject(Fault.ok(), path="api/v2/activities")
    with pytest.raises(ValueError):
        emu.inject(Fault.ok(), agent=12345)
    with pytest.raises(ValueError):
        emu.latency = -0.1
    assert emu.pending_faults == 0
    emu.inject()  # nothing to queue
    assert emu.pending_faults == 0


# -- connection faults -------------------------------------------------------------------------


async def test_reset_closes_the_connection_without_an_answer() -> None:
    async with running() as (emu, session):
        headers = bearer(emu.agents[0].oauth_token)
        # aiohttp silently retries an idempotent request once when the connection drops
        # before the response starts: one reset is invisible to a GET ...
        emu.inject(Fault.reset())
        assert (await call(session, LIST, headers))[0] == 200
        assert [r.status for r in emu.requests] == [0, 200]
        # ... two are not
        emu.inject(Fault.reset(), Fault.reset())
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            await call(session, LIST, headers)
        # a POST is not retried
        emu.inject(Fault.reset())
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            await refresh(session, emu.agents[0].refresh_token)
        assert emu.refresh_count == 0
        assert [r.status for r in emu.requests] == [0, 200, 0, 0, 0]
        assert [r.fault for r in emu.requests] == [Fault.reset(), None, *[Fault.reset()] * 3]
        assert emu.pending_faults == 0 and emu.in_flight == 0
        assert await status_of(session, LIST, emu.agents[0]) == 200


async def test_reset_mid_body_is_a_payload_error() -> None:
    async with running() as (emu, session):
        emu.inject(Fault.reset_mid_body())
        async with session.get(LIST, headers=bearer(emu.agents[0].oauth_token)) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == JSON_TYPE
            assert int(resp.headers["Content-Length"]) > 100
            assert "x-request-id" in resp.headers
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        assert [r.status for r in emu.requests] == [200]
        assert await status_of(session, LIST, emu.agents[0]) == 200


async def test_stall_until_the_client_gives_up() -> None:
    async with running() as (emu, session):
        emu.inject(Fault.stall())
        start = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await call(session, LIST, bearer(emu.agents[0].oauth_token), timeout=SHORT_READ)
        assert 0.2 <= time.monotonic() - start < 1.0
        # the emulator notices the client left: the request ends, recorded as "nothing sent"
        await wait_until(lambda: emu.in_flight == 0)
        assert emu.in_flight == 0 and emu.max_in_flight == 1
        assert [(r.status, r.fault) for r in emu.requests] == [(0, Fault.stall())]
        assert await status_of(session, LIST, emu.agents[0]) == 200


async def test_stall_mid_body_is_a_read_timeout() -> None:
    async with running() as (emu, session):
        emu.inject(Fault.stall_mid_body())
        async with session.get(
            COUNT, headers=bearer(emu.agents[0].oauth_token), timeout=SHORT_READ
        ) as resp:
            assert resp.status == 200
            assert int(resp.headers["Content-Length"]) > 0
            with pytest.raises(asyncio.TimeoutError):
                await resp.read()
        await wait_until(lambda: emu.in_flight == 0)
        assert emu.in_flight == 0
        assert [r.status for r in emu.requests] == [200]


async def test_stalled_requests_count_in_flight() -> None:
    async with running() as (emu, session):
        emu.inject(Fault.stall(), Fault.stall_mid_body())
        headers = bearer(emu.agents[0].oauth_token)
        tasks = [
            asyncio.create_task(call(session, LIST, headers, timeout=SHORT_READ)) for _ in range(2)
        ]
        await wait_until(lambda: emu.in_flight == 2)
        assert emu.in_flight == 2 and emu.max_in_flight == 2
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.TimeoutError) for r in results)


async def test_stop_is_prompt_with_stalled_requests(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    emu = Emulator(agents=1, activities_per_agent=5, clock=Clock())
    await emu.start()
    async with aiohttp.ClientSession(base_url=emu.url) as session:
        headers = bearer(emu.agents[0].oauth_token)
        emu.inject(Fault.stall(), Fault.stall(), Fault.stall_mid_body(), Fault.latency(30))
        tasks = [asyncio.create_task(call(session, LIST, headers)) for _ in range(3)]
        await wait_until(lambda: emu.in_flight == 3)
        assert emu.in_flight == 3
        start = time.monotonic()
        await emu.stop()
        assert time.monotonic() - start < 1.0
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, aiohttp.ClientError) for r in results), results
    assert emu.in_flight == 0
    assert sorted(r.status for r in emu.requests) == [0, 0, 200]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_stop_right_after_the_client_left_a_stalled_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with Emulator(agents=1, activities_per_agent=5, clock=Clock()) as emu:  # noqa: SIM117
        async with aiohttp.ClientSession(base_url=emu.url) as session:
            emu.inject(Fault.stall())
            task = asyncio.create_task(call(session, LIST, bearer(emu.agents[0].oauth_token)))
            await wait_until(lambda: emu.in_flight == 1)
            assert emu.in_flight == 1
        # closing the session drops the connection; aiohttp retries the GET on a new one
        # while the emulator is already stopping (the usual order of `async with` exits)
    with pytest.raises(aiohttp.ClientConnectionError):
        await task
    gc.collect()  # a leaked socket would warn here
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- malformed bodies --------------------------------------------------------------------------


async def test_malformed_bodies() -> None:
    async with running() as (emu, session):
        headers = bearer(emu.agents[0].oauth_token)

        async def one(kind: Any, path: str = LIST) -> tuple[int, bytes, aiohttp.ClientResponse]:
            emu.inject(Fault.malformed(kind))
            return await call(session, path, headers)

        status, body, resp = await one("truncated")
        assert status == 200 and resp.headers["Content-Type"] == JSON_TYPE
        assert body.startswith(b'{"activities":[')
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(body)

        status, body, resp = await one("html")
        assert status == 200 and resp.headers["Content-Type"] == "text/html"
        assert body.startswith(b"<!DOCTYPE html>")

        status, body, resp = await one("empty")
        assert (status, body, resp.headers["Content-Type"]) == (200, b"", JSON_TYPE)

        status, body, resp = await one("not_json")
        assert status == 200 and resp.headers["Content-Type"] == JSON_TYPE and body
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(body)

        wrong = [json.loads((await one("wrong_types", path))[1]) for path in (LIST, COUNT)]
        assert wrong[0]["activities"] == "nope"
        assert wrong[1]["count"]["value"] == "many"
        show = f"/api/v2/activities/{emu.activities_for(emu.agents[0])[0]['id']}"
        assert json.loads((await one("wrong_types", show))[1])["activity"]["id"] == "x"

        emu.inject(Fault.malformed("bad_gzip"))
        async with session.get(LIST, headers=headers) as resp:
            assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        async with aiohttp.ClientSession(base_url=emu.url, auto_decompress=False) as raw:
            emu.inject(Fault.malformed("bad_gzip"))
            status, body, resp = await call(raw, LIST, headers)
        assert resp.headers["Content-Encoding"] == "gzip" and body[:2] != b"\x1f\x8b"
        assert msgspec.json.decode(body)["activities"]  # plain JSON labelled gzip

        assert [r.status for r in emu.requests] == [200] * 9
        assert await status_of(session, LIST, emu.agents[0]) == 200


# -- matching, order, accounting ---------------------------------------------------------------


async def test_faults_are_fifo_and_ok_is_a_placeholder() -> None:
    async with running() as (emu, session):
        agent = emu.agents[0]
        emu.inject(Fault.status(500), Fault.ok())
        emu.inject(Fault.status(503))  # appends
        assert emu.pending_faults == 3
        statuses = [await status_of(session, COUNT, agent) for _ in range(4)]
        assert statuses == [500, 200, 503, 200]
        assert emu.pending_faults == 0
        assert [r.fault for r in emu.requests] == [
            Fault.status(500),
            Fault.ok(),
            Fault.status(503),
            None,
        ]
        emu.inject(Fault.status(500), Fault.status(502))
        emu.clear_faults()
        assert emu.pending_faults == 0
        assert await status_of(session, COUNT, agent) == 200


async def test_path_prefix_matching() -> None:
    async with running() as (emu, session):
        agent = emu.agents[0]
        show = f"/api/v2/activities/{emu.activities_for(agent)[0]['id']}.json"
        emu.inject(Fault.status(503), path="/api/v2/activities/count")
        assert await status_of(session, LIST, agent) == 200
        assert await status_of(session, show, agent) == 200
        assert emu.pending_faults == 1
        assert await status_of(session, COUNT, agent) == 503
        emu.inject(
            Fault.status(500), Fault.status(502), Fault.status(504), path="/api/v2/activities"
        )
        assert [await status_of(session, p, agent) for p in (LIST, show, COUNT)] == [500, 502, 504]
        emu.inject(Fault.status(500), path="/oauth/tokens")
        assert await status_of(session, LIST, agent) == 200
        assert emu.pending_faults == 1


async def test_agent_matching_by_credentials() -> None:
    async with running() as (emu, session):
        ada, bob = emu.agents
        # a queue head that does not match is skipped, not consumed
        emu.inject(Fault.status(500), agent=ada)
        emu.inject(Fault.status(503), agent=bob.user_id)
        status, _, _ = await call(session, LIST, basic(bob))  # Basic credentials identify too
        assert status == 503
        assert await status_of(session, LIST, bob) == 200
        assert emu.pending_faults == 1
        assert await status_of(session, LIST, ada) == 500
        # an unauthenticated request matches no agent's fault
        emu.inject(Fault.status(500), agent=ada)
        assert (await call(session, LIST))[0] == 401
        assert emu.pending_faults == 1
        emu.clear_faults()
        # the refresh token posted to /oauth/tokens identifies its owner
        emu.inject(Fault.status(503), agent=ada)
        status, _ = await refresh(session, bob.refresh_token)
        assert status == 200 and emu.pending_faults == 1
        status, _ = await refresh(session, ada.refresh_token, as_json=True)
        assert status == 503 and emu.refresh_count == 1
        # and an old (replaced) token still identifies its owner
        emu.inject(Fault.status(502), agent=bob)
        status, _, _ = await call(session, LIST, bearer(bob.oauth_token))
        assert status == 502


async def test_faults_count_against_the_rate_limit_and_are_logged() -> None:
    clock = Clock()
    async with running(rate_limit=3, monotonic=clock.monotonic, clock=clock) as (emu, session):
        agent = emu.agents[0]
        emu.inject(Fault.status(500), Fault.malformed("empty"))
        seen = []
        for _ in range(4):
            status, _, resp = await call(session, COUNT, bearer(agent.oauth_token))
            seen.append((status, resp.headers["X-Rate-Limit-Remaining"]))
        assert seen == [(500, "2"), (200, "1"), (200, "0"), (429, "0")]
        # a fault is answered even when the budget is exhausted, and still counts
        emu.inject(Fault.status(503))
        assert await status_of(session, COUNT, agent) == 503
        assert await status_of(session, COUNT, agent) == 429
        log = emu.requests
        assert [r.status for r in log] == [500, 200, 200, 429, 503, 429]
        assert [r.fault is not None for r in log] == [True, True, False, False, True, False]
        assert log[0].path == COUNT and log[0].headers["Authorization"].startswith("Bearer ")


async def test_latency() -> None:
    async with running() as (emu, session):
        agent = emu.agents[0]
        assert emu.latency == 0.0
        emu.latency = 0.05
        start = time.monotonic()
        assert await status_of(session, COUNT, agent) == 200
        assert time.monotonic() - start >= 0.05
        emu.latency = 0.0
        emu.inject(Fault.latency(0.1))
        start = time.monotonic()
        assert await status_of(session, COUNT, agent) == 200  # then served normally
        assert time.monotonic() - start >= 0.1
        start = time.monotonic()
        assert await status_of(session, COUNT, agent) == 200
        assert time.monotonic() - start < 0.1
        assert [r.fault for r in emu.requests] == [None, Fault.latency(0.1), None]


# -- OAuth ---------------------------------------------------------------------------------------


async def test_access_tokens_expire_on_the_monotonic_clock() -> None:
    clock = Clock()
    async with running(token_ttl=60, monotonic=clock.monotonic, clock=clock) as (emu, session):
        ada, bob = emu.agents
        assert await status_of(session, LIST, ada) == 200
        clock.mono += 59.9
        assert await status_of(session, LIST, ada) == 200
        clock.mono += 0.1
        status, body, resp = await call(session, LIST, bearer(ada.oauth_token))
        assert status == 401 and json.loads(body) == INVALID_TOKEN
        assert "invalid_token" in resp.headers["WWW-Authenticate"]
        assert (await call(session, LIST, basic(ada)))[0] == 200  # API tokens don't expire
        status, body, _ = await call(session, LIST, bearer("never-issued"))
        assert status == 401 and json.loads(body) == {"error": "Couldn't authenticate you"}
        # the refresh token still works; the new access token lives token_ttl from now
        status, pair = await refresh(session, ada.refresh_token)
        assert status == 200 and pair["expires_in"] == 60
        assert (await call(session, LIST, bearer(pair["access_token"])))[0] == 200
        clock.mono += 60
        assert (await call(session, LIST, bearer(pair["access_token"])))[0] == 401
        assert bob.user_id != ada.user_id


async def test_refresh_rotates_the_pair() -> None:
    async with running() as (emu, session):
        ada, bob = emu.agents
        assert emu.current_tokens(ada) == (ada.oauth_token, ada.refresh_token)
        status, pair = await refresh(session, ada.refresh_token)
        assert status == 200
        assert pair.keys() == {"access_token", "refresh_token", "token_type", "scope", "expires_in"}
        assert (pair["token_type"], pair["scope"], pair["expires_in"]) == ("bearer", "read", None)
        new = (pair["access_token"], pair["refresh_token"])
        assert emu.current_tokens(ada) == new
        assert ada.oauth_token not in new and ada.refresh_token not in new
        assert emu.refresh_count == 1
        # the old access token is dead, the new one works
        status, body, _ = await call(session, LIST, bearer(ada.oauth_token))
        assert status == 401 and json.loads(body) == INVALID_TOKEN
        status, body, _ = await call(session, LIST, bearer(new[0]))
        assert status == 200
        assert {a["user_id"] for a in json.loads(body)["activities"]} == {ada.user_id}
        # the old refresh token is spent
        assert await refresh(session, ada.refresh_token) == (400, INVALID_GRANT)
        assert await refresh(session, "never-issued") == (400, INVALID_GRANT)
        # the new one works, as JSON too; the other agent is untouched
        status, again = await refresh(session, new[1], as_json=True)
        assert status == 200 and emu.current_tokens(ada) == (
            again["access_token"],
            again["refresh_token"],
        )
        assert (await call(session, LIST, bearer(new[0])))[0] == 401
        assert emu.current_tokens(bob) == (bob.oauth_token, bob.refresh_token)
        assert await status_of(session, LIST, bob) == 200
        assert emu.refresh_count == 2
        assert [r.status for r in emu.requests if r.path == TOKENS] == [200, 400, 400, 200]


async def test_concurrent_refreshes_with_one_token_one_wins() -> None:
    async with running() as (emu, session):
        ada = emu.agents[0]
        results = await asyncio.gather(*(refresh(session, ada.refresh_token) for _ in range(3)))
        assert sorted(status for status, _ in results) == [200, 400, 400]
        assert emu.refresh_count == 1


async def test_token_endpoint_errors() -> None:
    async with running() as (emu, session):
        token = emu.agents[0].refresh_token

        async def post(**kwargs: Any) -> tuple[int, Any]:
            async with session.post(TOKENS, **kwargs) as resp:
                return resp.status, await resp.json()

        status, body = await refresh(session, token, client_secret="wrong")
        assert status == 401 and body["error"] == "invalid_client" and body["error_description"]
        status, body = await post(data={"grant_type": "refresh_token", "refresh_token": token})
        assert (status, body["error"]) == (401, "invalid_client")
        status, body = await refresh(session, token, as_json=True, client_id="someone-else")
        assert (status, body["error"]) == (401, "invalid_client")
        status, body = await post(data={"grant_type": "password", "refresh_token": token, **CLIENT})
        assert (status, body["error"]) == (400, "unsupported_grant_type")
        status, body = await post(data={"refresh_token": token, **CLIENT})
        assert (status, body["error"]) == (400, "invalid_request")
        status, body = await post(data={"grant_type": "refresh_token", **CLIENT})
        assert (status, body["error"]) == (400, "invalid_request")
        status, body = await post(data=b"{nope", headers={"Content-Type": "application/json"})
        assert (status, body["error"]) == (400, "invalid_request")
        status, body = await post(json=["refresh_token"])
        assert (status, body["error"]) == (400, "invalid_request")
        assert (await call(session, TOKENS))[0] == 404  # GET
        assert emu.refresh_count == 0
        # client credentials may also come as HTTP Basic (RFC 6749 section 2.3.1)
        pair = f"{CLIENT['client_id']}:{CLIENT['client_secret']}".encode()
        status, body = await post(
            data={"grant_type": "refresh_token", "refresh_token": token},
            headers={"Authorization": "Basic " + base64.b64encode(pair).decode()},
        )
        assert status == 200 and emu.refresh_count == 1


async def test_custom_oauth_client() -> None:
    async with running(oauth_client_id="mine", oauth_client_secret="s3cret") as (emu, session):
        token = emu.agents[0].refresh_token
        status, body = await refresh(session, token)
        assert (status, body["error"]) == (401, "invalid_client")
        status, body = await refresh(session, token, client_id="mine", client_secret="s3cret")
        assert status == 200


async def test_expire_tokens() -> None:
    async with running(agents=3) as (emu, session):
        ada, bob, cy = emu.agents
        emu.expire_tokens(ada)
        assert await status_of(session, LIST, ada) == 401
        assert await status_of(session, LIST, bob) == 200
        emu.expire_tokens()
        assert [await status_of(session, LIST, a) for a in (bob, cy)] == [401, 401]
        # refreshing brings a fresh, unexpired token
        status, pair = await refresh(session, bob.refresh_token)
        assert status == 200
        assert (await call(session, LIST, bearer(pair["access_token"])))[0] == 200
        emu.expire_tokens(bob.user_id)
        assert (await call(session, LIST, bearer(pair["access_token"])))[0] == 401
        with pytest.raises(ValueError):
            emu.expire_tokens(12345)
        with pytest.raises(ValueError):
            emu.current_tokens(12345)


async def test_faults_and_latency_apply_to_the_token_endpoint() -> None:
    async with running() as (emu, session):
        ada = emu.agents[0]
        emu.inject(Fault.status(503, retry_after=1), path=TOKENS)
        assert await status_of(session, LIST, ada) == 200
        async with session.post(TOKENS, data={"refresh_token": ada.refresh_token}) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        assert emu.refresh_count == 0
        assert emu.current_tokens(ada) == (ada.oauth_token, ada.refresh_token)
        emu.inject(Fault.malformed("truncated"), path=TOKENS)
        async with session.post(TOKENS, data={"refresh_token": ada.refresh_token}) as resp:
            body = await resp.read()
        assert body.startswith(b'{"access_token":"') and not body.endswith(b"}")
        assert emu.refresh_count == 0  # a faulted refresh has no side effect
        emu.latency = 0.05
        start = time.monotonic()
        status, _ = await refresh(session, ada.refresh_token)
        assert status == 200 and time.monotonic() - start >= 0.05

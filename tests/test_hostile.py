"""What zdactivity survives: a broken or hostile server, a wrong clock, a careless caller.

Each test is one case, named for what the client does about it, against a real server on
loopback (``hostile.HostileServer``, or the emulator where it can produce the fault). Read the
test names top to bottom as the list of what the long-running paths are proven to survive.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import sys
import traceback
import tracemalloc
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import pytest
import yarl
from aiohttp import web
from hostile import Handler, HostileServer, activity, json_response, never_answer, page, respond
from hypothesis import given, settings
from hypothesis import strategies as st

import zdactivity
import zdactivity.client
from zdactivity import models
from zdactivity import protocol as p
from zdactivity.protocol import resolve_base_url
from zdactivity.testing import Emulator, Fault


async def test_the_hostile_server_serves_a_page() -> None:
    async with HostileServer(respond(page([activity(1)]))) as server, server.client() as zd:
        listed = await zd.activities.list().collect()
    assert [a.id for a in listed] == [1]
    assert server.paths == ["/api/v2/activities?page%5Bsize%5D=100"]


# === Data loss: watch, tail and resumption ====================================================


# (end of data loss)


# === Hangs and account-wide stalls: rate limits, Retry-After, timeouts ========================


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

        auth = zdactivity.OAuthToken(
            agent.oauth_token,
            refresh_token=agent.refresh_token,
            client_id="zdactivity-emulator",
            client_secret="emulator-secret",
            on_refresh=on_refresh,
        )
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
        auth = zdactivity.OAuthToken(
            agent.oauth_token,
            refresh_token=agent.refresh_token,
            client_id="zdactivity-emulator",
            client_secret="emulator-secret",
        )
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


@pytest.mark.parametrize("depth", [2000, 100_000])
async def test_an_error_body_nested_2000_deep_is_a_readable_api_error(depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    async with HostileServer(respond(body, status=500)) as server, server.client() as zd:
        with pytest.raises(zdactivity.ServerError) as info:
            await zd.activities.count()
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
    deep = _nest(3000)
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
def test_a_page_nested_3000_deep_anywhere_is_a_decode_error(where: str, body: str) -> None:
    assert _nest(3000) in body, where
    with pytest.raises(zdactivity.DecodeError):
        decoded = p.decode_page(body.encode())
        for a in decoded:
            a.actor, a.user, a.object, a.target  # noqa: B018 (lazy decoding)


def test_a_single_activity_or_a_content_nested_3000_deep_is_a_decode_error() -> None:
    deep = _nest(3000)
    show = {"activity": activity(1, extra=msgspec.Raw(deep.encode()))}
    with pytest.raises(zdactivity.DecodeError):
        p.decode_activity(msgspec.json.encode(show))
    # What is decoded lazily, when read (object, target, actor, user), is guarded as well.
    raw = msgspec.Raw(b'{"change": {"field": "f", "value": ' + deep.encode() + b"}}")
    with pytest.raises(zdactivity.DecodeError, match="nested too deeply"):
        models._decode_content(raw, "$.activity.object")
    raw = msgspec.Raw(b'{"id": 7, "user_fields": {"a": ' + deep.encode() + b"}}")
    with pytest.raises(zdactivity.DecodeError, match="nested too deeply"):
        models._decode_user(raw, "$.activity.actor")
    token = msgspec.json.encode(
        {"access_token": "a", "refresh_token": "r", "x": msgspec.Raw(deep.encode())}
    )
    with pytest.raises(zdactivity.AuthenticationError):
        zdactivity.client._token_pair(200, token)


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


@pytest.mark.parametrize("how", ["environment", "agents file"])
def test_a_credential_with_a_control_character_is_a_usage_error_of_the_command(
    how: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENDESK_")}
    env["ZENDESK_URL"] = "http://127.0.0.1:9"
    if how == "environment":
        env["ZENDESK_OAUTH_TOKEN"] = "s3cret\x01token"
        args = ["count"]
    else:
        env["ZENDESK_OAUTH_TOKEN"] = "fine"
        agents = tmp_path / "agents.csv"
        agents.write_text('key,oauth_token\nalice,"s3cret\x01token"\n')
        args = ["fan-out", "--agents", str(agents)]
    result = subprocess.run(
        [sys.executable, "-m", "zdactivity", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr
    assert "control character" in result.stderr


# (end of failures)


# === The command line =========================================================================


# (end of command line)


# === Security: credentials, hosts and shared caches ===========================================


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


# (end of security)

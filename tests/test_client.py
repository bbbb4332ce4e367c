"""The client against the emulator, over real loopback HTTP."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from conftest import NOW, token

import zdactivity
from zdactivity import protocol
from zdactivity.models import Ticket
from zdactivity.pagination import PageIterator
from zdactivity.testing import Agent, Emulator

NO_RETRY = zdactivity.RetryPolicy.no_retry()


pytestmark = pytest.mark.emulator(seed=1, agents=3, activities_per_agent=60)


def ids(activities: list[zdactivity.Activity]) -> list[int]:
    return [a.id for a in activities]


def expected_ids(emu: Emulator, agent: Agent) -> list[int]:
    return [int(a["id"]) for a in emu.activities_for(agent)]  # type: ignore[call-overload]


async def test_thousand_activity_stream_exactly_once_in_order_with_actors_merged() -> None:
    async with Emulator(seed=3, agents=1, activities_per_agent=0, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        for i in range(1000):
            emu.add_activity(agent, created_at=NOW - timedelta(minutes=i + 1))
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
            got = await zd.activities.list(page_size=100).collect()
        assert len(got) == 1000
        assert ids(got) == expected_ids(emu, agent)
        assert len(set(ids(got))) == 1000
        for activity in got:
            actor = activity.actor
            assert actor is not None
            assert actor.id == activity.actor_id or activity.actor_id == -1
            assert actor.name
            assert activity.user is not None and activity.user.id == agent.user_id
        # 1000 is a multiple of 100: the server's trailing empty page is read and ends the walk.
        assert len(emu.requests) == 11


@pytest.mark.parametrize("page_size", [1, 7, 60, 100])
async def test_pages_cover_the_stream(
    emu: Emulator, client: zdactivity.Client, page_size: int
) -> None:
    pages = [p async for p in client.activities.list(page_size=page_size).pages()]
    flat = [a for p in pages for a in p]
    assert ids(flat) == expected_ids(emu, emu.agents[0])
    assert not pages[-1].has_more
    assert all(p.has_more for p in pages[:-1])
    assert all(len(p) == page_size for p in pages[:-1])
    assert flat == sorted(flat, key=lambda a: (-a.created_at.timestamp(), a.id))


async def test_resume_from_saved_cursor(emu: Emulator, client: zdactivity.Client) -> None:
    pages = client.activities.list(page_size=10).pages()
    first = await pages.__anext__()
    assert first.after_cursor
    rest = await client.activities.list(page_size=10, cursor=first.after_cursor).collect()
    assert ids(first.activities) + ids(rest) == expected_ids(emu, emu.agents[0])


async def test_links_on_a_canonical_host_are_never_followed() -> None:
    async with Emulator(
        seed=2, agents=1, activities_per_agent=25, canonical_host="acme.zendesk.com"
    ) as emu:
        async with zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0])) as zd:
            got = await zd.activities.list(page_size=5).collect()
        assert ids(got) == expected_ids(emu, emu.agents[0])
        assert got[0].url is not None and got[0].url.startswith("https://acme.zendesk.com/")
        assert {r.host.split(":")[0] for r in emu.requests} == {"127.0.0.1"}


async def test_since_is_sent_as_utc_and_filters(emu: Emulator, client: zdactivity.Client) -> None:
    agent = emu.agents[0]
    everything = expected_ids(emu, agent)
    pivot = emu.activities_for(agent)[len(everything) // 2]
    since = datetime.fromisoformat(str(pivot["created_at"]).replace("Z", "+00:00"))
    local = since.astimezone(timezone(timedelta(hours=-5)))
    got = await client.activities.list(since=local).collect()
    assert emu.requests[-1].query["since"] == since.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert got and all(a.created_at >= since for a in got)
    assert pivot["id"] in ids(got)  # the emulator's bound is inclusive by default
    as_text = await client.activities.list(since=since.isoformat()).collect()
    assert ids(as_text) == ids(got)


async def test_bad_arguments_fail_before_any_request(
    emu: Emulator, client: zdactivity.Client
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        client.activities.list(since=datetime(2026, 1, 1))
    for size in (0, 101):
        with pytest.raises(ValueError, match="page_size"):
            client.activities.list(page_size=size)
    with pytest.raises(ValueError):
        client.activities.list(pagination="offset", cursor="abc")
    with pytest.raises(ValueError):
        await client.activities.get(0)
    assert emu.requests == []


async def test_offset_pagination(emu: Emulator, client: zdactivity.Client) -> None:
    pages = [p async for p in client.activities.list(pagination="offset", page_size=25).pages()]
    assert [len(p) for p in pages] == [25, 25, 10]
    assert pages[0].count == 60
    assert ids([a for p in pages for a in p]) == expected_ids(emu, emu.agents[0])
    assert [r.query.get("page") for r in emu.requests] == ["1", "2", "3"]


async def test_offset_depth_limit_is_a_clear_error() -> None:
    async with Emulator(seed=4, agents=1, activities_per_agent=0, clock=lambda: NOW) as emu:
        agent = emu.agents[0]
        for i in range(105):
            emu.add_activity(agent, created_at=NOW - timedelta(minutes=i + 1))
        async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
            pager = zd.activities.list(pagination="offset", page_size=1)
            seen: list[zdactivity.Activity] = []
            with pytest.raises(zdactivity.PaginationDepthError, match="cursor pagination"):
                async for activity in pager:
                    seen.append(activity)
            assert len(seen) == 100  # every page Zendesk serves is delivered first
            # The server's own InvalidPaginationDepth answer maps to the same error.
            request = protocol.Request(
                "GET", protocol.ACTIVITIES_PATH, (("page", "101"), ("per_page", "1"))
            )
            with pytest.raises(zdactivity.PaginationDepthError):
                await PageIterator(zd.activities._fetch_page, request).__anext__()
            assert emu.requests[-1].status == 400


async def test_show_and_count(emu: Emulator, client: zdactivity.Client) -> None:
    mine = emu.activities_for(emu.agents[0])[0]
    activity = await client.activities.get(int(mine["id"]))  # type: ignore[call-overload]
    assert activity.id == mine["id"]
    assert activity.title == mine["title"]
    assert activity.user is not None and activity.user.id == emu.agents[0].user_id
    if activity.actor_id != -1:
        assert activity.actor is not None and activity.actor.id == activity.actor_id
    count = await client.activities.count()
    assert count.value == 60
    assert count.refreshed_at is not None


async def test_another_agents_activity_is_not_found(
    emu: Emulator, client: zdactivity.Client
) -> None:
    theirs = emu.activities_for(emu.agents[1])[0]
    with pytest.raises(zdactivity.NotFoundError) as info:
        await client.activities.get(int(theirs["id"]))  # type: ignore[call-overload]
    assert info.value.status == 404
    assert info.value.code == "RecordNotFound"
    assert info.value.request_id
    assert len(emu.requests) == 1  # 4xx is never retried


async def test_oauth_and_with_auth_share_one_session(emu: Emulator) -> None:
    a, b = emu.agents[0], emu.agents[1]
    async with zdactivity.Client(base_url=emu.url, auth=zdactivity.OAuthToken(a.oauth_token)) as zd:
        other = zd.with_auth(token(b))
        mine = await zd.activities.list().collect()
        theirs = await other.activities.list().collect()
        assert zd._shared is other._shared
        assert ids(mine) == expected_ids(emu, a)
        assert ids(theirs) == expected_ids(emu, b)
        await other.close()  # a view does not own the session
        assert not zd.closed
        assert (await zd.activities.count()).value == 60
    assert other.closed
    with pytest.raises(RuntimeError, match="closed"):
        await other.activities.count()


async def test_bad_credentials_and_non_agents(emu: Emulator) -> None:
    bad = zdactivity.APIToken(emu.agents[0].email, "not-the-token")
    async with zdactivity.Client(base_url=emu.url, auth=bad) as zd:
        with pytest.raises(zdactivity.AuthenticationError) as info:
            await zd.activities.count()
        assert "not-the-token" not in str(info.value)
        assert "not-the-token" not in repr(zd)
        end_user = emu.add_end_user(name="Customer")
        with pytest.raises(zdactivity.PermissionDeniedError):
            await zd.with_auth(token(end_user)).activities.count()
    assert [r.status for r in emu.requests] == [401, 403]


async def test_borrowed_session_stays_open_and_close_is_idempotent(emu: Emulator) -> None:
    async with aiohttp.ClientSession() as session:
        zd = zdactivity.Client(base_url=emu.url, auth=token(emu.agents[0]), session=session)
        assert (await zd.activities.count()).value == 60
        await zd.close()
        await zd.close()
        assert zd.closed and not session.closed


async def test_gzip_is_asked_for_and_decoded(emu: Emulator, client: zdactivity.Client) -> None:
    await client.activities.list().collect()
    assert "gzip" in emu.requests[0].headers.get("Accept-Encoding", "")


async def test_system_actor_and_unknown_content_kinds(emu: Emulator) -> None:
    agent = emu.add_agent(name="Fresh Agent")
    emu.add_activity(agent, actor_id=-1, created_at=NOW - timedelta(minutes=1))
    emu.add_activity(
        agent,
        created_at=NOW - timedelta(minutes=2),
        object={"sla_event": {"policy": "urgent", "breached": True}},
        target={"ticket": {"id": 99, "subject": "Printer on fire"}},
    )
    async with zdactivity.Client(base_url=emu.url, auth=token(agent)) as zd:
        system, odd = await zd.activities.list().collect()
    assert system.actor is zdactivity.SYSTEM_USER
    assert odd.object.kind == "sla_event"
    assert odd.object.data == {"sla_event": {"policy": "urgent", "breached": True}}
    assert odd.target.ticket == Ticket(id=99, subject="Printer on fire")


async def test_activities_appended_while_polling(emu: Emulator, client: zdactivity.Client) -> None:
    agent = emu.agents[0]
    before = expected_ids(emu, agent)
    pages = client.activities.list(page_size=20).pages()
    first = await pages.__anext__()
    added = emu.add_activity(agent, created_at=NOW - timedelta(seconds=1))
    rest = [a async for p in pages for a in p]
    # The walk is not disturbed: everything that was there is delivered once.
    assert ids(first.activities) + ids(rest) == before
    # The next poll sees the new activity, first (newest).
    newer = await client.activities.list(since=NOW - timedelta(seconds=1)).collect()
    assert ids(newer) == [added["id"]]


async def test_unreachable_host_is_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with zdactivity.Client(
        base_url=f"http://127.0.0.1:{port}", auth=zdactivity.OAuthToken("x"), retry=NO_RETRY
    ) as zd:
        with pytest.raises(zdactivity.TransportError, match=r"127\.0\.0\.1") as info:
            await zd.activities.count()
        assert isinstance(info.value, zdactivity.ConnectionFailedError)


def test_configuration_errors() -> None:
    auth = zdactivity.OAuthToken("t")
    with pytest.raises(ValueError, match="DNS label"):
        zdactivity.Client(subdomain="bad_name!", auth=auth)
    with pytest.raises(ValueError, match="http"):
        zdactivity.Client(base_url="http://acme.zendesk.com", auth=auth)
    with pytest.raises(ValueError, match="credentials"):
        zdactivity.Client(subdomain="acme", auth=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        zdactivity.Client(subdomain="acme", auth="secret")  # type: ignore[arg-type]
    zd = zdactivity.Client(subdomain="acme", auth=auth)
    assert zd.base_url == "https://acme.zendesk.com"
    secret = zdactivity.Client(subdomain="acme", auth=zdactivity.OAuthToken("secret"))
    assert "secret" not in repr(secret)

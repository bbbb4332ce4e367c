"""Wire-level tests of zdactivity.testing.Emulator, with a plain aiohttp.ClientSession."""

from __future__ import annotations

import asyncio
import base64
import gzip
import re
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import msgspec
import pytest
from aiohttp import web
from conftest import EMULATOR_NOW as NOW
from conftest import Clock, basic, wait_until
from conftest import running_emulator as running

from zdactivity.testing import Agent, Emulator, RecordedRequest
from zdactivity.testing._server import Route

USER_KEYS = {
    "active", "alias", "created_at", "custom_role_id", "default_group_id", "details", "email",
    "external_id", "iana_time_zone", "id", "last_login_at", "locale", "locale_id", "moderator",
    "name", "notes", "only_private_comments", "organization_id", "phone", "photo", "report_csv",
    "restricted_agent", "role", "role_type", "shared", "shared_agent", "shared_phone_number",
    "signature", "suspended", "tags", "ticket_restriction", "time_zone", "two_factor_auth_enabled",
    "updated_at", "url", "user_fields", "verified",
}  # fmt: skip
ACTIVITY_KEYS = [
    "url", "id", "title", "verb", "user_id", "actor_id", "updated_at", "created_at", "object",
    "target", "user", "actor",
]  # fmt: skip
LIST = "/api/v2/activities.json"


def bearer(agent: Agent) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent.oauth_token}"}


async def get(
    session: aiohttp.ClientSession, path: str, agent: Agent | None, **params: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = bearer(agent) if agent else {}
    async with session.get(path, headers=headers, params=params or None) as resp:
        raw = await resp.read()
        body = msgspec.json.decode(raw) if resp.content_type == "application/json" else raw
        return resp.status, body, resp


async def walk(
    session: aiohttp.ClientSession, agent: Agent, size: int, **params: Any
) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    query: dict[str, Any] = {"page[size]": size, **params}
    while True:
        status, body, _ = await get(session, LIST, agent, **query)
        assert status == 200, body
        pages.append(body)
        if not body["meta"]["has_more"]:
            return pages
        query = {"page[size]": size, "page[after]": body["meta"]["after_cursor"], **params}


def ids(activities: list[dict[str, Any]]) -> list[int]:
    return [a["id"] for a in activities]


# -- auth ------------------------------------------------------------------------------------


async def test_basic_and_bearer_auth_see_the_same_stream() -> None:
    async with running() as (emu, session):
        agent = emu.agents[0]
        async with session.get(LIST, headers=basic(agent)) as r1:
            assert r1.status == 200
            b1 = await r1.json()
        async with session.get(LIST, headers=bearer(agent)) as r2:
            assert r2.status == 200
            b2 = await r2.json()
        assert b1 == b2
        assert {a["user_id"] for a in b1["activities"]} == {agent.user_id}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer nope",
        "Basic " + base64.b64encode(b"someone@example.com/token:nope").decode(),
        "Basic !!!not-base64!!!",
        "Token abc",
    ],
)
async def test_bad_credentials_are_401(authorization: str | None) -> None:
    async with running(agents=1) as (emu, session):
        headers = {"Authorization": authorization} if authorization else {}
        async with session.get(LIST, headers=headers) as resp:
            assert resp.status == 401
            assert await resp.json() == {"error": "Couldn't authenticate you"}
        # right email, wrong token; right token, password-style (no "/token")
        agent = emu.agents[0]
        for cred in (f"{agent.email}/token:wrong", f"{agent.email}:{agent.api_token}"):
            header = {"Authorization": "Basic " + base64.b64encode(cred.encode()).decode()}
            async with session.get(LIST, headers=header) as resp:
                assert resp.status == 401


async def test_end_user_is_403_with_either_scheme() -> None:
    async with running(agents=1) as (emu, session):
        user = emu.add_end_user(name="Eve Enduser")
        assert user.role == "end-user"
        for headers in (basic(user), bearer(user)):
            for path in (LIST, "/api/v2/activities/count", "/api/v2/activities/1"):
                async with session.get(path, headers=headers) as resp:
                    assert resp.status == 403
                    body = await resp.json()
                    assert body["error"]["title"] == "Forbidden"
                    assert body["error"]["message"].startswith("You do not have access")


async def test_agent_repr_hides_tokens_and_add_agent_starts_empty() -> None:
    async with running(agents=1) as (emu, session):
        agent = emu.add_agent(name="New Hire")
        assert agent.role == "agent" and agent.name == "New Hire"
        assert agent in emu.agents
        for secret in (agent.api_token, agent.oauth_token, agent.refresh_token):
            assert secret not in repr(agent)
        status, body, _ = await get(session, LIST, agent, **{"page[size]": 10})
        assert status == 200 and body["activities"] == [] and body["meta"]["has_more"] is False
        status, body, _ = await get(session, "/api/v2/activities/count", agent)
        assert body["count"]["value"] == 0


# -- cursor pagination ------------------------------------------------------------------------


async def test_cursor_walk_returns_every_in_window_activity_once_newest_first() -> None:
    async with running(agents=2, activities_per_agent=57, system_actor_share=0.2) as (emu, s):
        agent = emu.agents[1]
        expected = emu.activities_for(agent)
        assert 0 < len(expected) <= 57
        assert len(emu.activities_for(agent, window=False)) == 57
        pages = await walk(s, agent, 10)
        got = [a for page in pages for a in page["activities"]]
        assert ids(got) == ids(expected)
        assert got == expected
        assert len(set(ids(got))) == len(got)
        keys = [(a["created_at"], -a["id"]) for a in got]
        assert keys == sorted(keys, reverse=True)
        assert {a["user_id"] for a in got} == {agent.user_id}
        for page in pages:
            assert list(page) == ["activities", "actors", "users", "meta", "links"]
            acts = page["activities"]
            assert page["meta"]["has_more"] == (len(acts) == 10)
            actor_ids = [a["actor_id"] for a in acts if a["actor_id"] != -1]
            assert [u["id"] for u in page["actors"]] == list(dict.fromkeys(actor_ids))
            assert [u["id"] for u in page["users"]] == ([agent.user_id] if acts else [])
            for a in acts:
                assert list(a) == ACTIVITY_KEYS if a["actor_id"] != -1 else ACTIVITY_KEYS[:-1]


async def test_trailing_empty_page_when_total_is_a_multiple_of_size() -> None:
    async with running(agents=1, activities_per_agent=0) as (emu, session):
        agent = emu.agents[0]
        for minutes in range(6):
            emu.add_activity(agent, created_at=NOW - timedelta(minutes=minutes + 1))
        pages = await walk(session, agent, 3)
        assert [len(p["activities"]) for p in pages] == [3, 3, 0]
        assert [p["meta"]["has_more"] for p in pages] == [True, True, False]
        last = pages[-1]
        assert last["meta"] == {"has_more": False, "after_cursor": None, "before_cursor": None}
        assert last["links"] == {"prev": None, "next": None}
        assert last["actors"] == [] and last["users"] == []
        # a partial last page says has_more false and carries cursors
        pages = await walk(session, agent, 4)
        assert [len(p["activities"]) for p in pages] == [4, 2]
        assert pages[-1]["meta"]["after_cursor"] is not None


async def test_cursor_shape_and_page_before() -> None:
    async with running(agents=1, activities_per_agent=40) as (emu, session):
        agent = emu.agents[0]
        first = (await get(session, LIST, agent, **{"page[size]": 5}))[1]
        cursor = first["meta"]["after_cursor"]
        outer = msgspec.json.decode(base64.b64decode(cursor))
        assert outer["o"] == "-created_at,id"
        position = base64.b64decode(outer["v"])
        assert position[0:1] == b"d" and position[9:10] == b"i" and len(position) == 18
        last = first["activities"][-1]
        assert int.from_bytes(position[10:], "little") == last["id"]
        second = (await get(session, LIST, agent, **{"page[size]": 5, "page[after]": cursor}))[1]
        before = second["meta"]["before_cursor"]
        status, back, _ = await get(
            session, LIST, agent, **{"page[size]": 5, "page[before]": before}
        )
        assert status == 200
        assert ids(back["activities"]) == ids(first["activities"])
        assert back["meta"]["has_more"] is True
        # before the first page: nothing
        status, empty, _ = await get(
            session,
            LIST,
            agent,
            **{"page[size]": 5, "page[before]": first["meta"]["before_cursor"]},
        )
        assert empty["activities"] == [] and empty["meta"]["has_more"] is False


async def test_links_and_urls_use_canonical_host_when_set() -> None:
    async with running(agents=1, canonical_host="acme.zendesk.com") as (emu, session):
        agent = emu.agents[0]
        status, body, _ = await get(session, LIST, agent, **{"page[size]": 2})
        assert status == 200
        after = body["meta"]["after_cursor"].replace("=", "%3D")
        assert body["links"]["next"] == (
            "https://acme.zendesk.com/api/v2/activities.json"
            f"?page%5Bafter%5D={after}&page%5Bsize%5D=2"
        )
        assert body["links"]["prev"].startswith(
            "https://acme.zendesk.com/api/v2/activities.json?page%5Bbefore%5D="
        )
        act = body["activities"][0]
        assert act["url"] == f"https://acme.zendesk.com/api/v2/activities/{act['id']}.json"
        assert act["user"]["url"] == f"https://acme.zendesk.com/api/v2/users/{agent.user_id}.json"
        for user in (*body["users"], *body["actors"]):
            if user["photo"] is not None:
                assert user["photo"]["content_url"].startswith("https://acme.zendesk.com/system/")
        assert emu.activities_for(agent)[0]["url"].startswith("https://acme.zendesk.com/")
        # the link works when replayed against the emulator
        next_query = urlsplit(body["links"]["next"]).query
        async with session.get(f"{LIST}?{next_query}", headers=bearer(agent)) as resp:
            page2 = await resp.json()
        assert page2["activities"][0]["id"] != act["id"]


async def test_links_and_urls_follow_the_called_host_otherwise() -> None:
    async with running(agents=1) as (emu, session):
        agent = emu.agents[0]
        status, body, _ = await get(session, LIST, agent, **{"page[size]": 2})
        assert status == 200
        assert body["links"]["next"].startswith(f"{emu.url}/api/v2/activities.json?page%5Bafter")
        assert body["activities"][0]["url"].startswith(f"{emu.url}/api/v2/activities/")
        assert body["activities"][0] == emu.activities_for(agent)[0]
        headers = {**bearer(agent), "Host": "acme-alias.example:8443"}
        async with session.get(LIST, params={"page[size]": "2"}, headers=headers) as resp:
            aliased = await resp.json()
        assert aliased["links"]["next"].startswith("http://acme-alias.example:8443/api/v2/")
        assert aliased["users"][0]["url"].startswith("http://acme-alias.example:8443/api/v2/")
        assert "@@" not in msgspec.json.encode(aliased).decode()


async def test_page_size_validation() -> None:
    async with running(agents=1) as (emu, session):
        agent = emu.agents[0]
        for size in ("101", "0", "-1", "abc", ""):
            status, body, _ = await get(session, LIST, agent, **{"page[size]": size})
            assert status == 400, size
            assert body["error"] == "InvalidPaginationParameter"
        status, body, _ = await get(session, LIST, agent, **{"page[size]": "100"})
        assert status == 200


async def test_both_cursors_and_bad_cursors_are_400() -> None:
    async with running(agents=1) as (emu, session):
        agent = emu.agents[0]
        body = (await get(session, LIST, agent, **{"page[size]": 3}))[1]
        after, before = body["meta"]["after_cursor"], body["meta"]["before_cursor"]
        status, err, _ = await get(
            session, LIST, agent, **{"page[size]": 3, "page[after]": after, "page[before]": before}
        )
        assert status == 400
        assert err["errors"][0]["code"] == "InvalidPaginationParameter"
        wrong_order = base64.b64encode(b'{"o":"id","v":"AAAA"}').decode()
        short_pos = base64.b64encode(b'{"o":"-created_at,id","v":"AAAA"}').decode()
        for bad in ("garbage!", "", "e30=", wrong_order, short_pos, after[:-8]):
            for key in ("page[after]", "page[before]"):
                status, err, _ = await get(session, LIST, agent, **{"page[size]": 3, key: bad})
                assert status == 400, (key, bad)
                assert err["errors"][0]["title"] == "Invalid cursor"


# -- offset pagination, since, window --------------------------------------------------------


async def test_offset_pagination_and_depth_limit() -> None:
    async with running(agents=1, activities_per_agent=35) as (emu, session):
        agent = emu.agents[0]
        expected = emu.activities_for(agent)
        status, body, _ = await get(session, LIST, agent, per_page=10)
        assert status == 200
        assert list(body) == [
            "activities",
            "actors",
            "users",
            "next_page",
            "previous_page",
            "count",
        ]
        assert body["count"] == len(expected)
        assert body["previous_page"] is None
        assert body["next_page"] == f"{emu.url}/api/v2/activities.json?page=2&per_page=10"
        got, page = [], 1
        while True:
            status, body, _ = await get(session, LIST, agent, page=page, per_page=10)
            got += body["activities"]
            if body["next_page"] is None:
                break
            assert parse_qs(urlsplit(body["next_page"]).query)["page"] == [str(page + 1)]
            page += 1
        assert body["previous_page"].endswith(f"page={page - 1}&per_page=10")
        assert ids(got) == ids(expected)
        status, body, _ = await get(session, LIST, agent)  # defaults: page 1, per_page 100
        assert ids(body["activities"]) == ids(expected) and body["next_page"] is None
        status, body, _ = await get(session, LIST, agent, page=100, per_page=10)
        assert status == 200 and body["activities"] == []
        status, body, _ = await get(session, LIST, agent, page=101)
        assert status == 400
        assert body["errors"][0]["code"] == "InvalidPaginationDepth"


@pytest.mark.parametrize("inclusive", [True, False])
async def test_since_bound(inclusive: bool) -> None:
    async with running(agents=1, activities_per_agent=0, since_inclusive=inclusive) as (emu, s):
        agent = emu.agents[0]
        at = NOW - timedelta(hours=5)
        older = emu.add_activity(agent, created_at=at - timedelta(seconds=1))
        exact = emu.add_activity(agent, created_at=at)
        newer = emu.add_activity(agent, created_at=at + timedelta(seconds=1))
        expected = [newer["id"], exact["id"]] if inclusive else [newer["id"]]
        for since in ("2024-05-01T07:00:00Z", "2024-05-01T09:00:00+02:00"):
            pages = await walk(s, agent, 10, since=since)
            assert ids(pages[0]["activities"]) == expected, since
            status, body, _ = await get(s, LIST, agent, since=since)
            assert ids(body["activities"]) == expected and body["count"] == len(expected)
        # an unencoded "+" arrives as a space; still understood
        async with s.get(f"{LIST}?since=2024-05-01T09:00:00+02:00", headers=bearer(agent)) as r:
            assert ids((await r.json())["activities"]) == expected
        assert older["id"] not in ids(emu.activities_for(agent)[:2])
        body = (await get(s, LIST, agent, **{"page[size]": 1, "since": "2024-05-01T07:00:00Z"}))[1]
        assert "since=2024-05-01T07%3A00%3A00Z" in body["links"]["next"]
        status, body, _ = await get(s, LIST, agent, since="yesterday")
        assert status == 400 and body["error"] == "InvalidValue"


async def test_thirty_day_window_follows_the_injected_clock() -> None:
    clock = Clock()
    async with running(agents=1, activities_per_agent=0, clock=clock) as (emu, session):
        agent = emu.agents[0]
        edge = NOW - timedelta(days=30)
        inside = emu.add_activity(agent, created_at=edge + timedelta(seconds=1))
        emu.add_activity(agent, created_at=edge - timedelta(seconds=1))
        status, body, _ = await get(session, LIST, agent)
        assert ids(body["activities"]) == [inside["id"]]
        assert (await get(session, "/api/v2/activities/count", agent))[1]["count"]["value"] == 1
        clock.now += timedelta(seconds=2)
        assert (await get(session, LIST, agent))[1]["activities"] == []
        assert (await get(session, "/api/v2/activities/count", agent))[1]["count"]["value"] == 0
        assert emu.activities_for(agent) == []
        assert len(emu.activities_for(agent, window=False)) == 2
        # show still finds it
        status, body, _ = await get(session, f"/api/v2/activities/{inside['id']}", agent)
        assert status == 200


async def test_seeded_data_spans_a_little_more_than_the_window() -> None:
    emu = Emulator(agents=4, activities_per_agent=200, clock=Clock())
    for agent in emu.agents:
        everything = emu.activities_for(agent, window=False)
        assert len(everything) == 200
        oldest = datetime.fromisoformat(everything[-1]["created_at"])
        assert NOW - timedelta(days=31) <= oldest < NOW - timedelta(days=30)
        assert 150 < len(emu.activities_for(agent)) < 200


# -- show, count, routing ---------------------------------------------------------------------


async def test_show_own_activity_and_not_someone_elses() -> None:
    async with running(agents=2, system_actor_share=0.0) as (emu, session):
        mine, theirs = emu.agents
        act = emu.activities_for(mine)[3]
        for path in (f"/api/v2/activities/{act['id']}", f"/api/v2/activities/{act['id']}.json"):
            status, body, _ = await get(session, path, mine)
            assert status == 200
            assert body == {"activity": act}
            assert list(body["activity"]) == ACTIVITY_KEYS
        other = emu.activities_for(theirs)[0]["id"]
        for path in (
            f"/api/v2/activities/{other}",
            "/api/v2/activities/abc",
            "/api/v2/activities/1",
        ):
            status, body, _ = await get(session, path, mine)
            assert status == 404
            assert body == {"error": "RecordNotFound", "description": "Not found"}


async def test_unknown_endpoints_are_404() -> None:
    async with running(agents=1) as (emu, session):
        agent = emu.agents[0]
        for path in ("/api/v2/tickets.json", "/", "/api/v2/activities/1/extra"):
            status, body, _ = await get(session, path, agent)
            assert status == 404
            assert body == {"error": "InvalidEndpoint", "description": "Not found"}
        async with session.post(LIST, headers=bearer(agent)) as resp:
            assert resp.status == 404


async def test_json_suffix_is_optional() -> None:
    async with running(agents=1) as (emu, session):
        agent = emu.agents[0]
        for a, b in (
            ("/api/v2/activities", "/api/v2/activities.json"),
            ("/api/v2/activities/count", "/api/v2/activities/count.json"),
        ):
            sa, ba, _ = await get(session, a, agent)
            sb, bb, _ = await get(session, b, agent)
            assert sa == sb == 200 and ba == bb


async def test_count_and_count_cap() -> None:
    clock = Clock()
    async with running(agents=1, activities_per_agent=30, clock=clock) as (emu, session):
        agent = emu.agents[0]
        status, body, _ = await get(session, "/api/v2/activities/count", agent)
        assert status == 200
        assert body == {
            "count": {
                "value": len(emu.activities_for(agent)),
                "refreshed_at": "2024-05-01T12:00:00Z",
            }
        }
    async with running(agents=1, activities_per_agent=30, count_cap=5) as (emu, session):
        status, body, _ = await get(session, "/api/v2/activities/count", emu.agents[0])
        assert status == 200
        assert body == {"count": {"value": 5, "refreshed_at": None}}


# -- headers, gzip, rate limit ----------------------------------------------------------------


def assert_common_headers(resp: aiohttp.ClientResponse, *, zendesk_id: bool = True) -> None:
    h = resp.headers
    for name in ("X-Rate-Limit", "X-Rate-Limit-Remaining", "rate-limit", "rate-limit-remaining"):
        assert h[name].isdigit(), name
    assert h["X-Rate-Limit"] == h["rate-limit"]
    assert h["X-Rate-Limit-Remaining"] == h["rate-limit-remaining"]
    assert int(h["rate-limit-reset"]) >= 1
    request_ids = h.getall("x-request-id")
    assert len(request_ids) == 2 and request_ids[0] == request_ids[1]
    if zendesk_id:
        assert h["X-Zendesk-Request-Id"] == request_ids[0]
    else:
        assert "X-Zendesk-Request-Id" not in h
    assert h["x-zendesk-api-version"] == "v2"


async def test_every_response_carries_the_common_headers() -> None:
    async with running(agents=1) as (emu, session):
        agent = emu.agents[0]
        for path, who, status in (
            (LIST, agent, 200),
            ("/api/v2/activities/count", agent, 200),
            (LIST, None, 401),
            ("/api/v2/activities/999", agent, 404),
            ("/nowhere", agent, 404),
        ):
            got, _, resp = await get(session, path, who, **{"page[size]": 2})
            assert got == status
            assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
            assert_common_headers(resp)
        status, _, resp = await get(session, LIST, agent, **{"page[size]": 500})
        assert status == 400
        assert_common_headers(resp)
    async with running(agents=1, zendesk_request_id=False) as (emu, session):
        _, _, resp = await get(session, LIST, emu.agents[0])
        assert_common_headers(resp, zendesk_id=False)


async def test_gzip_when_asked() -> None:
    async with Emulator(agents=1) as emu:
        agent = emu.agents[0]
        async with aiohttp.ClientSession(base_url=emu.url, auto_decompress=False) as raw:
            headers = {**bearer(agent), "Accept-Encoding": "gzip"}
            async with raw.get(LIST, headers=headers) as resp:
                assert resp.headers["Content-Encoding"] == "gzip"
                zipped = await resp.read()
            assert zipped[:2] == b"\x1f\x8b"
            plain = msgspec.json.decode(gzip.decompress(zipped))
            headers = {**bearer(agent), "Accept-Encoding": "identity"}
            async with raw.get(LIST, headers=headers) as resp:
                assert "Content-Encoding" not in resp.headers
                assert msgspec.json.decode(await resp.read()) == plain
            headers = {"Accept-Encoding": "gzip;q=0"}
            async with raw.get(LIST, headers=headers) as resp:  # also errors, and q=0 honoured
                assert resp.status == 401 and "Content-Encoding" not in resp.headers


async def test_rate_limit_window() -> None:
    clock = Clock()
    async with running(
        agents=1, rate_limit=3, rate_limit_window=60.0, clock=clock, monotonic=clock.monotonic
    ) as (emu, session):
        agent = emu.agents[0]
        remaining = []
        for _ in range(3):
            status, _, resp = await get(session, "/api/v2/activities/count", agent)
            assert status == 200 and resp.headers["X-Rate-Limit"] == "3"
            remaining.append(resp.headers["X-Rate-Limit-Remaining"])
            clock.mono += 10
        assert remaining == ["2", "1", "0"]
        assert resp.headers["rate-limit-reset"] == "40"
        async with session.get(LIST, headers=bearer(agent)) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "30"
            assert resp.headers["Content-Type"] == "text/html"
            assert (await resp.text()).lstrip().startswith("<html>")
            assert resp.headers["X-Rate-Limit-Remaining"] == "0"
            assert_common_headers(resp)
        clock.mono += 29.5
        async with session.get(LIST, headers=bearer(agent)) as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "1"
        clock.mono += 0.5  # the window has passed
        status, _, resp = await get(session, "/api/v2/activities/count", agent)
        assert status == 200
        assert resp.headers["X-Rate-Limit-Remaining"] == "2"
        assert resp.headers["rate-limit-reset"] == "60"
        assert [r.status for r in emu.requests] == [200, 200, 200, 429, 429, 200]


async def test_rate_limit_not_enforced() -> None:
    clock = Clock()
    async with running(
        agents=1, rate_limit=2, enforce_rate_limit=False, monotonic=clock.monotonic
    ) as (emu, session):
        for _ in range(4):
            status, _, resp = await get(session, "/api/v2/activities/count", emu.agents[0])
            assert status == 200
        assert resp.headers["X-Rate-Limit-Remaining"] == "0"


# -- data ---------------------------------------------------------------------------------------


async def test_add_activity_shows_up_in_the_next_request() -> None:
    async with running(agents=2) as (emu, session):
        agent, colleague = emu.agents
        status, before, _ = await get(session, LIST, agent, **{"page[size]": 5})
        added = emu.add_activity(
            agent, verb="tickets.assignment", actor_id=colleague.user_id, ticket_id=4242
        )
        assert added["title"] == f"{colleague.name} assigned ticket #4242 to you."
        assert (
            added["object"] == added["target"] == {"ticket": {"id": 4242, "subject": "Ticket 4242"}}
        )
        assert added["id"] > max(ids(before["activities"]))
        status, after, _ = await get(session, LIST, agent, **{"page[size]": 5})
        assert status == 200
        assert after["activities"][0] == added
        assert after["actors"][0]["id"] == colleague.user_id
        assert emu.activities_for(agent)[0] == added
        # by user id; unknown kinds of object are served verbatim
        odd = emu.add_activity(
            agent.user_id,
            verb="tickets.sla_breach",
            object={"sla_event": {"policy": "Gold", "breached": True}},
            target={"ticket": {"id": 7, "subject": "x"}},
            title="SLA breached on #7.",
        )
        status, body, _ = await get(session, f"/api/v2/activities/{odd['id']}", agent)
        assert status == 200
        assert body["activity"]["object"] == {"sla_event": {"policy": "Gold", "breached": True}}
        assert body["activity"]["verb"] == "tickets.sla_breach"
        # a backdated activity slots into its place in the order
        old = emu.add_activity(agent, created_at=NOW - timedelta(days=2))
        listed = emu.activities_for(agent)
        position = ids(listed).index(old["id"])
        assert listed[position - 1]["created_at"] >= old["created_at"]
        with pytest.raises(ValueError):
            emu.add_activity(emu.add_end_user())
        with pytest.raises(ValueError):
            emu.add_activity(agent, actor_id=12345)


async def test_system_actor_activities_have_no_actor() -> None:
    async with running(agents=1, activities_per_agent=20, system_actor_share=1.0) as (emu, s):
        agent = emu.agents[0]
        emu.add_activity(agent, actor_id=-1, verb="tickets.priority_increase")
        status, body, _ = await get(s, LIST, agent, **{"page[size]": 100})
        assert status == 200
        assert body["activities"]
        for act in body["activities"]:
            assert act["actor_id"] == -1 and "actor" not in act
        assert body["actors"] == []
        assert [u["id"] for u in body["users"]] == [agent.user_id]


async def test_seeded_content_looks_like_zendesk() -> None:
    emu = Emulator(agents=3, activities_per_agent=150, clock=Clock())
    verbs: set[str] = set()
    photos = {True: 0, False: 0}
    system = 0
    for agent in emu.agents:
        assert agent.role in ("agent", "admin")
        for act in emu.activities_for(agent, window=False):
            verbs.add(act["verb"])
            assert act["id"] > 2**32 and act["created_at"].endswith("Z")
            assert act["created_at"] == act["updated_at"]
            tid = act["target"]["ticket"]["id"]
            if act["verb"] == "tickets.comment":
                text = act["object"]["comment"]["value"]
                end = "" if text.endswith((".", "!", "?")) else "."
                assert act["title"].endswith(f" commented on ticket #{tid}: {text}{end}")
                assert isinstance(act["object"]["comment"]["public"], bool)
            elif act["verb"] == "tickets.assignment":
                assert act["title"].endswith(f" assigned ticket #{tid} to you.")
                assert act["object"] == act["target"]
            else:
                change = act["object"]["change"]
                assert change["field"] == "priority"
                assert re.search(
                    rf"increased the priority of ticket #{tid} to \w+\.$", act["title"]
                )
            if act["actor_id"] == -1:
                system += 1
                continue
            for user in (act["user"], act["actor"]):
                assert set(user) == USER_KEYS
                photos[user["photo"] is not None] += 1
                assert "system::embeddable_last_seen" in user["user_fields"]
    assert verbs == {"tickets.comment", "tickets.assignment", "tickets.priority_increase"}
    assert photos[True] and photos[False]
    assert 0 < system < 100


async def test_seeding_is_deterministic_and_fast() -> None:
    def snapshot(seed: int) -> Any:
        emu = Emulator(seed=seed, agents=3, activities_per_agent=20, clock=Clock())
        return [(a, emu.activities_for(a, window=False)) for a in emu.agents]

    assert snapshot(7) == snapshot(7)
    assert snapshot(7) != snapshot(8)
    # CPU time, not the wall clock: other processes on a busy machine do not count.
    start = time.process_time()
    Emulator(agents=200, activities_per_agent=150)
    assert time.process_time() - start < 2.0  # generous for slow CI; typically ~0.2 s


# -- request log, concurrency, lifecycle -------------------------------------------------------


async def test_request_log() -> None:
    async with running(agents=1) as (emu, session):
        agent = emu.agents[0]
        _, _, resp = await get(session, LIST, agent, **{"page[size]": 2})
        await get(session, "/api/v2/activities/count.json", None)
        first, second = emu.requests
        assert isinstance(first, RecordedRequest)
        assert (first.method, first.path, first.status) == ("GET", LIST, 200)
        assert first.query == {"page[size]": "2"}
        assert first.headers["Authorization"] == f"Bearer {agent.oauth_token}"
        assert first.host == emu.url.removeprefix("http://")
        assert first.request_id == resp.headers["X-Zendesk-Request-Id"]
        assert (second.path, second.status) == ("/api/v2/activities/count.json", 401)
        assert first.request_id != second.request_id
        assert emu.in_flight == 0 and emu.max_in_flight == 1
        emu.reset_log()
        assert emu.requests == [] and emu.max_in_flight == 0


async def test_in_flight_counts_concurrent_requests() -> None:
    async with running(agents=1) as (emu, session):
        release = asyncio.Event()

        async def slow(request: web.Request, user_id: int | None, match: Any) -> web.Response:
            await release.wait()
            return web.json_response({"ok": True})

        # the route table is the extension point for new endpoints
        emu._server.routes.append(Route("GET", re.compile(r"/slow"), slow, auth=False))

        async def call() -> int:
            async with session.get("/slow") as resp:
                return resp.status

        tasks = [asyncio.create_task(call()) for _ in range(3)]
        await wait_until(lambda: emu.in_flight == 3)
        assert emu.in_flight == 3 and emu.max_in_flight == 3
        release.set()
        assert await asyncio.gather(*tasks) == [200, 200, 200]
        assert emu.in_flight == 0 and emu.max_in_flight == 3
        assert [r.status for r in emu.requests] == [200, 200, 200]


async def test_start_stop_without_context_manager() -> None:
    emu = Emulator(agents=1, activities_per_agent=3)
    with pytest.raises(RuntimeError):
        _ = emu.url
    await emu.start()
    try:
        with pytest.raises(RuntimeError):
            await emu.start()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.url)
        async with (
            aiohttp.ClientSession() as session,
            session.get(emu.url + LIST, headers=basic(emu.agents[0])) as resp,
        ):
            assert resp.status == 200
    finally:
        await emu.stop()
    await emu.stop()  # idempotent
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(emu.url + LIST):
                pass

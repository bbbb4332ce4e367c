"""Models: activities, lazy actor/user resolution through the per-page user index, content kinds.

Page bodies are generated here (realistic user records with photos, thumbnails, user_fields,
tags and integer role_type), encoded with msgspec and decoded through ``protocol.decode_page``.
"""

from __future__ import annotations

import gc
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zdactivity
import zdactivity.models as models
from zdactivity import (
    SYSTEM_USER,
    Activity,
    ActivityCount,
    ActivityPage,
    Content,
    DecodeError,
    User,
)
from zdactivity import protocol as p
from zdactivity.models import Change, Comment, CursorPage, OffsetPage, Photo, Thumbnail, Ticket

HOST = "https://northwind.zendesk.com"
EPOCH = datetime(2024, 3, 5, 10, 11, 12, tzinfo=UTC)

# --- builders ---------------------------------------------------------------------------------


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_thumbnail(photo_id: int, n: int) -> dict[str, Any]:
    size = 32 if n == 0 else 64
    return {
        "url": f"{HOST}/api/v2/attachments/{photo_id + n + 1}.json",
        "id": photo_id + n + 1,
        "file_name": f"avatar_thumb_{size}.png",
        "content_url": f"{HOST}/system/photos/{photo_id}/avatar_thumb_{size}.png",
        "mapped_content_url": f"{HOST}/system/photos/{photo_id}/avatar_thumb_{size}.png",
        "content_type": "image/png",
        "size": 900 + 17 * n,
        "width": size,
        "height": size,
        "inline": False,
        "deleted": False,
    }


def make_user(
    user_id: int,
    *,
    name: str | None = None,
    role: str = "agent",
    role_type: int | None = 0,
    photo: bool = True,
    thumbnails: int = 2,
) -> dict[str, Any]:
    """A full Zendesk user record, as sideloaded in ``actors`` / ``users``."""
    photo_id = 9_100_000_000 + user_id * 10
    return {
        "id": user_id,
        "url": f"{HOST}/api/v2/users/{user_id}.json",
        "name": name if name is not None else f"Agent {user_id}",
        "email": f"agent{user_id}@northwind.example",
        "created_at": "2019-06-14T09:30:00Z",
        "updated_at": "2024-02-28T17:45:10Z",
        "time_zone": "Eastern Time (US & Canada)",
        "iana_time_zone": "America/New_York",
        "phone": "+1-555-0100" if user_id % 2 else None,
        "shared_phone_number": False if user_id % 2 else None,
        "photo": (
            {
                "url": f"{HOST}/api/v2/attachments/{photo_id}.json",
                "id": photo_id,
                "file_name": "avatar.png",
                "content_url": f"{HOST}/system/photos/{photo_id}/avatar.png",
                "mapped_content_url": f"{HOST}/system/photos/{photo_id}/avatar.png",
                "content_type": "image/png",
                "size": 4821,
                "width": 80,
                "height": 80,
                "inline": False,
                "deleted": False,
                "thumbnails": [make_thumbnail(photo_id, n) for n in range(thumbnails)],
            }
            if photo
            else None
        ),
        "locale_id": 1176,
        "locale": "en-GB",
        "organization_id": 360_000_123_456,
        "role": role,
        "verified": True,
        "external_id": f"emp-{user_id}",
        "tags": ["tier2", "billing"],
        "alias": "",
        "active": True,
        "shared": False,
        "shared_agent": False,
        "last_login_at": "2024-03-04T08:00:01Z",
        "two_factor_auth_enabled": None,
        "signature": f"Regards,\nAgent {user_id}",
        "details": "",
        "notes": "night shift",
        "role_type": role_type,
        "custom_role_id": 4_400_000_000_017 if role_type is not None else None,
        "moderator": role == "admin",
        "ticket_restriction": None if role == "admin" else "groups",
        "only_private_comments": False,
        "restricted_agent": role != "admin",
        "suspended": False,
        "default_group_id": 25_000_001,
        "report_csv": True,
        "chat_only": False,  # a field User does not declare
        "user_fields": {
            "department": "billing",
            "employee_number": 4412,
            "remote": True,
            "shift": None,
            "system::embeddable_last_seen": "2024-02-29T00:00:00+00:00",
        },
    }


TICKET = {"ticket": {"id": 15_192, "subject": "Invoice #88 is wrong"}}


def make_activity(
    activity_id: int,
    *,
    actor_id: int | None = 700,
    user_id: int | None = 800,
    kind: str = "assignment",
    created_at: str = "2024-03-05T10:11:12Z",
    actor: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    objects = {
        "assignment": TICKET,
        "comment": {"comment": {"value": "Refund issued, closing.", "public": False}},
        "priority_increase": {
            "change": {"field": "priority", "previous_value": "normal", "value": "urgent"}
        },
    }
    verbs = {
        "assignment": ("tickets.assignment", "assigned ticket #15192 to you."),
        "comment": ("tickets.comment", "commented on ticket #15192."),
        "priority_increase": ("tickets.priority_increase", "increased the priority of #15192."),
    }
    verb, title = verbs[kind]
    record: dict[str, Any] = {
        "url": f"{HOST}/api/v2/activities/{activity_id}.json",
        "id": activity_id,
        "title": f"Someone {title}",
        "verb": verb,
        "user_id": user_id,
        "actor_id": actor_id,
        "updated_at": created_at,
        "created_at": created_at,
        "object": objects[kind],
        "target": TICKET,
        "actor": actor,
        "user": user,
    }
    record.update(extra)
    return record


def page_body(
    activities: list[dict[str, Any]],
    *,
    actors: list[dict[str, Any]] | None = None,
    users: list[dict[str, Any]] | None = None,
) -> bytes:
    return msgspec.json.encode(
        {
            "activities": activities,
            "actors": actors or [],
            "users": users or [],
            "meta": {"has_more": False, "after_cursor": "AC", "before_cursor": "BC"},
            "links": {"next": None, "prev": None},
        }
    )


def decode(
    activities: list[dict[str, Any]],
    *,
    actors: list[dict[str, Any]] | None = None,
    users: list[dict[str, Any]] | None = None,
) -> ActivityPage:
    return p.decode_page(page_body(activities, actors=actors, users=users))


# --- scalar fields ----------------------------------------------------------------------------


def test_activity_scalar_fields() -> None:
    record = make_activity(
        12_936_268_530_194,
        actor_id=1_571_071_722,
        user_id=1_568_991_111,
        created_at="2024-03-05T10:11:12Z",
        updated_at="2024-03-05T12:41:12+02:30",
    )
    activity = decode([record]).activities[0]
    assert activity.id == 12_936_268_530_194
    assert activity.url == f"{HOST}/api/v2/activities/12936268530194.json"
    assert activity.verb == "tickets.assignment"
    assert activity.title == "Someone assigned ticket #15192 to you."
    assert activity.actor_id == 1_571_071_722
    assert activity.user_id == 1_568_991_111
    assert activity.created_at == EPOCH
    assert activity.created_at.tzinfo is not None
    assert activity.created_at.utcoffset() == timedelta(0)
    assert activity.updated_at is not None
    assert activity.updated_at.utcoffset() == timedelta(hours=2, minutes=30)
    assert activity.updated_at == datetime(2024, 3, 5, 10, 11, 12, tzinfo=UTC)


def test_activity_optional_fields_default() -> None:
    body = b'{"activities": [{"id": 3, "created_at": "2024-03-05T10:11:12Z"}]}'
    activity = p.decode_page(body).activities[0]
    assert activity.url is None
    assert activity.verb == ""
    assert activity.title == ""
    assert activity.actor_id is None
    assert activity.user_id is None
    assert activity.updated_at is None
    assert activity.actor is None
    assert activity.user is None
    assert activity.object == Content()
    assert activity.target == Content()


OFFSET_MINUTES = st.integers(min_value=-(14 * 60), max_value=14 * 60)
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)


@given(INSTANTS, OFFSET_MINUTES, st.booleans())
def test_timestamps_with_any_offset_decode_to_the_same_instant(
    instant: datetime, offset: int, micro: bool
) -> None:
    if not micro:
        instant = instant.replace(microsecond=0)
    local = instant.astimezone(timezone(timedelta(minutes=offset)))
    text = local.isoformat()
    activity = decode([make_activity(1, created_at=text)]).activities[0]
    assert activity.created_at == instant
    assert activity.created_at.utcoffset() == timedelta(minutes=offset)
    assert activity.updated_at == instant


# --- actor / user resolution ------------------------------------------------------------------


def test_actor_and_user_from_sideloads() -> None:
    actor, user = make_user(700, role="admin", role_type=4), make_user(800)
    page = decode([make_activity(1)], actors=[actor], users=[user])
    activity = page.activities[0]
    resolved = activity.actor
    assert isinstance(resolved, User)
    assert resolved.id == 700
    assert resolved.name == "Agent 700"
    assert resolved.role == "admin"
    assert resolved.role_type == 4
    assert resolved.email == "agent700@northwind.example"
    assert resolved.created_at == datetime(2019, 6, 14, 9, 30, tzinfo=UTC)
    assert resolved.last_login_at == datetime(2024, 3, 4, 8, 0, 1, tzinfo=UTC)
    assert resolved.tags == ("tier2", "billing")
    assert resolved.user_fields == actor["user_fields"]
    assert resolved.organization_id == 360_000_123_456
    assert isinstance(resolved.photo, Photo)
    assert resolved.photo.id == actor["photo"]["id"]
    assert resolved.photo.width == 80
    assert len(resolved.photo.thumbnails) == 2
    thumb = resolved.photo.thumbnails[1]
    assert isinstance(thumb, Thumbnail)
    assert thumb.width == 64
    assert thumb.content_type == "image/png"
    assert thumb.content_url == actor["photo"]["thumbnails"][1]["content_url"]
    assert activity.user is not None
    assert activity.user.id == 800
    assert activity.user.role_type == 0
    assert activity.user.phone is None


def test_sideload_wins_over_inline() -> None:
    inline = make_user(700, name="Inline Name")
    sideloaded = make_user(700, name="Sideloaded Name")
    page = decode([make_activity(1, actor=inline)], actors=[sideloaded])
    assert page.activities[0].actor is not None
    assert page.activities[0].actor.name == "Sideloaded Name"


def test_users_sideload_serves_actors_too() -> None:
    # One index per page: a record in either array resolves either role.
    page = decode(
        [make_activity(1, actor_id=800, user_id=700)],
        actors=[make_user(700)],
        users=[make_user(800)],
    )
    activity = page.activities[0]
    assert activity.actor is not None and activity.actor.id == 800
    assert activity.user is not None and activity.user.id == 700


def test_first_record_of_an_id_wins_across_sideloads() -> None:
    page = decode(
        [make_activity(1)],
        actors=[make_user(700, name="From actors")],
        users=[make_user(700, name="From users"), make_user(800)],
    )
    assert page.user(700) is not None
    assert page.user(700).name == "From actors"  # type: ignore[union-attr]


def test_inline_record_when_no_sideload() -> None:
    page = decode([make_activity(1, actor=make_user(700), user=make_user(800, photo=False))])
    activity = page.activities[0]
    assert activity.actor is not None
    assert activity.actor.name == "Agent 700"
    assert activity.actor.photo is not None
    assert activity.user is not None
    assert activity.user.photo is None


def test_no_record_gives_none() -> None:
    page = decode([make_activity(1)], actors=[make_user(999)])
    activity = page.activities[0]
    assert activity.actor is None
    assert activity.user is None


def test_null_ids_give_none() -> None:
    activity = decode([make_activity(1, actor_id=None, user_id=None)]).activities[0]
    assert activity.actor is None
    assert activity.user is None


def test_system_actor_without_record() -> None:
    page = decode([make_activity(1, actor_id=-1)], users=[make_user(800)])
    activity = page.activities[0]
    assert activity.actor is SYSTEM_USER
    assert zdactivity.SYSTEM_USER.id == -1
    assert SYSTEM_USER.name == "Zendesk"
    assert SYSTEM_USER.role == "system"
    assert activity.user is not None and activity.user.id == 800
    assert page.user(-1) is SYSTEM_USER


def test_system_actor_with_a_record() -> None:
    record = make_user(-1, name="Automation", role="admin", photo=False)
    sideloaded = decode([make_activity(1, actor_id=-1)], actors=[record]).activities[0]
    assert sideloaded.actor is not None
    assert sideloaded.actor is not SYSTEM_USER
    assert sideloaded.actor.name == "Automation"
    inline = decode([make_activity(1, actor_id=-1, actor=record)]).activities[0]
    assert inline.actor is not None
    assert inline.actor.name == "Automation"


def test_page_user_lookup() -> None:
    page = decode(
        [make_activity(1), make_activity(2, actor_id=701)],
        actors=[make_user(700), make_user(701)],
        users=[make_user(800)],
    )
    assert page.user(800) is not None
    assert page.user(800).email == "agent800@northwind.example"  # type: ignore[union-attr]
    assert page.user(12345) is None
    assert page.user(-1) is SYSTEM_USER
    # the same object as the activities resolve to
    assert page.user(701) is page.activities[1].actor
    assert page.activities[0].actor is page.user(700)


def test_page_user_finds_inline_only_records_before_any_read() -> None:
    page = decode([make_activity(1, actor=make_user(700), user=make_user(800))])
    found = page.user(700)
    assert found is not None
    assert found.name == "Agent 700"


# --- decode once per page ---------------------------------------------------------------------


def test_each_distinct_user_decoded_once_per_page() -> None:
    # Decoding makes a new object each time: one object per id means one decode per id.
    actor_ids = [700 + i for i in range(7)]
    activities = [
        make_activity(
            10_000 + i,
            actor_id=actor_ids[i % 7],
            user_id=800 + i % 3,
            kind=("assignment", "comment", "priority_increase")[i % 3],
            actor=make_user(actor_ids[i % 7]),  # inline copies too, as Zendesk sends
            user=make_user(800 + i % 3),
        )
        for i in range(100)
    ]
    cache = models.UserCache()
    body = page_body(
        activities,
        actors=[make_user(i) for i in actor_ids],
        users=[make_user(800 + i) for i in range(3)],
    )
    page = p.decode_page(body, cache=cache)
    assert len(cache) == 0  # nothing decoded before a read
    first_seen: dict[int, User] = {}
    for activity in page:
        for user in (activity.actor, activity.user):
            assert user is not None
            assert first_seen.setdefault(user.id, user) is user
    assert len(first_seen) == 10
    assert len(cache) == 10  # the sideloaded records only: no inline copy was decoded
    # a second pass returns the very same objects
    for activity in page:
        assert activity.actor is first_seen[activity.actor_id]  # type: ignore[index]
        assert activity.user is first_seen[activity.user_id]  # type: ignore[index]
    assert len(cache) == 10


def test_inline_only_users_decoded_once_per_page() -> None:
    activities = [
        make_activity(i, actor_id=700 + i % 4, actor=make_user(700 + i % 4), user_id=None)
        for i in range(1, 41)
    ]
    page = decode(activities)
    actors = [a.actor for a in page]
    assert len({id(a) for a in actors}) == 4
    assert {a.id for a in actors if a is not None} == {700, 701, 702, 703}


def test_pages_share_recently_decoded_users() -> None:
    cache = models.UserCache()
    body = page_body([make_activity(1)], actors=[make_user(700)])
    one, two = p.decode_page(body, cache=cache), p.decode_page(body, cache=cache)
    assert one.activities[0].actor is two.activities[0].actor  # byte-identical: decoded once
    assert len(cache) == 1
    changed = page_body([make_activity(1)], actors=[make_user(700, name="Renamed")])
    three = p.decode_page(changed, cache=cache)
    actor = three.activities[0].actor
    assert actor is not None and actor.name == "Renamed"  # other bytes: decoded again
    assert actor is not one.activities[0].actor
    assert len(cache) == 2


def test_recent_users_are_bounded() -> None:
    cache = models.UserCache()
    size = cache.size
    first: dict[int, User] = {}
    for uid in range(size + 10):
        body = page_body([make_activity(1, actor_id=uid)], actors=[make_user(uid)])
        actor = p.decode_page(body, cache=cache).activities[0].actor
        assert actor is not None
        first[uid] = actor
    assert len(cache) == size
    for uid, evicted in ((0, True), (size + 9, False)):
        body = page_body([make_activity(1, actor_id=uid)], actors=[make_user(uid)])
        again = p.decode_page(body, cache=cache).activities[0].actor
        assert again == first[uid]
        assert (again is not first[uid]) is evicted  # the oldest was evicted: decoded again
    assert len(cache) == size


ID_POOL = st.lists(st.integers(min_value=1, max_value=2**53), min_size=1, max_size=12, unique=True)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_decode_once_property(data: st.DataObject) -> None:
    pool = data.draw(ID_POOL, label="user ids")
    sideloaded = data.draw(st.sets(st.sampled_from(pool)), label="sideloaded")
    inlined = data.draw(st.sets(st.sampled_from(pool)), label="inlined")
    n = data.draw(st.integers(min_value=0, max_value=100), label="activities")
    picks = data.draw(
        st.lists(st.tuples(st.sampled_from(pool), st.sampled_from(pool)), min_size=n, max_size=n)
    )
    activities = [
        make_activity(
            i + 1,
            actor_id=a,
            user_id=u,
            actor=make_user(a, name="inline") if a in inlined else None,
            user=make_user(u, name="inline") if u in inlined else None,
        )
        for i, (a, u) in enumerate(picks)
    ]
    split = len(sideloaded) // 2
    ordered = sorted(sideloaded)
    cache = models.UserCache()  # keeps each record decoded, by its bytes
    body = page_body(
        activities,
        actors=[make_user(i, name="side") for i in ordered[:split]],
        users=[make_user(i, name="side") for i in ordered[split:]],
    )
    page = p.decode_page(body, cache=cache)
    assert len(cache) == 0
    resolved: dict[int, User] = {}
    for activity, (a, u) in zip(page, picks, strict=True):
        for wanted, got in ((a, activity.actor), (u, activity.user)):
            if wanted in sideloaded:
                assert got is not None and got.name == "side"
            if got is None:
                assert wanted not in sideloaded
                continue
            assert got.id == wanted
            assert resolved.setdefault(wanted, got) is got  # one object per id
    assert len(cache) == len(resolved)  # one record decoded per id read, none other
    assert len(cache) <= len(pool)


# --- laziness and errors ----------------------------------------------------------------------


def test_sideload_records_are_decoded_lazily() -> None:
    cache = models.UserCache()
    body = page_body(
        [make_activity(i) for i in range(1, 6)],
        actors=[make_user(700), make_user(701)],
        users=[make_user(800)],
    )
    page = p.decode_page(body, cache=cache)
    assert len(cache) == 0
    assert page.activities[0].actor is not None
    assert len(cache) == 1  # only the user asked for
    for activity in page:
        assert activity.actor is not None
        assert activity.user is not None
    assert len(cache) == 2  # 701 is never asked for


def test_malformed_sideload_id_raises_only_when_read() -> None:
    actors = [make_user(700), make_user(701), {"id": "seven-oh-two", "name": "broken"}]
    page = decode([make_activity(1)], actors=actors)
    assert page.activities[0].id == 1
    assert page.activities[0].object.ticket is not None  # the rest of the page is fine
    with pytest.raises(DecodeError) as info:
        _ = page.activities[0].actor
    assert info.value.path == "$.actors[2].id"
    assert "$.actors[2].id" in str(info.value)
    assert "seven-oh-two" in info.value.snippet


def test_malformed_sideload_record_raises_only_for_that_user() -> None:
    broken = make_user(801)
    broken["photo"]["thumbnails"][1]["width"] = "wide"
    page = decode(
        [make_activity(1, user_id=800), make_activity(2, user_id=801)],
        actors=[make_user(700)],
        users=[make_user(800), broken],
    )
    first, second = page.activities
    assert first.user is not None and first.user.id == 800
    assert second.actor is not None
    with pytest.raises(DecodeError) as info:
        _ = second.user
    assert info.value.path == "$.users[1].photo.thumbnails[1].width"


@pytest.mark.parametrize(
    ("patch", "suffix"),
    [
        ({"role_type": "admin"}, ".role_type"),
        ({"tags": "vip"}, ".tags"),
        ({"created_at": "yesterday"}, ".created_at"),
        ({"id": None}, ".id"),
    ],
)
def test_malformed_inline_record_names_the_activity(patch: dict[str, Any], suffix: str) -> None:
    inline = make_user(700) | patch
    page = decode([make_activity(55, actor=inline)])
    with pytest.raises(DecodeError) as info:
        _ = page.activities[0].actor
    assert info.value.path == f"$.activities[id=55].actor{suffix}"


def test_sideload_that_is_not_an_object() -> None:
    body = msgspec.json.encode(
        {"activities": [make_activity(1)], "actors": [make_user(700), None], "users": []}
    )
    page = p.decode_page(body)
    with pytest.raises(DecodeError) as info:
        _ = page.activities[0].actor
    assert info.value.path == "$.actors[1]"


# --- object / target --------------------------------------------------------------------------


def test_ticket_content() -> None:
    activity = decode([make_activity(1, kind="assignment")]).activities[0]
    content = activity.object
    assert content.kind == "ticket"
    assert content.ticket == Ticket(id=15_192, subject="Invoice #88 is wrong")
    assert content.comment is None
    assert content.change is None
    assert content.data == TICKET
    assert activity.target == content


def test_comment_content() -> None:
    content = decode([make_activity(1, kind="comment")]).activities[0].object
    assert content.kind == "comment"
    assert content.comment == Comment(value="Refund issued, closing.", public=False)
    assert content.ticket is None
    assert content.data == {"comment": {"value": "Refund issued, closing.", "public": False}}


def test_change_content_keeps_everything() -> None:
    change = {
        "field": "priority",
        "previous_value": "normal",
        "value": "urgent",
        "via": {"channel": "rule", "id": 360_001},
    }
    content = decode([make_activity(1, object={"change": change})]).activities[0].object
    assert content.kind == "change"
    assert content.change == Change(field="priority", previous_value="normal", value="urgent")
    assert content.data == {"change": change}  # undeclared keys kept in data


def test_change_with_structured_values() -> None:
    change = {"field": "tags", "previous_value": ["a"], "value": ["a", "b"]}
    content = decode([make_activity(1, object={"change": change})]).activities[0].object
    assert content.change is not None
    assert content.change.previous_value == ["a"]
    assert content.change.value == ["a", "b"]


def test_unknown_content_kind_is_kept() -> None:
    sla = {"sla_breach": {"policy_id": 77, "metric": "first_reply_time", "minutes": [15, 30]}}
    activity = decode([make_activity(1, object=sla, target=sla)]).activities[0]
    for content in (activity.object, activity.target):
        assert content.kind == "sla_breach"
        assert content.data == sla
        assert content.ticket is None and content.comment is None and content.change is None


def test_content_with_several_keys() -> None:
    obj = {"ticket": {"id": 5, "subject": "x"}, "comment": {"value": "hi", "public": True}}
    content = decode([make_activity(1, object=obj)]).activities[0].object
    assert content.kind == "ticket"
    assert content.ticket == Ticket(id=5, subject="x")
    assert content.comment == Comment(value="hi", public=True)
    assert content.data == obj


@pytest.mark.parametrize("value", [{}, None])
def test_empty_and_null_content(value: Any) -> None:
    activity = decode([make_activity(1, object=value, target=value)]).activities[0]
    for content in (activity.object, activity.target):
        assert content == Content()
        assert content.kind == ""
        assert content.data == {}


def test_missing_content() -> None:
    record = make_activity(1)
    del record["object"], record["target"]
    activity = decode([record]).activities[0]
    assert activity.object == Content()
    assert activity.target == Content()


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        ({"ticket": {"id": "x"}}, "$.activities[id=9].object.ticket.id"),
        ({"ticket": {"subject": "no id"}}, "$.activities[id=9].object.ticket"),
        ({"comment": {"public": "yes"}}, "$.activities[id=9].object.comment.public"),
        ("a string", "$.activities[id=9].object"),
        ([1, 2], "$.activities[id=9].object"),
    ],
)
def test_malformed_content_raises_when_read(obj: Any, path: str) -> None:
    activity = decode([make_activity(9, object=obj)]).activities[0]
    assert activity.target.ticket is not None  # the target is unaffected
    with pytest.raises(DecodeError) as info:
        _ = activity.object
    assert info.value.path == path


# --- detach, equality, repr -------------------------------------------------------------------


def test_detach_keeps_what_it_needs() -> None:
    page = decode(
        [make_activity(1, kind="comment"), make_activity(2, actor_id=-1, user_id=None)],
        actors=[make_user(700)],
        users=[make_user(800)],
    )
    first, second = page.activities
    d1, d2 = first.detach(), second.detach()
    assert d1.actor == first.actor
    assert d1.actor is first.actor  # the decoded user is carried over, not re-decoded
    assert d1.user == first.user
    assert d1.object == first.object
    assert d1.object.comment == Comment(value="Refund issued, closing.", public=False)
    assert d1.target == first.target
    assert (d1.id, d1.verb, d1.title, d1.created_at) == (
        first.id,
        first.verb,
        first.title,
        first.created_at,
    )
    assert d2.actor is SYSTEM_USER
    assert d2.user is None
    assert page.user(700) is first.actor  # the page still resolves through its index


def test_detach_without_records() -> None:
    activity = decode([make_activity(1)]).activities[0]
    detached = activity.detach()
    assert detached.actor is None
    assert detached.user is None


def test_detach_releases_the_page_body() -> None:
    body = page_body(
        [make_activity(i, kind="comment", actor=make_user(700)) for i in range(1, 4)],
        users=[make_user(800)],
    )
    baseline = sys.getrefcount(body)
    page = p.decode_page(body)
    assert sys.getrefcount(body) > baseline  # raw slices point into the body
    detached = [a.detach() for a in page]
    del page
    gc.collect()
    assert sys.getrefcount(body) == baseline
    assert [d.object.kind for d in detached] == ["comment"] * 3
    assert all(d.actor is not None and d.actor.id == 700 for d in detached)
    assert all(d.user is not None and d.user.id == 800 for d in detached)


def test_detached_copy_equals_original() -> None:
    activity = decode([make_activity(1, actor=make_user(700))]).activities[0]
    assert activity.detach() == activity


def test_equality_ignores_the_page_index() -> None:
    body = page_body([make_activity(1), make_activity(2)], actors=[make_user(700)])
    one, two = p.decode_page(body), p.decode_page(body)
    assert one.activities == two.activities
    _ = one.activities[0].actor  # changes the index state of one page only
    _ = one.activities[0].object  # and caches its content
    assert one.activities[0] == two.activities[0]
    assert one.activities[0] != one.activities[1]
    standalone = msgspec.structs.replace(one.activities[0])  # a copy without the page's index
    assert standalone.actor is None  # the actor was sideloaded: not reachable without the page
    assert standalone == two.activities[0]


def test_equality_sees_real_differences() -> None:
    base = make_activity(1)
    [a, b, c] = decode([base, base | {"title": "other"}, base | {"target": {}}]).activities
    assert a != b
    assert a != c
    assert a.__eq__("not an activity") is NotImplemented
    assert a != "not an activity"


def test_activity_repr() -> None:
    record = make_activity(
        42, actor_id=-1, user_id=800, created_at="2024-03-05T10:11:12Z", actor=make_user(-1)
    )
    activity = decode([record], users=[make_user(800)]).activities[0]
    assert repr(activity) == (
        "Activity(id=42, verb='tickets.assignment', "
        "title='Someone assigned ticket #15192 to you.', actor_id=-1, user_id=800, "
        "created_at=2024-03-05T10:11:12+00:00)"
    )
    assert "agent800" not in repr(activity)


def test_page_basics() -> None:
    page = decode([make_activity(1), make_activity(2)])
    assert len(page) == 2
    assert [a.id for a in page] == [1, 2]
    assert isinstance(page, CursorPage)
    assert repr(page) == "CursorPage(2 activities, has_more=False, after_cursor='AC')"
    empty = ActivityPage([], has_more=False)
    assert len(empty) == 0
    assert empty.user(5) is None
    assert empty.user(-1) is SYSTEM_USER


def test_standalone_activity() -> None:
    activity = Activity(id=7, created_at=EPOCH, actor_id=-1, user_id=3)
    assert activity.actor is SYSTEM_USER
    assert activity.user is None
    assert activity.object == Content()


def test_users_are_frozen() -> None:
    user = decode([make_activity(1)], actors=[make_user(700)]).activities[0].actor
    assert user is not None
    with pytest.raises(AttributeError):
        user.name = "changed"  # type: ignore[misc]


# --- ActivityCount ----------------------------------------------------------------------------


def test_activity_count() -> None:
    count = ActivityCount(value=102, refreshed_at=EPOCH)
    assert count.value == 102
    assert count.refreshed_at == EPOCH
    assert ActivityCount(value=100_000).refreshed_at is None
    assert count == p.decode_count(
        b'{"count": {"value": 102, "refreshed_at": "2024-03-05T10:11:12Z"}}'
    )
    with pytest.raises(AttributeError):
        count.value = 5  # type: ignore[misc]


# --- encoding -----------------------------------------------------------------------------------


def test_json_encode_gives_the_activity_as_sent() -> None:
    actor = make_user(700)
    record = make_activity(1, kind="comment", actor=actor, updated_at="2024-03-05T12:41:12+02:30")
    page = decode([record], actors=[make_user(700, name="Sideloaded")], users=[make_user(800)])
    activity = page.activities[0]
    expected = msgspec.json.encode(record)
    assert msgspec.json.decode(msgspec.json.encode(activity)) == msgspec.json.decode(expected)
    # reading the lazy attributes changes nothing that is encoded
    assert activity.actor is not None and activity.actor.name == "Sideloaded"
    _ = activity.user, activity.object, activity.target
    assert msgspec.json.decode(msgspec.json.encode(activity)) == msgspec.json.decode(expected)
    assert list(msgspec.json.decode(msgspec.json.encode(activity))) == [
        "id", "url", "verb", "title", "actor_id", "user_id", "created_at", "updated_at",
        "object", "target", "actor", "user",
    ]  # fmt: skip


def test_to_builtins_gives_the_fields_as_sent_or_with_resolved_users() -> None:
    record = make_activity(1, actor=make_user(700))
    page = decode([record], actors=[make_user(700, name="Sideloaded")], users=[make_user(800)])
    activity = page.activities[0]
    plain = activity.to_builtins()
    assert plain == msgspec.json.decode(msgspec.json.encode(record))
    assert plain["actor"]["name"] == "Agent 700"  # the inline record, as sent
    assert plain["user"] is None
    resolved = activity.to_builtins(resolve_users=True)
    assert resolved["actor"] == msgspec.to_builtins(activity.actor)
    assert resolved["actor"]["name"] == "Sideloaded"
    assert resolved["user"]["id"] == 800
    assert resolved["created_at"] == "2024-03-05T10:11:12Z"
    assert {k: v for k, v in resolved.items() if k not in ("actor", "user")} == {
        k: v for k, v in plain.items() if k not in ("actor", "user")
    }
    system = Activity(id=2, created_at=EPOCH, actor_id=-1)
    assert system.to_builtins(resolve_users=True)["actor"] == msgspec.to_builtins(SYSTEM_USER)
    assert system.to_builtins()["actor"] is None


def test_detached_activity_encodes_and_keeps_its_resolved_users() -> None:
    record = make_activity(1, kind="comment", actor=make_user(700))
    activity = decode([record], users=[make_user(800)]).activities[0]
    detached = activity.detach()
    data = msgspec.json.decode(msgspec.json.encode(detached))
    assert data["actor"] is None and data["user"] is None  # the raw inline records are let go
    assert data["object"] == record["object"]
    with_users = detached.to_builtins(resolve_users=True)
    assert with_users == activity.to_builtins(resolve_users=True)


def test_malformed_inline_record_in_to_builtins_is_a_decode_error() -> None:
    activity = msgspec.json.decode(
        b'{"id": 5, "created_at": "2024-03-05T10:11:12Z", "object": {"a": 1}}', type=Activity
    )
    assert activity.to_builtins()["object"] == {"a": 1}
    broken = msgspec.structs.replace(activity, _object=msgspec.Raw(b"{not json"))
    with pytest.raises(DecodeError) as info:
        broken.to_builtins()
    assert info.value.path == "$.activities[id=5]"


def test_object_and_target_are_decoded_once() -> None:
    activity = decode([make_activity(1, kind="comment")]).activities[0]
    assert activity.object is activity.object
    assert activity.target is activity.target
    assert activity.detach().object is activity.object  # carried over, not decoded again


def test_copies_and_pickles_keep_the_pages_users() -> None:
    import copy
    import pickle

    page = decode([make_activity(1)], actors=[make_user(700)], users=[make_user(800)])
    activity = page.activities[0]
    for clone in (copy.copy(activity), copy.deepcopy(activity)):
        assert clone == activity
        assert clone.actor == activity.actor and clone.actor is not None
    restored = pickle.loads(pickle.dumps(activity))
    assert restored == activity
    assert restored.actor == activity.actor and restored.actor is not None
    assert restored.user == activity.user and restored.user is not None
    detached = pickle.loads(pickle.dumps(activity.detach()))
    assert detached.actor == activity.actor and detached.object == activity.object


def test_standalone_activity_resolves_its_inline_records_once() -> None:
    activity = msgspec.json.decode(
        msgspec.json.encode(make_activity(3, actor=make_user(700), user=None)), type=Activity
    )
    assert activity.actor is not None and activity.actor.id == 700
    assert activity.actor is activity.actor
    assert activity.user is None


# --- page types ---------------------------------------------------------------------------------


def test_cursor_and_offset_pages_are_distinct_types() -> None:
    cursor = decode([make_activity(1)])
    assert isinstance(cursor, CursorPage) and isinstance(cursor, ActivityPage)
    assert (cursor.has_more, cursor.after_cursor, cursor.before_cursor) == (False, "AC", "BC")
    assert (cursor.count, cursor.next_page) == (None, None)
    body = msgspec.json.encode(
        {"activities": [make_activity(1)], "count": 250, "next_page": f"{HOST}/a?page=2"}
    )
    offset = p.decode_page(body, request_id="r1")
    assert isinstance(offset, OffsetPage) and isinstance(offset, ActivityPage)
    assert not isinstance(offset, CursorPage)
    assert (offset.count, offset.next_page, offset.has_more) == (250, f"{HOST}/a?page=2", True)
    assert (offset.after_cursor, offset.before_cursor, offset.resume_token) == (None, None, None)
    assert offset.request_id == "r1"
    assert repr(offset) == f"OffsetPage(1 activities, count=250, next_page='{HOST}/a?page=2')"
    last = OffsetPage([], count=250)
    assert last.has_more is False


def test_protocol_and_engine_use_no_private_names_of_models() -> None:
    import ast
    from pathlib import Path

    package = Path(zdactivity.__file__).parent
    for module in ("protocol.py", "sideloads.py", "client.py", "pagination.py"):
        tree = ast.parse((package / module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "models":
                assert not [a.name for a in node.names if a.name.startswith("_")], module


def test_standalone_activity_shares_a_record_named_in_both_roles() -> None:
    record = make_activity(4, actor_id=700, user_id=700, actor=make_user(700), user=None)
    activity = msgspec.json.decode(msgspec.json.encode(record), type=Activity)
    assert activity.actor is not None
    assert activity.user is activity.actor  # the actor's inline record, decoded once

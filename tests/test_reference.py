"""The recorded real responses (../shared/reference/recorded/activities-2023.json) decode whole.

The file sits beside the repository (CI has it there); without it this module is skipped. It is
read in place, never copied into the repository.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from zdactivity import Activity, ActivityPage, Content, User
from zdactivity import protocol as p
from zdactivity.models import CursorPage, OffsetPage, Photo, Thumbnail

RECORDED = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "reference"
    / "recorded"
    / "activities-2023.json"
)
if not RECORDED.is_file():
    pytest.skip(f"recorded reference responses not found at {RECORDED}", allow_module_level=True)

ITEMS: list[dict[str, Any]] = json.loads(RECORDED.read_text(encoding="utf-8"))


def _item_id(i: int, item: dict[str, Any]) -> str:
    params = parse_qs(urlsplit(item["request"]["uri"]).query)
    if "page[size]" not in params:
        return f"{i}-offset"
    return f"{i}-size{params['page[size]'][0]}" + ("-after" if "page[after]" in params else "")


IDS = [_item_id(i, item) for i, item in enumerate(ITEMS)]
DATETIME_FIELDS = {"created_at", "updated_at", "last_login_at", "refreshed_at"}


def body_bytes(item: dict[str, Any]) -> bytes:
    return msgspec.json.encode(item["body"])


def joined_headers(item: dict[str, Any]) -> dict[str, str]:
    return {name: ", ".join(values) for name, values in item["headers"].items()}


def query(item: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(item["request"]["uri"]).query).items()}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def jsonish(value: Any) -> Any:
    """``msgspec.to_builtins`` output with tuples as lists, as JSON would have them."""
    if isinstance(value, tuple | list):
        return [jsonish(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonish(v) for k, v in value.items()}
    return value


def declared(struct: type[msgspec.Struct]) -> dict[str, str]:
    """Attribute name -> JSON key, for every field a Struct declares."""
    return {f.name: f.encode_name for f in msgspec.structs.fields(struct)}


def assert_struct_matches(obj: msgspec.Struct, data: dict[str, Any], where: str) -> None:
    """Every key of ``data`` that ``obj``'s type declares has the same value on ``obj``."""
    builtins = jsonish(msgspec.to_builtins(obj))
    for attr, key in declared(type(obj)).items():
        if key not in data:
            continue
        value, expected = getattr(obj, attr), data[key]
        if isinstance(value, Photo):
            assert_struct_matches(value, expected, f"{where}.{key}")
        elif key == "thumbnails":
            assert len(value) == len(expected), f"{where}.{key}"
            for i, (thumb, raw) in enumerate(zip(value, expected, strict=True)):
                assert isinstance(thumb, Thumbnail)
                assert_struct_matches(thumb, raw, f"{where}.{key}[{i}]")
        elif key in DATETIME_FIELDS and expected is not None:
            assert isinstance(value, datetime), f"{where}.{key}"
            assert value.tzinfo is not None, f"{where}.{key}"
            assert value == parse_time(expected), f"{where}.{key}"
        else:
            assert builtins[key] == expected, f"{where}.{key}"


def assert_user_matches(user: User | None, record: dict[str, Any], where: str) -> None:
    assert isinstance(user, User), where
    assert user.id == record["id"]
    assert_struct_matches(user, record, where)
    # nothing declared was silently dropped: the declared keys present in the JSON are all set
    present = set(declared(User).values()) & set(record)
    assert len(present) >= 30, f"{where}: the recorded record should exercise most of User"


def first_records(body: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The sideloaded record the page index resolves for each id (actors before users)."""
    records: dict[int, dict[str, Any]] = {}
    for name in ("actors", "users"):
        for record in body.get(name, []):
            records.setdefault(record["id"], record)
    return records


def test_the_recording_has_what_we_expect() -> None:
    assert len(ITEMS) == 7
    assert all(item["status"] == 200 for item in ITEMS)
    assert sum(1 for item in ITEMS if "meta" in item["body"]) == 6
    assert sum(1 for item in ITEMS if "count" in item["body"]) == 1


@pytest.fixture(params=range(len(ITEMS)), ids=IDS)
def item(request: pytest.FixtureRequest) -> dict[str, Any]:
    index: int = request.param
    return ITEMS[index]


def test_content_type_is_json(item: dict[str, Any]) -> None:
    p.check_content_type(joined_headers(item), body_bytes(item))


def test_activities_keep_every_declared_field(item: dict[str, Any]) -> None:
    body = item["body"]
    page = p.decode_page(body_bytes(item))
    assert len(page) == len(body["activities"])
    for activity, raw in zip(page, body["activities"], strict=True):
        assert isinstance(activity, Activity)
        where = f"$.activities[id={raw['id']}]"
        assert activity.id == raw["id"]
        assert activity.url == raw["url"]
        assert activity.verb == raw["verb"]
        assert activity.title == raw["title"]
        assert activity.actor_id == raw["actor_id"]
        assert activity.user_id == raw["user_id"]
        assert activity.created_at == parse_time(raw["created_at"])
        assert activity.created_at.tzinfo is not None
        assert activity.updated_at == parse_time(raw["updated_at"])
        for name in ("object", "target"):
            content = getattr(activity, name)
            assert isinstance(content, Content)
            assert content.data == raw[name], f"{where}.{name}"
            assert content.kind == next(iter(raw[name]))
            typed = getattr(content, content.kind)
            assert typed is not None, f"{where}.{name}: {content.kind} should be typed"
            assert_struct_matches(typed, raw[name][content.kind], f"{where}.{name}")


def test_sideloaded_users_decode_losslessly(item: dict[str, Any]) -> None:
    body = item["body"]
    page = p.decode_page(body_bytes(item))
    records = first_records(body)
    assert len(records) == len(body["actors"]) + len(body["users"])  # no id in both here
    for user_id, record in records.items():
        assert_user_matches(page.user(user_id), record, f"sideloaded user {user_id}")
    for activity, raw in zip(page, body["activities"], strict=True):
        assert_user_matches(activity.actor, records[raw["actor_id"]], "actor")
        assert_user_matches(activity.user, records[raw["user_id"]], "user")
        assert activity.actor is page.user(raw["actor_id"])


def test_inline_users_decode_losslessly(item: dict[str, Any]) -> None:
    body = dict(item["body"], actors=[], users=[])  # force the inline records to be used
    page = p.decode_page(msgspec.json.encode(body))
    for activity, raw in zip(page, body["activities"], strict=True):
        assert_user_matches(activity.actor, raw["actor"], f"inline actor of {raw['id']}")
        assert_user_matches(activity.user, raw["user"], f"inline user of {raw['id']}")
        assert activity.actor is not None
        assert activity.actor.photo is not None
        assert activity.actor.photo.thumbnails  # photo thumbnails came through


def test_detached_activities_keep_the_recorded_data(item: dict[str, Any]) -> None:
    body = item["body"]
    page = p.decode_page(body_bytes(item))
    records = first_records(body)
    for activity, raw in zip([a.detach() for a in page], body["activities"], strict=True):
        assert_user_matches(activity.actor, records[raw["actor_id"]], "detached actor")
        assert activity.object.data == raw["object"]


def test_activities_encode_back_to_the_recorded_json(item: dict[str, Any]) -> None:
    body = item["body"]
    page = p.decode_page(body_bytes(item))
    for activity, raw in zip(page, body["activities"], strict=True):
        _ = activity.actor, activity.object  # reading changes nothing that is encoded
        encoded = msgspec.json.decode(msgspec.json.encode(activity))
        assert set(encoded) == set(raw)
        for key, value in raw.items():
            if key in ("created_at", "updated_at"):
                assert parse_time(encoded[key]) == parse_time(value)
            else:
                assert encoded[key] == value, key
        assert activity.to_builtins() == encoded
        resolved = activity.to_builtins(resolve_users=True)
        assert resolved["actor"] == msgspec.to_builtins(activity.actor)
        assert resolved["actor"]["id"] == raw["actor_id"]


def test_pagination_fields(item: dict[str, Any]) -> None:
    body = item["body"]
    page = p.decode_page(body_bytes(item), request_id="given")
    assert page.request_id == "given"
    assert isinstance(page, CursorPage if "meta" in body else OffsetPage)
    if "meta" in body:
        meta = body["meta"]
        assert page.has_more is meta["has_more"]
        assert page.after_cursor == meta["after_cursor"]
        assert page.before_cursor == meta["before_cursor"]
        assert page.count is None
        assert page.next_page is None
    else:
        assert page.count == body["count"]
        assert page.next_page == body["next_page"]
        assert page.has_more is (body["next_page"] is not None)
        assert page.after_cursor is None


def test_headers(item: dict[str, Any]) -> None:
    raw = item["headers"]
    headers = joined_headers(item)
    limits = p.rate_limit_from_headers(headers)
    assert limits.limit == int(raw["x-rate-limit"][0])
    assert limits.limit == int(raw["rate-limit"][0])
    assert limits.remaining == int(raw["x-rate-limit-remaining"][0])
    assert limits.reset == float(raw["rate-limit-reset"][0])
    assert len(raw["x-request-id"]) == 2  # sent twice with one value
    assert p.request_id_from_headers(headers) == raw["x-request-id"][0]
    assert "," not in (p.request_id_from_headers(headers) or "")


def test_the_trailing_empty_page_ends_the_listing() -> None:
    empty = [i for i in ITEMS if "meta" in i["body"] and not i["body"]["activities"]]
    assert len(empty) == 1
    item = empty[0]
    page = p.decode_page(body_bytes(item))
    assert len(page) == 0
    assert page.has_more is False
    assert page.after_cursor is None
    assert page.before_cursor is None
    request = p.list_request(page_size=1, cursor=query(item)["page[after]"])
    assert p.next_request(request, page, set()) is None


def test_next_request_follows_the_recorded_cursor_chain() -> None:
    """The page[size]=1 walk: each next request carries the cursor the recording sent next."""
    chain = [i for i in ITEMS if query(i).get("page[size]") == "1"]
    assert len(chain) == 4
    request = p.list_request(page_size=1)
    seen: set[str] = set()
    pages: list[ActivityPage] = []
    for current, following in zip(chain, [*chain[1:], None], strict=True):
        assert request.param("page[after]") == query(current).get("page[after]")
        page = p.decode_page(body_bytes(current))
        pages.append(page)
        if request.param("page[after]"):
            seen.add(request.param("page[after]") or "")
        nxt = p.next_request(request, page, seen)
        if following is None:
            assert nxt is None
            break
        assert nxt is not None
        assert nxt.param("page[size]") == "1"
        assert nxt.param("page[after]") == query(following)["page[after]"]
        # built on the configured host, not the canonical host of links.next
        assert nxt.path == "/api/v2/activities"
        request = nxt
    ids = [a.id for page in pages for a in page]
    full = next(i for i in ITEMS if query(i).get("page[size]") == "100")
    assert ids == [a["id"] for a in full["body"]["activities"]]


def test_offset_response_ends_the_listing() -> None:
    item = next(i for i in ITEMS if "count" in i["body"])
    page = p.decode_page(body_bytes(item))
    assert p.next_request(p.list_request(pagination="offset"), page, set()) is None

"""Pure protocol functions: request building, response decoding, headers, error choice.

No event loop and no server: every function in ``zdactivity.protocol`` is a plain function of its
arguments.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zdactivity import (
    SYSTEM_USER,
    APIError,
    AuthenticationError,
    DecodeError,
    InvalidRequestError,
    NotFoundError,
    PaginationDepthError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from zdactivity import protocol as p
from zdactivity.models import ActivityPage

BIG_ID = 12_936_268_530_194  # > 2**32, like real activity ids
MAX_INT64 = 2**63 - 1

# --- helpers ----------------------------------------------------------------------------------


def activity_json(activity_id: int = 1, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": activity_id,
        "url": f"https://example.zendesk.com/api/v2/activities/{activity_id}.json",
        "verb": "tickets.assignment",
        "title": f"Ticket #{activity_id} was assigned to you",
        "actor_id": 700,
        "user_id": 800,
        "created_at": "2024-03-05T10:11:12Z",
        "updated_at": "2024-03-05T10:11:13Z",
        "object": {"ticket": {"id": 4400 + activity_id, "subject": "Printer on fire"}},
        "target": {"ticket": {"id": 4400 + activity_id, "subject": "Printer on fire"}},
    }
    record.update(extra)
    return record


def cursor_body(
    activities: list[dict[str, Any]],
    *,
    has_more: bool = False,
    after: str | None = "A1",
    before: str | None = "B1",
) -> bytes:
    return msgspec.json.encode(
        {
            "activities": activities,
            "actors": [],
            "users": [],
            "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
            "links": {"next": "https://canonical.example.com/next", "prev": None},
        }
    )


def offset_body(
    activities: list[dict[str, Any]], *, count: int, next_page: str | None = None
) -> bytes:
    return msgspec.json.encode(
        {
            "activities": activities,
            "actors": [],
            "users": [],
            "count": count,
            "next_page": next_page,
            "previous_page": None,
        }
    )


def cursor_page(*, has_more: bool, after: str | None) -> ActivityPage:
    return ActivityPage([], has_more=has_more, after_cursor=after, before_cursor=after)


# --- resolve_base_url -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subdomain", "expected"),
    [
        ("acme", "https://acme.zendesk.com"),
        ("ACME", "https://acme.zendesk.com"),
        ("a", "https://a.zendesk.com"),
        ("a-b-c", "https://a-b-c.zendesk.com"),
        ("d3", "https://d3.zendesk.com"),
        ("x" * 63, f"https://{'x' * 63}.zendesk.com"),
    ],
)
def test_resolve_base_url_from_subdomain(subdomain: str, expected: str) -> None:
    assert p.resolve_base_url(subdomain) == expected
    assert p.resolve_base_url(subdomain=subdomain) == expected


@pytest.mark.parametrize(
    "subdomain",
    ["", "-a", "a-", "a_b", "a.b", "x" * 64, "acme ", " acme", "acme\n", "ac/me", "ac:me", "é"],
)
def test_resolve_base_url_rejects_invalid_dns_labels(subdomain: str) -> None:
    with pytest.raises(ValueError, match="DNS label"):
        p.resolve_base_url(subdomain=subdomain)


@pytest.mark.parametrize("subdomain", [1, b"acme", ["acme"]])
def test_resolve_base_url_rejects_non_str_subdomain(subdomain: Any) -> None:
    with pytest.raises(TypeError):
        p.resolve_base_url(subdomain=subdomain)


@pytest.mark.parametrize("base_url", [1, b"https://acme.zendesk.com"])
def test_resolve_base_url_rejects_non_str_base_url(base_url: Any) -> None:
    with pytest.raises(TypeError):
        p.resolve_base_url(base_url=base_url)


def test_resolve_base_url_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        p.resolve_base_url()
    with pytest.raises(ValueError, match="exactly one"):
        p.resolve_base_url("acme", "https://acme.zendesk.com")


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://acme.zendesk.com", "https://acme.zendesk.com"),
        ("https://acme.zendesk.com/", "https://acme.zendesk.com"),
        ("  https://acme.zendesk.com  ", "https://acme.zendesk.com"),
        ("https://ACME.Zendesk.com", "https://acme.zendesk.com"),
        ("https://support.example.org:8443", "https://support.example.org:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.5.5.5", "http://127.5.5.5"),
        ("http://localhost:1234", "http://localhost:1234"),
        ("http://LOCALHOST", "http://localhost"),
        ("http://emulator.localhost:9", "http://emulator.localhost:9"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://[::1]", "http://[::1]"),
        ("https://[2001:db8::1]:443", "https://[2001:db8::1]:443"),
    ],
)
def test_resolve_base_url_accepts(base_url: str, expected: str) -> None:
    assert p.resolve_base_url(base_url=base_url) == expected


@pytest.mark.parametrize(
    "base_url",
    [
        "http://acme.zendesk.com",
        "http://10.0.0.1:8080",
        "http://[2001:db8::1]",
        "http://localhost.evil.example.com",
        "http://128.0.0.1",
    ],
)
def test_resolve_base_url_refuses_plain_http_off_loopback(base_url: str) -> None:
    with pytest.raises(ValueError, match="plain http"):
        p.resolve_base_url(base_url=base_url)
    # ... unless explicitly allowed
    assert p.resolve_base_url(base_url=base_url, allow_http=True) == base_url


@pytest.mark.parametrize(
    ("base_url", "match"),
    [
        ("https://user:secret@acme.zendesk.com", "credentials"),
        ("https://user@acme.zendesk.com", "credentials"),
        ("https://:secret@acme.zendesk.com", "credentials"),
        ("https://acme.zendesk.com/api/v2", "scheme and host only"),
        ("https://acme.zendesk.com/?locale=en", "scheme and host only"),
        ("https://acme.zendesk.com#top", "scheme and host only"),
        ("ftp://acme.zendesk.com", "must look like"),
        ("acme.zendesk.com", "must look like"),
        ("https://", "must look like"),
        ("", "must look like"),
        ("https://acme.zendesk.com:99999", "not a valid URL"),
        ("https://acme.zendesk.com:port", "not a valid URL"),
    ],
)
def test_resolve_base_url_rejects_bad_urls(base_url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        p.resolve_base_url(base_url=base_url)


def test_resolve_base_url_error_never_echoes_credentials() -> None:
    with pytest.raises(ValueError) as info:
        p.resolve_base_url(base_url="https://agent:hunter2-secret@acme.zendesk.com")
    assert "hunter2-secret" not in str(info.value)


# --- format_since -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (datetime(2024, 3, 5, 10, 11, 12, tzinfo=UTC), "2024-03-05T10:11:12Z"),
        (datetime(2024, 3, 5, 10, 11, 12, 999_999, tzinfo=UTC), "2024-03-05T10:11:12Z"),
        (
            datetime(2024, 3, 5, 15, 41, 12, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2024-03-05T10:11:12Z",
        ),
        (
            datetime(2024, 3, 4, 23, 11, 12, tzinfo=timezone(timedelta(hours=-11))),
            "2024-03-05T10:11:12Z",
        ),
        (
            datetime(2024, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
            "2023-12-31T23:30:00Z",
        ),
        ("2024-03-05T10:11:12Z", "2024-03-05T10:11:12Z"),
        ("2024-03-05T10:11:12.654321Z", "2024-03-05T10:11:12Z"),
        ("2024-03-05T12:11:12+02:00", "2024-03-05T10:11:12Z"),
        ("2024-03-05T05:11:12-05:00", "2024-03-05T10:11:12Z"),
        ("2024-03-05T10:11:12+00:00", "2024-03-05T10:11:12Z"),
        ("  2024-03-05T10:11:12Z\n", "2024-03-05T10:11:12Z"),
    ],
)
def test_format_since(since: datetime | str, expected: str) -> None:
    assert p.format_since(since) == expected


@pytest.mark.parametrize(
    "since",
    [datetime(2024, 3, 5, 10, 11, 12), "2024-03-05T10:11:12", "2024-03-05"],
)
def test_format_since_refuses_naive_times(since: datetime | str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        p.format_since(since)


@pytest.mark.parametrize(
    "since", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-03-05T25:00:00Z", "5 March 2024"]
)
def test_format_since_refuses_garbage(since: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        p.format_since(since)


@pytest.mark.parametrize("since", [1_700_000_000, 1.5, b"2024-03-05T10:11:12Z", True, None])
def test_format_since_refuses_other_types(since: Any) -> None:
    with pytest.raises(TypeError):
        p.format_since(since)


def test_format_since_refuses_a_date() -> None:
    with pytest.raises(TypeError):
        p.format_since(date(2024, 3, 5))  # type: ignore[arg-type]


OFFSETS = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)),
    st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
)
AWARE = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS
)


def _parse_output(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@given(AWARE)
def test_format_since_round_trips_to_the_same_instant(since: datetime) -> None:
    text = p.format_since(since)
    assert text.endswith("Z")
    assert len(text) == len("2024-03-05T10:11:12Z")
    expected = since.astimezone(UTC).replace(microsecond=0)
    assert _parse_output(text) == expected
    # The same instant given as an ISO string, with its offset, renders the same way.
    assert p.format_since(since.isoformat()) == text
    # Idempotent: the output is itself an accepted input.
    assert p.format_since(text) == text


def test_format_since_pads_the_year() -> None:
    assert p.format_since(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00Z"


def test_format_since_out_of_range_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        p.format_since(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))


# --- list_request / show_request / count_request -----------------------------------------------


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_list_request_page_size_range(size: int) -> None:
    if 1 <= size <= 100:
        request = p.list_request(page_size=size)
        assert request.param("page[size]") == str(size)
        offset = p.list_request(page_size=size, pagination="offset")
        assert offset.param("per_page") == str(size)
    else:
        with pytest.raises(ValueError, match="between 1 and 100"):
            p.list_request(page_size=size)
        with pytest.raises(ValueError, match="between 1 and 100"):
            p.list_request(page_size=size, pagination="offset")


@pytest.mark.parametrize("size", [True, False, "5", 5.0, None])
def test_list_request_page_size_must_be_an_int(size: Any) -> None:
    with pytest.raises(TypeError, match="page_size"):
        p.list_request(page_size=size)


def test_list_request_defaults_to_cursor_pagination_of_100() -> None:
    request = p.list_request()
    assert request == p.Request("GET", "/api/v2/activities", (("page[size]", "100"),))
    assert request.param("page[after]") is None
    assert request.param("since") is None
    assert request.param("page") is None


def test_list_request_cursor_mode_params() -> None:
    request = p.list_request(
        since=datetime(2024, 3, 5, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        page_size=25,
        cursor="eyJvIjoiLWNyZWF0ZWRfYXQsaWQifQ==",
    )
    assert request.method == "GET"
    assert request.path == "/api/v2/activities"
    assert dict(request.params) == {
        "since": "2024-03-05T10:00:00Z",
        "page[size]": "25",
        "page[after]": "eyJvIjoiLWNyZWF0ZWRfYXQsaWQifQ==",
    }
    assert len(request.params) == 3
    assert "page" not in dict(request.params)
    assert "per_page" not in dict(request.params)


@pytest.mark.parametrize("cursor", ["", 5])
def test_list_request_refuses_bad_cursor(cursor: Any) -> None:
    with pytest.raises(ValueError, match="cursor"):
        p.list_request(cursor=cursor)


def test_list_request_offset_mode_params() -> None:
    request = p.list_request(pagination="offset", page_size=50, since="2024-03-05T10:00:00Z")
    assert dict(request.params) == {
        "since": "2024-03-05T10:00:00Z",
        "page": "1",
        "per_page": "50",
    }
    assert p.list_request(pagination="offset", page=7).param("page") == "7"
    assert p.list_request(pagination="offset", page=100).param("page") == "100"
    assert p.list_request(pagination="offset").param("page[size]") is None


def test_list_request_offset_with_cursor_is_refused() -> None:
    with pytest.raises(ValueError, match="cursor"):
        p.list_request(pagination="offset", cursor="abc")


@pytest.mark.parametrize("page", [101, 102, 10_000])
def test_list_request_offset_past_page_100(page: int) -> None:
    with pytest.raises(PaginationDepthError, match="100") as info:
        p.list_request(pagination="offset", page=page)
    assert isinstance(info.value, PaginationError)


@pytest.mark.parametrize("page", [0, -1, True, "2", 1.0])
def test_list_request_offset_page_must_be_positive_int(page: Any) -> None:
    with pytest.raises(ValueError, match="page"):
        p.list_request(pagination="offset", page=page)


def test_list_request_unknown_pagination() -> None:
    with pytest.raises(ValueError, match="pagination"):
        p.list_request(pagination="keyset")  # type: ignore[arg-type]


def test_list_request_bad_since_propagates() -> None:
    with pytest.raises(ValueError):
        p.list_request(since="2024-03-05T10:00:00")
    with pytest.raises(TypeError):
        p.list_request(since=1_700_000_000)  # type: ignore[arg-type]


def test_request_param_helpers() -> None:
    request = p.Request("GET", "/x", (("a", "1"), ("b", "2")))
    assert request.param("a") == "1"
    assert request.param("zz") is None
    replaced = request.with_param("a", "9")
    assert replaced.param("a") == "9"
    assert replaced.param("b") == "2"
    assert [k for k, _ in replaced.params].count("a") == 1
    assert request.param("a") == "1"  # immutable
    assert request.with_param("c", "3").params == (("a", "1"), ("b", "2"), ("c", "3"))


@pytest.mark.parametrize("activity_id", [1, 42, BIG_ID, MAX_INT64])
def test_show_request(activity_id: int) -> None:
    request = p.show_request(activity_id)
    assert request == p.Request("GET", f"/api/v2/activities/{activity_id}")
    assert request.params == ()


@pytest.mark.parametrize(("activity_id", "exc"), [(0, ValueError), (-5, ValueError)])
def test_show_request_refuses_non_positive(activity_id: int, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        p.show_request(activity_id)


@pytest.mark.parametrize("activity_id", ["12", 1.0, True, None])
def test_show_request_refuses_non_int(activity_id: Any) -> None:
    with pytest.raises(TypeError):
        p.show_request(activity_id)


def test_count_request() -> None:
    assert p.count_request() == p.Request("GET", "/api/v2/activities/count")


# --- next_request -----------------------------------------------------------------------------


def test_next_request_cursor_no_more() -> None:
    first = p.list_request(page_size=10)
    assert p.next_request(first, cursor_page(has_more=False, after="A1"), set()) is None


def test_next_request_cursor_follows_after_cursor() -> None:
    first = p.list_request(since="2024-03-01T00:00:00Z", page_size=10)
    second = p.next_request(first, cursor_page(has_more=True, after="C2"), set())
    assert second is not None
    assert second.path == first.path
    assert second.param("page[after]") == "C2"
    assert second.param("since") == "2024-03-01T00:00:00Z"
    assert second.param("page[size]") == "10"
    third = p.next_request(second, cursor_page(has_more=True, after="C3"), {"C2"})
    assert third is not None
    assert dict(third.params) == {
        "since": "2024-03-01T00:00:00Z",
        "page[size]": "10",
        "page[after]": "C3",
    }
    assert len(third.params) == 3


def test_next_request_from_a_resumed_cursor() -> None:
    first = p.list_request(cursor="SAVED")
    nxt = p.next_request(first, cursor_page(has_more=True, after="NEXT"), set())
    assert nxt is not None
    assert nxt.param("page[after]") == "NEXT"
    assert [k for k, _ in nxt.params].count("page[after]") == 1


@pytest.mark.parametrize("after", [None, ""])
def test_next_request_has_more_without_cursor(after: str | None) -> None:
    with pytest.raises(PaginationError, match="after_cursor"):
        p.next_request(p.list_request(), cursor_page(has_more=True, after=after), set())


def test_next_request_repeated_cursor_in_seen() -> None:
    request = p.list_request(cursor="C2")
    with pytest.raises(PaginationError, match="repeated"):
        p.next_request(request, cursor_page(has_more=True, after="C1"), {"C1", "C2"})


def test_next_request_cursor_equal_to_current() -> None:
    request = p.list_request(cursor="SAME")
    with pytest.raises(PaginationError, match="repeated"):
        p.next_request(request, cursor_page(has_more=True, after="SAME"), set())


def test_next_request_repeated_cursor_error_is_not_depth_error() -> None:
    with pytest.raises(PaginationError) as info:
        p.next_request(p.list_request(), cursor_page(has_more=True, after="X"), {"X"})
    assert not isinstance(info.value, PaginationDepthError)


def test_next_request_trailing_empty_page() -> None:
    request = p.list_request(page_size=1, cursor="C3")
    page = p.decode_page(cursor_body([], has_more=False, after=None, before=None))
    assert len(page) == 0
    assert p.next_request(request, page, {"C1", "C2", "C3"}) is None


def test_next_request_offset_last_page() -> None:
    request = p.list_request(pagination="offset", page=3)
    page = p.decode_page(offset_body([activity_json()], count=201))
    assert p.next_request(request, page, set()) is None


def test_next_request_offset_follows_page_number() -> None:
    request = p.list_request(pagination="offset", page_size=2, since="2024-03-01T00:00:00Z")
    page = p.decode_page(
        offset_body(
            [activity_json(1), activity_json(2)],
            count=5,
            next_page="https://canonical.example.com/api/v2/activities.json?page=2&per_page=2",
        )
    )
    nxt = p.next_request(request, page, set())
    assert nxt is not None
    assert dict(nxt.params) == {
        "since": "2024-03-01T00:00:00Z",
        "page": "2",
        "per_page": "2",
    }
    again = p.next_request(nxt, page, set())
    assert again is not None
    assert again.param("page") == "3"


def test_next_request_offset_past_page_100() -> None:
    page = ActivityPage([], has_more=True, next_page="https://x.example.com/?page=101")
    at_99 = p.list_request(pagination="offset", page=99)
    at_100 = p.next_request(at_99, page, set())
    assert at_100 is not None
    assert at_100.param("page") == "100"
    with pytest.raises(PaginationDepthError):
        p.next_request(at_100, page, set())


# --- decode_page / decode_activity / decode_count ----------------------------------------------


def test_decode_cursor_page() -> None:
    body = cursor_body(
        [activity_json(BIG_ID), activity_json(BIG_ID - 1)], has_more=True, after="AF", before="BF"
    )
    page = p.decode_page(body, request_id="req-1")
    assert len(page) == 2
    assert [a.id for a in page] == [BIG_ID, BIG_ID - 1]
    assert page.has_more is True
    assert page.after_cursor == "AF"
    assert page.before_cursor == "BF"
    assert page.count is None
    assert page.next_page is None
    assert page.request_id == "req-1"
    first = page.activities[0]
    assert first.verb == "tickets.assignment"
    assert first.created_at == datetime(2024, 3, 5, 10, 11, 12, tzinfo=UTC)
    assert first.target.ticket is not None
    assert first.target.ticket.id == 4400 + BIG_ID


def test_decode_offset_page() -> None:
    body = offset_body([activity_json(3)], count=57, next_page="https://e.example.com/?page=2")
    page = p.decode_page(body)
    assert page.count == 57
    assert page.next_page == "https://e.example.com/?page=2"
    assert page.has_more is True
    assert page.after_cursor is None
    assert page.request_id is None
    last = p.decode_page(offset_body([activity_json(3)], count=57))
    assert last.has_more is False
    assert last.next_page is None


def test_decode_empty_trailing_page() -> None:
    page = p.decode_page(cursor_body([], has_more=False, after=None, before=None))
    assert list(page) == []
    assert page.has_more is False
    assert page.after_cursor is None
    assert page.before_cursor is None


def test_decode_minimal_page() -> None:
    page = p.decode_page(b'{"activities": []}')
    assert len(page) == 0
    assert page.has_more is False


def test_decode_page_ignores_unknown_fields() -> None:
    record = activity_json(9, brand_new_field={"nested": [1, 2]}, another=None)
    body = msgspec.json.encode(
        {
            "activities": [record],
            "meta": {"has_more": False, "after_cursor": None, "extra": 1},
            "links": {"next": None},
            "future_sideload": [{"id": 1}],
        }
    )
    page = p.decode_page(body)
    assert page.activities[0].id == 9
    assert page.activities[0].title == record["title"]


@pytest.mark.parametrize("activity_id", [2**32 + 1, BIG_ID, MAX_INT64])
def test_decode_page_64_bit_ids(activity_id: int) -> None:
    record = activity_json(activity_id, actor_id=activity_id - 1, user_id=activity_id - 2)
    record["target"] = {"ticket": {"id": activity_id, "subject": "s"}}
    activity = p.decode_page(cursor_body([record])).activities[0]
    assert activity.id == activity_id
    assert activity.actor_id == activity_id - 1
    assert activity.user_id == activity_id - 2
    assert activity.target.ticket is not None
    assert activity.target.ticket.id == activity_id


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"", "empty body"),
        (b"   \n", "empty body"),
        (b"not json at all", "not valid JSON"),
        (b'{"activities": [{"id": 1, "created_at": "2024-03-05T10:', "not valid JSON"),
        (b"<!DOCTYPE html><html><body>Bad gateway</body></html>", "not valid JSON"),
        (b'{"activities": []} trailing', "not valid JSON"),
    ],
)
def test_decode_page_unparseable_bodies(body: bytes, what: str) -> None:
    with pytest.raises(DecodeError, match=what) as info:
        p.decode_page(body)
    assert info.value.path is None  # retryable: not a shape problem
    assert info.value.snippet == body[:120].decode()


@pytest.mark.parametrize(
    ("record_patch", "path"),
    [
        ({"id": "12"}, "$.activities[0].id"),
        ({"id": 1.5}, "$.activities[0].id"),
        ({"title": 12}, "$.activities[0].title"),
        ({"verb": None}, "$.activities[0].verb"),
        ({"actor_id": "seven"}, "$.activities[0].actor_id"),
        ({"created_at": "last tuesday"}, "$.activities[0].created_at"),
        ({"created_at": None}, "$.activities[0].created_at"),
        ({"updated_at": 17}, "$.activities[0].updated_at"),
        ({"url": ["x"]}, "$.activities[0].url"),
    ],
)
def test_decode_page_wrong_types_name_the_json_path(
    record_patch: dict[str, Any], path: str
) -> None:
    body = cursor_body([activity_json(1), activity_json(2), activity_json(3)])
    good = p.decode_page(body)
    assert len(good) == 3
    record = activity_json(1, **record_patch)
    with pytest.raises(DecodeError) as info:
        p.decode_page(cursor_body([record]))
    assert info.value.path == path
    assert f"`{path}`" in str(info.value)


def test_decode_page_wrong_type_in_a_later_activity() -> None:
    body = cursor_body([activity_json(1), activity_json(2), activity_json(3, id=True)])
    with pytest.raises(DecodeError) as info:
        p.decode_page(body)
    assert info.value.path == "$.activities[2].id"


def test_decode_page_missing_required_fields() -> None:
    record = activity_json(1)
    del record["created_at"]
    with pytest.raises(DecodeError, match="created_at") as info:
        p.decode_page(cursor_body([record]))
    assert info.value.path is not None
    assert info.value.path.startswith("$.activities[0]")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"meta": {"has_more": false}}', "$"),
        (b'{"activity": {"id": 1}}', "$"),
        (b"[]", "$"),
        (b"null", "$"),
        (b'{"activities": null}', "$.activities"),
        (b'{"activities": {"id": 1}}', "$.activities"),
        (b'{"activities": [], "meta": {"has_more": "yes"}}', "$.meta.has_more"),
        (
            b'{"activities": [], "meta": {"has_more": true, "after_cursor": 5}}',
            "$.meta.after_cursor",
        ),
        (b'{"activities": [], "count": "3"}', "$.count"),
        (b'{"activities": [], "actors": {}}', "$.actors"),
    ],
)
def test_decode_page_wrong_shape(body: bytes, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        p.decode_page(body)
    assert info.value.path == path
    if path == "$":
        assert "activities" in str(info.value) or "object" in str(info.value)


def test_decode_page_missing_activities_key_says_so() -> None:
    with pytest.raises(DecodeError, match="activities"):
        p.decode_page(b'{"meta": {"has_more": false}}')


def test_decode_activity() -> None:
    body = msgspec.json.encode(
        {
            "activity": activity_json(
                BIG_ID,
                actor={"id": 700, "name": "Inline Actor"},
                user={"id": 800, "name": "Inline User"},
            )
        }
    )
    activity = p.decode_activity(body)
    assert activity.id == BIG_ID
    assert activity.actor is not None
    assert activity.actor.name == "Inline Actor"
    assert activity.user is not None
    assert activity.user.name == "Inline User"


def test_decode_activity_system_actor() -> None:
    body = msgspec.json.encode({"activity": activity_json(5, actor_id=-1)})
    assert p.decode_activity(body).actor is SYSTEM_USER


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"activities": []}', "$"),
        (b'{"activity": null}', "$.activity"),
        (b'{"activity": {"id": "x", "created_at": "2024-03-05T10:11:12Z"}}', "$.activity.id"),
    ],
)
def test_decode_activity_wrong_shape(body: bytes, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        p.decode_activity(body)
    assert info.value.path == path


def test_decode_activity_not_json() -> None:
    with pytest.raises(DecodeError) as info:
        p.decode_activity(b"<html>oops</html>")
    assert info.value.path is None


def test_decode_count() -> None:
    count = p.decode_count(b'{"count": {"value": 102, "refreshed_at": "2020-04-06T02:18:17Z"}}')
    assert count.value == 102
    assert count.refreshed_at == datetime(2020, 4, 6, 2, 18, 17, tzinfo=UTC)


def test_decode_count_refreshing() -> None:
    count = p.decode_count(b'{"count": {"value": 100000, "refreshed_at": null}}')
    assert count.value == 100_000
    assert count.refreshed_at is None
    assert p.decode_count(b'{"count": {"value": 3}}').refreshed_at is None


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"count": 5}', "$.count"),
        (b'{"count": {"value": "5"}}', "$.count.value"),
        (b'{"count": {"refreshed_at": null}}', "$.count"),
        (b'{"value": 5}', "$"),
    ],
)
def test_decode_count_wrong_shape(body: bytes, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        p.decode_count(body)
    assert info.value.path == path


def test_decode_count_truncated() -> None:
    with pytest.raises(DecodeError, match="not valid JSON") as info:
        p.decode_count(b'{"count": {"value": 10')
    assert info.value.path is None


# --- check_content_type -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "application/json"},
        {"content-type": "application/json; charset=utf-8"},
        {"CONTENT-TYPE": "Application/JSON"},
        {"Content-Type": "application/problem+json"},
        {"Content-Type": " application/json ;charset=UTF-8"},
    ],
)
def test_check_content_type_accepts_json(headers: dict[str, str]) -> None:
    p.check_content_type(headers, b'{"activities": []}')  # does not raise


@pytest.mark.parametrize(
    "content_type", ["text/html; charset=utf-8", "text/plain", "application/xml", ""]
)
def test_check_content_type_refuses_non_json(content_type: str) -> None:
    body = b"<html><body>Cloudflare says hi</body></html>"
    with pytest.raises(DecodeError, match="expected a JSON body") as info:
        p.check_content_type({"Content-Type": content_type}, body)
    assert "Cloudflare" in info.value.snippet


# --- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "641", "rate-limit-reset": "23"},
        {"x-rate-limit": "700", "x-rate-limit-remaining": "641", "RATE-LIMIT-RESET": "23"},
        {"rate-limit": "700", "rate-limit-remaining": "641", "rate-limit-reset": "23"},
        {"Rate-Limit": "700", "Rate-Limit-Remaining": "641", "Rate-Limit-Reset": "23"},
        {"ratelimit-limit": "700", "ratelimit-remaining": "641", "ratelimit-reset": "23"},
        {"RateLimit-Limit": "700", "RateLimit-Remaining": "641", "RateLimit-Reset": "23"},
        {"x-rate-limit": "700, 700", "x-rate-limit-remaining": "641", "rate-limit-reset": "23"},
        {
            "X-Rate-Limit": "junk",
            "rate-limit": "700",
            "ratelimit-remaining": "641",
            "rate-limit-reset": "x",
            "ratelimit-reset": "23",
        },
    ],
)
def test_rate_limit_from_headers_spellings(headers: dict[str, str]) -> None:
    assert p.rate_limit_from_headers(headers) == p.RateLimitHeaders(
        limit=700, remaining=641, reset=23.0
    )


def test_rate_limit_from_headers_absent_or_junk() -> None:
    assert p.rate_limit_from_headers({}) == p.RateLimitHeaders(None, None, None)
    junk = {"X-Rate-Limit": "lots", "X-Rate-Limit-Remaining": "-3", "rate-limit-reset": "nan"}
    assert p.rate_limit_from_headers(junk) == p.RateLimitHeaders(None, None, None)
    assert p.rate_limit_from_headers({"X-Rate-Limit": ""}).limit is None


def test_rate_limit_from_headers_fractional_reset() -> None:
    limits = p.rate_limit_from_headers({"rate-limit-remaining": "0", "ratelimit-reset": "1.25"})
    assert limits.remaining == 0
    assert limits.reset == 1.25
    assert limits.limit is None


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e999"])
def test_rate_limit_from_headers_non_finite_is_junk(value: str) -> None:
    headers = {"X-Rate-Limit": value, "X-Rate-Limit-Remaining": value, "rate-limit": "700"}
    assert p.rate_limit_from_headers(headers) == p.RateLimitHeaders(limit=700)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Zendesk-Request-Id": "zd-1", "X-Request-Id": "edge-1"}, "zd-1"),
        ({"x-zendesk-request-id": "zd-1", "x-request-id": "edge-1"}, "zd-1"),
        ({"X-Request-Id": "edge-1"}, "edge-1"),
        ({"x-request-id": "7f7a837918c40a3b-ARN, 7f7a837918c40a3b-ARN"}, "7f7a837918c40a3b-ARN"),
        ({"X-REQUEST-ID": " a , a "}, "a"),
        ({"X-Zendesk-Request-Id": "", "X-Request-Id": "edge-1"}, "edge-1"),
        ({}, None),
        ({"Content-Type": "application/json"}, None),
    ],
)
def test_request_id_from_headers(headers: dict[str, str], expected: str | None) -> None:
    assert p.request_id_from_headers(headers) == expected


NOW = datetime(2024, 3, 5, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("60", 60.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        ("Tue, 05 Mar 2024 10:00:30 GMT", 30.0),
        ("Tue, 05 Mar 2024 10:02:00 GMT", 120.0),
        ("Tue, 05 Mar 2024 10:00:30 -0000", 30.0),
        ("Tue, 05 Mar 2024 11:00:30 +0100", 30.0),
        ("Tue, 05 Mar 2024 09:59:00 GMT", 0.0),
        ("Mon, 01 Jan 2001 00:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("nan", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert p.parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_date_uses_current_time_by_default() -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    seconds = p.parse_retry_after(format_datetime(when, usegmt=True))
    assert seconds is not None
    assert 85 <= seconds <= 90


def test_parse_retry_after_non_finite_is_junk() -> None:
    assert p.parse_retry_after("inf", now=NOW) is None


# --- error_from_response ----------------------------------------------------------------------

JSON = {"Content-Type": "application/json; charset=utf-8", "X-Zendesk-Request-Id": "rq-77"}


def _err(status: int, body: bytes, headers: dict[str, str] | None = None, **kw: Any) -> APIError:
    return p.error_from_response(status, JSON if headers is None else headers, body, **kw)


def test_error_401_couldnt_authenticate() -> None:
    body = b'{"error": "Couldn\'t authenticate you"}'
    error = _err(401, body, method="GET", path="/api/v2/activities")
    assert type(error) is AuthenticationError
    assert error.status == 401
    assert error.code is None
    assert error.description == "Couldn't authenticate you"
    assert error.request_id == "rq-77"
    assert error.body == body.decode()
    assert error.method == "GET"
    assert error.path == "/api/v2/activities"
    assert error.retry_after is None
    message = str(error)
    assert "HTTP 401" in message
    assert "GET /api/v2/activities" in message
    assert "Couldn't authenticate you" in message
    assert "rq-77" in message


def test_error_403_title_and_message() -> None:
    body = (
        b'{"error": {"title": "Forbidden", "message": "You do not have access to this page. '
        b'Please contact the account owner of this help desk for further help."}}'
    )
    error = _err(403, body)
    assert type(error) is PermissionDeniedError
    assert error.code == "Forbidden"
    assert error.description is not None
    assert error.description.startswith("You do not have access to this page.")
    assert "Forbidden" in str(error)


@pytest.mark.parametrize("code", ["RecordNotFound", "InvalidEndpoint"])
def test_error_404(code: str) -> None:
    body = msgspec.json.encode({"error": code, "description": "Not found"})
    error = _err(404, body, path="/api/v2/activities/99")
    assert type(error) is NotFoundError
    assert error.code == code
    assert error.description == "Not found"
    assert f"{code}: Not found" in str(error)


@pytest.mark.parametrize("status", [400, 422])
def test_error_record_invalid(status: int) -> None:
    body = msgspec.json.encode(
        {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {"since": [{"description": "Since is not a valid time", "error": "x"}]},
        }
    )
    error = _err(status, body)
    assert type(error) is InvalidRequestError
    assert error.status == status
    assert error.code == "RecordInvalid"
    assert error.description is not None
    assert error.description.startswith("Record validation errors: ")
    assert "Since is not a valid time" in error.description  # the useful text is in details
    assert "Since is not a valid time" in str(error)
    assert "Since is not a valid time" in error.body


def test_error_errors_array() -> None:
    body = msgspec.json.encode(
        {
            "errors": [
                {
                    "code": "InvalidPaginationDepth",
                    "title": "Invalid pagination depth",
                    "detail": "Offset pagination is limited to the first 100 pages.",
                },
                {"code": "Other", "title": "Second problem"},
            ]
        }
    )
    error = _err(400, body)
    assert type(error) is InvalidRequestError
    assert error.code == "InvalidPaginationDepth"
    assert error.description == (
        "Offset pagination is limited to the first 100 pages.; Second problem"
    )


def test_error_500_status_body() -> None:
    error = _err(500, b'{"status": 500, "error": "Internal Server Error"}')
    assert type(error) is ServerError
    assert error.description == "Internal Server Error"
    assert error.code is None
    assert error.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 504, 520, 599])
def test_error_5xx_is_server_error(status: int) -> None:
    error = _err(status, b"", {"Retry-After": "5"})
    assert type(error) is ServerError
    assert error.status == status
    assert error.retry_after is None  # only 429 and 503 carry Retry-After


def test_error_503_with_retry_after() -> None:
    headers = {"Retry-After": "12", "X-Request-Id": "edge-9, edge-9"}
    error = _err(503, b'{"error": "Service Unavailable"}', headers)
    assert type(error) is ServerError
    assert error.retry_after == 12.0
    assert error.request_id == "edge-9"
    assert "retry after 12s" in str(error)
    assert "edge-9" in str(error)


def test_error_503_without_retry_after() -> None:
    error = _err(503, b"", {})
    assert type(error) is ServerError
    assert error.retry_after is None
    assert error.request_id is None


def test_error_429_text_plain() -> None:
    headers = {"Content-Type": "text/plain", "retry-after": "42"}
    error = _err(429, b"Too Many Requests", headers)
    assert type(error) is RateLimitError
    assert error.retry_after == 42.0
    assert error.description == "Too Many Requests"
    assert error.code is None
    assert error.body == "Too Many Requests"


def test_error_429_html_with_http_date() -> None:
    body = (
        b"<html>\n<head><title>429 Too Many Requests</title></head>\n"
        b"<body>\n<center><h1>429 Too Many Requests</h1></center>\n</body>\n</html>"
    )
    headers = {"Content-Type": "text/html", "Retry-After": "Tue, 05 Mar 2024 10:01:00 GMT"}
    error = _err(429, body, headers, now=NOW)
    assert type(error) is RateLimitError
    assert error.retry_after == 60.0
    assert error.description == "429 Too Many Requests 429 Too Many Requests"
    assert "<" not in error.description


def test_error_429_without_retry_after() -> None:
    error = _err(429, b'{"error": "TooManyRequests"}', {})
    assert type(error) is RateLimitError
    assert error.retry_after is None
    assert error.code == "TooManyRequests"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, InvalidRequestError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_error_empty_body(status: int, cls: type[APIError]) -> None:
    error = _err(status, b"", {})
    assert type(error) is cls
    assert error.code is None
    assert error.description is None
    assert error.body == ""
    assert str(error) == f"HTTP {status}"


@pytest.mark.parametrize("status", [302, 304, 405, 409, 410, 413, 418])
def test_error_other_statuses_are_plain_api_errors(status: int) -> None:
    error = _err(status, b'{"error": "Conflict", "description": "it clashed"}')
    assert type(error) is APIError
    assert error.status == status
    assert error.code == "Conflict"
    assert error.description == "it clashed"


@pytest.mark.parametrize(
    ("body", "code", "description"),
    [
        (b'{"error": "Forbidden"}', "Forbidden", None),
        (b'{"message": "Nope"}', None, "Nope"),
        (b'{"error": {"title": "Forbidden", "description": "Go away"}}', "Forbidden", "Go away"),
        (b'{"errors": []}', None, None),
        (b'{"errors": ["x"], "error": "Bad"}', "Bad", None),
        (b"[1, 2]", None, None),
        (b'"just a string"', None, None),
        (b"null", None, None),
        (b"  Service \n  temporarily\tdown  ", None, "Service temporarily down"),
    ],
)
def test_error_details_odd_shapes(body: bytes, code: str | None, description: str | None) -> None:
    error = _err(418, body)
    assert error.code == code
    assert error.description == description


def test_error_body_snippet_is_bounded() -> None:
    body = b'{"error": "Huge", "description": "' + b"x" * 10_000 + b'"}'
    error = _err(500, body)
    assert len(error.body) == 2000
    assert body.decode().startswith(error.body)
    text_error = _err(500, b"<p>" + b"y" * 10_000 + b"</p>")
    assert text_error.description is not None
    assert len(text_error.description) <= 200


def test_error_body_with_invalid_utf8() -> None:
    error = _err(500, b"\xff\xfe broken \xc3")
    assert "broken" in error.body
    assert error.description is not None
    assert "broken" in error.description


def test_error_request_id_precedence() -> None:
    headers = {"x-request-id": "edge", "x-zendesk-request-id": "zd"}
    assert _err(404, b"", headers).request_id == "zd"

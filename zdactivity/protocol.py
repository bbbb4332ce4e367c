"""Everything zdactivity knows about the Zendesk protocol, as pure functions (no I/O).

Requests are built as :class:`Request` values (:func:`list_request`, :func:`show_request`,
:func:`count_request`, :func:`refresh_request`); a response, ``(status, headers, body)``, is
read by one function, :func:`interpret`, into an :class:`Outcome`: the decoded value or a typed
error, with the facts a retry decision needs (request id, ``Retry-After``, rate-limit headers),
each header parsed once. The client (``client.py``) only acquires budget, sends, interprets and
decides, so every protocol decision (next page, which error, how long to wait) is testable
without a server. This module imports neither aiohttp nor multidict.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, Generic, Literal, TypeVar, overload
from urllib.parse import urlsplit

import msgspec

from .errors import (
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
    ZendeskError,
    decode_error,
    snippet,
)
from .models import (
    MAX_YEAR,
    MIN_YEAR,
    Activity,
    ActivityCount,
    ActivityPage,
    CursorPage,
    OffsetPage,
    UserCache,
)
from .sideloads import UserIndex, attach

__all__ = [
    "ACTIVITIES_PATH",
    "MAX_OFFSET_PAGE",
    "MAX_PAGE_SIZE",
    "RESUME_TOKEN_PREFIX",
    "TOKEN_PATH",
    "Decoder",
    "Headers",
    "Outcome",
    "Pagination",
    "RateLimitHeaders",
    "Request",
    "ResumePoint",
    "check_content_type",
    "count_request",
    "credential_problem",
    "decode_activity",
    "decode_count",
    "decode_page",
    "decode_token_pair",
    "error_from_response",
    "format_since",
    "header",
    "interpret",
    "list_request",
    "next_request",
    "parse_retry_after",
    "rate_limit_from_headers",
    "refresh_error",
    "refresh_request",
    "request_id_from_headers",
    "resolve_base_url",
    "resume_request",
    "resume_token",
    "show_request",
]

MAX_PAGE_SIZE: Final = 100
MAX_OFFSET_PAGE: Final = 100  # Zendesk refuses offset pages past 100 (10,000 records)
ACTIVITIES_PATH: Final = "/api/v2/activities"
TOKEN_PATH: Final = "/oauth/tokens"

Pagination = Literal["cursor", "offset"]
T = TypeVar("T")
_D = TypeVar("_D")


class Headers(Mapping[str, str]):
    """Response headers as a read-only, case-insensitive mapping: the first value of each name.

    Transports hand headers to the protocol in this shape (any mapping or ``(name, value)``
    pairs are accepted and normalized once); lookups are then one dict access.
    """

    __slots__ = ("_items",)

    def __init__(self, headers: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        items: dict[str, str] = {}
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in pairs:
            items.setdefault(name.lower(), value)
        self._items = items

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> Headers:
        """``headers`` itself if it is a :class:`Headers`, else a normalized copy."""
        return headers if isinstance(headers, Headers) else cls(headers)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, default: str | _D, /) -> str | _D: ...
    def get(self, name: str, default: object = None, /) -> object:
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True, slots=True)
class Request:
    """A request to send: method, path on the configured host, and query parameters."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] | None = None

    def param(self, name: str) -> str | None:
        """The value of query parameter ``name``, or None."""
        for key, value in self.params:
            if key == name:
                return value
        return None

    def with_param(self, name: str, value: str) -> Request:
        """A copy with ``name`` set to ``value`` (replacing any previous value)."""
        params = (*(p for p in self.params if p[0] != name), (name, value))
        return type(self)(self.method, self.path, params, self.form)  # (replace(), faster)


# --- configuration --------------------------------------------------------------------------

# re.ASCII: without it IGNORECASE folds non-ASCII letters onto ASCII ones (U+017F matches "s",
# the Kelvin sign U+212A matches "k"), and a label that passed would name another host.
_DNS_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE | re.ASCII)
# Whitespace, C0/C1 controls and DEL: urlsplit silently drops some (tab, CR, LF), so
# "https://acme.zendesk.com\n.evil.com" would otherwise become another host.
_UNSAFE_URL_CHAR: Final = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# What a host name may hold (urlsplit lowercases it); anything else, "%2e" say, is refused.
_HOST_NAME: Final = re.compile(r"[a-z0-9_.-]+", re.ASCII)


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_base_url(
    subdomain: str | None = None, base_url: str | None = None, *, allow_http: bool = False
) -> str:
    """Return the ``scheme://host[:port]`` every request goes to.

    ``subdomain`` must be an ASCII DNS label (``acme`` for ``https://acme.zendesk.com``).
    ``base_url`` must use https, except on loopback hosts (the emulator) or with
    ``allow_http=True``; surrounding whitespace is ignored, but whitespace or control characters
    inside it, and non-ASCII characters (write an internationalized host in its ``xn--`` form),
    are refused with ValueError.
    """
    if (subdomain is None) == (base_url is None):
        raise ValueError("give exactly one of subdomain= or base_url=")
    if subdomain is not None:
        if not isinstance(subdomain, str):
            raise TypeError(f"subdomain must be a str, not {type(subdomain).__name__}")
        if not (subdomain.isascii() and _DNS_LABEL.fullmatch(subdomain)):
            raise ValueError(
                f"subdomain {subdomain!r} is not a valid DNS label "
                "(letters, digits and inner hyphens, at most 63 characters)"
            )
        return f"https://{subdomain.lower()}.zendesk.com"
    assert base_url is not None
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, not {type(base_url).__name__}")
    base_url = base_url.strip()
    if _UNSAFE_URL_CHAR.search(base_url):
        raise ValueError("base_url must not contain whitespace or control characters")
    if not base_url.isascii():
        raise ValueError(
            "base_url must be ASCII (write an internationalized host in its xn-- form)"
        )
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"base_url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("base_url must look like https://acme.zendesk.com")
    if parts.username is not None or parts.password is not None:
        raise ValueError("base_url must not contain credentials; pass auth= instead")
    if not (_HOST_NAME.fullmatch(host) or _is_ipv6(host)):
        raise ValueError(
            "base_url's host must be a DNS name (letters, digits, '-', '_' and dots) or an IP"
        )
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError("base_url must be a scheme and host only, like https://acme.zendesk.com")
    if parts.scheme == "http" and not (allow_http or _is_loopback(host)):
        raise ValueError(
            "plain http is refused except on loopback hosts; use https or pass allow_http=True"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}"


def format_since(since: datetime | str) -> str:
    """Render ``since`` as Zendesk wants it: UTC, ``%Y-%m-%dT%H:%M:%SZ``.

    Accepts an aware datetime (any offset) or an ISO 8601 string with an offset or ``Z``.
    """
    if isinstance(since, str):
        try:
            value = datetime.fromisoformat(since.strip())
        except ValueError:
            raise ValueError(f"since {since!r} is not an ISO 8601 time") from None
    elif isinstance(since, datetime):
        value = since
    else:
        raise TypeError(f"since must be a datetime or ISO 8601 str, not {type(since).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("since must be timezone-aware (a naive time is ambiguous)")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"since {value!r} is out of range in UTC") from None
    # Not strftime: it does not zero-pad years before 1000.
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
    )


def _check_page_size(page_size: object) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise TypeError(f"page_size must be an int, not {type(page_size).__name__}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
    return page_size


# --- requests -------------------------------------------------------------------------------


def list_request(
    *,
    since: datetime | str | None = None,
    page_size: int = MAX_PAGE_SIZE,
    cursor: str | None = None,
    pagination: Pagination = "cursor",
    page: int = 1,
) -> Request:
    """The first request of a listing. Raises ValueError/TypeError on bad arguments.

    ``cursor`` is a bare ``after_cursor``: it carries no filter, so ``since`` and
    ``page_size`` must be those of the listing it came from (:func:`resume_request` checks
    this for a resume token).
    """
    _check_page_size(page_size)
    params: list[tuple[str, str]] = []
    if since is not None:
        params.append(("since", format_since(since)))
    if pagination == "cursor":
        params.append(("page[size]", str(page_size)))
        if cursor is not None:
            if not isinstance(cursor, str) or not cursor:
                raise ValueError("cursor must be a non-empty str (a saved after_cursor)")
            params.append(("page[after]", cursor))
    elif pagination == "offset":
        if cursor is not None:
            raise ValueError("cursor= only works with cursor pagination")
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise ValueError(f"page must be a positive int, not {page!r}")
        if page > MAX_OFFSET_PAGE:
            raise PaginationDepthError(_depth_message(page))
        params += [("page", str(page)), ("per_page", str(page_size))]
    else:
        raise ValueError(f"pagination must be 'cursor' or 'offset', not {pagination!r}")
    return Request("GET", ACTIVITIES_PATH, tuple(params))


# --- resumption -----------------------------------------------------------------------------

#: The start of every resume token; the digit is the token format's version.
RESUME_TOKEN_PREFIX: Final = "zr1."
_SINCE_FORMAT: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


class _ResumeBody(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    after: str
    since: str | None
    page_size: int


_RESUME_DECODER: Final = msgspec.json.Decoder(_ResumeBody)


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """What a resume token holds: where a cursor listing stopped, and what it was listing.

    ``since`` is as sent to Zendesk (``%Y-%m-%dT%H:%M:%SZ``) or None; ``page_size`` is 1..100.
    """

    after_cursor: str
    since: str | None
    page_size: int

    def token(self) -> str:
        """The opaque, URL-safe token of this point (``zr1.`` then base64url, no padding)."""
        body = msgspec.json.encode(_ResumeBody(self.after_cursor, self.since, self.page_size))
        return RESUME_TOKEN_PREFIX + base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii")

    @classmethod
    def parse(cls, token: str) -> ResumePoint:
        """Read a token made by :meth:`token`. Raises ValueError (TypeError for a non-str)
        when it is not one, without ever echoing it."""
        if not isinstance(token, str):
            raise TypeError(
                f"resume must be a str (a page's resume_token), not {type(token).__name__}"
            )
        bad = ValueError(
            "resume is not a zdactivity resume token (pass a page's resume_token unchanged)"
        )
        if not token.startswith(RESUME_TOKEN_PREFIX):
            if token.startswith("zr") and token[2:3].isdigit():
                raise ValueError(
                    "resume token of an unknown format version: it was made by a newer zdactivity"
                )
            raise bad
        text = token[len(RESUME_TOKEN_PREFIX) :]
        if not text or any(c in "=+/" for c in text):
            raise bad
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
            body = _RESUME_DECODER.decode(raw)
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise bad from None
        if (
            not body.after
            or not 1 <= body.page_size <= MAX_PAGE_SIZE
            or (body.since is not None and not _SINCE_FORMAT.fullmatch(body.since))
        ):
            raise bad
        if body.since is not None:
            try:
                format_since(body.since)  # a real date, not 2026-13-45
            except ValueError:
                raise bad from None
        return cls(body.after, body.since, body.page_size)


def resume_token(request: Request, page: ActivityPage) -> str | None:
    """The token that resumes the listing of ``request`` after ``page``, or None.

    Only cursor listings whose page has an ``after_cursor`` get one. It carries the cursor
    together with the listing's ``since`` and page size, so the rest is the same listing.
    """
    size = request.param("page[size]")
    cursor = page.after_cursor
    if size is None or not cursor:
        return None
    return ResumePoint(cursor, request.param("since"), int(size)).token()


def resume_request(
    token: str,
    *,
    since: datetime | str | None = None,
    page_size: int | None = None,
) -> Request:
    """The request that resumes a listing from a resume token (a page's ``resume_token``).

    ``since`` and ``page_size`` may be given again, but must then agree with the token's:
    a resumed listing is the listing that was interrupted. Raises ValueError/TypeError.
    """
    point = ResumePoint.parse(token)
    if since is not None and format_since(since) != point.since:
        raise ValueError(
            f"since={format_since(since)} conflicts with the resume token's since "
            f"({point.since or 'none'}): a resumed listing keeps its filter; omit since="
        )
    if page_size is not None and _check_page_size(page_size) != point.page_size:
        raise ValueError(
            f"page_size={page_size} conflicts with the resume token's page size "
            f"({point.page_size}); omit page_size="
        )
    return list_request(since=point.since, page_size=point.page_size, cursor=point.after_cursor)


def show_request(activity_id: int) -> Request:
    """The request for one activity."""
    if isinstance(activity_id, bool) or not isinstance(activity_id, int):
        raise TypeError(f"activity_id must be an int, not {type(activity_id).__name__}")
    if activity_id < 1:
        raise ValueError(f"activity_id must be positive, not {activity_id}")
    return Request("GET", f"{ACTIVITIES_PATH}/{activity_id}")


def count_request() -> Request:
    """The request for the approximate count of the last 30 days."""
    return Request("GET", f"{ACTIVITIES_PATH}/count")


def _depth_message(page: int) -> str:
    return (
        f"offset pagination cannot go past page {MAX_OFFSET_PAGE} (10,000 records); "
        f"page {page} was asked for. Use cursor pagination (the default) to read deeper."
    )


def next_request(request: Request, page: ActivityPage, seen: Container[str]) -> Request | None:
    """The request for the page after ``page``, or None when the listing is complete.

    Built from ``meta.after_cursor`` (or the offset page number) on the configured host; links
    are never followed, since real responses name the account's canonical host. ``seen`` holds
    the cursors already requested (the pager keeps only the most recent ones): a repeat raises
    :class:`PaginationError` instead of looping.
    """
    if request.param("page[size]") is not None:
        if not page.has_more:
            return None
        cursor = page.after_cursor
        if not cursor:
            raise PaginationError("the server said has_more but sent no after_cursor")
        if cursor in seen or cursor == request.param("page[after]"):
            raise PaginationError(f"the server repeated cursor {cursor[:40]!r}; stopping")
        return request.with_param("page[after]", cursor)
    if page.next_page is None:
        return None
    number = int(request.param("page") or "1") + 1
    if number > MAX_OFFSET_PAGE:
        raise PaginationDepthError(_depth_message(number))
    return request.with_param("page", str(number))


# --- responses ------------------------------------------------------------------------------


class _Meta(msgspec.Struct):
    has_more: bool = False
    after_cursor: str | None = None
    before_cursor: str | None = None


class _PageBody(msgspec.Struct):
    activities: list[Activity]
    actors: list[msgspec.Raw] = msgspec.field(default_factory=list)
    users: list[msgspec.Raw] = msgspec.field(default_factory=list)
    meta: _Meta | None = None
    count: int | None = None
    next_page: str | None = None


class _ShowBody(msgspec.Struct):
    activity: Activity


class _CountBody(msgspec.Struct):
    count: ActivityCount


_PAGE_DECODER: Final = msgspec.json.Decoder(_PageBody)
_SHOW_DECODER: Final = msgspec.json.Decoder(_ShowBody)
_COUNT_DECODER: Final = msgspec.json.Decoder(_CountBody)


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except (msgspec.ValidationError, RecursionError) as exc:
        raise decode_error(exc, body, "$") from None
    except msgspec.DecodeError as exc:
        what = "empty body" if not body.strip() else "body is not valid JSON"
        raise DecodeError(f"{what}: {exc}", snippet=snippet(body)) from None


def decode_page(
    body: bytes, *, request_id: str | None = None, cache: UserCache | None = None
) -> ActivityPage:
    """Decode a list response: a :class:`~zdactivity.models.CursorPage` when it has ``meta``,
    else an :class:`~zdactivity.models.OffsetPage`. Sideloads stay raw until read.

    ``cache``: the client's :class:`~zdactivity.models.UserCache`, to share user records decoded
    on earlier pages (without one, each user is decoded once per page).
    """
    decoded: _PageBody = _decode(_PAGE_DECODER, body)
    users = UserIndex((("actors", decoded.actors), ("users", decoded.users)), cache)
    activities = decoded.activities
    low, high = MIN_YEAR, MAX_YEAR  # (locals: this loop runs for every activity)
    for activity in activities:  # one pass: attach the index, check the years
        activity.__dict__["_users"] = users
        updated = activity.updated_at
        if not low <= activity.created_at.year <= high or (
            updated is not None and not low <= updated.year <= high
        ):
            _check_years(activity, f"$.activities[{activities.index(activity)}]")
    meta = decoded.meta
    if meta is not None:
        return CursorPage(
            activities,
            has_more=meta.has_more,
            after_cursor=meta.after_cursor,
            before_cursor=meta.before_cursor,
            request_id=request_id,
            users=users,
        )
    return OffsetPage(
        activities,
        count=decoded.count,
        next_page=decoded.next_page,
        request_id=request_id,
        users=users,
    )


def decode_activity(body: bytes, *, cache: UserCache | None = None) -> Activity:
    """Decode a show response (``cache`` as for :func:`decode_page`)."""
    activity: Activity = _decode(_SHOW_DECODER, body).activity
    _check_years(activity, "$.activity")
    attach((activity,), UserIndex((), cache))
    return activity


def decode_count(body: bytes) -> ActivityCount:
    """Decode a count response."""
    count: ActivityCount = _decode(_COUNT_DECODER, body).count
    refreshed = count.refreshed_at
    if refreshed is not None and not MIN_YEAR <= refreshed.year <= MAX_YEAR:
        raise DecodeError(
            f"refreshed_at {refreshed.isoformat()} is outside the years {MIN_YEAR}..{MAX_YEAR}"
            " - at `$.count.refreshed_at`",
            path="$.count.refreshed_at",
        )
    return count


def _check_years(activity: Activity, where: str) -> None:
    """Refuse an activity whose times are out of MIN_YEAR..MAX_YEAR."""
    for name, value in (("created_at", activity.created_at), ("updated_at", activity.updated_at)):
        if value is not None and not MIN_YEAR <= value.year <= MAX_YEAR:
            path = f"{where}.{name}"
            raise DecodeError(
                f"{name} {value.isoformat()} is outside the years {MIN_YEAR}..{MAX_YEAR}"
                f" - at `{path}`",
                path=path,
            )


def check_content_type(headers: Mapping[str, str], body: bytes) -> None:
    """Refuse a successful response that says it is not JSON (an HTML proxy page, say)."""
    content_type = Headers.of(headers).get("content-type")
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise DecodeError(
            f"expected a JSON body, got {media or 'no'} content", snippet=snippet(body)
        )


# --- headers --------------------------------------------------------------------------------


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup (any mapping; see :class:`Headers`)."""
    return Headers.of(headers).get(name)


def request_id_from_headers(headers: Mapping[str, str]) -> str | None:
    """Zendesk's request id (``X-Zendesk-Request-Id``, else ``X-Request-Id``)."""
    headers = Headers.of(headers)
    for name in ("x-zendesk-request-id", "x-request-id"):
        for part in (headers.get(name) or "").split(","):
            if part.strip():
                return part.strip()
    return None


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """What a response says of the account's rate limit; None where a header is absent."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.split(",")[0].strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


_LIMIT_NAMES: Final = ("x-rate-limit", "rate-limit", "ratelimit-limit")
_REMAINING_NAMES: Final = ("x-rate-limit-remaining", "rate-limit-remaining", "ratelimit-remaining")
_RESET_NAMES: Final = ("rate-limit-reset", "ratelimit-reset")


def _first_number(items: dict[str, str], names: tuple[str, ...]) -> float | None:
    """The first of ``names`` present with a usable number (see :func:`_number`)."""
    for name in names:
        value = items.get(name)
        if value is not None:
            number = _number(value)
            if number is not None:
                return number
    return None


def rate_limit_from_headers(headers: Mapping[str, str]) -> RateLimitHeaders:
    """Read the limit, remaining and reset headers, in any of Zendesk's spellings.

    Values that are not finite numbers >= 0 are ignored, and so is a limit below 1 (a budget of
    no requests per window would stall every request). The reset is as sent: the limiter caps
    it at its window."""

    items = Headers.of(headers)._items  # (the names below are lower case already)
    limit = _first_number(items, _LIMIT_NAMES)
    remaining = _first_number(items, _REMAINING_NAMES)
    reset = _first_number(items, _RESET_NAMES)
    return RateLimitHeaders(
        limit=int(limit) if limit is not None and limit >= 1 else None,
        remaining=int(remaining) if remaining is not None else None,
        reset=reset,
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: integer or fractional seconds, or an HTTP
    date. None when absent or unreadable; never negative."""
    if value is None or not value.strip():
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --- errors ---------------------------------------------------------------------------------

_ERROR_CLASSES: Final[dict[int, type[APIError]]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: InvalidRequestError,
    429: RateLimitError,
}
_TAG: Final = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_SPACE: Final = re.compile(r"\s+")
_BODY_LIMIT: Final = 2000
_CODE_LIMIT: Final = 100
_DESCRIPTION_LIMIT: Final = 500


def _error_details(body: bytes) -> tuple[str | None, str | None]:
    """Zendesk's error code and description, from any of its body shapes."""
    try:
        code, description = _details_of(msgspec.json.decode(body))
    except (msgspec.DecodeError, RecursionError):  # not JSON, or nested too deeply to read
        text = _SPACE.sub(" ", _TAG.sub(" ", body[:_BODY_LIMIT].decode("utf-8", "replace")))
        return None, text.strip()[:200] or None
    # The server chooses these texts: keep an error message readable whatever it sends.
    return (
        None if code is None else code[:_CODE_LIMIT],
        None if description is None else description[:_DESCRIPTION_LIMIT],
    )


def _details_of(data: object) -> tuple[str | None, str | None]:
    if not isinstance(data, dict):
        return None, None
    error, errors = data.get("error"), data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        texts = [
            str(e.get("detail") or e.get("title") or "") for e in errors if isinstance(e, dict)
        ]
        return _str(first.get("code")), "; ".join(t for t in texts if t) or None
    if isinstance(error, dict):
        return _str(error.get("title")), _str(error.get("message") or error.get("description"))
    description = _str(data.get("description") or data.get("message"))
    details = data.get("details")
    if details:
        # RecordInvalid: {"details": {"field": [{"description": "..."}]}} holds the useful text.
        extra = msgspec.json.encode(details).decode()[:300]
        description = f"{description}: {extra}" if description else extra
    if isinstance(error, str):
        if description is None and " " in error.strip():
            return None, error  # {"error": "Couldn't authenticate you"}
        return error, description
    return None, description


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


_UNSET: Final[Any] = object()


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str | None = None,
    path: str | None = None,
    now: datetime | None = None,
    request_id: str | None = _UNSET,
) -> APIError:
    """The exception for an error response (status >= 300).

    ``request_id``: the one already read from ``headers`` (read here when not given).
    """
    headers = Headers.of(headers)
    code, description = _error_details(body)
    cls = _ERROR_CLASSES.get(status) or (ServerError if status >= 500 else APIError)
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(headers.get("retry-after"), now=now)
    if request_id is _UNSET:
        request_id = request_id_from_headers(headers)
    return cls(
        status,
        code=code,
        description=description,
        request_id=request_id,
        body=body[:_BODY_LIMIT].decode("utf-8", "replace"),
        method=method,
        path=path,
        retry_after=retry_after,
    )


# --- interpreting a response ----------------------------------------------------------------

Decoder = Callable[[bytes, str | None], T]
"""Decodes a successful body; called with the body and the response's request id."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What :func:`interpret` made of one response.

    ``value`` is the decoded result when ``error`` is None. ``error`` is the typed error of an
    error status (an :class:`~zdactivity.APIError` with ``.retry_after``) or of a body that
    does not decode. ``request_id`` and ``rate_limit`` are read from the headers either way:
    the rate limiter learns from failed responses too.
    """

    status: int
    request_id: str | None
    rate_limit: RateLimitHeaders
    value: T | None = None
    error: ZendeskError | None = None


def interpret(
    request: Request,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    decode: Decoder[T],
    *,
    require_json: bool = True,
    now: datetime | None = None,
) -> Outcome[T]:
    """Read one response to ``request``: the decoded value or the typed error, and its facts.

    Each header is parsed once. A status >= 300 becomes an APIError (with ``Retry-After`` on
    429/503); otherwise, with ``require_json``, a body that says it is not JSON is a
    DecodeError, and the body goes to ``decode`` (whose ZendeskError becomes the outcome's
    error). Never raises a ZendeskError; never does I/O.
    """
    headers = Headers.of(headers)
    request_id = request_id_from_headers(headers)
    rate_limit = rate_limit_from_headers(headers)
    if status >= 300:
        error: ZendeskError = error_from_response(
            status,
            headers,
            body,
            method=request.method,
            path=request.path,
            now=now,
            request_id=request_id,
        )
        return Outcome(status, request_id, rate_limit, error=error)
    try:
        if require_json:
            check_content_type(headers, body)
        value = decode(body, request_id)
    except ZendeskError as exc:
        return Outcome(status, request_id, rate_limit, error=exc)
    return Outcome(status, request_id, rate_limit, value=value)


# --- OAuth refresh --------------------------------------------------------------------------


def credential_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent as (part of) a credential, or None if it can.

    Control characters (CR, LF, NUL, tab... and DEL) would split or corrupt the header; the
    reason never quotes the value.
    """
    if not value.strip():
        return "is missing or empty"
    if not value.isprintable() and any(
        ch < " " or "\x7f" <= ch <= "\x9f" or ch in "\u2028\u2029" for ch in value
    ):
        return "contains a control character (CR, LF, NUL, tab...), which cannot be sent"
    return None


def refresh_request(
    refresh_token: str, *, client_id: str | None = None, client_secret: str | None = None
) -> Request:
    """``POST /oauth/tokens`` with the ``grant_type=refresh_token`` form."""
    form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)]
    if client_id is not None:
        form.append(("client_id", client_id))
    if client_secret is not None:
        form.append(("client_secret", client_secret))
    return Request("POST", TOKEN_PATH, form=tuple(form))


class _TokenPair(msgspec.Struct):
    access_token: str
    refresh_token: str


_TOKEN_DECODER: Final = msgspec.json.Decoder(_TokenPair)


def decode_token_pair(
    body: bytes, request_id: str | None = None, *, status: int = 200
) -> tuple[str, str]:
    """The new ``(access, refresh)`` pair of a token response (a :data:`Decoder`).

    AuthenticationError when there is none or a token could not be sent (never quoting it).
    """
    try:
        pair = _TOKEN_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError):
        raise AuthenticationError(
            status, description="OAuth refresh returned no token pair"
        ) from None
    for name, value in (("access_token", pair.access_token), ("refresh_token", pair.refresh_token)):
        problem = credential_problem(value)
        if problem is not None:  # never the value itself: it is a secret
            raise AuthenticationError(
                status,
                description=f"OAuth refresh returned an unusable {name}: it {problem}",
            )
    return pair.access_token, pair.refresh_token


def refresh_error(error: ZendeskError) -> AuthenticationError:
    """The AuthenticationError that ends a refresh which failed with ``error``."""
    if isinstance(error, APIError):
        return AuthenticationError(
            error.status,
            code=error.code,
            description=f"OAuth refresh failed: {error.description or error.status}",
            request_id=error.request_id,
            method="POST",
            path=TOKEN_PATH,
            retry_after=error.retry_after,
        )
    return AuthenticationError(401, description=f"OAuth refresh failed: {error}")

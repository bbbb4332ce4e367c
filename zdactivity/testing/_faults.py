"""Scripted faults: what ``Emulator.inject`` queues and the canned bodies they send.

A ``Fault`` is a plain value; ``FaultQueue`` hands them out in FIFO order to the requests they
match. How each kind goes on the wire is ``Server.faults`` (in ``_server``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Literal, get_args

import msgspec

__all__ = [
    "Fault",
    "FaultKind",
    "FaultQueue",
    "MalformedKind",
    "canned_body",
    "malformed_body",
    "path_kind",
    "status_body",
]

FaultKind = Literal[
    "ok", "status", "latency", "stall", "stall_mid_body", "reset", "reset_mid_body", "malformed"
]
MalformedKind = Literal["truncated", "html", "empty", "wrong_types", "not_json", "bad_gzip"]
_FAULT_KINDS: Final = frozenset(get_args(FaultKind))
_MALFORMED_KINDS: Final = frozenset(get_args(MalformedKind))

JSON_TYPE: Final = "application/json; charset=utf-8"
HTML_TYPE: Final = "text/html"

_encode = msgspec.json.encode


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted misbehaviour for one request. Build with the class methods.

    ``kind`` says which; ``code``/``retry_after``/``body``/``content_type`` belong to
    ``status``, ``seconds`` to ``latency`` and ``variant`` to ``malformed``.
    """

    kind: FaultKind
    code: int | None = None
    retry_after: str | None = None
    body: bytes | None = None
    content_type: str | None = None
    seconds: float = 0.0
    variant: MalformedKind | None = None

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")

    @classmethod
    def ok(cls) -> Fault:
        """No fault: the request is served normally (a placeholder in a sequence)."""
        return cls("ok")

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | str | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Fault:
        """Answer ``code`` with a Zendesk-shaped default body (or ``body``/``content_type``).

        ``retry_after`` is sent verbatim as ``Retry-After`` (``2`` -> "2", ``0.5`` -> "0.5",
        a str such as an HTTP date as is); without it there is no ``Retry-After`` header.
        """
        if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 599:
            raise ValueError(f"status code must be an int between 200 and 599, not {code!r}")
        if isinstance(retry_after, bool):
            raise TypeError("retry_after must be a number, a str or None")
        if body is not None and not isinstance(body, bytes):
            raise TypeError("body must be bytes")
        return cls(
            "status",
            code=code,
            retry_after=None if retry_after is None else str(retry_after),
            body=body,
            content_type=content_type,
        )

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        """Delay this request by ``seconds``, then serve it normally."""
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be a finite number >= 0, not {seconds!r}")
        return cls("latency", seconds=float(seconds))

    @classmethod
    def stall(cls) -> Fault:
        """Accept the request and never answer (until the client leaves or the emulator stops)."""
        return cls("stall")

    @classmethod
    def stall_mid_body(cls) -> Fault:
        """Send 200 headers with the full Content-Length and half the body, then go silent."""
        return cls("stall_mid_body")

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection (TCP RST) without sending any response."""
        return cls("reset")

    @classmethod
    def reset_mid_body(cls) -> Fault:
        """Send 200 headers with the full Content-Length and half the body, then close."""
        return cls("reset_mid_body")

    @classmethod
    def malformed(cls, kind: MalformedKind) -> Fault:
        """A 200 whose body is broken in the way ``kind`` says:

        ``truncated`` (half of a JSON body), ``html`` (an HTML page, ``text/html``), ``empty``,
        ``wrong_types`` (valid JSON of the wrong shape), ``not_json`` (garbage bytes labelled
        JSON), ``bad_gzip`` (``Content-Encoding: gzip`` on a body that is not gzip).
        """
        if kind not in _MALFORMED_KINDS:
            raise ValueError(f"malformed kind must be one of {sorted(_MALFORMED_KINDS)}")
        return cls("malformed", variant=kind)

    def __repr__(self) -> str:
        if self.kind == "status":
            args = [repr(self.code)]
            for name in ("retry_after", "body", "content_type"):
                value = getattr(self, name)
                if value is not None:
                    args.append(f"{name}={value!r}")
            return f"Fault.status({', '.join(args)})"
        if self.kind == "latency":
            return f"Fault.latency({self.seconds!r})"
        if self.kind == "malformed":
            return f"Fault.malformed({self.variant!r})"
        return f"Fault.{self.kind}()"

    @property
    def answers(self) -> bool:
        """False for ``ok``/``latency``: the request is then served normally."""
        return self.kind not in ("ok", "latency")


@dataclass(frozen=True, slots=True)
class _Queued:
    fault: Fault
    path: str | None
    user_id: int | None

    def matches(self, path: str, user_id: int | None) -> bool:
        if self.path is not None and not path.startswith(self.path):
            return False
        return self.user_id is None or self.user_id == user_id


class FaultQueue:
    """Faults waiting for requests. Each request takes the first one it matches."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[_Queued] = []

    def add(self, faults: tuple[Fault, ...], path: str | None, user_id: int | None) -> None:
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"expected Fault instances, got {fault!r}")
        if path is not None and not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        self._items.extend(_Queued(fault, path, user_id) for fault in faults)

    @property
    def wants_user(self) -> bool:
        """Whether some queued fault is for one agent only (matching needs the caller)."""
        return any(item.user_id is not None for item in self._items)

    def take(self, path: str, user_id: int | None) -> Fault | None:
        items = self._items
        for i, item in enumerate(items):
            if item.matches(path, user_id):
                del items[i]
                return item.fault
        return None

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


# --------------------------------------------------------------------------------------------
# Bodies


def _html(title: str, text: str) -> bytes:
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1>"
        f"</center>\r\n<p>{text}</p>\r\n</body>\r\n</html>\r\n"
    ).encode()


TOO_MANY: Final = (
    b"<html>\n<head><title>429 Too Many Requests</title></head>\n<body>\n"
    b"<h1>Too Many Requests</h1>\n<p>You have been rate limited. Retry after the number of "
    b"seconds in the Retry-After header.</p>\n</body>\n</html>\n"
)

_STATUS_BODIES: Final[dict[int, tuple[bytes, str]]] = {
    400: (
        _encode(
            {"error": "RecordInvalid", "description": "Record validation errors", "details": {}}
        ),
        JSON_TYPE,
    ),
    401: (_encode({"error": "Couldn't authenticate you"}), JSON_TYPE),
    403: (
        _encode(
            {
                "error": {
                    "title": "Forbidden",
                    "message": "You do not have access to this page. Please contact the account "
                    "owner of this help desk for further help.",
                }
            }
        ),
        JSON_TYPE,
    ),
    404: (_encode({"error": "RecordNotFound", "description": "Not found"}), JSON_TYPE),
    422: (
        _encode(
            {"error": "RecordInvalid", "description": "Record validation errors", "details": {}}
        ),
        JSON_TYPE,
    ),
    429: (TOO_MANY, HTML_TYPE),
    500: (_encode({"status": 500, "error": "Internal Server Error"}), JSON_TYPE),
    502: (_html("502 Bad Gateway", "The upstream server sent an invalid response."), HTML_TYPE),
    503: (
        _encode(
            {
                "error": "ServiceUnavailable",
                "description": "Zendesk is temporarily unavailable. Please try again later.",
            }
        ),
        JSON_TYPE,
    ),
    504: (_html("504 Gateway Time-out", "The upstream server did not answer in time."), HTML_TYPE),
}


def status_body(code: int) -> tuple[bytes, str]:
    """Default ``(body, content type)`` of ``Fault.status(code)``."""
    known = _STATUS_BODIES.get(code)
    if known is not None:
        return known
    if code in (204, 304):
        return b"", JSON_TYPE
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Error" if code >= 400 else "OK"
    return _encode({"error": phrase} if code >= 400 else {}), JSON_TYPE


_TOKEN_PATH = re.compile(r"/oauth/tokens(?:\.json)?")
_COUNT_PATH = re.compile(r"/api/v2/activities/count(?:\.json)?")
_SHOW_PATH = re.compile(r"/api/v2/activities/[^/]+")

PathKind = Literal["list", "show", "count", "token"]


def path_kind(path: str) -> PathKind:
    if _TOKEN_PATH.fullmatch(path):
        return "token"
    if _COUNT_PATH.fullmatch(path):
        return "count"
    if _SHOW_PATH.fullmatch(path):
        return "show"
    return "list"


def _fake_activity(base: str, activity_id: int) -> dict[str, Any]:
    user = {"id": 1_000_001, "url": f"{base}/api/v2/users/1000001.json", "name": "Ada Abara"}
    return {
        "url": f"{base}/api/v2/activities/{activity_id}.json",
        "id": activity_id,
        "title": "Ada Abara commented on ticket #1234: Any news on this?.",
        "verb": "tickets.comment",
        "user_id": 1_000_001,
        "actor_id": 1_000_002,
        "updated_at": "2024-05-01T12:00:00Z",
        "created_at": "2024-05-01T12:00:00Z",
        "object": {"comment": {"value": "Any news on this?", "public": True}},
        "target": {"ticket": {"id": 1234, "subject": "Cannot log in"}},
        "user": user,
        "actor": {**user, "id": 1_000_002, "name": "Bruno Becker"},
    }


def canned_body(path: str, base: str) -> bytes:
    """A well-formed body shaped like ``path``'s answer: what mid-body faults and ``truncated``
    cut short. Fixed content, not the account's data (no side effects, e.g. no token refresh)."""
    kind = path_kind(path)
    body: Any
    if kind == "token":
        body = {
            "access_token": "f" * 64,
            "refresh_token": "e" * 64,
            "token_type": "bearer",
            "scope": "read",
            "expires_in": 7200,
        }
    elif kind == "count":
        body = {"count": {"value": 102, "refreshed_at": "2024-05-01T12:00:00Z"}}
    elif kind == "show":
        body = {"activity": _fake_activity(base, 12_936_000_000_001)}
    else:
        acts = [_fake_activity(base, 12_936_000_000_001 + i) for i in range(3)]
        body = {
            "activities": acts,
            "actors": [acts[0]["actor"]],
            "users": [acts[0]["user"]],
            "meta": {"has_more": False, "after_cursor": None, "before_cursor": None},
            "links": {"prev": None, "next": None},
        }
    return _encode(body)


_WRONG_TYPES: Final[dict[PathKind, bytes]] = {
    "list": _encode(
        {
            "activities": "nope",
            "actors": [],
            "users": [],
            "meta": {"has_more": "yes", "after_cursor": 7, "before_cursor": None},
        }
    ),
    "show": _encode({"activity": {"id": "x", "verb": 7, "created_at": "yesterday"}}),
    "count": _encode({"count": {"value": "many", "refreshed_at": 7}}),
    "token": _encode(
        {"access_token": 12345, "refresh_token": None, "token_type": "bearer", "expires_in": "x"}
    ),
}

_HTML_PAGE: Final = (
    b'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
    b"<title>Zendesk - Maintenance</title></head>\n<body>\n<h1>We'll be right back</h1>\n"
    b"<p>Zendesk is undergoing scheduled maintenance.</p>\n</body>\n</html>\n"
)
_GARBAGE: Final = b"\x8b\x00\xff\xfe<<garbage>>\x00{]\x9c not json \xc3\x28"


def malformed_body(variant: MalformedKind, path: str, base: str) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a ``Fault.malformed(variant)`` answer (status 200)."""
    if variant == "html":
        return _HTML_PAGE, {"Content-Type": HTML_TYPE}
    json_headers = {"Content-Type": JSON_TYPE}
    if variant == "empty":
        return b"", json_headers
    if variant == "not_json":
        return _GARBAGE, json_headers
    if variant == "wrong_types":
        return _WRONG_TYPES[path_kind(path)], json_headers
    full = canned_body(path, base)
    if variant == "truncated":
        return full[: len(full) // 2], json_headers
    return full, {**json_headers, "Content-Encoding": "gzip"}  # bad_gzip

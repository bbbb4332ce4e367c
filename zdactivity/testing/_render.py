"""JSON rendering of the emulator's users and activities, fast by caching encoded pieces.

A user record is encoded once, with ``PLACEHOLDER`` where its base URL goes; per base URL the
placeholder is replaced once and the result cached (``RenderedUsers``). An activity keeps its
encoded JSON minus ``url``/``user``/``actor`` (``activity_tail``), so rendering one is a
``bytes.join`` of cached pieces (``render``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

__all__ = [
    "PLACEHOLDER",
    "PLACEHOLDER_STR",
    "SYSTEM_ACTOR_ID",
    "RenderedUsers",
    "activity_tail",
    "format_time",
    "json_escape",
    "render",
]

#: ``actor_id`` of the Zendesk system user (triggers, automations): rendered without ``actor``.
SYSTEM_ACTOR_ID = -1

PLACEHOLDER = b"@@ZDEMU_BASE@@"
PLACEHOLDER_STR = PLACEHOLDER.decode()

_encode = msgspec.json.encode


class _User(Protocol):
    """What rendering needs of a user (``_account.User``)."""

    @property
    def template(self) -> bytes: ...


class _Activity(Protocol):
    """What rendering needs of an activity (``_account.Activity``)."""

    @property
    def actor_id(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def tail(self) -> bytes: ...


def format_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def json_escape(text: str) -> bytes:
    """``text`` as the inside of a JSON string literal."""
    return _encode(text)[1:-1]


def activity_tail(
    activity_id: int,
    created_at: int,
    user_id: int,
    actor_id: int,
    content: tuple[str, str, Any, Any],
) -> bytes:
    """b'/api/v2/activities/{id}.json","id":...,"target":{...},"user":': everything
    between the base URL and the inline user record."""
    verb, title, obj, target = content
    stamp = format_time(created_at)
    body = {
        "id": activity_id,
        "title": title,
        "verb": verb,
        "user_id": user_id,
        "actor_id": actor_id,
        "updated_at": stamp,
        "created_at": stamp,
        "object": obj,
        "target": target,
    }
    return b"".join(
        (b'/api/v2/activities/%d.json",' % activity_id, _encode(body)[1:-1], b',"user":')
    )


class RenderedUsers(dict[int, bytes]):
    """User records encoded for one base URL, filled lazily."""

    __slots__ = ("_base", "_users")

    def __init__(self, users: Mapping[int, _User], base: bytes) -> None:
        super().__init__()
        self._users = users
        self._base = base

    def __missing__(self, user_id: int) -> bytes:
        value = self._users[user_id].template.replace(PLACEHOLDER, self._base)
        self[user_id] = value
        return value


def render(act: _Activity, base: bytes, users: RenderedUsers) -> bytes:
    """One activity's JSON object for ``base`` (already JSON-escaped)."""
    if act.actor_id == SYSTEM_ACTOR_ID:
        return b"".join((b'{"url":"', base, act.tail, users[act.user_id], b"}"))
    return b"".join(
        (
            b'{"url":"',
            base,
            act.tail,
            users[act.user_id],
            b',"actor":',
            users[act.actor_id],
            b"}",
        )
    )

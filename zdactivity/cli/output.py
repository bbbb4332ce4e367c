"""What the commands print on stdout: one JSON object per line."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC
from typing import Any

import msgspec

from ..models import Activity, Content

__all__ = ["JSONLines", "activity_record"]


def _content(content: Content) -> dict[str, Any]:
    return {"kind": content.kind, "data": content.data}


def activity_record(activity: Activity, *, agent: str | None = None) -> dict[str, Any]:
    """What ``list``, ``show``, ``tail`` and ``fan-out`` print for an activity."""
    actor, user = activity.actor, activity.user
    record: dict[str, Any] = {} if agent is None else {"agent": agent}
    record.update(
        id=activity.id,
        verb=activity.verb,
        title=activity.title,
        created_at=activity.created_at.astimezone(UTC),
        actor_id=activity.actor_id,
        actor_name=actor.name if actor is not None else None,
        user_id=activity.user_id,
        user_name=user.name if user is not None else None,
        object=_content(activity.object),
        target=_content(activity.target),
    )
    return record


class JSONLines:
    """JSON lines on stdout (binary, one write per record)."""

    def __init__(self, *, flush_each: bool = False) -> None:
        self._stream = sys.stdout.buffer
        self._flush_each = flush_each
        self._encoder = msgspec.json.Encoder()

    def write(self, record: Mapping[str, Any]) -> None:
        self._stream.write(self._encoder.encode(record) + b"\n")
        if self._flush_each:
            self._stream.flush()

    def flush(self) -> None:
        self._stream.flush()

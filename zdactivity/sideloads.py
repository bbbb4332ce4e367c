"""The lazy sideload engine: how a page's activities find their actor and user records.

A list response carries each activity's ``actor`` / ``user`` inline and again in the sideloaded
``actors`` / ``users`` arrays. Decoding all of them would cost more than the rest of the page, so
the protocol decodes them as raw JSON and hands them here: :class:`UserIndex` is one page's
lookup of user records by id, built on the first read (only the ``id`` of each sideloaded record
is decoded then), that decodes each distinct user at most once per page, and shares the records
of earlier pages through the client's :class:`~zdactivity.models.UserCache`. :func:`attach` gives
a page's activities their index; ``activity.actor`` and ``activity.user`` ask it.

The package's decoders use this module; nothing in it is needed to read activities.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from .errors import decode_error
from .models import Activity, User, UserCache

__all__ = ["UserIndex", "attach"]

_NULL: Final = msgspec.Raw(b"null")


class _Id(msgspec.Struct):
    id: int


_ID_DECODER: Final = msgspec.json.Decoder(_Id)
_USER_DECODER: Final = msgspec.json.Decoder(User)


class UserIndex:
    """One page's user records by id: built on first need, decodes each user once.

    ``sideloads`` pairs each array's name (for error paths) with its raw records, in the order
    a record of an id is looked for (the first record of an id wins). ``cache`` is the client's
    :class:`~zdactivity.models.UserCache`, or None to decode each user once per page.
    """

    __slots__ = ("_cache", "_decoded", "_index", "_sideloads")

    def __init__(
        self,
        sideloads: tuple[tuple[str, list[msgspec.Raw]], ...] = (),
        cache: UserCache | None = None,
    ) -> None:
        self._sideloads = sideloads
        self._cache = cache
        self._index: dict[int, tuple[msgspec.Raw, str]] | None = None
        self._decoded: dict[int, User] = {}

    def _build(self) -> dict[int, tuple[msgspec.Raw, str]]:
        index: dict[int, tuple[msgspec.Raw, str]] = {}
        cache = self._cache
        for name, records in self._sideloads:
            for i, raw in enumerate(records):
                known = cache.get(bytes(raw)) if cache is not None else None
                if known is not None:  # seen on an earlier page: id and User known already
                    if known.id not in index:
                        index[known.id] = (raw, f"$.{name}[{i}]")
                        self._decoded.setdefault(known.id, known)
                    continue
                try:
                    index.setdefault(_ID_DECODER.decode(raw).id, (raw, f"$.{name}[{i}]"))
                except (msgspec.DecodeError, RecursionError) as exc:
                    raise decode_error(exc, raw, f"$.{name}[{i}]") from None
        self._sideloads = ()
        self._index = index
        return index

    def get(
        self, user_id: int | None, inline: msgspec.Raw, activity_id: int, key: str
    ) -> User | None:
        """The record of ``user_id`` (sideloaded first, else the ``inline`` record of activity
        ``activity_id``'s field ``key``), or None. Raises DecodeError for a malformed record."""
        if user_id is not None:
            user = self._decoded.get(user_id)
            if user is not None:
                return user
            index = self._index if self._index is not None else self._build()
            found = index.get(user_id)
            if found is not None:
                user = _decode_user(*found, self._cache)
                self._decoded[user_id] = user
                return user
        if inline == _NULL:
            return None
        user = _decode_user(inline, f"$.activities[id={activity_id}].{key}", self._cache)
        self._decoded.setdefault(user.id if user_id is None else user_id, user)
        return user

    def lookup(self, user_id: int) -> User | None:
        """The sideloaded (or already decoded inline) record of ``user_id``, or None."""
        return self.get(user_id, _NULL, 0, "")


def attach(activities: Iterable[Activity], index: UserIndex) -> None:
    """Let ``activities`` (decoded from one response) resolve their users through ``index``."""
    for activity in activities:
        activity.__dict__["_users"] = index


def _decode_user(raw: msgspec.Raw, where: str, cache: UserCache | None) -> User:
    key = None
    if cache is not None:
        key = bytes(raw)
        user = cache.get(key)
        if user is not None:
            return user
    try:
        user = _USER_DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise decode_error(exc, raw, where) from None
    if cache is not None and key is not None:
        cache.add(key, user)
    return user

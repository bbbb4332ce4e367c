"""The lazy sideload engine: how a page's activities find their actor and user records.

A list response carries each activity's ``actor`` / ``user`` inline and again in the sideloaded
``actors`` / ``users`` arrays. Decoding all of them would cost more than the rest of the page, so
the protocol decodes them as raw JSON and hands them here: :class:`UserIndex` is one page's
lookup of user records by id, built on the first read (each sideloaded record not already in the
cache is decoded then, once: Zendesk sideloads the users the page names), that resolves each
distinct user at most once per page, and shares the records of earlier pages through the
client's :class:`~zdactivity.models.UserCache` (a record joins it when its user is read).
:func:`attach` gives a page's activities their index; ``activity.actor`` and ``activity.user``
ask it.

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

# A sideloaded record, as indexed: its raw JSON, its bytes when made (the cache key), where it is
# (array name and position, for error paths), and its User when decoded while indexing.
_Entry = tuple[msgspec.Raw, bytes | None, str, int, User | None]


class UserIndex:
    """One page's user records by id: built on first need, decodes each user once.

    ``sideloads`` pairs each array's name (for error paths) with its raw records, in the order
    a record of an id is looked for (the first record of an id wins). ``cache`` is the client's
    :class:`~zdactivity.models.UserCache`, or None to decode each user once per page.
    ``decoded`` holds the records resolved so far, by id (what a repeated read finds first).
    """

    __slots__ = ("_cache", "_index", "_sideloads", "decoded")

    def __init__(
        self,
        sideloads: tuple[tuple[str, list[msgspec.Raw]], ...] = (),
        cache: UserCache | None = None,
    ) -> None:
        self._sideloads = sideloads
        self._cache = cache
        self._index: dict[int, _Entry] | None = None
        self.decoded: dict[int, User] = {}

    def _build(self) -> dict[int, _Entry]:
        # A record the cache knows costs a bytes copy and a hash. Any other is decoded in full
        # at once: Zendesk sideloads the users a page names, so it will be read, and finding its
        # id alone would scan it a second time. A record that does not decode is indexed by its
        # id alone, so that its error is raised only when its user is read. The JSON path of a
        # record is made only for an error.
        index: dict[int, _Entry] = {}
        decoded = self.decoded
        cache = self._cache
        for name, records in self._sideloads:
            for i, raw in enumerate(records):
                key = None
                if cache is not None:
                    key = bytes(raw)
                    known = cache.get(key)
                    if known is not None:  # seen on an earlier page: id and User known already
                        user_id = known.id
                        if user_id not in index:
                            index[user_id] = (raw, key, name, i, known)
                            if user_id not in decoded:
                                decoded[user_id] = known
                        continue
                try:
                    user: User | None = _USER_DECODER.decode(raw)
                except (msgspec.DecodeError, RecursionError):
                    user = None
                if user is not None:
                    user_id = user.id
                else:
                    try:
                        user_id = _ID_DECODER.decode(raw).id
                    except (msgspec.DecodeError, RecursionError) as exc:
                        raise decode_error(exc, raw, f"$.{name}[{i}]") from None
                if user_id not in index:
                    index[user_id] = (raw, key, name, i, user)
        self._sideloads = ()
        self._index = index
        return index

    def get(
        self, user_id: int | None, inline: msgspec.Raw, activity_id: int, key: str
    ) -> User | None:
        """The record of ``user_id`` (sideloaded first, else the ``inline`` record of activity
        ``activity_id``'s field ``key``), or None. Raises DecodeError for a malformed record."""
        if user_id is not None:
            user = self.decoded.get(user_id)
            if user is not None:
                return user
            index = self._index if self._index is not None else self._build()
            found = index.get(user_id)
            if found is not None:
                raw, cache_key, name, i, user = found
                cache = self._cache
                if user is None:  # raises its DecodeError
                    user = _decode_user(raw, cache_key, cache, name, i)
                elif cache is not None and cache_key is not None:
                    cache.add(cache_key, user)
                self.decoded[user_id] = user
                return user
        if inline == _NULL:
            return None
        user = _decode_user(inline, None, self._cache, f"activities[id={activity_id}]", key)
        self.decoded.setdefault(user.id if user_id is None else user_id, user)
        return user

    def lookup(self, user_id: int) -> User | None:
        """The sideloaded (or already decoded inline) record of ``user_id``, or None."""
        return self.get(user_id, _NULL, 0, "")


def attach(activities: Iterable[Activity], index: UserIndex) -> None:
    """Let ``activities`` (decoded from one response) resolve their users through ``index``."""
    for activity in activities:
        activity.__dict__["_users"] = index


def _decode_user(
    raw: msgspec.Raw, key: bytes | None, cache: UserCache | None, where: str, item: int | str
) -> User:
    """Decode ``raw`` (found at ``$.where[item]`` or ``$.where.item``), or take it from
    ``cache``; ``key``: ``bytes(raw)`` if already made."""
    if cache is not None:
        if key is None:
            key = bytes(raw)
        user = cache.get(key)
        if user is not None:
            return user
    try:
        user = _USER_DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        path = f"$.{where}[{item}]" if isinstance(item, int) else f"$.{where}.{item}"
        raise decode_error(exc, raw, path) from None
    if cache is not None and key is not None:
        cache.add(key, user)
    return user

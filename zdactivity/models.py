"""Typed records of the Ticket Activities API, decoded with msgspec: only the models.

:class:`Activity`, :class:`User` (with :class:`Photo` / :class:`Thumbnail`), :class:`Content`
(:class:`Ticket`, :class:`Comment`, :class:`Change`), :class:`ActivityCount`, and the pages of a
listing: :class:`CursorPage` and :class:`OffsetPage`, both :class:`ActivityPage`.

Decoding is lazy where it pays: a page decodes its activities' scalar fields at once, but keeps the
inline ``actor`` / ``user`` records, the sideloaded ``actors`` / ``users`` arrays and the
``object`` / ``target`` content as undecoded JSON (:class:`msgspec.Raw`). Reading
``activity.actor`` asks the page's user index (:mod:`zdactivity.sideloads`, the engine: it indexes
the sideloads once per page, on first need, falls back to the inline record, and decodes each
distinct user at most once per page). Across pages, a client remembers its account's recently
decoded user records by their exact bytes (:class:`UserCache`: 512 records and 8 MiB by default,
released when the client closes): a stream that repeats its actors page after page decodes each of
them once. The records it shares are immutable: :attr:`User.user_fields` is a read-only
:class:`FrozenDict`. ``activity.object`` / ``.target`` are decoded on first read and kept.

``msgspec.json.encode(activity)`` writes an activity as Zendesk sent it;
:meth:`Activity.to_builtins` gives it as Python builtins, with its resolved users if asked.

A retained :class:`Activity` keeps a reference to its page's body (the raw slices point into it).
Call :meth:`Activity.detach` to copy out what it needs and let the page go.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, NoReturn, Protocol

import msgspec

from .errors import decode_error

__all__ = [
    "DEFAULT_USER_CACHE_BYTES",
    "DEFAULT_USER_CACHE_SIZE",
    "SYSTEM_USER",
    "Activity",
    "ActivityCount",
    "ActivityPage",
    "Change",
    "Comment",
    "Content",
    "CursorPage",
    "FrozenDict",
    "OffsetPage",
    "Photo",
    "Thumbnail",
    "Ticket",
    "User",
    "UserCache",
]

# Rules checked while decoding, so that nothing downstream (a SQLite checkpoint, comparisons with
# aware times, ``since = high_water - lookback``) meets a value it cannot handle: ids fit a signed
# 64-bit integer; an activity's ``created_at`` / ``updated_at`` carry a UTC offset and fall in
# years MIN_YEAR..MAX_YEAR, so that converting to UTC and then adding or subtracting up to a
# year (a watcher's lookback) never overflows.
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
MIN_YEAR: Final = 3
MAX_YEAR: Final = 9997

_NULL: Final = msgspec.Raw(b"null")
_EMPTY: Final = msgspec.Raw(b"{}")


class Thumbnail(msgspec.Struct, kw_only=True, frozen=True):
    """A resized copy of a user's photo."""

    id: int | None = None
    url: str | None = None
    file_name: str | None = None
    content_url: str | None = None
    mapped_content_url: str | None = None
    content_type: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    inline: bool = False
    deleted: bool = False


class Photo(Thumbnail, kw_only=True, frozen=True):
    """A user's profile photo (an attachment) and its thumbnails."""

    thumbnails: tuple[Thumbnail, ...] = ()


class FrozenDict(dict[str, Any]):
    """A read-only dict: what :attr:`User.user_fields` holds. Changing it raises TypeError;
    ``dict(frozen)`` (or ``copy.copy``) gives a mutable copy. Encodes like a dict."""

    __slots__ = ()

    def _read_only(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TypeError(
            "user_fields is read-only (one record is shared by every page that names the user); "
            "change a copy: dict(user.user_fields)"
        )

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def copy(self) -> dict[str, Any]:
        """A mutable (shallow) copy."""
        return dict(self)

    __copy__ = copy

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


_CONTAINERS: Final = (dict, list)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return _freeze_object(value)
    if isinstance(value, list):
        return tuple(map(_freeze, value))
    return value


_SCALARS: Final = frozenset((str, int, float, bool, type(None)))


def _freeze_object(value: dict[str, Any]) -> FrozenDict:
    if not value:
        return _EMPTY_FIELDS
    if _SCALARS.issuperset(map(type, value.values())):  # the common case, checked in C
        return FrozenDict(value)
    for v in value.values():
        if isinstance(v, _CONTAINERS):  # nested containers: freeze them too
            return FrozenDict({k: _freeze(v) for k, v in value.items()})
    return FrozenDict(value)  # the common case: scalar values only


_EMPTY_FIELDS: Final = FrozenDict()


class User(msgspec.Struct, kw_only=True, frozen=True):
    """A Zendesk user record, as sideloaded in ``actors`` / ``users`` or inlined in an activity.

    Immutable, so that one record can be shared by every activity (and page) that names it.
    """

    id: _Int64
    url: str | None = None
    name: str = ""
    email: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    time_zone: str | None = None
    iana_time_zone: str | None = None
    phone: str | None = None
    shared_phone_number: bool | None = None
    photo: Photo | None = None
    locale_id: int | None = None
    locale: str | None = None
    organization_id: int | None = None
    role: str | None = None
    verified: bool | None = None
    external_id: str | None = None
    tags: tuple[str, ...] = ()
    alias: str | None = None
    active: bool | None = None
    shared: bool | None = None
    shared_agent: bool | None = None
    last_login_at: datetime | None = None
    two_factor_auth_enabled: bool | None = None
    signature: str | None = None
    details: str | None = None
    notes: str | None = None
    role_type: int | None = None
    custom_role_id: int | None = None
    moderator: bool | None = None
    ticket_restriction: str | None = None
    only_private_comments: bool | None = None
    restricted_agent: bool | None = None
    suspended: bool | None = None
    default_group_id: int | None = None
    report_csv: bool | None = None
    user_fields: dict[str, Any] = msgspec.field(default_factory=dict)
    """Custom fields: a read-only :class:`FrozenDict` (nested arrays are tuples, objects
    FrozenDicts), since one record is shared by every page that names the user. ``dict(...)``
    of it is a copy of your own."""

    def __post_init__(self) -> None:
        fields = self.user_fields
        if fields.__class__ is not FrozenDict:
            msgspec.structs.force_setattr(self, "user_fields", _freeze_object(fields))


SYSTEM_USER: Final = User(id=-1, name="Zendesk", role="system", active=True)
"""What ``activity.actor`` resolves to for ``actor_id == -1`` (automations, triggers) when the
response carries no record for it: Zendesk's system user."""


class Ticket(msgspec.Struct, kw_only=True, frozen=True):
    """The ticket an activity is about (``object`` of an assignment, ``target`` of any)."""

    id: _Int64
    subject: str | None = None


class Comment(msgspec.Struct, kw_only=True, frozen=True):
    """A comment added to a ticket (``object`` of ``tickets.comment``)."""

    value: str | None = None
    public: bool | None = None


class Change(msgspec.Struct, kw_only=True, frozen=True):
    """A field change on a ticket (``object`` of ``tickets.priority_increase``).

    Zendesk does not document this shape; everything it sends stays in :attr:`Content.data`.
    """

    field: str | None = None
    previous_value: Any = None
    value: Any = None


class Content(msgspec.Struct, kw_only=True, frozen=True):
    """The ``object`` or ``target`` of an activity: a ticket, comment, change, or another kind.

    ``kind`` is the content's single key (``"ticket"``, ``"comment"``, ``"change"``, or whatever
    Zendesk sent; ``""`` when empty). The matching typed attribute is set for the known kinds;
    ``data`` always holds the full decoded JSON, so an unknown kind loses nothing.
    """

    kind: str = ""
    ticket: Ticket | None = None
    comment: Comment | None = None
    change: Change | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class ActivityCount(msgspec.Struct, kw_only=True, frozen=True):
    """The approximate number of activities of the last 30 days.

    Above 100,000 Zendesk serves a cached value, capped at 100,000, refreshed every 24 hours;
    ``refreshed_at`` is None while a refresh runs.
    """

    value: _Int64
    refreshed_at: _AwareTime | None = None


class _Users(Protocol):
    """Where a page's activities find their users: :class:`zdactivity.sideloads.UserIndex`."""

    decoded: dict[int, User]

    def get(
        self, user_id: int | None, inline: msgspec.Raw, activity_id: int, key: str
    ) -> User | None: ...

    def lookup(self, user_id: int) -> User | None: ...


class Activity(msgspec.Struct, kw_only=True, dict=True):
    """One entry of an agent's activity stream.

    ``actor`` and ``user`` are resolved lazily, on first read, and cached per page (see
    :mod:`zdactivity.sideloads`); ``object`` and ``target`` are decoded on first read and kept.
    Everything else is decoded with the page.

    ``msgspec.json.encode(activity)`` gives the activity as sent: its documented fields, with
    ``object`` / ``target`` and the inline ``actor`` / ``user`` records byte for byte.
    :meth:`to_builtins` gives the same as Python builtins, or with the resolved users.

    Decoding refuses (:class:`~zdactivity.DecodeError`) ids that do not fit a signed 64-bit
    integer, and a ``created_at`` / ``updated_at`` without a UTC offset or outside the years
    3..9997 (so that converting to UTC and moving by up to a year never overflows).
    """

    id: _Int64
    url: str | None = None
    verb: str = ""
    title: str = ""
    actor_id: _Int64 | None = None
    user_id: _Int64 | None = None
    created_at: _AwareTime
    updated_at: _AwareTime | None = None
    _object: msgspec.Raw = msgspec.field(default=_EMPTY, name="object")
    _target: msgspec.Raw = msgspec.field(default=_EMPTY, name="target")
    _actor: msgspec.Raw = msgspec.field(default=_NULL, name="actor")
    _user: msgspec.Raw = msgspec.field(default=_NULL, name="user")

    # Not fields (never encoded, compared or shown): kept in the instance's __dict__ when set.
    _users: ClassVar[_Users | None] = None
    """The page's user index, set by :func:`zdactivity.sideloads.attach`."""
    _resolved: ClassVar[dict[str | int, User | None] | None] = None
    """Without an index (built by hand, or detached): ``"actor"`` / ``"user"`` and ids ->
    record, so that a user named in both roles is decoded once."""
    _object_content: ClassVar[Content | None] = None
    _target_content: ClassVar[Content | None] = None

    @property
    def actor(self) -> User | None:
        """The user who caused the activity (``SYSTEM_USER`` for automations), or None."""
        users = self._users
        if users is not None:
            # The common case first: a user this page has already resolved (one dict lookup).
            user = users.decoded.get(self.actor_id)  # type: ignore[arg-type]
            if user is None:
                user = users.get(self.actor_id, self._actor, self.id, "actor")
        else:
            user = self._own_user(self.actor_id, "actor", self._actor)
        if user is None and self.actor_id == -1:
            return SYSTEM_USER
        return user

    @property
    def user(self) -> User | None:
        """The agent whose stream this is, or None if the response carried no record."""
        users = self._users
        if users is not None:
            user = users.decoded.get(self.user_id)  # type: ignore[arg-type]
            if user is None:
                user = users.get(self.user_id, self._user, self.id, "user")
            return user
        return self._own_user(self.user_id, "user", self._user)

    def _own_user(self, user_id: int | None, key: str, inline: msgspec.Raw) -> User | None:
        resolved = self._resolved
        if resolved is None:
            resolved = self.__dict__["_resolved"] = {}
        if key in resolved:
            return resolved[key]
        if user_id is not None and user_id in resolved:
            return resolved[user_id]
        if inline == _NULL:
            return None
        user = _decode_user(inline, f"$.activities[id={self.id}].{key}")
        resolved[key] = user
        resolved.setdefault(user.id if user_id is None else user_id, user)
        return user

    @property
    def object(self) -> Content:
        """The content of the activity: a ticket, comment, change, or an unknown kind."""
        content = self._object_content
        if content is None:
            where = f"$.activities[id={self.id}].object"
            content = self.__dict__["_object_content"] = _decode_content(self._object, where)
        return content

    @property
    def target(self) -> Content:
        """The target of the activity, usually ``Content(kind="ticket", ticket=...)``."""
        content = self._target_content
        if content is None:
            where = f"$.activities[id={self.id}].target"
            content = self.__dict__["_target_content"] = _decode_content(self._target, where)
        return content

    def to_builtins(self, *, resolve_users: bool = False) -> dict[str, Any]:
        """The activity as JSON-ready builtins (what ``msgspec.to_builtins`` gives for a
        Struct: times as ISO 8601 strings), keyed as Zendesk sends it.

        ``object``, ``target``, ``actor`` and ``user`` are the JSON as sent (the inline records,
        None when absent or after :meth:`detach`). With ``resolve_users=True``, ``actor`` and
        ``user`` are the resolved :class:`User` records instead (sideloaded or inline;
        :data:`SYSTEM_USER` for an automation), as builtins too.

        ``msgspec.json.encode(activity)`` needs no helper: it writes the activity as sent.
        (``msgspec.to_builtins(activity)`` cannot: msgspec has no builtin form for the raw JSON
        the activity keeps undecoded.)
        """
        data: dict[str, Any] = msgspec.to_builtins(self, enc_hook=self._raw_to_builtins)
        if resolve_users:
            data["actor"] = msgspec.to_builtins(self.actor)
            data["user"] = msgspec.to_builtins(self.user)
        return data

    def _raw_to_builtins(self, value: builtins.object) -> Any:
        if not isinstance(value, msgspec.Raw):
            raise NotImplementedError(f"cannot convert {type(value).__name__}")
        try:
            return _ANY_DECODER.decode(value)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise decode_error(exc, value, f"$.activities[id={self.id}]") from None

    def detach(self) -> Activity:
        """Return a copy that no longer references its page's body, for long-term retention.

        The copy keeps the resolved ``actor`` / ``user`` and the decoded ``object`` /
        ``target``, not the raw inline user records (it encodes them as null).
        """
        actor, user = self.actor, self.user
        copy = msgspec.structs.replace(
            self,
            _object=msgspec.Raw(bytes(self._object)),
            _target=msgspec.Raw(bytes(self._target)),
            _actor=_NULL,
            _user=_NULL,
        )
        state = copy.__dict__
        state["_resolved"] = {"actor": None if actor is SYSTEM_USER else actor, "user": user}
        for name in ("_object_content", "_target_content"):
            if name in self.__dict__:
                state[name] = self.__dict__[name]
        return copy

    def __copy__(self) -> Activity:
        copy = msgspec.structs.replace(self)
        state = copy.__dict__
        state.update(self.__dict__)
        if self._resolved is not None:
            state["_resolved"] = dict(self._resolved)  # each copy memoizes on its own
        return copy

    def __reduce__(self) -> tuple[Any, ...]:
        # msgspec's own reduce keeps the fields only; the page index and caches come along.
        return (*super().__reduce__(), self.__dict__ or None)

    def _identity(self) -> tuple[builtins.object, ...]:
        # What the activity says, not how its users arrived (inline, sideloaded, detached).
        return (
            self.id,
            self.url,
            self.verb,
            self.title,
            self.actor_id,
            self.user_id,
            self.created_at,
            self.updated_at,
            bytes(self._object),
            bytes(self._target),
        )

    def __eq__(self, other: builtins.object) -> bool:
        if not isinstance(other, Activity):
            return NotImplemented
        return self._identity() == other._identity()

    def __repr__(self) -> str:
        return (
            f"Activity(id={self.id}, verb={self.verb!r}, title={self.title!r}, "
            f"actor_id={self.actor_id}, user_id={self.user_id}, "
            f"created_at={self.created_at.isoformat()})"
        )


class ActivityPage:
    """One page of an activity listing: a :class:`CursorPage` or an :class:`OffsetPage`.

    Iterating a page yields its activities; :meth:`user` looks up the page's user records.
    Every page has ``has_more`` and ``request_id``, and (for code written before the two kinds
    were told apart) the attributes of both kinds, None where they do not apply.
    """

    __slots__ = (
        "_resume_from",
        "_resume_token",
        "_users",
        "activities",
        "after_cursor",
        "before_cursor",
        "count",
        "has_more",
        "next_page",
        "request_id",
    )

    def __init__(
        self,
        activities: list[Activity],
        *,
        has_more: bool,
        after_cursor: str | None = None,
        before_cursor: str | None = None,
        count: int | None = None,
        next_page: str | None = None,
        request_id: str | None = None,
        users: _Users | None = None,
    ) -> None:
        self.activities = activities
        self.has_more = has_more
        self.after_cursor = after_cursor
        self.before_cursor = before_cursor
        self.count = count
        self.next_page = next_page
        self.request_id = request_id
        self._resume_token: str | None = None
        # Set by the pager: (the function making the token, its request), called when read.
        self._resume_from: tuple[Callable[[Any, ActivityPage], str | None], Any] | None = None
        self._users = users

    @property
    def resume_token(self) -> str | None:
        """The token that resumes the listing after this page (see :class:`CursorPage`)."""
        resume_from = self._resume_from
        if resume_from is not None:  # made on first use: most pages' tokens are never read
            make, request = resume_from
            self._resume_token, self._resume_from = make(request, self), None
        return self._resume_token

    @resume_token.setter
    def resume_token(self, token: str | None) -> None:
        self._resume_token, self._resume_from = token, None

    def user(self, user_id: int) -> User | None:
        """Look up a sideloaded (or inlined) user record of this page by id."""
        found = self._users.lookup(user_id) if self._users is not None else None
        if found is None:
            for activity in self.activities:
                if activity.actor_id == user_id:
                    found = activity.actor
                elif activity.user_id == user_id:
                    found = activity.user
                if found is not None:
                    break
        if found is None and user_id == -1:
            return SYSTEM_USER
        return found

    def __iter__(self) -> Iterator[Activity]:
        return iter(self.activities)

    def __len__(self) -> int:
        return len(self.activities)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self.activities)} activities, "
            f"has_more={self.has_more}, after_cursor={self.after_cursor!r})"
        )


class CursorPage(ActivityPage):
    """A page of a cursor listing (the default).

    ``has_more``, ``after_cursor`` and ``before_cursor`` come from ``meta``. ``resume_token``
    (set on the pages that have an ``after_cursor``, None otherwise) is an opaque, URL-safe
    string: save it once the page is handled, and ``client.activities.list(resume=token)``
    later lists the rest of the same listing, with its ``since`` and page size.
    ``count`` and ``next_page`` are always None.
    """

    __slots__ = ()

    def __init__(
        self,
        activities: list[Activity],
        *,
        has_more: bool,
        after_cursor: str | None = None,
        before_cursor: str | None = None,
        request_id: str | None = None,
        users: _Users | None = None,
    ) -> None:
        super().__init__(
            activities,
            has_more=has_more,
            after_cursor=after_cursor,
            before_cursor=before_cursor,
            request_id=request_id,
            users=users,
        )


class OffsetPage(ActivityPage):
    """A page of an offset listing (``pagination="offset"``).

    ``count`` is Zendesk's total and ``next_page`` the URL of the next page (None on the last);
    ``has_more`` is ``next_page is not None``. The cursor attributes and ``resume_token`` are
    always None.
    """

    __slots__ = ()

    def __init__(
        self,
        activities: list[Activity],
        *,
        count: int | None = None,
        next_page: str | None = None,
        request_id: str | None = None,
        users: _Users | None = None,
    ) -> None:
        super().__init__(
            activities,
            has_more=next_page is not None,
            count=count,
            next_page=next_page,
            request_id=request_id,
            users=users,
        )

    def __repr__(self) -> str:
        return (
            f"OffsetPage({len(self.activities)} activities, count={self.count}, "
            f"next_page={self.next_page!r})"
        )


# --- decoding helpers (one Decoder per type, built once) ---


_USER_DECODER: Final = msgspec.json.Decoder(User)
_CONTENT_DECODER: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ANY_DECODER: Final = msgspec.json.Decoder()
_KIND_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    "ticket": msgspec.json.Decoder(Ticket),
    "comment": msgspec.json.Decoder(Comment),
    "change": msgspec.json.Decoder(Change),
}


DEFAULT_USER_CACHE_SIZE: Final = 512
DEFAULT_USER_CACHE_BYTES: Final = 8 * 1024 * 1024


class UserCache:
    """A client's last decoded user records, by their exact JSON bytes.

    A stream repeats the same actors page after page; a byte-identical record decodes to an
    equal, immutable :class:`User`, so it is decoded once and shared. One cache per client (its
    ``with_auth`` views share it: one account), emptied when the client closes.

    Bounded twice: at most ``size`` records, and at most ``max_bytes`` by an estimate of their
    memory (twice the record's JSON size, for the bytes kept as its key and its decoded copy, plus
    512 bytes). The oldest records go first; a record over an eighth of ``max_bytes`` is not kept.
    ``size=0`` or ``max_bytes=0`` turns the cache off.
    """

    __slots__ = ("_users", "closed", "max_bytes", "nbytes", "size")

    def __init__(
        self, size: int = DEFAULT_USER_CACHE_SIZE, max_bytes: int = DEFAULT_USER_CACHE_BYTES
    ) -> None:
        for name, value in (("size", size), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"user cache {name} must be an int >= 0, not {value!r}")
        self.size = size
        self.max_bytes = max_bytes
        self.nbytes = 0  # the estimate of what the kept records hold
        self.closed = False
        self._users: dict[bytes, User] = {}

    def get(self, key: bytes) -> User | None:
        """The record decoded from exactly ``key``, if kept."""
        return self._users.get(key)

    def add(self, key: bytes, user: User) -> None:
        """Keep ``user`` (decoded from ``key``), evicting the oldest records to make room."""
        cost = _cost(key)
        if self.closed or cost * 8 > self.max_bytes or not self.size or key in self._users:
            return
        users = self._users
        while users and (len(users) >= self.size or self.nbytes + cost > self.max_bytes):
            oldest = next(iter(users))
            del users[oldest]
            self.nbytes -= _cost(oldest)
        users[key] = user
        self.nbytes += cost

    def clear(self) -> None:
        """Forget every record."""
        self._users.clear()
        self.nbytes = 0

    def close(self) -> None:
        """Forget every record and keep none from now on (the client is closed)."""
        self.closed = True
        self.clear()

    def __len__(self) -> int:
        return len(self._users)

    def __repr__(self) -> str:
        return (
            f"UserCache({len(self._users)}/{self.size} records, "
            f"{self.nbytes:,}/{self.max_bytes:,} bytes)"
        )


def _cost(key: bytes) -> int:
    """The estimated memory of a cached record: its JSON bytes (the key), its decoded copy (about
    as large) and the objects' overhead."""
    return 2 * len(key) + 512


def _decode_user(raw: msgspec.Raw, where: str) -> User:
    """Decode the user record ``raw`` found at JSON path ``where``."""
    try:
        return _USER_DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise decode_error(exc, raw, where) from None


def _decode_content(raw: msgspec.Raw, where: str) -> Content:
    if raw == _NULL:
        return Content()
    try:
        parts = _CONTENT_DECODER.decode(raw)
        data = _ANY_DECODER.decode(raw)
        kind = next(iter(parts), "")
        typed: dict[str, Any] = {}
        for name, part in parts.items():
            decoder = _KIND_DECODERS.get(name)
            if decoder is not None:
                try:
                    typed[name] = decoder.decode(part)
                except (msgspec.DecodeError, RecursionError) as exc:
                    raise decode_error(exc, part, f"{where}.{name}") from None
        return Content(kind=kind, data=data, **typed)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise decode_error(exc, raw, where) from None

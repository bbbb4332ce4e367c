"""Account state of the emulator: users, credentials, per-agent activity streams and cursors.

Everything here is synchronous and independent of aiohttp, so it can be driven directly by
``Emulator`` helpers (``add_activity`` & co) and by the HTTP layer in ``_server``.

Performance notes: a user record is encoded once, with a placeholder where its base URL goes
(``_User.template``); per base URL the placeholder is replaced once and the result cached
(``RenderedUsers``). An activity keeps its encoded JSON minus ``url``/``user``/``actor``
(``_Activity.tail``), so rendering one is a ``bytes.join`` of cached pieces.
"""

from __future__ import annotations

import base64
import binascii
import gc
import math
import random
import string
import struct
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import msgspec

__all__ = [
    "SYSTEM_ACTOR_ID",
    "WINDOW_SECONDS",
    "Account",
    "Agent",
    "BearerState",
    "CursorError",
    "RenderedUsers",
    "decode_cursor",
    "encode_cursor",
    "format_time",
    "json_escape",
]

#: ``actor_id`` of the Zendesk system user (triggers, automations).
SYSTEM_ACTOR_ID = -1
#: List and count only cover this many seconds before ``clock()``.
WINDOW_SECONDS = 30 * 86_400
#: The ordering a cursor encodes, as in the real cursors: newest first, then by id.
CURSOR_ORDER = "-created_at,id"

_PLACEHOLDER = b"@@ZDEMU_BASE@@"
_PLACEHOLDER_STR = _PLACEHOLDER.decode()
_SEED_SPAN = 31 * 86_400  # seeded activities spread over this many seconds before clock()
_ID_BASE = 12_936_000_000_000
_IDS_PER_SECOND = 4096

_encode = msgspec.json.encode
_decode = msgspec.json.decode


@dataclass(frozen=True, slots=True)
class Agent:
    """Credentials and identity of one emulated user (an agent, an admin or an end-user)."""

    user_id: int
    name: str
    email: str
    api_token: str = field(repr=False)
    oauth_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    role: str


@dataclass(slots=True)
class _User:
    id: int
    name: str
    email: str
    role: str
    template: bytes  # the full JSON record; URLs start with _PLACEHOLDER


@dataclass(slots=True)
class _Grant:
    """A user's current OAuth pair."""

    access: str
    refresh: str
    expires_at: float | None  # on the ``monotonic`` clock; None: never
    expired: bool = False  # set by ``expire_tokens``

    def valid(self, now: float) -> bool:
        return not self.expired and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class BearerState:
    """Whose bearer token this is and whether it still works."""

    user_id: int
    valid: bool


class _Activity:
    """One activity. Its JSON (minus url/user/actor) is encoded on first use, then kept."""

    __slots__ = ("_tail", "actor_id", "content", "created_at", "id", "user_id")

    def __init__(
        self,
        activity_id: int,
        created_at: int,
        user_id: int,
        actor_id: int,
        content: tuple[str, str, Any, Any],  # verb, title, object, target
    ) -> None:
        self.id = activity_id
        self.created_at = created_at  # epoch seconds
        self.user_id = user_id
        self.actor_id = actor_id
        self.content = content
        self._tail: bytes | None = None

    @property
    def tail(self) -> bytes:
        """b'/api/v2/activities/{id}.json","id":...,"target":{...},"user":': everything
        between the base URL and the inline user record."""
        tail = self._tail
        if tail is None:
            verb, title, obj, target = self.content
            stamp = format_time(self.created_at)
            body = {
                "id": self.id,
                "title": title,
                "verb": verb,
                "user_id": self.user_id,
                "actor_id": self.actor_id,
                "updated_at": stamp,
                "created_at": stamp,
                "object": obj,
                "target": target,
            }
            tail = self._tail = b"".join(
                (b'/api/v2/activities/%d.json",' % self.id, _encode(body)[1:-1], b',"user":')
            )
        return tail


class _Stream:
    """One agent's activities, sorted by (-created_at, id): newest first."""

    __slots__ = ("by_id", "items", "keys")

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []
        self.items: list[_Activity] = []
        self.by_id: dict[int, _Activity] = {}

    def insert(self, act: _Activity) -> None:
        key = (-act.created_at, act.id)
        i = bisect_left(self.keys, key)
        self.keys.insert(i, key)
        self.items.insert(i, act)
        self.by_id[act.id] = act

    def bulk_load(self, acts: Iterable[_Activity]) -> None:
        items = sorted(acts, key=lambda a: (-a.created_at, a.id))
        self.items = items
        self.keys = [(-a.created_at, a.id) for a in items]
        self.by_id = {a.id: a for a in items}

    def end_for(self, min_created_at: int) -> int:
        """Index one past the last item with ``created_at >= min_created_at``."""
        return bisect_left(self.keys, (-min_created_at + 1,))


class CursorError(ValueError):
    """A ``page[after]``/``page[before]`` value that is not one of our cursors."""


def format_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def json_escape(text: str) -> bytes:
    """``text`` as the inside of a JSON string literal."""
    return _encode(text)[1:-1]


def encode_cursor(created_at: int, activity_id: int) -> str:
    # Same layout as the real service: b"d" + int64 created_at + b"i" + int64 id, little endian.
    pos = struct.pack("<cqcq", b"d", created_at, b"i", activity_id)
    inner = {"o": CURSOR_ORDER, "v": base64.b64encode(pos).decode()}
    return base64.b64encode(_encode(inner)).decode()


_CURSOR_POS = struct.Struct("<cqcq")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """Return the ``(-created_at, id)`` sort key a cursor points at."""
    try:
        raw = base64.b64decode(cursor.encode() + b"=" * (-len(cursor) % 4), altchars=b"-_")
        inner = _decode(raw)
        if not isinstance(inner, dict) or inner.get("o") != CURSOR_ORDER:
            raise CursorError("unknown cursor ordering")
        value = inner.get("v")
        if not isinstance(value, str):
            raise CursorError("missing cursor position")
        tag_d, created_at, tag_i, activity_id = _CURSOR_POS.unpack(base64.b64decode(value))
    except (binascii.Error, msgspec.DecodeError, struct.error, UnicodeError, ValueError) as exc:
        if isinstance(exc, CursorError):
            raise
        raise CursorError(f"cursor could not be decoded: {cursor!r}") from exc
    if tag_d != b"d" or tag_i != b"i":
        raise CursorError("malformed cursor position")
    return (-created_at, activity_id)


class RenderedUsers(dict[int, bytes]):
    """User records encoded for one base URL, filled lazily."""

    __slots__ = ("_base", "_users")

    def __init__(self, users: dict[int, _User], base: bytes) -> None:
        super().__init__()
        self._users = users
        self._base = base

    def __missing__(self, user_id: int) -> bytes:
        value = self._users[user_id].template.replace(_PLACEHOLDER, self._base)
        self[user_id] = value
        return value


# --------------------------------------------------------------------------------------------
# Fake-data vocabulary (generated, not copied from anywhere)

_FIRST = (
    "Ada", "Bruno", "Chioma", "Dmitri", "Elif", "Farah", "Gustavo", "Hana", "Ivan", "Jonas",
    "Kaito", "Lena", "Mateus", "Noor", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tamar",
    "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoë", "José", "Łucja", "Søren", "Anaïs",
    "Björn", "Chloé", "Jürgen", "Małgorzata", "Renée", "Tomás",
)  # fmt: skip
_LAST = (
    "Abara", "Becker", "Castillo", "Dubois", "Eriksen", "Fonseca", "Gallagher", "Haddad",
    "Ivanova", "Jansen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov",
    "Quispe", "Rossi", "Schäfer", "Tanaka", "Ueda", "Vasquez", "Wójcik", "Xu", "Yilmaz",
    "Zhang", "Núñez", "Øster", "García", "Müller",
)  # fmt: skip
_ASCII = str.maketrans(
    {"ë": "e", "é": "e", "Ł": "L", "ł": "l", "ø": "o", "Ø": "O", "ï": "i", "ö": "o",
     "ü": "u", "ä": "a", "ó": "o", "á": "a", "ń": "n", "ñ": "n", "ú": "u", "ß": "ss"}
)  # fmt: skip
_ZONES = (
    ("Moscow", "Europe/Moscow"), ("Eastern Time (US & Canada)", "America/New_York"),
    ("Pacific Time (US & Canada)", "America/Los_Angeles"), ("London", "Europe/London"),
    ("Berlin", "Europe/Berlin"), ("Tokyo", "Asia/Tokyo"), ("Sydney", "Australia/Sydney"),
    ("Alaska", "America/Juneau"), ("Paris", "Europe/Paris"), ("Stockholm", "Europe/Stockholm"),
    ("New Delhi", "Asia/Kolkata"), ("Brasilia", "America/Sao_Paulo"), ("UTC", "Etc/UTC"),
    ("Lagos", "Africa/Lagos"),
)  # fmt: skip
_LOCALES = ((1, "en-US"), (5, "en-gb"), (8, "de"), (16, "fr"), (2, "es"), (19, "pt-br"),
            (67, "ja"), (27, "ru"))  # fmt: skip
_TAGS = (
    "vip",
    "billing",
    "tier-2",
    "beta",
    "тег",
    "équipe-nord",
    "日本語",
    "partner",
    "churn-risk",
)
_SUBJECTS = (
    "Cannot log in", "Invoice shows the wrong amount", "Export to CSV times out",
    "API rate limit questions", "Password reset email never arrives", "Where is my order?",
    "SSO setup with Okta", "Refund request", "Mobile app crashes on start",
    "Webhook retries piling up", "Problème avec la facture", "Rechnung Nr. 4711 fehlt",
    "配送状況について", "Feature request: dark mode", "Account locked after update",
    "Duplicate charge on card", "hey yo", "Upgrade to Enterprise plan", "Data export for GDPR",
    "Shipping address change", "Integration with Slack broken", "Уведомления не приходят",
    "Slow dashboard", "Cancel my subscription", "Question about seats",
)  # fmt: skip
_COMMENTS = (
    "update 2", "hey there", "Thanks, that fixed it!", "Any news on this?",
    "I attached the logs.", "Still happening after the update", "Merci beaucoup !",
    "Can you escalate this please?", "Vielen Dank für die schnelle Antwort", "Closing the loop",
    "See internal note", "Customer called again 📞", "Спасибо, всё работает", "Reproduced on v2.3",
    "Please check the attached screenshot", "ok",
)  # fmt: skip
_PRIORITIES = ("low", "normal", "high", "urgent")

# Generated activities share these read-only objects (seeding allocates less); activities are
# encoded to bytes before anything leaves the account, so nobody can mutate them.
_COMMENT_OBJECTS: tuple[tuple[str, Any], ...] = tuple(
    (text, {"comment": {"value": text, "public": public}})
    for text in _COMMENTS
    for public in (True, True, True, True, False)
)
_CHANGE_OBJECTS: tuple[tuple[str, Any], ...] = tuple(
    (new, {"change": {"field": "priority", "previous_value": prev, "value": new}})
    for i, prev in enumerate(_PRIORITIES)
    for new in _PRIORITIES[i + 1 :]
)


@dataclass(frozen=True, slots=True)
class _Ticket:
    id: int
    target: Any  # {"ticket": {"id": ..., "subject": ...}}

    @classmethod
    def make(cls, ticket_id: int, subject: str) -> _Ticket:
        return cls(ticket_id, {"ticket": {"id": ticket_id, "subject": subject}})


_ALNUM = string.ascii_letters + string.digits


class Account:
    """Everything one emulated Zendesk account knows. Not thread-safe; one event loop."""

    def __init__(
        self,
        *,
        seed: int,
        agents: int,
        actors: int,
        activities_per_agent: int,
        system_actor_share: float,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        token_ttl: float | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.clock = clock
        self.monotonic = monotonic
        self.token_ttl = token_ttl
        # Refreshed tokens come from their own generator, so refreshing does not change the
        # data generated afterwards (add_activity's random picks).
        self._token_rng = random.Random(f"{seed}/oauth")
        self.system_actor_share = system_actor_share
        self.users: dict[int, _User] = {}
        self.agents: list[Agent] = []
        self.credentials: dict[int, Agent] = {}
        self.streams: dict[int, _Stream] = {}
        self.actor_ids: list[int] = []  # non-credentialed users who cause activities
        self.staff_actor_ids: list[int] = []  # those of them who are agents/admins
        self.by_basic: dict[tuple[str, str], int] = {}
        self.by_bearer: dict[str, int] = {}  # current access tokens (expired ones included)
        self.by_refresh: dict[str, int] = {}  # current refresh tokens
        self.retired: dict[str, int] = {}  # replaced access and refresh tokens -> their user
        self.grants: dict[int, _Grant] = {}
        self.refresh_count = 0
        self._emails: set[str] = set()
        self._last_id = 0
        self._rendered: dict[bytes, RenderedUsers] = {}
        now = self.now()
        self._id_epoch = now - _SEED_SPAN
        self._id_base = _ID_BASE + self.rng.randrange(500_000_000)
        self._org_ids = [self.rng.randrange(360_000_000, 400_000_000) for _ in range(4)]
        self._group_ids = [self.rng.randrange(20_000_000, 360_009_999_999) for _ in range(5)]
        self._custom_role_id = 1_900_000_000_000 + self.rng.randrange(1_000_000_000)
        self._tickets = self._make_tickets(min(max(40, 10 * agents), 50_000))
        # Seeding allocates many small, long-lived objects; the cyclic GC would rescan them over
        # and over (roughly doubling the time), and none of them form cycles.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for _ in range(actors):
                role = (
                    "end-user" if self.rng.random() < 0.6 else self.rng.choice(("agent", "admin"))
                )
                uid = self._new_user(role=role).id
                self.actor_ids.append(uid)
                if role != "end-user":
                    self.staff_actor_ids.append(uid)
            for i in range(agents):
                self.add_agent(role="admin" if i == 0 or self.rng.random() < 0.2 else "agent")
            self._seed_activities(activities_per_agent, now)
        finally:
            if gc_was_enabled:
                gc.enable()

    # -- time ---------------------------------------------------------------------------------

    def now(self) -> int:
        """Whole seconds of ``clock()``."""
        return math.floor(self.clock().timestamp())

    def window_start(self) -> int:
        """Smallest ``created_at`` still inside the 30-day window."""
        return math.ceil(self.clock().timestamp() - WINDOW_SECONDS)

    # -- users --------------------------------------------------------------------------------

    def _unique_id(self, low: int, high: int) -> int:
        while True:
            uid = self.rng.randrange(low, high)
            if uid not in self.users:
                return uid

    def _new_name_email(self, name: str | None, email: str | None) -> tuple[str, str]:
        rng = self.rng
        if name is None:
            name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        if email is None:
            local = ".".join(part.translate(_ASCII).lower() for part in name.split())
            local = "".join(c for c in local if c.isascii() and (c.isalnum() or c in "._-"))
            local = local or "user"
            email = f"{local}@example.com"
            n = 1
            while email.lower() in self._emails:
                n += 1
                email = f"{local}{n}@example.com"
        if email.lower() in self._emails:
            raise ValueError(f"email already in use: {email}")
        self._emails.add(email.lower())
        return name, email

    def _new_user(self, *, role: str, name: str | None = None, email: str | None = None) -> _User:
        rng = self.rng
        name, email = self._new_name_email(name, email)
        if rng.random() < 0.5:  # older accounts have 10-11 digit ids, newer ones 12-14
            uid = self._unique_id(1_000_000_000, 99_999_999_999)
        else:
            uid = self._unique_id(360_000_000_000, 30_000_000_000_000)
        record = self._user_record(uid, name, email, role)
        user = _User(uid, name, email, role, _encode(record))
        self.users[uid] = user
        return user

    def _photo(self, slug: str) -> dict[str, Any] | None:
        rng = self.rng
        if rng.random() < 0.35:
            return None
        pid = rng.randrange(100_000_000, 30_000_000_000_000)
        tid = pid + rng.randrange(1, 50)
        ext, ctype = rng.choice((("jpg", "image/jpeg"), ("png", "image/png"), ("gif", "image/gif")))
        width, height = 80, rng.randrange(60, 100)
        fname, tname = f"{slug}.{ext}", f"{slug}_thumb.{ext}"
        base = _PLACEHOLDER_STR
        thumb = {
            "url": f"{base}/api/v2/attachments/{tid}.json",
            "id": tid,
            "file_name": tname,
            "content_url": f"{base}/system/photos/{pid}/{tname}",
            "mapped_content_url": f"{base}/system/photos/{pid}/{tname}",
            "content_type": ctype,
            "size": rng.randrange(400, 4000),
            "width": 32,
            "height": max(1, round(32 * height / width)),
            "inline": False,
            "deleted": False,
        }
        photo = {
            "url": f"{base}/api/v2/attachments/{pid}.json",
            "id": pid,
            "file_name": fname,
            "content_url": f"{base}/system/photos/{pid}/{fname}",
            "mapped_content_url": f"{base}/system/photos/{pid}/{fname}",
            "content_type": ctype,
            "size": rng.randrange(1000, 40_000),
            "width": width,
            "height": height,
            "inline": False,
            "deleted": False,
            "thumbnails": [thumb],
        }
        return photo

    def _user_record(self, uid: int, name: str, email: str, role: str) -> dict[str, Any]:
        rng = self.rng
        staff = role != "end-user"
        now = self.now()
        created = now - rng.randrange(30 * 86_400, 9 * 365 * 86_400)
        updated = rng.randrange(max(created, now - 60 * 86_400), now)
        last_login = None if (not staff and rng.random() < 0.5) else rng.randrange(updated, now)
        tz, iana = rng.choice(_ZONES)
        locale_id, locale = rng.choice(_LOCALES)
        first = name.split()[0]
        slug = "".join(rng.choice("0123456789abcdef") for _ in range(16))
        phone = f"+1 555 01{rng.randrange(100):02d}" if rng.random() < 0.3 else None
        if staff:
            role_type: int | None = rng.choice((4, None)) if role == "admin" else rng.choice((0, 1))
            custom_role_id = self._custom_role_id if role_type in (0, 4) else None
        else:
            role_type = custom_role_id = None
        record: dict[str, Any] = {
            "id": uid,
            "url": f"{_PLACEHOLDER_STR}/api/v2/users/{uid}.json",
            "name": name,
            "email": email,
            "created_at": format_time(created),
            "updated_at": format_time(updated),
            "time_zone": tz,
            "iana_time_zone": iana,
            "phone": phone,
            "shared_phone_number": None if phone is None else rng.random() < 0.2,
            "photo": self._photo(slug),
            "locale_id": locale_id,
            "locale": locale,
            "organization_id": rng.choice(self._org_ids) if rng.random() < 0.7 else None,
            "role": role,
            "verified": rng.random() < 0.95,
            "external_id": f"ext-{rng.randrange(16**6):06x}" if rng.random() < 0.3 else None,
            "tags": rng.sample(_TAGS, rng.choice((0, 0, 1, 2, 3))),
            "alias": first.lower() if rng.random() < 0.15 else "",
            "active": True,
            "shared": False,
            "shared_agent": False,
            "last_login_at": None if last_login is None else format_time(last_login),
            "two_factor_auth_enabled": rng.choice((None, None, True, False)),
            "signature": f"Best,\n{first}" if staff and rng.random() < 0.5 else "",
            "details": rng.choice(("", "", "Prefers email", "Key account contact")),
            "notes": rng.choice(("", "", "", "Escalate billing issues to finance")),
            "role_type": role_type,
            "custom_role_id": custom_role_id,
            "moderator": staff and rng.random() < 0.6,
            "ticket_restriction": None if staff else "requested",
            "only_private_comments": staff and rng.random() < 0.05,
            "restricted_agent": not staff,
            "suspended": False,
            "default_group_id": rng.choice(self._group_ids) if staff else None,
            "report_csv": staff and rng.random() < 0.5,
            "user_fields": {
                "extension": f"{rng.randrange(10_000):04d}" if staff else None,
                "hardness": None,
                "ig_followers": rng.randrange(5000) if rng.random() < 0.1 else None,
                "ig_valid": rng.random() < 0.1,
                "ig_verified": False,
                "phone_id": f"{rng.randrange(10_000):04d}" if rng.random() < 0.3 else None,
                "system::embeddable_last_seen": (
                    format_time(now - rng.randrange(400 * 86_400))[:10] + "T00:00:00+00:00"
                    if rng.random() < 0.6
                    else None
                ),
            },
        }
        return record

    def _credentials(self, user: _User) -> Agent:
        rng = self.rng
        agent = Agent(
            user_id=user.id,
            name=user.name,
            email=user.email,
            api_token="".join(rng.choice(_ALNUM) for _ in range(40)),
            oauth_token=f"{rng.getrandbits(256):064x}",
            refresh_token=f"{rng.getrandbits(256):064x}",
            role=user.role,
        )
        self.credentials[user.id] = agent
        self.by_basic[(user.email.lower(), agent.api_token)] = user.id
        self._grant(user.id, agent.oauth_token, agent.refresh_token)
        return agent

    def add_agent(
        self, *, name: str | None = None, email: str | None = None, role: str = "agent"
    ) -> Agent:
        if role not in ("agent", "admin"):
            raise ValueError(f"an agent's role is 'agent' or 'admin', not {role!r}")
        user = self._new_user(role=role, name=name, email=email)
        self.streams[user.id] = _Stream()
        agent = self._credentials(user)
        self.agents.append(agent)
        return agent

    def add_end_user(self, *, name: str | None = None, email: str | None = None) -> Agent:
        return self._credentials(self._new_user(role="end-user", name=name, email=email))

    def authenticate_basic(self, email: str, token: str) -> int | None:
        return self.by_basic.get((email.lower(), token))

    def authenticate_bearer(self, token: str) -> int | None:
        """The user id of a current, unexpired access token."""
        state = self.bearer_state(token)
        return state.user_id if state is not None and state.valid else None

    # -- OAuth tokens -------------------------------------------------------------------------

    def _grant(self, user_id: int, access: str, refresh: str) -> _Grant:
        ttl = self.token_ttl
        grant = _Grant(access, refresh, None if ttl is None else self.monotonic() + ttl)
        self.grants[user_id] = grant
        self.by_bearer[access] = user_id
        self.by_refresh[refresh] = user_id
        return grant

    def bearer_state(self, token: str) -> BearerState | None:
        """None for a token this account never issued; else its owner and whether it works."""
        user_id = self.by_bearer.get(token)
        if user_id is not None:
            return BearerState(user_id, self.grants[user_id].valid(self.monotonic()))
        user_id = self.retired.get(token)
        return None if user_id is None else BearerState(user_id, False)

    def token_owner(self, token: str) -> int | None:
        """Whose access or refresh token (current or retired) this is."""
        for table in (self.by_bearer, self.by_refresh, self.retired):
            user_id = table.get(token)
            if user_id is not None:
                return user_id
        return None

    def refresh(self, refresh_token: str) -> _Grant | None:
        """Rotate the pair of ``refresh_token``'s owner; None if it is not a current one."""
        user_id = self.by_refresh.get(refresh_token)
        if user_id is None:
            return None
        old = self.grants[user_id]
        for token in (old.access, old.refresh):
            self.by_bearer.pop(token, None)
            self.by_refresh.pop(token, None)
            self.retired[token] = user_id
        rng = self._token_rng
        grant = self._grant(user_id, f"{rng.getrandbits(256):064x}", f"{rng.getrandbits(256):064x}")
        self.refresh_count += 1
        return grant

    def expire_tokens(self, user_id: int | None = None) -> None:
        """Expire the current access token of ``user_id`` (of everyone when None)."""
        if user_id is None:
            for grant in self.grants.values():
                grant.expired = True
        else:
            self._grant_of(user_id).expired = True

    def current_tokens(self, user_id: int) -> tuple[str, str]:
        grant = self._grant_of(user_id)
        return grant.access, grant.refresh

    def _grant_of(self, user_id: int) -> _Grant:
        try:
            return self.grants[user_id]
        except KeyError:
            raise ValueError(f"user {user_id} has no credentials in this account") from None

    def is_agent(self, user_id: int) -> bool:
        return self.users[user_id].role in ("agent", "admin")

    # -- activities ---------------------------------------------------------------------------

    def _make_tickets(self, n: int) -> list[_Ticket]:
        rng = self.rng
        ids = rng.sample(range(1000, 99_999), n)
        return [_Ticket.make(tid, rng.choice(_SUBJECTS)) for tid in ids]

    def _next_id(self, created_at: int) -> int:
        """IDs grow with time, and are unique even when a test backdates an activity."""
        by_time = self._id_base + (created_at - self._id_epoch) * _IDS_PER_SECOND
        r = self.rng.random
        new = max(self._last_id + 1 + int(r() * 64), by_time + int(r() * 4096))
        self._last_id = new
        return new

    def _pick_actor(self, verb: str) -> int:
        r = self.rng.random
        if r() < self.system_actor_share:
            return SYSTEM_ACTOR_ID
        pool = self.staff_actor_ids if verb != "tickets.comment" else None
        pool = pool or self.actor_ids
        return pool[int(r() * len(pool))] if pool else SYSTEM_ACTOR_ID

    def _content(self, verb: str, actor_name: str, ticket: _Ticket) -> tuple[str, Any, Any]:
        """title, object and target for a generated activity (objects are shared, read-only)."""
        r = self.rng.random
        tid, target = ticket.id, ticket.target
        if verb == "tickets.comment":
            text, obj = _COMMENT_OBJECTS[int(r() * len(_COMMENT_OBJECTS))]
            end = "" if text.endswith((".", "!", "?")) else "."
            return f"{actor_name} commented on ticket #{tid}: {text}{end}", obj, target
        if verb == "tickets.priority_increase":
            new, obj = _CHANGE_OBJECTS[int(r() * len(_CHANGE_OBJECTS))]
            return f"{actor_name} increased the priority of ticket #{tid} to {new}.", obj, target
        if verb == "tickets.assignment":
            return f"{actor_name} assigned ticket #{tid} to you.", target, target
        return f"{actor_name} updated ticket #{tid}.", target, target

    def _actor_name(self, actor_id: int) -> str:
        if actor_id == SYSTEM_ACTOR_ID:
            return "Zendesk"
        return self.users[actor_id].name

    def _seed_activities(self, per_agent: int, now: int) -> None:
        r = self.rng.random
        verbs = (
            ("tickets.comment",) * 12
            + ("tickets.assignment",) * 5
            + ("tickets.priority_increase",) * 3
        )
        pending: list[tuple[int, int, int, str]] = []
        for agent in self.agents:
            for _ in range(per_agent):
                # Up to ~31 days back, so a few fall outside the 30-day window.
                created = now - 30 - int(r() * (_SEED_SPAN - 30))
                verb = verbs[int(r() * len(verbs))]
                pending.append((created, agent.user_id, self._pick_actor(verb), verb))
        pending.sort(key=itemgetter(0))
        per_stream: dict[int, list[_Activity]] = {uid: [] for uid in self.streams}
        tickets = self._tickets
        for created, user_id, actor_id, verb in pending:
            ticket = tickets[int(r() * len(tickets))]
            title, obj, target = self._content(verb, self._actor_name(actor_id), ticket)
            act = _Activity(
                self._next_id(created), created, user_id, actor_id, (verb, title, obj, target)
            )
            per_stream[user_id].append(act)
        for uid, acts in per_stream.items():
            self.streams[uid].bulk_load(acts)

    def stream_of(self, user_id: int) -> _Stream:
        try:
            return self.streams[user_id]
        except KeyError:
            raise ValueError(f"user {user_id} is not an agent of this account") from None

    def add_activity(
        self,
        user_id: int,
        *,
        verb: str,
        actor_id: int | None,
        created_at: datetime | str | None,
        ticket_id: int | None,
        obj: Any,
        target: Any,
        title: str | None,
    ) -> _Activity:
        stream = self.stream_of(user_id)
        rng = self.rng
        if created_at is None:
            ts = self.now()
        else:
            if isinstance(created_at, str):
                created_at = datetime.fromisoformat(created_at)
            if created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=UTC)
            ts = math.floor(created_at.timestamp())
        if actor_id is None:
            actor_id = self._pick_actor(verb)
        elif actor_id != SYSTEM_ACTOR_ID and actor_id not in self.users:
            raise ValueError(f"unknown actor_id {actor_id}")
        if ticket_id is None:
            ticket = rng.choice(self._tickets)
        else:
            known = {t.id: t for t in self._tickets}
            ticket = known.get(ticket_id) or _Ticket.make(ticket_id, f"Ticket {ticket_id}")
        gen_title, gen_obj, gen_target = self._content(verb, self._actor_name(actor_id), ticket)
        content = (
            verb,
            gen_title if title is None else title,
            gen_obj if obj is None else obj,
            gen_target if target is None else target,
        )
        act = _Activity(self._next_id(ts), ts, user_id, actor_id, content)
        _ = act.tail  # encode now: fails early on non-JSON input, and later mutation can't leak
        stream.insert(act)
        return act

    # -- rendering ----------------------------------------------------------------------------

    def rendered_users(self, base: bytes) -> RenderedUsers:
        """Encoded user records for ``base`` (already JSON-escaped)."""
        cache = self._rendered.get(base)
        if cache is None:
            if len(self._rendered) >= 16:  # many distinct Host headers: don't grow forever
                self._rendered.clear()
            cache = self._rendered[base] = RenderedUsers(self.users, base)
        return cache

    @staticmethod
    def render(act: _Activity, base: bytes, users: RenderedUsers) -> bytes:
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

    def as_dict(self, act: _Activity, base: str) -> dict[str, Any]:
        escaped = json_escape(base)
        out: dict[str, Any] = _decode(self.render(act, escaped, self.rendered_users(escaped)))
        return out

    @staticmethod
    def cursor_after(stream: _Stream, key: tuple[int, int]) -> int:
        return bisect_right(stream.keys, key)

    @staticmethod
    def cursor_before(stream: _Stream, key: tuple[int, int]) -> int:
        return bisect_left(stream.keys, key)

"""Account state of the emulator: users, credentials, per-agent activity streams.

Everything here is synchronous and independent of aiohttp, so it can be driven directly by
``Emulator`` helpers (``add_activity`` & co) and by the HTTP handlers in ``_handlers``. What
the data looks like comes from ``_fakedata``, OAuth pairs live in ``_oauth.TokenBook``
(``Account.tokens``), JSON comes from ``_render``.
"""

from __future__ import annotations

import gc
import math
import random
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import msgspec

from ._fakedata import (
    SEED_VERBS,
    Ticket,
    UserContext,
    activity_content,
    api_token,
    make_tickets,
    new_email,
    new_name,
    user_record,
)
from ._oauth import TokenBook
from ._render import (
    SYSTEM_ACTOR_ID,
    RenderedUsers,
    activity_tail,
    json_escape,
    render,
)

__all__ = ["SYSTEM_ACTOR_ID", "WINDOW_SECONDS", "Account", "Activity", "Agent", "Stream", "User"]

#: List and count only cover this many seconds before ``clock()``.
WINDOW_SECONDS = 30 * 86_400

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
class User:
    id: int
    name: str
    email: str
    role: str
    template: bytes  # the full JSON record; URLs start with _render.PLACEHOLDER


class Activity:
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
        """Everything between the base URL and the inline user record (``activity_tail``)."""
        tail = self._tail
        if tail is None:
            tail = self._tail = activity_tail(
                self.id, self.created_at, self.user_id, self.actor_id, self.content
            )
        return tail


class Stream:
    """One agent's activities, sorted by (-created_at, id): newest first."""

    __slots__ = ("by_id", "items", "keys")

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []
        self.items: list[Activity] = []
        self.by_id: dict[int, Activity] = {}

    def insert(self, act: Activity) -> None:
        key = (-act.created_at, act.id)
        i = bisect_left(self.keys, key)
        self.keys.insert(i, key)
        self.items.insert(i, act)
        self.by_id[act.id] = act

    def bulk_load(self, acts: Iterable[Activity]) -> None:
        items = sorted(acts, key=lambda a: (-a.created_at, a.id))
        self.items = items
        self.keys = [(-a.created_at, a.id) for a in items]
        self.by_id = {a.id: a for a in items}

    def end_for(self, min_created_at: int) -> int:
        """Index one past the last item with ``created_at >= min_created_at``."""
        return bisect_left(self.keys, (-min_created_at + 1,))

    def after(self, key: tuple[int, int]) -> int:
        """Index of the first item after the cursor position ``key``."""
        return bisect_right(self.keys, key)

    def before(self, key: tuple[int, int]) -> int:
        """Index one past the last item before the cursor position ``key``."""
        return bisect_left(self.keys, key)


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
        self.tokens = TokenBook(seed=seed, monotonic=monotonic, token_ttl=token_ttl)
        self.system_actor_share = system_actor_share
        self.users: dict[int, User] = {}
        self.agents: list[Agent] = []
        self.credentials: dict[int, Agent] = {}
        self.streams: dict[int, Stream] = {}
        self.actor_ids: list[int] = []  # non-credentialed users who cause activities
        self.staff_actor_ids: list[int] = []  # those of them who are agents/admins
        self.by_basic: dict[tuple[str, str], int] = {}
        self._emails: set[str] = set()
        self._last_id = 0
        self._rendered: dict[bytes, RenderedUsers] = {}
        now = self.now()
        self._id_epoch = now - _SEED_SPAN
        self._id_base = _ID_BASE + self.rng.randrange(500_000_000)
        self._user_context = UserContext.make(self.rng)
        self._tickets = make_tickets(self.rng, min(max(40, 10 * agents), 50_000))
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
        if name is None:
            name = new_name(self.rng)
        if email is None:
            email = new_email(name, self._emails)
        if email.lower() in self._emails:
            raise ValueError(f"email already in use: {email}")
        self._emails.add(email.lower())
        return name, email

    def _new_user(self, *, role: str, name: str | None = None, email: str | None = None) -> User:
        rng = self.rng
        name, email = self._new_name_email(name, email)
        if rng.random() < 0.5:  # older accounts have 10-11 digit ids, newer ones 12-14
            uid = self._unique_id(1_000_000_000, 99_999_999_999)
        else:
            uid = self._unique_id(360_000_000_000, 30_000_000_000_000)
        record = user_record(rng, self._user_context, self.now(), uid, name, email, role)
        user = User(uid, name, email, role, _encode(record))
        self.users[uid] = user
        return user

    def _credentials(self, user: User) -> Agent:
        rng = self.rng
        agent = Agent(
            user_id=user.id,
            name=user.name,
            email=user.email,
            api_token=api_token(rng),
            oauth_token=f"{rng.getrandbits(256):064x}",
            refresh_token=f"{rng.getrandbits(256):064x}",
            role=user.role,
        )
        self.credentials[user.id] = agent
        self.by_basic[(user.email.lower(), agent.api_token)] = user.id
        self.tokens.grant(user.id, agent.oauth_token, agent.refresh_token)
        return agent

    def add_agent(
        self, *, name: str | None = None, email: str | None = None, role: str = "agent"
    ) -> Agent:
        if role not in ("agent", "admin"):
            raise ValueError(f"an agent's role is 'agent' or 'admin', not {role!r}")
        user = self._new_user(role=role, name=name, email=email)
        self.streams[user.id] = Stream()
        agent = self._credentials(user)
        self.agents.append(agent)
        return agent

    def add_end_user(self, *, name: str | None = None, email: str | None = None) -> Agent:
        return self._credentials(self._new_user(role="end-user", name=name, email=email))

    def authenticate_basic(self, email: str, token: str) -> int | None:
        return self.by_basic.get((email.lower(), token))

    def is_agent(self, user_id: int) -> bool:
        return self.users[user_id].role in ("agent", "admin")

    # -- activities ---------------------------------------------------------------------------

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

    def _actor_name(self, actor_id: int) -> str:
        if actor_id == SYSTEM_ACTOR_ID:
            return "Zendesk"
        return self.users[actor_id].name

    def _seed_activities(self, per_agent: int, now: int) -> None:
        rng = self.rng
        r = rng.random
        verbs = SEED_VERBS
        pending: list[tuple[int, int, int, str]] = []
        for agent in self.agents:
            for _ in range(per_agent):
                # Up to ~31 days back, so a few fall outside the 30-day window.
                created = now - 30 - int(r() * (_SEED_SPAN - 30))
                verb = verbs[int(r() * len(verbs))]
                pending.append((created, agent.user_id, self._pick_actor(verb), verb))
        pending.sort(key=itemgetter(0))
        per_stream: dict[int, list[Activity]] = {uid: [] for uid in self.streams}
        tickets = self._tickets
        for created, user_id, actor_id, verb in pending:
            ticket = tickets[int(r() * len(tickets))]
            title, obj, target = activity_content(rng, verb, self._actor_name(actor_id), ticket)
            act = Activity(
                self._next_id(created), created, user_id, actor_id, (verb, title, obj, target)
            )
            per_stream[user_id].append(act)
        for uid, acts in per_stream.items():
            self.streams[uid].bulk_load(acts)

    def stream_of(self, user_id: int) -> Stream:
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
    ) -> Activity:
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
            ticket = known.get(ticket_id) or Ticket.make(ticket_id, f"Ticket {ticket_id}")
        gen_title, gen_obj, gen_target = activity_content(
            rng, verb, self._actor_name(actor_id), ticket
        )
        content = (
            verb,
            gen_title if title is None else title,
            gen_obj if obj is None else obj,
            gen_target if target is None else target,
        )
        act = Activity(self._next_id(ts), ts, user_id, actor_id, content)
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

    def as_dict(self, act: Activity, base: str) -> dict[str, Any]:
        escaped = json_escape(base)
        out: dict[str, Any] = _decode(render(act, escaped, self.rendered_users(escaped)))
        return out

"""Fake-data vocabulary and generators of the emulator: names, user records, ticket content.

Generated, not copied from anywhere. Every generator draws from the ``random.Random`` it is
given, in a fixed order, so a seed always yields the same account. Placeholders
(``PLACEHOLDER``) stand where the base URL goes; ``_render`` fills them in per host.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

from ._render import PLACEHOLDER_STR, format_time

__all__ = [
    "SEED_VERBS",
    "Ticket",
    "UserContext",
    "activity_content",
    "api_token",
    "make_tickets",
    "new_email",
    "new_name",
    "user_record",
]


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
class Ticket:
    id: int
    target: Any  # {"ticket": {"id": ..., "subject": ...}}

    @classmethod
    def make(cls, ticket_id: int, subject: str) -> Ticket:
        return cls(ticket_id, {"ticket": {"id": ticket_id, "subject": subject}})


_ALNUM = string.ascii_letters + string.digits

#: Verbs of seeded activities, weighted: mostly comments.
SEED_VERBS = (
    ("tickets.comment",) * 12 + ("tickets.assignment",) * 5 + ("tickets.priority_increase",) * 3
)


def make_tickets(rng: random.Random, n: int) -> list[Ticket]:
    ids = rng.sample(range(1000, 99_999), n)
    return [Ticket.make(tid, rng.choice(_SUBJECTS)) for tid in ids]


def api_token(rng: random.Random) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(40))


def new_name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def new_email(name: str, taken: set[str]) -> str:
    """``first.last@example.com`` in ASCII, numbered past the (lower-cased) ``taken`` ones."""
    local = ".".join(part.translate(_ASCII).lower() for part in name.split())
    local = "".join(c for c in local if c.isascii() and (c.isalnum() or c in "._-"))
    local = local or "user"
    email = f"{local}@example.com"
    n = 1
    while email.lower() in taken:
        n += 1
        email = f"{local}{n}@example.com"
    return email


@dataclass(frozen=True, slots=True)
class UserContext:
    """Account-wide facts a user record refers to."""

    org_ids: list[int]
    group_ids: list[int]
    custom_role_id: int

    @classmethod
    def make(cls, rng: random.Random) -> UserContext:
        org_ids = [rng.randrange(360_000_000, 400_000_000) for _ in range(4)]
        group_ids = [rng.randrange(20_000_000, 360_009_999_999) for _ in range(5)]
        return cls(org_ids, group_ids, 1_900_000_000_000 + rng.randrange(1_000_000_000))


def _photo(rng: random.Random, slug: str) -> dict[str, Any] | None:
    if rng.random() < 0.35:
        return None
    pid = rng.randrange(100_000_000, 30_000_000_000_000)
    tid = pid + rng.randrange(1, 50)
    ext, ctype = rng.choice((("jpg", "image/jpeg"), ("png", "image/png"), ("gif", "image/gif")))
    width, height = 80, rng.randrange(60, 100)
    fname, tname = f"{slug}.{ext}", f"{slug}_thumb.{ext}"
    base = PLACEHOLDER_STR
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


def user_record(
    rng: random.Random, ctx: UserContext, now: int, uid: int, name: str, email: str, role: str
) -> dict[str, Any]:
    """The full JSON record of a user; URLs start with ``PLACEHOLDER_STR``."""
    staff = role != "end-user"
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
        custom_role_id = ctx.custom_role_id if role_type in (0, 4) else None
    else:
        role_type = custom_role_id = None
    record: dict[str, Any] = {
        "id": uid,
        "url": f"{PLACEHOLDER_STR}/api/v2/users/{uid}.json",
        "name": name,
        "email": email,
        "created_at": format_time(created),
        "updated_at": format_time(updated),
        "time_zone": tz,
        "iana_time_zone": iana,
        "phone": phone,
        "shared_phone_number": None if phone is None else rng.random() < 0.2,
        "photo": _photo(rng, slug),
        "locale_id": locale_id,
        "locale": locale,
        "organization_id": rng.choice(ctx.org_ids) if rng.random() < 0.7 else None,
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
        "default_group_id": rng.choice(ctx.group_ids) if staff else None,
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


def activity_content(
    rng: random.Random, verb: str, actor_name: str, ticket: Ticket
) -> tuple[str, Any, Any]:
    """title, object and target for a generated activity (objects are shared, read-only)."""
    r = rng.random
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

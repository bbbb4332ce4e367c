"""OAuth grants of the emulated account: who holds which access/refresh pair, expiry, rotation.

Pure state (no HTTP): ``POST /oauth/tokens`` in ``_handlers`` and bearer authentication call it.
A refresh rotates the pair and retires the old tokens (a retired access token answers
``invalid_token``, a retired refresh token ``invalid_grant``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BearerState", "Grant", "TokenBook"]


@dataclass(slots=True)
class Grant:
    """A user's current OAuth pair."""

    access: str
    refresh: str
    expires_at: float | None  # on the ``monotonic`` clock; None: never
    expired: bool = False  # set by ``expire``

    def valid(self, now: float) -> bool:
        return not self.expired and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class BearerState:
    """Whose bearer token this is and whether it still works."""

    user_id: int
    valid: bool


class TokenBook:
    """Every OAuth pair the account issued, current and retired."""

    def __init__(
        self, *, seed: int, monotonic: Callable[[], float], token_ttl: float | None
    ) -> None:
        self.monotonic = monotonic
        self.token_ttl = token_ttl
        # Refreshed tokens come from their own generator, so refreshing does not change the
        # data generated afterwards (add_activity's random picks).
        self._rng = random.Random(f"{seed}/oauth")
        self.by_bearer: dict[str, int] = {}  # current access tokens (expired ones included)
        self.by_refresh: dict[str, int] = {}  # current refresh tokens
        self.retired: dict[str, int] = {}  # replaced access and refresh tokens -> their user
        self.grants: dict[int, Grant] = {}
        self.refresh_count = 0

    def grant(self, user_id: int, access: str, refresh: str) -> Grant:
        """Make ``access``/``refresh`` the current pair of ``user_id``."""
        ttl = self.token_ttl
        grant = Grant(access, refresh, None if ttl is None else self.monotonic() + ttl)
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

    def owner(self, token: str) -> int | None:
        """Whose access or refresh token (current or retired) this is."""
        for table in (self.by_bearer, self.by_refresh, self.retired):
            user_id = table.get(token)
            if user_id is not None:
                return user_id
        return None

    def refresh(self, refresh_token: str) -> Grant | None:
        """Rotate the pair of ``refresh_token``'s owner; None if it is not a current one."""
        user_id = self.by_refresh.get(refresh_token)
        if user_id is None:
            return None
        old = self.grants[user_id]
        for token in (old.access, old.refresh):
            self.by_bearer.pop(token, None)
            self.by_refresh.pop(token, None)
            self.retired[token] = user_id
        rng = self._rng
        grant = self.grant(user_id, f"{rng.getrandbits(256):064x}", f"{rng.getrandbits(256):064x}")
        self.refresh_count += 1
        return grant

    def expire(self, user_id: int | None = None) -> None:
        """Expire the current access token of ``user_id`` (of everyone when None)."""
        if user_id is None:
            for grant in self.grants.values():
                grant.expired = True
        else:
            self.of(user_id).expired = True

    def current(self, user_id: int) -> tuple[str, str]:
        grant = self.of(user_id)
        return grant.access, grant.refresh

    def of(self, user_id: int) -> Grant:
        try:
            return self.grants[user_id]
        except KeyError:
            raise ValueError(f"user {user_id} has no credentials in this account") from None

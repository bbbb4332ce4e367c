"""One Zendesk account's budget, checkpoints and fleet, shared across processes and machines.

Install with ``pip install 'zdactivity[redis]'`` (redis-py's ``redis.asyncio``); the core keeps
its three runtime dependencies. Redis holds the shared state, and zdactivity's own rules run
inside it as Lua scripts, atomically, with Redis ``TIME`` as the one clock:

- :class:`RedisRateLimiter`: the account's request budget for every process (a
  :class:`~zdactivity.ratelimit.RateLimitBackend`).
- :class:`RedisCheckpointStore`: checkpoints with fenced saves (a
  :class:`~zdactivity.checkpoint.CheckpointStore`).
- :class:`RedisCoordinator`: workers that split a fleet's agents between them, with leases,
  fencing tokens and takeover.

Every key carries a hash tag (``{...}``) per account or group, so a Redis Cluster keeps the keys
one script touches in one slot.
"""

from __future__ import annotations

from ._checkpoint import RedisCheckpointStore
from ._coordinator import Ownership, RedisCoordinator
from ._limiter import RedisRateLimiter
from ._writes import RedisWrites

__all__ = [
    "Ownership",
    "RedisCheckpointStore",
    "RedisCoordinator",
    "RedisRateLimiter",
    "RedisWrites",
]

"""Workers that split a fleet's agents between them: membership, leases and fencing tokens.

Every worker of a group runs ``Fleet(store, coordinator=RedisCoordinator(redis, group))`` with
the full set of agents; each runs only its share.

- **Membership by heartbeat.** Every ``heartbeat`` seconds (default ``lease / 3``) a worker
  writes its id into the group's member set with an expiry ``lease`` seconds ahead of Redis
  ``TIME`` (the one clock), drops the members whose expiry has passed, and reads the live ones.
- **Who owns what.** Rendezvous hashing over the live members names each agent's owner; the
  owner claims a lease on it (``SET NX PX lease``) and renews it with every heartbeat. A worker
  holding an agent that the hashing now gives to another (a worker joined) commits it and lets
  it go; the new owner takes it on its next heartbeat.
- **Fencing.** Each ownership gets a token from ``INCR`` on the agent's fence counter, claimed in
  the checkpoint store before the agent is watched and carried by every save: a paused
  ("zombie") worker's saves are refused (:class:`~zdactivity.errors.FencedOutError`) once
  another worker has claimed the agent, and its watcher stops. A worker also stops delivering
  an agent's activities as soon as its own clock says the lease may have expired.
- **Takeover.** A worker that dies or stops heartbeating drops out of the members, and its
  leases expire, ``lease`` seconds after its last heartbeat; the new owner claims the agent on
  its next heartbeat: every agent is owned again within ``lease + heartbeat`` seconds (plus
  one Redis round trip). A worker that stops gracefully (``Fleet.stop``, SIGTERM) commits and
  releases its agents and leaves at once: others take them over within ``heartbeat`` seconds.

The guarantee: no activity is lost (a new owner resumes from the last checkpoint saved with a
fence); an agent's activity may be delivered twice, at most once per crash (or pause past the
lease) of a worker that owned it: the one its handler had taken but not yet committed. A
graceful handover commits first and repeats nothing. Output kept in the same Redis is exactly
once when the handler stages it with :meth:`Fleet.writes <zdactivity.fleet.Fleet.writes>`
(:class:`~zdactivity.redis.RedisWrites`): it is written in the script that saves the
checkpoint, behind the same fence check, so a crash writes neither and a zombie's late save is
refused whole. A consumer whose output lives elsewhere dedupes by ``activity.id``, or writes it
conditioned on the ownership's fence (:meth:`Fleet.ownership
<zdactivity.fleet.Fleet.ownership>`), so a zombie's late writes are refused on its side too.

Keys (all with the group's hash tag, all with TTLs): ``{prefix}:{{group}}:members`` (a sorted
set), ``{prefix}:{{group}}:lease:{agent}``, ``{prefix}:{{group}}:fence:{agent}`` (kept
``fence_ttl`` seconds after the last claim, 30 days by default: the counter must outlive any
pause of the group, or a new claim would start below the store's fence).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

__all__ = ["Ownership", "RedisCoordinator"]

_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], lease * 3)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

_RENEW = """
local held = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    held[i] = 1
  else
    held[i] = 0
  end
end
return held
"""

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return fence
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(eq=False)
class Ownership:
    """One worker's ownership of one agent: its fencing token and its lease's local deadline."""

    key: str
    fence: int
    #: Loop time after which the lease may have expired in Redis (renewals move it on).
    deadline: float
    lost: bool = False

    def valid(self) -> bool:
        """Still ours, as far as this worker can tell without asking Redis."""
        return not self.lost and asyncio.get_running_loop().time() < self.deadline

    def lose(self) -> None:
        self.lost = True


@dataclass
class Tick:
    """What one heartbeat changed: agents to start, to stop at once, to hand over."""

    acquired: list[Ownership] = field(default_factory=list)
    lost: list[Ownership] = field(default_factory=list)
    handoff: list[str] = field(default_factory=list)


def _score(member: str, key: str) -> bytes:
    return hashlib.blake2b(f"{member}\0{key}".encode(), digest_size=8).digest()


class RedisCoordinator:
    """Split a fleet's agents between the live workers of ``group``; see the module docs.

    ``lease`` (seconds) bounds how long a dead or paused worker's agents stay unowned;
    ``heartbeat`` (default ``lease / 3``) is how often a worker renews its membership and
    leases and looks for agents to take. ``worker_id`` defaults to host, pid and a random tag.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        group: str,
        *,
        worker_id: str | None = None,
        lease: float = 10.0,
        heartbeat: float | None = None,
        key_prefix: str = "zdactivity",
        fence_ttl: float = 30 * 86400.0,
        safety: float = 0.9,
    ) -> None:
        if not group:
            raise ValueError("group must be a non-empty str")
        if lease <= 0:
            raise ValueError("lease must be positive")
        self.redis = redis
        self.group = group
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = lease
        self.heartbeat = heartbeat if heartbeat is not None else lease / 3
        if not 0 < self.heartbeat < lease:
            raise ValueError("heartbeat must be positive and shorter than the lease")
        self.key_prefix = key_prefix
        self.fence_ttl = fence_ttl
        self.safety = safety
        self.owned: dict[str, Ownership] = {}
        self.members: list[str] = []
        #: Loop time of the last heartbeat that reached Redis (None before the first): how long
        #: this worker has been cut off, for a caller that gives up after a while.
        self.last_contact: float | None = None
        self._joined = False
        self._heartbeat_script: Any = redis.register_script(_HEARTBEAT)
        self._renew_script: Any = redis.register_script(_RENEW)
        self._acquire_script: Any = redis.register_script(_ACQUIRE)
        self._release_script: Any = redis.register_script(_RELEASE)

    # --- keys

    def _key(self, *parts: str) -> str:
        return ":".join((self.key_prefix, "{" + self.group + "}", *parts))

    @property
    def members_key(self) -> str:
        return self._key("members")

    def lease_key(self, agent: str) -> str:
        return self._key("lease", agent)

    def fence_key(self, agent: str) -> str:
        return self._key("fence", agent)

    @property
    def _lease_ms(self) -> int:
        return max(1, int(self.lease * 1000))

    # --- membership

    def owner_of(self, key: str, members: Iterable[str] | None = None) -> str | None:
        """The live member that rendezvous hashing gives ``key`` to."""
        live = list(self.members if members is None else members)
        if not live:
            return None
        return max(live, key=lambda m: _score(m, key))

    async def tick(self, keys: Iterable[str]) -> Tick:
        """One heartbeat: renew membership and leases, take this worker's share of ``keys``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.lease * self.safety
        raw = await self._heartbeat_script(
            keys=[self.members_key], args=[self.worker_id, self._lease_ms, "1"]
        )
        self.last_contact = loop.time()
        self.members = [m.decode() if isinstance(m, bytes) else str(m) for m in raw]
        first = not self._joined
        self._joined = True
        tick = Tick()
        if self.owned:
            held = list(self.owned.values())
            flags = await self._renew_script(
                keys=[self.lease_key(o.key) for o in held], args=[self.worker_id, self._lease_ms]
            )
            for ownership, flag in zip(held, flags, strict=True):
                if self.owned.get(ownership.key) is not ownership:
                    continue  # released while the renewal was on its way
                if int(flag):
                    ownership.deadline = deadline
                else:
                    del self.owned[ownership.key]
                    ownership.lose()
                    tick.lost.append(ownership)
        if first:
            return tick  # let the membership settle for one heartbeat before taking agents
        for key in keys:
            mine = self.owner_of(key) == self.worker_id
            if key in self.owned:
                if not mine:
                    tick.handoff.append(key)
            elif mine:
                fence = int(
                    await self._acquire_script(
                        keys=[self.lease_key(key), self.fence_key(key)],
                        args=[self.worker_id, self._lease_ms, max(1, int(self.fence_ttl))],
                    )
                )
                if fence:
                    ownership = Ownership(key, fence, deadline)
                    self.owned[key] = ownership
                    tick.acquired.append(ownership)
        return tick

    async def release(self, key: str) -> None:
        """Give ``key`` up (after its last commit): another worker may take it at once."""
        ownership = self.owned.pop(key, None)
        if ownership is not None:
            ownership.lose()
            await self._release_script(keys=[self.lease_key(key)], args=[self.worker_id])

    async def leave(self) -> None:
        """Release every agent still held and leave the group."""
        for key in list(self.owned):
            await self.release(key)
        await self.redis.zrem(self.members_key, self.worker_id)
        self._joined = False

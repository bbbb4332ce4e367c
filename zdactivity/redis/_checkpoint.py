"""Checkpoints in Redis, with fenced saves: a worker that lost its agent cannot move it back.

Each key's checkpoint is one Redis hash, ``{prefix}:cp:{key}`` (the key in a hash tag), with the
fields ``high_water`` (ISO text, absent for ``None``), ``recent_ids`` (compact JSON),
``position`` (absent for ``None``) and ``fence`` (the fencing token of the worker that owns the
key, absent until a fenced worker claimed it), and ``writes`` (the id of the last consumer
writes stored with it). Every save is one Lua script: it compares the stored fence and writes
the checkpoint, the fence and the consumer's staged writes (:class:`RedisWrites`) together,
atomically.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from .._aio import AsyncClosing
from ..checkpoint import Checkpoint, _check_key, _encode_high_water, _encode_ids, _normalize
from ..errors import CheckpointError, FencedOutError
from ._writes import LUA_KEY_TYPES, LUA_WRITES, RedisWrites

__all__ = ["RedisCheckpointStore"]

_T = TypeVar("_T")

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_MESSAGE_LIMIT = 200
_FENCE_TEXT = re.compile(r"0|[1-9][0-9]{0,18}")
# Credentials in a URL ("redis://user:password@host"), should an error text ever carry one.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^@/\s]*@")

# Fences are non-negative decimal integers below 2**63, compared as text (length, then
# lexicographically) so that Lua's doubles never round them; a stored fence in any other form
# is an error reply (the store reports the checkpoint as corrupt).
_LUA_FENCE_HELPERS = """
local function older(a, b)  -- a < b, both decimal texts without leading zeros
  if #a ~= #b then return #a < #b end
  return a < b
end
local function bad_fence(f)  -- not the text of an integer in [0, 2**63 - 1]
  if f == '0' then return false end
  if not string.match(f, '^[1-9]%d*$') then return true end
  return older('9223372036854775807', f)
end
"""

#: KEYS[1] the checkpoint hash, KEYS[2...] the consumer's keys; ARGV: fence ('' = unfenced),
#: recent_ids, has_high_water ('0' or '1'), high_water, has_position, position, the writes' id
#: ('' for none), then the staged writes (:data:`LUA_WRITES`). Returns {1} when stored (or when
#: these writes were stored before: a retry), {0, stored_fence} when refused, an error reply for
#: a corrupt fence or a write that cannot run (nothing is written then).
CHECKPOINT_SAVE_LUA = (
    _LUA_FENCE_HELPERS
    + LUA_KEY_TYPES
    + """
local key = KEYS[1]
local writes_id = ARGV[7]
if writes_id ~= '' and redis.call('HGET', key, 'writes') == writes_id then return {1} end
local stored = redis.call('HGET', key, 'fence')
if stored and bad_fence(stored) then
  return redis.error_reply('ZDACTIVITY corrupt fence')
end
local fence = ARGV[1]
if fence == '' then
  if stored then return {0, stored} end
else
  if stored and older(fence, stored) then return {0, stored} end
end
local i = 8
"""
    + LUA_WRITES
    + """
if fence ~= '' then redis.call('HSET', key, 'fence', fence) end
if writes_id ~= '' then redis.call('HSET', key, 'writes', writes_id) end
redis.call('HSET', key, 'recent_ids', ARGV[2])
if ARGV[3] == '1' then
  redis.call('HSET', key, 'high_water', ARGV[4])
else
  redis.call('HDEL', key, 'high_water')
end
if ARGV[5] == '1' then
  redis.call('HSET', key, 'position', ARGV[6])
else
  redis.call('HDEL', key, 'position')
end
return {1}
"""
)

#: KEYS[1] the checkpoint hash; ARGV[1] the fence. Returns {1} when the stored fence is now
#: ARGV[1] (raised, or already equal), {0, stored_fence} when the stored one is higher.
CHECKPOINT_CLAIM_LUA = (
    _LUA_FENCE_HELPERS
    + """
local key = KEYS[1]
local stored = redis.call('HGET', key, 'fence')
if stored and bad_fence(stored) then
  return redis.error_reply('ZDACTIVITY corrupt fence')
end
local fence = ARGV[1]
if stored and older(fence, stored) then return {0, stored} end
if stored ~= fence then redis.call('HSET', key, 'fence', fence) end
return {1}
"""
)


def _check_fence(fence: object) -> int:
    if isinstance(fence, bool) or not isinstance(fence, int):
        raise TypeError(f"fence must be an int, not {type(fence).__name__}")
    if not 0 <= fence <= _INT64_MAX:
        raise ValueError(f"fence must be between 0 and 2**63-1, got {fence}")
    return int(fence)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if isinstance(value, str):
        return value
    raise ValueError(f"unexpected {type(value).__name__} from Redis")


class RedisCheckpointStore(AsyncClosing):
    """Checkpoints in Redis, shared by every process and machine, with fenced saves.

    ``redis`` is a :class:`redis.asyncio.Redis` (``decode_responses`` either way); the store
    does not own it: :meth:`close` leaves it open (close it yourself, after the store). Each
    key's checkpoint is one hash, ``{key_prefix}:cp:{{key}}``. At most ``max_concurrency``
    commands of the store are in flight at once (more wait their turn), so that a fleet of
    thousands of watchers saving together stays within the client's connection pool
    (redis-py's default pool refuses a command beyond its ``max_connections`` instead of
    waiting; a client shared with other users may want a ``BlockingConnectionPool``).

    Without fencing it is a plain :class:`~zdactivity.checkpoint.CheckpointStore` for one
    process per key. For a fleet of workers, each ownership of a key carries a fencing token
    (an integer that grows with every new owner, e.g. from ``INCR``): the owner calls
    :meth:`claim` before it starts, then passes ``fence=`` with every :meth:`save`. A save with
    a fence lower than the stored one is refused with :class:`FencedOutError` (and counted in
    :attr:`refused`), so a paused or partitioned "zombie" worker cannot move a checkpoint back.

    Durability is Redis's: run it with ``appendonly yes``; ``appendfsync always`` keeps every
    saved checkpoint through a crash of the machine, ``everysec`` may lose the last second of
    saves then (both keep them through a crash or kill of ``redis-server`` alone).

    Errors: an unreachable Redis, a failing command or a stored value that does not decode is a
    :class:`CheckpointError` naming the key; no redis-py exception leaves the store, nor is one
    chained to its errors (their texts could name the server). A ``save`` that is cancelled or
    fails on the connection may or may not have been stored.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        key_prefix: str = "zdactivity",
        max_concurrency: int = 32,
    ) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise TypeError(f"max_concurrency must be an int, not {type(max_concurrency).__name__}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if not isinstance(key_prefix, str):
            raise TypeError(f"key_prefix must be a str, not {type(key_prefix).__name__}")
        if not key_prefix:
            raise ValueError("key_prefix must not be empty")
        self._redis = redis
        self._prefix = key_prefix
        self._save_script = redis.register_script(CHECKPOINT_SAVE_LUA)
        self._claim_script = redis.register_script(CHECKPOINT_CLAIM_LUA)
        self._closed = False
        self._slots = asyncio.Semaphore(max_concurrency)
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: Saves refused with :class:`FencedOutError` (stale fence, or unfenced after a claim).
        self.refused = 0
        #: Claims refused with :class:`FencedOutError` (a higher fence was stored).
        self.refused_claims = 0

    @property
    def key_prefix(self) -> str:
        return self._prefix

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<RedisCheckpointStore key_prefix={self._prefix!r}{state}>"

    def redis_key(self, key: str) -> str:
        """The Redis key of the hash that holds ``key``'s checkpoint."""
        return f"{self._prefix}:cp:{{{_check_key(key)}}}"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("RedisCheckpointStore is closed")

    # ---- public API

    async def load(self, key: str) -> Checkpoint | None:
        """The checkpoint last saved under ``key``, or ``None`` (also for a key only claimed)."""
        rkey = self.redis_key(key)
        self._check_open()
        values = await self._call(key, "load", lambda: self._redis.hmget(rkey, _FIELDS))
        return _decode(self._prefix, key, values)

    def writes(self, key: str) -> RedisWrites:
        """An empty :class:`RedisWrites` for ``key``'s next save (``Fleet.writes`` calls it)."""
        return RedisWrites(self.redis_key(key))

    async def save(
        self,
        key: str,
        checkpoint: Checkpoint,
        *,
        fence: int | None = None,
        writes: RedisWrites | None = None,
    ) -> None:
        """Store ``checkpoint`` under ``key``; durable on return as far as Redis's persistence is.

        With ``fence``: refused (:class:`FencedOutError`) if the stored fence is higher, else
        the checkpoint and ``fence`` are stored together, atomically. Without: refused
        (:class:`FencedOutError`) if the key was ever claimed or saved with a fence, since a
        fenced owner and an unfenced writer on one key is a bug. ``writes`` run in the same
        script, after the same check: stored with the checkpoint, or refused with it.
        """
        rkey = self.redis_key(key)
        checkpoint = _normalize(checkpoint)
        fence_text = "" if fence is None else str(_check_fence(fence))
        if writes is not None and not isinstance(writes, RedisWrites):
            raise TypeError(f"writes must be RedisWrites, not {type(writes).__name__}")
        hw = _encode_high_water(checkpoint.high_water)
        position = checkpoint.position
        if position is not None:
            try:
                position.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("position is not valid Unicode text") from None
        self._check_open()
        keys: list[str] = [rkey]
        args: list[str | bytes] = [
            fence_text,
            _encode_ids(checkpoint.recent_ids),
            "0" if hw is None else "1",
            hw or "",
            "0" if position is None else "1",
            position or "",
        ]
        if writes:
            # An id makes the save idempotent: a retry after a dropped connection does not run
            # the writes a second time.
            consumer_keys, tail = writes.encode(first_key_index=2)
            if rkey in consumer_keys:
                raise ValueError(f"{rkey!r} is the checkpoint's own key")
            keys += consumer_keys
            args += [uuid.uuid4().hex, *tail]
        else:
            args += ["", "0"]
        result = await self._call(key, "save", lambda: self._save_script(keys=keys, args=args))
        stored = self._refusal(key, result)
        if stored is not None:
            self.refused += 1
            if fence is None:
                raise FencedOutError(
                    f"checkpoint {key!r}: an unfenced save refused, the key is owned with"
                    f" fence {stored}",
                    self._prefix,
                )
            raise FencedOutError(
                f"checkpoint {key!r}: save with fence {fence} refused, another owner holds"
                f" fence {stored}",
                self._prefix,
            )

    async def claim(self, key: str, fence: int) -> None:
        """Take ownership of ``key`` with ``fence``: raise the stored fence to it, atomically.

        No change if the stored fence already equals ``fence``; :class:`FencedOutError` if it is
        higher (a newer owner exists). The checkpoint itself is left as it is.
        """
        rkey = self.redis_key(key)
        fence = _check_fence(fence)
        self._check_open()
        result = await self._call(
            key, "claim", lambda: self._claim_script(keys=[rkey], args=[fence])
        )
        stored = self._refusal(key, result)
        if stored is not None:
            self.refused_claims += 1
            raise FencedOutError(
                f"checkpoint {key!r}: claim with fence {fence} refused, another owner holds"
                f" fence {stored}",
                self._prefix,
            )

    async def fence(self, key: str) -> int | None:
        """The fence stored with ``key`` (the newest owner's), or ``None`` if never claimed."""
        rkey = self.redis_key(key)
        self._check_open()
        value = await self._call(key, "read the fence of", lambda: self._redis.hget(rkey, "fence"))
        if value is None:
            return None
        try:
            text = _text(value)
            if not _FENCE_TEXT.fullmatch(text) or int(text) > _INT64_MAX:
                raise ValueError(f"fence {text[:40]!r} is not a decimal integer below 2**63")
            return int(text)
        except ValueError as exc:
            error = self._corrupt(key, str(exc))
        raise error

    async def close(self) -> None:
        """Refuse new calls (RuntimeError) and wait for the pending ones; idempotent.

        The Redis client the store was given stays open: close it yourself, after the store.
        """
        self._closed = True
        await self._idle.wait()

    # ---- helpers

    async def _call(self, key: str, action: str, command: Callable[[], Awaitable[_T]]) -> _T:
        # Every command of the store is idempotent (a fenced save writes absolute values, and
        # passes again with the same fence; its consumer writes carry an id the script
        # remembers), so a dropped connection (Redis restarted, an idle
        # connection closed) is retried once, on a fresh connection.
        self._inflight += 1
        self._idle.clear()
        try:
            return await self._attempt(key, action, command)
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()

    async def _attempt(self, key: str, action: str, command: Callable[[], Awaitable[_T]]) -> _T:
        # The CheckpointError is raised outside the except block: no redis-py exception (whose
        # text could name the server) ends up in its __cause__ or __context__.
        for attempt in (1, 2):
            try:
                async with self._slots:
                    return await command()
            except ResponseError as exc:
                text = str(exc)
                if "WRONGTYPE" in text or "ZDACTIVITY corrupt" in text:
                    what = (
                        "not a checkpoint hash"
                        if "WRONGTYPE" in text
                        else "its fence is not a decimal integer"
                    )
                    error = self._corrupt(key, what)
                elif "ZDACTIVITY writes:" in text:
                    what = text.split("ZDACTIVITY writes:", 1)[1].strip()[:_MESSAGE_LIMIT]
                    error = CheckpointError(
                        f"Redis checkpoint store {self._prefix!r} could not {action} {key!r}"
                        f" with its writes: {what}; nothing was written",
                        self._prefix,
                    )
                else:
                    error = self._failed(key, action, exc)
            except RedisConnectionError as exc:
                if attempt == 1:
                    continue
                error = self._failed(key, action, exc)
            except UnicodeDecodeError as exc:  # a client with decode_responses=True
                error = self._corrupt(key, f"not UTF-8 text: {exc}")
            except (RedisError, OSError) as exc:
                error = self._failed(key, action, exc)
            break
        raise error

    def _failed(self, key: str, action: str, exc: BaseException) -> CheckpointError:
        text = _URL_CREDENTIALS.sub("***@", str(exc))
        if len(text) > _MESSAGE_LIMIT:
            text = text[:_MESSAGE_LIMIT] + "..."
        return CheckpointError(
            f"Redis checkpoint store {self._prefix!r} could not {action} {key!r}:"
            f" {type(exc).__name__}: {text}",
            self._prefix,
        )

    def _corrupt(self, key: str, what: str) -> CheckpointError:
        return CheckpointError(
            f"Redis checkpoint store {self._prefix!r}: the checkpoint of {key!r} does not"
            f" decode: {what}",
            self._prefix,
        )

    def _refusal(self, key: str, result: object) -> str | None:
        """None when the script stored, else the stored fence that refused it."""
        try:
            if not isinstance(result, list) or not result:
                raise ValueError(f"unexpected script result {result!r:.80}")
            if result[0] == 1:
                return None
            return _text(result[1])
        except (ValueError, IndexError) as exc:
            error = self._corrupt(key, str(exc))
        raise error


_FIELDS = ["high_water", "recent_ids", "position"]


def _decode(prefix: str, key: str, values: list[Any]) -> Checkpoint | None:
    hw_raw, ids_raw, position_raw = values
    try:
        if ids_raw is None:
            if hw_raw is not None or position_raw is not None:
                raise ValueError("recent_ids is missing")
            return None  # never saved (perhaps claimed)
        ids_list = msgspec.json.decode(
            ids_raw.encode() if isinstance(ids_raw, str) else ids_raw, type=list[int]
        )
        for i in ids_list:
            if not _INT64_MIN <= i <= _INT64_MAX:
                raise ValueError(f"recent id {i} does not fit in 64 bits")
        hw: datetime | None = None
        if hw_raw is not None:
            hw_text = _text(hw_raw)
            hw = datetime.fromisoformat(hw_text)
            if hw.tzinfo is None:
                raise ValueError(f"high_water {hw_text[:40]!r} has no UTC offset")
            hw = hw.astimezone(UTC)
        position = None if position_raw is None else _text(position_raw)
    except (ValueError, OverflowError, TypeError, msgspec.DecodeError) as exc:
        error = CheckpointError(
            f"Redis checkpoint store {prefix!r}: the checkpoint of {key!r} does not decode:"
            f" {str(exc)[:_MESSAGE_LIMIT]}",
            prefix,
        )
    else:
        return Checkpoint(high_water=hw, recent_ids=frozenset(ids_list), position=position)
    raise error

"""Redis writes committed together with a checkpoint: a consumer's output, exactly once.

A fleet handler stages the Redis writes its activity causes, and the save that commits the
activity runs them and the checkpoint in one Lua script, behind the same fence check::

    async def notify(key: str, activity: zdactivity.Activity) -> None:
        fleet.writes(key).rpush("inbox", activity.id).hincrby("per-agent", key, 1)

Either both the writes and the checkpoint are stored, or neither: a worker killed before the
save wrote nothing (the next owner handles the activity again and stages the writes again), and
a zombie's late save with a stale fence is refused whole. Only the few commands below are
offered, each checked before anything is written (the key's type; an integer to increment), so
the script never fails half-way: Redis does not roll a script back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

__all__ = ["RedisWrites"]

Value = str | bytes | int | float

#: Commands per save, and arguments per command (Lua's ``unpack`` has a bounded stack).
MAX_COMMANDS: Final = 1000
MAX_VALUES: Final = 1000
#: The largest increment; with MAX_COMMANDS of them and a stored value below 10**18 (checked in
#: the script) no sum can overflow Redis's 64-bit integers.
MAX_INCREMENT: Final = 10**15

# Command -> the key type it needs ('' for SET, which replaces any type).
KEY_TYPES: Final = {
    "SET": "",
    "INCRBY": "string",
    "HSET": "hash",
    "HINCRBY": "hash",
    "RPUSH": "list",
    "SADD": "set",
    "ZADD": "zset",
    "XADD": "stream",
}

#: Checks every staged command (the whitelist, the key's type, integers to increment), then runs
#: them. Expects ``i`` (the ARGV index of the command count) and ``KEY_TYPES``.
LUA_WRITES = """
local function well_formed(name, args, nargs)  -- what RedisWrites stages, and nothing else
  if name == 'SET' then return nargs == 1 end
  if name == 'INCRBY' or name == 'HINCRBY' then
    local amount = args[nargs]
    return nargs == (name == 'INCRBY' and 1 or 2) and #amount <= 17
      and string.match(amount, '^%-?%d+$') ~= nil
  end
  if name == 'HSET' then return nargs % 2 == 0 end
  if name == 'XADD' then return nargs % 2 == 1 and nargs >= 3 and args[1] == '*' end
  if name == 'ZADD' then
    if nargs % 2 == 1 then return false end
    for j = 1, nargs, 2 do
      local score = tonumber(args[j])
      if score == nil or score ~= score or score == math.huge or score == -math.huge
        or string.match(args[j], '^[-+]?[%d.]+e?[-+]?%d*$') == nil then
        return false
      end
    end
  end
  return true
end
local n = tonumber(ARGV[i])
local planned, kinds = {}, {}
i = i + 1
for c = 1, n do
  local name, k, nargs = ARGV[i], KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  local want = KEY_TYPES[name]
  if want == nil or k == nil or k == KEYS[1] or not nargs or nargs < 1 or nargs > 1000 then
    return redis.error_reply('ZDACTIVITY writes: command ' .. tostring(name) .. ' refused')
  end
  local args = {}
  for j = 1, nargs do args[j] = ARGV[i + 2 + j] end
  if #args ~= nargs or not well_formed(name, args, nargs) then
    return redis.error_reply('ZDACTIVITY writes: ' .. name .. ' arguments refused')
  end
  local kind = want == '' and 'string' or want
  if (kinds[k] or kind) ~= kind then
    return redis.error_reply('ZDACTIVITY writes: ' .. name .. ' on a ' .. kinds[k] .. ' key')
  end
  kinds[k] = kind
  if want ~= '' then
    local has = redis.call('TYPE', k)['ok']
    if has ~= 'none' and has ~= want then
      return redis.error_reply('ZDACTIVITY writes: ' .. name .. ' on a ' .. has .. ' key')
    end
  end
  local current = nil
  if name == 'INCRBY' then current = redis.call('GET', k) end
  if name == 'HINCRBY' then current = redis.call('HGET', k, args[1]) end
  if current and current ~= '0' then
    local digits = string.match(current, '^%-?([1-9]%d*)$')
    if digits == nil or #digits > 18 then
      return redis.error_reply('ZDACTIVITY writes: ' .. name .. ' on a value that is not an'
        .. ' integer below 10^18')
    end
  end
  planned[c] = {name, k, args}
  i = i + 3 + nargs
end
for _, cmd in ipairs(planned) do
  redis.call(cmd[1], cmd[2], unpack(cmd[3]))
end
"""

LUA_KEY_TYPES = (
    "local KEY_TYPES = {"
    + ", ".join(f"{name} = '{kind}'" for name, kind in KEY_TYPES.items())
    + "}\n"
)


def _name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a Redis key must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError("a Redis key must not be empty")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"Redis key {name!r} is not valid Unicode text") from None
    return name


def _value(value: object) -> str | bytes:
    if isinstance(value, bool):
        raise TypeError("a value must be str, bytes, int or float, not bool")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a value is not valid Unicode text") from None
        return value
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a value must be finite, not {value}")
        return repr(value)
    raise TypeError(f"a value must be str, bytes, int or float, not {type(value).__name__}")


def _increment(amount: object) -> str:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"an increment must be an int, not {type(amount).__name__}")
    if not -MAX_INCREMENT <= amount <= MAX_INCREMENT:
        raise ValueError(f"an increment must be within +-10**15, got {amount}")
    return str(int(amount))


class RedisWrites:
    """Redis writes staged for one activity, applied with its checkpoint in one fenced script.

    Get one from ``fleet.writes(key)`` inside the fleet's handler (or from
    :meth:`RedisCheckpointStore.writes` and pass it to ``save(..., writes=)``). Each method
    stages one command and returns the object, so calls chain; nothing reaches Redis until the
    activity's checkpoint is saved, and then everything does, or nothing (a stale fence refuses
    both). Values are ``str``, ``bytes``, ``int`` or ``float``; keys are any Redis keys but the
    checkpoint's own (in a Redis Cluster, give them the agent's hash tag, ``f"out:{{{key}}}"``,
    so they share the checkpoint's slot).

    A key keeps one type within one batch, and a value that is set is not also incremented, so
    that every command can be checked before any runs.
    """

    __slots__ = ("_checkpoint_key", "_commands", "_kinds", "_values")

    def __init__(self, checkpoint_key: str | None = None) -> None:
        self._checkpoint_key = checkpoint_key
        self._commands: list[tuple[str, str, tuple[str | bytes, ...]]] = []
        self._kinds: dict[str, str] = {}  # key -> the type it holds in this batch
        self._values: dict[tuple[str, str | bytes], bool] = {}  # (key, field) -> set, not incr

    def __repr__(self) -> str:
        return f"<RedisWrites {len(self._commands)} commands>"

    def __len__(self) -> int:
        return len(self._commands)

    @property
    def commands(self) -> list[tuple[str, str, tuple[str | bytes, ...]]]:
        """The staged ``(command, key, arguments)``, in order."""
        return list(self._commands)

    def clear(self) -> None:
        """Drop everything staged."""
        self._commands.clear()
        self._kinds.clear()
        self._values.clear()

    def _stage(self, command: str, name: str, args: tuple[str | bytes, ...]) -> RedisWrites:
        name = _name(name)
        if name == self._checkpoint_key:
            raise ValueError(f"{name!r} is the checkpoint's own key")
        if len(self._commands) >= MAX_COMMANDS:
            raise ValueError(f"at most {MAX_COMMANDS} commands per activity")
        if len(args) > MAX_VALUES:
            raise ValueError(f"at most {MAX_VALUES} arguments per command")
        kind = KEY_TYPES[command] or "string"
        had = self._kinds.setdefault(name, kind)
        if had != kind:
            raise ValueError(f"{name!r} is a {had} in this batch, not a {kind}")
        if command in ("SET", "INCRBY", "HSET", "HINCRBY"):
            setting = command in ("SET", "HSET")
            fields = [""] if command in ("SET", "INCRBY") else args[0::2]
            for field in fields:
                if self._values.setdefault((name, field), setting) != setting:
                    raise ValueError(f"{name!r} is both set and incremented in this batch")
        self._commands.append((command, name, args))
        return self

    def set(self, name: str, value: Value) -> RedisWrites:
        """``SET name value``."""
        return self._stage("SET", name, (_value(value),))

    def incrby(self, name: str, amount: int = 1) -> RedisWrites:
        """``INCRBY name amount``."""
        return self._stage("INCRBY", name, (_increment(amount),))

    def hset(self, name: str, mapping: Mapping[str, Value]) -> RedisWrites:
        """``HSET name field value ...``."""
        if not mapping:
            raise ValueError("hset needs at least one field")
        args: list[str | bytes] = []
        for field, value in mapping.items():
            args += [_name(field), _value(value)]
        return self._stage("HSET", name, tuple(args))

    def hincrby(self, name: str, field: str, amount: int = 1) -> RedisWrites:
        """``HINCRBY name field amount``."""
        return self._stage("HINCRBY", name, (_name(field), _increment(amount)))

    def rpush(self, name: str, *values: Value) -> RedisWrites:
        """``RPUSH name value ...``."""
        if not values:
            raise ValueError("rpush needs at least one value")
        return self._stage("RPUSH", name, tuple(_value(v) for v in values))

    def sadd(self, name: str, *members: Value) -> RedisWrites:
        """``SADD name member ...``."""
        if not members:
            raise ValueError("sadd needs at least one member")
        return self._stage("SADD", name, tuple(_value(m) for m in members))

    def zadd(self, name: str, mapping: Mapping[str, float]) -> RedisWrites:
        """``ZADD name score member ...`` (``mapping`` is member -> score)."""
        if not mapping:
            raise ValueError("zadd needs at least one member")
        args: list[str | bytes] = []
        for member, score in mapping.items():
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise TypeError(f"a score must be a number, not {type(score).__name__}")
            args += [_value(float(score)), _value(member)]
        return self._stage("ZADD", name, tuple(args))

    def xadd(self, name: str, fields: Mapping[str, Value]) -> RedisWrites:
        """``XADD name * field value ...`` (Redis picks the entry id)."""
        if not fields:
            raise ValueError("xadd needs at least one field")
        args: list[str | bytes] = ["*"]
        for field, value in fields.items():
            args += [_name(field), _value(value)]
        return self._stage("XADD", name, tuple(args))

    def encode(self, first_key_index: int) -> tuple[list[str], list[str | bytes]]:
        """The consumer keys (KEYS from ``first_key_index`` on) and the ARGV tail for
        :data:`LUA_WRITES`: the command count, then per command its name, key index, argument
        count and arguments."""
        keys: dict[str, int] = {}
        argv: list[str | bytes] = [str(len(self._commands))]
        for command, name, args in self._commands:
            index = keys.setdefault(name, first_key_index + len(keys))
            argv += [command, str(index), str(len(args)), *args]
        return list(keys), argv

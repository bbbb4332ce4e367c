"""The rate limiter's Lua scripts: the in-process limiter's rules, run atomically in Redis.

KEYS[1] the state hash, KEYS[2] the permits (a sorted set: member ``"seq:epoch"``, score its
expiry in ms), KEYS[3] the channel waiters listen on. Times are integer milliseconds of Redis
``TIME``, the one clock of every process.

State fields: ``limit``, ``remaining`` (absent: unknown in this window), ``end`` (the window's
end), ``anchored`` (1: a response of this window measured its end), ``paused`` (a 429's pause
ends), ``reports`` ("1"/"0": whether the server reports a budget; absent: unknown), ``epoch``
(the window's number), ``unser`` (the window whose one-at-a-time phase lost an answer), ``seq``.
"""

from __future__ import annotations

COMMON = """
local state, permits, channel = KEYS[1], KEYS[2], KEYS[3]
local window = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function num(field)
  return tonumber(redis.call('HGET', state, field))
end

local function epoch_of(member)
  return tonumber(string.match(member, ':(%d+)$'))
end

local function seq_of(member)
  return tonumber(string.match(member, '^(%d+):'))
end

local function in_epoch(epoch)
  local n = 0
  for _, m in ipairs(redis.call('ZRANGE', permits, 0, -1)) do
    if epoch_of(m) == epoch then n = n + 1 end
  end
  return n
end

local function start_window(e)
  redis.call('HSET', state, 'end', e, 'anchored', 1)
  redis.call('HINCRBY', state, 'epoch', 1)
  redis.call('HDEL', state, 'remaining')
end

local function roll(at)
  local e = num('end')
  if e == nil or at < e then return end
  e = e + window * (math.floor((at - e) / window) + 1)
  redis.call('HSET', state, 'end', e, 'anchored', 0)
  redis.call('HINCRBY', state, 'epoch', 1)
  redis.call('HDEL', state, 'remaining')
end

local function keep()
  local paused = num('paused') or 0
  local life = math.max(2 * window, paused - now + window, 2 * ttl)
  redis.call('PEXPIRE', state, life)
  if redis.call('EXISTS', permits) == 1 then
    redis.call('PEXPIRE', permits, math.max(2 * ttl, 2 * window))
  end
end

redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
"""

ACQUIRE = (
    COMMON
    + """
-- ARGV[3] the configured limit (or ''), ARGV[4] the reserve share, ARGV[5] the earliest 'now'
-- (a caller whose sleeps returned early acts as if that time had passed).
local reserve = tonumber(ARGV[4])
local floor_now = tonumber(ARGV[5])
if floor_now ~= nil and floor_now > now then now = floor_now end
if ARGV[3] ~= '' then redis.call('HSETNX', state, 'limit', ARGV[3]) end

local function grant()
  local seq = redis.call('HINCRBY', state, 'seq', 1)
  local epoch = num('epoch') or 0
  redis.call('ZADD', permits, now + ttl, seq .. ':' .. epoch)
  keep()
  return {0, seq, epoch, now}
end

local paused = num('paused') or 0
if now < paused then keep(); return {1, paused - now, 0, now} end
roll(now)
if redis.call('HGET', state, 'reports') == '0' then return grant() end
local epoch = num('epoch') or 0
local serial = (num('unser') or -1) ~= epoch
local remaining = num('remaining')
if remaining == nil then
  if serial and in_epoch(epoch) > 0 then keep(); return {3, 0, 0, now} end
  return grant()
end
local limit = num('limit')
local reserved = 0
local tail = 1
if limit ~= nil then
  reserved = math.ceil(limit * reserve)
  tail = math.max(1, math.floor(limit / 100))
end
local available = remaining - reserved
if available >= 1 then
  if serial and available <= tail and in_epoch(epoch) > 0 then keep(); return {3, 0, 0, now} end
  redis.call('HSET', state, 'remaining', remaining - 1)
  return grant()
end
keep()
local e = num('end')
if e ~= nil then return {2, math.min(math.max(e - now, 1), window), 0, now} end
if redis.call('ZCARD', permits) > 0 then return {3, 0, 0, now} end
return {2, window, 0, now}
"""
)

OBSERVE = (
    COMMON
    + """
-- ARGV[3] seq, ARGV[4] epoch, ARGV[5] limit header, ARGV[6] remaining, ARGV[7] reset (s) or ''
local seq, pepoch = tonumber(ARGV[3]), tonumber(ARGV[4])
local h_limit, h_remaining, h_reset = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local function done()
  keep()
  redis.call('PUBLISH', channel, 'o')
  return 1
end
redis.call('ZREM', permits, seq .. ':' .. pepoch)
local reported = h_limit ~= nil or h_remaining ~= nil
if redis.call('HEXISTS', state, 'reports') == 0 or reported then
  redis.call('HSET', state, 'reports', reported and '1' or '0')
end
if not reported then return done() end
if h_limit ~= nil and h_limit >= 1 then redis.call('HSET', state, 'limit', h_limit) end
roll(now)
local epoch = num('epoch') or 0
if pepoch == epoch then redis.call('HSET', state, 'unser', -1) end
local e = nil
if h_reset ~= nil then e = now + math.min(math.max(h_reset * 1000, 0), window) end
local wend = num('end')
if wend == nil then
  start_window(e or (now + window))
elseif e ~= nil and e > wend + window / 2 then
  start_window(e)
elseif pepoch ~= epoch then
  return done()
elseif e ~= nil then
  if num('anchored') == 1 then e = math.min(wend, e) end
  redis.call('HSET', state, 'end', e, 'anchored', 1)
end
local remaining = num('remaining')
if h_remaining ~= nil then
  local later = 0
  for _, m in ipairs(redis.call('ZRANGE', permits, 0, -1)) do
    if seq_of(m) > seq or epoch_of(m) < pepoch then later = later + 1 end
  end
  local estimate = h_remaining - later
  if remaining ~= nil and remaining < estimate then estimate = remaining end
  redis.call('HSET', state, 'remaining', math.max(estimate, 0))
elseif remaining == nil and num('limit') ~= nil then
  redis.call('HSET', state, 'remaining', num('limit') - redis.call('ZCARD', permits))
end
return done()
"""
)

RELEASE = (
    COMMON
    + """
-- ARGV[3] seq, ARGV[4] epoch
local pepoch = tonumber(ARGV[4])
local removed = redis.call('ZREM', permits, ARGV[3] .. ':' .. ARGV[4])
if removed == 1 and pepoch == (num('epoch') or 0) then
  redis.call('HSET', state, 'unser', pepoch)
end
keep()
redis.call('PUBLISH', channel, 'r')
return removed
"""
)

PAUSE = (
    COMMON
    + """
-- ARGV[3] seconds
local untl = now + math.floor(math.max(tonumber(ARGV[3]), 0) * 1000)
if untl > (num('paused') or 0) then redis.call('HSET', state, 'paused', untl) end
redis.call('HSET', state, 'end', untl, 'anchored', 1, 'remaining', 0)
keep()
redis.call('PUBLISH', channel, 'p')
return 1
"""
)

STATE = (
    COMMON
    + """
keep()
return {now, redis.call('HGETALL', state), redis.call('ZCARD', permits)}
"""
)

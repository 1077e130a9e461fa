-- Applies rate limits in order, atomically: the transcription of `step` in
-- src/ratelimit.rs (the shared test suite holds both to the same answers).
--
-- KEYS[i]  one limit's counter        <prefix>{rl}:<key>  (one hash tag for
--          every limiter key, so a request's limits are one script on one
--          Cluster slot)
-- ARGV[1]  now, unix milliseconds
-- then five arguments per key:
--   kind     'rate' or 'failures'
--   count    requests (or free failures) per period
--   period   milliseconds
--   backoff  first lock, milliseconds ('failures' only; 0 for 'rate')
--   cap      longest lock, milliseconds ('failures' only; 0 for 'rate')
--
-- State: a hash {tat, level, until, exp} (milliseconds; level counts the
-- locks in a row; exp is when the state stops mattering). Redis expires the
-- key then too, by its own clock; the caller's clock decides, as in the
-- in-memory limiter, so a state past `exp` counts as none.
--
-- Returns {1, 0, 0, lock} when every limit allowed (each charged; lock is
-- the lock a 'failures' limit set, 0 for none), or {0, i, retry, 0} when
-- KEYS[i] refused: the limits before it are charged, those after it are
-- not touched, and the same request would pass in `retry` milliseconds.
local function int(x)
  return string.format('%.0f', x)
end

local now = tonumber(ARGV[1])
local locked = 0
for i, key in ipairs(KEYS) do
  local a = 2 + (i - 1) * 5
  local kind = ARGV[a]
  local count = tonumber(ARGV[a + 1])
  local period = tonumber(ARGV[a + 2])
  local backoff = tonumber(ARGV[a + 3])
  local cap = tonumber(ARGV[a + 4])
  local interval = math.max(1, math.floor(period / math.max(1, count)))

  local s = redis.call('HMGET', key, 'tat', 'level', 'until', 'exp')
  local tat, level, untl = 0, 0, 0
  if (tonumber(s[4]) or 0) > now then
    tat = tonumber(s[1]) or 0
    level = tonumber(s[2]) or 0
    untl = tonumber(s[3]) or 0
  end

  local expires
  if kind == 'rate' then
    tat = math.max(tat, now) + interval
    if tat - now > period then
      return {0, i, math.max(1, tat - now - period), 0}
    end
    expires = tat
  elseif kind == 'failures' then
    if untl > now then
      return {0, i, untl - now, 0}
    end
    tat = math.max(tat, now) + interval
    local lock = 0
    if level == 0 and tat - now <= period then
      -- Within the free budget; the attempt that spends it locks.
      if tat - now + interval > period then
        level = 1
        lock = backoff
      end
    else
      level = math.min(level + 1, 40)
      lock = math.min(backoff * 2 ^ (level - 1), cap)
    end
    if lock > 0 then
      untl = now + lock
      locked = math.max(locked, lock)
    end
    if level > 0 then
      expires = math.max(tat, untl + period)
    else
      expires = tat
    end
  else
    return redis.error_reply('TESSERA_CORRUPT unknown rate-limit kind')
  end
  redis.call('HSET', key, 'tat', int(tat), 'level', int(level), 'until', int(untl), 'exp', int(expires))
  redis.call('PEXPIRE', key, int(math.max(1, expires - now)))
end
return {1, 0, 0, locked}

-- Refresh-token rotation: the check and the write are one atomic step, so of
-- concurrent refreshes presenting the same token exactly one sees it current.
--
-- KEYS[1]  the session hash        <prefix>{u:<user>}:s:<session>
-- KEYS[2]  the user's index        <prefix>{u:<user>}:sessions
-- ARGV[1]  the presented refresh jti
-- ARGV[2]  now, unix seconds
-- ARGV[3]  grace_secs (0 turns grace off)
-- ARGV[4]  next jti
-- ARGV[5]  next access jti
-- ARGV[6]  next issued_at
-- ARGV[7]  next expires_at
-- ARGV[8]  the key's new time to live in seconds (next expires_at - now, at least 1)
-- ARGV[9]  the session id (the index member)
-- ARGV[10] Redis's clock (TIME on this node, in ms) read just before this was sent
-- ARGV[11] how long after that reading this may still run, in milliseconds
--
-- Returns {outcome, field, value, field, value, ...}: outcome is 'rotated'
-- (with the hash after the rotation), 'grace' (with the unchanged hash),
-- 'reused' (the session was deleted), 'unknown' (no live session; nothing
-- changed) or 'stale' (the request waited too long to run: the instance has
-- given up on it and answered 503, so it must change nothing). Times are compared as numbers but written back only as the
-- strings the caller passed, never as Lua numbers.
local clock = redis.call('TIME')
local redis_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if redis_ms - tonumber(ARGV[10]) > tonumber(ARGV[11]) then
  return {'stale'}
end

local session = KEYS[1]
local state = redis.call('HMGET', session, 'expires_at', 'jti', 'previous_jti', 'rotated_at')
local expires_at, current, previous, rotated_at = state[1], state[2], state[3], state[4]
if not expires_at then
  if redis.call('EXISTS', session) == 0 then
    return {'unknown'}
  end
  return redis.error_reply('TESSERA_CORRUPT session hash without expires_at')
end
local now = tonumber(ARGV[2])
local expires = tonumber(expires_at)
if not expires then
  return redis.error_reply('TESSERA_CORRUPT session expires_at is not a number')
end
if expires <= now then
  -- Dead, not revoked: Redis deletes it when its time to live runs out.
  return {'unknown'}
end

local presented = ARGV[1]
if current == presented then
  redis.call('HSET', session,
    'previous_jti', current, 'rotated_at', ARGV[2], 'last_used_at', ARGV[2],
    'jti', ARGV[4], 'access_jti', ARGV[5], 'issued_at', ARGV[6], 'expires_at', ARGV[7])
  redis.call('EXPIRE', session, ARGV[8])
  redis.call('ZADD', KEYS[2], ARGV[7], ARGV[9])
  if redis.call('TTL', KEYS[2]) < tonumber(ARGV[8]) then
    redis.call('EXPIRE', KEYS[2], ARGV[8])
  end
  local reply = redis.call('HGETALL', session)
  table.insert(reply, 1, 'rotated')
  return reply
end

local grace = tonumber(ARGV[3])
if previous and previous == presented and grace > 0 and rotated_at then
  local at = tonumber(rotated_at)
  if not at then
    return redis.error_reply('TESSERA_CORRUPT session rotated_at is not a number')
  end
  if now - at <= grace then
    local reply = redis.call('HGETALL', session)
    table.insert(reply, 1, 'grace')
    return reply
  end
end

-- Any other token of a live session: a rotated token came back, so whoever
-- holds the session may be a thief. End it.
redis.call('DEL', session)
redis.call('ZREM', KEYS[2], ARGV[9])
return {'reused'}

-- Deletes one session if it expired at or before now.
--
-- KEYS[1]  the session hash        <prefix>{u:<user>}:s:<session>
-- KEYS[2]  the user's index        <prefix>{u:<user>}:sessions
-- ARGV[1]  now, unix seconds
-- ARGV[2]  the session id (the index member)
--
-- Returns 'purged' (it was expired and is deleted now), 'gone' (no such
-- session any more: revoked, or expired by Redis; its index entry is
-- removed) or, for a session still live, its current expires_at.
local expires_at = redis.call('HGET', KEYS[1], 'expires_at')
if not expires_at then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.error_reply('TESSERA_CORRUPT session hash without expires_at')
  end
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 'gone'
end
local expires = tonumber(expires_at)
if not expires then
  return redis.error_reply('TESSERA_CORRUPT session expires_at is not a number')
end
if expires <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 'purged'
end
return expires_at

-- Stores a new session. Atomic: of two creations with one id, one wins.
--
-- KEYS[1]  the session hash        <prefix>{u:<user>}:s:<session>
-- KEYS[2]  the user's index        <prefix>{u:<user>}:sessions
-- ARGV[1]  the session id (the index member)
-- ARGV[2]  expires_at, unix seconds (the index score)
-- ARGV[3]  the key's time to live in seconds (expires_at - now, at least 1)
-- ARGV[4..] the hash's fields and values, alternating
--
-- Returns 1 when stored, 0 when a session with this id already exists (left
-- untouched).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
-- The index lives as long as the longest-lived session in it; TTL is -1 for
-- a key without one (the index ZADD just created).
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return 1

-- Queues a new session for purge_expired.
--
-- KEYS[1]  the queue               <prefix>expiring-sessions
-- ARGV[1]  expires_at, unix seconds (the score)
-- ARGV[2]  <user_id>:<session_id> (the member)
-- ARGV[3]  the session's time to live in seconds
--
-- NX: an entry that exists keeps its score. The queue, like every key of the
-- store, expires: with the longest-lived session queued in it.
redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1

-- Deletes sessions of one user and their index entries.
--
-- KEYS[1]     the user's index     <prefix>{u:<user>}:sessions
-- KEYS[2..n]  session hashes       <prefix>{u:<user>}:s:<session>
-- ARGV[1..n-1] the session ids of KEYS[2..n], in the same order
--
-- Returns how many session hashes existed (and were deleted); index entries
-- of sessions that had already expired are removed without being counted.
local deleted = 0
for i = 2, #KEYS do
  deleted = deleted + redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[1], ARGV[i - 1])
end
return deleted

-- Deletes sessions of one user and their index entries.
--
-- KEYS[1]     the user's index     <prefix>{u:<user>}:sessions
-- KEYS[2..n]  session hashes       <prefix>{u:<user>}:s:<session>
-- ARGV[1]     '1' when KEYS[2..n] must be every session in the index but
--             ARGV[2] ("log out others / everywhere"), '0' for just these
-- ARGV[2]     the session id to keep ('' for none), read when ARGV[1] is '1'
-- ARGV[3..]   the session ids of KEYS[2..n], in the same order
--
-- Returns {'changed'} when ARGV[1] is '1' and the index holds a session the
-- caller did not list (created since it read the index): nothing is deleted,
-- and the caller reads the index again. Otherwise {'revoked', id, ...}: the
-- ids whose session hashes existed, and are deleted now. Index entries of
-- sessions that had already expired are removed without being listed.
if ARGV[1] == '1' then
  local listed = {}
  for i = 3, #ARGV do
    listed[ARGV[i]] = true
  end
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if id ~= ARGV[2] and not listed[id] then
      return {'changed'}
    end
  end
end
local reply = {'revoked'}
for i = 2, #KEYS do
  if redis.call('DEL', KEYS[i]) == 1 then
    table.insert(reply, ARGV[i + 1])
  end
  redis.call('ZREM', KEYS[1], ARGV[i + 1])
end
return reply

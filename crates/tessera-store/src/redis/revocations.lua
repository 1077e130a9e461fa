-- Records revoked sessions and announces them.
--
-- KEYS[1]   the record             <prefix>revoked-sessions (a stream)
-- ARGV[1]   the channel            <prefix>revocations
-- ARGV[2]   how long entries are kept, in milliseconds (the revocation's
--           lifetime plus a margin)
-- ARGV[3..] announcements: '<expires_at> <session id>,<session id>,...'
--
-- Each announcement becomes one stream entry (field 'r') and one PUBLISH, in
-- this order, so a listener that hears of it can also read it. Entries older
-- than ARGV[2] (by their ids, Redis's clock) are trimmed as entries are
-- added (MINID ~: whole nodes of the stream at a time), and the stream
-- expires ARGV[2] after its newest entry: like every key of the store, it
-- does not live forever. Returns the id of the last entry.
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local keep = tonumber(ARGV[2])
local oldest = string.format('%.0f', now_ms - keep)
local id = ''
for i = 3, #ARGV do
  id = redis.call('XADD', KEYS[1], 'MINID', '~', oldest, '*', 'r', ARGV[i])
  redis.call('PUBLISH', ARGV[1], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], keep)
return id

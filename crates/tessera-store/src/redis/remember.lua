-- RateLimiter::remember: one member of a set, until an expiry by the
-- callers' clock, keeping the set's latest members only.
--
-- KEYS[1]  the set                 <prefix>{rl}:marker:<set>  (a hash)
-- ARGV[1]  the member
-- ARGV[2]  when it expires, unix milliseconds
-- ARGV[3]  its time to live, milliseconds (the hash lives as long as its
--          latest member)
-- ARGV[4]  now, unix milliseconds
-- ARGV[5]  how many members the set keeps
local key = KEYS[1]
redis.call('HSET', key, ARGV[1], ARGV[2])
redis.call('PEXPIRE', key, ARGV[3])
local keep = tonumber(ARGV[5])
if redis.call('HLEN', key) <= keep then
  return 0
end
-- Over the bound: drop the expired members, then the ones expiring first.
local now = tonumber(ARGV[4])
local all = redis.call('HGETALL', key)
local live = {}
for i = 1, #all, 2 do
  local expires = tonumber(all[i + 1]) or 0
  if expires <= now then
    redis.call('HDEL', key, all[i])
  else
    table.insert(live, {all[i], expires})
  end
end
if #live > keep then
  table.sort(live, function(a, b) return a[2] > b[2] end)
  for i = keep + 1, #live do
    redis.call('HDEL', key, live[i][1])
  end
end
return 0

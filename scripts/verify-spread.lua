-- GET /api/auth/verify, each request with the next access token of a file
-- (one per line), round robin from a random start per thread: tokens of many
-- tenants, or many copies of one token for the same client-side cost.
--   wrk -s scripts/verify-spread.lua http://host:port -- tokens.txt
local tokens = {}
local counter = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
  counter = math.random(#tokens)
end

function request()
  counter = counter % #tokens + 1
  return wrk.format("GET", "/api/auth/verify", { ["Authorization"] = "Bearer " .. tokens[counter] })
end

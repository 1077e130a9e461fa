-- wrk script: each connection refreshes with the newest refresh token of a
-- session and keeps the rotated one, as a real client does. Tokens come from
-- the file named by the first script argument, split between wrk threads.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  token_file = args[1]
  thread_count = tonumber(args[2])
  failures = 0
end

-- The thread's share of the tokens is read at its first request.
local function load_tokens()
  tokens = {}
  local n = 0
  for line in io.lines(token_file) do
    if n % thread_count == id then
      table.insert(tokens, line)
    end
    n = n + 1
  end
end

function request()
  if tokens == nil then
    load_tokens()
    if id == 0 then
      -- wrk calls request once on thread 0 to check the script and throws
      -- the result away: that call must not use up a session's token.
      return wrk.format("POST", "/api/auth/refresh", {}, "")
    end
  end
  local token = table.remove(tokens)
  if token == nil then
    token = "exhausted"
  end
  return wrk.format("POST", "/api/auth/refresh", { ["Content-Type"] = "application/json" },
    '{"refreshToken":"' .. token .. '"}')
end

function response(status, headers, body)
  if status == 200 then
    table.insert(tokens, string.match(body, '"refreshToken":"([^"]+)"'))
  else
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
  end
  io.write(string.format("refresh failures: %d\n", failed))
end

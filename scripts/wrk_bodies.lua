-- wrk script: POST pre-signed bodies (one JSON per line of BODIES), each exactly once.
-- Threads take disjoint lines. Usage:
--   BODIES=/tmp/single.jsonl URLPATH=/v1/transactions wrk -t2 -c64 -d20s -s scripts/wrk_bodies.lua http://127.0.0.1:8000
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  bodies = {}
  local n = 0
  for line in io.lines(os.getenv("BODIES")) do
    if n % 2 == id then table.insert(bodies, line) end
    n = n + 1
  end
  i = 0
  path = os.getenv("URLPATH") or "/v1/transactions"
  wrk.method = "POST"
  wrk.headers["content-type"] = "application/json"
  wrk.headers["x-request-disconnect-disabled"] = "?1"
end
function request()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format(nil, path, nil, bodies[i])
end

-- Embedding requests for wrk (bench_embeddings.py): run with one connection per thread, so each
-- thread is one client sending its requests in sequence, one sentence per POST, cycling through
-- the bodies of a file (one JSON body per line), each client from its own place in the list.
-- Arguments after `--`: the path, the bodies file, the token (`Authorization: token ...`).
-- `done` prints one line `EMBED-JSON {...}`: wrk's own figures.

local path, headers = nil, nil
local bodies = {}
local index = 0
local started = 0

function setup(thread)
  thread:set("offset", started)
  started = started + 1
end

function init(args)
  path = args[1]
  for line in io.lines(args[2]) do
    if #line > 0 then
      table.insert(bodies, line)
    end
  end
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "token " .. args[3]}
  index = ((offset or 0) * 37) % #bodies
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", path, headers, bodies[index])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'EMBED-JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"status_errors": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end

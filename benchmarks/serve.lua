-- One JSON POST, repeated, for wrk (bench_litserve.py): the same offered load for every server.
-- Arguments after `--`: the path, the file holding the body, then an optional token (sent as
-- `Authorization: token ...`). `done` prints one line `SERVE-JSON {...}`: wrk's own figures.

local path, body, headers = nil, nil, nil

function init(args)
  path = args[1]
  local f = assert(io.open(args[2], "rb"))
  body = f:read("*a")
  f:close()
  headers = {["Content-Type"] = "application/json"}
  if args[3] ~= nil and args[3] ~= "" then
    headers["Authorization"] = "token " .. args[3]
  end
end

function request()
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'SERVE-JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "status_errors": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end

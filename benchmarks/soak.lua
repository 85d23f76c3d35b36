-- The soak's mix for wrk (bench_soak.py). Run with one connection per thread, so that each thread
-- is one client sending its requests in sequence: inference, chunk put, queue submission (an async
-- inference), a get of its own chunk's content, the delete of that chunk; again.
-- Arguments after `--`: token, then the files holding the inference, chunk and queue bodies; or
-- token and `health` alone: every request is GET /health (the baseline's load).
-- `done` prints one line `SOAK-JSON {...}`: counts by "kind status" and wrk's own figures.

local API = "/gswarm/api/v1"
local COMPUTE = "/gswarm/compute/v1"
local CYCLE = {"infer", "put", "queue", "get", "delete"}

local threads = {}
local auth, json = nil, nil
local infer_body, put_body, queue_body = nil, nil, nil
local step, kind, chunk = 0, nil, nil
counts = {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  auth = {["Authorization"] = "token " .. args[1]}
  json = {["Authorization"] = "token " .. args[1], ["Content-Type"] = "application/json"}
  if args[2] == "health" then
    CYCLE = {"health"}
  else
    infer_body, put_body, queue_body = read(args[2]), read(args[3]), read(args[4])
  end
end

function request()
  step = step % #CYCLE + 1
  kind = CYCLE[step]
  -- no chunk of ours (its put failed): infer instead, so the mix stays busy
  if (kind == "get" or kind == "delete") and chunk == nil then
    kind = "infer"
  end
  if kind == "health" then
    return wrk.format("GET", API .. "/health", auth)
  elseif kind == "infer" then
    return wrk.format("POST", COMPUTE .. "/inference", json, infer_body)
  elseif kind == "put" then
    return wrk.format("POST", API .. "/data", json, put_body)
  elseif kind == "queue" then
    return wrk.format("POST", COMPUTE .. "/inference/async", json, queue_body)
  elseif kind == "get" then
    return wrk.format("GET", API .. "/data/" .. chunk .. "/content", auth)
  end
  local id = chunk
  chunk = nil
  return wrk.format("DELETE", API .. "/data/" .. id, auth)
end

function response(status, headers, body)
  local key = kind .. " " .. status
  counts[key] = (counts[key] or 0) + 1
  if kind == "put" and status == 201 then
    chunk = body:match('"chunk_id"%s*:%s*"([^"]+)"')
  end
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for key, n in pairs(thread:get("counts")) do
      total[key] = (total[key] or 0) + n
    end
  end
  local parts = {}
  for key, n in pairs(total) do
    table.insert(parts, string.format('"%s": %d', key, n))
  end
  local e = summary.errors
  io.write(string.format(
    'SOAK-JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"counts": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.timeout, table.concat(parts, ", ")))
end

-- PATCHes the metrics of the experiments named in a file (one id a line),
-- in rotation, each request with a value no request before it sent, so that
-- every PATCH changes its row (and writes a revision where the service keeps
-- them): `bench_seq` is the run's number (args[2], new for every wrk run of
-- a scenario) times 1e9, plus the thread's number times 1e8, plus the
-- thread's own count. Each thread starts at its own offset into the ids.

package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local report = require("report")

local ids = {}
local index = 1
local base = 0
local sent = 0
local headers = {["Content-Type"] = "application/json"}

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
  thread:set("number", counter)
end

function init(args)
  for line in io.lines(args[1]) do
    ids[#ids + 1] = line
  end
  base = tonumber(args[2]) * 1e9 + (number or 0) * 1e8
  index = ((offset or 0) % #ids) + 1
end

function request()
  sent = sent + 1
  local id = ids[index]
  index = index % #ids + 1
  local body = string.format(
    '{"metrics": {"oos_sharpe": %.2f, "mse": 0.0123, "bench_seq": %d}}',
    (sent % 300) / 100, base + sent)
  return wrk.format("PATCH", "/api/v1/experiments/" .. id, headers, body)
end

function done(summary, latency, requests_)
  report.done(summary, latency)
end

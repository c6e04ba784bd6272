-- Replays the requests of a file, one per line: METHOD<TAB>PATH[<TAB>JSON body].
-- Each thread starts at its own offset and cycles through the file; the
-- figures are printed once, as one JSON line, for bench/wrk.py to read.

-- The scripts' shared `done` lives beside them (wrk loads a script by path,
-- and LuaJIT looks for modules in the working directory).
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local report = require("report")

local requests = {}
local index = 1

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("(.-)\t") do
    fields[#fields + 1] = field
  end
  return fields
end

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
end

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  for line in io.lines(args[1]) do
    local fields = split(line)
    requests[#requests + 1] = wrk.format(fields[1], fields[2], headers, fields[3])
  end
  index = ((offset or 0) % #requests) + 1
end

function request()
  local chosen = requests[index]
  index = index % #requests + 1
  return chosen
end

function done(summary, latency, requests_)
  report.done(summary, latency)
end

-- Shared by every wrk script of bench/run (loaded with dofile).
--
-- Counts, per wrk thread, responses that are not 200 and 200 bodies that are
-- not what the workload expects, and prints one machine-readable line from
-- done(): `BENCHJSON {...}`.
--
-- BENCH_EXPECT (env):
--   "data" (default)  a good answer is a 200 whose body has no "errors";
--   any other string  a good answer is a 200 whose body contains it
--                     (W2 expects "UNAUTHENTICATED").
-- Bodies containing REFRESH_TOKEN_REUSED are also counted as `reused` (forks).
-- Bodies containing RATE_LIMITED or SERVICE_UNAVAILABLE are also counted as
-- `refused`.
--
-- BENCH_RATE (env, requests/s for the whole run) turns on fixed-rate pacing:
-- delay() hands each connection the next slot of a per-thread schedule
-- (BENCH_RATE / BENCH_THREADS per thread), read from CLOCK_MONOTONIC through
-- LuaJIT's ffi. wrk's timer has 1 ms resolution, so requests leave in small
-- bursts at most 1 ms apart. A request whose slot had already passed by more
-- than 5 ms when its connection became free counts as `late`: then every
-- connection was busy, the offered rate was not held, and the latency
-- figures understate the truth (coordinated omission); bench/run notes it.

local threads = {}

-- The threads, for scripts that collect more in their own done().
function __threads()
   return threads
end

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

good = 0
late = 0
bad_status = 0
bad_body = 0
refused = 0
reused = 0
local expect = os.getenv("BENCH_EXPECT") or "data"
local find = string.find

local rate = tonumber(os.getenv("BENCH_RATE") or "")
if rate and rate > 0 then
   local ffi = require("ffi")
   ffi.cdef[[
      typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
      int clock_gettime(int clk_id, bench_timespec *tp);
   ]]
   local ts = ffi.new("bench_timespec")
   local function now_ms()
      ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
      return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
   end
   local interval = 1000 * tonumber(os.getenv("BENCH_THREADS") or "1") / rate
   local next_at = nil
   function delay()
      local now = now_ms()
      if not next_at then next_at = now end
      next_at = next_at + interval
      local d = next_at - now
      if d < -5 then late = late + 1 end
      if d <= 0 then return 0 end
      return d
   end
end

-- Returns true when the response is what the workload expects.
function classify(status, body)
   if status ~= 200 then
      bad_status = bad_status + 1
      return false
   end
   local ok
   if expect == "data" then
      ok = not find(body, '"errors"', 1, true)
   else
      ok = find(body, expect, 1, true) ~= nil
   end
   if ok then
      good = good + 1
      return true
   end
   bad_body = bad_body + 1
   if find(body, "RATE_LIMITED", 1, true) or find(body, "SERVICE_UNAVAILABLE", 1, true) then
      refused = refused + 1
   end
   if find(body, "REFRESH_TOKEN_REUSED", 1, true) then
      reused = reused + 1
   end
   return false
end

-- Reads non-empty lines of a file into a table.
function read_lines(path)
   local t = {}
   local f = assert(io.open(path, "r"))
   for line in f:lines() do
      if line ~= "" then table.insert(t, line) end
   end
   f:close()
   return t
end

function done(summary, latency, requests)
   local g, bs, bb, rf, ru, lt = 0, 0, 0, 0, 0, 0
   for _, t in ipairs(threads) do
      g = g + (t:get("good") or 0)
      bs = bs + (t:get("bad_status") or 0)
      bb = bb + (t:get("bad_body") or 0)
      rf = rf + (t:get("refused") or 0)
      ru = ru + (t:get("reused") or 0)
      lt = lt + (t:get("late") or 0)
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      'BENCHJSON {"requests":%d,"seconds":%.3f,"rps":%.1f,"good":%d,"good_rps":%.1f,'
      .. '"non200":%d,"bad_body":%d,"refused":%d,"reused":%d,"late":%d,'
      .. '"socket_errors":%d,"timeouts":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, secs, summary.requests / secs, g, g / secs,
      bs, bb, rf, ru, lt,
      e.connect + e.read + e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

-- One POST /graphql of `body` per bearer of BENCH_TOKENS (access tokens or
-- API keys, one per line), into `prebuilt`, taken round-robin (me.lua,
-- users.lua, gql.lua).
function prebuild_for_each_bearer(body)
   for _, token in ipairs(read_lines(os.getenv("BENCH_TOKENS"))) do
      table.insert(prebuilt, wrk.format("POST", "/graphql", {
         ["Content-Type"] = "application/json",
         ["Authorization"] = "Bearer " .. token,
      }, body))
   end
   round_robin_start()
end

-- Round-robin over prebuilt requests (me.lua, login.lua): init() fills
-- `prebuilt` with wrk.format() strings and calls round_robin_start();
-- threads start at different offsets of the list.
prebuilt = {}
local next_index = 0

function round_robin_start()
   next_index = (thread_id or 0) * 7919
end

function request()
   next_index = next_index + 1
   return prebuilt[(next_index % #prebuilt) + 1]
end

function response(status, headers, body)
   classify(status, body)
end

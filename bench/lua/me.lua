-- W1 / W2 / W7 / ceiling: `me` with a bearer token from BENCH_TOKENS (one per
-- line, taken round-robin; each request is prebuilt once).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local reqs = {}
local n, i = 0, 0

function init(args)
   local body = '{"query":"{ me { id email role } }"}'
   for _, token in ipairs(read_lines(os.getenv("BENCH_TOKENS"))) do
      table.insert(reqs, wrk.format("POST", "/graphql", {
         ["Content-Type"] = "application/json",
         ["Authorization"] = "Bearer " .. token,
      }, body))
   end
   n = #reqs
   -- Threads start at different offsets of the pool.
   i = (thread_id or 0) * 7919
end

function request()
   i = i + 1
   return reqs[(i % n) + 1]
end

function response(status, headers, body)
   classify(status, body)
end

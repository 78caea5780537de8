-- W1 / W2 / W7 / ceiling: `me` with a bearer token from BENCH_TOKENS (one per
-- line, taken round-robin; each request is prebuilt once).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
   local body = '{"query":"{ me { id email role } }"}'
   for _, token in ipairs(read_lines(os.getenv("BENCH_TOKENS"))) do
      table.insert(prebuilt, wrk.format("POST", "/graphql", {
         ["Content-Type"] = "application/json",
         ["Authorization"] = "Bearer " .. token,
      }, body))
   end
   round_robin_start()
end

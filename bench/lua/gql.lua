-- Scale rows (bench/scale.sh): one GraphQL document, the JSON body read
-- from the file BENCH_BODY, sent with each bearer of BENCH_TOKENS (access
-- tokens or API keys, one per line, taken round-robin; each request is
-- prebuilt once).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
   local f = assert(io.open(os.getenv("BENCH_BODY"), "r"))
   local body = f:read("*a"):gsub("%s+$", "")
   f:close()
   for _, token in ipairs(read_lines(os.getenv("BENCH_TOKENS"))) do
      table.insert(prebuilt, wrk.format("POST", "/graphql", {
         ["Content-Type"] = "application/json",
         ["Authorization"] = "Bearer " .. token,
      }, body))
   end
   round_robin_start()
end

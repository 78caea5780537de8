-- Scale rows (bench/scale.sh): one GraphQL document, the JSON body read
-- from the file BENCH_BODY, sent with each bearer of BENCH_TOKENS (access
-- tokens or API keys, one per line, taken round-robin; each request is
-- prebuilt once).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
   local f = assert(io.open(os.getenv("BENCH_BODY"), "r"))
   local body = f:read("*a"):gsub("%s+$", "")
   f:close()
   prebuild_for_each_bearer(body)
end

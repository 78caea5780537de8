-- W1 / W2 / W7 / ceiling: `me` with a bearer token from BENCH_TOKENS (one per
-- line, taken round-robin; each request is prebuilt once).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
   local body = '{"query":"{ me { id email role } }"}'
   prebuild_for_each_bearer(body)
end

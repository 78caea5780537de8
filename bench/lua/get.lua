-- The HTTP ceiling: GET BENCH_PATH (default /healthz); a good answer is a 200
-- whose body contains BENCH_EXPECT (bench/run sets "ok").
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local req

function init(args)
   req = wrk.format("GET", os.getenv("BENCH_PATH") or "/healthz")
end

function request()
   return req
end

function response(status, headers, body)
   classify(status, body)
end

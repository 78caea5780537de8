-- W12: `register` with a new address on every request (BENCH_NONCE makes
-- the addresses of one run unique across runs and servers), password
-- BENCH_PASSWORD. Each registration also queues a verification mail.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local nonce = os.getenv("BENCH_NONCE") or "x"
local password = os.getenv("BENCH_PASSWORD")
local n = 0

function init(args)
   round_robin_start()
end

function request()
   n = n + 1
   local email = "reg" .. nonce .. "t" .. (thread_id or 0) .. "n" .. n .. "@bench.example.com"
   local body = '{"query":"mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",'
      .. '"variables":{"i":{"email":"' .. email .. '","password":"' .. password .. '"}}}'
   return wrk.format("POST", "/graphql", { ["Content-Type"] = "application/json" }, body)
end

-- W12: `register` with a new address on every request (BENCH_NONCE makes
-- the addresses of one run unique across runs and servers), password
-- BENCH_PASSWORD. Each registration also queues a verification mail.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

-- Eight random bytes more: wrk_measure runs the script several times with
-- one environment (warm-up, repetitions), and an address registered by an
-- earlier run would answer EMAIL_TAKEN.
local f = assert(io.open("/dev/urandom", "rb"))
local nonce = (os.getenv("BENCH_NONCE") or "x") .. "r" .. f:read(8):gsub(".", function(c)
   return string.format("%02x", c:byte())
end)
f:close()
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

-- W4 / W5 / W7: `login` with the emails of BENCH_LOGINS (one per line, all
-- with the password BENCH_PASSWORD), taken round-robin.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
   local password = os.getenv("BENCH_PASSWORD")
   for _, email in ipairs(read_lines(os.getenv("BENCH_LOGINS"))) do
      local body = '{"query":"mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }",'
         .. '"variables":{"i":{"email":"' .. email .. '","password":"' .. password .. '"}}}'
      table.insert(prebuilt, wrk.format("POST", "/graphql", {
         ["Content-Type"] = "application/json",
      }, body))
   end
   round_robin_start()
end

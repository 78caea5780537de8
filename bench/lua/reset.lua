-- W12: `requestPasswordReset` for the emails of BENCH_LOGINS (one per
-- line), taken round-robin; a good answer is `true`. Each request queues
-- one outbox row, which the sender turns into a token and a reset mail.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
   for _, email in ipairs(read_lines(os.getenv("BENCH_LOGINS"))) do
      local body = '{"query":"mutation($e: String!) { requestPasswordReset(email: $e) }",'
         .. '"variables":{"e":"' .. email .. '"}}'
      table.insert(prebuilt, wrk.format("POST", "/graphql", {
         ["Content-Type"] = "application/json",
      }, body))
   end
   round_robin_start()
end

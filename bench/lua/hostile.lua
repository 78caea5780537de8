-- W15's attacker: the hostile documents of BENCH_BODIES (one JSON body per
-- line, written by `tools.py hostile`), resent back to back without a token,
-- each connection starting at a different one. Under `application/json` a
-- refused document is a 200 whose body has errors: with BENCH_EXPECT set to
-- "errors", `good` counts the answers that carried them.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
   for _, body in ipairs(read_lines(os.getenv("BENCH_BODIES"))) do
      table.insert(prebuilt, wrk.format("POST", "/graphql", {
         ["Content-Type"] = "application/json",
         ["Accept"] = "application/json",
      }, body))
   end
   round_robin_start()
end

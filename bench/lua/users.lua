-- W14: the admin `users` search, `users(first: BENCH_FIRST, filter: {search:
-- BENCH_SEARCH})`, with the admin's bearer token(s) from BENCH_TOKENS (one
-- per line, taken round-robin; each request is prebuilt once). A good answer
-- is a 200 without "errors" (common.lua); the edges are not counted here:
-- bench/run counts the matches in SQL beside the row.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
   local search = os.getenv("BENCH_SEARCH")
   local first = tonumber(os.getenv("BENCH_FIRST") or "50")
   -- The prefix goes in a variable: bench/run only passes plain prefixes
   -- (letters, digits, '.', '_'), so no JSON escaping is needed.
   local body = '{"query":"query($s: String!, $n: Int!) { users(first: $n, filter: {search: $s}) '
      .. '{ edges { cursor node { id email username role } } pageInfo { hasNextPage endCursor } } }",'
      .. '"variables":{"s":"' .. search .. '","n":' .. first .. '}}'
   prebuild_for_each_bearer(body)
end

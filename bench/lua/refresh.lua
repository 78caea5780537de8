-- W3 / W3s: refresh rotation with a token pool per wrk thread.
--
-- BENCH_TOKENS holds one refresh token per line, each the head of its own
-- session's chain. Thread k of N takes lines k, k+N, ... Each request takes a
-- token out of the thread's pool; its response carries the successor, which
-- goes back into the pool. A token is therefore never in two requests at
-- once (wrk does not pipeline), and a chain is rotated by one request at a
-- time: exactly what one client per chain would do. Give at least as many
-- tokens per thread as connections per thread; bench/run gives twice as many.
-- A failed rotation drops its chain (the pool shrinks); when the pool is
-- empty, a request with a malformed token is sent, and counted as an error.
-- done() writes every token left in the pools to BENCH_TOKENS_OUT, so the
-- next run goes on with the chains (requests in flight when wrk stops lose
-- their successor: each run can drop up to one chain per connection).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

-- Globals, so done() can collect what is left of every thread's pool.
pool = {}
head, tail = 1, 0
local prefix = '{"query":"mutation($t: String) { refresh(refreshToken: $t) { accessToken refreshToken } }","variables":{"t":"'
local headers = { ["Content-Type"] = "application/json" }

local function push(token)
   tail = tail + 1
   pool[tail] = token
end

local function pop()
   if head > tail then return nil end
   local token = pool[head]
   pool[head] = nil
   head = head + 1
   return token
end

function init(args)
   local id = thread_id or 1
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   for k, token in ipairs(read_lines(os.getenv("BENCH_TOKENS"))) do
      if (k - 1) % nthreads == id - 1 then push(token) end
   end
end

function request()
   local token = pop() or "pool-empty"
   return wrk.format("POST", "/graphql", headers, prefix .. token .. '"}}')
end

function response(status, headers, body)
   if classify(status, body) then
      local successor = string.match(body, '"refreshToken":"([%w_%-]+)"')
      if successor then push(successor) end
   end
end

local common_done = done
function done(summary, latency, requests)
   common_done(summary, latency, requests)
   local out = os.getenv("BENCH_TOKENS_OUT")
   if not out then return end
   local f = assert(io.open(out, "w"))
   for _, t in ipairs(__threads()) do
      local p, h, tl = t:get("pool"), t:get("head"), t:get("tail")
      if p and h and tl then
         for k = h, tl do
            if p[k] then f:write(p[k], "\n") end
         end
      end
   end
   f:close()
end

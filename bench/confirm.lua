-- wrk script for bench/run.sh: the two-step delete of safedelete_confirm.
--
--   wrk -t1 -s bench/confirm.lua URL -- PREFIX [ID_BASE]
--
-- A DELETE of PREFIX..N (N new each time) without a token is answered
-- 428 with a token in the SafeDelete-Confirm response header; response()
-- queues it with the record's id, and the next request() (of whichever
-- connection asks first: one thread shares this Lua state among all its
-- connections) sends the same DELETE with "SafeDelete-Confirm: <token>",
-- answered 200.  One confirmed delete = one 428 + one 200.
--
-- A 428 does not say which connection (and so which URI) it answers: the
-- id is read from its body, the snapshot as "record" ({"id":N,...}, as
-- bench/run.sh's upstream answers GET /users/N).
--
-- done() prints one line for run.sh:
--   confirm: 2xx A 428 B other C unpaired D
-- other: any status that is neither 2xx nor 428 (412, 5xx, ...); unpaired:
-- a 428 without a token or a record id.

local threads = {}

function setup(thread)
   thread:set("thread_index", #threads)
   table.insert(threads, thread)
end

-- per thread (globals, so that done() can thread:get them)
n_2xx, n_428, n_other, n_unpaired = 0, 0, 0, 0

local prefix, n
local queue, head, tail = {}, 1, 0
local actor = "1"

function init(args)
   prefix = args[1] or "/confirm/users/"
   n = (tonumber(args[2]) or 0) + (tonumber(thread_index) or 0) * 1000000000
   wrk.headers["X-User-Id"] = actor
end

function request()
   if head <= tail then
      local item = queue[head]
      queue[head] = nil
      head = head + 1
      return wrk.format("DELETE", item.path,
                        { ["X-User-Id"] = actor,
                          ["SafeDelete-Confirm"] = item.token })
   end
   n = n + 1
   return wrk.format("DELETE", string.format("%s%d", prefix, n))
end

function response(status, headers, body)
   if status == 428 then
      n_428 = n_428 + 1
      local token
      for k, v in pairs(headers) do
         if string.lower(k) == "safedelete-confirm" then token = v end
      end
      local id = body and
         string.match(body, '"record"%s*:%s*{[^}]-"id"%s*:%s*(%d+)')
      if token and id then
         tail = tail + 1
         queue[tail] = { path = prefix .. id, token = token }
      else
         n_unpaired = n_unpaired + 1
      end
   elseif status >= 200 and status < 300 then
      n_2xx = n_2xx + 1
   else
      n_other = n_other + 1
   end
end

function done(summary, latency, requests)
   local ok, c428, other, unpaired = 0, 0, 0, 0
   for _, t in ipairs(threads) do
      ok = ok + (tonumber(t:get("n_2xx")) or 0)
      c428 = c428 + (tonumber(t:get("n_428")) or 0)
      other = other + (tonumber(t:get("n_other")) or 0)
      unpaired = unpaired + (tonumber(t:get("n_unpaired")) or 0)
   end
   io.write(string.format("confirm: 2xx %d 428 %d other %d unpaired %d\n",
                          ok, c428, other, unpaired))
end

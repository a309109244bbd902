-- wrk script for bench/run.sh: one method, a distinct record id per request.
--
--   wrk -s bench/req.lua URL -- METHOD PREFIX [ID_BASE]
--
-- Each request goes to PREFIX..N with N = ID_BASE+1, ID_BASE+2, ... so a
-- run of DELETEs leaves one undo record per request in Redis.  Every thread
-- counts in its own range (thread k starts at ID_BASE + k * 10^9).  PATCH,
-- PUT and POST carry the same kind of JSON body the module's soft delete
-- sends, so a plain PATCH is the module's rewritten request without the
-- snapshot and the Redis writes.

local nthreads = 0

function setup(thread)
   thread:set("thread_index", nthreads)
   nthreads = nthreads + 1
end

local method, prefix, n, body

function init(args)
   method = args[1] or "GET"
   prefix = args[2] or "/api/users/"
   n = (tonumber(args[3]) or 0) + (tonumber(thread_index) or 0) * 1000000000

   wrk.headers["X-User-Id"] = "1"

   if method == "PATCH" or method == "PUT" or method == "POST" then
      body = '{"deleted_at":"2024-01-01T00:00:00Z","deleted_by":"1",'
             .. '"status":"deleted"}'
      wrk.headers["Content-Type"] = "application/json"
   end
end

function request()
   n = n + 1
   return wrk.format(method, string.format("%s%d", prefix, n), nil, body)
end

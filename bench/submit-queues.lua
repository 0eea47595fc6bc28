-- bench/submit-queues.lua — wrk script for bench/queues.sh.
--
--   wrk ... -s bench/submit-queues.lua http://127.0.0.1:PORT/v1/tasks -- QUEUES:KEYS
--
--   wrk ... -- QUEUES:KEYS:DELAY
--
-- Every request POSTs one echo spec due in DELAY seconds (3600: stored,
-- not run during the measurement, as bench/submit.lua; 0: run at once).
-- With QUEUES:KEYS = 0:0 the spec names no queue and no key (the
-- single-queue baseline); otherwise each names one of QUEUES queues
-- ("q0" ...) and one of KEYS concurrency keys ("j0" ...), in turn: not
-- the keys bench/queues.sh holds in use ("k0" ...), so a task due now
-- runs at once.  The
-- body is made per request in both cases, so that the passes cost the
-- client the same.  Responses other than 2xx are counted and printed by
-- done() as "lua_non2xx N" (bench/lib.sh parses it).

local threads = {}
local nthreads = 0

function setup(thread)
   thread:set("index", nthreads)
   nthreads = nthreads + 1
   table.insert(threads, thread)
end

local nqueues, nkeys, delay, counter = 0, 0, 3600, 0

function init(args)
   non2xx = 0
   local q, k, d = string.match(args[1] or "", "^(%d+):(%d+):(%d+)$")
   nqueues, nkeys, delay = tonumber(q or "0"), tonumber(k or "0"),
      tonumber(d or "3600")
   counter = (index or 0) * 7919
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   local b
   counter = counter + 1
   if nqueues == 0 then
      b = string.format('{"kind":"echo","params":{"message":"bench"},'
         .. '"delay":%d}', delay)
   else
      b = string.format('{"kind":"echo","params":{"message":"bench"},'
         .. '"delay":%d,"queue":"q%d","concurrency_key":"j%d"}', delay,
         counter % nqueues, (counter * 31) % nkeys)
   end
   return wrk.format(nil, nil, nil, b)
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

function done(summary, latency, requests)
   local n = 0
   for _, t in ipairs(threads) do
      n = n + (t:get("non2xx") or 0)
   end
   io.write(string.format("lua_non2xx %d\n", n))
end

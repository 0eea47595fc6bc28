-- bench/submit.lua — wrk script for the submission benchmarks.
--
--   wrk ... -s bench/submit.lua http://127.0.0.1:PORT/v1/tasks [-- BATCH]
--
-- Without an argument (or with 0) every request POSTs one task spec;
-- with BATCH = n it POSTs a JSON array of n specs (built once, here).
-- The spec is an echo due in an hour, so the scheduler does not run it
-- during the measurement: what is measured is validation + durable commit.
-- Responses other than 2xx are counted per thread and the sum is printed
-- by done() as "lua_non2xx N" (bench/lib.sh parses it).

local spec = '{"kind":"echo","params":{"message":"bench"},"delay":3600}'

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   non2xx = 0
   local n = tonumber(args[1] or "0") or 0
   local body
   if n > 0 then
      local parts = {}
      for i = 1, n do parts[i] = spec end
      body = "[" .. table.concat(parts, ",") .. "]"
   else
      body = spec
   end
   wrk.method = "POST"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
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

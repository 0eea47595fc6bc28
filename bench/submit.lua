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
--
-- A second argument "unique" gives every spec a unique key of its own
-- ("unique": {"key": "<thread>-<n>"}), so each request's body is built
-- anew; "dynamic" builds the bodies the same way without the key (the
-- load generator's own cost, to compare with).

local spec = '{"kind":"echo","params":{"message":"bench"},"delay":3600}'

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

local counter = 0
local batch = 0
local mode = nil

function init(args)
   non2xx = 0
   mode = args[2]
   local n = tonumber(args[1] or "0") or 0
   batch = n
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

local function one()
   counter = counter + 1
   if mode == "unique" then
      return '{"kind":"echo","params":{"message":"bench"},"delay":3600,' ..
         '"unique":{"key":"' .. (tid or 0) .. '-' .. counter .. '"}}'
   end
   return '{"kind":"echo","params":{"message":"bench' .. counter ..
      '"},"delay":3600}'
end

function request()
   if mode ~= "unique" and mode ~= "dynamic" then
      return wrk.format()
   end
   local body
   if batch > 0 then
      local parts = {}
      for i = 1, batch do parts[i] = one() end
      body = "[" .. table.concat(parts, ",") .. "]"
   else
      body = one()
   end
   return wrk.format(nil, nil, nil, body)
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

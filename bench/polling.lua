-- bench/polling.lua — wrk script for the read benchmarks of bench/polling.py.
--
--   wrk ... -s bench/polling.lua 'http://127.0.0.1:PORT/v1/tasks?limit=100' [-- etag]
--
-- Every request is a GET of the URL's path and query.  With the argument
-- "etag", each wrk thread sends its first requests plain and, as soon as an
-- answer carried an ETag, sends every later request with
-- `If-None-Match: <that ETag>` (the request is formatted once, then reused):
-- a conditional GET of a page the client already has, answered 304 while
-- nothing changed.  Without it, plain GETs (full 200 answers).
--
-- Answers are counted by status per thread; done() prints the sums as
--   lua_status CODE N     (one line per status seen)
--   lua_etag "ETAG"       (the first ETag a thread saw, in etag mode)
--   lua_etags N           (how many threads saw a different first ETag: 0 is right)
-- which bench/polling.py parses.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   mode = args[1] or "plain"
   n200, n304, nother, other_code = 0, 0, 0, 0
   etag = nil
   plain = wrk.format("GET")
   cond = nil
end

function request()
   if cond ~= nil then
      return cond
   end
   return plain
end

function response(status, headers, body)
   if status == 304 then
      n304 = n304 + 1
   elseif status == 200 then
      n200 = n200 + 1
   else
      nother = nother + 1
      other_code = status
   end
   if mode == "etag" and cond == nil then
      local e = headers["ETag"] or headers["Etag"] or headers["etag"]
      if e ~= nil then
         etag = e
         cond = wrk.format("GET", nil, { ["Host"] = wrk.host, ["If-None-Match"] = e })
      end
   end
end

function done(summary, latency, requests)
   local s200, s304, sother, code = 0, 0, 0, 0
   local first, differ = nil, 0
   for _, t in ipairs(threads) do
      s200 = s200 + (t:get("n200") or 0)
      s304 = s304 + (t:get("n304") or 0)
      local o = t:get("nother") or 0
      if o > 0 then
         sother = sother + o
         code = t:get("other_code") or code
      end
      local e = t:get("etag")
      if e ~= nil then
         if first == nil then
            first = e
         elseif e ~= first then
            differ = differ + 1
         end
      end
   end
   io.write(string.format("lua_status 200 %d\n", s200))
   io.write(string.format("lua_status 304 %d\n", s304))
   if sother > 0 then
      io.write(string.format("lua_status other %d (last %d)\n", sother, code))
   end
   if first ~= nil then
      io.write(string.format("lua_etag %s\n", first))
      io.write(string.format("lua_etags %d\n", differ))
   end
end

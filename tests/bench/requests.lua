-- The one wrk script of every bench setup, so wrk's own cost per request is
-- the same everywhere: each request is GET / with one header whose value is
-- the next line of a file (one line for a repeated token or cookie, many for
-- distinct tokens).
--
--   wrk ... -s requests.lua URL -- VALUES_FILE HEADER_NAME FIRST_LINE
--
-- Every response is classified here, because wrk's own "Non-2xx or 3xx"
-- count treats a 302 (a login redirect) as success. `done` prints one line,
-- "bench-result {json}", that bench.py parses.

local values = {}
local header_name
local next_line

function init(args)
   for line in io.lines(args[1]) do
      values[#values + 1] = line
   end
   header_name = args[2]
   next_line = tonumber(args[3]) or 1
   if next_line > #values then
      next_line = 1
   end
   -- Thread globals, read by done() through thread:get().
   ok, not_ok, last_bad_status, repeated = 0, 0, 0, 0
   wrapped = false
end

function request()
   if next_line > #values then
      -- Out of fresh values: start over; from now on every value is one
      -- that was sent before, which the result reports.
      next_line = 1
      wrapped = true
   end
   if wrapped then
      repeated = repeated + 1
   end
   local value = values[next_line]
   next_line = next_line + 1
   return wrk.format("GET", "/", { [header_name] = value })
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
   else
      not_ok = not_ok + 1
      last_bad_status = status
   end
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local totals = { ok = 0, not_ok = 0, last_bad_status = 0, repeated = 0 }
   for _, thread in ipairs(threads) do
      for name, _ in pairs(totals) do
         local value = thread:get(name)
         if name == "last_bad_status" then
            if value ~= 0 then totals[name] = value end
         else
            totals[name] = totals[name] + value
         end
      end
   end
   local errors = summary.errors
   io.write(string.format(
      'bench-result {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
      '"ok":%d,"not_ok":%d,"last_bad_status":%d,"repeated":%d,' ..
      '"socket_errors":%d,"timeouts":%d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      totals.ok, totals.not_ok, totals.last_bad_status, totals.repeated,
      errors.connect + errors.read + errors.write, errors.timeout))
end

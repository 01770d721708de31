-- wrk script for bench/run.py: sets the request from the environment, counts non-2xx responses across
-- all threads, and prints one machine-readable line at the end:
--   BENCH_RESULT {"requests":..,"duration_us":..,"rps":..,"p50_us":..,...}
-- Environment: BENCH_AUTHORIZATION (the Authorization header, optional), BENCH_METHOD (GET),
-- BENCH_BODY and BENCH_CONTENT_TYPE (optional).
-- Writes that create something (POST /api/v1/orders) set BENCH_ROTATION to a file of requests, one a line,
-- "<Authorization header>\t<JSON body>": each request takes the next line (the threads interleave, so that the
-- requests in flight at once come from different lines) and a fresh Idempotency-Key,
-- "<BENCH_RUN>-<thread>-<counter>" (BENCH_RUN differs between wrk runs, so that no key is ever sent twice).

local threads = {}
local thread_count = 0  -- in the main script's state: the threads made so far

function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_id", thread_count - 1)
   table.insert(threads, thread)
end

local rotation = nil
local counter = 0

local function load_rotation(path)
   local lines = {}
   for line in io.lines(path) do
      local tab = line:find("\t", 1, true)
      if tab then
         table.insert(lines, {auth = line:sub(1, tab - 1), body = line:sub(tab + 1)})
      end
   end
   if #lines == 0 then
      error("BENCH_ROTATION " .. path .. " holds no request")
   end
   return lines
end

function init(args)
   non2xx = 0
   statuses = {}
   local auth = os.getenv("BENCH_AUTHORIZATION")
   if auth and auth ~= "" then
      wrk.headers["Authorization"] = auth
   end
   wrk.headers["Accept"] = "application/json"
   wrk.method = os.getenv("BENCH_METHOD") or "GET"
   local body = os.getenv("BENCH_BODY")
   if body and body ~= "" then
      wrk.body = body
      wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
   end
   local path = os.getenv("BENCH_ROTATION")
   if path and path ~= "" then
      rotation = load_rotation(path)
      run_id = os.getenv("BENCH_RUN") or tostring(os.time())
      threads_total = tonumber(os.getenv("BENCH_THREADS") or "1")
      wrk.headers["Content-Type"] = "application/json"
   end
end

-- Defined only for a rotation: without a request function, wrk builds the request once and sends it as it is
-- (what every other scenario measures).
local rotating = os.getenv("BENCH_ROTATION")
if rotating and rotating ~= "" then
   request = function()
      -- Thread t of n takes lines t, t + n, t + 2n...: every line in turn, the threads never on the same one.
      local index = (counter * threads_total + thread_id) % #rotation + 1
      counter = counter + 1
      local line = rotation[index]
      local headers = {}
      for name, value in pairs(wrk.headers) do
         headers[name] = value
      end
      headers["Authorization"] = line.auth
      headers["Idempotency-Key"] = string.format("%s-%d-%d", run_id, thread_id, counter)
      return wrk.format(wrk.method, wrk.path, headers, line.body)
   end
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      local key = tostring(status)
      statuses[key] = (statuses[key] or 0) + 1
   end
end

function done(summary, latency, requests)
   local non2xx_total = 0
   local by_status = {}
   for _, thread in ipairs(threads) do
      non2xx_total = non2xx_total + thread:get("non2xx")
      for code, count in pairs(thread:get("statuses")) do
         by_status[code] = (by_status[code] or 0) + count
      end
   end
   local parts = {}
   for code, count in pairs(by_status) do
      table.insert(parts, string.format('"%s":%d', code, count))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"rps":%.3f,"mean_us":%.1f,"stdev_us":%.1f,'
         .. '"min_us":%d,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,'
         .. '"non2xx":%d,"non2xx_by_status":{%s},'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency.mean, latency.stdev, latency.min, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      non2xx_total, table.concat(parts, ","),
      e.connect, e.read, e.write, e.status, e.timeout))
end

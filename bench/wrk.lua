-- wrk script for bench/run.py: sets the request from the environment, counts non-2xx responses across
-- all threads, and prints one machine-readable line at the end:
--   BENCH_RESULT {"requests":..,"duration_us":..,"rps":..,"p50_us":..,...}
-- Environment: BENCH_AUTHORIZATION (the Authorization header, optional), BENCH_METHOD (GET),
-- BENCH_BODY and BENCH_CONTENT_TYPE (optional).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
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

-- wrk script for one measured route: prints one machine-readable line at the end,
--   RESULT <requests/s> <p50 ms> <p99 ms> <requests> <errors>
-- errors = connect/read/write errors, timeouts and every status other than 2xx/3xx.
done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout + e.status
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, errors))
end

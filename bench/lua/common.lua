-- shared by the bench/lua/*.lua workloads: one parseable result line
--   RESULT requests seconds rps p50_us p99_us non2xx socket_errors
function pyexec_done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT %d %.3f %.1f %d %d %d %d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end

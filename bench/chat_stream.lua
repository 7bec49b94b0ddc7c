-- wrk script for bench/relay.sh: every request is the same streaming chat
-- completion. At the end it prints one machine-readable BENCH_RESULT line that
-- relay.sh parses (latencies in microseconds, as wrk keeps them).
--
-- Env: BENCH_MODEL (default bench-model), BENCH_AUTH (optional bearer token).

local model = os.getenv("BENCH_MODEL") or "bench-model"

wrk.method = "POST"
wrk.body = '{"model":"' .. model .. '","stream":true,' ..
           '"messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "text/event-stream"

local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d bytes=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f max_us=%d " ..
    "non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end

-- wrk script for cluster-tests/bench/run.sh: POST /v1/chat/completions with a small body.
-- Environment: BENCH_STREAM=1 adds "stream":true; BENCH_KEY is the bearer token.
-- done() prints one machine-readable "BENCH ..." line (latencies in microseconds,
-- from the same histogram wrk's --latency distribution prints).

local stream = os.getenv("BENCH_STREAM") == "1"
local key = os.getenv("BENCH_KEY") or "sk-bench"

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
if stream then
  wrk.body = '{"model":"bench","messages":[{"role":"user","content":"hello"}],"max_tokens":16,"stream":true}'
else
  wrk.body = '{"model":"bench","messages":[{"role":"user","content":"hello"}],"max_tokens":16}'
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end

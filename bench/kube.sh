#!/usr/bin/env bash
# Kubernetes API server benchmarks (issue 6): runs the Go benchmarks of internal/cluster/apiserver once each and
# prints a compact table with the issue's targets. Paced benchmarks offer their rate open-loop (a slow write does not
# delay the next) and print the rate achieved. No root, no daemon needed (servers are started in-process;
# etcd is embedded by the benchmarks themselves).
#   bash bench/kube.sh              (START_N=30 start-up runs; START_N=… to change)
#   KUBE_BENCH_RAW=1 bash bench/kube.sh   also prints the raw `go test -bench` output
set -euo pipefail
cd "$(dirname "$0")/.."
START_N=${START_N:-30}
PKG=./internal/cluster/apiserver/
RAW=$(mktemp /tmp/wharf-kube-bench-XXXXXX)
trap 'rm -f "$RAW"' EXIT

# One process per group so each benchmark gets its own heap and store.
bench() { # bench REGEX BENCHTIME
  go test "$PKG" -run '^$' -bench "$1" -benchtime "$2" -count 1 -timeout 20m 2>&1 | tee -a "$RAW" >/dev/null || {
    echo "kube bench: $1 failed:" >&2; tail -20 "$RAW" >&2; exit 1; }
}
bench '^BenchmarkStartToFirstRequest$' "${START_N}x"
bench '^Benchmark(Create|Update)Latency(100|1000)PerSec$' 1x
bench '^BenchmarkEtcd(Create|Update)Latency(100|1000)PerSec$' 1x
bench '^BenchmarkWatchFanout$' 1x
bench '^BenchmarkMemory10kObjects$' 1x
[ -n "${KUBE_BENCH_RAW:-}" ] && cat "$RAW"

# metric NAME UNIT: the value reported with UNIT on the line of benchmark NAME (Go appends -GOMAXPROCS)
metric() {
  awk -v b="$1" -v u="$2" '$1 ~ "^"b"(-[0-9]+)?$" { for (i = 3; i < NF; i++) if ($(i+1) == u) { print $i; exit } }' "$RAW"
}
row() { printf '%-44s %-32s %s\n' "$1" "$2" "$3"; }
lat() { # lat BENCH: "p50 / p99 ms (achieved N w/s)"
  local p50 p99 wps; p50=$(metric "$1" p50-ms); p99=$(metric "$1" p99-ms); wps=$(metric "$1" writes/s)
  [ -n "$p50" ] && printf '%s / %s ms (%s w/s)' "$p50" "$p99" "${wps%.*}" || printf 'n/a'
}
# ok VALUE LIMIT: "ok" when VALUE < LIMIT, "MISSED" otherwise
ok() { [ -n "$1" ] && awk -v v="$1" -v l="$2" 'BEGIN{ print (v + 0 < l + 0) ? "ok" : "MISSED" }' || echo "n/a"; }

start=$(metric BenchmarkStartToFirstRequest ms/start)
p99=$(metric BenchmarkCreateLatency100PerSec p99-ms)
p99u=$(metric BenchmarkUpdateLatency100PerSec p99-ms)
worst=$(printf '%s\n%s\n' "${p99:-999999}" "${p99u:-999999}" | sort -g | tail -1)
echo
echo "Wharf Kubernetes API server ($(nproc) CPUs, $(go env GOVERSION))"
row "what" "figure" "target"
row "start to first answered request (${START_N} runs)" "${start:-n/a} ms" "< 200 ms: $(ok "$start" 200)"
row "create p50/p99, bbolt, 100 w/s" "$(lat BenchmarkCreateLatency100PerSec)" "p99 < 20 ms: $(ok "$p99" 20)"
row "update p50/p99, bbolt, 100 w/s" "$(lat BenchmarkUpdateLatency100PerSec)" "p99 < 20 ms: $(ok "$p99u" 20)"
row "create p50/p99, bbolt, 1000 w/s" "$(lat BenchmarkCreateLatency1000PerSec)" ""
row "update p50/p99, bbolt, 1000 w/s" "$(lat BenchmarkUpdateLatency1000PerSec)" ""
row "create p50/p99, etcd, 100 w/s" "$(lat BenchmarkEtcdCreateLatency100PerSec)" ""
row "update p50/p99, etcd, 100 w/s" "$(lat BenchmarkEtcdUpdateLatency100PerSec)" ""
row "create p50/p99, etcd, 1000 w/s" "$(lat BenchmarkEtcdCreateLatency1000PerSec)" ""
row "update p50/p99, etcd, 1000 w/s" "$(lat BenchmarkEtcdUpdateLatency1000PerSec)" ""
fan=$(metric BenchmarkWatchFanout ms-all-delivered); evs=$(metric BenchmarkWatchFanout events/s)
row "watch fan-out 100 x 10,000, all delivered" "${fan:-n/a} ms (${evs%.*} ev/s)" ""
row "heap with 10,000 objects stored" "$(metric BenchmarkMemory10kObjects heap-MB) MB (+$(metric BenchmarkMemory10kObjects heap-delta-MB) MB for them)" ""
row "RSS with 10,000 objects (server+client)" "$(metric BenchmarkMemory10kObjects rss-MB) MB" ""
row "list of 10,000 objects" "$(metric BenchmarkMemory10kObjects list10k-ms) ms" ""
echo
if [ "$(ok "$start" 200)" = ok ] && [ "$(ok "$worst" 20)" = ok ]; then
  echo "targets: met (start < 200 ms; p99 mutating < 20 ms at 100 w/s on bbolt)"
else
  echo "targets: MISSED (start < 200 ms; p99 mutating < 20 ms at 100 w/s on bbolt); load average $(cut -d' ' -f1-3 /proc/loadavg)"
fi

#!/usr/bin/env bash
# Wharf benchmarks, peers measured in the same run, results as ratios. Needs root and bin/wharf.
#   bash bench/run.sh            (N=30 runs per case; N=… to change)
# Prints: the median of `run --rm busybox true` for bin/wharf, the docker CLI against Wharf, bare crun (or runc)
# on the same rootfs, podman and the real dockerd where present; the daemon's idle RSS and RSS per running container.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30}
BIN=$PWD/bin/wharf
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
WORK=$(mktemp -d /tmp/wharf-bench-XXXXXX)
SOCK=$WORK/wharf.sock
HOST=unix://$SOCK
cleanup() {
  set +e
  if [ -n "${DPID:-}" ]; then
    ids=$("$BIN" -H "$HOST" ps -aq 2>/dev/null); [ -n "$ids" ] && "$BIN" -H "$HOST" rm -f $ids >/dev/null 2>&1
    kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null
  fi
  "$BIN" __cleanup --data-root "$WORK/data" --exec-root "$WORK/exec" --bridge-name whbench0 >/dev/null 2>&1
  [ -n "${HUGETLB_MNT:-}" ] && umount "$HUGETLB_MNT" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { date +%s%N; }
# median_ms CMD... : runs CMD N times, prints the median wall time in ms (2 decimals)
median_ms() {
  local t=()
  for _ in $(seq "$N"); do
    local s e; s=$(now_ms); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; return 1; }; e=$(now_ms)
    t+=($(( (e - s) / 1000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f\n", m/1000}'
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# private memory of a process (its own cost; the binary's shared pages are not counted)
anon_kb() { awk '/RssAnon/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

"$BIN" daemon --data-root "$WORK/data" --exec-root "$WORK/exec" -H "$HOST" --bridge-name whbench0 --no-kube 2>"$WORK/daemon.log" &
DPID=$!
for _ in $(seq 300); do [ -S "$SOCK" ] && break; sleep 0.02; done
DOCKER_HOST=$HOST WHARF_BIN=$BIN bash scripts/base-images.sh --only busybox >/dev/null

declare -A R
# Through the Engine API alone (the docker CLI's requests, no CLI process): a Go benchmark with its own daemon.
api_line=$(WHARF_E2E_DEBUG=0 WHARF_BIN=$BIN go test ./test/e2e -run '^$' -bench BenchmarkRunRmTrueAPI -benchtime "${N}x" 2>/dev/null | grep '^BenchmarkRunRmTrueAPI' || true)
api_ns=$(awk '{print $3}' <<<"$api_line")
api_median=$(awk '{for (i = 1; i < NF; i++) if ($(i+1) == "ms-median") print $i}' <<<"$api_line")
[ -n "$api_median" ] && R[wharf_api]=$(awk -v m="$api_median" 'BEGIN{printf "%.2f", m}')
[ -n "$api_ns" ] && R[wharf_api_mean]=$(awk -v n="$api_ns" 'BEGIN{printf "%.2f", n/1e6}')
R[wharf_cli]=$(median_ms "$BIN" -H "$HOST" run --rm busybox true)
if command -v docker >/dev/null; then
  R[docker_cli_wharf]=$(median_ms env DOCKER_HOST="$HOST" docker run --rm busybox true)
fi

# Bare OCI runtime on the same rootfs: the floor.
BUNDLE=$WORK/bundle; mkdir -p "$BUNDLE/rootfs"
# the same rootfs the busybox image was made from (scripts/base-images.sh caches it)
tar -C "$BUNDLE/rootfs" -xf "${WHARF_IMAGE_CACHE:-/var/cache/wharf/base-images}/busybox.tar"
FLOOR=""
for rt in crun runc; do
  command -v $rt >/dev/null || continue
  rm -f "$BUNDLE/config.json"
  (cd "$BUNDLE" && $rt spec >/dev/null 2>&1 || true)
  [ -f "$BUNDLE/config.json" ] || continue
  python3 - "$BUNDLE/config.json" <<'PY'
import json,sys
p=sys.argv[1]; c=json.load(open(p))
c["process"]["terminal"]=False; c["process"]["args"]=["true"]
json.dump(c,open(p,"w"))
PY
  if [ $rt = crun ] && [ -f /sys/fs/cgroup/unified/cgroup.controllers ] && [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers)" ]; then
    # crun refuses hybrid cgroups while a controller sits on the v2 mount; the runtime notes say to move hugetlb.
    HUGETLB_MNT=$WORK/hugetlb; mkdir -p "$HUGETLB_MNT"; mount -t cgroup -o hugetlb cgroup "$HUGETLB_MNT" 2>/dev/null || HUGETLB_MNT=""
  fi
  if v=$(median_ms $rt run --bundle "$BUNDLE" "bench-$$"); then R[bare_$rt]=$v; FLOOR=${FLOOR:-bare_$rt}; fi
  [ -n "${HUGETLB_MNT:-}" ] && { umount "$HUGETLB_MNT" 2>/dev/null; HUGETLB_MNT=""; }
done
R[wharf_cli_nonet]=$(median_ms "$BIN" -H "$HOST" run --rm --network none busybox true)
if command -v podman >/dev/null; then
  # the same rootfs, imported under a local name: podman must never try a registry here
  PIMG=localhost/wharf-bench-busybox:latest
  podman image exists $PIMG 2>/dev/null ||
    podman import --change 'CMD ["sh"]' "${WHARF_IMAGE_CACHE:-/var/cache/wharf/base-images}/busybox.tar" $PIMG >/dev/null 2>&1
  if podman image exists $PIMG 2>/dev/null; then
    # this host: crun refuses hybrid cgroups and the sandbox caps RLIMIT_NOFILE/NPROC below podman's defaults
    P=(podman --runtime runc --cgroup-manager=cgroupfs run --rm --pull=never --ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
    R[podman]=$(median_ms "${P[@]}" $PIMG true || echo "")
    R[podman_nonet]=$(median_ms "${P[@]}" --network none $PIMG true || echo "")
  fi
fi
if command -v docker >/dev/null && docker -H unix:///var/run/docker.sock version >/dev/null 2>&1 &&
  ! docker -H unix:///var/run/docker.sock image inspect busybox >/dev/null 2>&1; then
  # the same image, handed to the real dockerd (no registry here)
  "$BIN" -H "$HOST" save busybox | docker -H unix:///var/run/docker.sock load >/dev/null 2>&1 || true
fi
if command -v docker >/dev/null && docker -H unix:///var/run/docker.sock image inspect busybox >/dev/null 2>&1; then
  R[real_dockerd]=$(median_ms docker -H unix:///var/run/docker.sock run --rm busybox true)
fi

echo "== run --rm busybox true: median of $N runs (ms), ratio to ${FLOOR:-none}"
echo "(cgroup2 root flags: $(awk '$9 == "cgroup2" {print $NF; exit}' /proc/self/mountinfo); with favordynmods no start waits for an RCU grace period, bare runtimes included)"
echo "(wharf_api: the Engine API alone, median like the others, after one untimed run; wharf_api_mean: its mean; *_nonet: --network none, like bare crun's spec)"
for k in wharf_api wharf_api_mean wharf_cli wharf_cli_nonet docker_cli_wharf bare_crun bare_runc podman podman_nonet real_dockerd; do
  [ -n "${R[$k]:-}" ] || continue
  ratio=""
  [ -n "$FLOOR" ] && ratio=$(awk -v a="${R[$k]}" -v b="${R[$FLOOR]}" 'BEGIN{printf "%.2fx", a/b}')
  printf '%-18s %8s ms  %s\n' "$k" "${R[$k]}" "$ratio"
done

# Memory: the daemon idle, then per running container (daemon growth + the shim; the container's own processes excluded).
# The daemon gives memory back after 2 s without API requests (memtrim.IdleTrimmer): idle means after that.
sleep 3
idle=$(rss_kb "$DPID")
echo "== memory"
echo "daemon idle RSS: $((idle / 1024)) MB ($idle kB; private $(anon_kb "$DPID") kB, pages of the binary $(awk '/RssFile/ {print $2}' "/proc/$DPID/status") kB)"
M=${M:-10}
for i in $(seq "$M"); do "$BIN" -H "$HOST" run -d --name "mem$i" busybox sleep 600 >/dev/null; done
sleep 3
after=$(rss_kb "$DPID")
shims=0
for p in /proc/[0-9]*; do
  # shims of this benchmark's daemon only: their command line names its exec root
  if tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q "__shim.*$WORK"; then
    shims=$(( shims + $(anon_kb "${p#/proc/}") ))
  fi
done
per=$(( ( (after - idle) + shims ) / M ))
echo "daemon RSS with $M containers: $((after / 1024)) MB; shims total private (RssAnon): $((shims / 1024)) MB"
echo "per container beyond its own processes: $per kB"

# The other areas' benchmarks, each with its own daemon (BENCH_AREAS="network build" to choose, BENCH_AREAS= for none).
cleanup; trap - EXIT
for area in ${BENCH_AREAS-network build registry kube}; do
  if [ -f "bench/$area.sh" ]; then
    echo
    echo "######## $area"
    bash "bench/$area.sh" || echo "bench/$area.sh failed (exit $?)"
  fi
done

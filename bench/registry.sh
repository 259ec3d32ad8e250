#!/usr/bin/env bash
# Registry benchmark (issue 5): push and pull of a ~200 MB multi-layer image (busybox + 4 layers of 50 MB of
# random data) to `wharf registry` on 127.0.0.1:<free port>, with Wharf and with the peers present here (the real
# dockerd, podman, skopeo), in one run, and each one's ratio to the fastest peer. Needs root and bin/wharf:
#   bash bench/registry.sh           (MB=50 per layer, LAYERS=4 to change)
# Wharf runs its own daemon (temp roots, bridge whbenchr0) and registry; what it creates in the real dockerd
# (two tags of the bench image) is removed at exit. podman runs with its own storage under the temp dir
# (--root/--runroot, cgroupfs) and gets the image from a docker-archive saved from Wharf; skopeo copies that
# archive to the registry and the image back into an OCI layout (skopeo only transfers: it does not unpack
# layers as the engines' pulls do). Nothing is ever pulled from docker.io.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${MB:-50}
LAYERS=${LAYERS:-4}
BIN=$PWD/bin/wharf
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
WORK=$(mktemp -d /tmp/wharf-bench-reg-XXXXXX)
SOCK=$WORK/s.sock
HOST=unix://$SOCK
BRIDGE=whbenchr0
DOCKER_SOCK=unix:///var/run/docker.sock
DPID="" RPIDS=() DOCKER_REFS=()
dk() { DOCKER_HOST=$DOCKER_SOCK docker "$@"; }
cleanup() {
  set +e
  for r in "${DOCKER_REFS[@]}"; do dk rmi -f "$r" >/dev/null 2>&1; done
  if [ -n "$DPID" ]; then
    ids=$("$BIN" -H "$HOST" ps -aq 2>/dev/null); [ -n "$ids" ] && "$BIN" -H "$HOST" rm -f $ids >/dev/null 2>&1
    kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null
  fi
  for p in "${RPIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -d "$WORK/podman-root" ]; then
    pm rm -a -f >/dev/null 2>&1; pm rmi -a -f >/dev/null 2>&1
    grep -o " $WORK/[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  fi
  "$BIN" __cleanup --data-root "$WORK/data" --exec-root "$WORK/exec" --bridge-name "$BRIDGE" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
w() { "$BIN" -H "$HOST" "$@"; }
pm() { podman --root "$WORK/podman-root" --runroot "$WORK/podman-run" --cgroup-manager=cgroupfs --events-backend=file "$@"; }
now_ns() { date +%s%N; }
# timed NAME CMD... : runs CMD once, stores its wall time (s) in T[NAME]; output goes to $WORK/NAME.log
declare -A T
timed() {
  local name=$1; shift
  local s e; s=$(now_ns)
  "$@" >"$WORK/$name.log" 2>&1 || { echo "FAILED: $*" >&2; tail -5 "$WORK/$name.log" >&2; return 1; }
  e=$(now_ns)
  T[$name]=$(awk -v d=$((e - s)) 'BEGIN{printf "%.2f", d/1e9}')
}

"$BIN" daemon --data-root "$WORK/data" --exec-root "$WORK/exec" -H "$HOST" --bridge-name "$BRIDGE" --no-kube 2>"$WORK/daemon.log" &
DPID=$!
for _ in $(seq 500); do [ -S "$SOCK" ] && break; sleep 0.02; done
[ -S "$SOCK" ] || { echo "daemon did not start:" >&2; cat "$WORK/daemon.log" >&2; exit 1; }
# start_registry NAME: a fresh `wharf registry` on 127.0.0.1:<free port> for one tool (so that no tool finds
# blobs another one pushed: skopeo and podman share a blob-info cache that would skip them); sets REG_ADDR.
start_registry() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$BIN" registry --addr "127.0.0.1:$port" --root "$WORK/registry-$1" 2>"$WORK/registry-$1.log" &
  RPIDS+=($!)
  for _ in $(seq 500); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.02; done
  REG_ADDR=127.0.0.1:$port
}
start_registry wharf
REG=$REG_ADDR
DOCKER_HOST=$HOST WHARF_BIN=$BIN bash scripts/base-images.sh --only busybox >"$WORK/base-images.log" 2>&1

# The image: built, saved, and loaded back into an emptied store, so that no build step's intermediate image
# keeps its layers around (a pull after rmi then really downloads every layer).
REF=$REG/bench/wharf:1
mkdir -p "$WORK/ctx"
{ echo "FROM busybox"; for i in $(seq "$LAYERS"); do echo "RUN head -c $((MB * 1000000)) /dev/urandom > /data$i"; done; } >"$WORK/ctx/Dockerfile"
w build -q -t "$REF" "$WORK/ctx" >/dev/null
w save -o "$WORK/image.tar" "$REF"
w rmi -f "$(w image inspect -f '{{.Id}}' "$REF")" >/dev/null
w image prune -a -f >/dev/null
w load -i "$WORK/image.tar" >/dev/null
SIZE_MB=$(w image inspect -f '{{.Size}}' "$REF" | awk '{printf "%.0f", $1/1e6}')
NLAYERS=$(w image inspect -f '{{len .RootFS.Layers}}' "$REF")
echo "image: $SIZE_MB MB, $NLAYERS layers; registry: a fresh wharf registry on 127.0.0.1 per tool"

# Wharf: push, then rmi (by ID: every reference goes) and pull.
timed wharf_push w push "$REF"
w rmi -f "$(w image inspect -f '{{.Id}}' "$REF")" >/dev/null
[ -z "$(w images -q)" ] || { echo "images left before the pull" >&2; exit 1; }
timed wharf_pull w pull "$REF"
grep -c "Pull complete" "$WORK/wharf_pull.log" | grep -qx "$NLAYERS" || { echo "wharf pull did not download every layer" >&2; cat "$WORK/wharf_pull.log" >&2; exit 1; }
w run --rm "$REF" sh -c 'ls -l /data*' >/dev/null

PEERS=()
# The real dockerd: the same image (docker load of the saved tar), pushed to the same registry under another name.
if command -v docker >/dev/null && dk version >/dev/null 2>&1; then
  start_registry docker
  DREF=$REG_ADDR/bench/docker:1
  DOCKER_REFS+=("$REF" "$DREF")
  dk load -i "$WORK/image.tar" >/dev/null
  dk tag "$REF" "$DREF"
  dk rmi "$REF" >/dev/null
  timed docker_push dk push "$DREF"
  dk rmi "$DREF" >/dev/null
  timed docker_pull dk pull "$DREF"
  dk run --rm "$DREF" sh -c 'ls -l /data*' >/dev/null
  PEERS+=(docker)
else
  echo "docker: no reachable dockerd on $DOCKER_SOCK, not measured"
fi
# podman: its own storage; the image comes from the docker-archive saved from Wharf.
if command -v podman >/dev/null && pm info >/dev/null 2>&1; then
  start_registry podman
  PREF=$REG_ADDR/bench/podman:1
  pm load -q -i "$WORK/image.tar" >/dev/null
  pm tag "$REF" "$PREF"
  pm rmi "$REF" >/dev/null
  timed podman_push pm push --tls-verify=false "$PREF"
  pm rmi -f "$PREF" >/dev/null
  [ -z "$(pm images -q)" ] || { echo "podman images left before the pull" >&2; exit 1; }
  timed podman_pull pm pull --tls-verify=false "$PREF"
  # (podman cannot run containers on this cgroup v1/v2 hybrid host: check the pulled image instead.)
  [ "$(pm image inspect -f '{{len .RootFS.Layers}}' "$PREF")" = "$NLAYERS" ] || { echo "podman pull: wrong layer count" >&2; exit 1; }
  PEERS+=(podman)
else
  echo "podman: not installed or not usable here, not measured"
fi
# skopeo: docker-archive → registry, registry → OCI layout (a transfer, no unpacking).
if command -v skopeo >/dev/null; then
  start_registry skopeo
  SREF=$REG_ADDR/bench/skopeo:1
  timed skopeo_push skopeo copy -q --dest-tls-verify=false "docker-archive:$WORK/image.tar" "docker://$SREF"
  timed skopeo_pull skopeo copy -q --src-tls-verify=false "docker://$SREF" "oci:$WORK/skopeo-oci:1"
  PEERS+=(skopeo)
else
  echo "skopeo: not installed here, not measured"
fi

# One table: each tool's wall time, then Wharf against the fastest peer of that operation.
printf '\n%-6s %9s' op wharf
for p in "${PEERS[@]}"; do printf ' %9s' "$p"; done
printf '   %s\n' "fastest peer / wharf"
for op in push pull; do
  printf '%-6s %8ss' "$op" "${T[wharf_$op]}"
  best="" bestp=""
  for p in "${PEERS[@]}"; do
    v=${T[${p}_$op]}
    printf ' %8ss' "$v"
    if [ -z "$best" ] || awk -v a="$v" -v b="$best" 'BEGIN{exit !(a < b)}'; then best=$v bestp=$p; fi
  done
  if [ -n "$best" ]; then
    printf '   %s: %s\n' "$bestp" "$(awk -v a="$best" -v b="${T[wharf_$op]}" 'BEGIN{printf "%.2fx", a/b}')"
  else
    printf '   (no peer measured)\n'
  fi
done
echo "(wall time of one CLI command each; ratio > 1: Wharf faster than the fastest peer)"
if [ ${#PEERS[@]} -gt 0 ]; then
  printf 'per-peer ratios (peer/wharf):'
  for p in "${PEERS[@]}"; do
    for op in push pull; do
      printf ' %s_%s=%s' "$p" "$op" "$(awk -v a="${T[${p}_$op]}" -v b="${T[wharf_$op]}" 'BEGIN{printf "%.2fx", a/b}')"
    done
  done
  printf '\n'
fi

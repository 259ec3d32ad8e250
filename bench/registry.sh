#!/usr/bin/env bash
# Registry benchmark (issue 5): push and pull of a ~200 MB multi-layer image (busybox + 4 layers of 50 MB of
# random data) to `wharf registry` on 127.0.0.1:<free port>, with Wharf and with the peers present here (the real
# dockerd, podman or skopeo), in one run. Needs root and bin/wharf. Run by the lead next to bench/run.sh:
#   bash bench/registry.sh           (MB=50 per layer, LAYERS=4 to change)
# Wharf runs its own daemon (temp roots, bridge whbenchr0) and registry; what it creates in the real dockerd
# (two tags of the bench image) is removed at exit.
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
DPID="" RPID="" DOCKER_REFS=()
dk() { DOCKER_HOST=$DOCKER_SOCK docker "$@"; }
cleanup() {
  set +e
  for r in "${DOCKER_REFS[@]}"; do dk rmi -f "$r" >/dev/null 2>&1; done
  if [ -n "$DPID" ]; then
    ids=$("$BIN" -H "$HOST" ps -aq 2>/dev/null); [ -n "$ids" ] && "$BIN" -H "$HOST" rm -f $ids >/dev/null 2>&1
    kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null
  fi
  [ -n "$RPID" ] && { kill "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null; }
  "$BIN" __cleanup --data-root "$WORK/data" --exec-root "$WORK/exec" --bridge-name "$BRIDGE" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
w() { "$BIN" -H "$HOST" "$@"; }
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
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
"$BIN" registry --addr "$REG" --root "$WORK/registry" 2>"$WORK/registry.log" &
RPID=$!
for _ in $(seq 500); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.02; done
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
echo "image: $SIZE_MB MB, $NLAYERS layers; registry: wharf registry on $REG"

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
  DREF=$REG/bench/docker:1
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
for p in podman skopeo; do command -v $p >/dev/null || echo "$p: not installed here, not measured"; done

printf '\n%-6s %10s' op wharf
for p in "${PEERS[@]}"; do printf ' %10s %14s' "$p" "$p/wharf"; done
printf '\n'
for op in push pull; do
  printf '%-6s %9ss' "$op" "${T[wharf_$op]}"
  for p in "${PEERS[@]}"; do
    printf ' %9ss %14s' "${T[${p}_$op]}" "$(awk -v a="${T[${p}_$op]}" -v b="${T[wharf_$op]}" 'BEGIN{printf "%.2fx", a/b}')"
  done
  printf '\n'
done
echo "(wall time of one CLI command each; ratio > 1: Wharf faster than the peer)"

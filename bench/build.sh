#!/usr/bin/env bash
# Wharf image build benchmark (issue 4), peers measured in the same run. Needs root; called by bench/run.sh.
#   bash bench/build.sh          (N=3 runs per case; N=… to change)
# Cases, each the median of N runs:
#   tutorial   the seed's Dockerfile (FROM nginx:latest + COPY index.html): cold (--no-cache) and cached rebuild
#   3-stage    three busybox stages with RUN and COPY --from: cold and cached rebuild
#   10k-copy   COPY of a 10,000-file context after changing one file (the COPY misses, FROM hits)
# Builders: `bin/wharf build` and `DOCKER_BUILDKIT=0 docker build` against a Wharf daemon started here,
# podman (buildah) when installed, and the machine's real dockerd (legacy builder) when reachable.
# Base images are the same rootfs tarballs everywhere (scripts/base-images.sh caches them, with the config
# scripts/base-images.sh gives them); on the real dockerd they are imported as wharf-bench/…, on podman as
# localhost/wharf-bench-build-…:latest (fully qualified: podman never resolves a short name, never pulls:
# --pull=never), and removed at exit with everything built here (intermediate stage images included).
# podman runs with --cgroup-manager=cgroupfs (no systemd here) and --runtime runc: crun refuses this host's
# hybrid cgroups. The podman Dockerfiles are the same ones with the base images renamed, passed with -f (the
# context directories are shared).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3}
[ -x bin/wharf ] || make build >/dev/null
BIN=$PWD/bin/wharf
CACHE=${WHARF_IMAGE_CACHE:-/var/cache/wharf/base-images}
REAL_SOCK=${REAL_DOCKER_SOCK:-/var/run/docker.sock}
PATH_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
BRIDGE=whbenchb0
WORK=$(mktemp -d /tmp/wharf-bench-build-XXXXXX)
SOCK=$WORK/s.sock
HOST=unix://$SOCK
PODMAN_IMAGES=() # the same on podman
PODMAN=(podman --cgroup-manager=cgroupfs)

cleanup() {
  set +e
  if [ -n "${DPID:-}" ]; then
    ids=$("$BIN" -H "$HOST" ps -aq 2>/dev/null); [ -n "$ids" ] && "$BIN" -H "$HOST" rm -f $ids >/dev/null 2>&1
    kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null
  fi
  "$BIN" __cleanup --data-root "$WORK/data" --exec-root "$WORK/exec" --bridge-name "$BRIDGE" >/dev/null 2>&1
  [ "${HAVE_REAL:-0}" = 1 ] && real_cleanup
  if [ ${#PODMAN_IMAGES[@]} -gt 0 ]; then
    for _ in 1 2; do # a parent goes once its children are gone
      for ((i = ${#PODMAN_IMAGES[@]} - 1; i >= 0; i--)); do "${PODMAN[@]}" rmi -f "${PODMAN_IMAGES[$i]}" >/dev/null 2>&1; done
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# real_cleanup: on the real dockerd, remove the bases imported here and every image descending from them
# (intermediate images of every stage included), leaves first, and any container made from one of them.
real_cleanup() {
  local R="docker -H unix://$REAL_SOCK" bases all order
  bases=$($R image inspect --format '{{.Id}}' wharf-bench/busybox:latest wharf-bench/nginx:latest 2>/dev/null)
  [ -n "$bases" ] || return 0
  all=$($R images -aq --no-trunc | sort -u)
  [ -n "$all" ] || return 0
  # "<depth> <id>" for each image whose parent chain reaches a base, deepest first.
  order=$($R image inspect --format '{{.Id}} {{.Parent}}' $all | python3 -c '
import sys
bases = set(sys.argv[1:])
parent = dict((l.split() + [""])[:2] for l in sys.stdin if l.strip())
out = []
for i in parent:
    d, p = 0, i
    while p and p not in bases:
        p, d = parent.get(p, ""), d + 1
    if p:
        out.append((d, i))
for d, i in sorted(out, reverse=True):
    print(i)
' $bases)
  local ids img c
  ids=$(echo "$order" | tr '\n' ' ')
  for c in $($R ps -aq --no-trunc); do
    img=$($R inspect --format '{{.Image}}' "$c" 2>/dev/null)
    case " $ids " in *" $img "*) $R rm -f "$c" >/dev/null 2>&1 ;; esac
  done
  for img in $order; do $R rmi -f "$img" >/dev/null 2>&1; done
}

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) exit 1; m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f\n", m}'; }
# timed_ms CMD...: runs CMD once; prints its wall time in ms; its stdout goes to $WORK/last.out.
timed_ms() {
  local s e
  s=$(now_ns)
  if ! "$@" >"$WORK/last.out" 2>"$WORK/last.err"; then
    echo "FAILED: $*" >&2; tail -n 20 "$WORK/last.err" >&2; return 1
  fi
  e=$(now_ns)
  echo $(((e - s) / 1000000))
}

# --- the Wharf daemon ------------------------------------------------------------------------------------------
"$BIN" daemon --data-root "$WORK/data" --exec-root "$WORK/exec" -H "$HOST" --bridge-name "$BRIDGE" --no-kube \
  2>"$WORK/daemon.log" &
DPID=$!
for _ in $(seq 500); do [ -S "$SOCK" ] && break; sleep 0.02; done
[ -S "$SOCK" ] || { echo "daemon did not start:" >&2; cat "$WORK/daemon.log" >&2; exit 1; }
DOCKER_HOST=$HOST WHARF_BIN=$BIN bash scripts/base-images.sh --only busybox,nginx >/dev/null 2>"$WORK/base.log" ||
  { cat "$WORK/base.log" >&2; exit 1; }
# The same names on every engine (the real dockerd's own busybox/nginx, if any, are not ours to replace).
"$BIN" -H "$HOST" tag busybox:latest wharf-bench/busybox:latest
"$BIN" -H "$HOST" tag nginx:latest wharf-bench/nginx:latest

# --- build contexts --------------------------------------------------------------------------------------------
TUT=""
for d in /work/shared/tutorial "$PWD/../shared/tutorial"; do [ -f "$d/Dockerfile" ] && { TUT=$d; break; }; done
[ -n "$TUT" ] || { echo "no tutorial directory (/work/shared/tutorial or ../shared/tutorial)" >&2; exit 1; }
mkdir -p "$WORK/ctx/tutorial" "$WORK/ctx/stages" "$WORK/ctx/many/files"
cp "$TUT/index.html" "$WORK/ctx/tutorial/"
# The seed's Dockerfile as is, with the base named privately.
sed 's#^FROM nginx:latest#FROM wharf-bench/nginx:latest#' "$TUT/Dockerfile" >"$WORK/ctx/tutorial/Dockerfile"

cat >"$WORK/ctx/stages/Dockerfile" <<'EOF'
FROM wharf-bench/busybox:latest AS base
WORKDIR /out
COPY a.txt b.txt ./
RUN echo base > /out/base.txt && mkdir -p /out/lib && cp /bin/busybox /out/lib/tool
FROM wharf-bench/busybox:latest AS mid
COPY --from=base /out /in
RUN cat /in/base.txt /in/a.txt /in/b.txt > /mid.txt && chmod 0600 /mid.txt
FROM wharf-bench/busybox:latest
ENV APP=/app
COPY --from=mid /mid.txt /app/
COPY --from=base /out/lib/tool /usr/local/bin/tool
WORKDIR /app
CMD ["cat", "/app/mid.txt"]
EOF
echo a >"$WORK/ctx/stages/a.txt"
echo b >"$WORK/ctx/stages/b.txt"

cat >"$WORK/ctx/many/Dockerfile" <<'EOF'
FROM wharf-bench/busybox:latest
COPY files/ /data/
EOF
# 10,000 small files in 100 directories.
(cd "$WORK/ctx/many/files" && for d in $(seq -w 0 99); do
  mkdir "d$d"
  for f in $(seq -w 0 99); do echo "file $d/$f" >"d$d/f$f"; done
done)

# --- builders --------------------------------------------------------------------------------------------------
# Each builder is a function: <builder> <extra build flags...> <context>; prints nothing, fails on error.
wharf_cli() { "$BIN" -H "$HOST" build -q "$@"; }
docker_wharf() { DOCKER_HOST=$HOST DOCKER_BUILDKIT=0 DOCKER_CLI_HINTS=false docker build -q "$@"; }
real_dockerd() {
  DOCKER_HOST=unix://$REAL_SOCK DOCKER_BUILDKIT=0 DOCKER_CLI_HINTS=false docker build --force-rm -q "$@"
}
# podman: the context's Dockerfile with the bases named localhost/wharf-bench-<name>:latest; tags under localhost/.
podman_b() {
  local args=() ctx=${*: -1} a prev=""
  for a in "${@:1:$#-1}"; do
    if [ "$prev" = -t ]; then a="localhost/${a//\//-build-}"; fi
    args+=("$a"); prev=$a
  done
  local df="$WORK/podman-df/$(basename "$ctx")"
  [ -f "$df" ] || sed -E 's#(FROM[[:space:]]+)wharf-bench/([a-z]+):latest#\1localhost/wharf-bench-build-\2:latest#I' "$ctx/Dockerfile" >"$df"
  "${PODMAN[@]}" build --runtime runc --pull=never --layers -q -f "$df" "${args[@]}" "$ctx" >"$WORK/podman.id" || return 1
  local id; id=$(tail -n 1 "$WORK/podman.id"); [ -n "$id" ] && echo "$id" >>"$WORK/podman.ids"
  cat "$WORK/podman.id"
}
mkdir -p "$WORK/podman-df"

BUILDERS=(wharf_cli)
command -v docker >/dev/null && BUILDERS+=(docker_wharf)
HAVE_PODMAN=0
if command -v podman >/dev/null; then
  HAVE_PODMAN=1
  BUILDERS+=(podman_b)
  PODMAN_IMAGES+=(localhost/wharf-bench-build-busybox:latest localhost/wharf-bench-build-nginx:latest)
  "${PODMAN[@]}" images -a -q --no-trunc 2>/dev/null | sort -u >"$WORK/podman.before"
  # The configs scripts/base-images.sh gives these images (busybox: CMD sh; nginx: CMD, EXPOSE, STOPSIGNAL).
  "${PODMAN[@]}" import --change 'CMD ["sh"]' --change "ENV $PATH_ENV" "$CACHE/busybox.tar" \
    localhost/wharf-bench-build-busybox:latest >/dev/null
  "${PODMAN[@]}" import --change 'CMD ["nginx","-g","daemon off;"]' --change 'EXPOSE 80' --change 'STOPSIGNAL SIGQUIT' \
    --change "ENV $PATH_ENV" "$CACHE/nginx.tar" localhost/wharf-bench-build-nginx:latest >/dev/null
fi
HAVE_REAL=0
if command -v docker >/dev/null && docker -H "unix://$REAL_SOCK" version >/dev/null 2>&1; then
  HAVE_REAL=1
  BUILDERS+=(real_dockerd)
  # dockerd 20.10 rejects STOPSIGNAL on import; it plays no part in a build.
  docker -H "unix://$REAL_SOCK" import --change 'CMD ["sh"]' --change "ENV $PATH_ENV" \
    "$CACHE/busybox.tar" wharf-bench/busybox:latest >/dev/null
  docker -H "unix://$REAL_SOCK" import --change 'CMD ["nginx","-g","daemon off;"]' --change 'EXPOSE 80' \
    --change "ENV $PATH_ENV" "$CACHE/nginx.tar" wharf-bench/nginx:latest >/dev/null
fi
: >"$WORK/podman.ids"

declare -A R
# measure <case> <builder> <prepare-fn or ""> <build flags...> <context>: median of N runs into R[case,builder].
measure() {
  local case=$1 b=$2 prep=$3; shift 3
  local ts=() t
  for _ in $(seq "$N"); do
    [ -z "$prep" ] || "$prep"
    t=$(timed_ms "$b" "$@") || return 1
    ts+=("$t")
  done
  R[$case,$b]=$(printf '%s\n' "${ts[@]}" | median)
}
CHANGE=0
change_one_file() { CHANGE=$((CHANGE + 1)); echo "changed $CHANGE $RANDOM" >"$WORK/ctx/many/files/d42/f42"; }

for b in "${BUILDERS[@]}"; do
  echo "measuring $b …" >&2
  # Cold: no cache for any step (the base images are present).
  measure tutorial_cold "$b" "" --no-cache -t wharf-bench/tutorial "$WORK/ctx/tutorial" || continue
  "$b" -t wharf-bench/tutorial "$WORK/ctx/tutorial" >/dev/null
  measure tutorial_cached "$b" "" -t wharf-bench/tutorial "$WORK/ctx/tutorial" || continue
  measure stages_cold "$b" "" --no-cache -t wharf-bench/stages "$WORK/ctx/stages" || continue
  "$b" -t wharf-bench/stages "$WORK/ctx/stages" >/dev/null
  measure stages_cached "$b" "" -t wharf-bench/stages "$WORK/ctx/stages" || continue
  # One unmeasured build first, so that FROM is a cache hit and only the COPY runs.
  "$b" -t wharf-bench/many "$WORK/ctx/many" >/dev/null
  measure copy10k_changed "$b" change_one_file -t wharf-bench/many "$WORK/ctx/many" || continue
done
# Everything built on podman, removed at exit (their parents go with them); the real dockerd: real_cleanup.
while read -r id; do [ -n "$id" ] && PODMAN_IMAGES+=("$id"); done <"$WORK/podman.ids"
if [ "$HAVE_PODMAN" = 1 ]; then
  PODMAN_IMAGES+=(localhost/wharf-bench-build-tutorial localhost/wharf-bench-build-stages localhost/wharf-bench-build-many)
  # The images of non-final stages are nobody's parents: every image that appeared during this run goes too
  # (images present before it, e.g. other scripts' bases, are never touched).
  "${PODMAN[@]}" images -a -q --no-trunc 2>/dev/null | sort -u >"$WORK/podman.after"
  while read -r id; do [ -n "$id" ] && PODMAN_IMAGES+=("$id"); done < <(comm -13 "$WORK/podman.before" "$WORK/podman.after")
fi

# --- report ----------------------------------------------------------------------------------------------------
REF=""
if [ "$HAVE_PODMAN" = 1 ]; then REF=podman_b; elif [ "$HAVE_REAL" = 1 ]; then REF=real_dockerd; fi
echo "== build: median of $N runs (ms); ratio = wharf_cli / ${REF:-none}"
echo "podman/buildah: $([ "$HAVE_PODMAN" = 1 ] && echo present || echo absent)"
echo "real dockerd:   $([ "$HAVE_REAL" = 1 ] && docker -H "unix://$REAL_SOCK" version --format '{{.Server.Version}} (legacy builder)' || echo absent)"
printf '%-16s' case
for b in wharf_cli docker_wharf podman_b real_dockerd; do printf ' %13s' "$b"; done
printf ' %8s\n' ratio
for c in tutorial_cold tutorial_cached stages_cold stages_cached copy10k_changed; do
  printf '%-16s' "$c"
  for b in wharf_cli docker_wharf podman_b real_dockerd; do
    if [ -n "${R[$c,$b]:-}" ]; then printf ' %13s' "${R[$c,$b]}"
    elif [ "$b" = podman_b ] && [ "$HAVE_PODMAN" = 0 ]; then printf ' %13s' absent
    else printf ' %13s' -; fi
  done
  ratio=-
  [ -n "$REF" ] && [ -n "${R[$c,wharf_cli]:-}" ] && [ -n "${R[$c,$REF]:-}" ] &&
    ratio=$(awk -v a="${R[$c,wharf_cli]}" -v b="${R[$c,$REF]}" 'BEGIN{printf "%.2fx", a/b}')
  printf ' %8s\n' "$ratio"
done
target_ref=${REF:-none}
if [ "$HAVE_PODMAN" = 1 ]; then
  echo "podman: build --runtime runc --pull=never --layers, --cgroup-manager=cgroupfs (crun refuses hybrid cgroups here)"
  echo "target: cached rebuilds (and the 10k-file COPY after one change) ≤ 0.20x of podman's time"
elif [ "$HAVE_REAL" = 1 ]; then
  echo "target: cached rebuilds ≤ 0.20x of podman's time; podman is absent here, so the ratio is against the real dockerd"
fi
for c in tutorial_cached stages_cached copy10k_changed; do
  [ -n "$REF" ] && [ -n "${R[$c,wharf_cli]:-}" ] && [ -n "${R[$c,$REF]:-}" ] || continue
  awk -v c="$c" -v a="${R[$c,wharf_cli]}" -v b="${R[$c,$REF]}" -v r="$target_ref" \
    'BEGIN{printf "  %-16s %.2fx of %s: %s\n", c, a/b, r, (a/b <= 0.2 ? "met" : "NOT met")}'
done

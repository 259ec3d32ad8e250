#!/usr/bin/env bash
# Network benchmark (issue 3), peers measured in the same run. Needs root; uses bin/wharf (`make build` if absent).
#   bash bench/network.sh        (DUR=5s per wrk run, ROUNDS=3 interleaved rounds, median kept; N=5 publish timings)
# Starts its own daemon (bridge whbenchn0) and measures, with wrk against the same nginx (access log off):
#   * HTTP throughput and p99 latency directly to the container IP, through Wharf's -p 127.0.0.1:P:80, and through
#     -p P:80 reached on the Wharf bridge's gateway address (the host's own non-loopback address; no other address
#     is ever targeted); the same through the real dockerd (socket /var/run/docker.sock) and podman (rootful,
#     cgroupfs, default network, image imported from the base-image cache, never pulled) when present;
#   * the time to publish a port: run -d -p … until the first HTTP 200 (and without -p, on the container IP);
#   * the cost of many published ports: run -d and rm -f times, nftables rules, daemon RSS for 0/100/1000 ports.
# Traffic stays on this host (loopback and the bridges). Everything created is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-5s}
ROUNDS=${ROUNDS:-3}
N=${N:-5}
[ "$(id -u)" -eq 0 ] || { echo "bench/network.sh needs root" >&2; exit 1; }
BIN=$PWD/bin/wharf
[ -x "$BIN" ] || make build
if ! command -v wrk >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
fi
command -v curl >/dev/null || { echo "bench/network.sh needs curl" >&2; exit 1; }

BRIDGE=whbenchn0
TABLE=wharf_$BRIDGE
WORK=$(mktemp -d /tmp/wharf-benchn-XXXXXX)
SOCK=$WORK/s.sock
HOST=unix://$SOCK
TAG=wharf-benchn-$$
DSOCK=unix:///var/run/docker.sock
W() { "$BIN" -H "$HOST" "$@"; }
D() { docker -H "$DSOCK" "$@"; }
HAVE_DOCKER=0
DOCKER_IMG=""
DOCKER_CTRS=()
cleanup() {
  set +e
  if [ -n "${DPID:-}" ]; then
    ids=$(W ps -aq 2>/dev/null); [ -n "$ids" ] && W rm -f $ids >/dev/null 2>&1
    kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null
  fi
  "$BIN" __cleanup --data-root "$WORK/data" --exec-root "$WORK/exec" --bridge-name "$BRIDGE" >/dev/null 2>&1
  if [ $HAVE_DOCKER -eq 1 ]; then
    [ ${#DOCKER_CTRS[@]} -gt 0 ] && D rm -f "${DOCKER_CTRS[@]}" >/dev/null 2>&1
    [ -n "$DOCKER_IMG" ] && D rmi "$DOCKER_IMG" >/dev/null 2>&1
  fi
  [ -n "${PODMAN_CTR:-}" ] && P rm -f -t 0 "$PODMAN_CTR" >/dev/null 2>&1
  [ -n "${PODMAN_IMG:-}" ] && P rmi "$PODMAN_IMG" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) exit; print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
# free_port: a TCP port nobody listens on (any address).
free_port() {
  local p
  for p in $(shuf -i 18000-19999 -n 200); do
    if ! ss -Hltn "sport = :$p" | grep -q . && [[ " ${USED_PORTS:-} " != *" $p "* ]]; then
      USED_PORTS="${USED_PORTS:-} $p"; echo "$p"; return 0
    fi
  done
  return 1
}
# range_free BASE COUNT: no listener in [BASE, BASE+COUNT)
range_free() { [ -z "$(ss -Hltn "( sport >= :$1 and sport < :$(($1 + $2)) )")" ]; }
wait_200() { # wait_200 URL [timeout s]: polls until HTTP 200
  local deadline=$(( $(date +%s) + ${2:-30} ))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" 2>/dev/null)" = 200 ]; do
    [ "$(date +%s)" -lt $deadline ] || { echo "no HTTP 200 from $1" >&2; return 1; }
    sleep 0.005
  done
}
# wrk_once URL: prints "<req/s> <p99 ms>"
wrk_once() {
  wrk -t2 -c32 -d"$DUR" --latency "$1" 2>&1 | awk '
    /^Requests\/sec:/ {rps=$2}
    $1=="99%" {v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
      if (u=="us") v/=1000; else if (u=="s") v*=1000; else if (u=="m") v*=60000; p99=v}
    END {printf "%.0f %.3f\n", rps, p99}'
}
nft_rules() { nft -a list table ip "$TABLE" 2>/dev/null | grep '# handle' | grep -cvE '^\s*(table|chain|set|map) ' || true; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

"$BIN" daemon --data-root "$WORK/data" --exec-root "$WORK/exec" -H "$HOST" --bridge-name "$BRIDGE" --no-kube 2>"$WORK/daemon.log" &
DPID=$!
for _ in $(seq 500); do [ -S "$SOCK" ] && break; sleep 0.02; done
[ -S "$SOCK" ] || { cat "$WORK/daemon.log" >&2; exit 1; }
for img in busybox nginx; do
  DOCKER_HOST=$HOST WHARF_BIN=$BIN bash scripts/base-images.sh --only $img >/dev/null 2>"$WORK/images.log" ||
    { cat "$WORK/images.log" >&2; exit 1; }
done
NGINX_TAR=${WHARF_IMAGE_CACHE:-/var/cache/wharf/base-images}/nginx.tar
# nginx as the image runs it, without the per-request access log (it would measure the log path, not the network)
NGX=(sh -c 'sed -i "s|^\s*access_log .*|access_log off;|" /etc/nginx/nginx.conf && exec nginx -g "daemon off;"')
GW=$(ip -4 -o addr show dev "$BRIDGE" | awk '{split($4, a, "/"); print a[1]; exit}')
[ -n "$GW" ] || { echo "no address on $BRIDGE" >&2; exit 1; }

# ---- peers ------------------------------------------------------------------------------------------------------
declare -A URL
if command -v docker >/dev/null && D version >/dev/null 2>&1; then
  HAVE_DOCKER=1
  # The same rootfs as Wharf's nginx image (scripts/base-images.sh), imported under a name of our own.
  D import --change 'CMD ["nginx","-g","daemon off;"]' --change 'EXPOSE 80' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$NGINX_TAR" "$TAG-nginx:latest" >/dev/null
  DOCKER_IMG=$TAG-nginx:latest
fi
# podman (rootful, its default network: no network of its own is made; never pulls: the image is imported from
# the same rootfs tarball under a name of our own, fully qualified). On this cgroup v1 hybrid host crun refuses
# to run ("cgroups in hybrid mode not supported"): runc is used; podman's default rlimits (1048576 open files)
# exceed the hard limits here, so the container gets lower ones (as much as nginx needs).
P() { podman --cgroup-manager=cgroupfs --runtime "$(command -v runc || echo crun)" "$@"; }
lim() { local h=$1 want=$2; [ "$h" = unlimited ] || [ "$h" -gt "$want" ] && echo "$want" || echo "$h"; }
NOFILE=$(lim "$(ulimit -Hn)" 16384); NPROC=$(lim "$(ulimit -Hu)" 4096)
PODMAN_ULIMITS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=$NPROC:$NPROC")
if command -v podman >/dev/null && P info >/dev/null 2>&1; then
  P import --change 'CMD ["nginx","-g","daemon off;"]' --change 'EXPOSE 80' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$NGINX_TAR" "localhost/$TAG-nginx:latest" >/dev/null && {
    PODMAN_IMG=localhost/$TAG-nginx:latest
    PP=$(free_port); PP2=$(free_port)
    PODMAN_CTR=$TAG-ngx
    P run -d --pull=never "${PODMAN_ULIMITS[@]}" --name "$PODMAN_CTR" -p "127.0.0.1:$PP:80" -p "$PP2:80" "$PODMAN_IMG" "${NGX[@]}" >/dev/null
    URL[podman_p_lo]=http://127.0.0.1:$PP/
    URL[podman_p_gw]=http://$GW:$PP2/
    PIP=$(P inspect -f '{{.NetworkSettings.IPAddress}}' "$PODMAN_CTR" 2>/dev/null || true)
    [ -n "$PIP" ] && URL[podman_direct]=http://$PIP/
  }
fi

# ---- throughput -------------------------------------------------------------------------------------------------
P1=$(free_port); P2=$(free_port)
W run -d --name ngx -p "127.0.0.1:$P1:80" -p "$P2:80" nginx "${NGX[@]}" >/dev/null
CIP=$(W inspect -f '{{.NetworkSettings.IPAddress}}' ngx)
URL[wharf_direct]=http://$CIP/
URL[wharf_p_lo]=http://127.0.0.1:$P1/
URL[wharf_p_gw]=http://$GW:$P2/
if [ $HAVE_DOCKER -eq 1 ]; then
  P3=$(free_port); P4=$(free_port)
  DOCKER_CTRS+=("$TAG-ngx")
  D run -d --name "$TAG-ngx" -p "127.0.0.1:$P3:80" -p "$P4:80" "$DOCKER_IMG" "${NGX[@]}" >/dev/null
  DIP=$(D inspect -f '{{.NetworkSettings.IPAddress}}' "$TAG-ngx")
  URL[docker_direct]=http://$DIP/
  URL[docker_p_lo]=http://127.0.0.1:$P3/
  URL[docker_p_gw]=http://$GW:$P4/
fi
ORDER=(wharf_direct wharf_p_lo wharf_p_gw docker_direct docker_p_lo docker_p_gw podman_direct podman_p_lo podman_p_gw)
for k in "${ORDER[@]}"; do [ -n "${URL[$k]:-}" ] && wait_200 "${URL[$k]}"; done
for k in "${ORDER[@]}"; do [ -n "${URL[$k]:-}" ] && wrk -t1 -c4 -d1s "${URL[$k]}" >/dev/null 2>&1; done # warm-up
declare -A RPS P99
for _ in $(seq "$ROUNDS"); do
  for k in "${ORDER[@]}"; do
    [ -n "${URL[$k]:-}" ] || continue
    read -r r p < <(wrk_once "${URL[$k]}")
    RPS[$k]+="$r "; P99[$k]+="$p "
  done
done

echo "== HTTP through wrk -t2 -c32 -d$DUR --latency, median of $ROUNDS interleaved rounds (nginx, access log off)"
printf '%-14s %-24s %10s %9s %9s\n' path target req/s p99_ms vs_direct
declare -A MED
for k in "${ORDER[@]}"; do
  [ -n "${URL[$k]:-}" ] || continue
  MED[$k]=$(tr ' ' '\n' <<<"${RPS[$k]}" | grep . | median)
  p=$(tr ' ' '\n' <<<"${P99[$k]}" | grep . | median)
  base=${k%%_*}_direct
  ratio=$(awk -v a="${MED[$k]}" -v b="${MED[$base]:-0}" 'BEGIN{ if (b>0) printf "%.0f%%", 100*a/b; else print "-"}')
  printf '%-14s %-24s %10.0f %9.2f %9s\n' "$k" "${URL[$k]#http://}" "${MED[$k]}" "$p" "$ratio"
done
for k in wharf_p_lo wharf_p_gw; do
  awk -v a="${MED[$k]}" -v b="${MED[wharf_direct]}" -v k="$k" 'BEGIN{printf "Wharf -p (%s): %.1f%% of direct throughput; target >= 90%%: %s\n", k, 100*a/b, (a >= 0.9*b) ? "met" : "NOT met"}'
done
for e in docker podman; do
  for k in ${e}_p_lo ${e}_p_gw; do
    [ -n "${MED[$k]:-}" ] && [ -n "${MED[${e}_direct]:-}" ] &&
      awk -v a="${MED[$k]}" -v b="${MED[${e}_direct]}" -v k="$k" 'BEGIN{printf "%s: %.1f%% of its direct throughput\n", k, 100*a/b}'
  done
done
W rm -f ngx >/dev/null
[ $HAVE_DOCKER -eq 1 ] && D rm -f "$TAG-ngx" >/dev/null
if [ -n "${PODMAN_CTR:-}" ]; then P rm -f -t 0 "$PODMAN_CTR" >/dev/null; PODMAN_CTR=""; fi

# ---- time to publish ---------------------------------------------------------------------------------------------
# run -d … then poll with curl every 5 ms until the first 200: container start + nginx start + the port.
pub_time() { # pub_time <cli fn> <name> <with -p: 1|0>
  local cli=$1 name=$2 withp=$3 s e url p ip
  p=$(free_port)
  s=$(now_ns)
  if [ "$withp" = 1 ]; then
    $cli run -d --name "$name" -p "127.0.0.1:$p:80" "$4" >/dev/null
    url=http://127.0.0.1:$p/
  else
    $cli run -d --name "$name" "$4" >/dev/null
    ip=$($cli inspect -f '{{.NetworkSettings.IPAddress}}' "$name")
    url=http://$ip/
  fi
  wait_200 "$url" 30
  e=$(now_ns)
  $cli rm -f "$name" >/dev/null
  echo $(( (e - s) / 1000000 ))
}
echo
echo "== time from run -d to the first HTTP 200 (nginx; median of $N, ms)"
declare -A PUB
for i in $(seq "$N"); do
  PUB[wharf_ip]+="$(pub_time W "pub$i-ip" 0 nginx) "
  PUB[wharf_p]+="$(pub_time W "pub$i-p" 1 nginx) "
  if [ $HAVE_DOCKER -eq 1 ]; then
    DOCKER_CTRS+=("$TAG-pub$i-ip" "$TAG-pub$i-p")
    PUB[docker_ip]+="$(pub_time D "$TAG-pub$i-ip" 0 "$DOCKER_IMG") "
    PUB[docker_p]+="$(pub_time D "$TAG-pub$i-p" 1 "$DOCKER_IMG") "
  fi
done
printf '%-8s %16s %22s %8s\n' engine "to container IP" "via -p 127.0.0.1:P:80" "-p cost"
for e in wharf docker; do
  [ -n "${PUB[${e}_ip]:-}" ] || continue
  a=$(tr ' ' '\n' <<<"${PUB[${e}_ip]}" | grep . | median); b=$(tr ' ' '\n' <<<"${PUB[${e}_p]}" | grep . | median)
  printf '%-8s %16s %22s %8s\n' "$e" "$a" "$b" "$((${b%.*} - ${a%.*}))"
done

# ---- many published ports ----------------------------------------------------------------------------------------
echo
echo "== published ports: one busybox container with -p 127.0.0.1:B-B+n-1:10000-10000+n-1 (ms; rules in table $TABLE)"
printf '%-8s %6s %10s %8s %10s %12s %14s\n' engine ports "run -d" "rm -f" nft_rules "daemon_RSS" "last port 200"
ms_of() { local s e; s=$(now_ns); "$@" >/dev/null; e=$(now_ns); echo $(( (e - s) / 1000000 )); }
ports_case() { # ports_case <cli fn> <engine> <n> <name>
  local cli=$1 eng=$2 n=$3 name=$4 base="" b t_run t_rm rules="-" rss="-" ok="-" pargs=()
  if [ "$n" -gt 0 ]; then
    for b in 20000 21000 22000 23000 24000 25000 26000 27000; do range_free "$b" "$n" && { base=$b; break; }; done
    [ -n "$base" ] || { echo "no free range of $n ports" >&2; return 0; }
    pargs=(-p "127.0.0.1:$base-$((base + n - 1)):10000-$((10000 + n - 1))")
  fi
  local last=$((10000 + (n > 0 ? n - 1 : 0)))
  local s e
  s=$(now_ns)
  if ! $cli run -d --name "$name" "${pargs[@]}" "$5" httpd -f -p "$last" -h /etc >/dev/null 2>"$WORK/err"; then
    e=$(now_ns)
    [ "$eng" = wharf ] && rules=$(nft_rules)
    $cli rm -f "$name" >/dev/null 2>&1
    printf '%-8s %6s %10s %8s %10s %12s %14s\n' "$eng" "$n" "FAILED" "-" "$rules" "-" "-"
    FAILURES+=("$eng, $n ports, after $(( (e - s) / 1000000 )) ms: $(head -n1 "$WORK/err")")
    return 0
  fi
  e=$(now_ns)
  t_run=$(( (e - s) / 1000000 ))
  if [ "$eng" = wharf ]; then rules=$(nft_rules); rss="$(rss_mb "$DPID") MB"; fi
  if [ "$n" -gt 0 ]; then
    wait_200 "http://127.0.0.1:$((base + n - 1))/passwd" 10 2>/dev/null && ok=yes || ok=no
    if [ "$eng" = wharf ] && [ "$n" = 1000 ]; then
      # data path with 1000 published ports in the table (the nginx container's own port is looked up among them)
      P5=$(free_port)
      W run -d --name ngx1000 -p "127.0.0.1:$P5:80" nginx "${NGX[@]}" >/dev/null
      wait_200 "http://127.0.0.1:$P5/"
      read -r R1000 P1000 < <(wrk_once "http://127.0.0.1:$P5/")
      W rm -f ngx1000 >/dev/null
    fi
  fi
  t_rm=$(ms_of $cli rm -f "$name")
  printf '%-8s %6s %10s %8s %10s %12s %14s\n' "$eng" "$n" "$t_run" "$t_rm" "$rules" "$rss" "$ok"
}
FAILURES=()
for n in 0 100 1000; do ports_case W wharf "$n" "ports$n" busybox; done
echo "(rules with no container: $(nft_rules))"
if [ $HAVE_DOCKER -eq 1 ] && D image inspect busybox >/dev/null 2>&1; then
  # dockerd 20.10 starts one docker-proxy process per published port: 1000 is left out on purpose.
  for n in 0 100; do DOCKER_CTRS+=("$TAG-ports$n"); ports_case D docker "$n" "$TAG-ports$n" busybox; done
fi
for f in "${FAILURES[@]}"; do echo "failed: $f"; done
if [ -n "${R1000:-}" ]; then
  awk -v r="$R1000" -v p="$P1000" -v b="${MED[wharf_p_lo]}" 'BEGIN{printf "wharf -p 127.0.0.1 with 1000 other ports published: %.0f req/s (%.0f%% of the run above), p99 %.2f ms\n", r, 100*r/b, p}'
fi

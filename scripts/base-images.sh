#!/usr/bin/env bash
# base-images.sh — make Wharf's base images on a machine that has no registry, and load them into the
# daemon that DOCKER_HOST names (the `docker` CLI when present, else bin/wharf).
#
#   busybox:latest        Debian's busybox-static: /bin/busybox + one symlink per applet, CMD ["sh"]
#   debian:bookworm-slim  debootstrap --variant=minbase bookworm from this machine's Debian mirror, CMD ["bash"]
#   nginx:latest          debian + Debian's nginx, set up like the official image (port 80, logs to stdout/stderr,
#                         /usr/share/nginx/html, STOPSIGNAL SIGQUIT, CMD ["nginx","-g","daemon off;"])
#
# Rootfs tarballs are cached in ${WHARF_IMAGE_CACHE:-/var/cache/wharf/base-images} between runs; an image that
# the daemon already has is not loaded again (use --force to rebuild and reload).
#
# Usage: scripts/base-images.sh [--only busybox|debian|nginx[,…]] [--force] [--no-load]
set -euo pipefail

readonly PATH_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
readonly SUITE=bookworm
CACHE=${WHARF_IMAGE_CACHE:-/var/cache/wharf/base-images}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPT_DIR")

ONLY="busybox,debian,nginx"
FORCE=0
LOAD=1

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'base-images: error: %s\n' "$*" >&2; exit 1; }

usage() {
	sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case "$1" in
	--only) [ $# -ge 2 ] || die "--only needs a value (busybox, debian, nginx)"; ONLY=$2; shift 2 ;;
	--only=*) ONLY=${1#--only=}; shift ;;
	--force) FORCE=1; shift ;;
	--no-load) LOAD=0; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }
for w in ${ONLY//,/ }; do
	case "$w" in busybox | debian | nginx) ;; *) die "unknown image '$w' for --only (busybox, debian, nginx)" ;; esac
done

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot and file ownership in the rootfs need it)"

# --- the CLI that loads images --------------------------------------------------------------------------------
CLI=()
pick_cli() {
	if command -v docker >/dev/null 2>&1; then
		CLI=(docker)
	elif [ -x "$REPO_DIR/bin/wharf" ]; then
		CLI=("$REPO_DIR/bin/wharf")
	elif command -v wharf >/dev/null 2>&1; then
		CLI=(wharf)
	else
		die "neither 'docker' nor bin/wharf found: build wharf first (go build -o bin/wharf ./cmd/wharf)"
	fi
}

# --- packages -------------------------------------------------------------------------------------------------
APT_UPDATED=0
ensure_pkg() { # ensure_pkg <command-or-file> <package>
	local probe=$1 pkg=$2
	if [ -e "$probe" ] || command -v "$probe" >/dev/null 2>&1; then return 0; fi
	log "installing $pkg (apt-get)"
	if [ $APT_UPDATED -eq 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
}

# --- the machine's Debian mirror ------------------------------------------------------------------------------
# Prints "<uri> <suite>" lines for every deb entry configured on this machine (one-line and deb822 formats).
apt_entries() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } print $i, $(i+1) }' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
			function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no") { n = split(uris, u, " "); m = split(suites, s, " "); for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j] } types = ""; uris = ""; suites = ""; enabled = "" }
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			{ key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, ""); val = $0
			  if (key == "types") types = val; else if (key == "uris") uris = val; else if (key == "suites") suites = val; else if (key == "enabled") enabled = tolower(val) }
			END { flush() }' "$f"
	done
}
MIRROR=""
SECURITY_MIRROR=""
find_mirror() {
	local entries
	entries=$(apt_entries)
	MIRROR=$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$entries")
	[ -n "$MIRROR" ] || MIRROR=$(awk '$2 !~ /-security$/ && $1 ~ /debian\/?$/ { print $1; exit }' <<<"$entries")
	[ -n "$MIRROR" ] || die "no Debian mirror for '$SUITE' found in /etc/apt/sources.list or /etc/apt/sources.list.d/"
	SECURITY_MIRROR=$(awk -v s="$SUITE-security" '$2 == s { print $1; exit }' <<<"$entries")
	MIRROR=${MIRROR%/}
	SECURITY_MIRROR=${SECURITY_MIRROR%/}
}

# --- scratch space, cleaned up on exit ------------------------------------------------------------------------
WORK=""
MOUNTS=()
cleanup() {
	local i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		umount -l "${MOUNTS[$i]}" 2>/dev/null || true
	done
	MOUNTS=()
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		# Never follow into anything still mounted below WORK.
		if ! grep -q " $WORK/" /proc/self/mounts; then rm -rf "$WORK"; fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkwork() {
	mkdir -p "$CACHE"
	WORK=$(mktemp -d "$CACHE/.work.XXXXXX")
}

# pack_rootfs <dir> <cached tarball>: tar the rootfs with root ownership, atomically into the cache.
pack_rootfs() {
	local dir=$1 out=$2 tmp
	tmp=$(mktemp "$out.tmp.XXXXXX")
	tar --numeric-owner --xattrs -C "$dir" -cf "$tmp" .
	chmod 0644 "$tmp"
	sync -f "$tmp" 2>/dev/null || sync
	mv -f "$tmp" "$out"
	log "cached $(basename "$out") ($(du -h "$out" | cut -f1))"
}

# --- busybox --------------------------------------------------------------------------------------------------
build_busybox() { # build_busybox <out.tar>
	local out=$1 root bb applet
	ensure_pkg /bin/busybox busybox-static
	bb=/bin/busybox
	# Debian's busybox (dynamic) has fewer applets; insist on the static one, which is what the image needs anyway.
	if ! file -L "$bb" 2>/dev/null | grep -q 'statically linked' && ! ldd "$bb" 2>&1 | grep -q 'not a dynamic executable'; then
		die "$bb is not statically linked: apt-get install busybox-static"
	fi
	root="$WORK/busybox"
	mkdir -p "$root"/{bin,etc,root,tmp,home,var/spool/mail,var/www,usr/bin,usr/sbin,proc,sys,dev}
	chmod 1777 "$root/tmp"
	chmod 700 "$root/root"
	install -m 0755 "$bb" "$root/bin/busybox"
	while read -r applet; do
		if [ -z "$applet" ] || [ "$applet" = busybox ]; then continue; fi
		ln -sf busybox "$root/bin/$applet"
	done < <("$bb" --list)
	cat >"$root/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		nobody:x:65534:65534:nobody:/home:/bin/false
	EOF
	cat >"$root/etc/group" <<-'EOF'
		root:x:0:
		nobody:x:65534:
	EOF
	chmod 0644 "$root/etc/passwd" "$root/etc/group"
	pack_rootfs "$root" "$out"
	rm -rf "$root"
}

# --- debian:bookworm-slim -------------------------------------------------------------------------------------
# debootstrap_rootfs <dir>: a minbase bookworm, trimmed like the official slim image.
debootstrap_rootfs() {
	local root=$1
	ensure_pkg debootstrap debootstrap
	find_mirror
	log "debootstrap --variant=minbase $SUITE from $MIRROR (takes a few minutes)"
	if ! debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
		tail -n 30 "$WORK/debootstrap.log" >&2
		die "debootstrap failed (full log above, last 30 lines)"
	fi
	# debootstrap mounts /proc and /sys in the target; make sure nothing stays mounted.
	umount_below "$root"
	{
		echo "deb $MIRROR $SUITE main"
		echo "deb $MIRROR $SUITE-updates main"
		[ -z "$SECURITY_MIRROR" ] || echo "deb $SECURITY_MIRROR $SUITE-security main"
	} >"$root/etc/apt/sources.list"
	# Keep the image slim the way the official one does: no docs, man pages or translations in later installs.
	cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<-'EOF'
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/locale/*
		path-include /usr/share/locale/locale.alias
	EOF
	cat >"$root/etc/apt/apt.conf.d/docker-clean" <<-'EOF'
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
	EOF
	echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
	trim_rootfs "$root"
}

# trim_rootfs <dir>: what a container image must not carry.
trim_rootfs() {
	local root=$1
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
		"$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/* \
		"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
	# The engine provides these per container.
	rm -rf "${root:?}"/dev/* "${root:?}"/proc/* "${root:?}"/sys/* "${root:?}"/run/*
	: >"$root/etc/hostname"
	: >"$root/etc/resolv.conf"
	rm -f "$root/etc/machine-id"
	: >"$root/etc/machine-id"
}

umount_below() {
	local root=$1 m
	# Deepest first.
	while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done < <(awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
}

# --- nginx:latest ---------------------------------------------------------------------------------------------
# build_nginx <debian rootfs dir> <out.tar>
build_nginx() {
	local base=$1 out=$2 root
	root="$WORK/nginx"
	cp -a "$base" "$root"
	# A chroot that can install packages without starting services.
	cp -L /etc/resolv.conf "$root/etc/resolv.conf"
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 0755 "$root/usr/sbin/policy-rc.d"
	mount -t proc proc "$root/proc" && MOUNTS+=("$root/proc")
	mount --bind /dev "$root/dev" && MOUNTS+=("$root/dev")
	log "installing nginx into the rootfs (chroot apt-get)"
	if ! chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx ca-certificates' \
		>"$WORK/nginx-apt.log" 2>&1; then
		tail -n 30 "$WORK/nginx-apt.log" >&2
		die "apt-get install nginx in the chroot failed"
	fi
	# The official image runs workers as user nginx (uid/gid 101).
	chroot "$root" /usr/sbin/groupadd --system --gid 101 nginx
	chroot "$root" /usr/sbin/useradd --system --gid nginx --no-create-home --home /nonexistent \
		--comment "nginx user" --shell /bin/false --uid 101 nginx
	umount_below "$root"
	MOUNTS=()
	rm -f "$root/usr/sbin/policy-rc.d"

	# Configuration like the official image's.
	rm -rf "$root"/etc/nginx/sites-enabled "$root"/etc/nginx/sites-available "$root"/var/www/html
	mkdir -p "$root/etc/nginx/conf.d" "$root/usr/share/nginx/html" "$root/var/log/nginx" "$root/var/cache/nginx"
	cat >"$root/etc/nginx/nginx.conf" <<-'EOF'
		user  nginx;
		worker_processes  auto;

		error_log  /var/log/nginx/error.log notice;
		pid        /var/run/nginx.pid;

		include /etc/nginx/modules-enabled/*.conf;

		events {
		    worker_connections  1024;
		}

		http {
		    include       /etc/nginx/mime.types;
		    default_type  application/octet-stream;

		    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
		                      '$status $body_bytes_sent "$http_referer" '
		                      '"$http_user_agent" "$http_x_forwarded_for"';

		    access_log  /var/log/nginx/access.log  main;

		    sendfile        on;
		    #tcp_nopush     on;

		    keepalive_timeout  65;

		    #gzip  on;

		    include /etc/nginx/conf.d/*.conf;
		}
	EOF
	cat >"$root/etc/nginx/conf.d/default.conf" <<-'EOF'
		server {
		    listen       80;
		    server_name  localhost;

		    #access_log  /var/log/nginx/host.access.log  main;

		    location / {
		        root   /usr/share/nginx/html;
		        index  index.html index.htm;
		    }

		    #error_page  404              /404.html;

		    # redirect server error pages to the static page /50x.html
		    #
		    error_page   500 502 503 504  /50x.html;
		    location = /50x.html {
		        root   /usr/share/nginx/html;
		    }
		}
	EOF
	cat >"$root/usr/share/nginx/html/index.html" <<-'EOF'
		<!DOCTYPE html>
		<html>
		<head>
		<title>Welcome to nginx!</title>
		<style>
		html { color-scheme: light dark; }
		body { width: 35em; margin: 0 auto;
		font-family: Tahoma, Verdana, Arial, sans-serif; }
		</style>
		</head>
		<body>
		<h1>Welcome to nginx!</h1>
		<p>If you see this page, the nginx web server is successfully installed and
		working. Further configuration is required.</p>

		<p>For online documentation and support please refer to
		<a href="http://nginx.org/">nginx.org</a>.<br/>
		Commercial support is available at
		<a href="http://nginx.com/">nginx.com</a>.</p>

		<p><em>Thank you for using nginx.</em></p>
		</body>
		</html>
	EOF
	cat >"$root/usr/share/nginx/html/50x.html" <<-'EOF'
		<!DOCTYPE html>
		<html>
		<head>
		<title>Error</title>
		<style>
		html { color-scheme: light dark; }
		body { width: 35em; margin: 0 auto;
		font-family: Tahoma, Verdana, Arial, sans-serif; }
		</style>
		</head>
		<body>
		<h1>An error occurred.</h1>
		<p>Sorry, the page you are looking for is currently unavailable.<br/>
		Please try again later.</p>
		</body>
		</html>
	EOF
	chmod 0644 "$root"/usr/share/nginx/html/*.html "$root/etc/nginx/nginx.conf" "$root/etc/nginx/conf.d/default.conf"
	# Logs go to the container's stdout and stderr.
	rm -f "$root/var/log/nginx/"*
	ln -sf /dev/stdout "$root/var/log/nginx/access.log"
	ln -sf /dev/stderr "$root/var/log/nginx/error.log"
	[ -x "$root/usr/sbin/nginx" ] || die "nginx binary missing from the rootfs after install"
	trim_rootfs "$root"
	pack_rootfs "$root" "$out"
	rm -rf "$root"
}

# --- loading ---------------------------------------------------------------------------------------------------
# load_image <tarball> <name:tag> <change>...
load_image() {
	local tarball=$1 ref=$2 out
	shift 2
	local args=() c
	for c in "$@"; do args+=(--change "$c"); done
	log "loading $ref into ${DOCKER_HOST:-the default daemon} with ${CLI[*]}"
	if out=$("${CLI[@]}" import "${args[@]}" "$tarball" "$ref" 2>&1); then
		log "$ref is ${out}"
		return 0
	fi
	if ! grep -qi 'not a valid change command' <<<"$out"; then
		printf '%s\n' "$out" >&2
		die "importing $ref failed"
	fi
	# Older engines (dockerd before 23.0) reject some changes on import (STOPSIGNAL): import with the
	# ones every engine takes, then add the rest with a one-step build on top.
	local basic=() extra=() kw tmp
	for c in "$@"; do
		kw=$(tr '[:lower:]' '[:upper:]' <<<"${c%% *}")
		case "$kw" in
		CMD | ENTRYPOINT | ENV | EXPOSE | LABEL | ONBUILD | USER | VOLUME | WORKDIR) basic+=(--change "$c") ;;
		*) extra+=("$c") ;;
		esac
	done
	tmp="wharf-base-import/${ref%%:*}:tmp"
	log "this engine rejects some import changes; importing as $tmp, then adding: ${extra[*]}"
	"${CLI[@]}" import "${basic[@]}" "$tarball" "$tmp" >/dev/null
	{
		echo "FROM $tmp"
		for c in "${extra[@]}"; do echo "$c"; done
	} | DOCKER_BUILDKIT=0 "${CLI[@]}" build -q -t "$ref" - 2>/dev/null >"$WORK/build.out" || {
		"${CLI[@]}" rmi "$tmp" >/dev/null 2>&1 || true
		die "building $ref on top of $tmp failed"
	}
	"${CLI[@]}" rmi "$tmp" >/dev/null
	log "$ref is $(tr -d '\n' <"$WORK/build.out")"
}

have_image() { "${CLI[@]}" image inspect --format '{{.Id}}' "$1" >/dev/null 2>&1; }

# make_image <short> <name:tag> <cache file> <builder> <changes...>
make_image() {
	local short=$1 ref=$2 cached=$3 builder=$4
	shift 4
	if [ $LOAD -eq 1 ] && [ $FORCE -eq 0 ] && [ -f "$cached" ] && have_image "$ref"; then
		log "$ref: already loaded (cache: $cached); --force rebuilds"
		return 0
	fi
	if [ $FORCE -eq 1 ] || [ ! -s "$cached" ]; then
		log "$ref: building rootfs"
		"$builder" "$cached"
	else
		log "$ref: using cached rootfs $cached"
	fi
	if [ $LOAD -eq 1 ]; then load_image "$cached" "$ref" "$@"; fi
	log "$short: ready"
}

# Builders take the output path only; debian and nginx share one debootstrap per run.
DEBIAN_ROOT=""
debian_root() {
	if [ -z "$DEBIAN_ROOT" ]; then
		DEBIAN_ROOT="$WORK/debian"
		debootstrap_rootfs "$DEBIAN_ROOT"
	fi
}
build_debian_tar() {
	debian_root
	pack_rootfs "$DEBIAN_ROOT" "$1"
}
build_nginx_tar() {
	if [ -z "$DEBIAN_ROOT" ] && [ -s "$CACHE/debian-bookworm-slim.tar" ] && [ $FORCE -eq 0 ]; then
		DEBIAN_ROOT="$WORK/debian"
		mkdir -p "$DEBIAN_ROOT"
		tar --numeric-owner --xattrs -C "$DEBIAN_ROOT" -xf "$CACHE/debian-bookworm-slim.tar"
	fi
	debian_root
	build_nginx "$DEBIAN_ROOT" "$1"
}

main() {
	[ $LOAD -eq 0 ] || pick_cli
	mkwork
	log "cache: $CACHE"
	if want busybox; then
		make_image busybox busybox:latest "$CACHE/busybox.tar" build_busybox \
			'CMD ["sh"]' "ENV $PATH_ENV"
	fi
	if want debian; then
		make_image debian debian:bookworm-slim "$CACHE/debian-bookworm-slim.tar" build_debian_tar \
			'CMD ["bash"]' "ENV $PATH_ENV"
	fi
	if want nginx; then
		make_image nginx nginx:latest "$CACHE/nginx.tar" build_nginx_tar \
			'CMD ["nginx","-g","daemon off;"]' 'EXPOSE 80' 'STOPSIGNAL SIGQUIT' "ENV $PATH_ENV"
	fi
	log "done"
}

main

#!/usr/bin/env bash
# Installs the Debian packages Wharf and its tests need (idempotent, non-interactive; run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(gcc libc6-dev make git iproute2 procps busybox-static debootstrap crun curl ca-certificates podman skopeo docker-registry wrk)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

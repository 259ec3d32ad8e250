#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance suite against `wharf registry` on a loopback port.
# Usage: scripts/registry-conformance.sh [OCI_VERSION (1.0|1.1|dev), default 1.1]
# Env: WHARF_BIN (default: build one), CONFORMANCE_BIN (default: go install the pinned suite),
#      OCI_RESULTS_DIR (default: a temp dir; junit.xml + report.html land there).
# Prints the pass/fail/skip counts; exits non-zero when the suite reports failures.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-1.1}
suite_version=v0.0.0-20260831232431-97274622c111
work=$(mktemp -d /tmp/wharf-conformance.XXXXXX)
pid=""
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

bin=${WHARF_BIN:-}
if [[ -z $bin ]]; then
	bin=$work/wharf
	go build -tags "netgo osusergo" -o "$bin" ./cmd/wharf
fi
conf=${CONFORMANCE_BIN:-}
if [[ -z $conf ]]; then
	GOBIN=$work go install "github.com/opencontainers/distribution-spec/conformance@$suite_version"
	conf=$work/conformance
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" registry --addr "127.0.0.1:$port" --root "$work/data" >"$work/registry.log" 2>&1 &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

results=${OCI_RESULTS_DIR:-$work/results}
mkdir -p "$results"
set +e
OCI_REGISTRY=127.0.0.1:$port OCI_TLS=disabled OCI_REPO1=conformance/one OCI_REPO2=conformance/two \
	OCI_VERSION=$version OCI_RESULTS_DIR=$results "$conf" >"$work/conformance.log" 2>&1
rc=$?
set -e
tail -n 5 "$work/conformance.log"
junit=$(ls "$results"/*.xml 2>/dev/null | head -1)
if [[ -n $junit ]]; then
	python3 - "$junit" "$version" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ts = root if root.tag == "testsuite" else root.find("testsuite")
n, f, s, d = (int(ts.get(k, 0)) for k in ("tests", "failures", "skipped", "disabled"))
print(f"conformance (OCI_VERSION={sys.argv[2] if len(sys.argv) > 2 else '?'}): {n - f - s - d} passed, {f} failed, {s} skipped, {d} disabled of {n}")
PY
fi
echo "log: $work/conformance.log, results: $results"
exit $rc

#!/usr/bin/env bash
# Conformance gate: every mode's row of Table 1-1 (and the NAT and DHCP behaviour suites)
# on the in-memory backend, and, when root, live on AF_XDP with real Linux stacks.
# Exits non-zero on any mismatch. The JSON verdicts land in target/conformance/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VNET_BENCH:-target/debug/vnet-bench}
[[ -x $BIN ]] || cargo build -q -p vnet-bench
mkdir -p target/conformance
echo "== conformance, mem backend"
"$BIN" conformance --mode all --backend mem --json target/conformance/mem.json | sed -n '1,/^PASS\|^FAIL/p' | grep -v '^PASS\|^FAIL'
if [[ $(id -u) -eq 0 ]]; then
  echo "== conformance, xdp backend (live namespaces)"
  "$BIN" conformance --mode all --backend xdp --json target/conformance/xdp.json | grep -E '^\||verdict|^FAIL'
  echo "== conformance, xdp backend with the XDP fast path (run --offload xdp; GRO on at the endpoints)"
  "$BIN" conformance --mode all --backend xdp --dut vnet-offload --json target/conformance/xdp-offload.json \
    2>&1 | tee target/conformance/xdp-offload.log | grep -E 'verdict|^FAIL|fast path carried'
  # Not a second run of the core: in every mode the fast path must have carried frames.
  carried=$(grep -cE 'fast path carried [1-9][0-9]* frames' target/conformance/xdp-offload.log || true)
  if [[ $carried -ne 5 ]]; then
    echo "the fast path carried frames in $carried of 5 modes" >&2
    exit 1
  fi
elif [[ -n ${VNET_REQUIRE_PRIVILEGED:-} ]]; then
  echo "the live conformance needs root, and VNET_REQUIRE_PRIVILEGED is set" >&2
  exit 1
else
  echo "skipped: the live conformance backend needs root"
fi

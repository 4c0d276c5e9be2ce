#!/usr/bin/env bash
# The project's test command (the README's second command; .ci/run calls it).
# Privileged tests (namespaces, AF_XDP) skip when not root, unless
# VNET_REQUIRE_PRIVILEGED=1 is set, which turns every skip into a failure (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/bootstrap.sh

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
if [[ $(id -u) -eq 0 ]]; then
  echo "== QEMU guest image (target/guest; rebuilt only when its inputs change)"
  bash ci/guest/build.sh
fi
echo "== tests"
# One test at a time: the live tests run busy-polling dataplanes on a 2-core machine.
cargo test --workspace --locked -- --test-threads=1
echo "== fuzz (bounded)"
# Every cargo-fuzz target of fuzz/ for 10 s, after replaying the inputs of fixed bugs.
bash ci/fuzz.sh 10
echo "== conformance gate (mem and live backends)"
bash ci/conformance.sh
echo "== latency logs read by HdrHistogram's own implementation (hdrh)"
bash ci/hlog-interop.sh
echo "== main job smoke test (the README's first command, debug build)"
if [[ $(id -u) -eq 0 ]]; then
  target/debug/vnet-bench --mode nat --backend xdp
fi
target/debug/vnet-bench --mode internal --backend mem

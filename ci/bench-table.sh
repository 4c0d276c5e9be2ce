#!/usr/bin/env bash
# The five-mode table: `vnet-bench bench` for every mode at 64 and 1518 bytes (the
# mode's default direction: guest->guest on the switched modes, guest->inet through the
# NAT on the NAT modes), plus NAT's inet->guest (forwarded port) and both-ways at 64
# bytes, vnet, the kernel and testpmd alternating in each run; then the table.
#
#   bash ci/bench-table.sh OUT [TRIAL_S] [ROUNDS]     (as root; defaults 1 s, 1 round)
#
# Every run keeps its results under OUT/MODE-DIRECTION-SIZE/; `vnet-bench report OUT`
# prints the table again, `vnet-bench compare OLD_OUT NEW_OUT` compares two of them.
set -euo pipefail
OUT=${1:?usage: bash ci/bench-table.sh OUT [TRIAL_S] [ROUNDS]}
TRIAL=${2:-1}
ROUNDS=${3:-1}
cd "$(dirname "$0")/.."
BIN=${VNET_BENCH:-target/release/vnet-bench}
[[ -x $BIN ]] || cargo build --release --locked -p vnet-bench
runs=()
for mode in host-only internal bridged nat nat-network; do
  for size in 64 1518; do runs+=("--mode $mode --frame-size $size"); done
done
runs+=("--mode nat --direction inet-to-guest --frame-size 64")
runs+=("--mode nat --direction both --frame-size 64")
for r in "${runs[@]}"; do
  echo "== vnet-bench bench $r"
  # shellcheck disable=SC2086
  "$BIN" bench $r --dut all --trial "$TRIAL" --rounds "$ROUNDS" --out "$OUT" 2>&1 \
    | grep -v ' trial [0-9]*: ' || echo "(run failed: $r)"
done
"$BIN" report "$OUT"

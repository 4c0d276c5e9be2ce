#!/usr/bin/env bash
# 64-byte frame forwarding rate (Mpps) between two veth ports, in one run, side by side:
#   ceiling : generator -> sink over one veth pair (no DUT)
#   vnet    : vnet-bench run --mode MODE (internal or bridged) between the two ports
#   bridge  : the Linux bridge doing the same job on the same namespaces
# Generator: dpdk-testpmd txonly on a net_af_xdp vdev (Debian dpdk-dev, librte-net-af-xdp23),
# pinned to core 0; the DUT is pinned to core 1; the sink is the kernel (rx counter of the
# sink's veth). Usage: ci/l2-mpps-compare.sh [MODE] [SECONDS] [REPEATS]   (root)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-internal}
SECS=${2:-10}
REPEATS=${3:-3}
P=l2c$$
BIN=target/release/vnet-bench
cargo build --release -q -p vnet-bench
command -v dpdk-testpmd >/dev/null || { echo "needs dpdk-testpmd: apt-get install dpdk-dev librte-net-af-xdp23" >&2; exit 1; }
cleanup() {
  pkill -INT -f "$BIN run --mode $MODE --vm ${P}" 2>/dev/null || true
  pkill -INT -f "dpdk-testpmd.*${P}" 2>/dev/null || true
  sleep 1
  for n in $(ip netns list | awk '{print $1}' | grep "^${P}-" || true); do ip netns del "$n"; done
}
trap cleanup EXIT INT TERM

for n in gen sink dp; do ip netns add $P-$n; ip -n $P-$n link set lo up; done
ip link add ${P}g netns $P-gen type veth peer name ${P}d0 netns $P-dp
ip link add ${P}s netns $P-sink type veth peer name ${P}d1 netns $P-dp
for x in gen:${P}g sink:${P}s dp:${P}d0 dp:${P}d1; do ip -n $P-${x%%:*} link set ${x##*:} up; done
# The same NAPI settings vnet applies to its ports, for every configuration.
napi() { ip netns exec $1 sh -c "echo 2 > /sys/class/net/$2/napi_defer_hard_irqs; echo 200000 > /sys/class/net/$2/gro_flush_timeout" 2>/dev/null || true; }

rx() { ip netns exec $P-sink cat /sys/class/net/${P}s/statistics/rx_packets; }
gen_start() {
  ip netns exec $P-gen dpdk-testpmd --no-huge -m 1024 --no-shconf --no-pci --file-prefix ${P} -l 0,1 --main-lcore 1 \
    --vdev net_af_xdp0,iface=${P}g -- --forward-mode=txonly --txpkts=64 --stats-period 1 \
    >/tmp/$P-gen.log 2>&1 </dev/null &
  sleep 3
}
gen_stop() { pkill -INT -f "dpdk-testpmd.*${P}" || true; sleep 1; }
measure() { # Mpps seen by the sink over SECS
  local a b; a=$(rx); sleep "$SECS"; b=$(rx)
  python3 -c "print('%.3f' % (($b-$a)/$SECS/1e6))"
}

declare -A R
for round in $(seq "$REPEATS"); do
  # ceiling: move the sink's veth peer straight to the generator's? Use a direct pair.
  ip link add ${P}cg netns $P-gen type veth peer name ${P}cs netns $P-sink
  ip -n $P-gen link set ${P}cg up; ip -n $P-sink link set ${P}cs up
  ip netns exec $P-gen dpdk-testpmd --no-huge -m 1024 --no-shconf --no-pci --file-prefix ${P}c -l 0,1 --main-lcore 1 \
    --vdev net_af_xdp0,iface=${P}cg -- --forward-mode=txonly --txpkts=64 --stats-period 1 >/tmp/$P-genc.log 2>&1 </dev/null &
  sleep 3
  a=$(ip netns exec $P-sink cat /sys/class/net/${P}cs/statistics/rx_packets); sleep "$SECS"
  b=$(ip netns exec $P-sink cat /sys/class/net/${P}cs/statistics/rx_packets)
  R[ceiling]+="$(python3 -c "print('%.3f' % (($b-$a)/$SECS/1e6))") "
  pkill -INT -f "dpdk-testpmd.*${P}c" || true; sleep 1
  ip -n $P-gen link del ${P}cg

  # vnet
  if [[ $MODE == bridged ]]; then ARGS=(--vm ${P}d0 --uplink ${P}d1); else ARGS=(--vm ${P}d0 --vm ${P}d1); fi
  ip netns exec $P-dp "$BIN" run --mode "$MODE" "${ARGS[@]}" --cores 1 --stats-interval 0 >/tmp/$P-vnet.log 2>&1 &
  sleep 2
  gen_start; R[vnet]+="$(measure) "; gen_stop
  pkill -INT -f "$BIN run --mode $MODE --vm ${P}" || true; sleep 1

  # Linux bridge
  ip -n $P-dp link add br0 type bridge
  ip -n $P-dp link set ${P}d0 master br0; ip -n $P-dp link set ${P}d1 master br0; ip -n $P-dp link set br0 up
  napi $P-dp ${P}d0; napi $P-dp ${P}d1
  gen_start; R[bridge]+="$(measure) "; gen_stop
  ip -n $P-dp link del br0
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf "%-10s %-26s %s\n" "path" "Mpps per run (64 B)" "median"
for k in ceiling vnet bridge; do printf "%-10s %-26s %s\n" "$k" "${R[$k]}" "$(echo ${R[$k]} | median)"; done
v=$(echo ${R[vnet]} | median); b=$(echo ${R[bridge]} | median)
python3 -c "print('vnet / bridge = %.2f' % ($v/$b if $b else float('nan')))"

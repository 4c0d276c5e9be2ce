#!/usr/bin/env bash
# 64-byte UDP frame forwarding rate (Mpps) through one mode, in one run, side by side:
#   ceiling : generator -> sink over one veth pair (no DUT)
#   vnet    : `vnet-bench run --mode MODE` between the two ports (pinned to core 1)
#   kernel  : the Linux kernel doing the same job on the same namespaces
#             (internal/bridged: a bridge; nat/nat-network: forwarding + nftables masquerade)
# Generator: dpdk-testpmd txonly on a net_af_xdp vdev (Debian dpdk-dev, librte-net-af-xdp23;
# --no-pci so it never touches the machine's NIC), forwarding lcore 0; sink: the kernel's rx
# counter on the far veth. Same NAPI settings (napi_defer_hard_irqs=2,
# gro_flush_timeout=200000) for every path.
# Usage: ci/mpps-compare.sh [internal|bridged|nat|nat-network] [SECONDS] [REPEATS]   (root)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-internal}
SECS=${2:-10}
REPEATS=${3:-3}
P=mpc$$
BIN=target/release/vnet-bench
cargo build --release -q -p vnet-bench
command -v dpdk-testpmd >/dev/null || { echo "needs dpdk-testpmd: apt-get install dpdk-dev librte-net-af-xdp23" >&2; exit 1; }
cleanup() {
  pkill -INT -f "$BIN run --mode $MODE .*${P}" 2>/dev/null || true
  pkill -INT -f "dpdk-testpmd.*${P}" 2>/dev/null || true
  sleep 1
  for n in $(ip netns list | awk '{print $1}' | grep "^${P}-" || true); do ip netns del "$n"; done
}
trap cleanup EXIT INT TERM

for n in gen sink dp; do ip netns add $P-$n; ip -n $P-$n link set lo up; done
ip link add ${P}g netns $P-gen type veth peer name ${P}d0 netns $P-dp
ip link add ${P}s netns $P-sink type veth peer name ${P}d1 netns $P-dp
for x in gen:${P}g sink:${P}s dp:${P}d0 dp:${P}d1; do ip -n $P-${x%%:*} link set ${x##*:} up; done
napi() { ip netns exec $1 sh -c "echo 2 > /sys/class/net/$2/napi_defer_hard_irqs; echo 200000 > /sys/class/net/$2/gro_flush_timeout" 2>/dev/null || true; }
mac() { ip netns exec $1 cat /sys/class/net/$2/address; }

case $MODE in
  internal|bridged) TX_IP="198.18.0.11,198.18.0.12"; SINK_IP=198.18.0.12/24 ;;
  nat|nat-network)  TX_IP="10.0.2.15,198.18.0.1";   SINK_IP=198.18.0.1/24 ;;
  *) echo "mode must be internal, bridged, nat or nat-network" >&2; exit 2 ;;
esac
ip -n $P-sink addr add $SINK_IP dev ${P}s
# The sink drops the stream at ingress (nftables netdev hook), before the IP stack: its
# cost lands on whichever core delivers into it, so keep it small and equal for all paths.
sink_drop() {
  ip netns exec $P-sink nft -f - <<NFT
table netdev sink_$1 {
  chain in {
    type filter hook ingress device "$1" priority 0;
    udp dport 9 drop
  }
}
NFT
}
sink_drop ${P}s
rx() { ip netns exec $P-sink cat /sys/class/net/$1/statistics/rx_packets; }
gen() { # gen IFACE PEER_MAC PREFIX
  ip netns exec $P-gen dpdk-testpmd --no-huge -m 1024 --no-shconf --no-pci --file-prefix $3 -l 0,1 --main-lcore 1 \
    --vdev net_af_xdp0,iface=$1 -- --forward-mode=txonly --txpkts=64 --tx-ip=$TX_IP --tx-udp=40000,9 \
    --eth-peer=0,$2 --stats-period 1 >/tmp/$3.log 2>&1 </dev/null &
  sleep 3
}
measure() { # measure SINK_IF: Mpps over SECS
  local a b; a=$(rx $1); sleep "$SECS"; b=$(rx $1)
  python3 -c "print('%.3f' % (($b-$a)/$SECS/1e6))"
}
stop_gen() { pkill -INT -f "dpdk-testpmd.*$1" || true; sleep 1; }

declare -A R
for round in $(seq "$REPEATS"); do
  # ceiling: a direct pair generator -> sink.
  ip link add ${P}cg netns $P-gen type veth peer name ${P}cs netns $P-sink
  ip -n $P-gen link set ${P}cg up; ip -n $P-sink link set ${P}cs up; sink_drop ${P}cs
  gen ${P}cg "$(mac $P-sink ${P}cs)" ${P}c; R[ceiling]+="$(measure ${P}cs) "; stop_gen ${P}c
  ip -n $P-gen link del ${P}cg

  # vnet
  case $MODE in
    internal) ARGS=(--vm ${P}d0 --vm ${P}d1); PEER=$(mac $P-sink ${P}s) ;;
    bridged) ARGS=(--vm ${P}d0 --uplink ${P}d1); PEER=$(mac $P-sink ${P}s) ;;
    nat|nat-network) ARGS=(--vm ${P}d0 --uplink ${P}d1 --external-ip 198.18.0.2/24 --gateway 198.18.0.1 --control /tmp/$P.sock)
      if [[ $MODE == nat ]]; then PEER=02:76:6e:00:02:02; else PEER=02:76:6e:00:02:01; fi ;;
  esac
  ip netns exec $P-dp "$BIN" run --mode "$MODE" "${ARGS[@]}" --cores 1 --stats-interval 0 >/tmp/$P-vnet.log 2>&1 &
  sleep 2
  gen ${P}g $PEER ${P}v; R[vnet]+="$(measure ${P}s) "; stop_gen ${P}v
  pkill -INT -f "$BIN run --mode $MODE .*${P}" || true; sleep 1

  # kernel
  napi $P-dp ${P}d0; napi $P-dp ${P}d1
  if [[ $MODE == internal || $MODE == bridged ]]; then
    ip -n $P-dp link add br0 type bridge
    ip -n $P-dp link set ${P}d0 master br0; ip -n $P-dp link set ${P}d1 master br0; ip -n $P-dp link set br0 up
    gen ${P}g "$(mac $P-sink ${P}s)" ${P}k; R[kernel]+="$(measure ${P}s) "; stop_gen ${P}k
    ip -n $P-dp link del br0
  else
    ip -n $P-dp addr add 10.0.2.2/24 dev ${P}d0; ip -n $P-dp addr add 198.18.0.2/24 dev ${P}d1
    ip netns exec $P-dp sysctl -q -w net.ipv4.ip_forward=1
    ip netns exec $P-dp nft -f - <<NFT
table ip mpc {
  chain post {
    type nat hook postrouting priority 100;
    oifname "${P}d1" masquerade
  }
}
NFT
    gen ${P}g "$(mac $P-dp ${P}d0)" ${P}k; R[kernel]+="$(measure ${P}s) "; stop_gen ${P}k
    ip netns exec $P-dp nft delete table ip mpc
    ip -n $P-dp addr flush dev ${P}d0; ip -n $P-dp addr flush dev ${P}d1
  fi
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "mode $MODE, 64-byte UDP, ${SECS} s x ${REPEATS}"
printf "%-10s %-26s %s\n" "path" "Mpps per run" "median"
for k in ceiling vnet kernel; do printf "%-10s %-26s %s\n" "$k" "${R[$k]}" "$(echo ${R[$k]} | median)"; done
v=$(echo ${R[vnet]} | median); k=$(echo ${R[kernel]} | median)
python3 -c "print('vnet / kernel = %.2f' % ($v/$k if $k else float('nan')))"

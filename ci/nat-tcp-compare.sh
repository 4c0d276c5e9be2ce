#!/usr/bin/env bash
# TCP throughput (iperf3, guest -> inet) through three NATs on the same kind of topology,
# one after the other in one run: vnet-bench's NAT mode, the Linux kernel (routing +
# nftables masquerade), and slirp4netns (the user-mode NAT a user would pick instead).
# Usage: ci/nat-tcp-compare.sh [SECONDS] [REPEATS]   (root; builds release first)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
REPEATS=${2:-3}
P=ntc$$
BIN=target/release/vnet-bench
cargo build --release -q -p vnet-bench
cleanup() {
  pkill -INT -f "$BIN run --mode nat --vm ${P}" 2>/dev/null || true
  pkill -f "slirp4netns.*${P}" 2>/dev/null || true
  [[ -f /tmp/$P-iperf.pid ]] && kill "$(cat /tmp/$P-iperf.pid)" 2>/dev/null || true
  sleep 0.5
  for n in $(ip netns list | awk '{print $1}' | grep "^${P}-" || true); do ip netns del "$n"; done
}
trap cleanup EXIT INT TERM

mk() { # mk NS: namespace with lo up
  ip netns add "$1"; ip -n "$1" link set lo up
}
pair() { # pair NS_A IF_A NS_B IF_B
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
  ip netns exec "$3" ethtool -K "$4" tx off >/dev/null
  ip -n "$1" link set "$2" up; ip -n "$3" link set "$4" up
}
rate() { # rate NS ADDR: receiver Gbit/s of one iperf3 run
  ip netns exec "$1" iperf3 -c "$2" -t "$SECS" -J 2>/dev/null |
    python3 -c 'import json,sys
try: print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))
except Exception: print("fail")'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

mk $P-inet; mk $P-vm; mk $P-dp
pair $P-vm ${P}g $P-dp ${P}d0
pair $P-dp ${P}d1 $P-inet ${P}i
ip -n $P-inet addr add 198.18.0.1/24 dev ${P}i
ip netns exec $P-inet iperf3 -s -D -B 198.18.0.1 -I /tmp/$P-iperf.pid >/dev/null

declare -A RESULTS
for round in $(seq "$REPEATS"); do
  # 1. vnet-bench NAT (guest gets 10.0.2.15 statically here; default route via 10.0.2.2).
  ip -n $P-vm addr flush dev ${P}g; ip -n $P-vm addr add 10.0.2.15/24 dev ${P}g
  ip -n $P-vm route replace default via 10.0.2.2
  ip netns exec $P-dp "$BIN" run --mode nat --vm ${P}d0 --uplink ${P}d1 --external-ip 198.18.0.2/24 \
      --gateway 198.18.0.1 --cores 1 --stats-interval 0 --control /tmp/$P.sock >/tmp/$P-vnet.log 2>&1 &
  sleep 2
  RESULTS[vnet]+="$(rate $P-vm 198.18.0.1) "
  pkill -INT -f "$BIN run --mode nat --vm ${P}d0"; sleep 1

  # 2. Linux kernel: forwarding + nftables masquerade on the same namespaces.
  ip -n $P-dp addr add 10.0.2.2/24 dev ${P}d0; ip -n $P-dp addr add 198.18.0.2/24 dev ${P}d1
  ip netns exec $P-dp sysctl -q -w net.ipv4.ip_forward=1
  ip netns exec $P-dp nft -f - <<NFT
table ip vnetcmp {
  chain post {
    type nat hook postrouting priority 100;
    oifname "${P}d1" masquerade
  }
}
NFT
  RESULTS[kernel]+="$(rate $P-vm 198.18.0.1) "
  ip netns exec $P-dp nft delete table ip vnetcmp
  ip -n $P-dp addr flush dev ${P}d0; ip -n $P-dp addr flush dev ${P}d1

  # 3. slirp4netns: the guest namespace's tap is NATed by a user-mode stack whose sockets
  #    live in the dataplane namespace (which has the uplink address).
  mk $P-sg
  ip -n $P-dp addr add 198.18.0.2/24 dev ${P}d1
  ip netns exec $P-dp slirp4netns --configure --disable-host-loopback \
      --netns-type=path /var/run/netns/$P-sg tap0 >/tmp/$P-slirp.log 2>&1 &
  sleep 1.5
  RESULTS[slirp4netns]+="$(rate $P-sg 198.18.0.1) "
  pkill -f "slirp4netns.*$P-sg"; sleep 0.5
  ip netns del $P-sg; ip -n $P-dp addr flush dev ${P}d1
done

printf "%-12s %-28s %s\n" "NAT" "Gbit/s per run" "median"
for k in vnet kernel slirp4netns; do
  m=$(echo ${RESULTS[$k]} | tr ' ' '\n' | median)
  printf "%-12s %-28s %s\n" "$k" "${RESULTS[$k]}" "$m"
done

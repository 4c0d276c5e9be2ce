#!/usr/bin/env bash
# Round-trip time (ping) through vnet-bench and through the kernel doing the same job, on
# the same namespaces, alternating in each round: Internal (vm1 -> vm2 through vnet's
# Internal mode, then through a Linux bridge) or NAT (guest -> inet through vnet's NAT
# mode, then through forwarding + nftables masquerade).
#
# Usage: [VNET_ARGS='--napi fixed ...'] [VNET_BIN=PATH] bash ci/ping-compare.sh [internal|nat] [COUNT] [ROUNDS]
#   (root; builds the release binary first; iputils-ping, nft and ethtool from ci/bootstrap.sh)
#   COUNT pings per round and DUT (default 400), 5 ms apart, from the sending namespace
#   pinned to core 0; vnet runs with --cores 1 (its worker busy-polls core 1). Endpoints keep
#   veth's default offloads. VNET_ARGS are added to `vnet-bench run` (to try its settings);
#   VNET_BIN runs another vnet-bench binary instead of this tree's release build.
#
# Prints per round and DUT the median, p90, p99 and max RTT in microseconds (from ping's
# per-reply times), then the medians over rounds and vnet's ratio to the kernel. Fewer
# than 99 % of replies is a failure (exit 1). Everything runs in namespaces this script
# makes (pcPID-*), deleted at exit with the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-internal}
COUNT=${2:-400}
ROUNDS=${3:-3}
VNET_ARGS=${VNET_ARGS:-}
if [[ $MODE != internal && $MODE != nat ]] || ! [[ $COUNT =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: [VNET_ARGS=...] bash ci/ping-compare.sh [internal|nat] [COUNT] [ROUNDS] (positive integers)" >&2
  exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "ping-compare: run as root (it makes network namespaces and binds AF_XDP sockets)" >&2
  exit 1
fi
missing=()
for tool in ping nft taskset python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "ping-compare: ${missing[*]} not found; 'bash ci/bootstrap.sh' installs them (Debian packages iputils-ping, nftables, util-linux, python3)" >&2
  exit 1
fi
if (($(nproc) < 2)); then
  echo "ping-compare: needs 2 cores (the pinger on core 0, vnet's worker on core 1)" >&2
  exit 1
fi

if [[ -n ${VNET_BIN:-} ]]; then
  BIN=$VNET_BIN # another build (e.g. an older release's binary) to compare
else
  BIN=target/release/vnet-bench
  cargo build --release -q -p vnet-bench
fi

P=pc$$
TMP=$(mktemp -d "/tmp/$P.XXXXXX")
NETNS=()
VPID=
cleanup() {
  if [[ -n $VPID ]]; then
    kill -TERM "$VPID" 2>/dev/null || true
    wait "$VPID" 2>/dev/null || true
  fi
  local ns
  for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mk() {
  ip netns add "$1"
  NETNS+=("$1")
  ip -n "$1" link set lo up
}
pair() { # pair NS_A IF_A NS_B IF_B
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

mk $P-a
mk $P-b
mk $P-dp
pair $P-a ${P}a $P-dp ${P}d0
pair $P-dp ${P}d1 $P-b ${P}b
if [[ $MODE == internal ]]; then
  ip -n $P-a addr add 192.168.70.1/24 dev ${P}a
  ip -n $P-b addr add 192.168.70.2/24 dev ${P}b
  TARGET=192.168.70.2
  VNET=(run --mode internal --vm ${P}d0 --vm ${P}d1)
  PEER="Linux bridge"
else
  ip -n $P-a addr add 10.0.2.15/24 dev ${P}a
  ip -n $P-a route add default via 10.0.2.2
  ip -n $P-b addr add 198.18.0.1/24 dev ${P}b
  TARGET=198.18.0.1
  VNET=(run --mode nat --vm ${P}d0 --uplink ${P}d1 --external-ip 198.18.0.2/24 --gateway 198.18.0.1)
  PEER="kernel NAT"
fi

kernel_up() {
  if [[ $MODE == internal ]]; then
    ip -n $P-dp link add br0 type bridge
    ip -n $P-dp link set ${P}d0 master br0
    ip -n $P-dp link set ${P}d1 master br0
    ip -n $P-dp link set br0 up
  else
    ip -n $P-dp addr add 10.0.2.2/24 dev ${P}d0
    ip -n $P-dp addr add 198.18.0.2/24 dev ${P}d1
    ip netns exec $P-dp sysctl -q -w net.ipv4.ip_forward=1
    ip netns exec $P-dp nft -f - <<NFT
table ip pingcmp {
  chain post { type nat hook postrouting priority 100; oifname "${P}d1" masquerade; }
}
NFT
  fi
}
kernel_down() {
  if [[ $MODE == internal ]]; then
    ip -n $P-dp link del br0
  else
    ip netns exec $P-dp nft delete table ip pingcmp
    ip netns exec $P-dp sysctl -q -w net.ipv4.ip_forward=0
    ip -n $P-dp addr flush dev ${P}d0
    ip -n $P-dp addr flush dev ${P}d1
  fi
}
flush_neigh() {
  local ns
  for ns in $P-a $P-b $P-dp; do ip -n "$ns" neigh flush all 2>/dev/null || true; done
}

# measure NAME: COUNT pings; appends "NAME p50 p90 p99 max replies" to $TMP/results.
measure() {
  flush_neigh
  # A warm-up ping resolves the neighbours (ARP) outside the measurement.
  ip netns exec $P-a ping -c 3 -i 0.05 -W 1 $TARGET >/dev/null 2>&1 || true
  taskset -c 0 ip netns exec $P-a ping -n -c "$COUNT" -i 0.005 -W 1 $TARGET >"$TMP/ping.out" 2>&1 || true
  python3 - "$1" "$COUNT" "$TMP/ping.out" >>"$TMP/results" <<'PY'
import re, sys
name, count, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rtts = sorted(float(m) * 1000 for m in re.findall(r"time=([0-9.]+) ms", open(path).read()))
def q(p):
    return rtts[min(len(rtts) - 1, int(p * len(rtts)))] if rtts else float("nan")
print(name, "%.0f %.0f %.0f %.0f %d" % (q(0.5), q(0.9), q(0.99), rtts[-1] if rtts else float("nan"), len(rtts)))
PY
  tail -n 1 "$TMP/results" | awk -v r="$round" '{printf "  round %d  %-13s p50 %5s us  p90 %5s us  p99 %5s us  max %5s us  (%s replies)\n", r, $1, $2, $3, $4, $5, $6}'
}

echo "ping-compare: $MODE, $COUNT pings 5 ms apart per round, $ROUNDS rounds; vnet-bench ${VNET[*]} --cores 1 $VNET_ARGS"
: >"$TMP/results"
for round in $(seq "$ROUNDS"); do
  : >"$TMP/vnet.log"
  # shellcheck disable=SC2086
  ip netns exec $P-dp "$BIN" "${VNET[@]}" --cores 1 --stats-interval 0 $VNET_ARGS >"$TMP/vnet.log" 2>&1 &
  VPID=$!
  for ((i = 0; i < 200; i++)); do
    grep -qs 'Ctrl-C to stop' "$TMP/vnet.log" && break
    kill -0 "$VPID" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -qs 'Ctrl-C to stop' "$TMP/vnet.log"; then
    echo "ping-compare: vnet-bench run did not start; the end of its output:" >&2
    tail -n 5 "$TMP/vnet.log" >&2
    exit 1
  fi
  ((round == 1)) && grep -m1 '^port 0' "$TMP/vnet.log" | sed 's/^/  vnet /'
  measure vnet
  kill -TERM "$VPID"
  wait "$VPID" 2>/dev/null || true
  VPID=
  kernel_up
  measure kernel
  kernel_down
done

python3 - "$TMP/results" "$COUNT" "$PEER" <<'PY'
import statistics, sys
path, count, peer = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
for line in open(path):
    name, *vals = line.split()
    rows.setdefault(name, []).append([float(v) for v in vals])
med = {k: [statistics.median(col) for col in zip(*v)] for k, v in rows.items()}
print()
print("%-14s %8s %8s %8s %8s   (medians over rounds, us)" % ("dut", "p50", "p90", "p99", "max"))
for k, label in (("vnet", "vnet"), ("kernel", peer)):
    print("%-14s %8.0f %8.0f %8.0f %8.0f" % (label, *med[k][:4]))
print("%-14s %7.2fx %7.2fx %7.2fx" % ("vnet / kernel", *(a / b for a, b in zip(med["vnet"][:3], med["kernel"][:3]))))
short = [(k, int(v[4])) for k, vs in rows.items() for v in vs if v[4] < 0.99 * count]
if short:
    print("ping-compare: too few replies: %s" % ", ".join("%s %d of %d" % (k, n, count) for k, n in short), file=sys.stderr)
    sys.exit(1)
PY

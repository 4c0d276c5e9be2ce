#!/usr/bin/env bash
# TCP throughput (iperf3, guest -> inet) through three NATs on the same kind of topology,
# one after the other in each round: vnet-bench's NAT mode, the Linux kernel (routing +
# nftables masquerade), and slirp4netns (the user-mode NAT a user would pick instead).
#
# Usage: [OFFLOADS=on|off] bash ci/nat-tcp-compare.sh [SECONDS] [REPEATS]
#   (root; builds the release binary first; slirp4netns, iperf3 and nft from ci/bootstrap.sh)
#   OFFLOADS=on   (default) every veth keeps its defaults (transmit checksum offload and
#                 TSO on), as users' endpoints have them
#   OFFLOADS=off  `ethtool -K IF tx off` on every veth: full checksums on the wire
#
# Prints each run as it ends, then one line per NAT: every run's Gbit/s side by side and
# the median. A run that does not complete (the NAT does not start, no connection within
# 3 s, a transfer that stalls, no result within SECONDS + 15 s) is `fail`, with its reason;
# the script then exits 1. Everything runs in namespaces this script makes (ntcPID-*),
# which it deletes at exit along with the processes it started; the machine's own
# interfaces are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
REPEATS=${2:-3}
OFFLOADS=${OFFLOADS:-on}
if ! [[ $SECS =~ ^[1-9][0-9]*$ && $REPEATS =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: [OFFLOADS=on|off] bash ci/nat-tcp-compare.sh [SECONDS] [REPEATS] (positive integers)" >&2
  exit 2
fi
if [[ $OFFLOADS != on && $OFFLOADS != off ]]; then
  echo "nat-tcp-compare: OFFLOADS must be on (veth defaults) or off (tx checksum offload off), not '$OFFLOADS'" >&2
  exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "nat-tcp-compare: run as root (it makes network namespaces and binds AF_XDP sockets)" >&2
  exit 1
fi
missing=()
for tool in iperf3 nft ethtool slirp4netns ss timeout ps python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "nat-tcp-compare: ${missing[*]} not found; 'bash ci/bootstrap.sh' installs them (Debian packages iperf3, nftables, ethtool, slirp4netns, iproute2, coreutils, procps, python3)" >&2
  exit 1
fi

BIN=target/release/vnet-bench
cargo build --release -q -p vnet-bench

P=ntc$$
TMP=$(mktemp -d "/tmp/$P.XXXXXX")
NETNS=() # namespaces this script made
PIDS=()  # background processes this script started and has not stopped yet

alive() { # alive PID: running (not gone, not a zombie)
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $st != *Z* ]]
}
stop_pid() { # stop_pid PID SIGNAL: send SIGNAL, wait up to 5 s, then SIGKILL; reap it
  local pid=$1 sig=$2 i
  if alive "$pid"; then
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
cleanup() {
  local pid ns
  # SIGTERM: vnet-bench run detaches XDP and restores interface settings on it (as on
  # SIGINT, which background processes of a script may have ignored).
  for pid in "${PIDS[@]}"; do stop_pid "$pid" TERM; done
  for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mk() { # mk NS: a namespace of our own with lo up
  ip netns add "$1"
  NETNS+=("$1")
  ip -n "$1" link set lo up
}
rmns() { # rmns NS: delete one of our namespaces before the end
  local keep=() n
  ip netns del "$1"
  for n in "${NETNS[@]}"; do [[ $n == "$1" ]] || keep+=("$n"); done
  NETNS=("${keep[@]}")
}
pair() { # pair NS_A IF_A NS_B IF_B: a veth pair made directly inside the two namespaces
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  if [[ $OFFLOADS == off ]]; then
    ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
    ip netns exec "$3" ethtool -K "$4" tx off >/dev/null
  fi
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}
offload_state() { # offload_state NS IF: "tx-csum on, tso on" (tso: the feature in force, not
  # ethtool's tcp-segmentation-offload summary, which still says on when tx off dropped it)
  ip netns exec "$1" ethtool -k "$2" |
    awk '$1 == "tx-checksumming:" {c = $2} $1 == "tx-tcp-segmentation:" {t = $2} END {printf "tx-csum %s, tso %s", c, t}'
}
flush_neigh() { # forget the MACs the previous NAT answered with
  local ns
  for ns in $P-vm $P-dp $P-inet; do ip -n "$ns" neigh flush all 2>/dev/null || true; done
}

# rate NS ADDR: one iperf3 run from NS to a fresh one-off server at ADDR; sets RESULT to
# the receiver's Gbit/s, or to `fail` and WHY to the reason.
RUN=0
RESULT=
WHY=
rate() {
  RUN=$((RUN + 1))
  local port=$((5300 + RUN)) spid cpid i
  ip netns exec $P-inet iperf3 -s -1 -B 198.18.0.1 -p "$port" >"$TMP/server.log" 2>&1 &
  spid=$!
  PIDS+=("$spid")
  for ((i = 0; i < 50; i++)); do
    [[ -n $(ip netns exec $P-inet ss -Hltn "sport = :$port") ]] && break
    sleep 0.1
  done
  # --connect-timeout: a NAT that drops the SYN fails in 3 s; --snd-timeout: unacknowledged
  # data for 5 s ends the test; timeout: a hard bound whatever happens. In the background
  # so that a signal to this script is handled at once (wait returns), not after the run.
  timeout -k 2 $((SECS + 15)) ip netns exec "$1" iperf3 -c "$2" -p "$port" -t "$SECS" -J \
    --connect-timeout 3000 --snd-timeout 5000 >"$TMP/client.json" 2>"$TMP/client.err" &
  cpid=$!
  PIDS+=("$cpid")
  wait "$cpid" || true
  stop_pid "$cpid" TERM
  stop_pid "$spid" TERM
  local out
  out=$(python3 - "$TMP/client.json" "$((SECS + 15))" <<'PY'
import json, sys
# One line: the receiver's Gbit/s of a completed run, else "fail<TAB>why".
path, limit = sys.argv[1], sys.argv[2]
try:
    result = json.load(open(path))
except (OSError, ValueError):
    print(f"fail\tiperf3 gave no result within {limit} s")
    sys.exit()
if "error" in result:
    print(f"fail\tiperf3: {result['error']}")
else:
    print("%.2f" % (result["end"]["sum_received"]["bits_per_second"] / 1e9))
PY
  )
  IFS=$'\t' read -r RESULT WHY <<<"$out"
  if [[ -z $RESULT ]]; then
    RESULT=fail
    WHY="iperf3's output could not be read"
  fi
}

declare -A RUNS=([vnet]="" [kernel]="" [slirp4netns]="")
FAILED=0
record() { # record NAT RESULT [WHY]
  RUNS[$1]+="$2 "
  if [[ $2 == fail ]]; then
    FAILED=$((FAILED + 1))
    printf "  round %d  %-12s fail: %s\n" "$round" "$1" "${3:-}"
  else
    printf "  round %d  %-12s %s\n" "$round" "$1" "$2"
  fi
}

mk $P-inet
mk $P-vm
mk $P-dp
pair $P-vm ${P}g $P-dp ${P}d0
pair $P-dp ${P}d1 $P-inet ${P}i
ip -n $P-inet addr add 198.18.0.1/24 dev ${P}i

echo "nat-tcp-compare: iperf3 TCP guest -> inet, ${SECS} s x ${REPEATS} per NAT, OFFLOADS=$OFFLOADS"
echo "  guest veth: $(offload_state $P-vm ${P}g); inet veth: $(offload_state $P-inet ${P}i)"

for round in $(seq "$REPEATS"); do
  # 1. vnet-bench NAT (guest at 10.0.2.15 statically here; default route via 10.0.2.2).
  ip -n $P-vm addr flush dev ${P}g
  ip -n $P-vm addr add 10.0.2.15/24 dev ${P}g
  ip -n $P-vm route replace default via 10.0.2.2
  flush_neigh
  # Emptied here, not only by the redirection in the child: the readiness check below
  # must never read the previous round's start line.
  : >"$TMP/vnet.log"
  ip netns exec $P-dp "$BIN" run --mode nat --vm ${P}d0 --uplink ${P}d1 --external-ip 198.18.0.2/24 \
    --gateway 198.18.0.1 --cores 1 --stats-interval 0 --control "$TMP/vnet.sock" >"$TMP/vnet.log" 2>&1 &
  vpid=$!
  PIDS+=("$vpid")
  for ((i = 0; i < 200; i++)); do
    grep -qs 'Ctrl-C to stop' "$TMP/vnet.log" && break
    alive "$vpid" || break
    sleep 0.1
  done
  if ! alive "$vpid"; then
    st=0
    wait "$vpid" || st=$?
    record vnet fail "vnet-bench run exited (status $st) before it was ready; the end of its output:"
    tail -n 5 "$TMP/vnet.log" | sed 's/^/      /'
  elif ! grep -qs 'Ctrl-C to stop' "$TMP/vnet.log"; then
    record vnet fail "vnet-bench run printed no start line within 20 s; the end of its output:"
    tail -n 5 "$TMP/vnet.log" | sed 's/^/      /'
  else
    sleep 0.5
    rate $P-vm 198.18.0.1
    record vnet "$RESULT" "$WHY"
  fi
  stop_pid "$vpid" TERM

  # 2. Linux kernel: forwarding + nftables masquerade on the same namespaces.
  flush_neigh
  ip -n $P-dp addr add 10.0.2.2/24 dev ${P}d0
  ip -n $P-dp addr add 198.18.0.2/24 dev ${P}d1
  ip netns exec $P-dp sysctl -q -w net.ipv4.ip_forward=1
  ip netns exec $P-dp nft -f - <<NFT
table ip vnetcmp {
  chain post {
    type nat hook postrouting priority 100;
    oifname "${P}d1" masquerade
  }
}
NFT
  rate $P-vm 198.18.0.1
  record kernel "$RESULT" "$WHY"
  ip netns exec $P-dp nft delete table ip vnetcmp
  ip netns exec $P-dp sysctl -q -w net.ipv4.ip_forward=0
  ip -n $P-dp addr flush dev ${P}d0
  ip -n $P-dp addr flush dev ${P}d1

  # 3. slirp4netns: a guest namespace's tap is NATed by a user-mode stack whose sockets
  #    live in the dataplane namespace (which has the uplink address).
  mk $P-sg
  flush_neigh
  ip -n $P-dp addr add 198.18.0.2/24 dev ${P}d1
  ip netns exec $P-dp slirp4netns --configure --disable-host-loopback \
    --netns-type=path /var/run/netns/$P-sg tap0 >"$TMP/slirp.log" 2>&1 &
  spid=$!
  PIDS+=("$spid")
  for ((i = 0; i < 50; i++)); do
    ip -n $P-sg route show default 2>/dev/null | grep -q via && break
    alive "$spid" || break
    sleep 0.1
  done
  if alive "$spid" && ip -n $P-sg route show default | grep -q via; then
    rate $P-sg 198.18.0.1
    record slirp4netns "$RESULT" "$WHY"
  else
    record slirp4netns fail "slirp4netns did not configure tap0; the end of its output:"
    tail -n 5 "$TMP/slirp.log" | sed 's/^/      /'

  fi
  stop_pid "$spid" TERM
  rmns $P-sg
  ip -n $P-dp addr flush dev ${P}d1
done

# One line per NAT: every run side by side, then the median of the runs that completed.
W=$((7 * REPEATS > 15 ? 7 * REPEATS : 15))
echo
printf "%-12s %-9s %-*s %s\n" "NAT" "offloads" $W "Gbit/s per run" "median Gbit/s"
for k in vnet kernel slirp4netns; do
  read -r -a runs <<<"${RUNS[$k]}"
  ok=()
  for r in "${runs[@]}"; do [[ $r == fail ]] || ok+=("$r"); done
  if ((${#ok[@]} == 0)); then
    m=fail
  else
    m=$(printf "%s\n" "${ok[@]}" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : sprintf("%.2f", (a[NR / 2] + a[NR / 2 + 1]) / 2)}')
    ((${#ok[@]} < ${#runs[@]})) && m="$m (${#ok[@]} of ${#runs[@]} ok)"
  fi
  printf "%-12s %-9s %-*s %s\n" "$k" "$OFFLOADS" $W "$(printf "%-7s" "${runs[@]}")" "$m"
done
if ((FAILED)); then
  echo "nat-tcp-compare: $FAILED run(s) failed (reasons in the round lines above)" >&2
  exit 1
fi

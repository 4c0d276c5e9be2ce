#!/usr/bin/env bash
# Hostile guests, live: one guest floods while two others measure their TCP throughput
# (iperf3), and `vnet-bench run`'s peak RSS is read before and after the flood.
#
# Usage: bash ci/flood-check.sh [internal|nat] [SECONDS]   (root; default internal, 20 s)
#   internal: vm1 floods; vm2 -> vm3 iperf3 through the switch. Three phases: broadcasts
#             with the default guard (--broadcast-rate 1000), the same without a limit
#             (--broadcast-rate 0), and a MAC flood (unicast to unknown addresses from
#             random sources: flooded, as any switch does, but the FDB stays bounded).
#   nat:      vm1 floods UDP from random ports to random ports of the Internet host (a
#             session flood); vm2 (its own NAT) -> the Internet host iperf3, and counts the
#             new connections it opens during the flood. Two phases: the default share per
#             guest, and a table without shares (what one guest can do to another).
# vnet runs with --cores 1; the flooder and iperf3 share core 0. The flooder is Python on a
# raw socket (a few hundred thousand frames a second). Prints, per phase, iperf3's Gbit/s,
# the frames flooded, vnet's VmRSS/VmHWM (KiB) before, during and after the flood, and
# vnet's final drop counters. Everything runs in namespaces this script makes (fcPID-*),
# deleted at exit with the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-internal}
SECS=${2:-20}
if [[ $MODE != internal && $MODE != nat ]] || ! [[ $SECS =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash ci/flood-check.sh [internal|nat] [SECONDS]" >&2
  exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "flood-check: run as root (it makes network namespaces and binds AF_XDP sockets)" >&2
  exit 1
fi
for tool in iperf3 python3 taskset; do
  command -v "$tool" >/dev/null || {
    echo "flood-check: $tool not found; 'bash ci/bootstrap.sh' installs it" >&2
    exit 1
  }
done
BIN=target/release/vnet-bench
cargo build --release -q -p vnet-bench

P=fc$$
TMP=$(mktemp -d "/tmp/$P.XXXXXX")
NETNS=()
PIDS=()
cleanup() {
  local p ns
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
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

cat >"$TMP/flood.py" <<'PY'
# flood.py IFNAME KIND SECONDS: KIND bcast (broadcasts from random sources), mac
# (unicast to random unknown addresses from random sources) or nat (UDP from 10.0.2.15,
# random ports, to 198.18.0.1 through the NAT's router MAC).
import os, random, socket, struct, sys, time
ifname, kind, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
own = bytes.fromhex(open(f"/sys/class/net/{ifname}/address").read().strip().replace(":", ""))
rnd = random.Random(1)
def mac():
    return bytes([rnd.randrange(256) & 0xFE | 2] + [rnd.randrange(256) for _ in range(5)])
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t & 0xFFFF) + (t >> 16)
    t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF
frames = []
# NAT: more distinct flows than a guest's share of sessions (16384).
for i in range(40000 if kind == "nat" else 4096):
    if kind in ("bcast", "mac"):
        dst = b"\xff" * 6 if kind == "bcast" else mac()
        frames.append(dst + mac() + b"\x08\x00" + bytes(46))
    else:
        udp = struct.pack("!HHHH", rnd.randrange(1024, 65535), rnd.randrange(1, 65535), 12, 0) + b"flood!"
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([10, 0, 2, 15]), bytes([198, 18, 0, 1]))
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        frames.append(bytes.fromhex("02766e000202") + own + b"\x08\x00" + ip + udp)
end = time.time() + secs
n = 0
while time.time() < end:
    for f in frames:
        try:
            s.send(f)
        except OSError:
            pass
    n += len(frames)
print(n)
PY

mk $P-dp
if [[ $MODE == internal ]]; then
  for i in 1 2 3; do
    mk $P-v$i
    pair $P-v$i ${P}v$i $P-dp ${P}d$i
    ip -n $P-v$i addr add 192.168.71.$i/24 dev ${P}v$i
  done
  VNET=(run --mode internal --vm ${P}d1 --vm ${P}d2 --vm ${P}d3)
  SERVER_NS=$P-v3
  SERVER=192.168.71.3
  CLIENT_NS=$P-v2
  PHASES=("bcast --broadcast-rate 1000" "bcast --broadcast-rate 0" "mac")
else
  for i in 1 2; do
    mk $P-v$i
    pair $P-v$i ${P}v$i $P-dp ${P}d$i
    ip -n $P-v$i addr add 10.0.2.15/24 dev ${P}v$i
    ip -n $P-v$i route add default via 10.0.2.2
  done
  mk $P-inet
  pair $P-dp ${P}u $P-inet ${P}i
  ip -n $P-inet addr add 198.18.0.1/24 dev ${P}i
  VNET=(run --mode nat --vm ${P}d1 --vm ${P}d2 --uplink ${P}u --external-ip 198.18.0.2/24 --gateway 198.18.0.1)
  SERVER_NS=$P-inet
  SERVER=198.18.0.1
  CLIENT_NS=$P-v2
  # Defaults (a guest's share: 16384 of 65536 sessions), then a table of 16384 with no
  # share (the share is the whole table): what a shared table without shares does.
  PHASES=("nat" "nat --nat-max-sessions 16384 --nat-sessions-per-guest 16384")
  # What vm2 opens connections to during the flood.
  ip netns exec $P-inet python3 -m http.server -b 198.18.0.1 8080 >/dev/null 2>&1 &
  PIDS+=("$!")
fi

mem() { # VmRSS and VmHWM of a pid, KiB
  awk '/^VmRSS|^VmHWM/ {printf "%s %s ", $1, $2}' "/proc/$1/status"
}
iperf() { # iperf3 client for SECONDS, prints Gbit/s
  ip netns exec $SERVER_NS taskset -c 0 iperf3 -s -1 >/dev/null 2>&1 &
  PIDS+=("$!")
  sleep 0.3
  ip netns exec $CLIENT_NS taskset -c 0 iperf3 -c $SERVER -t "$1" -J 2>/dev/null |
    python3 -c 'import json,sys
r = json.load(sys.stdin).get("end", {}).get("sum_received")
print("%.2f" % (r["bits_per_second"] / 1e9) if r else "no connection:")'
}

for phase_spec in "${PHASES[@]}"; do
  read -r KIND phase <<<"$phase_spec"
  # shellcheck disable=SC2086
  ip netns exec $P-dp "$BIN" "${VNET[@]}" --cores 1 --stats-interval 0 $phase >"$TMP/run.log" 2>&1 &
  VPID=$!
  PIDS+=("$VPID")
  for _ in $(seq 50); do
    grep -qs "Ctrl-C to stop" "$TMP/run.log" && break
    sleep 0.1
  done
  sleep 1
  echo "== $MODE: $KIND flood, ${phase:-default settings}"
  echo "before the flood: $(mem $VPID)"
  echo "iperf3 alone: $(iperf 5) Gbit/s"
  ip netns exec $P-v1 taskset -c 0 python3 "$TMP/flood.py" ${P}v1 $KIND "$SECS" >"$TMP/flooded" &
  FPID=$!
  PIDS+=("$FPID")
  sleep 1
  if [[ $MODE == nat ]]; then
    opened=0
    for _ in $(seq 20); do
      if ip netns exec $CLIENT_NS timeout 1 bash -c "exec 3<>/dev/tcp/$SERVER/8080" 2>/dev/null; then
        opened=$((opened + 1))
      fi
    done
    echo "vm2 opened $opened of 20 new TCP connections during the flood"
  fi
  echo "iperf3 during the flood: $(iperf $((SECS / 2 > 5 ? 5 : SECS / 2))) Gbit/s"
  echo "during the flood: $(mem $VPID)"
  wait $FPID || true
  echo "flooded $(cat "$TMP/flooded") frames in $SECS s"
  echo "after the flood: $(mem $VPID)"
  kill -INT $VPID
  wait $VPID || true
  sed -n '/final counters/,$p' "$TMP/run.log" | grep -v '^napi auto' | head -20 || true
done

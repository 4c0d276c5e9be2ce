#!/usr/bin/env bash
# Bulk TCP between two QEMU guests (virtio-net at QEMU's default offloads, TCG or KVM as
# the harness would pick; VNET_QEMU_ACCEL=tcg|kvm forces one), three pairs of guests on
# 192.168.60.0/24 (static addresses, as harness/tests/live_qemu.rs gives them in Internal):
#   vnet-taps           vm1, vm2 on taps in vnet-bench run --mode internal --offload off
#   vnet-vhost-user     vm3, vm4 on vhost-user sockets of the same vnet-bench run
#   linux-bridge        vm5, vm6 on taps joined by a Linux bridge (the kernel as the peer)
#   vnet-taps-fastpath  vm1, vm2 again, in a run with vnet's default XDP fast path (last)
# both ways (the pair's first guest sends; it receives, iperf3 -R), SECONDS per run,
# REPEATS rounds, the median. The first three paths are measured in turn within each
# round, so that whatever else loads the machine falls on all of them alike; during a
# measurement the other guests are stopped (SIGSTOP), and vnet too for the bridge's
# (its worker polls a core even when idle). Then vnet's final counters: csum_completed
# (partial checksums completed) and superframes/segments (TSO super-frames cut).
# Usage, as root after `cargo build --release` and `bash ci/guest/build.sh`:
#   bash ci/guest/vhost-bulk-compare.sh [SECONDS] [REPEATS]
# Builds its own namespace (prefix vqNNNN) with its taps and bridge, removes it and stops
# what it started (by pid: the guests before vnet, as QEMU 7.2 crashes when its vhost-user
# backend goes first) on exit, also on Ctrl-C.
set -euo pipefail
secs="${1:-5}"
reps="${2:-3}"
[[ "$secs" =~ ^[1-9][0-9]*$ && "$reps" =~ ^[1-9][0-9]*$ ]] || {
  echo "vhost-bulk-compare: usage: $0 [SECONDS] [REPEATS] (positive whole numbers)" >&2
  exit 2
}
root="$(cd "$(dirname "$0")/../.." && pwd)"
exe="$root/target/release/vnet-bench"
guest="${VNET_GUEST_DIR:-$root/target/guest}"
for need in "$exe" "$guest/vmlinuz" "$guest/initramfs.cpio.gz"; do
  [[ -e "$need" ]] || { echo "vhost-bulk-compare: $need is missing; run cargo build --release and bash ci/guest/build.sh" >&2; exit 1; }
done
for tool in qemu-system-x86_64 python3 ip bc; do
  command -v "$tool" >/dev/null || { echo "vhost-bulk-compare: $tool is missing; run ci/bootstrap.sh" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "vhost-bulk-compare: needs root (namespaces, taps, AF_XDP)" >&2; exit 1; }

p="vq$(($$ % 10000))"
dp="$p-dp"
dir="$(mktemp -d)"
qemu_pid=("" "" "" "" "" "" "") # by guest number, 1..6
vnet_pid=""
vnet_log=""
stop_guests() { # N...: killed (as the harness does), so that no QEMU waits for its backend
  local i
  for i in "$@"; do
    if [[ -n "${qemu_pid[i]}" ]]; then kill -KILL "${qemu_pid[i]}" 2>/dev/null || true; fi
  done
  for i in "$@"; do
    if [[ -n "${qemu_pid[i]}" ]]; then wait "${qemu_pid[i]}" 2>/dev/null || true; fi
    qemu_pid[i]=""
  done
}
cleanup() {
  # vnet may be stopped (the bridge's turn): it runs again first; then the guests before
  # it, as QEMU 7.2 segfaults when its vhost-user backend goes away under it.
  if [[ -n "$vnet_pid" ]]; then kill -CONT "$vnet_pid" 2>/dev/null || true; fi
  stop_guests 1 2 3 4 5 6
  if [[ -n "$vnet_pid" ]]; then
    kill "$vnet_pid" 2>/dev/null || true
    wait "$vnet_pid" 2>/dev/null || true
  fi
  ip netns del "$dp" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$dp"
ip -n "$dp" link set lo up
ip -n "$dp" link add br0 type bridge
ip netns exec "$dp" sysctl -q -w net.ipv6.conf.br0.disable_ipv6=1
for i in 1 2 5 6; do
  ip -n "$dp" tuntap add mode tap name "${p}t$i"
  ip netns exec "$dp" sysctl -q -w "net.ipv6.conf.${p}t$i.disable_ipv6=1"
  ip -n "$dp" link set "${p}t$i" up
done
ip -n "$dp" link set "${p}t5" master br0
ip -n "$dp" link set "${p}t6" master br0
ip -n "$dp" link set br0 up

# The accelerator: KVM only when a guest boots with it (as the harness decides).
accel="${VNET_QEMU_ACCEL:-}"
if [[ -z "$accel" ]]; then
  accel=tcg
  if [[ -e /dev/kvm ]] && timeout 8 qemu-system-x86_64 -accel kvm -m 256 -nodefaults -display none -no-reboot \
      -serial null -kernel "$guest/vmlinuz" -initrd "$guest/initramfs.cpio.gz" \
      -append "console=ttyS0 quiet panic=-1 vnet.probe" </dev/null >/dev/null 2>&1; then
    accel=kvm
  fi
fi

# gsh N CMD [TIMEOUT]: run CMD in guest vmN through its agent (ci/guest/agent's protocol);
# prints its output, fails with its status.
cat >"$dir/gsh.py" <<'PY'
import socket, sys, time
path, limit, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_UNIX)
for _ in range(600):
    try:
        s.connect(path); break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the guest's agent socket did not open")
buf, n = b"", 0
def ask(c, t):
    global buf, n
    n += 1
    i = f"v{n}{time.monotonic_ns() % 10**9}"
    s.sendall(f"{i} {t} {c}\n".encode())
    s.settimeout(t + 5)
    end = f"\n@@{i}< ".encode()
    while True:
        k = buf.find(end)
        if k >= 0 and buf.find(b"\n", k + len(end)) >= 0:
            b = buf.find(f"@@{i}>\n".encode())
            out = buf[b + len(i) + 4:k].decode(errors="replace")
            rc = int(buf[k + len(end):buf.find(b"\n", k + len(end))])
            buf = b""
            return rc, out
        r = s.recv(65536)
        if not r: sys.exit("the guest's agent closed its port")
        buf += r
deadline = time.time() + 180
while True:
    try:
        s.settimeout(1); ask("true", 2); break
    except (socket.timeout, TimeoutError):
        if time.time() > deadline: sys.exit("the guest did not boot")
rc, out = ask(cmd, limit)
print(out)
sys.exit(rc)
PY
gsh() { python3 "$dir/gsh.py" "$dir/vm$1.agent" "${3:-$((secs + 30))}" "$2"; }
addr() { echo "192.168.60.$((10 + $1))"; }

# boot N tap|vhost-user: guest vmN as harness/src/guest/qemu.rs launches it, on tap
# ${p}tN or on the vhost-user socket $dir/vmN.sock (vnet must listen there already).
boot() {
  local i=$1 nic vectors=""
  rm -f "$dir/vm$i.agent"
  if [[ $2 == tap ]]; then
    nic=(-netdev "tap,id=net0,ifname=${p}t$i,script=no,downscript=no,vhost=off")
  else
    nic=(-object "memory-backend-memfd,id=mem,size=256M,share=on" -numa "node,memdev=mem"
      -chardev "socket,id=vu0,path=$dir/vm$i.sock,reconnect=1"
      -netdev "vhost-user,id=net0,chardev=vu0")
    # QEMU 7.2 under TCG segfaults at vhost start with MSI-X (see qemu.rs).
    [[ $accel == tcg ]] && vectors=",vectors=0"
  fi
  ip netns exec "$dp" qemu-system-x86_64 -accel "$accel" -m 256 -smp 1 -nodefaults -display none -no-reboot \
    -kernel "$guest/vmlinuz" -initrd "$guest/initramfs.cpio.gz" \
    -append "console=ttyS0 quiet panic=-1 vnet.name=vm$i" -serial "file:$dir/vm$i.console" \
    -device virtio-serial-pci -chardev "socket,id=agent,path=$dir/vm$i.agent,server=on,wait=off" \
    -device virtserialport,chardev=agent,name=vnet.agent \
    "${nic[@]}" -device "virtio-net-pci,netdev=net0,mac=02:76:71:00:00:0$i$vectors" \
    </dev/null >"$dir/vm$i.qemu.log" 2>&1 &
  qemu_pid[i]=$!
}
# ready N: vmN's agent answers, eth0 has carrier, its static address is set.
ready() {
  gsh "$1" true >/dev/null || { echo "vhost-bulk-compare: vm$1 did not boot: $(tail -n 3 "$dir/vm$1.qemu.log" "$dir/vm$1.console" 2>/dev/null | tr '\n' ' ')" >&2; exit 1; }
  gsh "$1" "i=0; while [ \"\$(cat /sys/class/net/eth0/carrier)\" != 1 ]; do i=\$((i+1)); [ \$i -gt 100 ] && exit 1; sleep 0.2; done; ip -4 addr flush dev eth0; ip addr add $(addr "$1")/24 dev eth0" >/dev/null ||
    { echo "vhost-bulk-compare: vm$1's eth0 has no carrier after 20 s" >&2; exit 1; }
}

vnet() { # LOG ARGS...: vnet-bench run --mode internal ARGS in the namespace
  vnet_log="$dir/$1"
  ip netns exec "$dp" "$exe" run --mode internal "${@:2}" --stats-interval 0 >"$vnet_log" 2>&1 &
  vnet_pid=$!
  for _ in $(seq 100); do grep -q "Ctrl-C to stop" "$vnet_log" && return; sleep 0.1; done
  echo "vhost-bulk-compare: vnet-bench run did not start: $(cat "$vnet_log")" >&2; exit 1
}
stop_vnet() { kill -INT "$vnet_pid"; wait "$vnet_pid" 2>/dev/null || true; vnet_pid=""; }
final_counters() { sed -n '/final counters/,$p' "$dir/$1" | sed 1d | grep -v '^napi auto' | sed 's/^/  /'; }

# Only the guests A and B run (and vnet unless NOVNET): the rest are stopped.
only() { # A B [novnet]
  local i
  for i in 1 2 3 4 5 6; do
    [[ -n "${qemu_pid[i]}" ]] || continue
    if [[ $i == "$1" || $i == "$2" ]]; then kill -CONT "${qemu_pid[i]}"; else kill -STOP "${qemu_pid[i]}"; fi
  done
  if [[ -n "$vnet_pid" ]]; then
    if [[ ${3:-} == novnet ]]; then kill -STOP "$vnet_pid"; else kill -CONT "$vnet_pid"; fi
  fi
}

rate() { # A B DIRECTION(send: A -> B | recv: B -> A) -> Gbit/s or fail
  local a=$1 b=$2 rflag="" port=$((5400 + RANDOM % 100))
  [[ $3 == recv ]] && rflag="-R"
  gsh "$b" "killall -q iperf3; iperf3 -s -1 -B $(addr "$b") -p $port >/dev/null 2>&1 & i=0; while ! netstat -ltn | grep -q ':$port '; do i=\$((i+1)); [ \$i -gt 50 ] && exit 1; sleep 0.1; done" 10 >/dev/null || { echo fail; return; }
  local out
  out="$(gsh "$a" "iperf3 -c $(addr "$b") -p $port -t $secs $rflag -J --connect-timeout 3000" 2>/dev/null || true)"
  gsh "$b" "killall -q iperf3" 5 >/dev/null 2>&1 || true
  python3 -c 'import json,sys
try:
    t=sys.stdin.read(); e=json.loads(t[t.index("{"):])["end"]["sum_received"]["bits_per_second"]; print(f"{e/1e9:.2f}")
except Exception: print("fail")' <<<"$out"
}
median() { tr ' ' '\n' | grep -v fail | sort -n | awk '{a[NR]=$1} END {print NR ? a[int((NR+1)/2)] : "fail"}'; }

declare -A sends recvs
round() { # NAME A B [novnet]: one send and one receive run of a path, into sends/recvs
  only "$2" "$3" "${4:-}"
  if ! gsh "$2" "ping -c 3 -i 0.2 -W 2 $(addr "$3")" 15 >/dev/null; then
    sends[$1]+="fail "; recvs[$1]+="fail "
  else
    sends[$1]+="$(rate "$2" "$3" send) "; recvs[$1]+="$(rate "$2" "$3" recv) "
  fi
}
report() { # NAME A B
  local s="${sends[$1]% }" r="${recvs[$1]% }"
  printf '%-18s vm%s->vm%s %-20s median %s Gbit/s | vm%s->vm%s %-20s median %s Gbit/s\n' "$1" \
    "$2" "$3" "$s" "$(echo "$s" | median)" "$3" "$2" "$r" "$(echo "$r" | median)"
}

echo "vhost-bulk-compare: $secs s x $reps rounds per path and direction ($accel guests)"
# vnet listens first (QEMU 7.2 must find a vhost-user socket when it starts).
vnet vnet-main.log --vm "${p}t1" --vm "${p}t2" --vm "vhost-user:$dir/vm3.sock" --vm "vhost-user:$dir/vm4.sock" --offload off
for i in 3 4; do
  for _ in $(seq 50); do [[ -S "$dir/vm$i.sock" ]] && break; sleep 0.1; done
  [[ -S "$dir/vm$i.sock" ]] || { echo "vhost-bulk-compare: vnet does not listen on $dir/vm$i.sock" >&2; exit 1; }
done
start=$(date +%s.%N)
boot 1 tap; boot 2 tap; boot 3 vhost-user; boot 4 vhost-user; boot 5 tap; boot 6 tap
for i in 1 2 3 4 5 6; do ready "$i"; done
echo "vhost-bulk-compare: 6 guests booted in $(echo "$(date +%s.%N) - $start" | bc | cut -c1-4) s"
for _ in $(seq "$reps"); do
  round vnet-taps 1 2
  round vnet-vhost-user 3 4
  round linux-bridge 5 6 novnet
done
only 1 2
# The vhost-user guests go before their backend.
stop_guests 3 4
stop_vnet
report vnet-taps 1 2
report vnet-vhost-user 3 4
report linux-bridge 5 6
# vnet's default: its XDP fast path in front of the core, on the same tap guests.
stop_guests 5 6
vnet vnet-fastpath.log --vm "${p}t1" --vm "${p}t2"
for _ in $(seq "$reps"); do round vnet-taps-fastpath 1 2; done
stop_vnet
report vnet-taps-fastpath 1 2
echo "vhost-bulk-compare: vnet's final counters (--offload off: ports 0, 1 the taps, 2, 3 the vhost-user sockets)"
final_counters vnet-main.log
echo "vhost-bulk-compare: vnet's final counters with the fast path (the taps)"
final_counters vnet-fastpath.log

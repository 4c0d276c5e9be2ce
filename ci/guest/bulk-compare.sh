#!/usr/bin/env bash
# Bulk TCP rate of one QEMU guest (virtio-net at QEMU's default offloads, TCG or KVM as
# the harness would pick) to a server in a namespace, through:
#   vnet-nat      vnet-bench run --mode nat     (guest 10.0.2.15 -> inet 198.18.0.1)
#   vnet-bridged  vnet-bench run --mode bridged (guest 198.18.0.11 -> inet 198.18.0.1)
#   linux-bridge  a Linux bridge with the same tap and veth (same addresses)
# both ways (guest sends; guest receives, iperf3 -R), SECONDS per run, REPEATS runs, the
# median. Usage, as root after `cargo build --release` and `bash ci/guest/build.sh`:
#   bash ci/guest/bulk-compare.sh [SECONDS] [REPEATS]
# Builds its own namespaces (prefix bcNNNN), removes them and stops what it started (by
# pid) on exit, also on Ctrl-C.
set -euo pipefail
secs="${1:-5}"
reps="${2:-3}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
exe="$root/target/release/vnet-bench"
guest="${VNET_GUEST_DIR:-$root/target/guest}"
for need in "$exe" "$guest/vmlinuz" "$guest/initramfs.cpio.gz"; do
  [[ -e "$need" ]] || { echo "bulk-compare: $need is missing; run cargo build --release and bash ci/guest/build.sh" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null || { echo "bulk-compare: qemu-system-x86_64 is missing; run ci/bootstrap.sh" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "bulk-compare: needs root (namespaces, taps, AF_XDP)" >&2; exit 1; }

p="bc$(($$ % 10000))"
dp="$p-dp"
inet="$p-inet"
tap="${p}t1"
dir="$(mktemp -d)"
qemu_pid=""
vnet_pid=""
cleanup() {
  [[ -n "$vnet_pid" ]] && kill "$vnet_pid" 2>/dev/null && wait "$vnet_pid" 2>/dev/null || true
  [[ -n "$qemu_pid" ]] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null || true
  ip netns del "$dp" 2>/dev/null || true
  ip netns del "$inet" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$dp"
ip netns add "$inet"
ip -n "$dp" link set lo up
ip -n "$inet" link set lo up
ip link add "${p}e" netns "$inet" type veth peer name "${p}d" netns "$dp"
ip -n "$inet" link set "${p}e" up
ip -n "$dp" link set "${p}d" up
ip -n "$inet" addr add 198.18.0.1/24 dev "${p}e"
ip -n "$dp" tuntap add mode tap name "$tap"
ip netns exec "$dp" sysctl -q -w "net.ipv6.conf.$tap.disable_ipv6=1" "net.ipv6.conf.${p}d.disable_ipv6=1"
ip -n "$dp" link set "$tap" up

# The accelerator: KVM only when a guest boots with it (as the harness decides).
accel=tcg
if [[ -e /dev/kvm ]] && timeout 8 qemu-system-x86_64 -accel kvm -m 256 -nodefaults -display none -no-reboot \
    -serial null -kernel "$guest/vmlinuz" -initrd "$guest/initramfs.cpio.gz" \
    -append "console=ttyS0 quiet panic=-1 vnet.probe" </dev/null >/dev/null 2>&1; then
  accel=kvm
fi
ip netns exec "$dp" qemu-system-x86_64 -accel "$accel" -m 256 -smp 1 -nodefaults -display none -no-reboot \
  -kernel "$guest/vmlinuz" -initrd "$guest/initramfs.cpio.gz" \
  -append "console=ttyS0 quiet panic=-1 vnet.name=vm1" -serial "file:$dir/console" \
  -netdev "tap,id=net0,ifname=$tap,script=no,downscript=no,vhost=off" \
  -device virtio-net-pci,netdev=net0,mac=02:76:71:00:00:01 \
  -device virtio-serial-pci -chardev "socket,id=agent,path=$dir/agent,server=on,wait=off" \
  -device virtserialport,chardev=agent,name=vnet.agent </dev/null >"$dir/qemu.log" 2>&1 &
qemu_pid=$!

# gsh CMD: run CMD in the guest through its agent (ci/guest/agent's protocol); prints its
# output, fails with its status.
gsh() {
  python3 - "$dir/agent" "$1" <<'PY'
import socket, sys, time
path, cmd = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
for _ in range(600):
    try:
        s.connect(path); break
    except OSError:
        time.sleep(0.1)
buf, n = b"", 0
def ask(c, t):
    global buf, n
    n += 1
    i = f"b{n}{time.monotonic_ns() % 10**9}"
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
        buf += s.recv(65536)
deadline = time.time() + 120
while True:
    try:
        s.settimeout(1); ask("true", 2); break
    except (socket.timeout, TimeoutError):
        if time.time() > deadline: sys.exit("the guest did not boot")
rc, out = ask(cmd, 60)
print(out)
sys.exit(rc)
PY
}
start=$(date +%s.%N)
gsh true >/dev/null
echo "bulk-compare: guest booted ($accel) in $(echo "$(date +%s.%N) - $start" | bc | cut -c1-4) s; $secs s x $reps runs per path and direction"

rate() { # DIRECTION(send|recv) -> Gbit/s or fail
  local rflag="" port=$((5400 + RANDOM % 100))
  [[ $1 == recv ]] && rflag="-R"
  ip netns exec "$inet" timeout $((secs + 20)) iperf3 -s -1 -B 198.18.0.1 -p "$port" >/dev/null 2>&1 &
  local srv=$!
  sleep 0.4
  local out
  out="$(gsh "iperf3 -c 198.18.0.1 -p $port -t $secs $rflag -J --connect-timeout 3000" 2>/dev/null || true)"
  wait "$srv" 2>/dev/null || true
  python3 -c 'import json,sys
try:
    t=sys.stdin.read(); e=json.loads(t[t.index("{"):])["end"]["sum_received"]["bits_per_second"]; print(f"{e/1e9:.2f}")
except Exception: print("fail")' <<<"$out"
}
median() { tr ' ' '\n' | grep -v fail | sort -n | awk '{a[NR]=$1} END {print NR ? a[int((NR+1)/2)] : "fail"}'; }

run_path() { # NAME
  local send=() recv=()
  for _ in $(seq "$reps"); do send+=("$(rate send)"); recv+=("$(rate recv)"); done
  printf '%-13s guest->inet %-22s median %s Gbit/s | inet->guest %-22s median %s Gbit/s\n' "$1" \
    "${send[*]}" "$(echo "${send[*]}" | median)" "${recv[*]}" "$(echo "${recv[*]}" | median)"
}

vnet() { # MODE ARGS...
  ip netns exec "$dp" "$exe" run --mode "$1" --vm "$tap" --uplink "${p}d" "${@:2}" --stats-interval 0 >"$dir/vnet.log" 2>&1 &
  vnet_pid=$!
  for _ in $(seq 100); do grep -q "Ctrl-C to stop" "$dir/vnet.log" && return; sleep 0.1; done
  echo "bulk-compare: vnet-bench run did not start: $(cat "$dir/vnet.log")" >&2; exit 1
}
stop_vnet() { kill -INT "$vnet_pid"; wait "$vnet_pid" 2>/dev/null || true; vnet_pid=""; }

vnet nat --external-ip 198.18.0.2/24 --gateway 198.18.0.1
gsh "udhcpc -i eth0 -n -q -t 5 -T 1" >/dev/null
run_path vnet-nat
stop_vnet
gsh "killall -q udhcpc; ip -4 addr flush dev eth0; ip route flush dev eth0; ip addr add 198.18.0.11/24 dev eth0" >/dev/null
vnet bridged
run_path vnet-bridged
stop_vnet
ip -n "$dp" link add br0 type bridge
ip -n "$dp" link set "$tap" master br0
ip -n "$dp" link set "${p}d" master br0
ip -n "$dp" link set br0 up
run_path linux-bridge

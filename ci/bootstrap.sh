#!/usr/bin/env bash
# Install what vnet-bench needs to build, test and run, only where it is missing.
# Works as root on a fresh Debian machine; safe to run again.
set -euo pipefail

need_pkgs=(
  # xsk-rs builds its own libxdp and libbpf:
  clang llvm libelf-dev zlib1g-dev libpcap-dev m4 pkg-config make
  # topologies and the real endpoint stacks of the live tests:
  iproute2 iputils-ping ethtool tcpdump busybox isc-dhcp-client dhcpcd-base iperf3 dnsmasq-base procps
  # the kernel as the device under test of `conformance --dut kernel`:
  nftables
  # bench: headers of the XDP generator/sink programs (bpf_helpers.h), testpmd as a peer:
  libbpf-dev dpdk-dev librte-net-af-xdp23
  # ci/hlog-interop.sh: a venv for HdrHistogram's Python implementation
  python3-venv
  # control_socket: setpriv runs `natpf` as nobody
  util-linux
  # ci/nat-tcp-compare.sh: the user-mode NAT it compares with
  slirp4netns
  # real QEMU guests (live_qemu, --guest qemu): QEMU, and what ci/guest/build.sh packs the
  # guest with (it fetches the kernel and busybox-static itself, with apt-get download)
  qemu-system-x86 cpio kmod
)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: missing packages ${missing[*]}; run this script as root to install them" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "bootstrap: no Rust toolchain (cargo) found; install Rust 1.87 or newer (rustup; the workspace rust-version) and retry" >&2
  exit 1
fi
# Components the test command uses.
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true
fi
echo "bootstrap: ok"

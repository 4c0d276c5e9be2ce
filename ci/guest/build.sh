#!/usr/bin/env bash
# Build the tiny QEMU guest of the live VM tests into target/guest/ (or $1):
#   vmlinuz            Debian's linux-image-amd64 kernel (fetched with apt-get download and
#                      unpacked in a scratch dir; no kernel is installed on the host)
#   initramfs.cpio.gz  busybox-static, the virtio modules (virtio_net, virtio_pci,
#                      virtio_console and what they depend on), iperf3 and tcpdump copied
#                      from the host with their shared libraries, /init and the agent
#   stamp              a hash of every input; the build is skipped when it is unchanged
# As root on Debian 12 with the package registry reachable; safe to run again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/target/guest}"
mkdir -p "$out/debs"

for tool in apt-get dpkg-deb depmod cpio gzip ldd iperf3 tcpdump; do
  command -v "$tool" >/dev/null || {
    echo "guest build: $tool is missing; run ci/bootstrap.sh as root first" >&2
    exit 1
  }
done

# The package versions that apt would fetch now (update the lists once if they are empty).
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }
if [[ -z "$(candidate linux-image-amd64)" || "$(candidate linux-image-amd64)" == "(none)" ]]; then
  apt-get update -qq
fi
kpkg="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[[ -n "$kpkg" ]] || { echo "guest build: apt knows no linux-image-amd64 kernel package" >&2; exit 1; }
kver_pkg="$(candidate "$kpkg")"
bb_ver="$(candidate busybox-static)"
host_bins=(/usr/bin/iperf3 /usr/bin/tcpdump)

# Every input: this script, the guest's own files, the package versions, the host binaries
# and libraries copied in.
libs_of() { ldd "$@" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | sort -u; }
mapfile -t host_files < <(printf '%s\n' "${host_bins[@]}"; libs_of "${host_bins[@]}")
stamp="$( {
  cat "$0" "$here/init" "$here/agent" "$here/udhcpc.script"
  echo "$kpkg $kver_pkg busybox-static $bb_ver"
  sha256sum "${host_files[@]}"
} | sha256sum | cut -d' ' -f1)"
if [[ -f "$out/stamp" && "$(cat "$out/stamp")" == "$stamp" && -f "$out/vmlinuz" && -f "$out/initramfs.cpio.gz" ]]; then
  echo "guest build: $out is up to date ($kpkg $kver_pkg, busybox-static $bb_ver)"
  exit 0
fi
echo "guest build: building $out ($kpkg $kver_pkg, busybox-static $bb_ver)"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# Fetch (or reuse) the two packages; -o APT::Sandbox::User=root lets root write into
# a directory the _apt user cannot.
fetch() {
  local pkg=$1 ver=$2
  local deb
  deb="$(ls "$out/debs/${pkg}_"*"_amd64.deb" 2>/dev/null | grep -F "_${ver//:/%3a}_" | head -n1 || true)"
  if [[ -z "$deb" ]]; then
    (cd "$out/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >/dev/null)
    deb="$(ls "$out/debs/${pkg}_"*"_amd64.deb" | grep -F "_${ver//:/%3a}_" | head -n1)"
  fi
  echo "$deb"
}
kdeb="$(fetch "$kpkg" "$kver_pkg")"
bdeb="$(fetch busybox-static "$bb_ver")"
# Old versions of the packages go.
find "$out/debs" -name '*.deb' ! -path "$kdeb" ! -path "$bdeb" -delete

dpkg-deb -x "$kdeb" "$scratch/kernel"
kver="$(ls "$scratch/kernel/lib/modules")"
depmod -b "$scratch/kernel" "$kver"

rootfs="$scratch/rootfs"
mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,lib64,usr/bin,usr/sbin,etc/udhcpc,lib/modules}
dpkg-deb -x "$bdeb" "$scratch/busybox"
cp "$scratch/busybox/bin/busybox" "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
  [[ -e "$rootfs/bin/$applet" ]] || ln -s busybox "$rootfs/bin/$applet"
done

# The modules virtio_net, virtio_pci and virtio_console need, in load order (a module's
# dependencies before it), read from the kernel's own modules.dep.
moddep="$scratch/kernel/lib/modules/$kver/modules.dep"
order=()
add_module() {
  local path=$1 dep
  for seen in "${order[@]}"; do [[ "$seen" == "$path" ]] && return; done
  for dep in $(awk -v m="$path:" '$1 == m { $1 = ""; print }' "$moddep"); do add_module "$dep"; done
  order+=("$path")
}
for m in virtio_pci virtio_net virtio_console; do
  path="$(awk -F: -v m="/$m.ko" 'index($1, m) && substr($1, length($1) - length(m) + 1) == m {print $1}' "$moddep")"
  [[ -n "$path" ]] || { echo "guest build: kernel $kver has no module $m (built in?)" >&2; exit 1; }
  add_module "$path"
done
for p in "${order[@]}"; do
  cp "$scratch/kernel/lib/modules/$kver/$p" "$rootfs/lib/modules/"
  basename "$p" >>"$rootfs/etc/modules.order"
done

# Host binaries with their shared libraries, at the same paths.
for f in "${host_files[@]}"; do
  mkdir -p "$rootfs$(dirname "$f")"
  cp -L "$f" "$rootfs$f"
done
# The dynamic loader where the binaries look for it.
cp -L /lib64/ld-linux-x86-64.so.2 "$rootfs/lib64/"

install -m 0755 "$here/init" "$rootfs/init"
install -m 0755 "$here/agent" "$rootfs/bin/vnet-agent"
install -m 0755 "$here/udhcpc.script" "$rootfs/etc/udhcpc/default.script"
echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
echo "root:x:0:" >"$rootfs/etc/group"
# tcpdump drops privileges to this user unless told otherwise (-Z root is used anyway).
echo "tcpdump:x:104:104::/nonexistent:/bin/false" >>"$rootfs/etc/passwd"
: >"$rootfs/etc/resolv.conf"

cp "$scratch/kernel/boot/vmlinuz-$kver" "$out/vmlinuz.new"
(cd "$rootfs" && find . -print0 | sort -z | cpio --null -o -H newc --quiet --owner=0:0) | gzip -6 >"$out/initramfs.cpio.gz.new"
mv "$out/vmlinuz.new" "$out/vmlinuz"
mv "$out/initramfs.cpio.gz.new" "$out/initramfs.cpio.gz"
echo "$kver" >"$out/kernel-version"
echo "$stamp" >"$out/stamp"
echo "guest build: $out/vmlinuz ($kver), $out/initramfs.cpio.gz ($(du -h "$out/initramfs.cpio.gz" | cut -f1)), modules: $(tr '\n' ' ' <"$rootfs/etc/modules.order")"

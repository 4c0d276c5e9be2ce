//! Real QEMU guests on taps or vhost-user sockets, for the live VM tests and `vnet-bench --guest qemu`.
//!
//! A guest is the tiny Debian kernel + busybox initramfs that `ci/guest/build.sh` builds
//! into `target/guest/` ([`image`]), booted by QEMU ([`qemu`]) inside the dataplane's
//! namespace on a tap ([`tap`]) with a virtio-net NIC at QEMU's default offloads (checksum
//! offload and TSO on: the guest sends partial checksums and TSO super-frames, as real VMs
//! do), and driven through an agent on a virtio-serial port ([`agent`]). [`accel`] picks
//! KVM when it really boots a guest, else TCG. [`Guest`] puts the pieces together and
//! offers what the checks need (DHCP, static addresses, ping, iperf3 byte counts, DNS,
//! capture); [`peer`] is the same for the veth namespaces on the other side.
//!
//! Invariants: every QEMU is killed when its [`Guest`] drops (also on panic); a tap is
//! deleted when its [`Tap`] drops; only interfaces inside the harness's own namespaces are
//! created or deleted; the harness never gives a guest offload-reducing device options.

pub mod accel;
pub mod agent;
pub mod image;
pub mod peer;
pub mod qemu;
pub mod tap;
pub mod transfer;
mod vm;

pub use accel::Accel;
pub use image::GuestImage;
pub use qemu::Nic;
pub use tap::Tap;
pub use vm::{Guest, GuestSpec, Transfer};

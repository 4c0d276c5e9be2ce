//! Ingress normalisation: frames as guests send them become ordinary frames, once, before
//! any mode sees them.
//!
//! A sender with transmit offloads (a veth or tap endpoint with default settings, a QEMU
//! virtio-net guest) hands the kernel work it expects a NIC to finish, and AF_XDP carries
//! no metadata saying so:
//!
//! - **Partial checksums** ([`csum`]): a TCP or UDP frame whose checksum field holds only
//!   the folded pseudo-header sum (Linux's `CHECKSUM_PARTIAL`). The worker completes it
//!   right after receive, on every port, in every mode. The test is exact and cheap: the
//!   field equals the folded pseudo-header sum. Completing a frame whose checksum was
//!   already valid (a one-in-65536 coincidence) writes the same value back, so the step is
//!   safe on any frame, and a frame whose checksum is simply wrong is left as it is.
//! - **Segmentation offload** ([`gso`]): a TSO super-frame (up to 64 KiB) from a tap. The
//!   AF_XDP port receives it in several frames (multi-buffer, `XDP_USE_SG`), gathers it
//!   and cuts it into segments no larger than the egress MTU and the MSS the peer
//!   announced in the handshake ([`mss`]), with the IP ids, sequence numbers, flags and
//!   checksums a NIC would have written ([`segmenter::Segmenter`]).
//!
//! Invariants: nothing here allocates after construction; nothing panics on any input;
//! a frame that cannot be normalised is dropped and counted with an [`Unsegmented`]
//! reason, whose [`Unsegmented::advice`] is the one sentence the operator sees.

pub mod coalesce;
pub mod csum;
pub mod gso;
mod headers;
pub mod mss;
pub mod segmenter;
#[cfg(test)]
mod test_frames;

pub use csum::complete_partial;
pub use segmenter::{OffloadStats, Segmenter};

/// Why a super-frame (a frame larger than one receive buffer) was dropped instead of
/// being segmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Unsegmented {
    /// Not TCP: UDP segmentation offload (USO/UFO) or a plain jumbo frame; UDP segments
    /// cannot be recovered without the sender's segment size.
    NotTcp = 0,
    /// The headers did not parse (truncated, fragment, bad lengths).
    Malformed,
    /// The frame pool ran dry while writing the segments.
    NoFrame,
    /// More segments were waiting than the port's queue holds.
    Backlog,
    /// The frame was longer than the 64 KiB reassembly buffer.
    TooLong,
}

impl Unsegmented {
    /// Number of reasons.
    pub const COUNT: usize = 5;
    /// Every reason, in counter order.
    pub const ALL: [Unsegmented; Self::COUNT] = [
        Unsegmented::NotTcp,
        Unsegmented::Malformed,
        Unsegmented::NoFrame,
        Unsegmented::Backlog,
        Unsegmented::TooLong,
    ];

    /// Stable snake_case name (printed counters, JSON).
    pub fn name(self) -> &'static str {
        match self {
            Unsegmented::NotTcp => "gso_not_tcp",
            Unsegmented::Malformed => "gso_malformed",
            Unsegmented::NoFrame => "gso_no_frame",
            Unsegmented::Backlog => "gso_backlog",
            Unsegmented::TooLong => "gso_too_long",
        }
    }

    /// The one sentence an operator reads the first time this happens on a port.
    pub fn advice(self) -> &'static str {
        match self {
            Unsegmented::NotTcp => {
                "a guest sent UDP (or non-TCP) super-frames, which cannot be segmented without \
                 the sender's segment size; turn UDP segmentation offload off in the guest \
                 (`ethtool -K eth0 tx-udp-segmentation off`) or in QEMU \
                 (`-device virtio-net-pci,...,host_uso=off,host_ufo=off`)"
            }
            Unsegmented::Malformed => {
                "a guest sent a super-frame whose headers do not parse; it was dropped (a \
                 broken or hostile sender)"
            }
            Unsegmented::NoFrame | Unsegmented::Backlog => {
                "TSO super-frames arrive faster than they can be segmented; give the \
                 dataplane more frames (`--frames-per-port`) or turn TSO off in the guest \
                 (`ethtool -K eth0 tso off`, or QEMU `host_tso4=off,host_tso6=off`)"
            }
            Unsegmented::TooLong => {
                "a guest sent a frame longer than 64 KiB, which no offload produces; it was \
                 dropped (a broken or hostile sender)"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_table_is_consistent() {
        for (i, r) in Unsegmented::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(r.name().starts_with("gso_"));
            assert!(!r.advice().is_empty());
        }
    }
}

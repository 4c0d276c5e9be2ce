//! The one error type of the wire layer: a small `Copy` value that says which header was
//! wrong and how.
//!
//! Invariants:
//!
//! - every parse of untrusted bytes returns `Result<_, WireError>`; nothing in `wire` panics
//!   on bad input;
//! - [`WireError::reason`] is a short, stable `snake_case` name (`truncated_ipv4`,
//!   `bad_ipv4_checksum`, ...) meant as a drop-counter label; it never allocates.

use core::fmt;

/// The header a [`WireError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// Ethernet II header (destination, source, EtherType).
    Ethernet,
    /// An 802.1Q / 802.1ad VLAN tag inside an Ethernet header.
    Vlan,
    /// ARP packet.
    Arp,
    /// IPv4 header.
    Ipv4,
    /// ICMPv4 message.
    Icmpv4,
    /// UDP header.
    Udp,
    /// TCP header (and its options).
    Tcp,
    /// IPv6 fixed header.
    Ipv6,
    /// DHCP (BOOTP) message.
    Dhcp,
}

impl Layer {
    /// Every layer, in declaration order.
    pub const ALL: [Layer; 9] = [
        Layer::Ethernet,
        Layer::Vlan,
        Layer::Arp,
        Layer::Ipv4,
        Layer::Icmpv4,
        Layer::Udp,
        Layer::Tcp,
        Layer::Ipv6,
        Layer::Dhcp,
    ];

    /// Short lowercase name (`"ethernet"`, `"ipv4"`, ...), as used in [`WireError::reason`].
    pub const fn name(self) -> &'static str {
        match self {
            Layer::Ethernet => "ethernet",
            Layer::Vlan => "vlan",
            Layer::Arp => "arp",
            Layer::Ipv4 => "ipv4",
            Layer::Icmpv4 => "icmpv4",
            Layer::Udp => "udp",
            Layer::Tcp => "tcp",
            Layer::Ipv6 => "ipv6",
            Layer::Dhcp => "dhcp",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with a header whose bytes are all present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformed {
    /// The version field is not the one this header requires (IPv4: 4, IPv6: 6).
    BadVersion,
    /// The header-length field is below the minimum (IPv4 IHL < 5, TCP data offset < 5).
    BadHeaderLen,
    /// A total-length field is smaller than the header it covers (IPv4 total length).
    BadTotalLen,
    /// A length field is inconsistent (UDP length < 8, a DHCP length, ...).
    BadLength,
    /// The checksum does not verify.
    BadChecksum,
    /// An option is malformed (zero or overlong option length, wrong length for its kind).
    BadOption,
    /// ARP hardware type is not Ethernet (1).
    BadHardwareType,
    /// ARP protocol type is not IPv4 (0x0800).
    BadProtocolType,
    /// ARP hardware/protocol address lengths are not 6/4.
    BadAddressLen,
    /// More VLAN tags than the type can describe (more than 2 for
    /// [`EthernetFrame`](super::EthernetFrame), more than 1 for
    /// [`EthernetRepr`](super::EthernetRepr)).
    TooManyTags,
    /// An IPv4 fragment, which [`Ipv4Repr`](super::Ipv4Repr) cannot describe.
    Fragmented,
    /// A magic number is wrong (DHCP magic cookie).
    BadMagic,
    /// An opcode field has a value this header does not allow (DHCP `op`).
    BadOpcode,
}

impl Malformed {
    /// Every kind, in declaration order.
    pub const ALL: [Malformed; 13] = [
        Malformed::BadVersion,
        Malformed::BadHeaderLen,
        Malformed::BadTotalLen,
        Malformed::BadLength,
        Malformed::BadChecksum,
        Malformed::BadOption,
        Malformed::BadHardwareType,
        Malformed::BadProtocolType,
        Malformed::BadAddressLen,
        Malformed::TooManyTags,
        Malformed::Fragmented,
        Malformed::BadMagic,
        Malformed::BadOpcode,
    ];

    /// A short human description (`"bad checksum"`).
    pub const fn description(self) -> &'static str {
        match self {
            Malformed::BadVersion => "bad version",
            Malformed::BadHeaderLen => "bad header length",
            Malformed::BadTotalLen => "total length smaller than header",
            Malformed::BadLength => "bad length field",
            Malformed::BadChecksum => "bad checksum",
            Malformed::BadOption => "malformed option",
            Malformed::BadHardwareType => "unsupported hardware type",
            Malformed::BadProtocolType => "unsupported protocol type",
            Malformed::BadAddressLen => "unsupported address lengths",
            Malformed::TooManyTags => "too many VLAN tags",
            Malformed::Fragmented => "fragment",
            Malformed::BadMagic => "bad magic number",
            Malformed::BadOpcode => "bad opcode",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// Why a header could not be read.
///
/// Small and `Copy`, so the data path can count it (see [`WireError::reason`]) instead of
/// propagating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer ends before the header (or the length its fields announce) does.
    Truncated {
        /// Header being read.
        layer: Layer,
        /// Bytes needed from the start of this header.
        required: usize,
        /// Bytes available from the start of this header.
        len: usize,
    },
    /// All bytes are present but a field is invalid.
    Malformed(Layer, Malformed),
}

impl WireError {
    /// Shorthand for [`WireError::Truncated`].
    #[inline]
    pub const fn truncated(layer: Layer, required: usize, len: usize) -> Self {
        WireError::Truncated {
            layer,
            required,
            len,
        }
    }

    /// The header this error is about.
    pub const fn layer(&self) -> Layer {
        match *self {
            WireError::Truncated { layer, .. } => layer,
            WireError::Malformed(layer, _) => layer,
        }
    }

    /// A short stable `snake_case` name, for drop counters and logs.
    ///
    /// `Truncated` gives `truncated_<layer>` (`"truncated_ipv4"`); `Malformed` gives a name
    /// built from the layer and the kind: `"bad_ipv4_checksum"`, `"bad_tcp_header_len"`,
    /// `"bad_arp_hardware_type"`, `"vlan_too_many_tags"`, `"ipv4_fragmented"`, ...
    pub const fn reason(&self) -> &'static str {
        match *self {
            WireError::Truncated { layer, .. } => truncated_reason(layer),
            WireError::Malformed(layer, kind) => malformed_reason(layer, kind),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WireError::Truncated {
                layer,
                required,
                len,
            } => write!(
                f,
                "truncated {layer} header: need {required} bytes, have {len}"
            ),
            WireError::Malformed(layer, kind) => write!(f, "malformed {layer} header: {kind}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Builds `truncated_reason` and `malformed_reason` as the cross product of layers and kinds,
/// so every `(layer, kind)` pair has a `&'static str` without any formatting at run time.
macro_rules! reason_tables {
    (
        layers: [$(($layer:ident, $lname:literal)),* $(,)?],
        kinds: $kinds:tt $(,)?
    ) => {
        const fn truncated_reason(layer: Layer) -> &'static str {
            match layer {
                $(Layer::$layer => concat!("truncated_", $lname),)*
            }
        }

        const fn malformed_reason(layer: Layer, kind: Malformed) -> &'static str {
            match layer {
                $(Layer::$layer => reason_tables!(@kinds kind, $lname, $kinds),)*
            }
        }
    };
    (@kinds $kind:ident, $lname:literal, [$(($k:ident, $pre:literal, $post:literal)),* $(,)?]) => {
        match $kind {
            $(Malformed::$k => concat!($pre, $lname, $post),)*
        }
    };
}

reason_tables! {
    layers: [
        (Ethernet, "ethernet"),
        (Vlan, "vlan"),
        (Arp, "arp"),
        (Ipv4, "ipv4"),
        (Icmpv4, "icmpv4"),
        (Udp, "udp"),
        (Tcp, "tcp"),
        (Ipv6, "ipv6"),
        (Dhcp, "dhcp"),
    ],
    kinds: [
        (BadVersion, "bad_", "_version"),
        (BadHeaderLen, "bad_", "_header_len"),
        (BadTotalLen, "bad_", "_total_len"),
        (BadLength, "bad_", "_length"),
        (BadChecksum, "bad_", "_checksum"),
        (BadOption, "bad_", "_option"),
        (BadHardwareType, "bad_", "_hardware_type"),
        (BadProtocolType, "bad_", "_protocol_type"),
        (BadAddressLen, "bad_", "_address_len"),
        (TooManyTags, "", "_too_many_tags"),
        (Fragmented, "", "_fragmented"),
        (BadMagic, "bad_", "_magic"),
        (BadOpcode, "bad_", "_opcode"),
    ],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_stable() {
        assert_eq!(
            WireError::truncated(Layer::Ipv4, 20, 3).reason(),
            "truncated_ipv4"
        );
        assert_eq!(
            WireError::Malformed(Layer::Ipv4, Malformed::BadChecksum).reason(),
            "bad_ipv4_checksum"
        );
        assert_eq!(
            WireError::Malformed(Layer::Tcp, Malformed::BadHeaderLen).reason(),
            "bad_tcp_header_len"
        );
        assert_eq!(
            WireError::Malformed(Layer::Vlan, Malformed::TooManyTags).reason(),
            "vlan_too_many_tags"
        );
        assert_eq!(
            WireError::Malformed(Layer::Ipv4, Malformed::Fragmented).reason(),
            "ipv4_fragmented"
        );
        assert_eq!(
            WireError::Malformed(Layer::Dhcp, Malformed::BadMagic).reason(),
            "bad_dhcp_magic"
        );
    }

    #[test]
    fn reasons_are_unique_snake_case() {
        let mut all = Vec::new();
        for layer in Layer::ALL {
            all.push(WireError::truncated(layer, 1, 0).reason());
            for kind in Malformed::ALL {
                all.push(WireError::Malformed(layer, kind).reason());
            }
        }
        for r in &all {
            assert!(
                r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{r}"
            );
            assert!(r.contains('_'), "{r}");
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn display() {
        let e = WireError::truncated(Layer::Udp, 8, 5);
        assert_eq!(e.to_string(), "truncated udp header: need 8 bytes, have 5");
        let e = WireError::Malformed(Layer::Ipv4, Malformed::BadChecksum);
        assert_eq!(e.to_string(), "malformed ipv4 header: bad checksum");
        assert_eq!(e.layer(), Layer::Ipv4);
    }

    #[test]
    fn is_small_and_copy() {
        fn assert_copy<T: Copy>() {}
        assert_copy::<WireError>();
        assert!(core::mem::size_of::<WireError>() <= 24);
    }
}

//! Ethernet II frames with up to two VLAN tags (802.1Q `0x8100`, 802.1ad `0x88a8`).
//!
//! ```text
//!  0                   6                  12      14      16      18      20      22
//! +-------------------+-------------------+-------+-------+-------+-------+-------+---
//! |    destination    |      source       | TPID  |  TCI  | TPID  |  TCI  | type  | payload
//! +-------------------+-------------------+-------+-------+-------+-------+-------+---
//!                                          (each VLAN tag is optional; untagged: type at 12)
//! ```
//!
//! Invariants of a checked [`EthernetFrame`]: the buffer holds the whole header including
//! every tag, and there are at most two tags, so [`EthernetFrame::ethertype`] is the type of
//! the payload, never a TPID. The frame check sequence is not part of the buffer (AF_XDP and
//! pcap frames come without it). Type values below `0x0600` (802.3 lengths) parse as
//! [`EtherType::Unknown`].

use core::fmt;
use core::str::FromStr;

use super::{get_u16, put_u16, Layer, Malformed, WireError};

/// Length of an untagged Ethernet II header: destination, source, EtherType.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Length of one VLAN tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;

/// Most VLAN tags an [`EthernetFrame`] accepts.
pub const MAX_VLAN_TAGS: usize = 2;

/// A 48-bit Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    /// `00:00:00:00:00:00` (unknown target in an ARP request).
    pub const UNSPECIFIED: EthernetAddress = EthernetAddress([0; 6]);

    /// The six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// The six octets, borrowed.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit set (broadcast included).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Group bit clear.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Locally administered bit set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl From<[u8; 6]> for EthernetAddress {
    fn from(octets: [u8; 6]) -> Self {
        EthernetAddress(octets)
    }
}

impl From<EthernetAddress> for [u8; 6] {
    fn from(addr: EthernetAddress) -> Self {
        addr.0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// The error of [`EthernetAddress::from_str`]: not six `:`- or `-`-separated hex octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseEthernetAddressError;

impl fmt::Display for ParseEthernetAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid Ethernet address (expected six hex octets like aa:bb:cc:dd:ee:ff)")
    }
}

impl std::error::Error for ParseEthernetAddressError {}

impl FromStr for EthernetAddress {
    type Err = ParseEthernetAddressError;

    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (one or two hex digits per octet,
    /// either case, one separator style throughout).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for slot in &mut out {
            let part = parts.next().ok_or(ParseEthernetAddressError)?;
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ParseEthernetAddressError);
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| ParseEthernetAddressError)?;
        }
        if parts.next().is_some() {
            return Err(ParseEthernetAddressError);
        }
        Ok(EthernetAddress(out))
    }
}

/// An EtherType (or VLAN TPID). Never fails to parse: unknown values are kept raw.
///
/// Build it with `EtherType::from(raw)`, which maps known values to their named variant, so
/// `Unknown` never holds a known value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4, `0x0800`.
    Ipv4,
    /// ARP, `0x0806`.
    Arp,
    /// IPv6, `0x86dd`.
    Ipv6,
    /// 802.1Q customer VLAN tag, `0x8100`.
    Vlan,
    /// 802.1ad service VLAN tag (Q-in-Q), `0x88a8`.
    QinQ,
    /// Any other value (including 802.3 length values below `0x0600`).
    Unknown(u16),
}

impl EtherType {
    /// Is this a TPID that starts a VLAN tag this module understands?
    pub const fn is_vlan_tag(self) -> bool {
        matches!(self, EtherType::Vlan | EtherType::QinQ)
    }
}

impl From<u16> for EtherType {
    #[inline]
    fn from(raw: u16) -> Self {
        match raw {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(t: EtherType) -> Self {
        match t {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Unknown(raw) => raw,
        }
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EtherType::Ipv4 => f.write_str("IPv4"),
            EtherType::Arp => f.write_str("ARP"),
            EtherType::Ipv6 => f.write_str("IPv6"),
            EtherType::Vlan => f.write_str("802.1Q"),
            EtherType::QinQ => f.write_str("802.1ad"),
            EtherType::Unknown(raw) => write!(f, "0x{raw:04x}"),
        }
    }
}

/// One VLAN tag as found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// Tag protocol identifier: [`EtherType::Vlan`] or [`EtherType::QinQ`].
    pub tpid: EtherType,
    /// Tag control information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// VLAN identifier (12 bits).
    pub const fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }

    /// Priority code point (3 bits).
    pub const fn pcp(&self) -> u8 {
        (self.tci >> 13) as u8
    }

    /// Drop eligible indicator.
    pub const fn dei(&self) -> bool {
        self.tci & 0x1000 != 0
    }
}

mod field {
    use core::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    /// EtherType of an untagged frame, or TPID of the outer tag.
    pub const ETHERTYPE: usize = 12;
    /// TCI of tag `i` is at `TAG_TCI + 4 * i`; the type after `n` tags at `ETHERTYPE + 4 * n`.
    pub const TAG_TCI: usize = 14;
}

/// A zero-copy view of an Ethernet II frame (header, optional VLAN tags, payload).
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    ///
    /// # Errors
    ///
    /// `Truncated { layer: Ethernet | Vlan, .. }` if the header or a tag is cut short;
    /// `Malformed(Vlan, TooManyTags)` for more than [`MAX_VLAN_TAGS`] tags.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that every getter is in bounds (see [`new_checked`](Self::new_checked)).
    ///
    /// # Errors
    ///
    /// As [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        let len = data.len();
        if len < ETHERNET_HEADER_LEN {
            return Err(WireError::truncated(
                Layer::Ethernet,
                ETHERNET_HEADER_LEN,
                len,
            ));
        }
        let mut tags = 0;
        while EtherType::from(get_u16(data, field::ETHERTYPE + VLAN_TAG_LEN * tags)).is_vlan_tag() {
            if tags == MAX_VLAN_TAGS {
                return Err(WireError::Malformed(Layer::Vlan, Malformed::TooManyTags));
            }
            tags += 1;
            let required = ETHERNET_HEADER_LEN + VLAN_TAG_LEN * tags;
            if len < required {
                return Err(WireError::truncated(Layer::Vlan, required, len));
            }
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Number of VLAN tags (0, 1 or 2 on a checked frame).
    ///
    /// Only tags that are wholly in the buffer are counted, so the header stays in bounds
    /// even if a setter wrote a TPID where the EtherType was.
    #[inline]
    pub fn vlan_count(&self) -> usize {
        let data = self.buffer.as_ref();
        let mut tags = 0;
        while tags < MAX_VLAN_TAGS
            && data.len() >= ETHERNET_HEADER_LEN + VLAN_TAG_LEN * (tags + 1)
            && EtherType::from(get_u16(data, field::ETHERTYPE + VLAN_TAG_LEN * tags)).is_vlan_tag()
        {
            tags += 1;
        }
        tags
    }

    /// Header length in bytes, tags included: 14, 18 or 22.
    #[inline]
    pub fn header_len(&self) -> usize {
        ETHERNET_HEADER_LEN + VLAN_TAG_LEN * self.vlan_count()
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        EthernetAddress(a)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        EthernetAddress(a)
    }

    /// The EtherType of the payload, after any VLAN tags.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let at = field::ETHERTYPE + VLAN_TAG_LEN * self.vlan_count();
        EtherType::from(get_u16(self.buffer.as_ref(), at))
    }

    /// VLAN tag `index` (0 = outermost), if present.
    pub fn vlan_tag(&self, index: usize) -> Option<VlanTag> {
        if index >= self.vlan_count() {
            return None;
        }
        let data = self.buffer.as_ref();
        Some(VlanTag {
            tpid: EtherType::from(get_u16(data, field::ETHERTYPE + VLAN_TAG_LEN * index)),
            tci: get_u16(data, field::TAG_TCI + VLAN_TAG_LEN * index),
        })
    }

    /// VLAN identifiers `(outer, inner)`: `(None, None)` untagged, `(Some, None)` one tag,
    /// `(Some, Some)` Q-in-Q.
    pub fn vlan_ids(&self) -> (Option<u16>, Option<u16>) {
        (
            self.vlan_tag(0).map(|t| t.vid()),
            self.vlan_tag(1).map(|t| t.vid()),
        )
    }

    /// VLAN identifier of the outermost tag, if any.
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tag(0).map(|t| t.vid())
    }

    /// The payload after the header and tags.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType after the VLAN tags already in the buffer.
    ///
    /// Setting a TPID value here would change the tag count; use [`EthernetRepr::emit`] to
    /// write a header from scratch.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        let at = field::ETHERTYPE + VLAN_TAG_LEN * self.vlan_count();
        put_u16(self.buffer.as_mut(), at, ethertype.into());
    }

    /// Sets the VLAN identifier of tag `index` (0 = outermost), keeping its PCP and DEI.
    /// Does nothing if that tag is absent.
    pub fn set_vlan_vid(&mut self, index: usize, vid: u16) {
        if let Some(tag) = self.vlan_tag(index) {
            let tci = (tag.tci & 0xf000) | (vid & 0x0fff);
            put_u16(
                self.buffer.as_mut(),
                field::TAG_TCI + VLAN_TAG_LEN * index,
                tci,
            );
        }
    }

    /// The payload after the header and tags, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A parsed Ethernet II header with at most one VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// EtherType of the payload.
    pub ethertype: EtherType,
    /// VLAN identifier of the single tag, if tagged.
    pub vlan: Option<u16>,
}

impl EthernetRepr {
    /// Reads a checked frame.
    ///
    /// The tag's PCP/DEI and whether its TPID was 802.1Q or 802.1ad are not kept;
    /// [`emit`](Self::emit) writes an 802.1Q tag with PCP 0.
    ///
    /// # Errors
    ///
    /// `Malformed(Vlan, TooManyTags)` for a Q-in-Q frame (read those with
    /// [`EthernetFrame::vlan_ids`]); the errors of [`EthernetFrame::check_len`] for an
    /// unchecked view.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self, WireError> {
        frame.check_len()?;
        if frame.vlan_count() > 1 {
            return Err(WireError::Malformed(Layer::Vlan, Malformed::TooManyTags));
        }
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
            vlan: frame.vlan_id(),
        })
    }

    /// Header length: 14, or 18 with a VLAN tag.
    pub const fn header_len(&self) -> usize {
        match self.vlan {
            Some(_) => ETHERNET_HEADER_LEN + VLAN_TAG_LEN,
            None => ETHERNET_HEADER_LEN,
        }
    }

    /// Bytes [`emit`](Self::emit) writes (the header; the payload follows it).
    pub const fn buffer_len(&self) -> usize {
        self.header_len()
    }

    /// Writes the header (and an 802.1Q tag with PCP 0 if `vlan` is set; the VID is masked
    /// to 12 bits) at the start of `frame`. The payload bytes are not touched.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`header_len`](Self::header_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        let data = frame.buffer.as_mut();
        data[field::DESTINATION].copy_from_slice(&self.dst_addr.0);
        data[field::SOURCE].copy_from_slice(&self.src_addr.0);
        match self.vlan {
            Some(vid) => {
                put_u16(data, field::ETHERTYPE, EtherType::Vlan.into());
                put_u16(data, field::TAG_TCI, vid & 0x0fff);
                put_u16(data, field::ETHERTYPE + VLAN_TAG_LEN, self.ethertype.into());
            }
            None => put_u16(data, field::ETHERTYPE, self.ethertype.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broadcast ARP request as captured (untagged), header only.
    static UNTAGGED: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // src
        0x08, 0x06, // ARP
        0x00, 0x01, // payload starts
    ];

    /// 802.1Q VID 100, PCP 5, carrying IPv4.
    static TAGGED: [u8; 20] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x81, 0x00, 0xa0, 0x64, // 802.1Q, PCP 5, VID 100
        0x08, 0x00, // IPv4
        0x45, 0x00,
    ];

    /// 802.1ad VID 10 outside, 802.1Q VID 20 inside, carrying IPv6.
    static QINQ: [u8; 24] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01, // dst (IPv6 multicast)
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x88, 0xa8, 0x00, 0x0a, // S-tag VID 10
        0x81, 0x00, 0x10, 0x14, // C-tag VID 20, DEI
        0x86, 0xdd, // IPv6
        0x60, 0x00,
    ];

    #[test]
    fn untagged() {
        let f = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), EthernetAddress::BROADCAST);
        assert!(f.dst_addr().is_broadcast() && f.dst_addr().is_multicast());
        assert_eq!(
            f.src_addr(),
            EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
        assert!(f.src_addr().is_unicast());
        assert_eq!(f.ethertype(), EtherType::Arp);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.vlan_count(), 0);
        assert_eq!(f.vlan_id(), None);
        assert_eq!(f.vlan_ids(), (None, None));
        assert_eq!(f.payload(), &[0x00, 0x01]);
        let r = EthernetRepr::parse(&f).unwrap();
        assert_eq!(r.vlan, None);
        assert_eq!(r.header_len(), 14);
    }

    #[test]
    fn tagged() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.vlan_id(), Some(100));
        let tag = f.vlan_tag(0).unwrap();
        assert_eq!(
            (tag.tpid, tag.pcp(), tag.dei(), tag.vid()),
            (EtherType::Vlan, 5, false, 100)
        );
        assert_eq!(f.vlan_tag(1), None);
        assert_eq!(f.payload(), &[0x45, 0x00]);
        let r = EthernetRepr::parse(&f).unwrap();
        assert_eq!(r.vlan, Some(100));
        assert_eq!(r.ethertype, EtherType::Ipv4);
    }

    #[test]
    fn qinq() {
        let f = EthernetFrame::new_checked(&QINQ[..]).unwrap();
        assert_eq!(f.ethertype(), EtherType::Ipv6);
        assert_eq!(f.header_len(), 22);
        assert_eq!(f.vlan_ids(), (Some(10), Some(20)));
        assert_eq!(f.vlan_id(), Some(10));
        assert_eq!(f.vlan_tag(0).unwrap().tpid, EtherType::QinQ);
        assert!(f.vlan_tag(1).unwrap().dei());
        assert_eq!(f.payload(), &[0x60, 0x00]);
        assert_eq!(
            EthernetRepr::parse(&f),
            Err(WireError::Malformed(Layer::Vlan, Malformed::TooManyTags))
        );
    }

    #[test]
    fn three_tags_rejected() {
        let mut b = [0u8; 30];
        b[..12].copy_from_slice(&QINQ[..12]);
        b[12..14].copy_from_slice(&[0x88, 0xa8]);
        b[16..18].copy_from_slice(&[0x81, 0x00]);
        b[20..22].copy_from_slice(&[0x81, 0x00]);
        b[24..26].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(
            EthernetFrame::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed(Layer::Vlan, Malformed::TooManyTags)
        );
    }

    #[test]
    fn every_truncation() {
        for (frame, header_len) in [(&UNTAGGED[..], 14), (&TAGGED[..], 18), (&QINQ[..], 22)] {
            for len in 0..header_len {
                let err = EthernetFrame::new_checked(&frame[..len]).unwrap_err();
                let layer = if len < ETHERNET_HEADER_LEN {
                    Layer::Ethernet
                } else {
                    Layer::Vlan
                };
                match err {
                    WireError::Truncated {
                        layer: l,
                        required,
                        len: got,
                    } => {
                        assert_eq!(l, layer, "len {len}");
                        assert!(required > len && required <= header_len);
                        assert_eq!(got, len);
                    }
                    other => panic!("len {len}: {other:?}"),
                }
            }
            let f = EthernetFrame::new_checked(&frame[..header_len]).unwrap();
            assert!(f.payload().is_empty());
        }
    }

    #[test]
    fn emit_untagged() {
        let repr = EthernetRepr {
            src_addr: EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EtherType::Arp,
            vlan: None,
        };
        let mut buf = [0xa5u8; 16];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        repr.emit(&mut f);
        let mut expected = UNTAGGED;
        expected[14] = 0xa5;
        expected[15] = 0xa5;
        assert_eq!(buf, expected);
        assert_eq!(repr.buffer_len(), 14);
    }

    #[test]
    fn emit_tagged() {
        let repr = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EtherType::Ipv4,
            vlan: Some(100),
        };
        let mut buf = [0xa5u8; 20];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        let mut expected = TAGGED;
        expected[14] = 0x00; // PCP 0
        expected[18] = 0xa5;
        expected[19] = 0xa5;
        assert_eq!(buf, expected);
        assert_eq!(repr.header_len(), 18);
    }

    #[test]
    fn setters() {
        let mut buf = QINQ;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst_addr(EthernetAddress([1, 2, 3, 4, 5, 6]));
        f.set_src_addr(EthernetAddress([7, 8, 9, 10, 11, 12]));
        f.set_ethertype(EtherType::Ipv4);
        f.set_vlan_vid(1, 4095);
        f.set_vlan_vid(2, 7); // absent: no-op
        f.payload_mut()[0] = 0x45;
        assert_eq!(f.dst_addr(), EthernetAddress([1, 2, 3, 4, 5, 6]));
        assert_eq!(f.src_addr(), EthernetAddress([7, 8, 9, 10, 11, 12]));
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.vlan_ids(), (Some(10), Some(4095)));
        assert!(f.vlan_tag(1).unwrap().dei());
        assert_eq!(&buf[20..], &[0x08, 0x00, 0x45, 0x00]);
    }

    #[test]
    fn tpid_written_by_setter_stays_in_bounds() {
        let mut buf = UNTAGGED;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_ethertype(EtherType::Vlan);
        // Two bytes after the TPID: not a whole tag, so not counted.
        assert_eq!(f.vlan_count(), 0);
        assert_eq!(f.ethertype(), EtherType::Vlan);
        assert_eq!(f.payload().len(), 2);
        assert_eq!(
            EthernetFrame::new_checked(&buf[..]).unwrap_err().layer(),
            Layer::Vlan
        );
    }

    #[test]
    fn address_text() {
        let a: EthernetAddress = "52:54:00:AB:cd:0f".parse().unwrap();
        assert_eq!(a, EthernetAddress([0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f]));
        assert_eq!(a.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(
            "2-0-0-0-0-1".parse(),
            Ok(EthernetAddress([2, 0, 0, 0, 0, 1]))
        );
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:00",
            "52:54:00:ab:cd:0g",
            "52:54:00:ab:cd:",
            "052:54:00:ab:cd:0f",
            "52:54-00:ab:cd:0f",
            "+5:54:00:ab:cd:0f",
        ] {
            assert_eq!(
                bad.parse::<EthernetAddress>(),
                Err(ParseEthernetAddressError),
                "{bad}"
            );
        }
        assert!(EthernetAddress([0x02, 0, 0, 0, 0, 1]).is_local());
        assert!(!EthernetAddress([0x00, 0x1b, 0x21, 0, 0, 1]).is_local());
    }

    #[test]
    fn ethertype_round_trip() {
        for raw in [0x0800u16, 0x0806, 0x86dd, 0x8100, 0x88a8, 0x0042, 0x9000] {
            assert_eq!(u16::from(EtherType::from(raw)), raw);
        }
        assert_eq!(EtherType::from(0x1234), EtherType::Unknown(0x1234));
        assert_eq!(EtherType::Unknown(0x1234).to_string(), "0x1234");
    }
}

//! Ethernet (+ 802.1Q) and ARP: arbitrary bytes as a frame. Every getter of a checked view
//! stays in bounds; what parses is emitted again with the crate's own `emit` and parses to
//! the same value; an untagged header and an Ethernet/IPv4 ARP packet come back byte for
//! byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vnet_core::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetRepr, ARP_ETHERNET_IPV4_LEN, ETHERNET_HEADER_LEN,
};

fuzz_target!(|data: &[u8]| {
    // The same bytes through the view that only checks lengths on demand.
    let unchecked = EthernetFrame::new_unchecked(data);
    let _ = unchecked.vlan_count();
    let _ = unchecked.payload();

    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype());
    let _ = (
        frame.vlan_ids(),
        frame.vlan_tag(0),
        frame.vlan_tag(1),
        frame.vlan_tag(2),
    );
    assert_eq!(frame.header_len() + frame.payload().len(), data.len());

    if let Ok(repr) = EthernetRepr::parse(&frame) {
        assert_eq!(repr.header_len(), frame.header_len());
        let mut buf = vec![0u8; repr.buffer_len() + frame.payload().len()];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        buf[repr.header_len()..].copy_from_slice(frame.payload());
        let again = EthernetFrame::new_checked(&buf[..]).expect("emitted frame checks");
        let repr2 = EthernetRepr::parse(&again).expect("emitted frame parses");
        assert_eq!(repr, repr2);
        assert_eq!(again.payload(), frame.payload());
        if repr.vlan.is_none() {
            assert_eq!(&buf[..ETHERNET_HEADER_LEN], &data[..ETHERNET_HEADER_LEN]);
        }
    }

    let payload = frame.payload();
    arp(payload);
});

fn arp(payload: &[u8]) {
    let unchecked = ArpPacket::new_unchecked(payload);
    if payload.len() >= 8 {
        let _ = unchecked.packet_len();
        let _ = unchecked.source_hardware_addr();
        let _ = unchecked.target_protocol_addr();
    }
    let Ok(packet) = ArpPacket::new_checked(payload) else {
        return;
    };
    let _ = (
        packet.hardware_type(),
        packet.protocol_type(),
        packet.operation(),
    );
    assert_eq!(
        packet.source_hardware_addr().len(),
        usize::from(packet.hardware_len())
    );
    assert_eq!(
        packet.target_protocol_addr().len(),
        usize::from(packet.protocol_len())
    );
    let Ok(repr) = ArpRepr::parse(&packet) else {
        return;
    };
    let mut buf = [0u8; ARP_ETHERNET_IPV4_LEN];
    assert_eq!(repr.buffer_len(), buf.len());
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    let again = ArpPacket::new_checked(&buf[..]).expect("emitted ARP checks");
    assert_eq!(ArpRepr::parse(&again).expect("emitted ARP parses"), repr);
    // Ethernet/IPv4 ARP has one encoding: the emitted packet is the original.
    assert_eq!(&buf[..], &payload[..ARP_ETHERNET_IPV4_LEN]);
}

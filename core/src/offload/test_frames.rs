//! Frames for the offload tests: what a guest's stack hands its device.

/// A TSO super-frame as a guest hands it over: Ethernet, IPv4 (id `id`), TCP from
/// 10.0.2.15:40000 to 198.18.0.1:5201 with a timestamp option (a 32-byte header),
/// sequence number `seq`, `flags`, and `payload`; the checksum field left zero.
pub(crate) fn super_frame(payload: &[u8], flags: u8, id: u16, seq: u32) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = 20 + 32 + payload.len();
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8]);
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[0x40, 0, 64, 6, 0, 0, 10, 0, 2, 15, 198, 18, 0, 1]);
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 7, 0x80, flags, 0x01, 0xf6, 0x12, 0x34, 0, 0]);
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    f.extend_from_slice(payload);
    f
}

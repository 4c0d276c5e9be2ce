//! Frames shared by the core's benches (each bench includes this module).

use vnet_core::offload::complete_partial;
use vnet_core::wire::checksum;

/// An Ethernet/IPv4/TCP frame of `len` bytes (20-byte TCP header) with a complete
/// checksum, and the partial value of its checksum field.
pub fn tcp_frame(len: usize) -> (Vec<u8>, u16) {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = len - 14;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&[10, 0, 2, 15, 198, 18, 0, 1]);
    let c = checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x10]);
    f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    f.extend((f.len()..len).map(|i| i as u8));
    let tcp_len = (total - 20) as u32;
    let partial = checksum::fold(0x0a00 + 0x020f + 0xc612 + 0x0001 + 6 + tcp_len);
    f[50..52].copy_from_slice(&partial.to_be_bytes());
    complete_partial(&mut f);
    (f, partial)
}

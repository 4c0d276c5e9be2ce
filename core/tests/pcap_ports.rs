//! The `pcap` port and the `capture` tee, through the public API only.

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, TsResolution};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use vnet_core::frame::{FramePool, Pkt};
use vnet_core::port::capture::CapturePort;
use vnet_core::port::mem::mem_pair;
use vnet_core::port::pcap::{PcapPort, PcapPortError};
use vnet_core::port::{Burst, Port};

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "pcap_ports-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Broadcast ARP request: who has 192.168.0.1? tell 192.168.0.2 (padded to 60 bytes).
fn arp_request() -> Vec<u8> {
    let mut f = vec![
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x08, 0x06, // ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet/IPv4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 192, 168, 0, 2, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 168, 0, 1, // target
    ];
    f.resize(60, 0);
    f
}

/// IPv4/UDP 10.0.0.1:1234 -> 10.0.0.2:5678 carrying "hello" (checksums as computed).
fn udp_hello() -> Vec<u8> {
    vec![
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x21, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x66, 0xc9, // ver..csum
        10, 0, 0, 1, 10, 0, 0, 2, // addresses
        0x04, 0xd2, 0x16, 0x2e, 0x00, 0x0d, 0x00, 0x00, // UDP header, no checksum
        b'h', b'e', b'l', b'l', b'o',
    ]
}

/// A full-size 802.1Q-tagged frame with a counting payload.
fn vlan_jumbo(len: usize) -> Vec<u8> {
    let mut f = vec![
        0x02, 0x00, 0x00, 0x00, 0x00, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x04, 0x81, 0x00, 0x00,
        0x0a, 0x88, 0xb5,
    ];
    f.extend((0..len - f.len()).map(|i| i as u8));
    f
}

fn write_pcap(path: &Path, link: DataLink, nanos: bool, pkts: &[(Duration, &[u8])]) {
    let header = PcapHeader {
        datalink: link,
        ts_resolution: if nanos {
            TsResolution::NanoSecond
        } else {
            TsResolution::MicroSecond
        },
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(File::create(path).unwrap(), header).unwrap();
    for (ts, data) in pkts {
        w.write_packet(&PcapPacket::new(*ts, data.len() as u32, data))
            .unwrap();
    }
}

fn read_pcap(path: &Path) -> Vec<(Duration, Vec<u8>)> {
    let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
    assert_eq!(r.header().datalink, DataLink::ETHERNET);
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        v.push((p.timestamp, p.data.into_owned()));
    }
    v
}

/// Every packet the port delivers, until it is exhausted.
fn rx_all(port: &mut PcapPort, pool: &mut FramePool) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while !port.is_exhausted() {
        let mut b = Burst::new();
        port.rx_burst(pool, &mut b);
        for p in b.as_slice() {
            got.push(pool.bytes(p).to_vec());
            pool.free(p.frame);
        }
    }
    got
}

#[test]
fn known_frames_read_back_through_a_pool() {
    let dir = temp_dir("read");
    let frames = [arp_request(), udp_hello(), vlan_jumbo(1518)];
    for nanos in [false, true] {
        let path = dir.join(format!("in-{nanos}.pcap"));
        let ts = [
            Duration::new(1_700_000_000, 1_000),
            Duration::new(1_700_000_000, 2_000),
            Duration::new(1_700_000_001, 0),
        ];
        let recs: Vec<(Duration, &[u8])> = ts
            .iter()
            .copied()
            .zip(frames.iter().map(|f| &f[..]))
            .collect();
        write_pcap(&path, DataLink::ETHERNET, nanos, &recs);

        let mut port = PcapPort::open(3, Some(&path), None).unwrap();
        let mut pool = FramePool::with_heap(4, 2048, 256);
        let mut b = Burst::new();
        assert_eq!(port.rx_burst(&mut pool, &mut b), 3);
        for (p, f) in b.as_slice().iter().zip(&frames) {
            assert_eq!(p.port, 3);
            assert_eq!(pool.bytes(p), &f[..]);
        }
        assert_eq!(port.timestamp_of_last(), Some(ts[2]));
        assert!(port.is_exhausted());
        for p in b.as_slice() {
            pool.free(p.frame);
        }
        assert_eq!(pool.free_count(), 4);
        assert_eq!(port.pcap_stats().rx_delivered, 3);
        assert_eq!(port.info().backend, "pcap");
    }
}

#[test]
fn tx_output_reads_back_with_pcap_file() {
    let dir = temp_dir("write");
    let path = dir.join("out.pcap");
    let mut port = PcapPort::open(0, None, Some(&path)).unwrap();
    let mut pool = FramePool::with_heap(8, 2048, 0);
    let frames = [arp_request(), udp_hello(), vlan_jumbo(1518)];
    let pkts: Vec<Pkt> = frames
        .iter()
        .map(|f| pool.alloc_copy(f, 0).unwrap())
        .collect();
    port.set_clock(Duration::from_millis(1500));
    assert_eq!(port.tx_burst(&mut pool, &pkts[..2]), 2);
    port.set_clock(Duration::from_millis(2500));
    assert_eq!(port.tx_burst(&mut pool, &pkts[2..]), 1);
    assert_eq!(pool.free_count(), 8, "tx gives every frame back");
    port.flush();
    let got = read_pcap(&path);
    assert_eq!(
        got,
        vec![
            (Duration::from_millis(1500), frames[0].clone()),
            (Duration::from_millis(1500), frames[1].clone()),
            (Duration::from_millis(2500), frames[2].clone()),
        ]
    );

    // Without a virtual clock, records carry the wall clock.
    let path = dir.join("wall.pcap");
    let mut port = PcapPort::open(0, None, Some(&path)).unwrap();
    let p = pool.alloc_copy(&frames[0], 0).unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    port.tx_burst(&mut pool, &[p]);
    drop(port); // dropping flushes
    let got = read_pcap(&path);
    assert_eq!(got.len(), 1);
    assert!(got[0].0 >= before && got[0].0 < before + Duration::from_secs(60));
}

#[test]
fn replay_through_a_pcap_pair_preserves_records() {
    let dir = temp_dir("replay");
    let (inp, outp) = (dir.join("in.pcap"), dir.join("out.pcap"));
    let frames = [arp_request(), udp_hello(), vlan_jumbo(900)];
    let recs: Vec<(Duration, &[u8])> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| (Duration::new(100 + i as u64, 123_456_789), &f[..]))
        .collect();
    write_pcap(&inp, DataLink::ETHERNET, true, &recs);
    let mut rx = PcapPort::open(0, Some(&inp), None).unwrap();
    let mut tx = PcapPort::open(1, None, Some(&outp)).unwrap();
    let mut pool = FramePool::with_heap(1, 2048, 0);
    while !rx.is_exhausted() {
        let mut b = Burst::new();
        // A pool of one frame makes this one packet at a time through the loop.
        if rx.rx_burst(&mut pool, &mut b) > 0 {
            tx.set_clock(rx.timestamp_of_last().unwrap());
            assert_eq!(tx.tx_burst(&mut pool, b.as_slice()), b.len());
        }
    }
    tx.flush();
    let got = read_pcap(&outp);
    let want: Vec<(Duration, Vec<u8>)> = recs.iter().map(|(t, d)| (*t, d.to_vec())).collect();
    assert_eq!(got, want);
}

#[test]
fn non_pcap_and_raw_ip_inputs_are_refused_precisely() {
    let dir = temp_dir("refuse");
    let text = dir.join("notes.txt");
    std::fs::write(&text, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").unwrap();
    let err = PcapPort::open(0, Some(&text), None).unwrap_err();
    assert!(matches!(err, PcapPortError::BadMagic { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not a pcap file (bad magic 0x47455420)",
            text.display()
        )
    );

    let raw = dir.join("raw.pcap");
    write_pcap(
        &raw,
        DataLink::RAW,
        false,
        &[(Duration::ZERO, &udp_hello()[14..])],
    );
    let err = PcapPort::open(0, Some(&raw), None).unwrap_err();
    assert!(
        matches!(err, PcapPortError::LinkType { link: 101, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{} uses link type 101; only Ethernet (1) is supported",
            raw.display()
        )
    );
}

#[test]
fn oversized_record_is_skipped_and_counted() {
    let dir = temp_dir("oversize");
    let path = dir.join("big.pcap");
    let big = vlan_jumbo(9000);
    write_pcap(
        &path,
        DataLink::ETHERNET,
        false,
        &[
            (Duration::from_secs(1), &arp_request()),
            (Duration::from_secs(2), &big),
            (Duration::from_secs(3), &udp_hello()),
        ],
    );
    let mut port = PcapPort::open(0, Some(&path), None).unwrap();
    let mut pool = FramePool::with_heap(8, 2048, 0);
    let got = rx_all(&mut port, &mut pool);
    assert_eq!(got, vec![arp_request(), udp_hello()]);
    assert_eq!(port.timestamp_of_last(), Some(Duration::from_secs(3)));
    let s = port.pcap_stats();
    assert_eq!(s.rx_oversized, 1);
    assert_eq!(s.rx_records, 3);
    assert_eq!(port.stats().rx_dropped, 1);
    assert_eq!(port.input_error(), None);

    // A pool with bigger frames takes it.
    let mut port = PcapPort::open(0, Some(&path), None).unwrap();
    let mut pool = FramePool::with_heap(8, 10_000, 0);
    assert_eq!(rx_all(&mut port, &mut pool)[1], big);
    assert_eq!(port.pcap_stats().rx_oversized, 0);
}

#[test]
fn truncated_file_ends_input_cleanly() {
    let dir = temp_dir("truncated");
    let path = dir.join("cut.pcap");
    let frames = [arp_request(), udp_hello(), vlan_jumbo(1000)];
    let recs: Vec<(Duration, &[u8])> = frames
        .iter()
        .map(|f| (Duration::from_secs(5), &f[..]))
        .collect();
    write_pcap(&path, DataLink::ETHERNET, false, &recs);
    let full = std::fs::read(&path).unwrap();
    // Cut in the middle of the last record's data, then inside its record header.
    for keep in [full.len() - 500, full.len() - 1000 - 8] {
        std::fs::write(&path, &full[..keep]).unwrap();
        let mut port = PcapPort::open(0, Some(&path), None).unwrap();
        let mut pool = FramePool::with_heap(8, 2048, 0);
        let got = rx_all(&mut port, &mut pool);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], frames[1]);
        assert!(port.is_exhausted());
        assert_eq!(port.pcap_stats().rx_errors, 1);
        let msg = port.input_error().expect("the cut is reported");
        assert!(
            msg.contains("cut.pcap") && msg.contains("record 3"),
            "{msg}"
        );
        assert_eq!(pool.free_count(), 8);
    }
}

#[test]
fn capture_tee_records_rx_and_exactly_the_accepted_tx() {
    let dir = temp_dir("capture");
    let (mem, peer) = mem_pair("vm0", 2, 2);
    let mut port = CapturePort::new(mem, &dir, "vm0").unwrap();
    assert!(port.info().detail.contains("capture="));
    let mut pool = FramePool::with_heap(16, 2048, 0);

    // rx: two frames in from the peer.
    assert!(peer.send(&arp_request()));
    assert!(peer.send(&udp_hello()));
    let mut b = Burst::new();
    assert_eq!(port.rx_burst(&mut pool, &mut b), 2);
    assert_eq!(pool.bytes(&b.as_slice()[1]), &udp_hello()[..]);
    for p in b.as_slice() {
        pool.free(p.frame);
    }

    // tx: four frames out, the lane of depth 2 takes two.
    let out = [
        vlan_jumbo(100),
        vlan_jumbo(200),
        vlan_jumbo(300),
        vlan_jumbo(400),
    ];
    let pkts: Vec<Pkt> = out.iter().map(|f| pool.alloc_copy(f, 2).unwrap()).collect();
    assert_eq!(port.tx_burst(&mut pool, &pkts), 2);
    // The refused ones are still ours; retry them once the peer drained the lane.
    assert_eq!(peer.drain(), out[..2].to_vec());
    assert_eq!(port.tx_burst(&mut pool, &pkts[2..]), 2);
    assert_eq!(peer.drain(), out[2..].to_vec());
    // And one refused outright.
    let extra: Vec<Pkt> = (0..3)
        .map(|_| pool.alloc_copy(&udp_hello(), 2).unwrap())
        .collect();
    assert_eq!(port.tx_burst(&mut pool, &extra), 2);
    pool.free(extra[2].frame);
    assert_eq!(pool.free_count(), 16);
    port.flush();

    let rx: Vec<Vec<u8>> = read_pcap(&dir.join("vm0-rx.pcap"))
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(rx, vec![arp_request(), udp_hello()]);
    let tx: Vec<Vec<u8>> = read_pcap(&dir.join("vm0-tx.pcap"))
        .into_iter()
        .map(|r| r.1)
        .collect();
    let mut want = out.to_vec();
    want.extend([udp_hello(), udp_hello()]);
    assert_eq!(tx, want);
    assert_eq!(port.capture_error(), None);
    let s = port.capture_stats();
    assert_eq!((s.rx_recorded, s.tx_recorded), (2, 6));
}

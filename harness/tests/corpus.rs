//! The committed pcap corpus is exactly what `vnet-bench pcap gen` makes, and replaying it
//! through the modes does what their Table 1-1 rows say (in memory).

use std::path::{Path, PathBuf};
use vnet_bench::cli::ModeName;
use vnet_bench::corpus;

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Dir {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("corpus-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    Dir(d)
}

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
}

/// Source MACs of the frames in a capture (pcap records, Ethernet).
fn sources(path: &Path) -> Vec<[u8; 6]> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = u32::from_ne_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &bytes[at + 16..at + 16 + caplen];
        out.push(frame[6..12].try_into().unwrap());
        at += 16 + caplen;
    }
    out
}

#[test]
fn committed_corpus_is_what_pcap_gen_makes() {
    let dir = scratch("gen");
    let files = corpus::generate(&dir.0).unwrap();
    assert!(files.len() >= 7);
    for name in files.iter().map(String::as_str).chain(["CORPUS.md"]) {
        let made = std::fs::read(dir.0.join(name)).unwrap();
        let kept = std::fs::read(committed().join(name)).unwrap_or_else(|_| {
            panic!("pcaps/{name} is missing; run `vnet-bench pcap gen --out pcaps`")
        });
        assert!(
            made == kept,
            "pcaps/{name} differs from what `vnet-bench pcap gen` makes; regenerate it"
        );
    }
}

const GUEST_MAC: [u8; 6] = [0x08, 0x00, 0x27, 0x00, 0x00, 0x01];

#[test]
fn negative_probes_reach_vm2_only_where_the_mode_connects_guests() {
    for (mode, reaches) in [
        (ModeName::Internal, true),
        (ModeName::HostOnly, true),
        (ModeName::Bridged, true),
        (ModeName::NatNetwork, true),
        (ModeName::Nat, false),
    ] {
        let dir = scratch(mode.as_str());
        corpus::replay(
            mode,
            &committed().join("negative-probes.pcap"),
            "vm1",
            &dir.0,
        )
        .unwrap();
        let from_vm1 = sources(&dir.0.join("vm2.pcap"))
            .into_iter()
            .filter(|m| *m == GUEST_MAC)
            .count();
        if reaches {
            assert_eq!(
                from_vm1,
                3,
                "{}: the probes should reach vm2",
                mode.as_str()
            );
        } else {
            assert_eq!(from_vm1, 0, "{}: a probe reached vm2", mode.as_str());
        }
    }
}

#[test]
fn malformed_frames_are_dropped_by_every_mode() {
    for mode in [
        ModeName::Internal,
        ModeName::HostOnly,
        ModeName::Bridged,
        ModeName::Nat,
        ModeName::NatNetwork,
    ] {
        let dir = scratch(&format!("bad-{}", mode.as_str()));
        let out = corpus::replay(mode, &committed().join("malformed.pcap"), "vm1", &dir.0).unwrap();
        for (role, _) in out {
            let leaked = sources(&dir.0.join(format!("{role}.pcap")))
                .into_iter()
                .filter(|m| *m == GUEST_MAC)
                .count();
            // A switch forwards what it cannot parse above Ethernet (the L2 modes, and NAT
            // Network's segment between guests); nothing malformed may be routed out of
            // the host port or the uplink, and NAT guests never see each other's frames.
            let routed_out = role == "host" || role == "uplink";
            let nat_guest = mode == ModeName::Nat && role.starts_with("vm");
            if matches!(mode, ModeName::Nat | ModeName::NatNetwork) && (routed_out || nat_guest) {
                assert_eq!(
                    leaked,
                    0,
                    "{} leaked a malformed frame to {role}",
                    mode.as_str()
                );
            }
        }
    }
}

//! The conformance suite on the `mem` backend: the verdicts of Internal and Bridged match
//! `MODES.md`, are byte-identical run after run, and a wrong dataplane cannot pass.

use vnet_bench::cli::ModeName;
use vnet_bench::conformance::table::{expected_directional, expected_table_1_1, Reach};
use vnet_bench::conformance::{run_mem, ModeUnderTest, Report, SCHEMA};
use vnet_core::frame::{FramePool, Pkt};
use vnet_core::pipeline::{Pipeline, PortMask, Verdict};
use vnet_core::time::Instant;
use vnet_modes::bridged::BridgedMode;
use vnet_modes::layout::PortLayout;
use vnet_modes::switch::SwitchConfig;

fn l2_modes() -> Vec<ModeUnderTest> {
    vec![ModeUnderTest::internal(), ModeUnderTest::bridged()]
}

fn show(report: &Report) -> String {
    format!("{}\n{}", report.tables_text(), report.cases_text())
}

#[test]
fn internal_and_bridged_match_modes_md() {
    let report = run_mem(&l2_modes());
    assert!(report.all_pass(), "{}", show(&report));
    for (m, mode) in report
        .modes
        .iter()
        .zip([ModeName::Internal, ModeName::Bridged])
    {
        assert_eq!(m.mode, mode);
        assert_eq!(m.observed, expected_directional(mode), "{}", show(&report));
        assert_eq!(m.observed_table_1_1(), expected_table_1_1(mode));
        assert_eq!(m.cases.len(), 18, "six cells, three protocols");
    }
    let internal = &report.modes[0];
    assert_eq!(internal.ports, ["vm1", "vm2"]);
    // Internal's host and uplink cells are `-` by construction, with that as evidence.
    let vm_host = internal
        .cases
        .iter()
        .find(|c| c.case.name == "internal/vm-host/udp")
        .unwrap();
    assert!(
        vm_host.evidence.contains("no such port"),
        "{}",
        vm_host.evidence
    );
    assert_eq!(report.modes[1].ports, ["vm1", "vm2", "host", "inet"]);
    let text = report.tables_text();
    assert!(
        !text.lines().any(|l| l.starts_with('|') && l.contains("!!")),
        "{text}"
    );
    assert!(text.contains("| internal | -/-"), "{text}");
}

#[test]
fn json_verdicts_are_byte_identical_over_20_runs() {
    let first = run_mem(&l2_modes()).to_json();
    assert!(first.contains(&format!("\"schema\": \"{SCHEMA}\"")));
    let parsed: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(parsed["modes"].as_array().unwrap().len(), 2);
    assert_eq!(parsed["modes"][0]["cases"].as_array().unwrap().len(), 18);
    for run in 1..20 {
        let again = run_mem(&l2_modes()).to_json();
        assert!(again == first, "run {run} differs from run 0");
    }
}

#[test]
fn host_only_matches_modes_md_with_dhcp_guests() {
    // Guests get their addresses from the mode's own DHCP server (smoltcp's client).
    let report = run_mem(&[ModeUnderTest::host_only()]);
    assert!(report.all_pass(), "{}", show(&report));
    let m = &report.modes[0];
    assert_eq!(m.observed, expected_directional(ModeName::HostOnly));
    assert_eq!(m.ports, ["vm1", "vm2", "host"]);
    let case = m
        .cases
        .iter()
        .find(|c| c.case.name == "host-only/vm-host/udp")
        .unwrap();
    assert!(
        case.evidence.contains("host saw 192.168.56.1"),
        "{}",
        case.evidence
    );
    assert_eq!(
        run_mem(&[ModeUnderTest::host_only()]).to_json(),
        report.to_json()
    );
}

#[test]
fn internal_isolates_real_host_and_uplink_ports() {
    // The same Internal switch with host and uplink wires attached: the `-` cells are now
    // tried against real ports, and must still hold.
    let m = ModeUnderTest::internal()
        .with_layout(PortLayout::new(2, true, true))
        .with_label("internal+wires");
    let report = run_mem(&[m]);
    assert!(report.all_pass(), "{}", show(&report));
    let case = report.modes[0]
        .cases
        .iter()
        .find(|c| c.case.name == "internal/vm-host/tcp")
        .unwrap();
    assert!(
        case.evidence.contains("none arrived at host"),
        "{}",
        case.evidence
    );
}

/// A dataplane that floods every frame to every port but the one it came in on.
struct Flood(PortLayout);

impl Pipeline for Flood {
    fn process(
        &mut self,
        _now: Instant,
        _pool: &mut FramePool,
        pkts: &mut [Pkt],
        verdicts: &mut [Verdict],
    ) {
        for (p, v) in pkts.iter().zip(verdicts.iter_mut()) {
            *v = Verdict::Tx(self.0.all().without(p.port));
        }
    }
}

fn internal_with_wires() -> ModeUnderTest {
    ModeUnderTest::internal().with_layout(PortLayout::new(2, true, true))
}

fn assert_caught(report: &Report) {
    let m = &report.modes[0];
    assert!(!report.all_pass(), "{}", show(report));
    // Host and uplink are reachable through the broken dataplane: the `-` cells must say so.
    for i in [0, 1, 4, 5] {
        assert_eq!(m.observed[i], Reach::Yes, "cell {i}\n{}", show(report));
        assert!(!m.cell_ok(i));
    }
    assert!(m.cell_ok(2) && m.cell_ok(3), "VM1 <-> VM2 still works");
    let text = report.tables_text();
    assert!(text.contains("+/- !!"), "{text}");
    let failed: Vec<_> = m.cases.iter().filter(|c| !c.pass).collect();
    assert_eq!(failed.len(), 12, "{}", report.cases_text());
    assert!(
        failed.iter().all(|c| c.evidence.contains("LEAKED")),
        "{}",
        report.cases_text()
    );
    assert!(report
        .cases_text()
        .contains("FAIL internal/vm-host/icmp +/- "));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["all_pass"], false);
    assert_eq!(json["modes"][0]["table"]["table_1_1"]["ok"][0], false);
}

#[test]
fn a_flooding_dataplane_fails_internal() {
    let m = internal_with_wires()
        .with_pipeline("flood (deliberately wrong)", |layout, _rules, _now| {
            Ok(Box::new(Flood(*layout)))
        });
    assert_caught(&run_mem(&[m]));
}

#[test]
fn the_bridged_pipeline_fails_internal() {
    let m = internal_with_wires().with_pipeline(
        "bridged (deliberately wrong)",
        |layout, _rules, _now| {
            Ok(Box::new(BridgedMode::bridged(
                *layout,
                SwitchConfig::default(),
            )))
        },
    );
    assert_caught(&run_mem(&[m]));
}

/// A dataplane that drops everything.
struct Blackhole;

impl Pipeline for Blackhole {
    fn process(
        &mut self,
        _now: Instant,
        _pool: &mut FramePool,
        _pkts: &mut [Pkt],
        verdicts: &mut [Verdict],
    ) {
        verdicts
            .iter_mut()
            .for_each(|v| *v = Verdict::Tx(PortMask::EMPTY));
    }
}

#[test]
fn a_dead_dataplane_fails_bridged() {
    let m = ModeUnderTest::bridged()
        .with_pipeline("blackhole (deliberately wrong)", |_layout, _rules, _now| {
            Ok(Box::new(Blackhole))
        });
    let report = run_mem(&[m]);
    assert!(!report.all_pass());
    assert_eq!(report.modes[0].observed, [Reach::No; 6]);
    assert_eq!(report.counts(), (18, 0), "{}", report.cases_text());
}

#[test]
fn captures_are_written_per_case_and_port() {
    let report = run_mem(&[ModeUnderTest::internal()]);
    let dir = std::env::temp_dir().join(format!("vnet-bench-conformance-{}", std::process::id()));
    let n = report.write_captures(&dir).unwrap();
    assert_eq!(n, 18 * 2);
    let file = dir.join("internal").join("vm1-vm2_tcp").join("vm2.pcap");
    let bytes = std::fs::read(&file).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
    let mut frames = 0;
    while let Some(p) = reader.next_packet() {
        p.unwrap();
        frames += 1;
    }
    assert!(
        frames >= 8,
        "a TCP exchange takes at least 8 frames on vm2's wire, got {frames}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nat_matches_modes_md_with_translation_and_port_forwards() {
    let report = run_mem(&[ModeUnderTest::nat()]);
    assert!(report.all_pass(), "{}", show(&report));
    let m = &report.modes[0];
    assert_eq!(m.observed, expected_directional(ModeName::Nat));
    assert_eq!(m.observed_table_1_1(), expected_table_1_1(ModeName::Nat));
    assert_eq!(m.ports, ["vm1", "vm2", "host", "inet"]);
    // Two "port forward" cells of three cases per protocol, four plain cells.
    assert_eq!(m.cases.len(), 4 * 3 + 2 * 9);
    let evidence = |name: &str| {
        m.cases
            .iter()
            .find(|c| c.case.name == name)
            .unwrap_or_else(|| panic!("no case {name}"))
            .evidence
            .clone()
    };
    let e = evidence("nat/vm-inet/tcp");
    assert!(e.contains("inet saw 198.18.0.2:"), "{e}");
    assert!(e.contains("replies reached vm1 at 10.0.2.15:49152"), "{e}");
    let e = evidence("nat/vm-host/udp");
    assert!(e.contains("udp echo from 10.0.2.2:7"), "{e}");
    assert!(e.contains("host saw 198.19.0.2:"), "{e}");
    let e = evidence("nat/host-vm/tcp/rule");
    assert!(e.contains("installed at run time"), "{e}");
    assert!(e.contains("vm1 saw 10.0.2.2:"), "{e}");
    let e = evidence("nat/inet-vm/udp/rule");
    assert!(e.contains("vm1 saw 198.18.0.1:49152"), "{e}");
    let e = evidence("nat/inet-vm/udp/other-port");
    assert!(e.contains("none arrived at vm1"), "{e}");
    let e = evidence("nat/vm1-vm2/udp");
    assert!(
        e.contains("to vm2 10.0.2.15"),
        "both guests are 10.0.2.15: {e}"
    );
    assert_eq!(
        run_mem(&[ModeUnderTest::nat()]).to_json(),
        report.to_json(),
        "deterministic"
    );
}

/// NAT Network: every cell matches, including port forwards to a guest that has not sent
/// anything since its DHCP lease (the NAT learns its MAC from the DHCP reply and ARP; this
/// was a finding of the suite, now fixed).
#[test]
fn nat_network_matches_modes_md() {
    let report = run_mem(&[ModeUnderTest::nat_network()]);
    let m = &report.modes[0];
    assert_eq!(m.cases.len(), 4 * 3 + 2 * 9);
    assert!(report.all_pass(), "{}", show(&report));
    let vm1_vm2 = m
        .cases
        .iter()
        .find(|c| c.case.name == "nat-network/vm1-vm2/tcp")
        .unwrap();
    assert!(vm1_vm2.pass && vm1_vm2.evidence.contains("vm2 saw 10.0.2.4:49152"));
}

#[test]
fn behaviour_suites_pass_and_are_named_after_requirements() {
    use vnet_bench::conformance::{dhcp_suite, nat_suite, suites_for};
    use vnet_modes::natmode::NatFlavor;
    for flavor in [NatFlavor::PerVm, NatFlavor::Network] {
        let s = nat_suite::run(flavor);
        assert!(s.all_pass(), "{}", s.text());
        assert!(s.cases.iter().all(|c| c.name.starts_with("rfc")));
        for want in [
            "rfc4787_req1_eim_udp",
            "rfc4787_req8_filtering_address_dependent",
            "rfc4787_req9_hairpinning",
            "rfc4787_req5_udp_timeout_300s",
            "rfc5382_req5_tcp_established_7440s",
            "rfc5508_req4_icmp_error_translated",
            "rfc5508_req8_table_full_3_13",
        ] {
            assert!(s.cases.iter().any(|c| c.name == want), "no {want}");
        }
    }
    let d = dhcp_suite::run();
    assert!(d.all_pass(), "{}", d.text());
    for want in [
        "rfc2131_selecting",
        "rfc2131_init_reboot",
        "rfc2131_renewing",
        "rfc2131_rebinding",
        "rfc2131_init_reboot_wrong_address_nak",
        "rfc2131_decline_quarantines",
        "rfc2131_release_frees",
        "rfc2131_inform",
        "rfc2131_pool_exhaustion_silence",
    ] {
        assert!(d.cases.iter().any(|c| c.name == want), "no {want}");
    }
    // They join the report (and its JSON) for the modes they belong to.
    let mut report = run_mem(&[ModeUnderTest::internal()]);
    report.suites = suites_for(&[ModeUnderTest::host_only(), ModeUnderTest::internal()]);
    // host-only: corpus replay + DHCP; internal: corpus replay.
    let names: Vec<&str> = report.suites.iter().map(|s| s.suite.as_str()).collect();
    assert_eq!(names, ["corpus-replay", "dhcp-rfc2131", "corpus-replay"]);
    assert!(
        report.suites.iter().all(|s| s.all_pass()),
        "{}",
        report.suites_text()
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["suites"][1]["suite"], "dhcp-rfc2131");
    assert_eq!(json["suites"][1]["cases"][0]["pass"], true);
    assert!(report
        .suites_text()
        .contains("PASS dhcp-rfc2131/rfc2131_selecting"));
}

//! The live conformance backend: every case of every mode between real Linux stacks in
//! the test's own namespaces, across `vnet-bench run` on AF_XDP, must match the mode's
//! row of `MODES.md` (privileged: root, namespaces and AF_XDP; skipped otherwise unless
//! `VNET_REQUIRE_PRIVILEGED` is set).

mod common;

use vnet_bench::conformance::live_backend::Dut;
use vnet_bench::conformance::{self, ModeUnderTest};

#[test]
fn every_mode_matches_its_row_live() {
    if !common::privileged_or_skip("conformance_live") {
        return;
    }
    let modes = ModeUnderTest::all();
    let started = std::time::Instant::now();
    let report = conformance::run_live(&modes, env!("CARGO_BIN_EXE_vnet-bench"), Dut::Xdp);
    let took = started.elapsed();
    print!("{}", report.tables_text());
    print!("{}", report.cases_text());
    println!("live conformance took {:.1} s", took.as_secs_f64());
    assert_eq!(report.backend, "xdp");
    // The same cases as the mem backend, in the same order.
    let mem = conformance::run_mem(&modes);
    let names = |r: &conformance::Report| -> Vec<String> {
        r.modes
            .iter()
            .flat_map(|m| m.cases.iter().map(|c| c.case.name.clone()))
            .collect()
    };
    assert_eq!(names(&report), names(&mem));
    let failed: Vec<String> = report
        .modes
        .iter()
        .flat_map(|m| &m.cases)
        .filter(|c| !c.pass)
        .map(|c| format!("{}: {}", c.case.name, c.evidence))
        .collect();
    assert!(
        failed.is_empty(),
        "failed live cases:\n{}",
        failed.join("\n")
    );
    for m in &report.modes {
        assert_eq!(m.observed, m.expected, "{}", m.label);
        // Every `+` case saw its traffic on the receiver's wire, every `-` case of an
        // existing port was proven by probes that left the sender.
        for c in &m.cases {
            assert!(!c.evidence.is_empty(), "{}", c.case.name);
        }
    }
    assert!(report.all_pass());
    let json = report.to_json();
    assert!(json.contains("\"backend\": \"xdp\""), "{json}");
}

//! `vnet-bench run`: the dataplane as a service on existing interfaces until Ctrl-C.
//!
//! Ports are numbered in command-line order (VMs first, then host, then uplink) and
//! spread round-robin over the workers (one per `--cores` entry); each worker binds its
//! ports with one shared UMEM ([`crate::portset`]). Before anything is bound, every
//! setting is checked ([`modespec`], [`crate::configcheck`], [`preflight`]: the
//! interfaces exist, are named once and carry no XDP program yet) and the NAPI settings
//! a killed run left on an interface are put back from its state file.
//!
//! While it runs, the control thread (this one) wakes every 50 ms: adaptive NAPI,
//! lease file, periodic counters, and the link watcher ([`crate::linkctl`]), which
//! handles interfaces that go down, disappear or come back.
//!
//! The stop flag is set by SIGINT/SIGTERM ([`crate::shutdown`]: within two seconds,
//! whatever happens to the interfaces); workers then leave their loops, the ports are
//! dropped (XDP programs detached, sockets closed, interface settings restored, state
//! files removed) and the final counters are printed.

use crate::cli::{AttachChoice, NapiChoice, RunArgs};
use crate::control::ControlServer;
use crate::fastpathctl::{self, RedirectWatcher};
use crate::linkctl::LinkControl;
use crate::napictl::NapiController;
use crate::portset::PortSets;
use crate::stats::{print_counters, OffloadAdvisor};
use crate::workers::Workers;
use crate::{modespec, owner, preflight, shutdown, vhostports};
use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};
use vnet_core::counters::CounterSet;
use vnet_core::engine::{
    FastPathLink, HandoffMesh, HandoffRx, HandoffTx, PortLinks, Worker, WorkerConfig,
};
use vnet_core::frame::PortId;
use vnet_core::port::xdp::{
    restore_napi_leftover, AttachMode, AutoNapi, NapiPolicy, NapiSettings, SharedFastPath,
    XdpConfig,
};

/// Register SIGINT and SIGTERM to set the returned flag.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .context("could not install signal handler")?;
    }
    Ok(stop)
}

/// Run the dataplane until a signal arrives.
pub fn run(args: RunArgs) -> Result<()> {
    let plan = modespec::plan(&args)?;
    preflight::require_root("vnet-bench run")?;
    preflight::require_af_xdp()?;
    let names = plan.ports.clone();
    vhostports::check_all(&names)?;
    preflight::require_interfaces(vhostports::interfaces(&names))?;
    if names.len() > vnet_core::frame::MAX_PORTS {
        bail!(
            "at most {} ports are supported",
            vnet_core::frame::MAX_PORTS
        );
    }
    let state_dir = XdpConfig::default().napi_state_dir;
    for line in preflight::free_interfaces(vhostports::interfaces(&names), state_dir.as_deref())? {
        println!("{line}");
    }
    let stop = shutdown::install()?;

    let workers = args.cores.len().max(1);
    let cores = args.cores.clone();
    let owners: Vec<u8> = (0..names.len()).map(|i| (i % workers) as u8).collect();
    let counters = CounterSet::new(workers, names.len());
    let mut mesh = HandoffMesh::new(workers, 1024);
    let fastpath = fastpathctl::load(&args)?;
    let xdp = XdpConfig {
        attach: match args.xdp_mode {
            AttachChoice::Auto => AttachMode::Auto,
            AttachChoice::Native => AttachMode::Native,
            AttachChoice::Generic => AttachMode::Generic,
        },
        busy_poll: if args.no_busy_poll {
            None
        } else {
            XdpConfig::default().busy_poll
        },
        napi: (!args.no_napi_tuning).then(|| napi_policy(&args)),
        frames_per_port: args.frames_per_port,
        multi_buffer: !args.no_multi_buffer,
        // Segments of a guest's TSO super-frames must fit every port they may leave by.
        segment_mtu: smallest_mtu(&names)?,
        fastpath: fastpath.clone().map(SharedFastPath),
        ..XdpConfig::default()
    };
    if let Some(dir) = &args.capture {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create capture directory {}", dir.display()))?;
    }
    // A run killed before it could restore its interfaces left their originals on disk.
    if let Some(dir) = &xdp.napi_state_dir {
        for name in vhostports::interfaces(&names) {
            match restore_napi_leftover(name, dir) {
                Ok(Some(knobs)) => {
                    println!("{name}: restored the NAPI settings a killed run left ({knobs})")
                }
                Ok(None) => {}
                Err(e) => eprintln!("warning: {e}"),
            }
        }
    }

    let links = Arc::new(PortLinks::new());
    let mut sets = PortSets::new(
        names.clone(),
        plan.roles.clone(),
        xdp.clone(),
        args.capture.clone(),
    );
    let mut napi_guards = Vec::new();
    let mut startup: Vec<(PortId, u32, String)> = Vec::new();
    let mut built = Vec::with_capacity(workers);
    let mut rx_ends: Vec<HandoffRx> = mesh.rx.drain(..).collect();
    let mut tx_ends: Vec<HandoffTx> = mesh.tx.drain(..).collect();
    for w in (0..workers).rev() {
        if stop.load(Ordering::Relaxed) {
            // Stopped while starting: what was opened closes on the way out.
            println!("vnet-bench run: stopped before it started");
            return Ok(());
        }
        let ids: Vec<PortId> = (0..names.len())
            .filter(|i| i % workers == w)
            .map(|i| i as PortId)
            .collect();
        let opened = sets.open(&ids, &[], false, &mut Vec::new())?;
        napi_guards.extend(opened.guards);
        startup.extend(opened.bound);
        let handoff = (
            tx_ends.pop().expect("tx end"),
            rx_ends.pop().expect("rx end"),
        );
        let mut worker = Worker::new(
            w,
            opened.ports,
            &owners,
            opened.pool,
            plan.build(w, workers)?,
            counters.worker(w),
            handoff,
            WorkerConfig::default(),
        );
        worker.set_links(links.clone());
        if let Some(fp) = &fastpath {
            worker.set_fastpath(FastPathLink::new(
                fp.clone(),
                fp.capacity() as usize,
                Duration::from_millis(args.offload_sync_ms),
            ));
        }
        built.push(worker);
    }
    built.reverse();
    startup.sort_by_key(|(id, _, _)| *id);
    for (id, ifindex, line) in &startup {
        println!("{line}");
        if let (Some(dir), true) = (&state_dir, *ifindex != 0) {
            if let Some(warning) = owner::record_bound(dir, &names[*id as usize], *ifindex) {
                eprintln!("{warning}");
            }
        }
    }
    let bound: Vec<u32> = startup.iter().map(|(_, ifindex, _)| *ifindex).collect();
    let (mut linkctl, down) = LinkControl::new(
        names.clone(),
        plan.roles.clone(),
        owners.clone(),
        sets,
        &bound,
        links,
        counters.clone(),
        state_dir.clone(),
    );
    for line in down {
        println!("{line}");
    }
    let mut redirects = fastpath
        .as_ref()
        .map(|fp| RedirectWatcher::new(fp.clone(), names.clone()));
    if let Some(w) = &mut redirects {
        w.tick().iter().for_each(|l| println!("{l}"));
    }
    println!(
        "vnet-bench run: {}, {} ports, {} worker(s) on cores {}, offload={}; Ctrl-C to stop",
        plan.summary,
        names.len(),
        workers,
        if cores.is_empty() {
            "unpinned".to_string()
        } else {
            cores
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        },
        match &fastpath {
            Some(fp) => format!(
                "xdp ({} flows each switched and translated, sync every {} ms)",
                fp.capacity(),
                args.offload_sync_ms
            ),
            None => "off".to_string(),
        }
    );

    let dhcp_servers = plan.dhcp_servers();
    let control = match &plan.recipe {
        modespec::Recipe::Nat(spec) => {
            let path = args.control.clone().unwrap_or_else(|| {
                std::path::PathBuf::from(format!("/run/vnet-bench/{}.sock", names[0]))
            });
            let group = args.control_group.as_deref().map(group_id).transpose()?;
            let server = ControlServer::start(&path, spec, group)?;
            println!(
                "port-forward control: vnet-bench natpf --control {} add|delete|list",
                server.path().display()
            );
            Some(server)
        }
        modespec::Recipe::Segment(_) => None,
    };
    let mut running = Workers::start(built, &cores)?;
    let interval =
        (args.stats_interval > 0.0).then(|| Duration::from_secs_f64(args.stats_interval));
    let mut last = StdInstant::now();
    let mut last_lease_flush = StdInstant::now();
    let mut advisor = OffloadAdvisor::new(names.len());
    let mut napi_auto = NapiController::new(xdp.napi, napi_guards);
    let mut failure = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let totals = counters.snapshot();
        for line in advisor.news(&names, &totals) {
            println!("{line}");
        }
        if let Some(ctl) = &mut napi_auto {
            for line in ctl.tick(&totals, &names) {
                eprintln!("{line}");
            }
        }
        if let Some(w) = &mut redirects {
            w.tick().iter().for_each(|l| println!("{l}"));
        }
        match linkctl.tick(&mut running, &mut napi_auto) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        // The lease file is written here, on the control thread, never by a worker.
        if last_lease_flush.elapsed() >= Duration::from_secs(1) {
            last_lease_flush = StdInstant::now();
            for (_, server) in &dhcp_servers {
                let mut server = server.lock().unwrap_or_else(|e| e.into_inner());
                let now = vnet_core::time::Instant::now();
                if let Err(e) = server.flush_if_dirty(now, std::time::SystemTime::now()) {
                    eprintln!("warning: could not write the lease file: {e}");
                }
            }
        }
        if running.any_finished() {
            break;
        }
        if let Some(iv) = interval {
            if last.elapsed() >= iv {
                last = StdInstant::now();
                print_counters(&names, &counters.snapshot());
            }
        }
    }
    let (stopped, panicked) = running.stop();
    // The ports close here (XDP programs detached, sockets closed); the NAPI settings
    // are restored when the last holder of their guards (the controller) goes.
    drop(stopped);
    if let Some(dir) = &state_dir {
        names.iter().for_each(|name| owner::remove(dir, name));
    }
    drop(control);
    println!("vnet-bench run: stopped; final counters:");
    print_counters(&names, &counters.snapshot());
    if let Some(ctl) = &napi_auto {
        for line in ctl.report(&names) {
            println!("{line}");
        }
    }
    for (ip, server) in &dhcp_servers {
        let mut server = server.lock().unwrap_or_else(|e| e.into_inner());
        let c = server.counters();
        println!(
            "dhcp {ip}: discovers={} requests={} offers={} acks={} naks={} declines={} releases={} informs={} exhausted={} port_limit={} malformed={} active_leases={}",
            c.discovers_received, c.requests_received, c.offers, c.acks, c.naks, c.declines,
            c.releases, c.informs, c.exhausted, c.port_limit, c.malformed, server.leases().active()
        );
        // A no-op without --lease-file.
        if let Err(e) = server.save(
            vnet_core::time::Instant::now(),
            std::time::SystemTime::now(),
        ) {
            eprintln!("warning: could not write the lease file: {e}");
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if panicked {
        bail!("a worker stopped unexpectedly; see the message above");
    }
    Ok(())
}

/// The id of group `name` (or a number), from `/etc/group`.
fn group_id(name: &str) -> Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name))
                .then(|| f.nth(1).and_then(|g| g.parse().ok()))
                .flatten()
        })
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--control-group {name}: no such group in /etc/group; pick one from there or give its number"
            )
        })
}

/// The NAPI policy the flags ask for.
fn napi_policy(args: &RunArgs) -> NapiPolicy {
    let deferral = NapiSettings {
        defer_hard_irqs: args.napi_defer_hard_irqs,
        gro_flush_timeout_ns: args.gro_flush_timeout,
    };
    match args.napi {
        NapiChoice::Fixed => NapiPolicy::Fixed(deferral),
        NapiChoice::Auto => NapiPolicy::Auto(AutoNapi {
            high: deferral,
            up_pps: args.napi_auto_pps,
            down_pps: args.napi_auto_pps / 2,
            ..AutoNapi::default()
        }),
    }
}

/// The smallest MTU of the dataplane's interfaces.
fn smallest_mtu(names: &[String]) -> Result<u32> {
    let mut mtu = u32::MAX;
    for n in vhostports::interfaces(names) {
        mtu = mtu.min(vnet_core::port::xdp::interface_mtu(n)?);
    }
    Ok(if mtu == u32::MAX { 1500 } else { mtu })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_groups_resolve_by_name_or_number_and_unknown_ones_are_refused() {
        assert_eq!(group_id("root").unwrap(), 0);
        assert_eq!(group_id("4242").unwrap(), 4242);
        let e = group_id("no-such-group-here").unwrap_err().to_string();
        assert!(e.contains("no such group in /etc/group"), "{e}");
    }
}

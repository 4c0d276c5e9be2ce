//! `vnet-bench run`: the dataplane as a service on existing interfaces until Ctrl-C.
//!
//! Ports are numbered in command-line order (VMs first, then host, then uplink) and
//! spread round-robin over the workers (one per `--cores` entry); each worker binds its
//! ports with one shared UMEM. The stop flag is set by SIGINT/SIGTERM; workers then
//! leave their loops, the ports are dropped (XDP programs detached, sockets closed,
//! interface settings restored) and the final counters are printed.

use crate::cli::{AttachChoice, NapiChoice, RunArgs};
use crate::control::ControlServer;
use crate::napictl::NapiController;
use crate::stats::{print_counters, OffloadAdvisor};
use crate::{modespec, preflight};
use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};
use vnet_core::counters::CounterSet;
use vnet_core::engine::{spawn_workers, HandoffMesh, HandoffRx, HandoffTx, Worker, WorkerConfig};
use vnet_core::frame::{FramePool, PortId};
use vnet_core::port::capture::CapturePort;
use vnet_core::port::xdp::{
    open_worker_ports, AttachMode, AutoNapi, NapiGuard, NapiPolicy, NapiSettings, XdpConfig,
};
use vnet_core::port::Port;

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
    preflight::require_interfaces(names.iter().map(String::as_str))?;
    if names.len() > vnet_core::frame::MAX_PORTS {
        bail!(
            "at most {} ports are supported",
            vnet_core::frame::MAX_PORTS
        );
    }

    let workers = args.cores.len().max(1);
    let cores = args.cores.clone();
    let owners: Vec<u8> = (0..names.len()).map(|i| (i % workers) as u8).collect();
    let counters = CounterSet::new(workers, names.len());
    let mut mesh = HandoffMesh::new(workers, 1024);
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
        ..XdpConfig::default()
    };
    if let Some(dir) = &args.capture {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create capture directory {}", dir.display()))?;
    }

    let mut napi_guards: Vec<(usize, Arc<NapiGuard>)> = Vec::new();
    let mut built = Vec::with_capacity(workers);
    let mut rx_ends: Vec<HandoffRx> = mesh.rx.drain(..).collect();
    let mut tx_ends: Vec<HandoffTx> = mesh.tx.drain(..).collect();
    for w in (0..workers).rev() {
        let mine: Vec<(String, PortId)> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| i % workers == w)
            .map(|(i, n)| (n.clone(), i as PortId))
            .collect();
        let (pool, xports): (FramePool, _) = open_worker_ports(&mine, &xdp)?;
        let mut ports: Vec<(PortId, Box<dyn Port>)> = Vec::new();
        for ((name, id), port) in mine.iter().zip(xports) {
            if let Some(g) = port.napi() {
                napi_guards.push((*id as usize, g));
            }
            println!(
                "port {id} {name} ({}): {}",
                plan.roles[*id as usize],
                startup_detail(&port.info())
            );
            let port: Box<dyn Port> = match &args.capture {
                Some(dir) => Box::new(CapturePort::new(port, dir, name)?),
                None => Box::new(port),
            };
            ports.push((*id, port));
        }
        let handoff = (
            tx_ends.pop().expect("tx end"),
            rx_ends.pop().expect("rx end"),
        );
        built.push(Worker::new(
            w,
            ports,
            &owners,
            pool,
            plan.build(w, workers)?,
            counters.worker(w),
            handoff,
            WorkerConfig::default(),
        ));
    }
    built.reverse();
    println!(
        "vnet-bench run: {}, {} ports, {} worker(s) on cores {}; Ctrl-C to stop",
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
    let stop = stop_flag()?;
    let handles = spawn_workers(built, &cores, stop.clone())?;
    let interval =
        (args.stats_interval > 0.0).then(|| Duration::from_secs_f64(args.stats_interval));
    let mut last = StdInstant::now();
    let mut last_lease_flush = StdInstant::now();
    let mut advisor = OffloadAdvisor::new(names.len());
    let mut napi_auto = NapiController::new(xdp.napi, napi_guards);
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
        if handles.iter().any(|h| h.thread.is_finished()) {
            stop.store(true, Ordering::Relaxed);
            break;
        }
        if let Some(iv) = interval {
            if last.elapsed() >= iv {
                last = StdInstant::now();
                print_counters(&names, &counters.snapshot());
            }
        }
    }
    let mut panicked = false;
    for h in handles {
        panicked |= h.thread.join().is_err();
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
    for n in names {
        mtu = mtu.min(vnet_core::port::xdp::interface_mtu(n)?);
    }
    Ok(if mtu == u32::MAX { 1500 } else { mtu })
}

fn startup_detail(info: &vnet_core::port::PortInfo) -> String {
    format!("{} {}", info.backend, info.detail)
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

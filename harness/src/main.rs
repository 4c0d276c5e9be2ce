//! The `vnet-bench` binary: parses the command line and hands over to the library.

use clap::Parser;
use vnet_bench::cli::{Cli, Command, ModeName, NatpfAction, PcapAction, TopoAction};
use vnet_bench::{conformance, corpus, mainjob, preflight, run, topo};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run(args)) => run::run(*args),
        Some(Command::Bench(args)) => vnet_bench::bench::run(*args),
        Some(Command::Compare(args)) => match vnet_bench::bench::compare::run(args) {
            Ok(true) => Ok(()),
            Ok(false) => std::process::exit(1),
            Err(e) => Err(e),
        },
        Some(Command::Report(args)) => vnet_bench::bench::report::run(&args),
        Some(Command::Conformance(args)) => match conformance::run(args) {
            Ok(true) => Ok(()),
            Ok(false) => std::process::exit(1),
            Err(e) => Err(e),
        },
        Some(Command::Topo { action }) => topo_command(action),
        Some(Command::Pcap {
            action: PcapAction::Gen { out },
        }) => corpus::generate(&out).map(|files| {
            println!(
                "wrote {} files to {}: {}",
                files.len(),
                out.display(),
                files.join(", ")
            )
        }),
        Some(Command::Replay {
            mode,
            pcap,
            port,
            out,
        }) => corpus::replay(mode, &pcap, &port, &out).map(|ports| {
            for (role, n) in ports {
                println!(
                    "{role:<7} {n:>6} frames -> {}",
                    out.join(format!("{role}.pcap")).display()
                );
            }
        }),
        Some(Command::Natpf { control, action }) => {
            let line = match action {
                NatpfAction::Add { rule } => format!("add {rule}"),
                NatpfAction::Delete { name } => format!("delete {name}"),
                NatpfAction::List => "list".to_string(),
            };
            vnet_bench::control::request(&control, &line).map(|answer| println!("{answer}"))
        }
        None => mainjob::main_job(
            cli.mode.unwrap_or(ModeName::Internal),
            cli.backend,
            cli.guest,
        ),
    };
    if let Err(e) = result {
        // One plain sentence (with its causes, if any) and a non-zero status.
        let mut msg = format!("error: {e}");
        for cause in e.chain().skip(1) {
            msg.push_str(&format!(": {cause}"));
        }
        eprintln!("{msg}");
        std::process::exit(1);
    }
}

fn topo_command(action: TopoAction) -> anyhow::Result<()> {
    preflight::require_root("vnet-bench topo")?;
    match action {
        TopoAction::Up { mode, prefix } => {
            if mode != ModeName::Internal {
                anyhow::bail!(
                    "topology for mode {} is not implemented in this build yet",
                    mode.as_str()
                );
            }
            let t = topo::Topology::build(
                &prefix,
                &[
                    ("vm1", Some(&format!("{}/24", mainjob::INTERNAL_VM1))),
                    ("vm2", Some(&format!("{}/24", mainjob::INTERNAL_VM2))),
                ],
            )?;
            println!("dataplane namespace: {}", t.dp_netns());
            for e in t.endpoints() {
                println!(
                    "  {:<5} netns {:<12} if {:<8} addr {:<18} dataplane side {}",
                    e.role,
                    e.netns,
                    e.ifname,
                    e.addr.as_deref().unwrap_or("-"),
                    e.dp_ifname
                );
            }
            let vms: Vec<String> = t
                .endpoints()
                .iter()
                .map(|e| format!("--vm {}", e.dp_ifname))
                .collect();
            println!(
                "start the dataplane with: ip netns exec {} vnet-bench run --mode internal {}",
                t.dp_netns(),
                vms.join(" ")
            );
            println!("remove with: vnet-bench topo down --prefix {}", t.prefix());
            t.keep();
            Ok(())
        }
        TopoAction::Down { prefix } => {
            let n = topo::remove_prefix(&prefix)?;
            println!("removed {n} namespaces");
            Ok(())
        }
    }
}

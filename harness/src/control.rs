//! The control socket of a running NAT dataplane: port-forward rules added and removed
//! while it runs (as `VBoxManage controlvm VM natpf1 ...` allows).
//!
//! Protocol: one request line per connection, one answer line. Requests: `add RULE`
//! (the `--pf` syntax of the mode), `delete NAME`, `list`. Answers start with `ok` or
//! `error: ` followed by one sentence. The control thread validates a rule against the
//! current set (a private NAPT holds the rules, so collisions are found exactly as the
//! workers would find them) and only then sends it to every worker, which applies it at
//! its next timer tick. The socket file is removed when the dataplane stops.

use crate::modespec::parse_rules;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use vnet_core::time::Instant;
use vnet_modes::nat::{Napt, NaptConfig};
use vnet_modes::natmode::pipeline::ControlMsg;
use vnet_modes::natmode::NatSpec;

/// A running control socket; stops and removes its file on drop.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Listen on `path` for rule changes to the dataplane made from `spec`.
    ///
    /// # Errors
    /// When the socket cannot be created.
    pub fn start(path: &Path, spec: &NatSpec) -> Result<ControlServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create {}", dir.display()))?;
        }
        if UnixStream::connect(path).is_ok() {
            bail!(
                "another dataplane already listens on {}; pass another --control PATH",
                path.display()
            );
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)
            .with_context(|| format!("could not listen on {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let mut validator = Napt::new(
            NaptConfig {
                max_sessions: 16,
                ..spec.config.napt.clone()
            },
            Instant::now(),
        )?;
        for rule in &spec.config.forwards {
            validator.add_forward(rule.clone())?;
        }
        let senders = spec.control.clone();
        let (flavor, vms) = (spec.config.flavor, spec.config.vms);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vnet-control".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = serve(stream, &mut validator, &senders, flavor, vms);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            })?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(
    stream: UnixStream,
    validator: &mut Napt,
    senders: &[crossbeam::channel::Sender<ControlMsg>],
    flavor: vnet_modes::natmode::NatFlavor,
    vms: usize,
) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let line = line.trim();
    let answer = match line.split_once(' ').unwrap_or((line, "")) {
        ("add", rule) => match parse_rules(flavor, vms, &[rule.trim().to_string()]) {
            Ok(mut rules) => {
                let rule = rules.remove(0);
                match validator.add_forward(rule.clone()) {
                    Ok(()) => {
                        for s in senders {
                            let _ = s.send(ControlMsg::Add(rule.clone()));
                        }
                        format!("ok added {}", rule.name)
                    }
                    Err(e) => format!("error: {e}"),
                }
            }
            Err(e) => format!("error: {e}"),
        },
        ("delete", name) => {
            let name = name.trim();
            if validator.remove_forward(name) {
                for s in senders {
                    let _ = s.send(ControlMsg::Remove(name.into()));
                }
                format!("ok deleted {name}")
            } else {
                format!("error: no rule named {name}")
            }
        }
        ("list", _) => {
            let names: Vec<String> = validator
                .forwards()
                .map(|r| {
                    format!(
                        "{},{},{},{},{},{}",
                        r.name,
                        r.proto,
                        r.external_ip.map(|i| i.to_string()).unwrap_or_default(),
                        r.external_port,
                        r.inside_ip,
                        r.inside_port
                    )
                })
                .collect();
            format!("ok {}", names.join(" "))
        }
        _ => "error: unknown request; use add RULE, delete NAME or list".to_string(),
    };
    let mut stream = stream;
    writeln!(stream, "{answer}")?;
    Ok(())
}

/// Send one request to a dataplane's control socket; returns its answer.
///
/// # Errors
/// When the socket cannot be reached, or the dataplane answers with an error.
pub fn request(path: &Path, line: &str) -> Result<String> {
    let mut stream = UnixStream::connect(path).map_err(|e| {
        anyhow!(
            "no dataplane listens on {} ({e}); check the path printed by `vnet-bench run`",
            path.display()
        )
    })?;
    writeln!(stream, "{line}")?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer)?;
    let answer = answer.trim().to_string();
    if let Some(e) = answer.strip_prefix("error: ") {
        bail!("{e}");
    }
    Ok(answer.trim_start_matches("ok").trim().to_string())
}

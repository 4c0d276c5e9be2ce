//! The control socket of a running NAT dataplane: port-forward rules added and removed
//! while it runs (as `VBoxManage controlvm VM natpf1 ...` allows).
//!
//! Protocol: one request line per connection, one answer line. Requests: `add RULE`
//! (the `--pf` syntax of the mode), `delete NAME`, `list`. Answers start with `ok` or
//! `error: ` followed by one sentence. The control thread validates a rule against the
//! current set (a private NAPT holds the rules, so collisions are found exactly as the
//! workers would find them) and only then sends it to every worker, which applies it at
//! its next timer tick. The socket file is removed when the dataplane stops.
//!
//! Access: the socket file is made mode 0600 (root only) right after it is bound, or 0660
//! and owned by `--control-group` when one is given; connecting needs write permission
//! on it. A request longer than [`MAX_REQUEST`] bytes, or not UTF-8, gets an error line;
//! nothing a client sends can stop the control thread or the dataplane.

use crate::modespec::parse_rules;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
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
    /// Listen on `path` for rule changes to the dataplane made from `spec`; only root may
    /// connect, and members of `group` (a group id) when one is given.
    ///
    /// # Errors
    /// When the socket cannot be created or its permissions set.
    pub fn start(path: &Path, spec: &NatSpec, group: Option<u32>) -> Result<ControlServer> {
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
        restrict(path, group)?;
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

/// The longest request line accepted, in bytes.
pub const MAX_REQUEST: usize = 4096;

/// Make the socket file root's (0600), or `group`'s too (0660).
fn restrict(path: &Path, group: Option<u32>) -> Result<()> {
    let mode = match group {
        Some(gid) => {
            std::os::unix::fs::chown(path, None, Some(gid))
                .with_context(|| format!("could not give {} to group {gid}", path.display()))?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("could not set the permissions of {}", path.display()))
}

/// Read one request line of at most [`MAX_REQUEST`] bytes; `Err` holds the answer for a
/// request that cannot be served (too long, not text, cut off).
fn read_request(stream: &UnixStream) -> std::result::Result<String, String> {
    let mut raw = Vec::new();
    let mut reader = BufReader::new(stream.take(MAX_REQUEST as u64 + 1));
    if let Err(e) = reader.read_until(b'\n', &mut raw) {
        return Err(format!("error: could not read the request ({e})"));
    }
    if raw.len() > MAX_REQUEST {
        return Err(format!(
            "error: request longer than {MAX_REQUEST} bytes; send one line: add RULE, delete NAME or list"
        ));
    }
    String::from_utf8(raw).map_err(|_| "error: the request is not UTF-8 text".to_string())
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
    let line = match read_request(&stream) {
        Ok(line) => line,
        Err(answer) => {
            let mut stream = stream;
            writeln!(stream, "{answer}")?;
            return Ok(());
        }
    };
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
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            anyhow!(
                "permission denied on {}: the control socket is root's; run as root, or start the dataplane with --control-group GROUP for a group you are in",
                path.display()
            )
        } else {
            anyhow!(
                "no dataplane listens on {} ({e}); check the path printed by `vnet-bench run`",
                path.display()
            )
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use vnet_modes::natmode::{NatFlavor, NatModeConfig};

    fn server(tag: &str, group: Option<u32>) -> (ControlServer, PathBuf) {
        let dir = std::env::temp_dir().join(format!("vnet-ctl-{tag}-{}", std::process::id()));
        let path = dir.join("c.sock");
        let config = NatModeConfig::new(
            NatFlavor::PerVm,
            1,
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 0, 1),
        );
        let spec = NatSpec::new(config, 1, Instant::now()).expect("a valid NAT");
        (
            ControlServer::start(&path, &spec, group).expect("listens"),
            path,
        )
    }

    fn raw(path: &Path, bytes: &[u8]) -> String {
        let mut s = UnixStream::connect(path).expect("connects");
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut answer = String::new();
        BufReader::new(&s)
            .read_line(&mut answer)
            .expect("an answer");
        answer.trim().to_string()
    }

    #[test]
    fn the_socket_is_roots_alone_unless_a_group_is_given() {
        let (srv, path) = server("mode", None);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(srv);
        assert!(!path.exists(), "removed on stop");
        // This process's effective group (the second field of `Gid:`).
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let gid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Gid:"))
            .and_then(|v| v.split_whitespace().nth(1))
            .and_then(|g| g.parse().ok())
            .expect("Gid: in /proc/self/status");
        let (srv, path) = server("group", Some(gid));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), gid);
        drop(srv);
    }

    #[test]
    fn oversized_and_binary_requests_get_an_error_and_the_server_keeps_serving() {
        let (srv, path) = server("bad", None);
        let long = vec![b'a'; MAX_REQUEST * 4];
        let a = raw(&path, &long);
        assert!(
            a.starts_with("error: request longer than 4096 bytes"),
            "{a}"
        );
        let a = raw(&path, b"\xff\xfe\x00add\n");
        assert_eq!(a, "error: the request is not UTF-8 text");
        let a = raw(&path, b"add tcp,,,1,,2\n");
        assert!(a.starts_with("error: "), "{a}");
        assert_eq!(request(&path, "list").expect("still serving"), "");
        assert_eq!(
            request(&path, "add ssh,tcp,,2222,,22").expect("a valid rule"),
            "added ssh"
        );
        assert_eq!(
            request(&path, "list").unwrap(),
            "ssh,tcp,,2222,10.0.2.15,22"
        );
        drop(srv);
    }
}

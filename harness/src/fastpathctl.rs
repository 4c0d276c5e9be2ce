//! `run --offload xdp` on the control thread: load the fast path, and keep each port's
//! "may take redirected frames" flag true to what the kernel can deliver.
//!
//! XDP_REDIRECT into a veth succeeds only when the veth's peer has NAPI (an XDP program
//! or GRO on); the kernel says so in the veth's `xdp_features` (NDO_XMIT) and drops
//! redirected frames otherwise. The watcher asks every ~200 ms and flips the port's flag
//! in the program's map, so the program sends flows toward a port that cannot take them
//! to the core instead (counted as `miss_egress`). A change is printed once.
//!
//! Invariants: the flag is on only while the last answer said NDO_XMIT; an interface
//! that cannot be asked (gone, renumbered) has it off.

use crate::cli::{OffloadChoice, RunArgs};
use anyhow::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vnet_core::frame::PortId;
use vnet_core::port::xdp::{FastPath, XdpFeatures};

/// How often the ports' peers are asked.
const EVERY: Duration = Duration::from_millis(200);

/// Load the fast path if `args` ask for it: `None` with `--offload off`. A load failure
/// (no clang at build time, an old kernel) is an error with one sentence.
///
/// # Errors
/// See [`FastPath::load`].
pub fn load(args: &RunArgs) -> Result<Option<Arc<FastPath>>> {
    match args.offload {
        OffloadChoice::Off => Ok(None),
        OffloadChoice::Xdp => Ok(Some(Arc::new(FastPath::load(args.offload_entries)?))),
    }
}

/// Keeps the ports' redirect flags current.
#[derive(Debug)]
pub struct RedirectWatcher {
    fp: Arc<FastPath>,
    names: Vec<String>,
    /// Last flag set per port (`None`: not set yet).
    state: Vec<Option<bool>>,
    features: Option<XdpFeatures>,
    next: Instant,
}

impl RedirectWatcher {
    /// A watcher over `names` (port id = index).
    pub fn new(fp: Arc<FastPath>, names: Vec<String>) -> Self {
        let n = names.len();
        Self {
            fp,
            names,
            state: vec![None; n],
            features: XdpFeatures::open().ok(),
            next: Instant::now(),
        }
    }

    /// Ask again if it is time; lines for the ports whose flag changed.
    pub fn tick(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        if Instant::now() < self.next {
            return lines;
        }
        self.next = Instant::now() + EVERY;
        if self.features.is_none() {
            self.features = XdpFeatures::open().ok();
        }
        for (id, name) in self.names.iter().enumerate() {
            if crate::vhostports::is_vhost(name) {
                // Not an XDP port: the program never sees its frames nor sends to it.
                continue;
            }
            let takes = match (&mut self.features, ifindex(name)) {
                (Some(f), Some(i)) => f.query(i).is_ok_and(XdpFeatures::takes_redirects),
                _ => false,
            };
            // Set every time: a port bound again starts with the flag off.
            if self.fp.set_redirect(id as PortId, takes).is_err() || self.state[id] == Some(takes) {
                continue;
            }
            let first = self.state[id].is_none();
            self.state[id] = Some(takes);
            lines.push(match (takes, first) {
                (true, _) => format!("{name}: fast path delivers to this port"),
                (false, true) => format!(
                    "{name}: fast path does not deliver to this port (its peer has neither an XDP program nor GRO: `ethtool -K PEER gro on` lets it); flows to it take the core"
                ),
                (false, false) => format!(
                    "{name}: the port's peer cannot take redirected frames any more; flows to it take the core"
                ),
            });
        }
        lines
    }
}

fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a NUL-terminated string alive for the call; if_nametoindex only
    // reads it and returns 0 when there is no such interface.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

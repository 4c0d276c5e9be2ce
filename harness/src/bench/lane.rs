//! A measured stream's two ends, whatever carries them: the XDP generator and sink on
//! veths ([`Generator`], [`Sink`]), or the virtio driver on vhost-user rings
//! ([`VirtioTraffic`], which is both ends when the stream runs guest to guest, one
//! object shared by the two).

use super::gen::{FrameSpec, GenReport, Generator};
use super::sink::{Sink, SinkReport};
use super::vhost_traffic::VirtioTraffic;
use anyhow::{bail, Result};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// The sending end of a stream.
#[derive(Debug)]
pub enum LaneGen {
    /// The XDP generator on a veth.
    Xdp(Generator),
    /// A guest's transmit ring on a vhost-user port.
    Virtio(Arc<VirtioTraffic>),
}

/// The receiving end of a stream.
#[derive(Debug)]
pub enum LaneSink {
    /// The XDP sink on a veth.
    Xdp(Sink),
    /// A guest's receive ring on a vhost-user port (read by its sender's thread).
    Virtio(Arc<VirtioTraffic>),
}

impl LaneGen {
    /// Send for `duration` at `pps` (0: unpaced), frames tagged `tag`.
    ///
    /// # Errors
    /// As the generator's `run`.
    pub fn run(
        &self,
        tag: u16,
        pps: f64,
        duration: Duration,
        stop: &AtomicBool,
    ) -> Result<GenReport> {
        match self {
            LaneGen::Xdp(g) => g.run(tag, pps, duration, stop),
            LaneGen::Virtio(v) => v.run(tag, pps, duration, stop),
        }
    }

    /// Send `frame` frames from now on.
    ///
    /// # Errors
    /// As the generator's `set_frame`.
    pub fn set_frame(&mut self, frame: &FrameSpec) -> Result<()> {
        match self {
            LaneGen::Xdp(g) => g.set_frame(frame),
            LaneGen::Virtio(v) => v.set_frame(frame),
        }
    }

    /// `--new-flows` on or off.
    ///
    /// # Errors
    /// When the XDP generator's config cannot be written.
    pub fn set_new_flows(&self, on: bool) -> Result<()> {
        match self {
            LaneGen::Xdp(g) => g.set_new_flows(on),
            LaneGen::Virtio(v) => {
                v.set_new_flows(on);
                Ok(())
            }
        }
    }
}

impl LaneSink {
    /// Start counting trial `tag`.
    ///
    /// # Errors
    /// When the XDP sink's maps cannot be written.
    pub fn reset(&self, tag: u16) -> Result<()> {
        match self {
            LaneSink::Xdp(s) => s.reset(tag),
            LaneSink::Virtio(v) => {
                v.reset(tag);
                Ok(())
            }
        }
    }

    /// What was received since the last reset.
    ///
    /// # Errors
    /// When the XDP sink's maps cannot be read.
    pub fn read(&self) -> Result<SinkReport> {
        match self {
            LaneSink::Xdp(s) => s.read(),
            LaneSink::Virtio(v) => Ok(v.read()),
        }
    }

    /// `--check-flows`: count distinct flows (the XDP sink only).
    ///
    /// # Errors
    /// When asked of a vhost-user guest, or the XDP sink's config cannot be written.
    pub fn count_flows(&self, on: bool) -> Result<()> {
        match self {
            LaneSink::Xdp(s) => s.count_flows(on),
            LaneSink::Virtio(_) if on => {
                bail!("--check-flows counts flows in the XDP sink on a veth; a vhost-user guest's receiver does not count them")
            }
            LaneSink::Virtio(_) => Ok(()),
        }
    }

    /// How the sink is attached, for the report.
    pub fn attach_mode(&self) -> &'static str {
        match self {
            LaneSink::Xdp(s) => s.attach_mode(),
            LaneSink::Virtio(_) => {
                "virtio receive ring (vhost-user), read by the generator's thread"
            }
        }
    }
}

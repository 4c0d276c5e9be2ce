//! The worker's UMEM: one xsk-rs [`Umem`] for every port of a worker, the
//! [`FramePool`] laid over its memory, and the table of frame descriptors.
//!
//! Layout (xsk-rs 0.11, aligned chunks): frame `i` starts at `i * frame_size`; its
//! packet data starts `data_offset = xdp_headroom (256) + frame_headroom (0)` bytes in.
//! xsk-rs hands out one [`FrameDesc`] per frame with `addr = i * frame_size +
//! data_offset`, which is exactly [`FramePool::addr_of`]`(i)`; both facts are checked
//! when the pool is built. xsk-rs has no public `FrameDesc` constructor, so the
//! descriptors it returned are kept in a table indexed by frame number and copied
//! whenever a frame goes to a fill or tx ring.
//!
//! Invariants: the table has exactly `count` entries and entry `i` names frame `i`;
//! the pool's base pointer is the start of the UMEM's mapping, valid while the pool
//! (which holds a clone of the [`Umem`]) lives.

use super::error::XdpError;
use super::XdpConfig;
use crate::frame::FramePool;
use std::io;
use std::num::NonZeroU32;
use xsk_rs::config::{FrameSize, QueueSize, UmemConfig};
use xsk_rs::{FrameDesc, Umem};

/// Frame geometry of a worker's UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Number of frames.
    pub count: u32,
    /// Size of one frame (a power of two, 2048 or 4096).
    pub frame_size: usize,
    /// Offset of packet data in a frame.
    pub data_offset: usize,
}

impl Layout {
    /// Bytes the UMEM occupies.
    pub fn bytes(&self) -> u64 {
        self.count as u64 * self.frame_size as u64
    }
}

fn qsize(name: &str, v: u32) -> Result<QueueSize, XdpError> {
    QueueSize::new(v).map_err(|_| XdpError::InvalidConfig {
        reason: format!("{name} must be a power of two, got {v}"),
    })
}

/// The xsk-rs UMEM configuration for `cfg`.
pub(crate) fn umem_config(cfg: &XdpConfig) -> Result<UmemConfig, XdpError> {
    let bad_frame = || XdpError::InvalidConfig {
        reason: format!(
            "frame_size must be 2048 or 4096 (a power of two from 2048 to the page size), \
             got {}",
            cfg.frame_size
        ),
    };
    if !cfg.frame_size.is_power_of_two() || cfg.frame_size > 4096 {
        return Err(bad_frame());
    }
    let frame_size = FrameSize::new(cfg.frame_size).map_err(|_| bad_frame())?;
    UmemConfig::builder()
        .frame_size(frame_size)
        .fill_queue_size(qsize("fill_ring", cfg.fill_ring)?)
        .comp_queue_size(qsize("comp_ring", cfg.comp_ring)?)
        .frame_headroom(0)
        .build()
        .map_err(|e| XdpError::InvalidConfig {
            reason: e.to_string(),
        })
}

/// The layout `Umem::new(config, count)` produces.
pub(crate) fn layout(config: &UmemConfig, count: u32) -> Layout {
    Layout {
        count,
        frame_size: config.frame_size().get() as usize,
        data_offset: (config.xdp_headroom() + config.frame_headroom()) as usize,
    }
}

/// The OS error inside an xsk-rs error, if it carries one.
pub(crate) fn os_error(err: &(dyn std::error::Error + 'static)) -> io::Error {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(code) = io.raw_os_error() {
                return io::Error::from_raw_os_error(code);
            }
            return io::Error::new(io.kind(), io.to_string());
        }
        cur = e.source();
    }
    io::Error::other(err.to_string())
}

/// Create a UMEM of `layout.count` frames.
///
/// # Errors
/// [`XdpError::OutOfMemory`] (ENOMEM/ENOBUFS, e.g. the locked-memory limit),
/// [`XdpError::NotPermitted`], [`XdpError::NoAfXdp`], or [`XdpError::Os`].
pub(crate) fn create(
    config: UmemConfig,
    layout: Layout,
    ifname: &str,
) -> Result<(Umem, Vec<FrameDesc>), XdpError> {
    let count = NonZeroU32::new(layout.count).ok_or_else(|| XdpError::InvalidConfig {
        reason: "frames_per_port must be at least 1".to_string(),
    })?;
    let (umem, descs) = Umem::new(config, count, false).map_err(|e| {
        XdpError::from_os(
            "create the AF_XDP UMEM",
            ifname,
            0,
            (layout.count as u64, layout.bytes()),
            os_error(&e),
        )
    })?;
    check_descs(&descs, layout)?;
    Ok((umem, descs))
}

/// Check that descriptor `i` names frame `i` at the pool's data offset.
pub(crate) fn check_descs(descs: &[FrameDesc], layout: Layout) -> Result<(), XdpError> {
    if descs.len() != layout.count as usize {
        return Err(XdpError::InvalidConfig {
            reason: format!(
                "xsk-rs returned {} frame descriptors for {} frames",
                descs.len(),
                layout.count
            ),
        });
    }
    for (i, d) in descs.iter().enumerate() {
        let want = i * layout.frame_size + layout.data_offset;
        if d.addr() != want {
            return Err(XdpError::InvalidConfig {
                reason: format!(
                    "xsk-rs put frame {i} at UMEM address {} instead of {want}; this build of \
                     vnet-core does not match the xsk-rs frame layout",
                    d.addr()
                ),
            });
        }
    }
    Ok(())
}

/// The [`FramePool`] over `umem`'s memory; no frame starts free.
///
/// # Errors
/// [`XdpError::InvalidConfig`] if the pool's addresses would not match the descriptors.
pub(crate) fn pool_over(
    umem: &Umem,
    descs: &[FrameDesc],
    layout: Layout,
) -> Result<FramePool, XdpError> {
    let first = descs[0];
    // SAFETY: `first` is a descriptor `Umem::new` returned for this very UMEM, and no
    // frame has been handed to the kernel or to anyone else yet, so reading (a zero-length
    // view of) frame 0 aliases nothing.
    let data0 = unsafe { umem.data(&first) }.contents().as_ptr();
    // xsk-rs computes `data0` as `mmap_base + first.addr()`, so subtracting the address
    // gives the start of the mapping. Integer arithmetic and an int-to-pointer cast are
    // used deliberately: the mapping's address was exposed to C (libxdp registered it
    // with the kernel), so the rebuilt pointer may access the whole mapping, not just
    // the zero-length slice it was read from.
    let base = (data0 as usize - first.addr()) as *mut u8;
    // SAFETY: `base .. base + count * frame_size` is the UMEM mapping (xsk-rs maps
    // exactly `count * frame_size` bytes, read-write), which stays mapped while any clone
    // of `umem` lives; the pool keeps one as its keepalive. Frames are shared with the
    // kernel only through the rings, and the AF_XDP ports (the only ring users) hand a
    // frame to the kernel only after taking it from the pool and give it back only after
    // the kernel returned it, so nothing else touches a frame while the pool owns it.
    let pool = unsafe {
        FramePool::from_raw(
            base,
            layout.count,
            layout.frame_size,
            layout.data_offset,
            Box::new(umem.clone()),
        )
    };
    for (i, d) in descs.iter().enumerate() {
        if pool.addr_of(i as u32) != d.addr() as u64 || pool.frame_of(d.addr() as u64) != i as u32 {
            return Err(XdpError::InvalidConfig {
                reason: format!(
                    "frame {i}: pool address {} differs from the xsk-rs descriptor address {}",
                    pool.addr_of(i as u32),
                    d.addr()
                ),
            });
        }
    }
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_xsk_rs_defaults() {
        let cfg = XdpConfig::default();
        let uc = umem_config(&cfg).unwrap();
        let l = layout(&uc, 8);
        assert_eq!(l.frame_size, 2048);
        assert_eq!(l.data_offset, 256);
        assert_eq!(l.bytes(), 8 * 2048);
        assert_eq!(uc.mtu() as usize, l.frame_size - l.data_offset);
    }

    #[test]
    fn bad_geometry_is_refused_with_a_reason() {
        for (frame_size, fill) in [(3000, 2048), (1024, 2048), (8192, 2048), (2048, 1000)] {
            let cfg = XdpConfig {
                frame_size,
                fill_ring: fill,
                ..XdpConfig::default()
            };
            let e = umem_config(&cfg).unwrap_err();
            assert!(matches!(e, XdpError::InvalidConfig { .. }), "{e}");
        }
    }

    #[test]
    fn os_errors_are_dug_out_of_wrapped_errors() {
        #[derive(Debug)]
        struct Wrap(io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(io::Error::from_raw_os_error(libc::EBUSY));
        assert_eq!(os_error(&e).raw_os_error(), Some(libc::EBUSY));
    }
}

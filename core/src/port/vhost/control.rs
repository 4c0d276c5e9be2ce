//! The vhost-user control channel: what the frontend (QEMU, DPDK's `virtio_user`) asks
//! of the device, recorded as [`Change`]s for the worker to apply.
//!
//! The protocol itself (framing, file descriptors, REPLY_ACK) is rust-vmm's `vhost`
//! crate ([`vhost::vhost_user::BackendReqHandler`]); this module is the device's answer
//! to each request. It never touches guest memory or the rings: the worker owns those,
//! and calls the request handler itself between bursts, on its own thread, so the
//! [`Control`] behind its mutex is only ever locked by that thread (no contention, and
//! no lock anywhere on the frame path).
//!
//! Invariants:
//! - every accepted request that changes the device appends exactly one [`Change`], in
//!   request order; the worker drains them right after the request is handled;
//! - `GET_VRING_BASE` answers from [`Control::next_avail`], which the worker writes just
//!   before it handles a request, so the answer is the ring's position at that moment;
//! - anything this device does not offer (inflight tracking, shared memory, migration
//!   logging, config space) is refused with an error, never half done.

use super::virtio_net::{FEATURES_OFFERED, PROTOCOL_FEATURES_OFFERED};
use std::fs::File;
use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserProtocolFeatures, VhostUserShMemConfig,
    VhostUserSharedMsg, VhostUserSingleMemoryRegion, VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::{Backend, Error, GpuBackend, Result, VhostUserBackendReqHandlerMut};
use vhost::VhostUserMemoryRegionBase;

/// Queue pairs the device takes (`GET_QUEUE_NUM`): QEMU's `-netdev
/// vhost-user,queues=N` up to this.
pub const MAX_PAIRS: usize = 4;

/// Rings: queue pair `p` has the guest's receive ring `2p` and its transmit ring
/// `2p + 1`, the virtio-net layout.
pub const QUEUES: usize = 2 * MAX_PAIRS;

/// Largest ring the device accepts (the virtio maximum for a split ring).
pub const MAX_RING: u32 = 32768;

/// One region of the frontend's memory table.
#[derive(Debug)]
pub struct Region {
    /// Guest physical address of its first byte.
    pub gpa: u64,
    /// Length in bytes.
    pub size: u64,
    /// The frontend's own virtual address of its first byte (ring addresses are given
    /// in these).
    pub user_addr: u64,
    /// Offset of the region in `file`.
    pub mmap_offset: u64,
    /// The memory, shared by the frontend.
    pub file: File,
}

/// A ring's addresses, in the frontend's virtual addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingAddrs {
    /// Descriptor table.
    pub desc: u64,
    /// Available (driver) ring.
    pub avail: u64,
    /// Used (device) ring.
    pub used: u64,
}

/// What a request changed, for the worker to apply in order.
#[derive(Debug)]
pub enum Change {
    /// Features acknowledged by the driver.
    Features(u64),
    /// Protocol features acknowledged by the frontend.
    ProtocolFeatures(u64),
    /// A new memory table (replaces the old one entirely).
    MemTable(Vec<Region>),
    /// A ring's size.
    RingSize(usize, u16),
    /// A ring's addresses.
    RingAddrs(usize, RingAddrs),
    /// A ring's first available index.
    RingBase(usize, u16),
    /// The ring starts (its kick arrived; the file is unused: the worker polls).
    Kick(usize),
    /// The eventfd to signal when the ring has used buffers (`None`: never signal).
    Call(usize, Option<File>),
    /// The ring is enabled or disabled.
    Enable(usize, bool),
    /// `GET_VRING_BASE`: the ring stops.
    Stop(usize),
    /// `RESET_OWNER` / `RESET_DEVICE`: back to the state of a fresh connection.
    Reset,
}

/// The device's answers to the frontend, and the changes they made.
#[derive(Debug, Default)]
pub struct Control {
    /// Changes not yet applied by the worker.
    pub changes: Vec<Change>,
    /// Each ring's next available index, as the worker last wrote it.
    pub next_avail: [u16; QUEUES],
    acked_protocol: u64,
}

fn ring(index: u32) -> Result<usize> {
    let i = index as usize;
    if i < QUEUES {
        Ok(i)
    } else {
        Err(Error::InvalidParam)
    }
}

fn refused<T>(what: &'static str) -> Result<T> {
    Err(Error::InvalidOperation(what))
}

impl VhostUserBackendReqHandlerMut for Control {
    fn set_owner(&mut self) -> Result<()> {
        Ok(())
    }

    fn reset_owner(&mut self) -> Result<()> {
        self.changes.push(Change::Reset);
        Ok(())
    }

    fn reset_device(&mut self) -> Result<()> {
        self.changes.push(Change::Reset);
        Ok(())
    }

    fn get_features(&mut self) -> Result<u64> {
        Ok(FEATURES_OFFERED)
    }

    fn set_features(&mut self, features: u64) -> Result<()> {
        if features & !FEATURES_OFFERED != 0 {
            return Err(Error::InvalidParam);
        }
        self.changes.push(Change::Features(features));
        Ok(())
    }

    fn set_mem_table(
        &mut self,
        ctx: &[VhostUserMemoryRegion],
        files: Vec<File>,
        _postcopy_listening: Option<bool>,
    ) -> Result<Option<Vec<VhostUserMemoryRegionBase>>> {
        if ctx.len() != files.len() {
            return Err(Error::InvalidParam);
        }
        let regions = ctx
            .iter()
            .zip(files)
            .map(|(r, file)| Region {
                gpa: r.guest_phys_addr,
                size: r.memory_size,
                user_addr: r.user_addr,
                mmap_offset: r.mmap_offset,
                file,
            })
            .collect();
        self.changes.push(Change::MemTable(regions));
        Ok(None)
    }

    fn set_vring_num(&mut self, index: u32, num: u32) -> Result<()> {
        let i = ring(index)?;
        if num == 0 || num > MAX_RING || !num.is_power_of_two() {
            return Err(Error::InvalidParam);
        }
        self.changes.push(Change::RingSize(i, num as u16));
        Ok(())
    }

    fn set_vring_addr(
        &mut self,
        index: u32,
        flags: VhostUserVringAddrFlags,
        descriptor: u64,
        used: u64,
        available: u64,
        _log: u64,
    ) -> Result<()> {
        let i = ring(index)?;
        if flags.contains(VhostUserVringAddrFlags::VHOST_VRING_F_LOG) {
            return refused("dirty-page logging (live migration) is not supported");
        }
        self.changes.push(Change::RingAddrs(
            i,
            RingAddrs {
                desc: descriptor,
                avail: available,
                used,
            },
        ));
        Ok(())
    }

    fn set_vring_base(&mut self, index: u32, base: u32) -> Result<()> {
        let i = ring(index)?;
        let base = u16::try_from(base).map_err(|_| Error::InvalidParam)?;
        self.changes.push(Change::RingBase(i, base));
        Ok(())
    }

    fn get_vring_base(&mut self, index: u32) -> Result<VhostUserVringState> {
        let i = ring(index)?;
        self.changes.push(Change::Stop(i));
        Ok(VhostUserVringState::new(
            index,
            u32::from(self.next_avail[i]),
        ))
    }

    fn set_vring_kick(&mut self, index: u8, _fd: Option<File>) -> Result<()> {
        let i = ring(u32::from(index))?;
        self.changes.push(Change::Kick(i));
        Ok(())
    }

    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        let i = ring(u32::from(index))?;
        self.changes.push(Change::Call(i, fd));
        Ok(())
    }

    fn set_vring_err(&mut self, index: u8, _fd: Option<File>) -> Result<()> {
        ring(u32::from(index))?;
        Ok(())
    }

    fn get_protocol_features(&mut self) -> Result<VhostUserProtocolFeatures> {
        Ok(PROTOCOL_FEATURES_OFFERED)
    }

    fn set_protocol_features(&mut self, features: u64) -> Result<()> {
        if features & !PROTOCOL_FEATURES_OFFERED.bits() != 0 {
            return Err(Error::InvalidParam);
        }
        self.acked_protocol = features;
        self.changes.push(Change::ProtocolFeatures(features));
        Ok(())
    }

    fn get_queue_num(&mut self) -> Result<u64> {
        Ok(MAX_PAIRS as u64)
    }

    fn set_vring_enable(&mut self, index: u32, enable: bool) -> Result<()> {
        let i = ring(index)?;
        self.changes.push(Change::Enable(i, enable));
        Ok(())
    }

    fn get_config(
        &mut self,
        _offset: u32,
        _size: u32,
        _flags: VhostUserConfigFlags,
    ) -> Result<Vec<u8>> {
        refused("the device has no config space (the frontend keeps the MAC)")
    }

    fn set_config(
        &mut self,
        _offset: u32,
        _buf: &[u8],
        _flags: VhostUserConfigFlags,
    ) -> Result<()> {
        refused("the device has no config space (the frontend keeps the MAC)")
    }

    fn set_backend_req_fd(&mut self, _backend: Backend) {}

    fn set_gpu_socket(&mut self, _gpu_backend: GpuBackend) -> Result<()> {
        refused("not a GPU")
    }

    fn get_shared_object(&mut self, _uuid: VhostUserSharedMsg) -> Result<File> {
        refused("no shared objects")
    }

    fn get_inflight_fd(
        &mut self,
        _inflight: &VhostUserInflight,
    ) -> Result<(VhostUserInflight, File)> {
        refused("no inflight tracking")
    }

    fn set_inflight_fd(&mut self, _inflight: &VhostUserInflight, _file: File) -> Result<()> {
        refused("no inflight tracking")
    }

    fn get_max_mem_slots(&mut self) -> Result<u64> {
        refused("memory slots are not configurable")
    }

    fn add_mem_region(
        &mut self,
        _region: &VhostUserSingleMemoryRegion,
        _fd: File,
        _postcopy_listening: Option<bool>,
    ) -> Result<Option<VhostUserMemoryRegionBase>> {
        refused("memory slots are not configurable")
    }

    fn remove_mem_region(&mut self, _region: &VhostUserSingleMemoryRegion) -> Result<()> {
        refused("memory slots are not configurable")
    }

    fn set_device_state_fd(
        &mut self,
        _direction: VhostTransferStateDirection,
        _phase: VhostTransferStatePhase,
        _fd: File,
    ) -> Result<Option<File>> {
        refused("no device state transfer (migration)")
    }

    fn check_device_state(&mut self) -> Result<()> {
        refused("no device state transfer (migration)")
    }

    fn get_shmem_config(&mut self) -> Result<VhostUserShMemConfig> {
        refused("no shared memory regions")
    }

    fn set_log_base(&mut self, _log: &VhostUserLog, _file: File) -> Result<()> {
        refused("dirty-page logging (live migration) is not supported")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_indices_and_sizes_are_checked() {
        let mut c = Control::default();
        assert!(
            c.set_vring_num(QUEUES as u32, 256).is_err(),
            "{MAX_PAIRS} queue pairs at most"
        );
        assert_eq!(c.get_queue_num().unwrap(), MAX_PAIRS as u64);
        assert!(c.set_vring_num(0, 0).is_err());
        assert!(
            c.set_vring_num(0, 300).is_err(),
            "split rings are powers of two"
        );
        assert!(c.set_vring_num(0, 65536).is_err());
        assert!(c.set_vring_base(1, 70000).is_err());
        c.set_vring_num(1, 256).unwrap();
        c.set_vring_num(QUEUES as u32 - 1, 512).unwrap();
        assert!(matches!(
            c.changes[..],
            [Change::RingSize(1, 256), Change::RingSize(i, 512)] if i == QUEUES - 1
        ));
    }

    #[test]
    fn features_beyond_the_offer_are_refused() {
        let mut c = Control::default();
        assert!(c.set_features(FEATURES_OFFERED | 1 << 34).is_err());
        assert!(c.changes.is_empty());
        c.set_features(FEATURES_OFFERED).unwrap();
        assert!(matches!(c.changes[..], [Change::Features(f)] if f == FEATURES_OFFERED));
    }

    #[test]
    fn get_vring_base_answers_the_workers_position_and_stops_the_ring() {
        let mut next_avail = [0; QUEUES];
        next_avail[..2].copy_from_slice(&[7, 300]);
        let mut c = Control {
            next_avail,
            ..Control::default()
        };
        let s = c.get_vring_base(1).unwrap();
        assert_eq!((s.index, s.num), (1, 300));
        assert!(matches!(c.changes[..], [Change::Stop(1)]));
    }
}

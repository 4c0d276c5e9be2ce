//! The device state the worker owns: the frontend's memory, mapped, and the rings of
//! its queue pairs (pair 0 always; more when the frontend sets them up).
//!
//! [`Device::apply`] takes the control channel's [`Change`]s in order. A ring runs
//! (has a [`Queue`]) only while everything it needs is there: a size, addresses that
//! translate into the memory table, a memory table, a kick (the vhost-user "start",
//! which also enables it), and no `SET_VRING_ENABLE(0)` since. A ring stopped by
//! `GET_VRING_BASE` keeps its position as the base for a later start.
//!
//! Invariants:
//! - a running ring's addresses lie inside the current memory table (checked by
//!   [`Queue::is_valid`] when it starts, and again whenever the table changes);
//! - a ring found broken (an available index more than a ring ahead, a used ring that
//!   cannot be written) stops until the frontend sets it up again, counted once;
//! - every device has at most one memory table mapped; a new table unmaps the old one.

use super::control::{Change, Region, RingAddrs, QUEUES};
use super::virtio_net::F_EVENT_IDX;
use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use virtio_queue::{Queue, QueueT};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

/// Why a ring could not start or had to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingFault {
    /// A ring address is outside the memory table.
    Unmapped(&'static str, u64),
    /// The queue's layout does not fit the memory (alignment, size).
    Invalid,
    /// The driver's available index ran more than a ring ahead of the device.
    AvailIndex,
}

/// One ring as configured.
#[derive(Debug, Default)]
pub struct Ring {
    size: u16,
    addrs: Option<RingAddrs>,
    base: u16,
    kicked: bool,
    enabled: bool,
    call: Option<File>,
    /// Running when `Some`.
    pub queue: Option<Queue>,
    broken: bool,
}

impl Ring {
    /// Signal the driver (the call eventfd), if it gave one.
    pub fn signal(&mut self) {
        if let Some(f) = self.call.as_mut() {
            // An eventfd counter: the write adds 1. It fails only when the counter would
            // overflow (the driver is not reading it), which still leaves it signalled.
            let _ = f.write(&1u64.to_ne_bytes());
        }
    }
}

/// The frontend's memory and the rings of one connection.
#[derive(Debug, Default)]
pub struct Device {
    /// Features the driver acknowledged.
    pub features: u64,
    protocol: u64,
    mem: Option<Arc<GuestMemoryMmap>>,
    /// (frontend address, size, guest address) of each region.
    table: Vec<(u64, u64, u64)>,
    /// The rings: receive `2p`, transmit `2p + 1` of queue pair `p`.
    pub rings: [Ring; QUEUES],
    /// Faults seen (ring set-up and runtime), most recent last; bounded.
    pub faults: Vec<RingFault>,
    /// Faults in all.
    pub fault_count: u64,
}

/// How many faults [`Device::faults`] keeps.
const KEEP_FAULTS: usize = 8;

impl Device {
    /// A device set up in process, without a frontend (tests, benches): `mem` is the
    /// guest's memory (its addresses serve as the frontend's too), `rings` the first
    /// rings' (size, descriptor table, available ring, used ring) addresses (receive
    /// and transmit of pair 0, then of pair 1...), each started and enabled. Rings that
    /// do not fit the memory are left stopped and counted; rings beyond [`QUEUES`] are
    /// ignored.
    pub fn in_process(features: u64, mem: GuestMemoryMmap, rings: &[(u16, u64, u64, u64)]) -> Self {
        use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
        let mut d = Device {
            features,
            table: mem
                .iter()
                .map(|r| (r.start_addr().0, r.len(), r.start_addr().0))
                .collect(),
            mem: Some(Arc::new(mem)),
            ..Device::default()
        };
        for (i, &(size, desc, avail, used)) in rings.iter().take(QUEUES).enumerate() {
            let r = &mut d.rings[i];
            r.size = size;
            r.addrs = Some(RingAddrs { desc, avail, used });
            r.kicked = true;
            r.enabled = true;
            d.restart(i);
        }
        d
    }

    /// The mapped memory, when there is a table (shared, so the frame path can hold
    /// it while it works on the rings).
    pub fn memory(&self) -> Option<Arc<GuestMemoryMmap>> {
        self.mem.clone()
    }

    /// Each ring's next available index (its running queue's, or its base).
    pub fn next_avail(&self) -> [u16; QUEUES] {
        std::array::from_fn(|i| {
            let r = &self.rings[i];
            r.queue.as_ref().map_or(r.base, |q| q.next_avail())
        })
    }

    /// Whether queue pair 0's rings run (the other pairs run as the guest uses them).
    pub fn running(&self) -> bool {
        self.rings[..2].iter().all(|r| r.queue.is_some())
    }

    /// Queue pairs whose rings both run.
    pub fn pairs_running(&self) -> usize {
        self.rings
            .chunks(2)
            .filter(|p| p.iter().all(|r| r.queue.is_some()))
            .count()
    }

    /// Apply one change from the control channel. A memory table that cannot be mapped
    /// is an error (the frontend is told, and the device keeps no table).
    pub fn apply(&mut self, change: Change) -> Result<(), String> {
        match change {
            Change::Features(f) => {
                self.features = f;
                for i in 0..QUEUES {
                    self.restart(i);
                }
            }
            Change::ProtocolFeatures(p) => self.protocol = p,
            Change::MemTable(regions) => {
                self.mem = None;
                self.table.clear();
                let mem = map(&regions)?;
                self.table = regions
                    .iter()
                    .map(|r| (r.user_addr, r.size, r.gpa))
                    .collect();
                self.mem = Some(Arc::new(mem));
                for i in 0..QUEUES {
                    self.restart(i);
                }
            }
            Change::RingSize(i, n) => {
                self.stop(i);
                self.rings[i].size = n;
            }
            Change::RingAddrs(i, a) => {
                self.stop(i);
                self.rings[i].addrs = Some(a);
                self.rings[i].broken = false;
            }
            Change::RingBase(i, b) => {
                self.stop(i);
                self.rings[i].base = b;
            }
            Change::Kick(i) => {
                // A kicked ring runs, enabled, whatever was negotiated: QEMU 7.2 sends
                // pair 0's only `SET_VRING_ENABLE(1)` before the features (the protocol
                // crate refuses it then). A later `SET_VRING_ENABLE(0)` still stops it,
                // as QEMU's for the pairs the guest does not use. Frames for the guest go
                // on pair 0 only, so a pair enabled this way that the guest never fills
                // costs nothing.
                self.rings[i].kicked = true;
                self.rings[i].broken = false;
                self.rings[i].enabled = true;
                self.restart(i);
            }
            Change::Call(i, f) => self.rings[i].call = f,
            Change::Enable(i, on) => {
                self.rings[i].enabled = on;
                self.restart(i);
            }
            Change::Stop(i) => {
                self.stop(i);
                self.rings[i].kicked = false;
            }
            Change::Reset => *self = Device::default(),
        }
        Ok(())
    }

    /// Stop ring `i`, keeping its position as its base.
    fn stop(&mut self, i: usize) {
        let r = &mut self.rings[i];
        if let Some(q) = r.queue.take() {
            r.base = q.next_avail();
        }
    }

    /// (Re)start ring `i` if everything it needs is there; stop it otherwise.
    fn restart(&mut self, i: usize) {
        self.stop(i);
        let r = &self.rings[i];
        let (Some(mem), Some(a)) = (self.mem.as_ref(), r.addrs) else {
            return;
        };
        if !r.kicked || !r.enabled || r.size == 0 || r.broken {
            return;
        }
        let built = self.build(r.size, a, r.base, &mem.clone());
        match built {
            Ok(q) => self.rings[i].queue = Some(q),
            Err(f) => self.fault(i, f),
        }
    }

    fn build(
        &self,
        size: u16,
        a: RingAddrs,
        base: u16,
        mem: &GuestMemoryMmap,
    ) -> Result<Queue, RingFault> {
        let gpa = |what, va| self.gpa(va).ok_or(RingFault::Unmapped(what, va));
        let mut q = Queue::new(size).map_err(|_| RingFault::Invalid)?;
        q.try_set_desc_table_address(GuestAddress(gpa("descriptor table", a.desc)?))
            .map_err(|_| RingFault::Invalid)?;
        q.try_set_avail_ring_address(GuestAddress(gpa("available ring", a.avail)?))
            .map_err(|_| RingFault::Invalid)?;
        q.try_set_used_ring_address(GuestAddress(gpa("used ring", a.used)?))
            .map_err(|_| RingFault::Invalid)?;
        q.set_event_idx(self.features & F_EVENT_IDX != 0);
        q.set_next_avail(base);
        q.set_next_used(base);
        q.set_ready(true);
        if !q.is_valid(mem) {
            return Err(RingFault::Invalid);
        }
        // Poll mode: ask the driver not to kick (it is read, never waited for).
        let _ = q.disable_notification(mem);
        Ok(q)
    }

    /// Ring `i` is broken until the frontend sets it up again.
    pub fn break_ring(&mut self, i: usize, f: RingFault) {
        self.stop(i);
        self.rings[i].broken = true;
        self.fault(i, f);
    }

    fn fault(&mut self, _i: usize, f: RingFault) {
        self.fault_count += 1;
        if self.faults.len() == KEEP_FAULTS {
            self.faults.remove(0);
        }
        self.faults.push(f);
    }

    /// The guest address of a frontend virtual address.
    fn gpa(&self, va: u64) -> Option<u64> {
        self.table
            .iter()
            .find(|&&(ua, size, _)| va >= ua && va - ua < size)
            .map(|&(ua, _, gpa)| gpa + (va - ua))
    }
}

/// Map a memory table.
fn map(regions: &[Region]) -> Result<GuestMemoryMmap, String> {
    let mut mapped = Vec::with_capacity(regions.len());
    for r in regions {
        let file = r
            .file
            .try_clone()
            .map_err(|e| format!("memory region at {:#x}: {e}", r.gpa))?;
        let size = usize::try_from(r.size).map_err(|_| "memory region too large".to_string())?;
        let m = MmapRegion::from_file(FileOffset::new(file, r.mmap_offset), size)
            .map_err(|e| format!("mapping the memory region at {:#x}: {e}", r.gpa))?;
        let g = GuestRegionMmap::new(m, GuestAddress(r.gpa))
            .ok_or_else(|| format!("memory region at {:#x} overflows", r.gpa))?;
        mapped.push(g);
    }
    GuestMemoryMmap::from_regions(mapped).map_err(|e| format!("memory table: {e}"))
}

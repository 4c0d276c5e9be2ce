//! The lease table: one slot per pool address, a client index and a deadline heap, all
//! allocated once at construction and never grown.
//!
//! Invariants (checked by `check_invariants` in the tests after random operation
//! sequences):
//! - a slot's state is one of [`LeaseState`]; `Offered` and `Bound` slots always name a
//!   client; `Declined` slots never do; a `Free` slot may remember the client that last
//!   held it, so that the client gets the same address back while nobody else takes it;
//! - a client key is remembered by at most one slot, and the client index maps every
//!   remembered key to its slot (and holds nothing else);
//! - a slot has a deadline in the heap if and only if it is `Offered` (end of the offer
//!   hold), `Bound` (end of the lease) or `Declined` (end of the quarantine); when the
//!   deadline passes ([`LeaseTable::expire`]) the slot becomes `Free`, keeping its client;
//! - two bitmaps mirror the slots: `free_any` has a bit set exactly for `Free` slots,
//!   `free_fresh` exactly for `Free` slots remembering no client;
//! - `active()` is the number of `Offered` + `Bound` slots and never exceeds
//!   `max_active()` through [`LeaseTable::hold`] (the caller checks [`LeaseTable::can_hold`]).
//! - An active slot held through [`LeaseTable::hold_on`] records the ingress port its
//!   client asked from; `port_active(p)` is the number of active slots of port `p` and
//!   never exceeds `max_per_port()` through `hold_on` (DHCP starvation from one port
//!   leaves the pool to the others). Slots held without a port (restored from a lease
//!   file, or [`LeaseTable::hold`]) count against no port.
//!
//! Costs: lookups by address are O(1), by client O(1) expected (open addressing with a
//! randomly keyed SipHash, load factor at most 1/2), deadline changes O(log n), and
//! [`LeaseTable::find_free`] scans two bitmaps of the pool (one bit per address, at most
//! 1024 words), done only for a DHCPDISCOVER from a client that has no address yet.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;

use vnet_core::time::Instant;
use vnet_core::wire::dhcp::{DhcpRepr, CLIENT_ID_MAX};
use vnet_core::wire::EthernetAddress;

/// What identifies a client's lease: its client identifier (option 61) if it sent one,
/// else its hardware address (RFC 2131 4.2: "the combination of 'client identifier' or
/// 'chaddr' and assigned network address constitute a unique identifier for the
/// client's lease").
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    kind: ClientKeyKind,
    len: u8,
    bytes: [u8; CLIENT_ID_MAX],
}

/// Which kind of identifier a [`ClientKey`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKeyKind {
    /// The client identifier option (61), type byte included.
    ClientId,
    /// The Ethernet address from `chaddr`.
    Mac,
}

impl ClientKey {
    /// A key from a hardware address.
    pub fn from_mac(mac: impl Into<EthernetAddress>) -> Self {
        let mut bytes = [0u8; CLIENT_ID_MAX];
        bytes[..6].copy_from_slice(mac.into().as_bytes());
        ClientKey {
            kind: ClientKeyKind::Mac,
            len: 6,
            bytes,
        }
    }

    /// A key from a client identifier; `None` if empty or longer than [`CLIENT_ID_MAX`].
    pub fn from_client_id(id: &[u8]) -> Option<Self> {
        if id.is_empty() || id.len() > CLIENT_ID_MAX {
            return None;
        }
        let mut bytes = [0u8; CLIENT_ID_MAX];
        bytes[..id.len()].copy_from_slice(id);
        Some(ClientKey {
            kind: ClientKeyKind::ClientId,
            len: id.len() as u8,
            bytes,
        })
    }

    /// The key of the client that sent `repr`: option 61 if present, else `chaddr`.
    pub fn of(repr: &DhcpRepr) -> Self {
        match &repr.client_identifier {
            Some(id) => ClientKey::from_client_id(id.as_slice())
                .unwrap_or_else(|| ClientKey::from_mac(repr.client_hardware_address)),
            None => ClientKey::from_mac(repr.client_hardware_address),
        }
    }

    /// Which kind of identifier this is.
    pub fn kind(&self) -> ClientKeyKind {
        self.kind
    }

    /// The identifier's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The Ethernet address the key names, when it names one: a `chaddr` key, or a
    /// client identifier of hardware type 1 (Ethernet) followed by the address (what
    /// udhcpc and dhcpcd send by default, RFC 2132 9.14).
    pub fn hardware_addr(&self) -> Option<[u8; 6]> {
        let b = self.as_bytes();
        let mac = match self.kind {
            ClientKeyKind::Mac => b,
            ClientKeyKind::ClientId if b.len() == 7 && b[0] == 1 => &b[1..],
            ClientKeyKind::ClientId => return None,
        };
        mac.try_into().ok()
    }

    /// Reads the text form written by [`fmt::Display`]: `mac:` or `id:` followed by
    /// lower- or upper-case hex. `None` if malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, hex) = if let Some(hex) = text.strip_prefix("mac:") {
            (ClientKeyKind::Mac, hex)
        } else if let Some(hex) = text.strip_prefix("id:") {
            (ClientKeyKind::ClientId, hex)
        } else {
            return None;
        };
        if hex.len() % 2 != 0 || hex.len() / 2 > CLIENT_ID_MAX || hex.is_empty() {
            return None;
        }
        let mut bytes = [0u8; CLIENT_ID_MAX];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            bytes[i] = u8::from_str_radix(s, 16).ok()?;
        }
        let len = hex.len() / 2;
        match kind {
            ClientKeyKind::Mac if len != 6 => None,
            ClientKeyKind::Mac => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&bytes[..6]);
                Some(ClientKey::from_mac(mac))
            }
            ClientKeyKind::ClientId => ClientKey::from_client_id(&bytes[..len]),
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ClientKeyKind::Mac => "mac:",
            ClientKeyKind::ClientId => "id:",
        })?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The state of one pool address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Available. May still remember its last client (see [`Lease::client`]).
    Free,
    /// Offered to a client (DHCPOFFER sent) and held for it until the offer hold ends.
    Offered,
    /// Leased to a client (DHCPACK sent) until the lease ends.
    Bound,
    /// Declined by a client (DHCPDECLINE): unusable until the quarantine ends.
    Declined,
}

/// A read-only view of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The pool address.
    pub addr: Ipv4Addr,
    /// Its state.
    pub state: LeaseState,
    /// The client holding it (`Offered`, `Bound`) or that last held it (`Free`).
    pub client: Option<ClientKey>,
    /// When the state ends (`Offered`, `Bound`, `Declined`); `None` for `Free`.
    pub deadline: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Slot {
    state: LeaseState,
    client: Option<ClientKey>,
    /// The ingress port of an active slot held through `hold_on`, else [`NO_PORT`].
    port: u16,
}

/// No ingress port recorded.
const NO_PORT: u16 = u16::MAX;

const EMPTY: u32 = u32::MAX;

/// Open-addressing map from client key to slot index, with linear probing and
/// backward-shift deletion (no tombstones). Entries store the key's hash so that
/// deletion never needs the slots.
struct ClientIndex {
    /// `(slot index or EMPTY, hash)`.
    table: Vec<(u32, u32)>,
    mask: usize,
    hasher: RandomState,
}

impl ClientIndex {
    fn with_capacity(entries: usize) -> Self {
        let size = (entries.max(8) * 2).next_power_of_two();
        ClientIndex {
            table: vec![(EMPTY, 0); size],
            mask: size - 1,
            hasher: RandomState::new(),
        }
    }

    fn hash(&self, key: &ClientKey) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    /// Position of `key` in the table, if present.
    fn position(&self, key: &ClientKey, slots: &[Slot]) -> Option<usize> {
        let h = self.hash(key);
        let mut i = h as usize & self.mask;
        loop {
            let (slot, eh) = self.table[i];
            if slot == EMPTY {
                return None;
            }
            if eh == h && slots[slot as usize].client.as_ref() == Some(key) {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    fn get(&self, key: &ClientKey, slots: &[Slot]) -> Option<usize> {
        self.position(key, slots).map(|i| self.table[i].0 as usize)
    }

    /// Inserts `key -> slot`; the key must not be present.
    fn insert(&mut self, key: &ClientKey, slot: usize) {
        let h = self.hash(key);
        let mut i = h as usize & self.mask;
        while self.table[i].0 != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.table[i] = (slot as u32, h);
    }

    /// Removes `key` (read through `slots`, so call before clearing the slot's client).
    fn remove(&mut self, key: &ClientKey, slots: &[Slot]) {
        let Some(mut hole) = self.position(key, slots) else {
            return;
        };
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let (slot, h) = self.table[j];
            if slot == EMPTY {
                break;
            }
            let home = h as usize & self.mask;
            // The entry at j may move into the hole unless its home lies cyclically in
            // (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.table[hole] = self.table[j];
                hole = j;
            }
        }
        self.table[hole] = (EMPTY, 0);
    }
}

/// Indexed binary min-heap of slot deadlines: each slot appears at most once, so its
/// size is bounded by the pool and it never reallocates.
struct DeadlineHeap {
    heap: Vec<u32>,
    /// Position of each slot in `heap`, or EMPTY.
    pos: Vec<u32>,
    /// Deadline of each slot (meaningful only while it is in the heap).
    key: Vec<Instant>,
}

impl DeadlineHeap {
    fn new(slots: usize) -> Self {
        DeadlineHeap {
            heap: Vec::with_capacity(slots),
            pos: vec![EMPTY; slots],
            key: vec![Instant::ZERO; slots],
        }
    }

    fn peek(&self) -> Option<(usize, Instant)> {
        self.heap
            .first()
            .map(|&s| (s as usize, self.key[s as usize]))
    }

    fn deadline(&self, slot: usize) -> Option<Instant> {
        (self.pos[slot] != EMPTY).then(|| self.key[slot])
    }

    fn set(&mut self, slot: usize, at: Instant) {
        self.key[slot] = at;
        if self.pos[slot] == EMPTY {
            self.pos[slot] = self.heap.len() as u32;
            self.heap.push(slot as u32);
            self.sift_up(self.heap.len() - 1);
        } else {
            let i = self.pos[slot] as usize;
            self.sift_up(i);
            self.sift_down(self.pos[slot] as usize);
        }
    }

    fn remove(&mut self, slot: usize) {
        let i = self.pos[slot];
        if i == EMPTY {
            return;
        }
        let i = i as usize;
        let last = self.heap.len() - 1;
        self.swap(i, last);
        self.heap.pop();
        self.pos[slot] = EMPTY;
        if i < self.heap.len() {
            self.sift_up(i);
            self.sift_down(self.pos[self.heap[i] as usize] as usize);
        }
    }

    fn less(&self, a: usize, b: usize) -> bool {
        self.key[self.heap[a] as usize] < self.key[self.heap[b] as usize]
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a] as usize] = a as u32;
        self.pos[self.heap[b] as usize] = b as u32;
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(i, parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < self.heap.len() && self.less(l, min) {
                min = l;
            }
            if r < self.heap.len() && self.less(r, min) {
                min = r;
            }
            if min == i {
                break;
            }
            self.swap(i, min);
            i = min;
        }
    }
}

/// What [`LeaseTable::expire`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Bound leases that ran out.
    pub leases: u64,
    /// Offers whose hold ended without a DHCPREQUEST.
    pub offers: u64,
    /// Declined addresses whose quarantine ended.
    pub quarantines: u64,
}

/// Every address of one pool, its state and its client. See the module docs for the
/// invariants.
pub struct LeaseTable {
    pool_start: u32,
    slots: Vec<Slot>,
    index: ClientIndex,
    deadlines: DeadlineHeap,
    /// One bit per slot: `Free`.
    free_any: Vec<u64>,
    /// One bit per slot: `Free` and remembering no client.
    free_fresh: Vec<u64>,
    active: usize,
    max_active: usize,
    /// Per ingress port: its active slots.
    port_active: Box<[u32]>,
    max_per_port: usize,
}

fn set_bit(bits: &mut [u64], i: usize, value: bool) {
    let (word, bit) = (i / 64, 1u64 << (i % 64));
    if value {
        bits[word] |= bit;
    } else {
        bits[word] &= !bit;
    }
}

fn first_set(bits: &[u64]) -> Option<usize> {
    bits.iter()
        .position(|&w| w != 0)
        .map(|word| word * 64 + bits[word].trailing_zeros() as usize)
}

impl fmt::Debug for LeaseTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseTable")
            .field("pool_start", &Ipv4Addr::from(self.pool_start))
            .field("pool_len", &self.slots.len())
            .field("active", &self.active)
            .field("max_active", &self.max_active)
            .finish_non_exhaustive()
    }
}

/// A bitmap of `len` bits, all set.
fn all_set(len: usize) -> Vec<u64> {
    let mut bits = vec![0u64; len.div_ceil(64)];
    for i in 0..len {
        set_bit(&mut bits, i, true);
    }
    bits
}

impl LeaseTable {
    /// A table for the `pool_len` addresses from `pool_start`, of which at most
    /// `max_active` may be offered or bound at once. Allocates everything it will ever
    /// use.
    pub fn new(pool_start: Ipv4Addr, pool_len: usize, max_active: usize) -> Self {
        LeaseTable {
            pool_start: u32::from(pool_start),
            slots: vec![
                Slot {
                    state: LeaseState::Free,
                    client: None,
                    port: NO_PORT,
                };
                pool_len
            ],
            index: ClientIndex::with_capacity(pool_len),
            deadlines: DeadlineHeap::new(pool_len),
            free_any: all_set(pool_len),
            free_fresh: all_set(pool_len),
            active: 0,
            max_active,
            port_active: vec![0; vnet_core::frame::MAX_PORTS].into_boxed_slice(),
            max_per_port: usize::MAX,
        }
    }

    /// At most `max` active slots per ingress port through [`LeaseTable::hold_on`].
    pub fn with_max_per_port(mut self, max: usize) -> Self {
        self.max_per_port = max;
        self
    }

    /// The most active slots one ingress port may hold.
    pub fn max_per_port(&self) -> usize {
        self.max_per_port
    }

    /// Active slots held from ingress port `port`.
    pub fn port_active(&self, port: u16) -> usize {
        self.port_active
            .get(usize::from(port))
            .map_or(0, |&n| n as usize)
    }

    /// Whether `addr` may become active for a client asking from `port` without
    /// exceeding that port's share (an address it already holds from `port` always may).
    pub fn port_can_hold(&self, addr: Ipv4Addr, port: u16) -> bool {
        let Some(s) = self.slot_of(addr) else {
            return false;
        };
        let slot = &self.slots[s];
        let holds =
            matches!(slot.state, LeaseState::Offered | LeaseState::Bound) && slot.port == port;
        holds || self.port_active(port) < self.max_per_port
    }

    /// Number of addresses in the pool.
    pub fn pool_len(&self) -> usize {
        self.slots.len()
    }

    /// Number of `Offered` + `Bound` addresses.
    pub fn active(&self) -> usize {
        self.active
    }

    /// The most addresses that may be `Offered` or `Bound` at once.
    pub fn max_active(&self) -> usize {
        self.max_active
    }

    fn slot_of(&self, addr: Ipv4Addr) -> Option<usize> {
        let off = u32::from(addr).wrapping_sub(self.pool_start) as usize;
        (off < self.slots.len()).then_some(off)
    }

    fn addr_of(&self, slot: usize) -> Ipv4Addr {
        Ipv4Addr::from(self.pool_start + slot as u32)
    }

    fn view(&self, slot: usize) -> Lease {
        let s = &self.slots[slot];
        Lease {
            addr: self.addr_of(slot),
            state: s.state,
            client: s.client,
            deadline: self.deadlines.deadline(slot),
        }
    }

    /// Whether `addr` is in the pool.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.slot_of(addr).is_some()
    }

    /// The slot of a pool address.
    pub fn lease(&self, addr: Ipv4Addr) -> Option<Lease> {
        self.slot_of(addr).map(|s| self.view(s))
    }

    /// The slot that holds or remembers `client`, if any.
    pub fn lease_of(&self, client: &ClientKey) -> Option<Lease> {
        self.index.get(client, &self.slots).map(|s| self.view(s))
    }

    /// Whether `addr` can be given to `client` now: it is in the pool and either held
    /// by `client` or `Free` (even if it remembers another client: the address is not
    /// allocated, RFC 2131 4.3.1).
    pub fn is_available_for(&self, addr: Ipv4Addr, client: &ClientKey) -> bool {
        self.slot_of(addr).is_some_and(|s| {
            let slot = &self.slots[s];
            match slot.state {
                LeaseState::Free => true,
                LeaseState::Offered | LeaseState::Bound => slot.client.as_ref() == Some(client),
                LeaseState::Declined => false,
            }
        })
    }

    /// Whether `addr` may become `Offered`/`Bound` without exceeding `max_active`.
    pub fn can_hold(&self, addr: Ipv4Addr) -> bool {
        self.slot_of(addr).is_some_and(|s| {
            matches!(self.slots[s].state, LeaseState::Offered | LeaseState::Bound)
                || self.active < self.max_active
        })
    }

    /// The first `Free` address that remembers no client, else the first `Free`
    /// address at all (forgetting its old client is the price of serving a new one).
    ///
    /// Scans one bit per address (a /16 pool is 1024 words), lowest address first.
    pub fn find_free(&self) -> Option<Ipv4Addr> {
        first_set(&self.free_fresh)
            .or_else(|| first_set(&self.free_any))
            .map(|i| self.addr_of(i))
    }

    /// Recomputes `slot`'s bits in the free bitmaps from its state and client; called
    /// after every change of either.
    fn sync_free_bits(&mut self, slot: usize) {
        let s = &self.slots[slot];
        let free = s.state == LeaseState::Free;
        set_bit(&mut self.free_any, slot, free);
        set_bit(&mut self.free_fresh, slot, free && s.client.is_none());
    }

    /// Makes `slot` remember `client`, and only it: forgets the client's other slot and
    /// the slot's other client.
    fn attach(&mut self, slot: usize, client: &ClientKey) {
        if self.slots[slot].client.as_ref() == Some(client) {
            return;
        }
        if let Some(other) = self.index.get(client, &self.slots) {
            self.index.remove(client, &self.slots);
            self.set_inactive(other);
            self.slots[other].client = None;
            self.sync_free_bits(other);
        }
        self.detach(slot);
        self.slots[slot].client = Some(*client);
        self.sync_free_bits(slot);
        self.index.insert(client, slot);
    }

    /// Forgets the client `slot` remembers, if any.
    fn detach(&mut self, slot: usize) {
        if let Some(old) = self.slots[slot].client {
            self.index.remove(&old, &self.slots);
            self.slots[slot].client = None;
            self.sync_free_bits(slot);
        }
    }

    /// Puts `slot` in a state without a deadline or active count: `Free`.
    fn set_inactive(&mut self, slot: usize) {
        if matches!(
            self.slots[slot].state,
            LeaseState::Offered | LeaseState::Bound
        ) {
            self.active -= 1;
            self.set_port(slot, NO_PORT);
        }
        self.slots[slot].state = LeaseState::Free;
        self.sync_free_bits(slot);
        self.deadlines.remove(slot);
    }

    /// Marks `addr` `Offered` or `Bound` (`state`) for `client` until `until`. The
    /// caller has checked [`LeaseTable::is_available_for`] and [`LeaseTable::can_hold`];
    /// returns false (and changes nothing) if those do not hold or `state` is not one
    /// of the two.
    pub fn hold(
        &mut self,
        addr: Ipv4Addr,
        client: &ClientKey,
        state: LeaseState,
        until: Instant,
    ) -> bool {
        self.hold_on(NO_PORT, addr, client, state, until)
    }

    /// [`LeaseTable::hold`] for a client asking from ingress port `port`, which must also
    /// pass [`LeaseTable::port_can_hold`]; the slot then counts against `port`.
    pub fn hold_on(
        &mut self,
        port: u16,
        addr: Ipv4Addr,
        client: &ClientKey,
        state: LeaseState,
        until: Instant,
    ) -> bool {
        let Some(slot) = self.slot_of(addr) else {
            return false;
        };
        if !matches!(state, LeaseState::Offered | LeaseState::Bound)
            || !self.is_available_for(addr, client)
            || !self.can_hold(addr)
            || (port != NO_PORT && !self.port_can_hold(addr, port))
        {
            return false;
        }
        self.attach(slot, client);
        if self.slots[slot].state == LeaseState::Free {
            self.active += 1;
        }
        self.slots[slot].state = state;
        if port != NO_PORT {
            self.set_port(slot, port);
        }
        self.sync_free_bits(slot);
        self.deadlines.set(slot, until);
        true
    }

    /// Moves active `slot`'s count from its recorded port to `port`.
    fn set_port(&mut self, slot: usize, port: u16) {
        let old = self.slots[slot].port;
        if old == port {
            return;
        }
        if let Some(n) = self.port_active.get_mut(usize::from(old)) {
            *n -= 1;
        }
        if let Some(n) = self.port_active.get_mut(usize::from(port)) {
            *n += 1;
        }
        self.slots[slot].port = if usize::from(port) < self.port_active.len() {
            port
        } else {
            NO_PORT
        };
    }

    /// Makes `addr` `Free`, keeping the client it remembers (DHCPRELEASE, RFC 2131
    /// 4.3.4: the server "SHOULD retain a record of the client's initialization
    /// parameters for possible reuse"). A `Declined` address stays declined.
    pub fn free(&mut self, addr: Ipv4Addr) {
        if let Some(slot) = self.slot_of(addr) {
            if self.slots[slot].state != LeaseState::Declined {
                self.set_inactive(slot);
            }
        }
    }

    /// Makes `addr` `Free` and forgets the client it remembers (a client that did not
    /// take our offer at all).
    pub fn forget(&mut self, addr: Ipv4Addr) {
        if let Some(slot) = self.slot_of(addr) {
            if self.slots[slot].state != LeaseState::Declined {
                self.set_inactive(slot);
            }
            self.detach(slot);
        }
    }

    /// Makes `addr` `Free` remembering `client` (restoring a lease file): forgets
    /// whatever `client` held before. Returns false if `addr` is not in the pool or is
    /// held by another client.
    pub fn remember(&mut self, addr: Ipv4Addr, client: &ClientKey) -> bool {
        let Some(slot) = self.slot_of(addr) else {
            return false;
        };
        if !self.is_available_for(addr, client) {
            return false;
        }
        self.attach(slot, client);
        self.set_inactive(slot);
        true
    }

    /// Quarantines `addr` until `until` (DHCPDECLINE, RFC 2131 4.3.3: the server "MUST
    /// mark the network address as not available"); forgets its client.
    pub fn decline(&mut self, addr: Ipv4Addr, until: Instant) {
        if let Some(slot) = self.slot_of(addr) {
            self.set_inactive(slot);
            self.detach(slot);
            self.slots[slot].state = LeaseState::Declined;
            self.sync_free_bits(slot);
            self.deadlines.set(slot, until);
        }
    }

    /// The earliest deadline (offer hold, lease end, quarantine end), if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|(_, at)| at)
    }

    /// Ends every state whose deadline is at or before `now`: the slots become `Free`,
    /// keeping their clients. O(log n) per expired slot, O(1) when nothing is due.
    pub fn expire(&mut self, now: Instant) -> Expired {
        let mut expired = Expired::default();
        while let Some((slot, at)) = self.deadlines.peek() {
            if at > now {
                break;
            }
            match self.slots[slot].state {
                LeaseState::Bound => expired.leases += 1,
                LeaseState::Offered => expired.offers += 1,
                LeaseState::Declined => expired.quarantines += 1,
                LeaseState::Free => {}
            }
            self.set_inactive(slot);
        }
        expired
    }

    /// Every slot that is not plain `Free` (held, declined, or remembering a client),
    /// in address order. Control plane only (the lease file).
    pub fn iter(&self) -> impl Iterator<Item = Lease> + '_ {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].state != LeaseState::Free || self.slots[i].client.is_some())
            .map(|i| self.view(i))
    }

    /// Panics if an invariant of the module docs does not hold (tests only).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut active = 0;
        let mut remembered = 0;
        let mut per_port = vec![0u32; self.port_active.len()];
        for (i, s) in self.slots.iter().enumerate() {
            let bit = |bits: &[u64]| bits[i / 64] & (1 << (i % 64)) != 0;
            assert_eq!(bit(&self.free_any), s.state == LeaseState::Free, "slot {i}");
            assert_eq!(
                bit(&self.free_fresh),
                s.state == LeaseState::Free && s.client.is_none(),
                "slot {i}"
            );
            match s.state {
                LeaseState::Offered | LeaseState::Bound => {
                    active += 1;
                    assert!(s.client.is_some(), "held slot {i} without client");
                    assert!(self.deadlines.deadline(i).is_some());
                }
                LeaseState::Declined => {
                    assert!(s.client.is_none());
                    assert!(self.deadlines.deadline(i).is_some());
                }
                LeaseState::Free => assert!(self.deadlines.deadline(i).is_none()),
            }
            if s.port != NO_PORT {
                assert!(matches!(s.state, LeaseState::Offered | LeaseState::Bound));
                per_port[usize::from(s.port)] += 1;
            }
            if let Some(c) = &s.client {
                remembered += 1;
                assert_eq!(self.index.get(c, &self.slots), Some(i), "index of {c}");
            }
        }
        let entries = self.index.table.iter().filter(|e| e.0 != EMPTY).count();
        assert_eq!(entries, remembered, "index holds stale entries");
        assert_eq!(active, self.active);
        assert!(self.active <= self.max_active);
        assert_eq!(&per_port[..], &self.port_active[..], "per-port counts");
        for (&n, p) in per_port.iter().zip(0..) {
            assert!(n as usize <= self.max_per_port, "port {p} over its share");
        }
        for (i, &s) in self.deadlines.heap.iter().enumerate() {
            assert_eq!(self.deadlines.pos[s as usize] as usize, i);
            if i > 0 {
                let parent = self.deadlines.heap[(i - 1) / 2] as usize;
                assert!(self.deadlines.key[parent] <= self.deadlines.key[s as usize]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    fn mac(n: u8) -> ClientKey {
        ClientKey::from_mac([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn client_key_text_round_trips() {
        for key in [
            mac(7),
            ClientKey::from_client_id(&[1, 2, 3, 0xff]).unwrap(),
            ClientKey::from_client_id(&[0xab; CLIENT_ID_MAX]).unwrap(),
        ] {
            assert_eq!(ClientKey::parse(&key.to_string()), Some(key));
        }
        assert_eq!(mac(7).to_string(), "mac:020000000007");
        for bad in [
            "",
            "mac:",
            "mac:0200",
            "id:",
            "id:0",
            "id:zz",
            "x:00",
            "mac:0200000000071",
        ] {
            assert_eq!(ClientKey::parse(bad), None, "{bad}");
        }
        assert_eq!(mac(7).hardware_addr(), Some([2, 0, 0, 0, 0, 7]));
        let id = ClientKey::from_client_id(&[1, 2, 0, 0, 0, 0, 7]).unwrap();
        assert_eq!(id.hardware_addr(), Some([2, 0, 0, 0, 0, 7]));
        let duid = ClientKey::from_client_id(&[0xff, 2, 0, 0, 0, 0, 7]).unwrap();
        assert_eq!(duid.hardware_addr(), None);
        // A MAC and a client id with the same bytes are different clients.
        assert_ne!(
            mac(1),
            ClientKey::from_client_id(mac(1).as_bytes()).unwrap()
        );
    }

    #[test]
    fn hold_free_remember_and_expire() {
        let mut t = LeaseTable::new(ip(10), 4, 2);
        let (a, b, c) = (mac(1), mac(2), mac(3));
        assert_eq!(t.find_free(), Some(ip(10)));
        assert!(t.hold(ip(10), &a, LeaseState::Offered, Instant::from_secs(5)));
        assert!(t.hold(ip(11), &b, LeaseState::Bound, Instant::from_secs(3)));
        t.check_invariants();
        // max_active reached: a third client cannot hold anything.
        assert!(!t.can_hold(ip(12)));
        assert!(!t.hold(ip(12), &c, LeaseState::Offered, Instant::from_secs(5)));
        // Not available: held by another client.
        assert!(!t.is_available_for(ip(10), &b));
        assert_eq!(t.next_deadline(), Some(Instant::from_secs(3)));
        let e = t.expire(Instant::from_secs(3));
        assert_eq!(e.leases, 1);
        t.check_invariants();
        let l = t.lease_of(&b).unwrap();
        assert_eq!((l.addr, l.state), (ip(11), LeaseState::Free));
        // find_free prefers addresses remembering nobody.
        assert_eq!(t.find_free(), Some(ip(12)));
        t.decline(ip(12), Instant::from_secs(100));
        t.decline(ip(13), Instant::from_secs(100));
        assert_eq!(t.find_free(), Some(ip(11)));
        // A new client takes b's remembered address: b is forgotten.
        assert!(t.hold(ip(11), &c, LeaseState::Offered, Instant::from_secs(9)));
        assert_eq!(t.lease_of(&b), None);
        t.check_invariants();
        // Moving a client to another address forgets the old one.
        t.expire(Instant::from_secs(100));
        assert!(t.hold(ip(13), &a, LeaseState::Bound, Instant::from_secs(200)));
        assert_eq!(t.lease(ip(10)).unwrap().client, None);
        assert_eq!(t.lease(ip(10)).unwrap().state, LeaseState::Free);
        t.check_invariants();
    }

    #[test]
    fn a_port_at_its_share_keeps_its_own_leases_and_takes_no_other() {
        let mut t = LeaseTable::new(ip(10), 8, 8).with_max_per_port(2);
        let until = Instant::from_secs(5);
        assert!(t.hold_on(0, ip(10), &mac(1), LeaseState::Offered, until));
        assert!(t.hold_on(0, ip(11), &mac(2), LeaseState::Offered, until));
        assert!(t.hold_on(1, ip(12), &mac(3), LeaseState::Bound, until));
        assert_eq!((t.port_active(0), t.port_active(1)), (2, 1));
        // Port 0 is at its share: a free address, or one port 1 holds, is refused...
        assert!(!t.port_can_hold(ip(13), 0));
        assert!(!t.port_can_hold(ip(12), 0));
        assert!(!t.hold_on(0, ip(13), &mac(4), LeaseState::Offered, until));
        // ...but its own clients still bind what they were offered.
        assert!(t.port_can_hold(ip(10), 0));
        assert!(t.hold_on(0, ip(10), &mac(1), LeaseState::Bound, until));
        // A client moving to port 1 moves its count with it.
        assert!(t.hold_on(1, ip(11), &mac(2), LeaseState::Bound, until));
        assert_eq!((t.port_active(0), t.port_active(1)), (1, 2));
        assert!(t.port_can_hold(ip(13), 0));
        // Without a port (a lease file), nothing counts.
        assert!(t.hold(ip(14), &mac(5), LeaseState::Bound, until));
        assert_eq!((t.port_active(0), t.port_active(1)), (1, 2));
        t.expire(until);
        assert_eq!((t.port_active(0), t.port_active(1)), (0, 0));
        t.check_invariants();
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Address, client, bound, duration, ingress port (3: none).
        Hold(u8, u8, bool, u16, u8),
        Free(u8),
        Forget(u8),
        Remember(u8, u8),
        Decline(u8, u16),
        Expire(u16),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        let a = 0u8..20; // some addresses outside the 16-slot pool
        let c = 0u8..12;
        prop_oneof![
            (a.clone(), c.clone(), any::<bool>(), any::<u16>(), 0u8..4)
                .prop_map(|(a, c, b, t, p)| Op::Hold(a, c, b, t, p)),
            a.clone().prop_map(Op::Free),
            a.clone().prop_map(Op::Forget),
            (a.clone(), c).prop_map(|(a, c)| Op::Remember(a, c)),
            (a, any::<u16>()).prop_map(|(a, t)| Op::Decline(a, t)),
            any::<u16>().prop_map(Op::Expire),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_after_any_operations(ops in proptest::collection::vec(arb_op(), 0..200)) {
            let mut t = LeaseTable::new(ip(0), 16, 10).with_max_per_port(3);
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Hold(a, c, bound, dt, port) => {
                        let state = if bound { LeaseState::Bound } else { LeaseState::Offered };
                        let port = if port == 3 { NO_PORT } else { u16::from(port) };
                        let ok = t.is_available_for(ip(a), &mac(c))
                            && t.can_hold(ip(a))
                            && (port == NO_PORT || t.port_can_hold(ip(a), port));
                        let until = Instant::from_secs(now + u64::from(dt));
                        prop_assert_eq!(t.hold_on(port, ip(a), &mac(c), state, until), ok);
                        if ok {
                            prop_assert_eq!(t.lease_of(&mac(c)).unwrap().addr, ip(a));
                        }
                    }
                    Op::Free(a) => t.free(ip(a)),
                    Op::Forget(a) => t.forget(ip(a)),
                    Op::Remember(a, c) => { t.remember(ip(a), &mac(c)); }
                    Op::Decline(a, dt) => t.decline(ip(a), Instant::from_secs(now + u64::from(dt))),
                    Op::Expire(dt) => {
                        now += u64::from(dt);
                        t.expire(Instant::from_secs(now));
                        if let Some(next) = t.next_deadline() {
                            prop_assert!(next > Instant::from_secs(now));
                        }
                    }
                }
                t.check_invariants();
            }
        }
    }
}

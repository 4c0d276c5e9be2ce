//! In-memory endpoints: independent smoltcp TCP/IP stacks attached to dataplane ports.
//!
//! Each [`Endpoint`] is one smoltcp [`Interface`] (its own MAC, address, ARP cache and
//! sockets) whose device is a [`PeerDevice`] over the far end of a `mem` port. Every
//! endpoint runs the same services, like a small Linux box with inetd: ICMP echo replies
//! (smoltcp answers them itself), a UDP echo and a TCP echo on [`ECHO_PORT`], and
//! optionally a DHCP client. A [`Client`] drives one exchange from the sending side.
//!
//! Invariants:
//! - the device records every frame that crosses its wire, both ways, in order, with
//!   the virtual time of the tick it crossed in ([`Trace`]); nothing reaches the stack
//!   or the dataplane without being recorded;
//! - nothing here reads a clock: time is an argument (virtual milliseconds);
//! - the TCP echo serves one connection at a time and listens again once it is closed.

use super::cases::ECHO_PORT;
use super::table::{Proto, Role};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{dhcpv4, icmp, tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, IpEndpoint,
    Ipv4Cidr,
};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use vnet_core::port::mem::{MemPeer, MEM_FRAME};

/// Largest Ethernet frame the endpoints send (IP MTU 1500).
pub const ENDPOINT_MTU: usize = 1514;

/// Which way a frame crossed a port's wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireDir {
    /// From the endpoint into the dataplane (the port's rx).
    ToDataplane,
    /// From the dataplane to the endpoint (the port's tx).
    FromDataplane,
}

/// One frame on a port's wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// Virtual time, milliseconds since the start of the case.
    pub at_ms: u64,
    /// Which way.
    pub dir: WireDir,
    /// The frame.
    pub bytes: Vec<u8>,
}

/// Everything that crossed one port's wire during a case.
pub type Trace = Vec<TraceEntry>;

/// The sending half of a [`PeerDevice`] (what a transmit token needs).
#[derive(Debug)]
struct Wire {
    peer: MemPeer,
    now_ms: u64,
    trace: Trace,
    /// Frames the ring refused (full): lost, as on a wire.
    lost: u64,
}

impl Wire {
    fn send(&mut self, frame: &[u8]) {
        if self.peer.send(frame) {
            self.trace.push(TraceEntry {
                at_ms: self.now_ms,
                dir: WireDir::ToDataplane,
                bytes: frame.to_vec(),
            });
        } else {
            self.lost += 1;
        }
    }
}

/// A smoltcp device over a [`MemPeer`] that records its wire.
#[derive(Debug)]
pub struct PeerDevice {
    wire: Wire,
    rx: VecDeque<Vec<u8>>,
}

impl PeerDevice {
    /// A device on `peer`.
    pub fn new(peer: MemPeer) -> Self {
        Self {
            wire: Wire {
                peer,
                now_ms: 0,
                trace: Vec::new(),
                lost: 0,
            },
            rx: VecDeque::new(),
        }
    }

    /// Take every frame the dataplane has sent (recording it) and set the time stamp of
    /// what crosses next.
    pub fn pump(&mut self, now_ms: u64) {
        self.wire.now_ms = now_ms;
        let mut buf = [0u8; MEM_FRAME];
        while let Some(n) = self.wire.peer.recv_into(&mut buf) {
            let frame = buf[..n].to_vec();
            self.wire.trace.push(TraceEntry {
                at_ms: now_ms,
                dir: WireDir::FromDataplane,
                bytes: frame.clone(),
            });
            self.rx.push_back(frame);
        }
    }

    /// Send a raw frame (a probe) into the dataplane, bypassing the stack.
    pub fn inject(&mut self, frame: &[u8]) {
        self.wire.send(frame);
    }

    /// The wire so far.
    pub fn trace(&self) -> &Trace {
        &self.wire.trace
    }

    /// Frames the ring refused.
    pub fn lost(&self) -> u64 {
        self.wire.lost
    }
}

/// A received frame handed to the stack.
#[derive(Debug)]
pub struct PeerRxToken(Vec<u8>);

impl phy::RxToken for PeerRxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Room for one frame the stack sends.
#[derive(Debug)]
pub struct PeerTxToken<'a>(&'a mut Wire);

impl phy::TxToken for PeerTxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.send(&buf);
        r
    }
}

impl Device for PeerDevice {
    type RxToken<'a> = PeerRxToken;
    type TxToken<'a> = PeerTxToken<'a>;

    fn receive(&mut self, _timestamp: SmolInstant) -> Option<(PeerRxToken, PeerTxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((PeerRxToken(frame), PeerTxToken(&mut self.wire)))
    }

    fn transmit(&mut self, _timestamp: SmolInstant) -> Option<PeerTxToken<'_>> {
        Some(PeerTxToken(&mut self.wire))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = ENDPOINT_MTU;
        caps
    }
}

/// How an endpoint gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrConfig {
    /// A fixed address.
    Static {
        /// The address.
        ip: Ipv4Addr,
        /// Prefix length of its subnet.
        prefix: u8,
    },
    /// By DHCP (smoltcp's client), from whatever server the mode offers.
    Dhcp,
}

/// One endpoint's identity in a topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointPlan {
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its address.
    pub addr: AddrConfig,
    /// Its default gateway, if it has one (DHCP may supply one instead).
    pub gateway: Option<Ipv4Addr>,
}

impl EndpointPlan {
    /// A statically addressed endpoint.
    pub const fn fixed(mac: [u8; 6], ip: Ipv4Addr, prefix: u8) -> Self {
        Self {
            mac,
            addr: AddrConfig::Static { ip, prefix },
            gateway: None,
        }
    }

    /// An endpoint configured by DHCP.
    pub const fn dhcp(mac: [u8; 6]) -> Self {
        Self {
            mac,
            addr: AddrConfig::Dhcp,
            gateway: None,
        }
    }

    /// The static address, if it has one.
    pub fn static_ip(&self) -> Option<Ipv4Addr> {
        match self.addr {
            AddrConfig::Static { ip, .. } => Some(ip),
            AddrConfig::Dhcp => None,
        }
    }
}

/// Convert a smoltcp time to milliseconds and back.
fn smol_time(ms: u64) -> SmolInstant {
    SmolInstant::from_millis(ms as i64)
}

/// A TCP/IP stack on one port, with its echo services.
pub struct Endpoint {
    role: Role,
    mac: [u8; 6],
    iface: Interface,
    device: PeerDevice,
    sockets: SocketSet<'static>,
    udp_echo: SocketHandle,
    tcp_echo: SocketHandle,
    dhcp: Option<SocketHandle>,
    addr: Option<Ipv4Cidr>,
    gateway: Option<Ipv4Addr>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("role", &self.role)
            .field("mac", &EthernetAddress(self.mac))
            .field("addr", &self.addr)
            .finish()
    }
}

fn udp_socket(packets: usize) -> udp::Socket<'static> {
    let buf = || {
        udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; packets],
            vec![0u8; packets * 1536],
        )
    };
    udp::Socket::new(buf(), buf())
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; 8192]),
        tcp::SocketBuffer::new(vec![0u8; 8192]),
    )
}

impl Endpoint {
    /// A stack for `role` on `peer`, as `plan` says, seeded with `seed` (smoltcp's
    /// randomness: TCP initial sequence numbers, DHCP transaction ids).
    pub fn new(role: Role, plan: &EndpointPlan, peer: MemPeer, seed: u64, now_ms: u64) -> Self {
        let mut device = PeerDevice::new(peer);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(plan.mac)));
        config.random_seed = seed;
        let iface = Interface::new(config, &mut device, smol_time(now_ms));
        let mut sockets = SocketSet::new(Vec::new());
        let mut udp = udp_socket(8);
        udp.bind(ECHO_PORT).expect("fresh UDP socket binds");
        let udp_echo = sockets.add(udp);
        let mut tcp = tcp_socket();
        tcp.listen(ECHO_PORT).expect("fresh TCP socket listens");
        let tcp_echo = sockets.add(tcp);
        let dhcp = (plan.addr == AddrConfig::Dhcp).then(|| sockets.add(dhcpv4::Socket::new()));
        let mut ep = Self {
            role,
            mac: plan.mac,
            iface,
            device,
            sockets,
            udp_echo,
            tcp_echo,
            dhcp,
            addr: None,
            gateway: None,
        };
        if let AddrConfig::Static { ip, prefix } = plan.addr {
            ep.set_address(Some(Ipv4Cidr::new(ip, prefix)), plan.gateway);
        }
        ep
    }

    fn set_address(&mut self, addr: Option<Ipv4Cidr>, gateway: Option<Ipv4Addr>) {
        self.addr = addr;
        self.gateway = gateway;
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some(cidr) = addr {
                let _ = addrs.push(IpCidr::Ipv4(cidr));
            }
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(gw) = gateway {
            let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
        }
    }

    /// Which endpoint this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Its MAC.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Its address, once it has one.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.addr.map(|c| c.address())
    }

    /// Its default gateway, if any.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway
    }

    /// The wire of its port so far.
    pub fn trace(&self) -> &Trace {
        self.device.trace()
    }

    /// Frames its ring refused.
    pub fn lost(&self) -> u64 {
        self.device.lost()
    }

    /// Send a raw frame into the dataplane (a probe), bypassing the stack.
    pub fn inject(&mut self, frame: &[u8], now_ms: u64) {
        self.device.wire.now_ms = now_ms;
        self.device.inject(frame);
    }

    /// One step at `now_ms`: take frames from the wire, run the stack, serve.
    pub fn poll(&mut self, now_ms: u64) {
        self.device.pump(now_ms);
        let ts = smol_time(now_ms);
        self.iface.poll(ts, &mut self.device, &mut self.sockets);
        self.serve();
        self.poll_dhcp();
        // Send what the services queued in this same step.
        self.iface.poll(ts, &mut self.device, &mut self.sockets);
    }

    fn serve(&mut self) {
        let mut buf = [0u8; 1536];
        let udp = self.sockets.get_mut::<udp::Socket>(self.udp_echo);
        while let Ok((n, meta)) = udp.recv_slice(&mut buf) {
            let _ = udp.send_slice(&buf[..n], meta.endpoint);
        }
        let tcp = self.sockets.get_mut::<tcp::Socket>(self.tcp_echo);
        while tcp.can_recv() && tcp.can_send() {
            let room = (tcp.send_capacity() - tcp.send_queue()).min(buf.len());
            let Ok(n) = tcp.recv_slice(&mut buf[..room]) else {
                break;
            };
            if n == 0 {
                break;
            }
            let _ = tcp.send_slice(&buf[..n]);
        }
        if tcp.state() == tcp::State::CloseWait && tcp.send_queue() == 0 {
            tcp.close();
        }
        if tcp.state() == tcp::State::Closed {
            let _ = tcp.listen(ECHO_PORT);
        }
    }

    fn poll_dhcp(&mut self) {
        let Some(handle) = self.dhcp else { return };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(config)) => Some((config.address, config.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        match event {
            Some((addr, router)) => self.set_address(Some(addr), router),
            None => self.set_address(None, None),
        }
    }

    /// State of the TCP echo service's socket (for evidence).
    pub fn tcp_echo_state(&self) -> tcp::State {
        self.sockets.get::<tcp::Socket>(self.tcp_echo).state()
    }
}

/// How far a client's exchange got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientState {
    /// Still trying.
    Running,
    /// Completed: the reply came back (and, for TCP, the connection closed).
    Done {
        /// Virtual time the exchange completed.
        at_ms: u64,
    },
    /// Gave up for a reason that will not change (e.g. TCP reset).
    Failed(String),
}

/// The active side of one exchange: ICMP echo, UDP echo or a TCP connection.
#[derive(Debug)]
pub struct Client {
    proto: Proto,
    target: (Ipv4Addr, u16),
    local_port: u16,
    marker: Vec<u8>,
    handle: SocketHandle,
    state: ClientState,
    attempts: u32,
    next_send_ms: u64,
    echoed: Vec<u8>,
    sent: bool,
    closing: bool,
}

/// ICMP identifier of every client's echo requests.
pub const ICMP_IDENT: u16 = 0x766e;

/// Local port of every UDP and TCP client.
pub const CLIENT_PORT: u16 = 49152;

/// Retransmission interval of ICMP and UDP clients.
pub const RESEND_MS: u64 = 100;

impl Client {
    /// Start an exchange of `proto` from `ep` to `target`, carrying `marker`.
    pub fn start(ep: &mut Endpoint, proto: Proto, target: (Ipv4Addr, u16), marker: &[u8]) -> Self {
        let handle = match proto {
            Proto::Icmp => {
                let buf = || {
                    icmp::PacketBuffer::new(
                        vec![icmp::PacketMetadata::EMPTY; 8],
                        vec![0u8; 8 * 1536],
                    )
                };
                let mut s = icmp::Socket::new(buf(), buf());
                s.bind(icmp::Endpoint::Ident(ICMP_IDENT))
                    .expect("fresh ICMP socket binds");
                ep.sockets.add(s)
            }
            Proto::Udp => {
                let mut s = udp_socket(8);
                s.bind(CLIENT_PORT).expect("fresh UDP socket binds");
                ep.sockets.add(s)
            }
            Proto::Tcp => {
                let mut s = tcp_socket();
                let remote = IpEndpoint::new(IpAddress::Ipv4(target.0), target.1);
                let result = s.connect(ep.iface.context(), remote, CLIENT_PORT);
                let handle = ep.sockets.add(s);
                if let Err(e) = result {
                    return Self::failed(proto, target, marker, handle, format!("connect: {e}"));
                }
                handle
            }
        };
        Self {
            proto,
            target,
            local_port: if proto == Proto::Icmp { 0 } else { CLIENT_PORT },
            marker: marker.to_vec(),
            handle,
            state: ClientState::Running,
            attempts: 0,
            next_send_ms: 0,
            echoed: Vec::new(),
            sent: false,
            closing: false,
        }
    }

    fn failed(
        proto: Proto,
        target: (Ipv4Addr, u16),
        marker: &[u8],
        handle: SocketHandle,
        why: String,
    ) -> Self {
        Self {
            proto,
            target,
            local_port: CLIENT_PORT,
            marker: marker.to_vec(),
            handle,
            state: ClientState::Failed(why),
            attempts: 0,
            next_send_ms: 0,
            echoed: Vec::new(),
            sent: false,
            closing: false,
        }
    }

    /// Where the exchange stands.
    pub fn state(&self) -> &ClientState {
        &self.state
    }

    /// Requests (ICMP, UDP) or connections (TCP) sent so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The client's local port (0 for ICMP).
    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// TCP socket state (for evidence), `None` for ICMP and UDP.
    pub fn tcp_state(&self, ep: &Endpoint) -> Option<tcp::State> {
        (self.proto == Proto::Tcp).then(|| ep.sockets.get::<tcp::Socket>(self.handle).state())
    }

    /// Bytes echoed back so far.
    pub fn echoed(&self) -> usize {
        self.echoed.len()
    }

    /// Advance the exchange after `ep` was polled at `now_ms`.
    pub fn step(&mut self, ep: &mut Endpoint, now_ms: u64) {
        if self.state != ClientState::Running {
            return;
        }
        match self.proto {
            Proto::Icmp => self.step_icmp(ep, now_ms),
            Proto::Udp => self.step_udp(ep, now_ms),
            Proto::Tcp => self.step_tcp(ep, now_ms),
        }
    }

    fn step_icmp(&mut self, ep: &mut Endpoint, now_ms: u64) {
        let caps = ep.device.capabilities().checksum;
        let s = ep.sockets.get_mut::<icmp::Socket>(self.handle);
        while let Ok((data, _from)) = s.recv() {
            let Ok(packet) = Icmpv4Packet::new_checked(data) else {
                continue;
            };
            if let Ok(Icmpv4Repr::EchoReply { ident, data, .. }) = Icmpv4Repr::parse(&packet, &caps)
            {
                if ident == ICMP_IDENT && data == self.marker.as_slice() {
                    self.state = ClientState::Done { at_ms: now_ms };
                    return;
                }
            }
        }
        if now_ms >= self.next_send_ms && s.can_send() {
            self.attempts += 1;
            let repr = Icmpv4Repr::EchoRequest {
                ident: ICMP_IDENT,
                seq_no: self.attempts as u16,
                data: &self.marker,
            };
            if let Ok(buf) = s.send(repr.buffer_len(), IpAddress::Ipv4(self.target.0)) {
                repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
            }
            self.next_send_ms = now_ms + RESEND_MS;
        }
    }

    fn step_udp(&mut self, ep: &mut Endpoint, now_ms: u64) {
        let s = ep.sockets.get_mut::<udp::Socket>(self.handle);
        let mut buf = [0u8; 1536];
        while let Ok((n, _meta)) = s.recv_slice(&mut buf) {
            if buf[..n] == self.marker[..] {
                self.state = ClientState::Done { at_ms: now_ms };
                return;
            }
        }
        if now_ms >= self.next_send_ms && s.can_send() {
            self.attempts += 1;
            let remote = IpEndpoint::new(IpAddress::Ipv4(self.target.0), self.target.1);
            let _ = s.send_slice(&self.marker, remote);
            self.next_send_ms = now_ms + RESEND_MS;
        }
    }

    fn step_tcp(&mut self, ep: &mut Endpoint, now_ms: u64) {
        let s = ep.sockets.get_mut::<tcp::Socket>(self.handle);
        if self.attempts == 0 {
            self.attempts = 1;
        }
        if !self.sent && s.may_send() {
            match s.send_slice(&self.marker) {
                Ok(n) if n == self.marker.len() => self.sent = true,
                Ok(_) => {
                    self.state = ClientState::Failed("send buffer too small".into());
                    return;
                }
                Err(e) => {
                    self.state = ClientState::Failed(format!("send: {e}"));
                    return;
                }
            }
        }
        let mut buf = [0u8; 1536];
        while s.can_recv() {
            match s.recv_slice(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.echoed.extend_from_slice(&buf[..n]),
            }
        }
        if !self.closing && self.echoed.len() >= self.marker.len() {
            if self.echoed[..self.marker.len()] != self.marker[..] {
                self.state = ClientState::Failed("the echo differs from what was sent".into());
                return;
            }
            s.close();
            self.closing = true;
        }
        match s.state() {
            tcp::State::TimeWait | tcp::State::Closed if self.closing => {
                self.state = ClientState::Done { at_ms: now_ms };
            }
            tcp::State::Closed if !self.closing => {
                let why = if self.sent {
                    "connection reset after sending"
                } else {
                    "connection refused or reset"
                };
                self.state = ClientState::Failed(why.into());
            }
            _ => {}
        }
    }
}

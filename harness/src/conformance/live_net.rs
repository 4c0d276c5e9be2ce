//! Low-level pieces of the live backends, inside the harness's own namespaces: running
//! code in a namespace, capturing an interface's wire (`AF_PACKET`, what tcpdump uses),
//! injecting raw probe frames, and the endpoints' UDP and TCP echo services (the Linux
//! stack of the namespace, with a log of every peer they served).
//!
//! Invariants:
//! - a thread that enters a namespace ([`in_netns`], the capture and server threads)
//!   stays there for its whole life and touches nothing else: the process's other
//!   threads stay in the namespace they started in;
//! - every socket is bound to one of the harness's own interfaces or namespaces; nothing
//!   here opens a socket in the machine's own namespace;
//! - captures and servers stop (their threads joined, their sockets closed) on drop, so
//!   that a topology can be deleted right after.

use super::endpoint::{TraceEntry, WireDir};
use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Enter the network namespace `netns` (a name under `/run/netns`) on this thread only.
fn enter(netns: &str) -> Result<()> {
    let path = format!("/run/netns/{netns}");
    let file = std::fs::File::open(&path).with_context(|| format!("no namespace {netns}"))?;
    // SAFETY: setns(2) on a descriptor this function owns; CLONE_NEWNET changes the
    // calling thread's network namespace only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!(
            "cannot enter namespace {netns}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Run `f` on a fresh thread inside `netns` and return what it returns. Sockets made in
/// `f` stay in `netns` wherever they are used afterwards.
///
/// # Errors
/// When the namespace cannot be entered or `f` panics.
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let netns = netns.to_string();
    std::thread::spawn(move || -> Result<T> {
        enter(&netns)?;
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow!("a thread in a namespace panicked"))?
}

/// A raw `AF_PACKET` socket bound to one interface of the current namespace.
fn packet_socket(ifname: &str) -> Result<OwnedFd> {
    let cname = std::ffi::CString::new(ifname)?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        bail!("no interface {ifname}");
    }
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!(
            "cannot open a packet socket: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: `fd` is a fresh descriptor this function owns from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    // SAFETY: bind(2) with a sockaddr_ll of the stated size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        bail!(
            "cannot bind a packet socket to {ifname}: {}",
            std::io::Error::last_os_error()
        );
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: setsockopt(2) with a timeval of the stated size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    Ok(fd)
}

/// One captured frame, stamped with the wall clock.
#[derive(Debug, Clone)]
pub struct Captured {
    /// When it was captured.
    pub at: Instant,
    /// Which way it crossed the endpoint's interface.
    pub dir: WireDir,
    /// The frame.
    pub bytes: Vec<u8>,
}

/// Everything that crosses one endpoint interface, both ways, as a tcpdump on it would
/// see it (an `AF_PACKET` socket; frames the endpoint sends are `PACKET_OUTGOING`).
#[derive(Debug)]
pub struct Sniffer {
    frames: Arc<Mutex<Vec<Captured>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sniffer {
    /// Capture `ifname` in `netns` until dropped.
    ///
    /// # Errors
    /// When the namespace or the interface cannot be opened.
    pub fn start(netns: &str, ifname: &str) -> Result<Sniffer> {
        let frames = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Result<()>>();
        let (netns, ifname) = (netns.to_string(), ifname.to_string());
        let (frames2, stop2) = (frames.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let fd = match enter(&netns).and_then(|_| packet_socket(&ifname)) {
                Ok(fd) => {
                    let _ = tx.send(Ok(()));
                    fd
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let mut buf = vec![0u8; 65536];
            while !stop2.load(Ordering::Relaxed) {
                // SAFETY: sockaddr_ll is plain old data.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                // SAFETY: recvfrom(2) into a buffer and address of the stated sizes.
                let n = unsafe {
                    libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&mut sll as *mut libc::sockaddr_ll).cast(),
                        &mut len,
                    )
                };
                if n <= 0 {
                    continue;
                }
                let dir = if sll.sll_pkttype == libc::PACKET_OUTGOING {
                    WireDir::ToDataplane
                } else {
                    WireDir::FromDataplane
                };
                let entry = Captured {
                    at: Instant::now(),
                    dir,
                    bytes: buf[..n as usize].to_vec(),
                };
                frames2.lock().expect("capture lock").push(entry);
            }
        });
        match rx.recv() {
            Ok(Ok(())) => Ok(Sniffer {
                frames,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => bail!("the capture thread died"),
        }
    }

    /// How many frames were captured so far (a mark for [`Sniffer::since`]).
    pub fn mark(&self) -> usize {
        self.frames.lock().expect("capture lock").len()
    }

    /// The frames captured since `mark`, stamped in milliseconds since `t0`.
    pub fn since(&self, mark: usize, t0: Instant) -> Vec<TraceEntry> {
        let frames = self.frames.lock().expect("capture lock");
        frames
            .get(mark..)
            .unwrap_or(&[])
            .iter()
            .map(|c| TraceEntry {
                at_ms: c.at.saturating_duration_since(t0).as_millis() as u64,
                dir: c.dir,
                bytes: c.bytes.clone(),
            })
            .collect()
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends raw frames out of one endpoint interface (as the endpoint's NIC would).
#[derive(Debug)]
pub struct Injector {
    fd: OwnedFd,
}

impl Injector {
    /// An injector on `ifname` in `netns`.
    ///
    /// # Errors
    /// When the namespace or the interface cannot be opened.
    pub fn open(netns: &str, ifname: &str) -> Result<Injector> {
        let ifname = ifname.to_string();
        let fd = in_netns(netns, move || packet_socket(&ifname))??;
        Ok(Injector { fd })
    }

    /// Send one frame; whether the kernel took it.
    pub fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: send(2) of a buffer of the stated size on a bound packet socket.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        n == frame.len() as isize
    }
}

/// What an echo service saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A UDP datagram, echoed back to its source.
    Udp {
        /// Its source as the server's socket saw it.
        from: SocketAddrV4,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// A TCP connection served to its end.
    Tcp {
        /// The peer as `accept` saw it.
        from: SocketAddrV4,
        /// Everything it sent (and got back).
        payload: Vec<u8>,
        /// Whether it closed cleanly (the peer's FIN, then ours).
        closed: bool,
    },
}

/// UDP and TCP echo on one port of every address of a namespace, with a log.
#[derive(Debug)]
pub struct EchoServers {
    log: Arc<Mutex<Vec<ServerEvent>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoServers {
    /// Serve `port` (UDP and TCP) in `netns` until dropped.
    ///
    /// # Errors
    /// When the namespace cannot be entered or the port is taken.
    pub fn start(netns: &str, port: u16) -> Result<EchoServers> {
        let (udp, tcp) = in_netns(netns, move || -> Result<(UdpSocket, TcpListener)> {
            let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
            let udp = UdpSocket::bind(any).context("udp echo")?;
            let tcp = TcpListener::bind(any).context("tcp echo")?;
            Ok((udp, tcp))
        })??;
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        tcp.set_nonblocking(true)?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let (log2, stop2) = (log.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((n, std::net::SocketAddr::V4(from))) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(&buf[..n], from);
                    log2.lock().expect("log lock").push(ServerEvent::Udp {
                        from,
                        payload: buf[..n].to_vec(),
                    });
                }
            }
        }));
        let (log2, stop2) = (log.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((mut s, std::net::SocketAddr::V4(from))) => {
                        let log3 = log2.clone();
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                            let mut payload = Vec::new();
                            let mut buf = [0u8; 2048];
                            let closed = loop {
                                match s.read(&mut buf) {
                                    Ok(0) => break s.shutdown(std::net::Shutdown::Write).is_ok(),
                                    Ok(n) => {
                                        payload.extend_from_slice(&buf[..n]);
                                        if s.write_all(&buf[..n]).is_err() {
                                            break false;
                                        }
                                    }
                                    Err(_) => break false,
                                }
                            };
                            log3.lock().expect("log lock").push(ServerEvent::Tcp {
                                from,
                                payload,
                                closed,
                            });
                        });
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
        Ok(EchoServers { log, stop, threads })
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<ServerEvent> {
        self.log.lock().expect("log lock").clone()
    }
}

impl Drop for EchoServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

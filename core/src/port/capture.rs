//! The `capture` tee: wraps any [`Port`] and records its traffic to pcap files.
//!
//! [`CapturePort::new`] creates `DIR/NAME-rx.pcap` and `DIR/NAME-tx.pcap` (Ethernet,
//! snaplen 65535, nanosecond wall-clock timestamps, one clock read per burst). Every
//! packet the inner port delivers from `rx_burst` goes to the rx file; every packet the
//! inner port *accepts* in `tx_burst` goes to the tx file. Output is buffered and written
//! out on [`Port::flush`] and when the tee is dropped.
//!
//! Invariants:
//! - the tx file holds exactly the accepted prefix of each `tx_burst`, in order. The
//!   bytes are copied to a staging buffer (preallocated for [`BURST`] frames of the inner
//!   port's `max_frame`) *before* the inner port is called, because once it accepts a
//!   frame it may free and reuse it at once; only the accepted prefix of the staging is
//!   then written. Slices longer than [`BURST`] go to the inner port in chunks of
//!   [`BURST`], stopping at the first chunk not wholly accepted, so the accepted count is
//!   still a prefix;
//! - the tee never holds a frame and never changes what the inner port does: rx/tx
//!   results, `service`, `stats` and `flush` are the inner port's;
//! - capture problems never stop the data path: the first write error stops both files,
//!   is kept ([`CapturePort::capture_error`]) and counted; packets passing afterwards are
//!   forwarded and counted as [`CaptureStats::missed`].

use super::pcap::{wall_clock, PcapPortError, PcapSink};
use super::{Burst, Port, PortInfo, PortStats, BURST};
use crate::frame::{FramePool, Pkt};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The capture directory could not be created.
    #[error("cannot create capture directory {}: {source}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A capture file could not be created or its header written.
    #[error(transparent)]
    File(#[from] PcapPortError),
}

/// What a [`CapturePort`] recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets written to the rx file.
    pub rx_recorded: u64,
    /// Packets written to the tx file.
    pub tx_recorded: u64,
    /// Packets forwarded but not recorded because the capture had stopped.
    pub missed: u64,
    /// Write errors (the first one stops the capture; a later flush may add one).
    pub write_errors: u64,
}

#[derive(Clone, Copy)]
enum Dir {
    Rx,
    Tx,
}

/// A port that forwards to `inner` and records its rx and tx to pcap files.
pub struct CapturePort<P: Port> {
    inner: P,
    rx_path: PathBuf,
    tx_path: PathBuf,
    /// Both `Some` while capturing; both `None` once stopped.
    rx: Option<PcapSink>,
    tx: Option<PcapSink>,
    /// Bytes of the tx candidates, back to back.
    staging: Vec<u8>,
    /// Length of each tx candidate in `staging`.
    staged: [u16; BURST],
    stats: CaptureStats,
    error: Option<String>,
    label: String,
}

impl<P: Port> fmt::Debug for CapturePort<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapturePort")
            .field("inner", &self.inner.info().name)
            .field("capture", &self.label)
            .field("capturing", &self.is_capturing())
            .field("stats", &self.stats)
            .field("error", &self.error)
            .finish()
    }
}

impl<P: Port> CapturePort<P> {
    /// Wrap `inner`, recording to `dir/name-rx.pcap` and `dir/name-tx.pcap` (created or
    /// truncated; `dir` is created if missing).
    pub fn new(inner: P, dir: &Path, name: &str) -> Result<Self, CaptureError> {
        std::fs::create_dir_all(dir).map_err(|source| CaptureError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let rx_path = dir.join(format!("{name}-rx.pcap"));
        let tx_path = dir.join(format!("{name}-tx.pcap"));
        let rx = PcapSink::create(&rx_path)?;
        let tx = PcapSink::create(&tx_path)?;
        let slot = inner.info().max_frame.clamp(64, u16::MAX as usize);
        Ok(Self {
            label: format!("{}-{{rx,tx}}.pcap", dir.join(name).display()),
            inner,
            rx_path,
            tx_path,
            rx: Some(rx),
            tx: Some(tx),
            staging: Vec::with_capacity(BURST * slot),
            staged: [0; BURST],
            stats: CaptureStats::default(),
            error: None,
        })
    }

    /// The wrapped port.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped port, mutable.
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Path of the rx capture file.
    pub fn rx_path(&self) -> &Path {
        &self.rx_path
    }

    /// Path of the tx capture file.
    pub fn tx_path(&self) -> &Path {
        &self.tx_path
    }

    /// Whether packets are still being recorded (no write error so far).
    pub fn is_capturing(&self) -> bool {
        self.rx.is_some()
    }

    /// The first write error, naming the file, if the capture stopped.
    pub fn capture_error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// What has been recorded.
    pub fn capture_stats(&self) -> CaptureStats {
        self.stats.clone()
    }

    /// Stop capturing after a write error on `dir`'s file.
    fn fail(&mut self, dir: Dir, e: io::Error) {
        self.stats.write_errors += 1;
        if self.error.is_none() {
            let path = match dir {
                Dir::Rx => &self.rx_path,
                Dir::Tx => &self.tx_path,
            };
            self.error = Some(format!(
                "{}: write error, capture stopped: {e}",
                path.display()
            ));
        }
        self.rx = None;
        self.tx = None;
    }

    /// Record one packet; false (and counted as missed) when the capture is stopped.
    fn record(&mut self, dir: Dir, ts: Duration, data: &[u8]) {
        let sink = match dir {
            Dir::Rx => self.rx.as_mut(),
            Dir::Tx => self.tx.as_mut(),
        };
        let Some(sink) = sink else {
            self.stats.missed += 1;
            return;
        };
        match sink.write(ts, data) {
            Ok(()) => match dir {
                Dir::Rx => self.stats.rx_recorded += 1,
                Dir::Tx => self.stats.tx_recorded += 1,
            },
            Err(e) => {
                self.fail(dir, e);
                self.stats.missed += 1;
            }
        }
    }

    /// Flush both files; errors stop the capture.
    fn flush_files(&mut self) {
        if let Some(Err(e)) = self.rx.as_mut().map(PcapSink::flush) {
            self.fail(Dir::Rx, e);
        }
        if let Some(Err(e)) = self.tx.as_mut().map(PcapSink::flush) {
            self.fail(Dir::Tx, e);
        }
    }
}

impl<P: Port> Port for CapturePort<P> {
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut Burst) -> usize {
        let before = out.len();
        let n = self.inner.rx_burst(pool, out);
        if n == 0 {
            return n;
        }
        if !self.is_capturing() {
            self.stats.missed += n as u64;
            return n;
        }
        let ts = wall_clock();
        for pkt in &out.as_slice()[before..] {
            self.record(Dir::Rx, ts, pool.bytes(pkt));
        }
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Pkt]) -> usize {
        if !self.is_capturing() {
            let n = self.inner.tx_burst(pool, pkts);
            self.stats.missed += n as u64;
            return n;
        }
        let mut done = 0;
        for chunk in pkts.chunks(BURST) {
            if !self.is_capturing() {
                // Stopped by an error in an earlier chunk.
                let n = self.inner.tx_burst(pool, chunk);
                self.stats.missed += n as u64;
                done += n;
                if n < chunk.len() {
                    break;
                }
                continue;
            }
            self.staging.clear();
            for (i, pkt) in chunk.iter().enumerate() {
                self.staging.extend_from_slice(pool.bytes(pkt));
                self.staged[i] = pkt.len;
            }
            // From here on the inner port may free and reuse the accepted frames.
            let n = self.inner.tx_burst(pool, chunk);
            let ts = wall_clock();
            let staging = std::mem::take(&mut self.staging);
            let mut off = 0;
            let staged = self.staged;
            for &len in &staged[..n] {
                let end = off + len as usize;
                self.record(Dir::Tx, ts, &staging[off..end]);
                off = end;
            }
            self.staging = staging;
            done += n;
            if n < chunk.len() {
                break;
            }
        }
        done
    }

    fn service(&mut self, pool: &mut FramePool) {
        self.inner.service(pool)
    }

    fn release_frames(&mut self, pool: &mut FramePool) {
        self.inner.release_frames(pool)
    }

    fn finishes_checksums(&self) -> bool {
        self.inner.finishes_checksums()
    }

    fn info(&self) -> PortInfo {
        let mut info = self.inner.info();
        if !info.detail.is_empty() {
            info.detail.push_str(", ");
        }
        info.detail.push_str("capture=");
        info.detail.push_str(&self.label);
        if !self.is_capturing() {
            info.detail.push_str(" (stopped)");
        }
        info
    }

    fn stats(&self) -> PortStats {
        self.inner.stats()
    }

    fn flush(&mut self) {
        self.flush_files();
        self.inner.flush();
    }
}

impl<P: Port> Drop for CapturePort<P> {
    fn drop(&mut self) {
        self.flush_files();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::mem::mem_pair;
    use crate::port::pcap::tests::temp_dir;
    use pcap_file::pcap::PcapReader;
    use std::fs::File;

    fn read_all(path: &Path) -> Vec<Vec<u8>> {
        let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
        let mut v = Vec::new();
        while let Some(p) = r.next_packet() {
            v.push(p.unwrap().data.into_owned());
        }
        v
    }

    fn frame(tag: u8, len: usize) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, tag]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f
    }

    #[test]
    fn records_rx_and_only_accepted_tx() {
        let dir = temp_dir("capture-basic");
        let (port, peer) = mem_pair("m0", 1, 3);
        let mut cap = CapturePort::new(port, &dir, "m0").unwrap();
        let mut pool = FramePool::with_heap(16, 2048, 0);

        let rx_frames: Vec<Vec<u8>> = (0..2).map(|i| frame(i, 60 + i as usize)).collect();
        for f in &rx_frames {
            assert!(peer.send(f));
        }
        let mut b = Burst::new();
        assert_eq!(cap.rx_burst(&mut pool, &mut b), 2);
        for p in b.as_slice() {
            pool.free(p.frame);
        }

        let tx_frames: Vec<Vec<u8>> = (10..15).map(|i| frame(i, 100 + i as usize)).collect();
        let pkts: Vec<Pkt> = tx_frames
            .iter()
            .map(|f| pool.alloc_copy(f, 0).unwrap())
            .collect();
        let n = cap.tx_burst(&mut pool, &pkts);
        assert_eq!(n, 3, "mem lane of depth 3 takes 3");
        for p in &pkts[n..] {
            pool.free(p.frame);
        }
        assert_eq!(pool.free_count(), 16);
        cap.flush();

        assert_eq!(read_all(cap.rx_path()), rx_frames);
        assert_eq!(read_all(cap.tx_path()), tx_frames[..3].to_vec());
        assert_eq!(peer.drain(), tx_frames[..3].to_vec());
        let s = cap.capture_stats();
        assert_eq!((s.rx_recorded, s.tx_recorded, s.missed), (2, 3, 0));
        let want = format!("capture={}-{{rx,tx}}.pcap", dir.join("m0").display());
        assert!(cap.info().detail.ends_with(&want), "{}", cap.info().detail);
        assert_eq!(cap.info().backend, "mem");
    }

    #[test]
    fn long_tx_slices_go_in_chunks_and_stay_a_prefix() {
        let dir = temp_dir("capture-chunks");
        let (port, peer) = mem_pair("m0", 0, 100);
        let mut cap = CapturePort::new(port, &dir, "m0").unwrap();
        let mut pool = FramePool::with_heap(256, 2048, 0);
        let frames: Vec<Vec<u8>> = (0..150).map(|i| frame(i as u8, 60 + i)).collect();
        let pkts: Vec<Pkt> = frames
            .iter()
            .map(|f| pool.alloc_copy(f, 0).unwrap())
            .collect();
        let n = cap.tx_burst(&mut pool, &pkts);
        assert_eq!(n, 100);
        for p in &pkts[n..] {
            pool.free(p.frame);
        }
        cap.flush();
        assert_eq!(read_all(cap.tx_path()), frames[..100].to_vec());
        assert_eq!(peer.drain(), frames[..100].to_vec());
    }

    #[test]
    fn dropping_the_tee_flushes() {
        let dir = temp_dir("capture-drop");
        let (port, peer) = mem_pair("m0", 0, 4);
        let mut cap = CapturePort::new(port, &dir, "x").unwrap();
        let mut pool = FramePool::with_heap(4, 2048, 0);
        peer.send(&frame(1, 60));
        let mut b = Burst::new();
        cap.rx_burst(&mut pool, &mut b);
        let path = cap.rx_path().to_path_buf();
        drop(cap);
        assert_eq!(read_all(&path), vec![frame(1, 60)]);
    }

    #[test]
    fn write_error_stops_capture_but_not_forwarding() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let dir = temp_dir("capture-full");
        std::os::unix::fs::symlink("/dev/full", dir.join("f-tx.pcap")).unwrap();
        let (port, peer) = mem_pair("m0", 0, 512);
        let mut cap = CapturePort::new(port, &dir, "f").unwrap();
        let mut pool = FramePool::with_heap(8, 2048, 0);
        for i in 0..300u32 {
            let p = pool.alloc_copy(&frame(i as u8, 1500), 0).unwrap();
            assert_eq!(cap.tx_burst(&mut pool, &[p]), 1);
        }
        cap.flush();
        assert!(!cap.is_capturing());
        let msg = cap.capture_error().unwrap();
        assert!(msg.contains("f-tx.pcap"), "{msg}");
        let s = cap.capture_stats();
        assert!(s.write_errors >= 1);
        assert_eq!(s.tx_recorded + s.missed, 300);
        assert_eq!(peer.drain().len(), 300);
        assert!(cap.info().detail.ends_with("(stopped)"));
        // Still forwarding in both directions.
        peer.send(&frame(1, 60));
        let mut b = Burst::new();
        assert_eq!(cap.rx_burst(&mut pool, &mut b), 1);
        pool.free(b.as_slice()[0].frame);
        assert_eq!(pool.free_count(), 8);
    }
}

//! The `pcap` backend: a port whose input is a capture file and/or whose output is one.
//!
//! Input ([`PcapPort::open`] with `input`): the file's global header is checked up front
//! (magic, link type Ethernet), then records are streamed with `pcap_file`'s reader, one
//! at a time, never the whole file. Micro- and nanosecond pcap, either byte order, are
//! accepted; pcapng is not. [`Port::rx_burst`] copies each record into a pool frame and
//! stamps it with this port's id; [`PcapPort::timestamp_of_last`] is the record time of
//! the last packet delivered (virtual time for replays). With
//! [`PcapPort::with_pacing`] on, records are held back until as much wall time has passed
//! since the first record as record time has; off (the default), they come as fast as
//! they are asked for.
//!
//! Output (`output`): every packet accepted by [`Port::tx_burst`] is appended as one
//! record (Ethernet, snaplen 65535, nanosecond timestamps, native byte order), stamped
//! with the virtual time set by [`PcapPort::set_clock`] if any, else the wall clock. The
//! output is buffered; [`Port::flush`] (and dropping the port) writes it out.
//!
//! Invariants:
//! - the port holds no frame between calls: rx frames go to the caller, tx frames go back
//!   to the pool (`pool.free`) before `tx_burst` returns, so `tx_burst` always accepts the
//!   whole slice;
//! - records are delivered in file order, each at most once; a record longer than
//!   `min(pool.capacity(), 65535)` is skipped and counted
//!   ([`PcapStats::rx_oversized`], also reported as [`PortStats::rx_dropped`]);
//!   a record cut short by the end of the file, or any read error, ends the input, is
//!   counted ([`PcapStats::rx_errors`], also in [`PortStats::invalid_descs`]) and is
//!   described by [`PcapPort::input_error`]; nothing on the read path panics;
//! - a write error stops the output for good (later packets are still accepted, freed
//!   and counted as [`PcapStats::tx_discarded`]) and is described by
//!   [`PcapPort::output_error`]; the file then ends with what was written before;
//! - a port with no output file accepts and discards what it is sent (counted).

use super::{Burst, Port, PortInfo, PortStats};
use crate::frame::{FramePool, Pkt, PortId};
use crate::time::Instant;
use pcap_file::pcap::{PcapHeader, PcapReader};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Chain, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Snapshot length written in every pcap header this crate produces.
pub const SNAPLEN: u32 = 65535;

/// Largest record the backend carries (a [`Pkt`] length is 16 bits).
const MAX_RECORD: usize = u16::MAX as usize;

/// Ethernet link type (LINKTYPE_ETHERNET).
const LINKTYPE_ETHERNET: u32 = 1;

/// Magic numbers, read big-endian from the first four bytes.
const MAGIC_US_BE: u32 = 0xA1B2_C3D4;
const MAGIC_NS_BE: u32 = 0xA1B2_3C4D;
const MAGIC_US_LE: u32 = 0xD4C3_B2A1;
const MAGIC_NS_LE: u32 = 0x4D3C_B2A1;
const MAGIC_PCAPNG: u32 = 0x0A0D_0D0A;

/// Length of the pcap global header.
const HEADER_LEN: usize = 24;

/// Why a pcap port (or a capture file) could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PcapPortError {
    /// Neither an input nor an output was given.
    #[error("a pcap port needs an input file, an output file or both")]
    NoFiles,
    /// The input could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The input could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The input is shorter than a pcap magic number.
    #[error("{} is not a pcap file (only {len} bytes long)", path.display())]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// The input starts with a pcap magic number but its global header is cut short.
    #[error("{} is a truncated pcap file (global header has {len} of 24 bytes)", path.display())]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Bytes present.
        len: usize,
    },
    /// The input is a pcapng file.
    #[error("{} is a pcapng file; only classic pcap is supported (convert it: editcap -F pcap IN OUT)", path.display())]
    Pcapng {
        /// The file.
        path: PathBuf,
    },
    /// The input does not start with a pcap magic number.
    #[error("{} is not a pcap file (bad magic {magic:#010x})", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first four bytes, read big-endian.
        magic: u32,
    },
    /// The input's link type is not Ethernet.
    #[error("{} uses link type {link}; only Ethernet (1) is supported", path.display())]
    LinkType {
        /// The file.
        path: PathBuf,
        /// The link-type field of the global header.
        link: u32,
    },
    /// An output file could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The pcap header could not be written to an output file.
    #[error("cannot write to {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

/// Counters of a [`PcapPort`], beyond the generic [`PortStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcapStats {
    /// Records read from the input (delivered, skipped or held for pacing).
    pub rx_records: u64,
    /// Packets delivered by `rx_burst`.
    pub rx_delivered: u64,
    /// Records skipped because they do not fit in a pool frame (or exceed 65535 bytes).
    pub rx_oversized: u64,
    /// Read errors (a record cut short, an I/O error); each one ends the input.
    pub rx_errors: u64,
    /// Times `rx_burst` found the pool empty.
    pub rx_fill_empty: u64,
    /// Packets written to the output.
    pub tx_written: u64,
    /// Packets accepted but not written (no output file, or the output failed).
    pub tx_discarded: u64,
    /// Write errors (each one stops the output).
    pub tx_errors: u64,
}

/// A buffered pcap writer that can be flushed (the `pcap_file` writer cannot).
///
/// Writes a standard pcap: native byte order, nanosecond timestamps, Ethernet,
/// snaplen [`SNAPLEN`]. Records longer than the snaplen are cut to it (`orig_len` keeps
/// the true length); packets from a [`FramePool`] never are.
pub(crate) struct PcapSink {
    w: BufWriter<File>,
}

impl PcapSink {
    /// Create (truncate) `path` and buffer the global header.
    pub(crate) fn create(path: &Path) -> Result<Self, PcapPortError> {
        let file = File::create(path).map_err(|source| PcapPortError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let mut w = BufWriter::with_capacity(256 * 1024, file);
        let header = PcapHeader {
            snaplen: SNAPLEN,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        header.write_to(&mut w).map_err(|e| PcapPortError::Write {
            path: path.to_path_buf(),
            source: match e {
                PcapError::IoError(e) => e,
                other => io::Error::other(other.to_string()),
            },
        })?;
        Ok(Self { w })
    }

    /// Append one record stamped `ts` (time since the Unix epoch, or virtual time).
    pub(crate) fn write(&mut self, ts: Duration, data: &[u8]) -> io::Result<()> {
        let secs = u32::try_from(ts.as_secs()).unwrap_or(u32::MAX);
        let incl = data.len().min(SNAPLEN as usize);
        let orig = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&secs.to_ne_bytes());
        hdr[4..8].copy_from_slice(&ts.subsec_nanos().to_ne_bytes());
        hdr[8..12].copy_from_slice(&(incl as u32).to_ne_bytes());
        hdr[12..16].copy_from_slice(&orig.to_ne_bytes());
        self.w.write_all(&hdr)?;
        self.w.write_all(&data[..incl])
    }

    /// Write out everything buffered.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// The wall clock as time since the Unix epoch (zero if the clock is before 1970).
pub(crate) fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

type Reader = PcapReader<Chain<Cursor<Vec<u8>>, File>>;

/// Wall-time origin for paced delivery.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Record time of the first record.
    first_ts: Duration,
    /// When the first record was read.
    start: Instant,
}

/// The reading side of a [`PcapPort`].
struct Input {
    path: PathBuf,
    /// `None` once the input has ended (end of file or error); drops the read buffer.
    reader: Option<Reader>,
    nanos: bool,
    pacing: bool,
    pace: Option<Pace>,
    /// A record read but not yet due (pacing only): its time, bytes in `pending_buf`.
    pending: Option<Duration>,
    pending_buf: Vec<u8>,
    last_ts: Option<Duration>,
    error: Option<String>,
    records: u64,
    delivered: u64,
    oversized: u64,
    errors: u64,
}

impl Input {
    fn open(path: &Path) -> Result<Self, PcapPortError> {
        let mut file = File::open(path).map_err(|source| PcapPortError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut head = Vec::with_capacity(HEADER_LEN);
        (&mut file)
            .take(HEADER_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|source| PcapPortError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        let path_buf = path.to_path_buf();
        if head.len() < 4 {
            return Err(PcapPortError::TooShort {
                path: path_buf,
                len: head.len(),
            });
        }
        let magic = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let (big, nanos) = match magic {
            MAGIC_US_BE => (true, false),
            MAGIC_NS_BE => (true, true),
            MAGIC_US_LE => (false, false),
            MAGIC_NS_LE => (false, true),
            MAGIC_PCAPNG => return Err(PcapPortError::Pcapng { path: path_buf }),
            _ => {
                return Err(PcapPortError::BadMagic {
                    path: path_buf,
                    magic,
                })
            }
        };
        if head.len() < HEADER_LEN {
            return Err(PcapPortError::TruncatedHeader {
                path: path_buf,
                len: head.len(),
            });
        }
        let lt = [head[20], head[21], head[22], head[23]];
        let link = if big {
            u32::from_be_bytes(lt)
        } else {
            u32::from_le_bytes(lt)
        };
        if link != LINKTYPE_ETHERNET {
            return Err(PcapPortError::LinkType {
                path: path_buf,
                link,
            });
        }
        // The header is valid, so the reader only fails on I/O.
        let reader =
            PcapReader::new(Cursor::new(head).chain(file)).map_err(|e| PcapPortError::Read {
                path: path.to_path_buf(),
                source: match e {
                    PcapError::IoError(e) => e,
                    other => io::Error::other(other.to_string()),
                },
            })?;
        Ok(Self {
            path: path_buf,
            reader: Some(reader),
            nanos,
            pacing: false,
            pace: None,
            pending: None,
            pending_buf: Vec::new(),
            last_ts: None,
            error: None,
            records: 0,
            delivered: 0,
            oversized: 0,
            errors: 0,
        })
    }

    fn is_exhausted(&self) -> bool {
        self.reader.is_none() && self.pending.is_none()
    }

    /// Whether a record stamped `ts` may be delivered at `now` (always, unpaced).
    fn due(pace: &mut Option<Pace>, ts: Duration, now: Option<Instant>) -> bool {
        let Some(now) = now else { return true };
        let p = *pace.get_or_insert(Pace {
            first_ts: ts,
            start: now,
        });
        now.saturating_since(p.start) >= ts.saturating_sub(p.first_ts)
    }

    /// Copy the next due record into `dst` (whose length bounds a record); its length,
    /// or `None` when nothing is due or the input has ended.
    fn next_into(&mut self, dst: &mut [u8], now: Option<Instant>) -> Option<usize> {
        loop {
            if let Some(ts) = self.pending {
                if !Self::due(&mut self.pace, ts, now) {
                    return None;
                }
                self.pending = None;
                let len = self.pending_buf.len();
                if len > dst.len() {
                    // The pool changed under us; skip as oversized.
                    self.oversized += 1;
                    continue;
                }
                dst[..len].copy_from_slice(&self.pending_buf);
                self.last_ts = Some(ts);
                self.delivered += 1;
                return Some(len);
            }
            let reader = self.reader.as_mut()?;
            match reader.next_raw_packet() {
                None => {
                    self.reader = None;
                    return None;
                }
                Some(Err(e)) => {
                    let record = self.records + 1;
                    let msg = match e {
                        PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            format!(
                                "{}: record {record} is cut short (truncated file or corrupt record length)",
                                self.path.display()
                            )
                        }
                        PcapError::IoError(e) => {
                            format!(
                                "{}: read error at record {record}: {e}",
                                self.path.display()
                            )
                        }
                        other => format!("{}: record {record}: {other}", self.path.display()),
                    };
                    self.errors += 1;
                    self.error.get_or_insert(msg);
                    self.reader = None;
                    return None;
                }
                Some(Ok(raw)) => {
                    self.records += 1;
                    let data = &raw.data[..];
                    if data.len() > dst.len() {
                        self.oversized += 1;
                        continue;
                    }
                    let frac = u64::from(raw.ts_frac) * if self.nanos { 1 } else { 1000 };
                    let ts =
                        Duration::from_secs(u64::from(raw.ts_sec)) + Duration::from_nanos(frac);
                    if !Self::due(&mut self.pace, ts, now) {
                        self.pending_buf.clear();
                        self.pending_buf.extend_from_slice(data);
                        self.pending = Some(ts);
                        return None;
                    }
                    dst[..data.len()].copy_from_slice(data);
                    self.last_ts = Some(ts);
                    self.delivered += 1;
                    return Some(data.len());
                }
            }
        }
    }
}

/// The writing side of a [`PcapPort`].
struct Output {
    path: PathBuf,
    /// `None` after a write error.
    sink: Option<PcapSink>,
    error: Option<String>,
    written: u64,
    errors: u64,
}

impl Output {
    fn fail(&mut self, e: io::Error) {
        self.errors += 1;
        self.error
            .get_or_insert_with(|| format!("{}: write error: {e}", self.path.display()));
        self.sink = None;
    }
}

/// A port reading packets from a pcap file and/or writing packets to one.
pub struct PcapPort {
    id: PortId,
    input: Option<Input>,
    output: Option<Output>,
    clock: Option<Duration>,
    fill_empty: u64,
    discarded: u64,
}

impl fmt::Debug for PcapPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapPort")
            .field("id", &self.id)
            .field("input", &self.input.as_ref().map(|i| &i.path))
            .field("output", &self.output.as_ref().map(|o| &o.path))
            .field("exhausted", &self.is_exhausted())
            .field("stats", &self.pcap_stats())
            .finish()
    }
}

impl PcapPort {
    /// Open a port numbered `id` reading `input` and/or writing `output` (created or
    /// truncated). At least one must be given.
    ///
    /// The input's global header is checked here: it must be classic pcap (micro- or
    /// nanosecond, either byte order) with link type Ethernet.
    pub fn open(
        id: PortId,
        input: Option<&Path>,
        output: Option<&Path>,
    ) -> Result<Self, PcapPortError> {
        if input.is_none() && output.is_none() {
            return Err(PcapPortError::NoFiles);
        }
        let input = input.map(Input::open).transpose()?;
        let output = match output {
            Some(path) => Some(Output {
                path: path.to_path_buf(),
                sink: Some(PcapSink::create(path)?),
                error: None,
                written: 0,
                errors: 0,
            }),
            None => None,
        };
        Ok(Self {
            id,
            input,
            output,
            clock: None,
            fill_empty: 0,
            discarded: 0,
        })
    }

    /// Deliver input records no faster than their timestamps say (`true`), or as fast
    /// as asked (`false`, the default). Time starts at the first record read.
    pub fn with_pacing(mut self, pacing: bool) -> Self {
        if let Some(input) = &mut self.input {
            input.pacing = pacing;
            if !pacing {
                input.pace = None;
            }
        }
        self
    }

    /// Whether the input has ended: every record was delivered or skipped, or a read
    /// error stopped it. The end is found by reading: this turns true during the
    /// `rx_burst` that reaches it (one that returns less than the room it was given, or
    /// the next one if a burst ended exactly on the last record). A port without input
    /// is always exhausted.
    pub fn is_exhausted(&self) -> bool {
        match &self.input {
            Some(input) => input.is_exhausted(),
            None => true,
        }
    }

    /// Record timestamp (since the Unix epoch, as in the file) of the last packet
    /// `rx_burst` delivered; `None` before the first.
    pub fn timestamp_of_last(&self) -> Option<Duration> {
        self.input.as_ref().and_then(|i| i.last_ts)
    }

    /// Stamp records written from now on with this virtual time instead of the wall
    /// clock (call it before each `tx_burst` to advance it).
    pub fn set_clock(&mut self, now: Duration) {
        self.clock = Some(now);
    }

    /// Go back to stamping written records with the wall clock.
    pub fn clear_clock(&mut self) {
        self.clock = None;
    }

    /// The first read error, naming the file and the record, if the input hit one.
    pub fn input_error(&self) -> Option<&str> {
        self.input.as_ref().and_then(|i| i.error.as_deref())
    }

    /// The first write error, naming the file, if the output hit one.
    pub fn output_error(&self) -> Option<&str> {
        self.output.as_ref().and_then(|o| o.error.as_deref())
    }

    /// All counters of this port.
    pub fn pcap_stats(&self) -> PcapStats {
        let mut s = PcapStats {
            rx_fill_empty: self.fill_empty,
            tx_discarded: self.discarded,
            ..PcapStats::default()
        };
        if let Some(i) = &self.input {
            s.rx_records = i.records;
            s.rx_delivered = i.delivered;
            s.rx_oversized = i.oversized;
            s.rx_errors = i.errors;
        }
        if let Some(o) = &self.output {
            s.tx_written = o.written;
            s.tx_errors = o.errors;
        }
        s
    }
}

impl Port for PcapPort {
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut Burst) -> usize {
        let Some(input) = self.input.as_mut() else {
            return 0;
        };
        let now = input.pacing.then(Instant::now);
        let cap = pool.capacity().min(MAX_RECORD);
        let mut n = 0;
        while !out.is_full() && !input.is_exhausted() {
            let Some(frame) = pool.alloc() else {
                self.fill_empty += 1;
                break;
            };
            let Some(len) = input.next_into(&mut pool.frame_mut(frame)[..cap], now) else {
                pool.free(frame);
                break;
            };
            let _ = out.push(Pkt {
                frame,
                len: len as u16,
                port: self.id,
            });
            n += 1;
        }
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Pkt]) -> usize {
        match self.output.as_mut() {
            Some(out) if out.sink.is_some() => {
                let ts = self.clock.unwrap_or_else(wall_clock);
                for pkt in pkts {
                    match out.sink.as_mut() {
                        Some(sink) => match sink.write(ts, pool.bytes(pkt)) {
                            Ok(()) => out.written += 1,
                            Err(e) => {
                                out.fail(e);
                                self.discarded += 1;
                            }
                        },
                        None => self.discarded += 1,
                    }
                    pool.free(pkt.frame);
                }
            }
            _ => {
                for pkt in pkts {
                    pool.free(pkt.frame);
                }
                self.discarded += pkts.len() as u64;
            }
        }
        pkts.len()
    }

    fn info(&self) -> PortInfo {
        let mut detail = Vec::new();
        if let Some(i) = &self.input {
            detail.push(format!(
                "in={}{}",
                i.path.display(),
                if i.pacing { " (paced)" } else { "" }
            ));
        }
        if let Some(o) = &self.output {
            detail.push(format!("out={}", o.path.display()));
        }
        let name = match (&self.input, &self.output) {
            (Some(i), _) => i.path.display().to_string(),
            (None, Some(o)) => o.path.display().to_string(),
            (None, None) => String::new(),
        };
        PortInfo {
            name,
            backend: "pcap",
            detail: detail.join(" "),
            max_frame: MAX_RECORD,
        }
    }

    fn stats(&self) -> PortStats {
        let s = self.pcap_stats();
        PortStats {
            rx_dropped: s.rx_oversized,
            invalid_descs: s.rx_errors + s.tx_errors,
            fill_empty: s.rx_fill_empty,
            tx_kicks: 0,
            vhost: None,
            offload: Default::default(),
        }
    }

    fn flush(&mut self) {
        if let Some(out) = &mut self.output {
            if let Some(Err(e)) = out.sink.as_mut().map(PcapSink::flush) {
                out.fail(e);
            }
        }
    }
}

impl Drop for PcapPort {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh, empty directory under the system temp dir, removed when dropped.
    pub(crate) struct TestDir(PathBuf);

    impl std::ops::Deref for TestDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A fresh, empty directory under the system temp dir, removed when dropped.
    pub(crate) fn temp_dir(tag: &str) -> TestDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vnet-core-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    /// A hand-built pcap: `magic` as stored big-endian, link type, records.
    fn pcap_bytes(big: bool, nanos: bool, link: u32, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let u32b = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u16b = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut v = Vec::new();
        v.extend_from_slice(&u32b(if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 }));
        v.extend_from_slice(&u16b(2));
        v.extend_from_slice(&u16b(4));
        v.extend_from_slice(&u32b(0));
        v.extend_from_slice(&u32b(0));
        v.extend_from_slice(&u32b(65535));
        v.extend_from_slice(&u32b(link));
        for (sec, frac, data) in records {
            v.extend_from_slice(&u32b(*sec));
            v.extend_from_slice(&u32b(*frac));
            v.extend_from_slice(&u32b(data.len() as u32));
            v.extend_from_slice(&u32b(data.len() as u32));
            v.extend_from_slice(data);
        }
        v
    }

    fn frame(tag: u8, len: usize) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, tag]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn drain(port: &mut PcapPort, pool: &mut FramePool) -> Vec<(Vec<u8>, Duration)> {
        let mut got = Vec::new();
        loop {
            let mut b = Burst::new();
            if port.rx_burst(pool, &mut b) == 0 {
                break;
            }
            for p in b.as_slice() {
                assert_eq!(p.port, 5);
                got.push((pool.bytes(p).to_vec(), Duration::ZERO));
                pool.free(p.frame);
            }
            got.last_mut().unwrap().1 = port.timestamp_of_last().unwrap();
        }
        got
    }

    #[test]
    fn every_byte_order_and_resolution_reads_back() {
        let dir = temp_dir("pcap-variants");
        let (a, b) = (frame(1, 60), frame(2, 1514));
        for big in [false, true] {
            for nanos in [false, true] {
                let frac = if nanos { 5_000 } else { 5 };
                let bytes = pcap_bytes(big, nanos, 1, &[(10, 0, &a), (11, frac, &b)]);
                let path = write(&dir, &format!("v-{big}-{nanos}.pcap"), &bytes);
                let mut port = PcapPort::open(5, Some(&path), None).unwrap();
                let mut pool = FramePool::with_heap(8, 2048, 256);
                let got = drain(&mut port, &mut pool);
                assert_eq!(got.len(), 2);
                assert_eq!(got[0].0, a);
                assert_eq!(got[1].0, b);
                assert_eq!(got[1].1, Duration::new(11, 5_000));
                assert!(port.is_exhausted());
                assert_eq!(pool.free_count(), 8);
                assert_eq!(port.pcap_stats().rx_delivered, 2);
            }
        }
    }

    #[test]
    fn header_errors_are_precise() {
        let dir = temp_dir("pcap-errors");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", vec![], "is not a pcap file (only 0 bytes long)"),
            (
                "text",
                b"hello, this is not a capture file".to_vec(),
                "is not a pcap file (bad magic 0x68656c6c)",
            ),
            (
                "ng",
                vec![0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0],
                "is a pcapng file",
            ),
            (
                "short",
                pcap_bytes(false, false, 1, &[])[..10].to_vec(),
                "is a truncated pcap file (global header has 10 of 24 bytes)",
            ),
            (
                "raw",
                pcap_bytes(true, false, 101, &[]),
                "uses link type 101; only Ethernet (1) is supported",
            ),
        ];
        for (name, bytes, want) in cases {
            let path = write(&dir, name, &bytes);
            let err = PcapPort::open(0, Some(&path), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{name}: {err}");
            assert!(
                err.starts_with(&path.display().to_string()),
                "{name}: {err}"
            );
        }
        let err = PcapPort::open(0, Some(&dir.join("missing")), None).unwrap_err();
        assert!(matches!(err, PcapPortError::Open { .. }), "{err}");
        assert!(matches!(
            PcapPort::open(0, None, None),
            Err(PcapPortError::NoFiles)
        ));
    }

    #[test]
    fn oversized_records_are_skipped_and_counted() {
        let dir = temp_dir("pcap-oversize");
        let (a, big, b) = (frame(1, 60), frame(9, 3000), frame(2, 64));
        let path = write(
            &dir,
            "o.pcap",
            &pcap_bytes(false, false, 1, &[(1, 0, &a), (2, 0, &big), (3, 0, &b)]),
        );
        let mut port = PcapPort::open(5, Some(&path), None).unwrap();
        let mut pool = FramePool::with_heap(8, 2048, 0);
        let got = drain(&mut port, &mut pool);
        assert_eq!(got.iter().map(|g| &g.0).collect::<Vec<_>>(), [&a, &b]);
        let s = port.pcap_stats();
        assert_eq!((s.rx_records, s.rx_oversized, s.rx_delivered), (3, 1, 2));
        assert_eq!(port.stats().rx_dropped, 1);
        assert_eq!(pool.free_count(), 8);
    }

    #[test]
    fn truncated_record_ends_input_with_an_error() {
        let dir = temp_dir("pcap-trunc");
        let (a, b) = (frame(1, 60), frame(2, 200));
        let bytes = pcap_bytes(false, true, 1, &[(1, 0, &a), (2, 0, &b)]);
        for cut in [1, 50, 200, 16 + 200 - 1] {
            let path = write(&dir, "t.pcap", &bytes[..bytes.len() - cut]);
            let mut port = PcapPort::open(5, Some(&path), None).unwrap();
            let mut pool = FramePool::with_heap(8, 2048, 0);
            let got = drain(&mut port, &mut pool);
            assert_eq!(got.len(), 1);
            assert!(port.is_exhausted());
            assert_eq!(port.pcap_stats().rx_errors, 1);
            assert_eq!(port.stats().invalid_descs, 1);
            let msg = port.input_error().unwrap();
            assert!(msg.contains("record 2 is cut short"), "{msg}");
            // Asking again is harmless.
            assert_eq!(drain(&mut port, &mut pool).len(), 0);
            assert_eq!(port.pcap_stats().rx_errors, 1);
        }
    }

    #[test]
    fn empty_pool_holds_input_without_losing_records() {
        let dir = temp_dir("pcap-pool");
        let frames: Vec<Vec<u8>> = (0..5).map(|i| frame(i, 60 + i as usize)).collect();
        let recs: Vec<(u32, u32, &[u8])> = frames.iter().map(|f| (1, 0, f.as_slice())).collect();
        let path = write(&dir, "p.pcap", &pcap_bytes(false, false, 1, &recs));
        let mut port = PcapPort::open(5, Some(&path), None).unwrap();
        let mut pool = FramePool::with_heap(2, 2048, 0);
        let mut got = Vec::new();
        for _ in 0..10 {
            let mut b = Burst::new();
            port.rx_burst(&mut pool, &mut b);
            for p in b.as_slice() {
                got.push(pool.bytes(p).to_vec());
                pool.free(p.frame);
            }
        }
        assert_eq!(got, frames);
        assert!(port.pcap_stats().rx_fill_empty >= 2);
    }

    #[test]
    fn orig_len_beyond_snaplen_is_accepted() {
        // A capture taken with a small snaplen: incl_len 60 < orig_len 1500 > snaplen.
        let dir = temp_dir("pcap-snap");
        let a = frame(1, 60);
        let mut bytes = pcap_bytes(false, false, 1, &[(1, 0, &a)]);
        bytes[16..20].copy_from_slice(&96u32.to_le_bytes());
        bytes[24 + 12..24 + 16].copy_from_slice(&1500u32.to_le_bytes());
        let path = write(&dir, "s.pcap", &bytes);
        let mut port = PcapPort::open(5, Some(&path), None).unwrap();
        let mut pool = FramePool::with_heap(2, 2048, 0);
        let got = drain(&mut port, &mut pool);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, a);
    }

    #[test]
    fn pacing_holds_records_until_due() {
        let dir = temp_dir("pcap-pace");
        let (a, b, c) = (frame(1, 60), frame(2, 60), frame(3, 60));
        // c is due an hour after a: it must not come out during this test.
        let path = write(
            &dir,
            "pace.pcap",
            &pcap_bytes(
                false,
                false,
                1,
                &[(100, 0, &a), (100, 0, &b), (3700, 0, &c)],
            ),
        );
        let mut port = PcapPort::open(5, Some(&path), None)
            .unwrap()
            .with_pacing(true);
        let mut pool = FramePool::with_heap(8, 2048, 0);
        let mut burst = Burst::new();
        assert_eq!(port.rx_burst(&mut pool, &mut burst), 2);
        assert_eq!(port.rx_burst(&mut pool, &mut burst), 0);
        assert!(!port.is_exhausted());
        assert_eq!(port.timestamp_of_last(), Some(Duration::from_secs(100)));
        assert_eq!(pool.free_count(), 6);
        for p in burst.as_slice() {
            pool.free(p.frame);
        }

        // The same file unpaced comes out at once.
        let mut port = PcapPort::open(5, Some(&path), None).unwrap();
        let mut burst = Burst::new();
        assert_eq!(port.rx_burst(&mut pool, &mut burst), 3);
        assert!(port.is_exhausted());
    }

    #[test]
    fn tx_writes_records_with_virtual_time_and_frees_frames() {
        let dir = temp_dir("pcap-tx");
        let path = dir.join("out.pcap");
        let mut port = PcapPort::open(0, None, Some(&path)).unwrap();
        let mut pool = FramePool::with_heap(4, 2048, 128);
        let (a, b) = (frame(1, 60), frame(2, 1514));
        let pkts = [
            pool.alloc_copy(&a, 0).unwrap(),
            pool.alloc_copy(&b, 0).unwrap(),
        ];
        port.set_clock(Duration::new(7, 123_456_789));
        assert_eq!(port.tx_burst(&mut pool, &pkts), 2);
        assert_eq!(pool.free_count(), 4);
        port.flush();
        let mut r = PcapReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.header().datalink, DataLink::ETHERNET);
        assert_eq!(r.header().snaplen, 65535);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.timestamp, Duration::new(7, 123_456_789));
        assert_eq!(&p.data[..], &a[..]);
        assert_eq!(p.orig_len, 60);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(&p.data[..], &b[..]);
        assert!(r.next_packet().is_none());
        assert_eq!(port.pcap_stats().tx_written, 2);
        assert_eq!(port.output_error(), None);
    }

    #[test]
    fn input_only_port_discards_tx() {
        let dir = temp_dir("pcap-discard");
        let path = write(&dir, "i.pcap", &pcap_bytes(false, false, 1, &[]));
        let mut port = PcapPort::open(0, Some(&path), None).unwrap();
        let mut pool = FramePool::with_heap(4, 2048, 0);
        let p = pool.alloc_copy(&frame(1, 60), 0).unwrap();
        assert_eq!(port.tx_burst(&mut pool, &[p]), 1);
        assert_eq!(pool.free_count(), 4);
        assert_eq!(port.pcap_stats().tx_discarded, 1);
        // The end is found by reading.
        assert!(!port.is_exhausted());
        let mut b = Burst::new();
        assert_eq!(port.rx_burst(&mut pool, &mut b), 0);
        assert!(port.is_exhausted());
    }

    #[test]
    fn write_error_stops_output_but_keeps_accepting() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let mut port = PcapPort::open(0, None, Some(Path::new("/dev/full"))).unwrap();
        let mut pool = FramePool::with_heap(4, 2048, 0);
        for _ in 0..300 {
            let p = pool.alloc_copy(&frame(1, 1500), 0).unwrap();
            assert_eq!(port.tx_burst(&mut pool, &[p]), 1);
        }
        port.flush();
        assert_eq!(pool.free_count(), 4);
        let s = port.pcap_stats();
        assert_eq!(s.tx_errors, 1);
        assert_eq!(s.tx_written + s.tx_discarded, 300);
        assert!(port.output_error().unwrap().contains("/dev/full"));
    }
}

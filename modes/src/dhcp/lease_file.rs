//! The lease file: leases persisted across restarts, in a small line-based text format.
//!
//! Control plane only: the server reads it at construction and writes it from
//! [`super::DhcpServer::save`] / [`super::DhcpServer::flush_if_dirty`], never per packet.
//!
//! # Format (version 1)
//!
//! ```text
//! vnet-dhcp-leases 1
//! # state address expiry-unix-seconds client
//! bound 192.168.56.101 1700003600 mac:525400123456
//! free 192.168.56.102 0 id:01525400123456
//! declined 192.168.56.103 1700000300 -
//! end 3
//! ```
//!
//! - The first line is the header `vnet-dhcp-leases 1`.
//! - Lines starting with `#` and empty lines are comments.
//! - One record per line, four fields separated by single spaces: the state (`bound`, a
//!   lease in force; `free`, an address that remembers its last client; `declined`, a
//!   quarantined address), the address, the **wall-clock** end of the lease or
//!   quarantine in seconds since the Unix epoch (0 for `free`), and the client key
//!   (`mac:` + 12 hex digits, `id:` + the client identifier in hex; `-` for `declined`).
//! - The last line is `end N` with N the number of records, followed by a newline.
//!   Anything missing that line (a file cut short) is [`LeaseFileError::Truncated`].
//!
//! Why wall-clock time: the server's [`vnet_core::time::Instant`] is monotonic with an
//! arbitrary epoch that restarts with the process, so it means nothing in a file. The
//! caller passes `(now, wall_now)`, the same moment on both clocks, when loading and
//! saving; the server converts deadlines with them (a lease's remaining time is kept,
//! never stretched beyond the configured lease time if the wall clock went backwards).
//!
//! # Atomicity
//!
//! [`store`] writes the whole file to `PATH.tmp` (same directory), `fsync`s it, renames
//! it over `PATH`, then `fsync`s the directory. A crash leaves either the old or the new
//! file at `PATH`; a stale `PATH.tmp` is ignored by [`load`] and overwritten by the next
//! [`store`].

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::leases::ClientKey;

/// The first line of every lease file.
pub const HEADER: &str = "vnet-dhcp-leases 1";

/// What is wrong with a lease file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LeaseFileError {
    /// Reading, writing, syncing or renaming failed.
    #[error("lease file {}: {source}", path.display())]
    Io {
        /// The file (or its `.tmp` / directory) being accessed.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A line could not be understood.
    #[error("lease file {}, line {line}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The file ends before its `end N` line (or the count does not match).
    #[error("lease file {} is truncated: {reason}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: &'static str,
    },
}

/// The state column of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// A lease in force until `expiry_unix`.
    Bound,
    /// A free address remembering its last client.
    Free,
    /// A quarantined address until `expiry_unix`.
    Declined,
}

/// One line of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The state.
    pub state: RecordState,
    /// The pool address.
    pub addr: Ipv4Addr,
    /// End of the lease or quarantine, seconds since the Unix epoch (0 for `Free`).
    pub expiry_unix: u64,
    /// The client (`None` exactly for `Declined`).
    pub client: Option<ClientKey>,
    /// The 1-based line it was read from (0 for records not read from a file).
    pub line: usize,
}

/// `PATH.tmp`: where [`store`] writes before renaming.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Appends the text of a file holding `records` to `out`.
pub fn render(records: &[LeaseRecord], out: &mut String) {
    out.push_str(HEADER);
    out.push_str("\n# state address expiry-unix-seconds client\n");
    for r in records {
        let state = match r.state {
            RecordState::Bound => "bound",
            RecordState::Free => "free",
            RecordState::Declined => "declined",
        };
        let _ = write!(out, "{state} {} {} ", r.addr, r.expiry_unix);
        match &r.client {
            Some(c) => {
                let _ = writeln!(out, "{c}");
            }
            None => out.push_str("-\n"),
        }
    }
    let _ = writeln!(out, "end {}", records.len());
}

/// Parses the text of a file (`path` only names it in errors).
///
/// # Errors
/// [`LeaseFileError::Corrupt`] for a bad line, [`LeaseFileError::Truncated`] if the
/// `end N` line or the final newline is missing or N is not the record count.
pub fn parse(path: &Path, text: &str) -> Result<Vec<LeaseRecord>, LeaseFileError> {
    let corrupt = |line, reason| LeaseFileError::Corrupt {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let truncated = |reason| LeaseFileError::Truncated {
        path: path.to_path_buf(),
        reason,
    };
    if !text.ends_with('\n') {
        return Err(truncated("the last line is incomplete"));
    }
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, HEADER)) => {}
        _ => {
            return Err(corrupt(
                1,
                "missing or unknown header (want \"vnet-dhcp-leases 1\")",
            ))
        }
    }
    let mut records = Vec::new();
    let mut ended = false;
    for (n, line) in lines {
        if ended {
            return Err(corrupt(n, "text after the end line"));
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        if let ["end", count] = fields[..] {
            let count: usize = count.parse().map_err(|_| corrupt(n, "bad record count"))?;
            if count != records.len() {
                return Err(truncated("the record count does not match the end line"));
            }
            ended = true;
            continue;
        }
        let [state, addr, expiry, client] = fields[..] else {
            return Err(corrupt(n, "want 4 fields: state address expiry client"));
        };
        let state = match state {
            "bound" => RecordState::Bound,
            "free" => RecordState::Free,
            "declined" => RecordState::Declined,
            _ => return Err(corrupt(n, "unknown state")),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| corrupt(n, "bad address"))?;
        let expiry_unix: u64 = expiry.parse().map_err(|_| corrupt(n, "bad expiry"))?;
        let client = match (state, client) {
            (RecordState::Declined, "-") => None,
            (RecordState::Declined, _) => {
                return Err(corrupt(n, "a declined address has no client"))
            }
            (_, text) => Some(ClientKey::parse(text).ok_or_else(|| corrupt(n, "bad client key"))?),
        };
        records.push(LeaseRecord {
            state,
            addr,
            expiry_unix,
            client,
            line: n,
        });
    }
    if !ended {
        return Err(truncated("no end line"));
    }
    Ok(records)
}

/// Reads and parses `path`; `Ok(None)` if it does not exist (a first start). A leftover
/// `PATH.tmp` is never read.
///
/// # Errors
/// [`LeaseFileError::Io`] if it exists but cannot be read (or is not UTF-8), else as
/// [`parse`].
pub fn load(path: &Path) -> Result<Option<Vec<LeaseRecord>>, LeaseFileError> {
    let text = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LeaseFileError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let text = String::from_utf8(text).map_err(|_| LeaseFileError::Corrupt {
        path: path.to_path_buf(),
        line: 0,
        reason: "not UTF-8 text",
    })?;
    parse(path, &text).map(Some)
}

/// Atomically replaces `path` with a file holding `records` (see the module docs).
///
/// # Errors
/// [`LeaseFileError::Io`] naming the file that failed; `path` is then unchanged.
pub fn store(path: &Path, records: &[LeaseRecord]) -> Result<(), LeaseFileError> {
    let mut text = String::with_capacity(64 + records.len() * 64);
    render(records, &mut text);
    let tmp = tmp_path(path);
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| LeaseFileError::Io { path: p, source }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<LeaseRecord> {
        vec![
            LeaseRecord {
                state: RecordState::Bound,
                addr: Ipv4Addr::new(192, 168, 56, 101),
                expiry_unix: 1_700_003_600,
                client: Some(ClientKey::from_mac([0x52, 0x54, 0, 0x12, 0x34, 0x56])),
                line: 3,
            },
            LeaseRecord {
                state: RecordState::Free,
                addr: Ipv4Addr::new(192, 168, 56, 102),
                expiry_unix: 0,
                client: ClientKey::from_client_id(&[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                line: 4,
            },
            LeaseRecord {
                state: RecordState::Declined,
                addr: Ipv4Addr::new(192, 168, 56, 103),
                expiry_unix: 1_700_000_300,
                client: None,
                line: 5,
            },
        ]
    }

    const TEXT: &str = "vnet-dhcp-leases 1\n\
        # state address expiry-unix-seconds client\n\
        bound 192.168.56.101 1700003600 mac:525400123456\n\
        free 192.168.56.102 0 id:01525400123456\n\
        declined 192.168.56.103 1700000300 -\n\
        end 3\n";

    #[test]
    fn render_matches_documented_format_and_parses_back() {
        let mut text = String::new();
        render(&records(), &mut text);
        assert_eq!(text, TEXT);
        assert_eq!(parse(Path::new("x"), &text).unwrap(), records());
    }

    #[test]
    fn every_truncation_is_an_error_naming_the_file() {
        let path = Path::new("/var/lib/vnet/leases");
        for len in 0..TEXT.len() {
            let err = parse(path, &TEXT[..len]).unwrap_err();
            assert!(
                err.to_string().contains("/var/lib/vnet/leases"),
                "len {len}: {err}"
            );
        }
    }

    #[test]
    fn corrupt_lines_are_errors_with_line_numbers() {
        let p = Path::new("f");
        for (text, line) in [
            ("nope\nend 0\n", 1),
            ("vnet-dhcp-leases 1\nbound 1.2.3.4 5\nend 1\n", 2),
            (
                "vnet-dhcp-leases 1\nbound 1.2.3.x 5 mac:525400123456\nend 1\n",
                2,
            ),
            (
                "vnet-dhcp-leases 1\nbound 1.2.3.4 -5 mac:525400123456\nend 1\n",
                2,
            ),
            ("vnet-dhcp-leases 1\nbound 1.2.3.4 5 mac:5254\nend 1\n", 2),
            (
                "vnet-dhcp-leases 1\nweird 1.2.3.4 5 mac:525400123456\nend 1\n",
                2,
            ),
            (
                "vnet-dhcp-leases 1\ndeclined 1.2.3.4 5 mac:525400123456\nend 1\n",
                2,
            ),
            (
                "vnet-dhcp-leases 1\nend 0\nfree 1.2.3.4 0 mac:525400123456\n",
                3,
            ),
        ] {
            match parse(p, text) {
                Err(LeaseFileError::Corrupt { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn store_then_load_round_trips_and_ignores_stale_tmp() {
        let dir = std::env::temp_dir().join(format!("vnet-lease-file-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("leases");
        assert!(load(&path).unwrap().is_none());
        fs::write(tmp_path(&path), b"garbage from a crash\x00\xff").unwrap();
        assert!(load(&path).unwrap().is_none());
        store(&path, &records()).unwrap();
        assert!(!tmp_path(&path).exists());
        assert_eq!(load(&path).unwrap().unwrap(), records());
        fs::remove_dir_all(&dir).unwrap();
    }
}

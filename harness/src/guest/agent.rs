//! The host side of the guest agent (`ci/guest/agent`): commands over the virtio-serial
//! port's unix socket, one at a time.
//!
//! Protocol, one request a line: `ID TIMEOUT COMMAND`; the guest runs COMMAND with
//! `sh -c`, killed after TIMEOUT seconds, and answers `@@ID>\nOUTPUT\n@@ID< STATUS\n`.
//! IDs are never reused, so an answer is matched to its request even when an earlier
//! request timed out and its answer comes late (that answer is skipped). A command is
//! one line; a newline in it is refused rather than sent.

use anyhow::{bail, Context, Result};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A command's result in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Its exit status (124 or 143 when the guest's `timeout` killed it).
    pub status: i32,
    /// Its standard output and error, as one text.
    pub output: String,
}

impl Reply {
    /// Whether it exited 0.
    pub fn ok(&self) -> bool {
        self.status == 0
    }
}

/// A connection to one guest's agent.
#[derive(Debug)]
pub struct Agent {
    stream: UnixStream,
    buf: Vec<u8>,
    next: u64,
}

impl Agent {
    /// Connect to the agent socket at `path` and wait until the agent answers, for at
    /// most `limit`. `alive` is asked between tries and ends the wait with its error
    /// (QEMU exited).
    ///
    /// # Errors
    /// When the agent does not answer in time or `alive` fails.
    pub fn connect(
        path: &Path,
        limit: Duration,
        alive: &mut dyn FnMut() -> Result<()>,
    ) -> Result<Agent> {
        let deadline = Instant::now() + limit;
        let stream = loop {
            alive()?;
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("no agent socket at {} after {limit:?}", path.display())
                    })
                }
            }
        };
        let mut agent = Agent {
            stream,
            buf: Vec::new(),
            next: 0,
        };
        // The guest opens its port only once booted; ask until it answers.
        loop {
            alive()?;
            let id = agent.send("true", 5)?;
            if agent.wait(&id, Duration::from_secs(1)).is_ok() {
                return Ok(agent);
            }
            if Instant::now() > deadline {
                bail!("the guest's agent did not answer within {limit:?}");
            }
        }
    }

    /// Run `cmd` in the guest, killed there after `timeout`; wait for its answer a few
    /// seconds longer.
    ///
    /// # Errors
    /// When the command has a newline, the socket fails or no answer comes in time.
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> Result<Reply> {
        let secs = timeout.as_secs().max(1);
        let id = self.send(cmd, secs)?;
        self.wait(&id, Duration::from_secs(secs + 5))
            .with_context(|| format!("guest command `{cmd}`"))
    }

    fn send(&mut self, cmd: &str, secs: u64) -> Result<String> {
        if cmd.contains('\n') {
            bail!("a guest command is one line, got {cmd:?}");
        }
        self.next += 1;
        let id = format!("r{}", self.next);
        self.stream
            .write_all(format!("{id} {secs} {cmd}\n").as_bytes())
            .context("the guest agent's socket closed")?;
        Ok(id)
    }

    fn wait(&mut self, id: &str, limit: Duration) -> Result<Reply> {
        let deadline = Instant::now() + limit;
        let begin = format!("@@{id}>\n");
        let end = format!("\n@@{id}< ");
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(r) = parse(&mut self.buf, &begin, &end) {
                return Ok(r);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no answer from the guest within {limit:?}");
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => bail!("the guest agent's socket closed (QEMU exited?)"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e).context("reading from the guest agent"),
            }
        }
    }
}

/// Take the answer framed by `begin` and `end` out of `buf` (dropping everything before
/// it), once it is complete.
fn parse(buf: &mut Vec<u8>, begin: &str, end: &str) -> Option<Reply> {
    let text = String::from_utf8_lossy(buf).into_owned();
    let b = text.find(begin)?;
    let body = b + begin.len();
    let e = body.saturating_sub(1) + text[body.saturating_sub(1)..].find(end)?;
    let after = e + end.len();
    let nl = text[after..].find('\n')? + after;
    let status = text[after..nl].trim().parse().ok()?;
    let output = if e >= body {
        text[body..e].to_string()
    } else {
        String::new()
    };
    let consumed = text[..=nl].len();
    buf.drain(..consumed.min(buf.len()));
    Some(Reply { status, output })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_matched_by_id_and_late_ones_skipped() {
        let mut buf = b"@@r1>\nlate\n@@r1< 0\n@@r2>\nhello\nworld\n@@r2< 3\n@@r3>".to_vec();
        let r = parse(&mut buf, "@@r2>\n", "\n@@r2< ").unwrap();
        assert_eq!(
            r,
            Reply {
                status: 3,
                output: "hello\nworld".into()
            }
        );
        assert_eq!(buf, b"@@r3>");
    }

    #[test]
    fn empty_output_and_incomplete_answers() {
        let mut buf = b"@@r4>\n\n@@r4< 0".to_vec();
        assert!(
            parse(&mut buf, "@@r4>\n", "\n@@r4< ").is_none(),
            "no newline after status yet"
        );
        buf.extend_from_slice(b"\n");
        let r = parse(&mut buf, "@@r4>\n", "\n@@r4< ").unwrap();
        assert_eq!(
            r,
            Reply {
                status: 0,
                output: String::new()
            }
        );
        assert!(buf.is_empty());
    }
}

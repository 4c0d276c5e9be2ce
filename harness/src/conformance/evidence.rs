//! Evidence text shared by the backends, so a case reads the same whichever ran it.

use super::plan::ModeUnderTest;
use super::table::Role;
use std::fmt::Write as _;

/// "no such port: MODE has no ROLE port".
pub fn no_port(mode: &ModeUnderTest, role: Role) -> String {
    format!(
        "no such port: {} has no {} port",
        mode.label,
        match role {
            Role::Vm1 | Role::Vm2 => role.name(),
            Role::Host => "host",
            Role::Inet => "uplink",
        }
    )
}

/// What a `-` case's probes did, appended to `evidence`: what leaked to the receiver (or
/// that nothing arrived, or that the receiver has no port and which ports were watched
/// instead), then where else the probes were seen. Returns whether anything leaked.
pub fn negative_outcome(
    evidence: &mut String,
    mode: &ModeUnderTest,
    to: Role,
    receiver_exists: bool,
    leaks: &[String],
    watched: &[Role],
    elsewhere: &[String],
) -> bool {
    let leaked = !leaks.is_empty();
    if leaked {
        let _ = write!(evidence, ": LEAKED: {}", leaks.join("; "));
    } else if receiver_exists {
        let _ = write!(evidence, ": none arrived at {to}");
    } else {
        let _ = write!(evidence, ": {}", no_port(mode, to));
        if watched.is_empty() {
            evidence.push_str(", and no port the sender must not reach");
        } else {
            let w: Vec<&str> = watched.iter().map(|r| r.name()).collect();
            let _ = write!(evidence, "; none left on {}", w.join(", "));
        }
    }
    if !elsewhere.is_empty() {
        let _ = write!(evidence, " (also seen at {})", elsewhere.join(", "));
    }
    leaked
}

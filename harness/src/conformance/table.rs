//! The two tables of `MODES.md` as data: the directional table every case is generated
//! from, Table 1-1 as the seed prints it, and the rule that derives the second from the
//! first.
//!
//! Invariants:
//! - [`expected_directional`] and [`expected_table_1_1`] are transcriptions of
//!   `MODES.md`; [`derive_table_1_1`] applied to the first gives the second for every
//!   mode (a unit test holds that);
//! - `<->` is `+` only when both directions are `+` with no rule; `VM <- Internet` is
//!   "port forwarding" exactly when `Inet -> VM` is "port forward".

use crate::cli::ModeName;
use serde::Serialize;
use std::fmt;

/// The endpoints of a topology (MODES.md, "The endpoints of every topology").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The first guest.
    Vm1,
    /// The second guest.
    Vm2,
    /// The host's own stack.
    Host,
    /// The server beyond the uplink.
    Inet,
}

impl Role {
    /// Every role, in port order (VMs, host, uplink).
    pub const ALL: [Role; 4] = [Role::Vm1, Role::Vm2, Role::Host, Role::Inet];

    /// The endpoint's name (also its port's name).
    pub fn name(self) -> &'static str {
        match self {
            Role::Vm1 => "vm1",
            Role::Vm2 => "vm2",
            Role::Host => "host",
            Role::Inet => "inet",
        }
    }

    /// Index into [`Role::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One column of the directional table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// A guest to the host.
    VmToHost,
    /// The host to a guest.
    HostToVm,
    /// The first guest to the second.
    Vm1ToVm2,
    /// The second guest to the first.
    Vm2ToVm1,
    /// A guest to the server beyond the uplink.
    VmToInet,
    /// The server beyond the uplink to a guest.
    InetToVm,
}

impl Direction {
    /// The columns, in `MODES.md` order.
    pub const ALL: [Direction; 6] = [
        Direction::VmToHost,
        Direction::HostToVm,
        Direction::Vm1ToVm2,
        Direction::Vm2ToVm1,
        Direction::VmToInet,
        Direction::InetToVm,
    ];

    /// The column heading, as in `MODES.md`.
    pub fn label(self) -> &'static str {
        match self {
            Direction::VmToHost => "VM -> Host",
            Direction::HostToVm => "Host -> VM",
            Direction::Vm1ToVm2 => "VM1 -> VM2",
            Direction::Vm2ToVm1 => "VM2 -> VM1",
            Direction::VmToInet => "VM -> Inet",
            Direction::InetToVm => "Inet -> VM",
        }
    }

    /// The short form used in case names (`vm-host`, `vm1-vm2`, ...).
    pub fn slug(self) -> &'static str {
        match self {
            Direction::VmToHost => "vm-host",
            Direction::HostToVm => "host-vm",
            Direction::Vm1ToVm2 => "vm1-vm2",
            Direction::Vm2ToVm1 => "vm2-vm1",
            Direction::VmToInet => "vm-inet",
            Direction::InetToVm => "inet-vm",
        }
    }

    /// Who sends (the guest of the `VM` columns is `vm1`).
    pub fn from(self) -> Role {
        match self {
            Direction::VmToHost | Direction::Vm1ToVm2 | Direction::VmToInet => Role::Vm1,
            Direction::HostToVm => Role::Host,
            Direction::Vm2ToVm1 => Role::Vm2,
            Direction::InetToVm => Role::Inet,
        }
    }

    /// Who receives.
    pub fn to(self) -> Role {
        match self {
            Direction::VmToHost => Role::Host,
            Direction::HostToVm | Direction::Vm2ToVm1 | Direction::InetToVm => Role::Vm1,
            Direction::Vm1ToVm2 => Role::Vm2,
            Direction::VmToInet => Role::Inet,
        }
    }

    /// The column from `from` to `to`, if the table has one.
    pub fn between(from: Role, to: Role) -> Option<Direction> {
        let (from, to) = (vm_as_vm1(from, to), vm_as_vm1(to, from));
        Direction::ALL
            .into_iter()
            .find(|d| d.from() == from && d.to() == to)
    }
}

/// `vm2` talking to the host or `inet` is the same column as `vm1` doing so.
fn vm_as_vm1(role: Role, other: Role) -> Role {
    match (role, other) {
        (Role::Vm2, Role::Host | Role::Inet) => Role::Vm1,
        _ => role,
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The traffic each cell is tried with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// ICMP echo request and reply.
    Icmp,
    /// A UDP datagram answered by a UDP echo.
    Udp,
    /// A TCP connection: connect, send, echo, close.
    Tcp,
}

impl Proto {
    /// Every protocol, in case order.
    pub const ALL: [Proto; 3] = [Proto::Icmp, Proto::Udp, Proto::Tcp];

    /// Lower-case name (`icmp`, `udp`, `tcp`).
    pub fn name(self) -> &'static str {
        match self {
            Proto::Icmp => "icmp",
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cell of the directional table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reach {
    /// `+`: delivered, both ways, with no rule.
    Yes,
    /// `-`: nothing arrives.
    No,
    /// "port forward": `-` with no rule, `+` for exactly the forwarded port.
    PortForward,
    /// Observed only: the protocols or the rule variants of one cell disagree.
    Mixed,
}

impl Reach {
    /// The cell as `MODES.md` writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            Reach::Yes => "+",
            Reach::No => "-",
            Reach::PortForward => "port forward",
            Reach::Mixed => "mixed",
        }
    }
}

impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// The columns of Table 1-1.
pub const TABLE_1_1_COLUMNS: [&str; 4] = [
    "VM <-> Host",
    "VM1 <-> VM2",
    "VM -> Internet",
    "VM <- Internet",
];

/// A cell of Table 1-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// `+`.
    Yes,
    /// `-`.
    No,
    /// "port forwarding".
    PortForwarding,
}

impl Cell {
    /// The cell as the seed's table writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            Cell::Yes => "+",
            Cell::No => "-",
            Cell::PortForwarding => "port forwarding",
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A mode's row of the directional table, indexed as [`Direction::ALL`].
pub type DirectionalRow = [Reach; 6];

/// A mode's row of Table 1-1, indexed as [`TABLE_1_1_COLUMNS`].
pub type Table11Row = [Cell; 4];

/// The directional table of `MODES.md`.
pub fn expected_directional(mode: ModeName) -> DirectionalRow {
    use Reach::{No as N, PortForward as F, Yes as Y};
    match mode {
        ModeName::HostOnly => [Y, Y, Y, Y, N, N],
        ModeName::Internal => [N, N, Y, Y, N, N],
        ModeName::Bridged => [Y, Y, Y, Y, Y, Y],
        ModeName::Nat => [Y, F, N, N, Y, F],
        ModeName::NatNetwork => [Y, F, Y, Y, Y, F],
    }
}

/// Table 1-1 of the seed, as `MODES.md` reproduces it.
pub fn expected_table_1_1(mode: ModeName) -> Table11Row {
    use Cell::{No as N, PortForwarding as F, Yes as Y};
    match mode {
        ModeName::HostOnly => [Y, Y, N, N],
        ModeName::Internal => [N, Y, N, N],
        ModeName::Bridged => [Y, Y, Y, Y],
        ModeName::Nat => [N, N, Y, F],
        ModeName::NatNetwork => [N, Y, Y, F],
    }
}

/// Table 1-1 from a directional row: `<->` is `+` only when both directions are `+`
/// with no rule; `VM <- Internet` keeps "port forward(ing)".
pub fn derive_table_1_1(row: &DirectionalRow) -> Table11Row {
    let at = |d: Direction| row[Direction::ALL.iter().position(|x| *x == d).unwrap_or(0)];
    let both = |a: Direction, b: Direction| {
        if at(a) == Reach::Yes && at(b) == Reach::Yes {
            Cell::Yes
        } else {
            Cell::No
        }
    };
    let one = |d: Direction| match at(d) {
        Reach::Yes => Cell::Yes,
        Reach::PortForward => Cell::PortForwarding,
        Reach::No | Reach::Mixed => Cell::No,
    };
    [
        both(Direction::VmToHost, Direction::HostToVm),
        both(Direction::Vm1ToVm2, Direction::Vm2ToVm1),
        match at(Direction::VmToInet) {
            Reach::Yes => Cell::Yes,
            _ => Cell::No,
        },
        one(Direction::InetToVm),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [ModeName; 5] = [
        ModeName::HostOnly,
        ModeName::Internal,
        ModeName::Bridged,
        ModeName::Nat,
        ModeName::NatNetwork,
    ];

    #[test]
    fn derived_table_1_1_is_the_seeds_for_every_mode() {
        for mode in MODES {
            assert_eq!(
                derive_table_1_1(&expected_directional(mode)),
                expected_table_1_1(mode),
                "{}",
                mode.as_str()
            );
        }
    }

    #[test]
    fn directions_name_their_endpoints() {
        for d in Direction::ALL {
            assert_ne!(d.from(), d.to());
            assert_eq!(Direction::between(d.from(), d.to()), Some(d));
        }
        assert_eq!(
            Direction::between(Role::Vm2, Role::Host),
            Some(Direction::VmToHost)
        );
        assert_eq!(
            Direction::between(Role::Inet, Role::Vm2),
            Some(Direction::InetToVm)
        );
        assert_eq!(Direction::between(Role::Host, Role::Inet), None);
    }

    #[test]
    fn a_one_way_host_path_is_not_vm_host_plus() {
        let mut row = expected_directional(ModeName::HostOnly);
        row[1] = Reach::No;
        assert_eq!(derive_table_1_1(&row)[0], Cell::No);
    }
}

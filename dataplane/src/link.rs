//! Link state of masqd's ports, polled by the main thread (never by a worker).
//!
//! masqd's main thread reads each port's link every [`POLL_INTERVAL`]
//! (`rte_eth_link_get_nowait`, which does not wait for autonegotiation) and hands the
//! reading to a [`LinkMonitor`], which keeps the last state, counts changes and says
//! when one happened so masqd can log it. `stats.get` and `masqctl stats` show what the
//! monitor holds.
//!
//! A port whose link is down keeps its queues: the workers poll it as usual (nothing
//! arrives), frames routed to it are refused by the driver and counted (`tx_full`), and
//! traffic resumes by itself when the link returns. masqd never stops for a link.
//!
//! `net_af_packet` reports its link up from the moment it starts, whatever the kernel
//! interface does; for such a port the monitor also reads the interface's
//! `/sys/class/net/IFACE/operstate` (a veth whose end or peer is down reads `down` or
//! `lowerlayerdown`), so `ip link set IFACE down` shows as a link down.

use std::path::Path;
use std::time::Duration;

/// How often masqd's main thread reads every port's link.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// One reading of a port's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkReading {
    /// Carrier up.
    pub up: bool,
    /// Speed in Mbit/s (0: unknown).
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// What the monitor knows of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStatus {
    /// The last reading; `None` until the first one succeeded.
    pub last: Option<LinkReading>,
    /// Times the link went from up to down or back since masqd started.
    pub changes: u64,
}

/// A change worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkChange {
    pub port: usize,
    pub now: LinkReading,
}

impl std::fmt::Display for LinkReading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.up {
            return f.write_str("down");
        }
        f.write_str("up")?;
        if self.speed_mbps > 0 {
            write!(f, " {} Mb/s {}", self.speed_mbps, if self.full_duplex { "full duplex" } else { "half duplex" })?;
        }
        Ok(())
    }
}

/// Every port's link as last polled. Main thread only.
#[derive(Debug, Clone, Default)]
pub struct LinkMonitor {
    ports: Vec<LinkStatus>,
}

impl LinkMonitor {
    pub fn new(ports: usize) -> LinkMonitor {
        LinkMonitor { ports: vec![LinkStatus::default(); ports] }
    }

    /// Record `reading` for `port` (`None`: the driver could not say; the state stays).
    /// Returns the change if the link went up or down (or on the first reading, when it
    /// is down, so that a port starting without carrier is logged).
    pub fn update(&mut self, port: usize, reading: Option<LinkReading>) -> Option<LinkChange> {
        let status = self.ports.get_mut(port)?;
        let now = reading?;
        let before = status.last.replace(now);
        match before {
            Some(b) if b.up != now.up => {
                status.changes += 1;
                Some(LinkChange { port, now })
            }
            None if !now.up => Some(LinkChange { port, now }),
            _ => None,
        }
    }

    pub fn status(&self, port: usize) -> LinkStatus {
        self.ports.get(port).copied().unwrap_or_default()
    }
}

/// The kernel interface a `net_af_packet` device string attaches to (`iface=NAME`).
pub fn af_packet_iface(device: &str) -> Option<&str> {
    let mut parts = device.split(',');
    if !parts.next()?.starts_with("net_af_packet") {
        return None;
    }
    parts.find_map(|kv| kv.strip_prefix("iface=")).filter(|name| !name.is_empty())
}

/// Whether the kernel says interface `iface` is up (`operstate` `up`, or `unknown` for
/// drivers that do not track it); `None` if it cannot be read.
pub fn kernel_link_up(iface: &str) -> Option<bool> {
    kernel_link_up_in(Path::new("/sys/class/net"), iface)
}

fn kernel_link_up_in(sysfs: &Path, iface: &str) -> Option<bool> {
    if iface.contains('/') || iface.starts_with('.') {
        return None;
    }
    let state = std::fs::read_to_string(sysfs.join(iface).join("operstate")).ok()?;
    Some(matches!(state.trim(), "up" | "unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: LinkReading = LinkReading { up: true, speed_mbps: 10_000, full_duplex: true };
    const DOWN: LinkReading = LinkReading { up: false, speed_mbps: 0, full_duplex: false };

    #[test]
    fn changes_are_reported_and_counted() {
        let mut m = LinkMonitor::new(2);
        assert_eq!(m.update(0, Some(UP)), None, "starting up is not news");
        assert_eq!(m.update(1, Some(DOWN)), Some(LinkChange { port: 1, now: DOWN }), "starting down is");
        assert_eq!(m.update(0, Some(UP)), None);
        assert_eq!(m.update(0, Some(DOWN)), Some(LinkChange { port: 0, now: DOWN }));
        assert_eq!(m.update(0, None), None, "an unreadable link keeps its state");
        assert_eq!(m.status(0), LinkStatus { last: Some(DOWN), changes: 1 });
        assert_eq!(m.update(0, Some(UP)), Some(LinkChange { port: 0, now: UP }));
        assert_eq!(m.status(0).changes, 2);
        assert_eq!(m.status(1).changes, 0);
        assert_eq!(m.update(7, Some(UP)), None, "no such port");
        assert_eq!(m.status(7), LinkStatus::default());
    }

    #[test]
    fn readings_print_for_the_log() {
        assert_eq!(UP.to_string(), "up 10000 Mb/s full duplex");
        assert_eq!(DOWN.to_string(), "down");
        assert_eq!(LinkReading { up: true, speed_mbps: 0, full_duplex: false }.to_string(), "up");
    }

    #[test]
    fn af_packet_interfaces_from_device_strings() {
        assert_eq!(af_packet_iface("net_af_packet0,iface=veth-lan"), Some("veth-lan"));
        assert_eq!(af_packet_iface("net_af_packet1,qpairs=2,iface=w0"), Some("w0"));
        assert_eq!(af_packet_iface("net_af_packet1,iface="), None);
        assert_eq!(af_packet_iface("net_tap0,iface=tap0"), None);
        assert_eq!(af_packet_iface("0000:01:00.0"), None);
    }

    #[test]
    fn kernel_state_from_sysfs() {
        let dir = std::env::temp_dir().join(format!("masq-link-{}", std::process::id()));
        for (name, state) in [("a", "up\n"), ("b", "down\n"), ("c", "lowerlayerdown\n"), ("d", "unknown\n")] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(dir.join(name).join("operstate"), state).unwrap();
        }
        assert_eq!(kernel_link_up_in(&dir, "a"), Some(true));
        assert_eq!(kernel_link_up_in(&dir, "b"), Some(false));
        assert_eq!(kernel_link_up_in(&dir, "c"), Some(false));
        assert_eq!(kernel_link_up_in(&dir, "d"), Some(true));
        assert_eq!(kernel_link_up_in(&dir, "missing"), None);
        assert_eq!(kernel_link_up_in(&dir, "../a"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

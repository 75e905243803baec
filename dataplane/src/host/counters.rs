//! Counters of the host interfaces, written by the host thread alone and read by the
//! control plane and the shutdown report, never locked (single-writer [`Counter`]s).
//!
//! Named from the kernel interface's point of view, as `ip -s link show NAME` prints
//! them, so the two can be compared: `rx` is what masqd delivered to the kernel, `tx`
//! what the kernel sent.

use crate::counters::Counter;

/// One host interface's counters.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct HostInterfaceCounters {
    /// Frames written to the kernel interface.
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    /// Frames the kernel interface did not take (freed).
    pub rx_dropped: Counter,
    /// Frames the kernel sent on the interface, passed to a worker.
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Frames the kernel sent that found the worker's ring full (freed).
    pub tx_dropped: Counter,
    /// Frames the kernel sent that masqd does not carry (neither IPv4 nor ARP).
    pub tx_unsupported: Counter,
}

impl HostInterfaceCounters {
    /// `(name, value)` of every counter, in declaration order.
    pub fn all(&self) -> [(&'static str, u64); 7] {
        [
            ("rx_packets", self.rx_packets.get()),
            ("rx_bytes", self.rx_bytes.get()),
            ("rx_dropped", self.rx_dropped.get()),
            ("tx_packets", self.tx_packets.get()),
            ("tx_bytes", self.tx_bytes.get()),
            ("tx_dropped", self.tx_dropped.get()),
            ("tx_unsupported", self.tx_unsupported.get()),
        ]
    }
}

/// Every host interface: its name, the port it belongs to, its counters.
#[derive(Debug, Default)]
pub struct HostCounters {
    pub interfaces: Vec<(String, String, HostInterfaceCounters)>,
}

impl HostCounters {
    /// One entry per `(interface name, port name)`.
    pub fn new(names: impl IntoIterator<Item = (String, String)>) -> HostCounters {
        HostCounters { interfaces: names.into_iter().map(|(i, p)| (i, p, HostInterfaceCounters::default())).collect() }
    }
}

/// The shutdown report's lines for the host interfaces: `host:<name> <counter> <value>`.
pub fn render(c: &HostCounters) -> String {
    let mut out = String::new();
    for (name, _, k) in &c.interfaces {
        for (counter, v) in k.all() {
            out.push_str(&format!("host:{name} {counter} {v}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_list_in_order() {
        let c = HostCounters::new([("lan0".to_string(), "lan".to_string())]);
        let (name, port, k) = &c.interfaces[0];
        k.rx_packets.add(2);
        k.tx_unsupported.inc();
        assert_eq!((name.as_str(), port.as_str()), ("lan0", "lan"));
        assert_eq!(k.all()[0], ("rx_packets", 2));
        assert_eq!(k.all()[6], ("tx_unsupported", 1));
        let text = render(&c);
        assert!(text.starts_with("host:lan0 rx_packets 2\n"), "{text}");
        assert!(text.contains("host:lan0 tx_unsupported 1\n"), "{text}");
    }
}

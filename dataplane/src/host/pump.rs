//! The host thread: moves frames between the workers' host rings and the TAP devices.
//!
//! It runs on the main core (a plain thread, not a worker lcore) and does every system
//! call of the exception path — a TAP write per frame toward the kernel, TAP reads for
//! the kernel's frames — so workers only touch lock-free rings. Per pass it
//!
//! 1. takes a burst from every worker's punt ring and writes each frame to the TAP of
//!    the port it names (the mbuf's `port` field); what a TAP refuses is freed and
//!    counted (`rx_dropped` of that interface);
//! 2. reads a burst from every TAP; IPv4 and ARP frames are put on the ring of the worker
//!    that owns them ([`super::kernel_frame_owner`]) with the port index in the mbuf, the
//!    rest is freed and counted (`tx_unsupported`), as is what a full ring refuses
//!    (`tx_dropped`).
//!
//! While frames move it loops without pausing; idle, it sleeps, doubling the pause from
//! [`MIN_IDLE`] up to [`MAX_IDLE`], so an idle router costs a wake-up per millisecond and
//! the first frame after a quiet spell waits at most that long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dpdk::{Burst, MbufRing, MbufRingConsumer, MbufRingProducer, RxQueue, TxQueue};

use super::counters::HostCounters;
use super::kernel_frame_owner;
use crate::dpdk_io::{HostRings, BURST};

/// Shortest pause of an idle host thread.
pub const MIN_IDLE: Duration = Duration::from_micros(20);
/// Longest pause of an idle host thread: the most a frame waits after a quiet spell.
pub const MAX_IDLE: Duration = Duration::from_millis(1);

/// One TAP device: its queues and the port index it belongs to.
pub struct Tap {
    /// Index of the port (in the configuration) this TAP is the host interface of.
    pub port: u16,
    pub rx: RxQueue,
    pub tx: TxQueue,
}

/// The host thread's state: the TAPs, both ends of every worker's rings, counters.
pub struct HostPump {
    taps: Vec<Tap>,
    /// Index into `taps` by port index (`None`: that port has no host interface).
    tap_of_port: Vec<Option<usize>>,
    from_workers: Vec<MbufRingConsumer>,
    to_workers: Vec<(MbufRingProducer, Burst<BURST>)>,
    counters: Arc<HostCounters>,
    burst: Burst<BURST>,
    tap_stage: Burst<BURST>,
}

impl HostPump {
    /// The rings between the host thread and `workers` workers (each `size` frames),
    /// named `masq_host_{out,in}_<w>`, and the workers' ends (element `w` is worker
    /// `w`'s). `taps` in configuration order; `ports` is the number of ports.
    pub fn new(
        taps: Vec<Tap>,
        ports: usize,
        workers: u16,
        size: u32,
        counters: Arc<HostCounters>,
    ) -> dpdk::Result<(HostPump, Vec<HostRings>)> {
        let mut tap_of_port = vec![None; ports];
        for (i, t) in taps.iter().enumerate() {
            tap_of_port[usize::from(t.port)] = Some(i);
        }
        let mut from_workers = Vec::new();
        let mut to_workers = Vec::new();
        let mut ends = Vec::new();
        for w in 0..workers {
            let (out, from) = MbufRing::new(&format!("masq_host_out_{w}"), size, dpdk::SOCKET_ID_ANY)?.split();
            let (to, inbound) = MbufRing::new(&format!("masq_host_in_{w}"), size, dpdk::SOCKET_ID_ANY)?.split();
            from_workers.push(from);
            to_workers.push((to, Burst::new()));
            ends.push(HostRings::new(out, inbound));
        }
        let pump = HostPump {
            taps,
            tap_of_port,
            from_workers,
            to_workers,
            counters,
            burst: Burst::new(),
            tap_stage: Burst::new(),
        };
        Ok((pump, ends))
    }

    /// Run until `stop` is set (then return; frames still in rings are freed with them).
    pub fn run(&mut self, stop: &AtomicBool) {
        let mut idle = MIN_IDLE;
        while !stop.load(Ordering::Relaxed) {
            if self.pass() > 0 {
                idle = MIN_IDLE;
            } else {
                std::thread::sleep(idle);
                idle = (idle * 2).min(MAX_IDLE);
            }
        }
    }

    /// One pass both ways; returns the number of frames moved.
    pub fn pass(&mut self) -> usize {
        self.punts_to_taps() + self.taps_to_workers()
    }

    /// Workers' punts to the TAPs.
    fn punts_to_taps(&mut self) -> usize {
        let mut moved = 0;
        for ring in &mut self.from_workers {
            if ring.dequeue_burst(&mut self.burst) == 0 {
                continue;
            }
            moved += self.burst.len();
            for m in self.burst.drain() {
                let port = usize::from(m.port());
                let Some(t) = self.tap_of_port.get(port).copied().flatten() else {
                    // A port without a host interface: workers never punt there.
                    continue;
                };
                let c = &self.counters.interfaces[t].2;
                let len = m.len() as u64;
                if let Err(m) = self.tap_stage.push(m) {
                    drop(m);
                    c.rx_dropped.inc();
                    continue;
                }
                // One frame at a time: a TAP write is a system call per frame anyway, and
                // frames of one burst may be for different TAPs.
                if self.taps[t].tx.tx_burst(&mut self.tap_stage) == 1 {
                    c.rx_packets.inc();
                    c.rx_bytes.add(len);
                } else {
                    c.rx_dropped.inc();
                    self.tap_stage.clear();
                }
            }
        }
        moved
    }

    /// The kernel's frames to their workers.
    fn taps_to_workers(&mut self) -> usize {
        let workers = self.to_workers.len() as u16;
        let mut moved = 0;
        for (t, tap) in self.taps.iter_mut().enumerate() {
            if tap.rx.rx_burst(&mut self.burst) == 0 {
                continue;
            }
            moved += self.burst.len();
            let c = &self.counters.interfaces[t].2;
            // A TAP burst fits every worker's stage (both are BURST), and the stages are
            // sent before the next TAP is read.
            for mut m in self.burst.drain() {
                let data = m.data();
                let ethertype = data.get(12..14).map(|e| u16::from_be_bytes([e[0], e[1]]));
                if !matches!(ethertype, Some(0x0800 | 0x0806)) {
                    c.tx_unsupported.inc();
                    continue;
                }
                let owner = usize::from(kernel_frame_owner(data, workers));
                m.set_port(tap.port);
                if self.to_workers[owner].1.push(m).is_err() {
                    c.tx_dropped.inc();
                }
            }
            for (ring, stage) in &mut self.to_workers {
                if stage.is_empty() {
                    continue;
                }
                let (staged, bytes) = (stage.len(), stage.iter().map(|m| m.len() as u64).sum::<u64>());
                let sent = ring.enqueue_burst(stage);
                let unsent_bytes: u64 = stage.iter().map(|m| m.len() as u64).sum();
                c.tx_packets.add(sent as u64);
                c.tx_bytes.add(bytes - unsent_bytes);
                c.tx_dropped.add((staged - sent) as u64);
                stage.clear();
            }
        }
        moved
    }
}

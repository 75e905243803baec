//! Ethernet ports: configuration, queues, RSS, link, statistics, and the
//! RX/TX fast path.
//!
//! A [`Port`] is the *owning handle* of one ethdev port id: at most one
//! exists per port (a second [`Port::by_name`] fails with [`Error::Busy`]),
//! so configuration calls (`&mut self`) cannot race each other.
//!
//! Fast path, two ways:
//! - single thread: [`Port::rx_burst`] / [`Port::tx_burst`] on `&mut Port`;
//! - several lcores: hand each lcore its own queue with [`Port::rx_queue`] /
//!   [`Port::tx_queue`] (each queue id at most once). DPDK queues are not
//!   thread-safe, which this one-owner-per-queue rule enforces. While any
//!   queue handle lives, `configure`, `start`, `stop` and `close` return
//!   [`Error::Busy`]; queries (`stats`, `link`, ...) still work.
//!
//! The port keeps a handle to the mempool its RX queues allocate from, and
//! is stopped and closed when the last of the `Port` and its queue handles
//! goes, if it was configured through them and not closed explicitly.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dpdk_sys as sys;

use crate::burst::Burst;
use crate::eal;
use crate::error::{check, Error, Result};
use crate::mempool::Mempool;
use crate::queue::{RxQueue, TxQueue};
use crate::ring::{MbufRingConsumer, MbufRingProducer, RingInner};

/// RSS hash-field masks (`RTE_ETH_RSS_*`) for [`RssConfig::hash_fields`].
pub mod rss {
    use dpdk_sys as sys;
    /// IPv4/IPv6 addresses, all L4 protocols (`RTE_ETH_RSS_IP`).
    pub const IP: u64 = sys::RTE_ETH_RSS_IP;
    /// TCP ports over IPv4/IPv6 (`RTE_ETH_RSS_TCP`).
    pub const TCP: u64 = sys::RTE_ETH_RSS_TCP;
    /// UDP ports over IPv4/IPv6 (`RTE_ETH_RSS_UDP`).
    pub const UDP: u64 = sys::RTE_ETH_RSS_UDP;
    /// IPv4 addresses only (`RTE_ETH_RSS_IPV4`).
    pub const IPV4: u64 = sys::RTE_ETH_RSS_IPV4;
    /// Hash on the source L3 address only (modifier, `RTE_ETH_RSS_L3_SRC_ONLY`).
    pub const L3_SRC_ONLY: u64 = sys::RTE_ETH_RSS_L3_SRC_ONLY;
    /// Hash on the destination L3 address only (`RTE_ETH_RSS_L3_DST_ONLY`).
    pub const L3_DST_ONLY: u64 = sys::RTE_ETH_RSS_L3_DST_ONLY;
}

const QUEUE_WORDS: usize = sys::RTE_MAX_QUEUES_PER_PORT as usize / 64;

/// State shared by a `Port` and its queue handles. Mutated only through
/// `Arc::get_mut`, i.e. when no queue handle exists, except the claim bits.
pub(crate) struct PortShared {
    pub(crate) id: u16,
    pub(crate) nb_rx: u16,
    pub(crate) nb_tx: u16,
    rss_active: bool,
    configured: bool,
    started: bool,
    /// One bit per queue handed out as an `RxQueue` / `TxQueue`.
    pub(crate) rx_claimed: [AtomicU64; QUEUE_WORDS],
    pub(crate) tx_claimed: [AtomicU64; QUEUE_WORDS],
    /// Pools the RX queues allocate from; kept alive while the port may use them.
    pools: Vec<Mempool>,
    /// Rings a port made by [`Port::from_rings`] reads and writes; kept alive (and
    /// drained of mbufs when the last handle goes) after the port is closed.
    rings: Vec<Arc<RingInner>>,
}

impl PortShared {
    pub(crate) fn is_claimed(bits: &[AtomicU64; QUEUE_WORDS], queue: u16) -> bool {
        let q = usize::from(queue);
        bits[q / 64].load(Ordering::Acquire) & (1 << (q % 64)) != 0
    }

    pub(crate) fn release(bits: &[AtomicU64; QUEUE_WORDS], queue: u16) {
        let q = usize::from(queue);
        bits[q / 64].fetch_and(!(1 << (q % 64)), Ordering::Release);
    }

    fn stop_and_close(&mut self) -> Result<()> {
        if self.started {
            // SAFETY: valid port id we own; no queue handle exists (we hold
            // the only reference to this state), so no lcore polls it.
            check("rte_eth_dev_stop", unsafe { sys::rte_eth_dev_stop(self.id) })?;
            self.started = false;
        }
        if self.configured {
            // SAFETY: stopped port we own, no handle polls it; closing frees
            // its queues (and their mbufs, back to `pools`, still alive).
            check("rte_eth_dev_close", unsafe { sys::rte_eth_dev_close(self.id) })?;
            self.configured = false;
        }
        Ok(())
    }
}

impl Drop for PortShared {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_close() {
            eprintln!("dpdk: closing port {} on drop: {e}", self.id);
        }
        eal::release_port(self.id);
        // `pools` drop after this, once the port no longer refers to them.
    }
}

/// Owning handle of one ethdev port. See the module docs.
pub struct Port {
    shared: Arc<PortShared>,
}

/// What a port's driver offers (from `rte_eth_dev_info_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Driver name, e.g. `net_null`.
    pub driver_name: String,
    /// Kernel interface index, 0 if none.
    pub if_index: u32,
    /// Most RX queues.
    pub max_rx_queues: u16,
    /// Most TX queues.
    pub max_tx_queues: u16,
    /// Largest frame the port receives.
    pub max_rx_pktlen: u32,
    /// Smallest MTU.
    pub min_mtu: u16,
    /// Largest MTU.
    pub max_mtu: u16,
    /// RSS hash fields the driver supports (`RTE_ETH_RSS_*`); 0: no RSS.
    pub flow_type_rss_offloads: u64,
    /// RSS key length in bytes (0: driver does not say).
    pub hash_key_size: u8,
    /// RSS redirection table size.
    pub reta_size: u16,
    /// RX offload capabilities (`RTE_ETH_RX_OFFLOAD_*`).
    pub rx_offload_capa: u64,
    /// TX offload capabilities (`RTE_ETH_TX_OFFLOAD_*`).
    pub tx_offload_capa: u64,
    /// Most RX descriptors per queue.
    pub rx_desc_max: u16,
    /// Fewest RX descriptors per queue.
    pub rx_desc_min: u16,
    /// Most TX descriptors per queue.
    pub tx_desc_max: u16,
    /// Fewest TX descriptors per queue.
    pub tx_desc_min: u16,
    /// NUMA socket of the device (`SOCKET_ID_ANY` if unknown).
    pub socket_id: i32,
}

/// RSS settings. Fields the driver cannot hash on are masked off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RssConfig {
    /// Hash key; `None` keeps the driver's default. Must be the driver's
    /// `hash_key_size` long when it states one.
    pub key: Option<Vec<u8>>,
    /// Fields to hash on, a mask of [`rss`] constants.
    pub hash_fields: u64,
}

/// How to configure a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// RX queues (at least 1).
    pub rx_queues: u16,
    /// TX queues (at least 1).
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the driver's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the driver's limits).
    pub tx_desc: u16,
    /// RSS, applied only where the driver offers it; see [`Port::rss_active`].
    pub rss: Option<RssConfig>,
    /// MTU; `None` keeps the driver's default (1500).
    pub mtu: Option<u16>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig { rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024, rss: None, mtu: None }
    }
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Carrier up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the hardware (RX queues full).
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

impl Port {
    /// Number of ports the EAL found (`rte_eth_dev_count_avail`).
    pub fn count() -> u16 {
        // SAFETY: plain query; 0 before the EAL is initialised.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// Take the port named `name`: a vdev's name as given to `--vdev`
    /// (`net_null0`), or a PCI address allowed with `-a` (`0000:01:00.0`).
    pub fn by_name(name: &str) -> Result<Port> {
        let cname = CString::new(name).map_err(|_| Error::InvalidArgument("port name contains a NUL"))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer; returns -ENODEV if unknown.
        check("rte_eth_dev_get_port_by_name", unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) })?;
        Port::by_id(id)
    }

    /// Take the port with id `id`.
    pub fn by_id(id: u16) -> Result<Port> {
        // SAFETY: plain query on any id.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(Error::rte("rte_eth_dev_is_valid_port", libc::ENODEV));
        }
        eal::claim_port(id)?;
        Ok(Port {
            shared: Arc::new(PortShared {
                id,
                nb_rx: 0,
                nb_tx: 0,
                rss_active: false,
                configured: false,
                started: false,
                rx_claimed: Default::default(),
                tx_claimed: Default::default(),
                pools: Vec::new(),
                rings: Vec::new(),
            }),
        })
    }

    /// Create an ethdev port over two in-process rings (`rte_eth_from_rings`,
    /// the net_ring PMD; DPDK names the device `net_ring_<name>`) and take it: what the port
    /// receives is dequeued from `rx`, what it sends is enqueued on `tx`.
    ///
    /// The port becomes the rings' consumer (RX) and producer (TX) ends, so
    /// the other ends stay with the caller: a traffic generator enqueues on
    /// the producer of `rx` and a sink dequeues from the consumer of `tx`,
    /// with no NIC. One RX and one TX queue; configure it as any port (the
    /// mempool given to [`Port::configure`] is not used by this PMD). Mbufs
    /// sent to a full `tx` ring are refused, as a full NIC ring would.
    pub fn from_rings(name: &str, rx: MbufRingConsumer, tx: MbufRingProducer, socket: i32) -> Result<Port> {
        let cname = CString::new(name).map_err(|_| Error::InvalidArgument("port name contains a NUL"))?;
        let rx_rings = [rx.inner.ptr.as_ptr()];
        let tx_rings = [tx.inner.ptr.as_ptr()];
        // SAFETY: EAL is running (the rings exist); valid C string; each array holds one live
        // ring pointer, kept alive below for as long as the port exists (the
        // port attaches to the rings and never frees them). The handles given
        // up here were each ring's only consumer / producer end, so the port's
        // single RX / TX queue keeps the rings' SP/SC discipline. A negative
        // socket is SOCKET_ID_ANY, which DPDK reads back as -1.
        let id = unsafe {
            sys::rte_eth_from_rings(cname.as_ptr(), rx_rings.as_ptr(), 1, tx_rings.as_ptr(), 1, socket as u32)
        };
        if id < 0 {
            return Err(Error::from_rte_errno("rte_eth_from_rings"));
        }
        let mut port = Port::by_id(id as u16)?;
        let shared = port.exclusive()?;
        shared.rings.push(rx.inner);
        shared.rings.push(tx.inner);
        Ok(port)
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// The port's device name.
    pub fn name(&self) -> Result<String> {
        let mut buf = [0 as c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: the buffer has RTE_ETH_NAME_MAX_LEN bytes, as required.
        check("rte_eth_dev_get_name_by_port", unsafe {
            sys::rte_eth_dev_get_name_by_port(self.id(), buf.as_mut_ptr())
        })?;
        Ok(c_chars_to_string(&buf))
    }

    fn exclusive(&mut self) -> Result<&mut PortShared> {
        Arc::get_mut(&mut self.shared).ok_or(Error::Busy("queue handles of this port are alive"))
    }

    fn raw_info(&self) -> Result<sys::rte_eth_dev_info> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid out-pointer to a zeroed struct of the right type.
        check("rte_eth_dev_info_get", unsafe { sys::rte_eth_dev_info_get(self.id(), &mut info) })?;
        Ok(info)
    }

    /// What the driver offers.
    pub fn info(&self) -> Result<PortInfo> {
        let info = self.raw_info()?;
        let driver_name = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: non-null NUL-terminated string owned by the driver,
            // static for the driver's lifetime; copied at once.
            unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
        };
        Ok(PortInfo {
            driver_name,
            if_index: info.if_index,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            max_rx_pktlen: info.max_rx_pktlen,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            flow_type_rss_offloads: info.flow_type_rss_offloads,
            hash_key_size: info.hash_key_size,
            reta_size: info.reta_size,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: info.tx_offload_capa,
            rx_desc_max: info.rx_desc_lim.nb_max,
            rx_desc_min: info.rx_desc_lim.nb_min,
            tx_desc_max: info.tx_desc_lim.nb_max,
            tx_desc_min: info.tx_desc_lim.nb_min,
            // SAFETY: plain query on a valid port id.
            socket_id: unsafe { sys::rte_eth_dev_socket_id(self.id()) },
        })
    }

    /// Configure the port and set up every RX queue (allocating from
    /// `pool`) and TX queue. RSS is requested only for the hash fields the
    /// driver offers; if none is left the port runs without RSS, which
    /// [`Port::rss_active`] then reports. The port must be stopped.
    pub fn configure(&mut self, config: &PortConfig, pool: &Mempool) -> Result<()> {
        if config.rx_queues == 0 || config.tx_queues == 0 {
            return Err(Error::InvalidArgument("a port needs at least one RX and one TX queue"));
        }
        let info = self.raw_info()?;
        let id = self.id();
        let shared = self.exclusive()?;
        if shared.started {
            return Err(Error::Busy("stop the port before configuring it"));
        }

        let mut conf = sys::rte_eth_conf::default();
        let mut key = None;
        let mut rss_active = false;
        if let Some(rss) = &config.rss {
            let hf = rss.hash_fields & info.flow_type_rss_offloads;
            if hf != 0 {
                conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
                if let Some(k) = &rss.key {
                    if info.hash_key_size != 0 && k.len() != usize::from(info.hash_key_size) {
                        return Err(Error::InvalidArgument("RSS key length differs from the driver's hash_key_size"));
                    }
                    let mut k = k.clone();
                    conf.rx_adv_conf.rss_conf.rss_key_len =
                        u8::try_from(k.len()).map_err(|_| Error::InvalidArgument("RSS key longer than 255 bytes"))?;
                    conf.rx_adv_conf.rss_conf.rss_key = k.as_mut_ptr();
                    key = Some(k);
                }
                rss_active = true;
            }
        }
        if let Some(mtu) = config.mtu {
            conf.rxmode.mtu = u32::from(mtu);
        }

        // SAFETY: stopped port we own exclusively; `conf` is a fully
        // initialised rte_eth_conf whose key pointer (if any) points into
        // `key`, alive until the end of this function (DPDK copies it).
        check("rte_eth_dev_configure", unsafe {
            sys::rte_eth_dev_configure(id, config.rx_queues, config.tx_queues, &conf)
        })?;
        drop(key);
        shared.configured = true;
        shared.nb_rx = 0;
        shared.nb_tx = 0;
        shared.rss_active = rss_active;

        let (mut nb_rxd, mut nb_txd) = (config.rx_desc, config.tx_desc);
        // SAFETY: valid out-pointers to u16.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rxd, &mut nb_txd)
        })?;
        // SAFETY: plain query.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        // Keep the pool alive before any queue can allocate from it (and
        // keep earlier pools: a failed setup may leave old queues behind).
        if !shared.pools.iter().any(|p| p.as_ptr() == pool.as_ptr()) {
            shared.pools.push(pool.clone());
        }
        for q in 0..config.rx_queues {
            // SAFETY: configured, stopped port; q < configured RX queues;
            // NULL rxconf means the driver's defaults; `pool` is a live
            // packet pool that `shared.pools` keeps alive as long as the
            // port may allocate from it. A negative socket is SOCKET_ID_ANY.
            check("rte_eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(id, q, nb_rxd, socket as u32, std::ptr::null(), pool.as_ptr())
            })?;
        }
        for q in 0..config.tx_queues {
            // SAFETY: as above; NULL txconf means the driver's defaults.
            check("rte_eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(id, q, nb_txd, socket as u32, std::ptr::null())
            })?;
        }
        shared.nb_rx = config.rx_queues;
        shared.nb_tx = config.tx_queues;
        Ok(())
    }

    /// Whether RSS is on after [`Port::configure`] (false when the driver
    /// offered none of the requested hash fields).
    pub fn rss_active(&self) -> bool {
        self.shared.rss_active
    }

    /// Number of configured RX queues.
    pub fn rx_queues(&self) -> u16 {
        self.shared.nb_rx
    }

    /// Number of configured TX queues.
    pub fn tx_queues(&self) -> u16 {
        self.shared.nb_tx
    }

    /// Start the port (`rte_eth_dev_start`).
    pub fn start(&mut self) -> Result<()> {
        let id = self.id();
        let shared = self.exclusive()?;
        if !shared.configured {
            return Err(Error::InvalidArgument("configure the port before starting it"));
        }
        // SAFETY: configured port we own exclusively.
        check("rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(id) })?;
        shared.started = true;
        Ok(())
    }

    /// Stop the port (`rte_eth_dev_stop`); it can be reconfigured or
    /// started again.
    pub fn stop(&mut self) -> Result<()> {
        let id = self.id();
        let shared = self.exclusive()?;
        // SAFETY: port we own, no queue handle polls it.
        check("rte_eth_dev_stop", unsafe { sys::rte_eth_dev_stop(id) })?;
        shared.started = false;
        Ok(())
    }

    /// Stop (if started) and close the port, releasing its queues and the
    /// mbufs they held. For a vdev this also removes the port: a
    /// `net_pcap` port flushes and closes its `tx_pcap` file here.
    pub fn close(mut self) -> Result<()> {
        self.exclusive()?.stop_and_close()
    }

    /// The port's MAC address.
    pub fn mac_addr(&self) -> Result<[u8; 6]> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid out-pointer.
        check("rte_eth_macaddr_get", unsafe { sys::rte_eth_macaddr_get(self.id(), &mut addr) })?;
        Ok(addr.addr_bytes)
    }

    /// Replace the port's primary MAC address (`rte_eth_dev_default_mac_addr_set`).
    pub fn set_mac_addr(&mut self, mac: [u8; 6]) -> Result<()> {
        let mut addr = sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: valid pointer to an initialised address for the duration of the call;
        // DPDK copies it.
        check("rte_eth_dev_default_mac_addr_set", unsafe {
            sys::rte_eth_dev_default_mac_addr_set(self.id(), &mut addr)
        })?;
        Ok(())
    }

    /// Set the MTU (`rte_eth_dev_set_mtu`): the largest IP packet the port receives and
    /// sends, on the device itself (a kernel-backed PMD such as `net_af_packet` or
    /// `net_tap` sets its interface's MTU). Call it on a configured port. `ENOTSUP`: the
    /// driver has no MTU to set (`net_null`, `net_pcap`, `net_ring`); `EINVAL`: out of
    /// the device's range.
    pub fn set_mtu(&mut self, mtu: u16) -> Result<()> {
        // SAFETY: plain call on a port id we own; DPDK validates the port and value.
        check("rte_eth_dev_set_mtu", unsafe { sys::rte_eth_dev_set_mtu(self.id(), mtu) })?;
        Ok(())
    }

    /// The MTU the device has now (`rte_eth_dev_get_mtu`).
    pub fn mtu(&self) -> Result<u16> {
        let mut mtu = 0u16;
        // SAFETY: valid out-pointer to a u16 for the duration of the call.
        check("rte_eth_dev_get_mtu", unsafe { sys::rte_eth_dev_get_mtu(self.id(), &mut mtu) })?;
        Ok(mtu)
    }

    /// Link state, without waiting for autonegotiation.
    pub fn link(&self) -> Result<Link> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid out-pointer.
        check("rte_eth_link_get_nowait", unsafe { sys::rte_eth_link_get_nowait(self.id(), &mut link) })?;
        Ok(Link { up: link.link_status() != 0, speed_mbps: link.link_speed, full_duplex: link.link_duplex() != 0 })
    }

    /// Turn promiscuous mode on or off.
    pub fn set_promiscuous(&mut self, on: bool) -> Result<()> {
        // SAFETY: plain control call on a port we own.
        let ret = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(self.id())
            } else {
                sys::rte_eth_promiscuous_disable(self.id())
            }
        };
        check("rte_eth_promiscuous_enable/disable", ret).map(drop)
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid out-pointer.
        check("rte_eth_stats_get", unsafe { sys::rte_eth_stats_get(self.id(), &mut s) })?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Extended, driver-specific counters as (name, value).
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        let id = self.id();
        // SAFETY: NULL/0 asks for the count only.
        let n =
            check("rte_eth_xstats_get_names", unsafe { sys::rte_eth_xstats_get_names(id, std::ptr::null_mut(), 0) })?
                as usize;
        let mut names = vec![sys::rte_eth_xstat_name::default(); n];
        // SAFETY: `names` has room for n entries, as we tell it.
        let got = check("rte_eth_xstats_get_names", unsafe {
            sys::rte_eth_xstats_get_names(id, names.as_mut_ptr(), n as u32)
        })? as usize;
        names.truncate(got.min(n));
        let mut values = vec![sys::rte_eth_xstat::default(); names.len()];
        // SAFETY: `values` has room for names.len() entries.
        let got = check("rte_eth_xstats_get", unsafe {
            sys::rte_eth_xstats_get(id, values.as_mut_ptr(), values.len() as u32)
        })? as usize;
        values.truncate(got.min(values.len()));
        Ok(values
            .iter()
            .filter_map(|x| {
                let name = names.get(usize::try_from(x.id).ok()?)?;
                Some((c_chars_to_string(&name.name), x.value))
            })
            .collect())
    }

    /// Zero the basic counters.
    pub fn reset_stats(&mut self) -> Result<()> {
        // SAFETY: plain control call on a port we own.
        check("rte_eth_stats_reset", unsafe { sys::rte_eth_stats_reset(self.id()) }).map(drop)
    }

    /// Hand RX queue `queue` to one owner (typically a worker lcore).
    pub fn rx_queue(&mut self, queue: u16) -> Result<RxQueue> {
        RxQueue::claim(&self.shared, queue)
    }

    /// Hand TX queue `queue` to one owner (typically a worker lcore).
    pub fn tx_queue(&mut self, queue: u16) -> Result<TxQueue> {
        TxQueue::claim(&self.shared, queue)
    }

    /// Receive into the free space of `burst` from RX queue `queue`;
    /// returns how many mbufs were added. Returns 0 while the port is
    /// stopped.
    ///
    /// # Panics
    /// If `queue` is not a configured RX queue or is handed out as an
    /// [`RxQueue`].
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, queue: u16, burst: &mut Burst<N>) -> usize {
        let s = &*self.shared;
        assert!(
            queue < s.nb_rx && !PortShared::is_claimed(&s.rx_claimed, queue),
            "rx_burst: queue {queue} of port {} is not configured or is handed out",
            s.id
        );
        // SAFETY: `&mut self` plus the claim check make us the only user of
        // this configured queue.
        unsafe { rx_burst_raw(s.id, queue, burst, N) }
    }

    /// Send mbufs from the front of `burst` on TX queue `queue`; returns how
    /// many the driver took. The refused rest stays in `burst`, owned, for
    /// the caller to retry or drop.
    ///
    /// # Panics
    /// If `queue` is not a configured TX queue or is handed out as a
    /// [`TxQueue`].
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, queue: u16, burst: &mut Burst<N>) -> usize {
        let s = &*self.shared;
        assert!(
            queue < s.nb_tx && !PortShared::is_claimed(&s.tx_claimed, queue),
            "tx_burst: queue {queue} of port {} is not configured or is handed out",
            s.id
        );
        // SAFETY: as `rx_burst`.
        unsafe { tx_burst_raw(s.id, queue, burst) }
    }
}

/// # Safety
/// `queue` must be a configured RX queue of `port` that no other thread
/// polls concurrently.
#[inline]
pub(crate) unsafe fn rx_burst_raw<const N: usize>(port: u16, queue: u16, burst: &mut Burst<N>, max: usize) -> usize {
    let (spare, room) = burst.spare_raw();
    let room = room.min(max);
    if room == 0 {
        return 0;
    }
    // SAFETY: the caller guarantees exclusive use of a configured queue;
    // `spare` has at least `room` (<= u16::MAX, checked by Burst) writable slots.
    // The PMD writes `n` owned mbuf pointers there, which the burst takes.
    unsafe {
        let n = sys::shim_rte_eth_rx_burst(port, queue, spare, room as u16);
        burst.commit_spare(usize::from(n));
        usize::from(n)
    }
}

/// # Safety
/// `queue` must be a configured TX queue of `port` that no other thread
/// uses concurrently.
#[inline]
pub(crate) unsafe fn tx_burst_raw<const N: usize>(port: u16, queue: u16, burst: &mut Burst<N>) -> usize {
    let len = burst.len();
    if len == 0 {
        return 0;
    }
    // SAFETY: exclusive use of a configured queue (caller); the first `len`
    // slots hold owned mbufs. The PMD takes ownership of the first `n`,
    // which we then forget; the rest move to the front, still ours.
    unsafe {
        let n = sys::shim_rte_eth_tx_burst(port, queue, burst.raw_ptr(), len as u16);
        burst.forget_front(usize::from(n));
        usize::from(n)
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.shared;
        f.debug_struct("Port")
            .field("id", &s.id)
            .field("rx_queues", &s.nb_rx)
            .field("tx_queues", &s.nb_tx)
            .field("rss_active", &s.rss_active)
            .field("started", &s.started)
            .finish()
    }
}

fn c_chars_to_string(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

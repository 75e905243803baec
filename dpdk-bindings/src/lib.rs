//! Safe wrappers over DPDK 22.11 for masq. This crate holds all of the
//! project's `unsafe` code; every block carries a `// SAFETY:` argument.
//!
//! # Pieces
//! - [`Eal`]: process-wide init (once per process), lcores, [`Eal::launch`]
//!   of closures on worker lcores.
//! - [`Mempool`]: packet-buffer pools. [`Mbuf`]: one owned packet buffer.
//! - [`Burst`]: a fixed inline array of owned mbufs, the unit of I/O.
//! - [`Port`]: ethdev configuration, RSS, link, statistics, and
//!   `rx_burst`/`tx_burst`; [`RxQueue`]/[`TxQueue`] for one queue per lcore.
//! - [`MbufRing`]: SP/SC ring of mbufs for handoff between workers.
//! - [`cycles`]: TSC and prefetch.
//!
//! # What may be called from where
//! - [`Eal::init`] once, from the thread that will be the main lcore. The
//!   [`Eal`] handle is `!Send`/`!Sync`, so `launch`, `wait` and the cleanup
//!   in its `Drop` run on the main lcore, as DPDK requires.
//! - Creating pools, ports and rings needs a running EAL
//!   ([`Error::NotInitialized`] otherwise); it is control-path work, best
//!   done on the main lcore before launching workers.
//! - [`Mbuf`], [`Burst`], [`Mempool`] and the queue/ring handles work on
//!   any thread. On an EAL lcore (main or worker) mempool operations use
//!   the per-lcore cache; on a non-EAL thread they go straight to the
//!   pool's ring, which is correct but about 20% slower.
//! - A port queue is polled by one thread at a time: `&mut Port` for the
//!   single-threaded case, or the queue handles, each handed out once.
//! - [`current_lcore_id`], [`socket_id`], [`cycles::rdtsc`] and
//!   [`cycles::prefetch0`] are safe anywhere.
//!
//! # Why `Mbuf` is not `Clone`
//! An mbuf has one owner, which frees it. A clonable handle would let two
//! owners free one buffer — the double free that hit capsule (#76) and a
//! C-style wrapper's TX path (rust-dpdk #26). An `Mbuf` leaves Rust
//! ownership only through `tx_burst` / ring enqueue, which keep in the
//! [`Burst`] whatever the other side refused, or through
//! [`Mbuf::into_raw`].
//!
//! # Lifetimes of DPDK memory
//! Pools, claimed ports and rings are counted by the EAL handle. Dropping
//! the [`Eal`] calls `rte_eal_cleanup` only when none is left; a pool whose
//! last handle goes while mbufs are still out is leaked rather than freed.
//! So no safe sequence of drops leaves an `Mbuf` pointing at unmapped
//! memory.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod burst;
pub mod cycles;
pub mod eal;
pub mod error;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod queue;
pub mod ring;

pub use burst::{Burst, Drain};
pub use eal::{current_lcore_id, socket_id, Eal, LAUNCH_PANICKED, SOCKET_ID_ANY};
pub use error::{Error, Result};
pub use mbuf::Mbuf;
pub use mempool::{Mempool, DEFAULT_DATA_ROOM, HEADROOM};
pub use port::{rss, Link, Port, PortConfig, PortInfo, PortStats, RssConfig};
pub use queue::{RxQueue, TxQueue};
pub use ring::{MbufRing, MbufRingConsumer, MbufRingProducer};

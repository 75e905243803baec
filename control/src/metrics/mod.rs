//! Prometheus metrics: masqd's statistics over HTTP, `GET /metrics`.
//!
//! One door, two formats: a scrape asks the same [`Handler`](crate::Handler) the control
//! socket uses for `stats.get`, and [`encode::render`] writes that [`Stats`](crate::protocol::Stats)
//! snapshot in the Prometheus text exposition format (via `prometheus-client`). So
//! `masqctl stats` and a scrape never disagree about what a counter means, and the
//! exporter touches the workers only the way the control plane does (counters read
//! without stopping anyone, one bounded mailbox step per worker).
//!
//! [`server`] is a small blocking HTTP/1.1 endpoint on a `std::net::TcpListener` (no
//! async runtime in a DPDK process): one thread, started by masqd on the main lcore's CPU
//! after the workers, one connection at a time, bounded in bytes and time per request.
//! Off unless the configuration has `[metrics] listen`. Every metric, its labels and
//! meaning: `docs/operations.md`.

pub mod encode;
pub mod server;

pub use encode::{render, BuildInfo, Snapshot, StageRuntimes, CONTENT_TYPE};
pub use server::{MetricsError, MetricsHandle, MetricsOptions, MetricsServer};

//! Instruction counts of session creation, for callgrind: fills the session table of one
//! [`perf::natops`] scenario from empty to full, once. Timings on a shared machine are
//! noise; instruction counts (and callgrind's cache simulation) are not.
//!
//! ```sh
//! cargo build --release -p perf --no-default-features --example nat-ops
//! valgrind --tool=callgrind --toggle-collect='*natops*create_flows*' \
//!     target/release/examples/nat-ops existing-mapping
//! ```
//!
//! Divide the collected `Ir` by the sessions created (printed, 60 000). The setup
//! (allocating and zeroing the tables) is outside `create_flows`, so it is not counted.

use anyhow::{bail, Context, Result};
use perf::natops::{self, Scenario};

fn main() -> Result<()> {
    let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
    let arg = std::env::args().nth(1).with_context(|| format!("usage: nat-ops {}", names.join("|")))?;
    let Some(scenario) = Scenario::from_name(&arg) else {
        bail!("unknown scenario {arg:?}: one of {}", names.join(", "));
    };
    let mut nat = scenario.nat();
    let flows = scenario.flows();
    let n = u64::from(natops::TABLE_SESSIONS);
    std::hint::black_box(natops::create_flows(&mut nat, &flows, 0, n));
    let c = nat.port_counters();
    println!(
        "{}: {} sessions, {} mappings; ports allocated {} (preserved {}, searched {})",
        scenario.name(),
        nat.count(),
        nat.counters().mappings_created,
        c.allocated,
        c.preserved,
        c.searched
    );
    Ok(())
}

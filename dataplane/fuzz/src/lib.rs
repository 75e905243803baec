//! The bodies of masq's fuzz targets, one function per target, so that the targets in
//! `fuzz_targets/` are one line each and `tests/seeds.rs` runs every seed through the same
//! code without libFuzzer.
//!
//! A crash is a panic: a parser or handler that panics on some input (masqd is built
//! with `panic = "abort"`: a panic there ends the daemon), or a failed assertion of a
//! property checked here (a saved rule set that does not parse back, a response that is
//! not one JSON line, an mbuf lost or duplicated by the worker).

pub mod control_request;
pub mod frames;

pub use control_request::control_request;
pub use frames::frames;

use dataplane::config::Config;
use dataplane::l3::route::RouteTable;
use dataplane::policy::{CompiledRules, RuleSet};

/// The port names every target uses (`-i lan`, `-o wan`).
pub const PORTS: [&str; 2] = ["lan", "wan"];

/// `rules_save`: iptables-save text through masqd's `--rules` reader. Whatever parses
/// must save and parse back to the same text, and compile or be refused (never panic).
pub fn rules_save(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(set) = RuleSet::parse_save(text, &PORTS) else { return };
    let saved = set.to_save_text();
    let again = RuleSet::parse_save(&saved, &PORTS)
        .unwrap_or_else(|e| panic!("the saved text does not parse back: {e}\n--- input\n{text}\n--- saved\n{saved}"));
    assert_eq!(again.to_save_text(), saved, "save, parse, save differs\n--- input\n{text}");
    let ports: Vec<(&str, u16)> = PORTS.iter().enumerate().map(|(i, p)| (*p, i as u16)).collect();
    let _ = CompiledRules::new(&set, &ports);
}

/// `masqctl_line`: a masqctl command line (arguments separated by NUL bytes, so they may
/// hold spaces) through masqctl's one parser.
pub fn masqctl_line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let args: Vec<&str> = text.split('\0').collect();
    let _ = control::cli::parse(args);
}

/// `config_toml`: masqd's configuration file. Whatever is accepted must give a route
/// table and a `config.get` answer (never a panic).
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = Config::parse(text) else { return };
    let routes = RouteTable::from_config(&config);
    assert_eq!(routes.port_count(), config.ports.len());
    let cores: Vec<u32> = config.workers.cores.iter().map(|c| *c as u32).collect();
    let _ = dataplane::control_plane::config_json(&config, &cores, None);
}

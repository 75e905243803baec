//! Test support for masq's integration tests. Include it with `mod common;` from any
//! `dataplane/tests/*.rs`; it needs only std, `dataplane::testkit` and the
//! dev-dependencies `pcap-file` and `serde_json`. Exercised by `tests/harness_selftest.rs`.
//!
//! What is here:
//! - [`masqd_path`], [`eal_mem_args`]: which binary, which EAL memory mode;
//! - [`MasqdConfig`] (a TOML builder) and [`Masqd`] (a running daemon: ready, stop, log);
//! - the shutdown report: [`log_counter`], [`report_counters`], [`shutdown_verdict`] —
//!   the format masqd prints is fixed here, see [`report_counters`];
//! - pcap files: [`write_pcap`], [`read_pcap`], [`pcap_device`];
//! - frames: `dataplane::testkit`, re-exported here — builders ([`udp_frame`],
//!   [`tcp_frame`], [`icmp_echo_frame`], [`arp_request`], [`ipv4`]`(..).udp(..)`, ...) and
//!   independent parsers that verify every checksum ([`parse_ipv4`], [`parse_arp`]), the
//!   same ones the unit tests and `perf/` use;
//! - network namespaces: [`Netns`] (namespaces, veth pairs, commands with a time limit,
//!   all removed on drop), [`LanWan`] (the demo's two-host topology), and
//!   [`require_root_and_tools`] to skip where they cannot run.
//!
//! Environment: `MASQD` (binary to run), `CARGO_TARGET_DIR`, `MASQ_TEST_HUGEPAGES=1`
//! (EAL on hugepages instead of `--no-huge`), `MASQ_TEST_KEEP=1` (keep temp dirs),
//! `CI` / `MASQ_TEST_NO_SKIP=1` (a missing prerequisite fails instead of skipping),
//! `MASQ_TEST_SKIP_LOG` (file that collects SKIP lines; scripts/test.sh sets it).
#![allow(dead_code)] // every test binary uses its own subset

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::thread::sleep;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Paths, unique names, temp dirs
// ---------------------------------------------------------------------------------------

/// The workspace root (parent of `dataplane/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("dataplane has a parent directory").to_path_buf()
}

/// The cargo target directory: `CARGO_TARGET_DIR` (relative paths are taken from the
/// workspace root) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// The masqd binary the tests run: `$MASQD`, else `<target>/release/masqd`.
///
/// Integration tests run the release build, as shipped (fat LTO); `scripts/test.sh` builds
/// it first. Panics with the command to run if it is missing.
pub fn masqd_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MASQD").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "MASQD={} does not exist", p.display());
        return p;
    }
    let p = target_dir().join("release").join("masqd");
    assert!(
        p.is_file(),
        "masqd not found at {}: build it first with `cargo build --release -p dataplane` \
         (or point MASQD at a binary); scripts/test.sh does both",
        p.display()
    );
    p
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `<pid>-<n>`: unique among concurrently running tests of all processes.
pub fn unique_id() -> String {
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).map(|v| v == value).unwrap_or(false)
}

/// A directory under `std::env::temp_dir()`, removed on drop (kept with `MASQ_TEST_KEEP=1`).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("masqtest-{tag}-{}", unique_id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if env_is("MASQ_TEST_KEEP", "1") {
            eprintln!("MASQ_TEST_KEEP=1: keeping {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Poll `cond` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
}

/// The (protocol, local port) a peer.py server command (`udp-echo`, `udp-listen`,
/// `tcp-echo-peer`) binds, to wait for with [`Netns::wait_listening`].
pub fn peer_binds<'a>(args: &[&'a str]) -> Option<(&'static str, &'a str)> {
    match args {
        ["udp-echo" | "udp-listen", _, port, ..] => Some(("udp", port)),
        ["tcp-echo-peer", _, port, ..] => Some(("tcp", port)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// EAL memory mode
// ---------------------------------------------------------------------------------------

/// Memory (MB) a test masqd asks EAL for (`-m`). scripts/lib/common.sh has the same number.
pub const TEST_MEM_MB: u32 = 512;

/// Whether this run uses 2 MB hugepages (`MASQ_TEST_HUGEPAGES=1`) rather than `--no-huge`.
pub fn hugepages_requested() -> bool {
    env_is("MASQ_TEST_HUGEPAGES", "1")
}

/// EAL arguments for a test masqd: the memory mode of this run, `--no-pci`, and a fresh
/// `--file-prefix masqtest-<pid>-<n>` so concurrent masqd processes never share state.
pub fn eal_mem_args() -> Vec<String> {
    eal_mem_args_for(hugepages_requested())
}

/// [`eal_mem_args`] for an explicit mode. On hugepages `--huge-unlink` removes the page
/// files once mapped, so a killed masqd leaks no hugepages.
pub fn eal_mem_args_for(hugepages: bool) -> Vec<String> {
    let mem = TEST_MEM_MB.to_string();
    let mut args: Vec<String> = if hugepages {
        vec!["-m".into(), mem, "--huge-unlink".into()]
    } else {
        vec!["--no-huge".into(), "-m".into(), mem]
    };
    args.extend(["--no-pci".into(), "--file-prefix".into(), format!("masqtest-{}", unique_id())]);
    args
}

/// The value after `--file-prefix` (or in `--file-prefix=X`) in EAL arguments.
pub fn file_prefix_of(args: &[String]) -> Option<String> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == "--file-prefix" {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix("--file-prefix=").map(str::to_string)
        }
    })
}

/// Remove what EAL leaves behind for `prefix`: its runtime directory and hugepage files.
/// Call only when no process uses the prefix any more.
pub fn remove_eal_leftovers(prefix: &str) {
    let mut runtime = vec![PathBuf::from("/var/run/dpdk"), PathBuf::from("/run/dpdk"), PathBuf::from("/tmp/dpdk")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        runtime.push(PathBuf::from(x).join("dpdk"));
    }
    for dir in runtime {
        let _ = fs::remove_dir_all(dir.join(prefix));
    }
    if let Ok(entries) = fs::read_dir("/dev/hugepages") {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&format!("{prefix}map_")) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// masqd configuration
// ---------------------------------------------------------------------------------------

/// One `[[port]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub name: String,
    /// `"inside"` or `"outside"` (a string so tests can also write wrong ones).
    pub role: String,
    pub device: String,
    /// Address with prefix length, e.g. `100.64.0.1/10`.
    pub address: String,
    pub gateway: Option<String>,
    pub mtu: Option<u16>,
    /// MAC to set on the port (`mac = ...`); `None` keeps the device's.
    pub mac: Option<String>,
    /// The kernel interface masqd creates for the port (`host_interface = ...`).
    pub host_interface: Option<String>,
    /// `allowed_sources = [...]` (inside ports); empty: the key is not written.
    pub allowed_sources: Vec<String>,
}

/// One `[[neighbor]]` (static ARP entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborSpec {
    pub port: String,
    pub address: String,
    pub mac: String,
}

/// A masqd configuration built in code and written as TOML by [`MasqdConfig::to_toml`].
#[derive(Clone, Debug)]
pub struct MasqdConfig {
    /// `[dpdk] args`; starts as [`eal_mem_args`].
    pub eal_args: Vec<String>,
    pub ports: Vec<PortSpec>,
    pub neighbors: Vec<NeighborSpec>,
    /// `[workers] cores`; starts as `[1]` (core 0 is the main lcore).
    pub cores: Vec<u32>,
    /// `[workers] burst`, if set.
    pub burst: Option<usize>,
    /// Written to a file and passed as `--rules FILE` (iptables-save format).
    pub rules: Option<String>,
    /// Appended verbatim to the TOML, for sections the builder does not know.
    pub extra_toml: String,
}

impl Default for MasqdConfig {
    fn default() -> Self {
        MasqdConfig::new()
    }
}

impl MasqdConfig {
    pub fn new() -> MasqdConfig {
        MasqdConfig {
            eal_args: eal_mem_args(),
            ports: Vec::new(),
            neighbors: Vec::new(),
            cores: vec![1],
            burst: None,
            rules: None,
            extra_toml: String::new(),
        }
    }

    pub fn port(mut self, port: PortSpec) -> Self {
        self.ports.push(port);
        self
    }

    /// Add an inside port: `name`, DPDK `device` string, `address` as `A.B.C.D/N`.
    pub fn inside(self, name: &str, device: &str, address: &str) -> Self {
        self.port(PortSpec {
            name: name.into(),
            role: "inside".into(),
            device: device.into(),
            address: address.into(),
            gateway: None,
            mtu: None,
            mac: None,
            host_interface: None,
            allowed_sources: Vec::new(),
        })
    }

    /// Add an outside port, optionally with the default gateway.
    pub fn outside(self, name: &str, device: &str, address: &str, gateway: Option<&str>) -> Self {
        self.port(PortSpec {
            name: name.into(),
            role: "outside".into(),
            device: device.into(),
            address: address.into(),
            gateway: gateway.map(str::to_string),
            mtu: None,
            mac: None,
            host_interface: None,
            allowed_sources: Vec::new(),
        })
    }

    /// Set the MAC of the port added last.
    pub fn with_mac(mut self, mac: &str) -> Self {
        if let Some(p) = self.ports.last_mut() {
            p.mac = Some(mac.into());
        }
        self
    }

    /// Give the port added last a host interface (a kernel TAP) named `name`.
    pub fn with_host_interface(mut self, name: &str) -> Self {
        if let Some(p) = self.ports.last_mut() {
            p.host_interface = Some(name.into());
        }
        self
    }

    /// `allowed_sources` of the port added last.
    pub fn with_allowed_sources(mut self, prefixes: &[&str]) -> Self {
        if let Some(p) = self.ports.last_mut() {
            p.allowed_sources = prefixes.iter().map(|s| s.to_string()).collect();
        }
        self
    }

    /// Set the MTU of the port added last.
    pub fn with_mtu(mut self, mtu: u16) -> Self {
        if let Some(p) = self.ports.last_mut() {
            p.mtu = Some(mtu);
        }
        self
    }

    pub fn neighbor(mut self, port: &str, address: &str, mac: &str) -> Self {
        self.neighbors.push(NeighborSpec { port: port.into(), address: address.into(), mac: mac.into() });
        self
    }

    pub fn cores(mut self, cores: &[u32]) -> Self {
        self.cores = cores.to_vec();
        self
    }

    /// `[workers] burst`: frames per RX burst.
    pub fn burst(mut self, frames: usize) -> Self {
        self.burst = Some(frames);
        self
    }

    pub fn rules(mut self, text: &str) -> Self {
        self.rules = Some(text.into());
        self
    }

    pub fn extra_toml(mut self, text: &str) -> Self {
        self.extra_toml.push_str(text);
        self.extra_toml.push('\n');
        self
    }

    pub fn file_prefix(&self) -> Option<String> {
        file_prefix_of(&self.eal_args)
    }

    /// The configuration as masqd reads it (see docs/configuration.md).
    pub fn to_toml(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("string to JSON"); // JSON strings are TOML basic strings
        let mut t = String::from("# written by dataplane/tests/common\n[dpdk]\nargs = [");
        t.push_str(&self.eal_args.iter().map(|a| q(a)).collect::<Vec<_>>().join(", "));
        t.push_str("]\n");
        for p in &self.ports {
            t.push_str(&format!(
                "\n[[port]]\nname = {}\nrole = {}\ndevice = {}\naddress = {}\n",
                q(&p.name),
                q(&p.role),
                q(&p.device),
                q(&p.address)
            ));
            if let Some(g) = &p.gateway {
                t.push_str(&format!("gateway = {}\n", q(g)));
            }
            if let Some(m) = p.mtu {
                t.push_str(&format!("mtu = {m}\n"));
            }
            if let Some(m) = &p.mac {
                t.push_str(&format!("mac = {}\n", q(m)));
            }
            if let Some(h) = &p.host_interface {
                t.push_str(&format!("host_interface = {}\n", q(h)));
            }
            if !p.allowed_sources.is_empty() {
                let list: Vec<String> = p.allowed_sources.iter().map(|s| q(s)).collect();
                t.push_str(&format!("allowed_sources = [{}]\n", list.join(", ")));
            }
        }
        let cores: Vec<String> = self.cores.iter().map(u32::to_string).collect();
        t.push_str(&format!("\n[workers]\ncores = [{}]\n", cores.join(", ")));
        if let Some(b) = self.burst {
            t.push_str(&format!("burst = {b}\n"));
        }
        for n in &self.neighbors {
            t.push_str(&format!(
                "\n[[neighbor]]\nport = {}\naddress = {}\nmac = {}\n",
                q(&n.port),
                q(&n.address),
                q(&n.mac)
            ));
        }
        if !self.extra_toml.is_empty() {
            t.push('\n');
            t.push_str(&self.extra_toml);
        }
        t
    }
}

// ---------------------------------------------------------------------------------------
// Running masqd
// ---------------------------------------------------------------------------------------

/// How masqd ended: its exit status and everything it printed (stdout and stderr
/// interleaved, as written).
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub log: String,
}

impl Stopped {
    /// A counter from the shutdown report, e.g. `counter("port:lan rx_packets")`.
    pub fn counter(&self, key: &str) -> Option<u64> {
        log_counter(&self.log, key)
    }

    /// Like [`Stopped::counter`] but panics (with the log) when the counter is missing.
    pub fn expect_counter(&self, key: &str) -> u64 {
        self.counter(key).unwrap_or_else(|| panic!("no counter \"{key}\" in masqd's report:\n{}", self.log))
    }

    /// Exit status 0, `masqd: clean shutdown`, and `mempool in_use 0`.
    pub fn assert_clean(&self) {
        assert!(self.status.success(), "masqd exited with {}:\n{}", self.status, self.log);
        assert_eq!(shutdown_verdict(&self.log), Some(Ok(())), "no clean shutdown line:\n{}", self.log);
        assert_eq!(log_counter(&self.log, "mempool in_use"), Some(0), "mbufs in use at exit:\n{}", self.log);
    }
}

/// A running masqd with its own temp dir (config, rules, log, control socket). Killed on
/// drop.
pub struct Masqd {
    child: Option<Child>,
    dir: TempDir,
    log_path: PathBuf,
    config_path: PathBuf,
    file_prefix: Option<String>,
    socket: Option<PathBuf>,
}

impl Masqd {
    /// Start [`masqd_path`] with `--config` (and `--rules` if the config has rules).
    pub fn start(cfg: &MasqdConfig) -> Masqd {
        Masqd::start_with(&masqd_path(), cfg, &[])
    }

    /// Start a given binary with `--config FILE [--rules FILE]` followed by `extra_args`.
    pub fn start_with(binary: &Path, cfg: &MasqdConfig, extra_args: &[&str]) -> Masqd {
        Masqd::start_text(binary, &cfg.to_toml(), cfg.rules.as_deref(), extra_args)
    }

    /// Start with literal config text (for tests of bad configurations). Unless the text
    /// has a `[control]` section, one is added with the control socket in the temp dir
    /// (`masqd.sock`), so concurrent masqd processes never share the default socket.
    pub fn start_text(binary: &Path, toml: &str, rules: Option<&str>, extra_args: &[&str]) -> Masqd {
        Masqd::start_text_in(None, binary, toml, rules, extra_args, &[])
    }

    /// [`Masqd::start_text`] with extra environment variables for masqd (e.g. the
    /// `MASQD_FAULT` fault injection of the hardening tests).
    pub fn start_text_env(
        binary: &Path,
        toml: &str,
        rules: Option<&str>,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Masqd {
        Masqd::start_text_in(None, binary, toml, rules, extra_args, env)
    }

    /// [`Masqd::start`] inside network namespace `ns` (`ip netns exec`, which execs
    /// masqd: the child is masqd itself). masqd's host interfaces, routes and sysctls
    /// then live in that namespace.
    pub fn start_in_netns(ns: &str, cfg: &MasqdConfig) -> Masqd {
        Masqd::start_text_in(Some(ns), &masqd_path(), &cfg.to_toml(), cfg.rules.as_deref(), &[], &[])
    }

    fn start_text_in(
        ns: Option<&str>,
        binary: &Path,
        toml: &str,
        rules: Option<&str>,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Masqd {
        let dir = TempDir::new("masqd");
        let config_path = dir.join("masq.toml");
        let mut toml = toml.to_string();
        if !toml.lines().any(|l| l.trim() == "[control]") {
            let socket = dir.join("masqd.sock").display().to_string();
            toml.push_str(&format!("\n[control]\nsocket = {}\n", serde_json::to_string(&socket).expect("JSON")));
        }
        let toml = toml.as_str();
        fs::write(&config_path, toml).expect("write config");
        let log_path = dir.join("masqd.log");
        let log = File::create(&log_path).expect("create log");
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        cmd.arg("--config").arg(&config_path);
        if let Some(r) = rules {
            let rules_path = dir.join("rules.v4");
            fs::write(&rules_path, r).expect("write rules");
            cmd.arg("--rules").arg(rules_path);
        }
        cmd.args(extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .env("RUST_BACKTRACE", "1")
            .envs(env.iter().copied());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let file_prefix = toml_file_prefix(toml);
        let socket = toml_control_socket(toml);
        Masqd { child: Some(child), dir, log_path, config_path, file_prefix, socket }
    }

    /// Run masqd with `toml` until it exits by itself (e.g. a bad config); panics if it
    /// is still running after `timeout`.
    pub fn run_to_exit(toml: &str, extra_args: &[&str], timeout: Duration) -> Stopped {
        Masqd::start_text(&masqd_path(), toml, None, extra_args).wait_exit(timeout)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("masqd was already reaped")
    }

    /// The temp dir holding config, rules and log (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The control socket masqd serves (`[control] socket` of its configuration).
    pub fn socket(&self) -> &Path {
        self.socket.as_deref().expect("the configuration names a control socket")
    }

    /// Everything masqd printed so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// Whether the process is still running (reaps it if not).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Wait until masqd logs its readiness line (a line with the word `ready`, e.g.
    /// `masqd: ready (2 ports, 1 worker)`, printed once the workers poll). Errors with the
    /// log if masqd exits first or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.lines().any(is_ready_line) {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(format!("masqd exited ({status}) before it was ready:\n{log}"));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("masqd not ready after {timeout:?}:\n{log}"));
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// [`Masqd::wait_ready`] that panics with the log.
    pub fn expect_ready(&mut self, timeout: Duration) {
        if let Err(e) = self.wait_ready(timeout) {
            panic!("{e}");
        }
    }

    /// Send a signal by name (`TERM`, `INT`, `HUP`, `USR1`, ...).
    pub fn signal(&self, sig: &str) {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-s", sig, &pid]).stderr(Stdio::null()).status();
    }

    /// SIGTERM, then wait for the exit. After `timeout` masqd gets SIGKILL and the test
    /// panics (with the log): shutdown must be prompt.
    pub fn stop(self, timeout: Duration) -> Stopped {
        if self.child.is_some() {
            self.signal("TERM");
        }
        self.wait_exit(timeout)
    }

    /// Wait for masqd to exit by itself; SIGKILL and panic after `timeout`.
    pub fn wait_exit(mut self, timeout: Duration) -> Stopped {
        let mut child = self.child.take().expect("masqd was already reaped");
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("masqd did not exit within {timeout:?} (killed):\n{}", self.log());
                }
            }
        };
        Stopped { status, log: self.log() }
    }
}

impl Drop for Masqd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if std::thread::panicking() {
                eprintln!("---- masqd log ({}) ----\n{}", self.log_path.display(), self.log());
            }
        }
        if let Some(p) = &self.file_prefix {
            remove_eal_leftovers(p);
        }
    }
}

/// DPDK 22.11's af_packet PMD names its PACKET_FANOUT group `pid ^ interface index`, so
/// two masqd processes with neighbouring pids can pick the same group and fail to probe
/// (or share a group across interfaces). Tests of one binary therefore run masqd on
/// af_packet one at a time: hold this guard for the life of the masqd.
pub fn af_packet_serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A readiness line: the word `ready` (not `not ready`).
pub fn is_ready_line(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    !l.contains("not ready") && l.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w == "ready")
}

fn toml_file_prefix(toml: &str) -> Option<String> {
    // Good enough for configs written by MasqdConfig: find the args line and read it as JSON.
    let line = toml.lines().find(|l| l.trim_start().starts_with("args"))?;
    let list = line.split_once('=')?.1.trim();
    let args: Vec<String> = serde_json::from_str(list).ok()?;
    file_prefix_of(&args)
}

/// `socket = "..."` of the `[control]` section, as [`Masqd::start_text`] or a test wrote it.
fn toml_control_socket(toml: &str) -> Option<PathBuf> {
    let lines = toml.lines().skip_while(|l| l.trim() != "[control]").skip(1);
    let line = lines.take_while(|l| !l.trim_start().starts_with('[')).find(|l| l.trim_start().starts_with("socket"))?;
    let value = line.split_once('=')?.1.trim();
    serde_json::from_str::<String>(value).ok().map(PathBuf::from)
}

// ---------------------------------------------------------------------------------------
// The shutdown report
// ---------------------------------------------------------------------------------------

/// All counters in masqd's shutdown report, keyed `"<scope> <name>"`.
///
/// THE REPORT FORMAT (a contract: masqd's `report.rs` prints exactly this). On SIGINT or
/// SIGTERM masqd stops its workers and prints one counter per line, no indentation:
///
/// ```text
/// <scope> <name> <value>
/// ```
///
/// - `scope` is `port:<port name>` (e.g. `port:lan rx_packets 5`), `worker:<index>`
///   (e.g. `worker:0 tx_packets 4`), `drop` (e.g. `drop ipv4_bad_checksum 1`: summed over
///   workers, **every** reason listed, zeros included, by its `DropReason` name),
///   `host:<host interface>` (e.g. `host:lan0 rx_packets 3`: frames delivered to that
///   kernel interface; only with `host_interface`s) or `mempool` (`mempool in_use 0`:
///   mbufs not back in their pool after the ports closed)
///   or, with `[logging]` on, `logging` (the logging thread's counters: `logging events 4`);
/// - `name` is snake_case, `value` a decimal `u64`; fields are separated by one space;
/// - then a final line: `masqd: clean shutdown` when every mbuf came back (exit 0), or
///   `masqd: LEAK <n> mbufs` (non-zero exit).
///
/// Other lines (EAL's, masqd's logging) are ignored. A counter printed twice (say by a
/// periodic report) counts as its last value.
pub fn report_counters(log: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        let mut f = line.split_whitespace();
        let (Some(scope), Some(name), Some(value), None) = (f.next(), f.next(), f.next(), f.next()) else {
            continue;
        };
        let scope_ok = scope == "drop"
            || scope == "mempool"
            || scope == "logging"
            || scope.strip_prefix("port:").is_some_and(|p| !p.is_empty())
            || scope.strip_prefix("host:").is_some_and(|p| !p.is_empty())
            || scope.strip_prefix("worker:").is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()));
        if let (true, Ok(v)) = (scope_ok, value.parse::<u64>()) {
            out.insert(format!("{scope} {name}"), v);
        }
    }
    out
}

/// One counter from the report: `log_counter(log, "drop ipv4_bad_checksum")`,
/// `log_counter(log, "port:lan rx_packets")`, `log_counter(log, "mempool in_use")`.
/// `None` means masqd did not print it: a misspelt name or a missing report, never zero.
pub fn log_counter(log: &str, key: &str) -> Option<u64> {
    let key = key.split_whitespace().collect::<Vec<_>>().join(" ");
    report_counters(log).get(&key).copied()
}

/// `drop <reason>` from the report.
pub fn drop_count(log: &str, reason: &str) -> Option<u64> {
    log_counter(log, &format!("drop {reason}"))
}

/// The final line: `Some(Ok(()))` for `masqd: clean shutdown`, `Some(Err(n))` for
/// `masqd: LEAK <n> mbufs`, `None` if neither was printed (crash, kill, no report).
pub fn shutdown_verdict(log: &str) -> Option<Result<(), u64>> {
    log.lines().rev().find_map(|l| {
        let l = l.trim();
        if l == "masqd: clean shutdown" {
            return Some(Ok(()));
        }
        let n = l.strip_prefix("masqd: LEAK ")?.strip_suffix(" mbufs")?;
        n.parse().ok().map(Err)
    })
}

// ---------------------------------------------------------------------------------------
// pcap files
// ---------------------------------------------------------------------------------------

/// Write `frames` (Ethernet) to a classic pcap file, 1 ms apart.
pub fn write_pcap<B: AsRef<[u8]>>(path: &Path, frames: &[B]) {
    let file = File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    let mut w = pcap_file::pcap::PcapWriter::new(file).expect("pcap header");
    for (i, f) in frames.iter().enumerate() {
        let data = f.as_ref();
        let pkt = pcap_file::pcap::PcapPacket::new(Duration::from_millis(i as u64), data.len() as u32, data);
        w.write_packet(&pkt).expect("write pcap packet");
    }
    let mut file = w.into_writer();
    file.flush().expect("flush pcap");
}

/// Every frame of a pcap file, in order.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let file = File::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let mut r =
        pcap_file::pcap::PcapReader::new(file).unwrap_or_else(|e| panic!("{} is not a pcap file: {e}", path.display()));
    let mut frames = Vec::new();
    while let Some(pkt) = r.next_packet() {
        let pkt = pkt.unwrap_or_else(|e| panic!("bad packet in {}: {e}", path.display()));
        frames.push(pkt.data.into_owned());
    }
    frames
}

/// A `net_pcap` device string reading `rx` once and writing what masqd sends to `tx`.
pub fn pcap_device(index: u32, rx: &Path, tx: &Path) -> String {
    format!("net_pcap{index},rx_pcap={},tx_pcap={}", rx.display(), tx.display())
}

// ---------------------------------------------------------------------------------------
// Frames: dataplane::testkit, the one set of builders and parsers
// ---------------------------------------------------------------------------------------

pub use dataplane::testkit::*;

// ---------------------------------------------------------------------------------------
// Skipping
// ---------------------------------------------------------------------------------------

fn no_skip() -> bool {
    env_is("MASQ_TEST_NO_SKIP", "1") || std::env::var("CI").map(|v| !v.is_empty() && v != "false").unwrap_or(false)
}

/// Report that the calling test skips itself: prints `SKIP: <test>: <why>` and appends it to
/// `$MASQ_TEST_SKIP_LOG`. Under CI (or `MASQ_TEST_NO_SKIP=1`) a skip is a failure: panics.
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    if no_skip() {
        panic!("{test}: cannot run: {why} (CI does not skip tests)");
    }
    eprintln!("SKIP: {test}: {why}");
    if let Some(path) = std::env::var_os("MASQ_TEST_SKIP_LOG").filter(|p| !p.is_empty()) {
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "SKIP: {test}: {why}");
        }
    }
}

/// Effective uid 0 (read from /proc, std has no geteuid).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)).map(|u| u == "0")
        })
        .unwrap_or(false)
}

fn have_tool(name: &str, arg: &str) -> bool {
    Command::new(name).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// For tests that need namespaces, veth pairs and a masqd on af_packet: true when root and
/// `ip`, `timeout`, `ethtool`, `sysctl` are there; otherwise [`skip`]s (false) — or, under
/// CI, panics. Usage: `if !common::require_root_and_tools() { return; }`.
pub fn require_root_and_tools() -> bool {
    if !is_root() {
        skip("needs root (network namespaces, af_packet)");
        return false;
    }
    for (tool, arg) in [("ip", "-V"), ("timeout", "--version"), ("ethtool", "--version"), ("sysctl", "--version")] {
        if !have_tool(tool, arg) {
            skip(&format!("`{tool}` not found (scripts/setup.sh installs it)"));
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// Network namespaces
// ---------------------------------------------------------------------------------------

/// Prefix of every namespace and root-namespace link a [`Netns`] creates.
pub const NETNS_PREFIX: &str = "mqt";

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).expect("ascii")
}

/// Run a command, panic with its output if it fails.
fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip(args: &[&str]) -> Output {
    run(Command::new("ip").args(args))
}

fn ip_quiet(args: &[&str]) -> bool {
    Command::new("ip").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Names of all network namespaces.
pub fn netns_list() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out).lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

/// Names of all links in the root namespace (without the `@peer` suffix).
pub fn root_links() -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// The pid encoded in a name made by [`Netns`] (`mqt<pid base36>_...`).
fn owner_pid(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(NETNS_PREFIX)?;
    let (pid, _) = rest.split_once('_')?;
    u64::from_str_radix(pid, 36).ok()
}

/// Remove namespaces and links of [`Netns`] guards whose process is gone (a test that was
/// killed before its `Drop` ran). Names of live processes are left alone.
pub fn cleanup_stale_netns() {
    let stale = |name: &str| owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
    for ns in netns_list() {
        if stale(&ns) {
            let _ = ip_quiet(&["netns", "delete", &ns]);
        }
    }
    if let Ok(entries) = fs::read_dir("/etc/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if stale(&name) {
                remove_etc_netns(&name);
            }
        }
    }
    for link in root_links() {
        if stale(&link) {
            let _ = ip_quiet(&["link", "delete", &link]);
        }
    }
}

/// Remove `/etc/netns/<ns>` (and `/etc/netns` itself once empty).
fn remove_etc_netns(ns: &str) {
    let _ = fs::remove_dir_all(Path::new("/etc/netns").join(ns));
    let _ = fs::remove_dir("/etc/netns"); // fails, harmlessly, unless empty
}

static STALE_CLEANUP: Once = Once::new();

/// Network namespaces and veth pairs for one test, all named `mqt<pid>_<n><short>` and all
/// deleted on drop (with the processes started by [`Netns::spawn`]).
///
/// Veth pairs have one end in a namespace (the host side) and one in the root namespace
/// (masqd's side, for `net_af_packet`). Both ends get checksum offload, TSO, GSO and GRO off
/// (af_packet sees frames exactly as the kernel sent them, partial checksums included);
/// the root end gets no address, no IPv6, no forwarding, strict rp_filter and arp_ignore=8,
/// so the root kernel neither answers nor routes what arrives there. Namespaces get IPv6
/// off, so hosts do not chatter (router solicitations, MLD).
pub struct Netns {
    tag: String,
    namespaces: Vec<String>,
    links: Vec<String>,
    procs: Vec<Child>,
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

impl Netns {
    pub fn new() -> Netns {
        STALE_CLEANUP.call_once(cleanup_stale_netns);
        let tag = format!(
            "{NETNS_PREFIX}{}_{}",
            base36(u64::from(std::process::id())),
            base36(u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)))
        );
        Netns { tag, namespaces: Vec::new(), links: Vec::new(), procs: Vec::new() }
    }

    /// The unique prefix of this guard's names.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `<tag><short>`; panics beyond 15 characters (the kernel's limit for link names).
    pub fn name(&self, short: &str) -> String {
        let n = format!("{}{short}", self.tag);
        assert!(n.len() <= 15, "name {n} is longer than 15 characters: use a shorter suffix than \"{short}\"");
        n
    }

    /// Create a namespace with `lo` up and IPv6 off; returns its name. Programs run in it
    /// get their own `/etc/hosts` (localhost only) and `/etc/resolv.conf` (127.0.0.1), so
    /// no lookup ever leaves the namespace for the machine's real nameserver.
    pub fn add_ns(&mut self, short: &str) -> String {
        let ns = self.name(short);
        let etc = Path::new("/etc/netns").join(&ns);
        fs::create_dir_all(&etc).unwrap_or_else(|e| panic!("cannot create {}: {e}", etc.display()));
        fs::write(etc.join("hosts"), "127.0.0.1 localhost\n").expect("write netns hosts");
        fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").expect("write netns resolv.conf");
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        run(Command::new("ip")
            .args(["netns", "exec", &ns, "sysctl", "-qw"])
            .args(["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]));
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// Create a veth pair: `<tag><root_short>` in the root namespace (returned) and
    /// `ns_ifname` inside `ns`. Both up, offloads off, root end kept quiet (see above).
    pub fn add_veth(&mut self, root_short: &str, ns: &str, ns_ifname: &str) -> String {
        let root_if = self.name(root_short);
        ip(&["link", "add", &root_if, "type", "veth", "peer", "name", ns_ifname, "netns", ns]);
        self.links.push(root_if.clone());
        for (key, value) in [
            (format!("ipv6/conf/{root_if}/disable_ipv6"), "1"),
            (format!("ipv4/conf/{root_if}/forwarding"), "0"),
            (format!("ipv4/conf/{root_if}/rp_filter"), "1"),
            (format!("ipv4/conf/{root_if}/arp_ignore"), "8"),
        ] {
            let path = format!("/proc/sys/net/{key}");
            fs::write(&path, value).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
        }
        offloads_off(None, &root_if);
        offloads_off(Some(ns), ns_ifname);
        ip(&["link", "set", &root_if, "up"]);
        ip(&["-n", ns, "link", "set", ns_ifname, "up"]);
        root_if
    }

    /// Create a veth pair between two namespaces: `if_a` in `ns_a` and `if_b` in `ns_b`
    /// (both up, offloads off). The `if_a` end is kept quiet as a masqd port is (no IPv6,
    /// no forwarding, strict rp_filter, arp_ignore=8). Both go with their namespaces.
    pub fn add_veth_between(&mut self, ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) {
        let (tmp_a, tmp_b) = (self.name("va"), self.name("vb"));
        ip(&["link", "add", &tmp_a, "type", "veth", "peer", "name", &tmp_b]);
        for (tmp, ns, name) in [(&tmp_a, ns_a, if_a), (&tmp_b, ns_b, if_b)] {
            ip(&["link", "set", "dev", tmp, "netns", ns]);
            ip(&["-n", ns, "link", "set", "dev", tmp, "name", name]);
            offloads_off(Some(ns), name);
        }
        run(Command::new("ip").args(["netns", "exec", ns_a, "sysctl", "-qw"]).args([
            format!("net.ipv4.conf.{if_a}.forwarding=0"),
            format!("net.ipv4.conf.{if_a}.rp_filter=1"),
            format!("net.ipv4.conf.{if_a}.arp_ignore=8"),
        ]));
        ip(&["-n", ns_a, "link", "set", if_a, "up"]);
        ip(&["-n", ns_b, "link", "set", if_b, "up"]);
    }

    /// Set a link's MAC address (`ns` None: root namespace).
    pub fn set_mac(&self, ns: Option<&str>, ifname: &str, mac: Mac) {
        let m = format_mac(mac);
        match ns {
            Some(ns) => ip(&["-n", ns, "link", "set", "dev", ifname, "address", &m]),
            None => ip(&["link", "set", "dev", ifname, "address", &m]),
        };
    }

    /// A link's MAC address (`ns` None: root namespace).
    pub fn mac_of(&self, ns: Option<&str>, ifname: &str) -> Mac {
        let out = match ns {
            Some(ns) => ip(&["-n", ns, "-o", "link", "show", "dev", ifname]),
            None => ip(&["-o", "link", "show", "dev", ifname]),
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let m = text.split_whitespace().skip_while(|w| *w != "link/ether").nth(1);
        mac(m.unwrap_or_else(|| panic!("no MAC in: {text}")))
    }

    /// `ip addr add <cidr> dev <ifname>` inside `ns`.
    pub fn add_addr(&self, ns: &str, ifname: &str, cidr: &str) {
        ip(&["-n", ns, "addr", "add", cidr, "dev", ifname]);
    }

    /// `ip route add <dest> via <via>` inside `ns` (`dest` may be `default`).
    pub fn add_route(&self, ns: &str, dest: &str, via: &str) {
        ip(&["-n", ns, "route", "add", dest, "via", via]);
    }

    /// Run `argv` inside `ns`, killed after `limit` (exit status 124 then). Never panics on
    /// the command's own failure: check `Output::status`.
    pub fn exec(&self, ns: &str, limit: Duration, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns, "timeout", "-k", "1", &secs(limit)])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {argv:?} in {ns}: {e}"))
    }

    /// Wait (bounded, 15 s) until a socket in `ns` is bound to local `port`: listening for
    /// `"tcp"`, bound for `"udp"` (`ss -l`). A server just started with [`Netns::spawn`]
    /// is ready then, however long a loaded machine took to start it (a fixed sleep is not
    /// enough there: the first request would find nothing and be refused).
    pub fn wait_listening(&self, ns: &str, proto: &str, port: &str) {
        let flags = match proto {
            "tcp" => "-Hltn",
            "udp" => "-Hlun",
            other => panic!("wait_listening: protocol {other:?}"),
        };
        let filter = format!("sport = :{port}");
        let up = wait_until(Duration::from_secs(15), || {
            let o = self.exec(ns, Duration::from_secs(5), &["ss", flags, &filter]);
            !String::from_utf8_lossy(&o.stdout).trim().is_empty()
        });
        assert!(up, "nothing bound to {proto} port {port} in {ns} within 15 s");
    }

    /// Start `argv` in the background inside `ns` (a server, a capture); it is stopped
    /// after `lifetime` at the latest, and on drop. Returns its pid. Output goes to
    /// `stdout`/`stderr` files if given, else is discarded.
    pub fn spawn(&mut self, ns: &str, lifetime: Duration, argv: &[&str], log: Option<&Path>) -> u32 {
        let (out, err) = match log {
            Some(p) => {
                let f = File::create(p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
                (Stdio::from(f.try_clone().expect("clone")), Stdio::from(f))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "timeout", "-k", "1", &secs(lifetime)])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?} in {ns}: {e}"));
        let pid = child.id();
        self.procs.push(child);
        pid
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // `timeout` passes SIGTERM on to the command; SIGKILL if it lingers.
        for c in &mut self.procs {
            let _ = Command::new("kill").args(["-s", "TERM", &c.id().to_string()]).stderr(Stdio::null()).status();
        }
        for c in &mut self.procs {
            if !wait_until(Duration::from_secs(2), || matches!(c.try_wait(), Ok(Some(_)))) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = ip_quiet(&["netns", "delete", ns]);
            remove_etc_netns(ns);
        }
        for link in &self.links {
            if ip_quiet(&["link", "show", "dev", link]) {
                let _ = ip_quiet(&["link", "delete", link]);
            }
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// `02:00:00:00:01:02`
fn offloads_off(ns: Option<&str>, ifname: &str) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ethtool"]);
            c
        }
        None => Command::new("ethtool"),
    };
    cmd.args(["-K", ifname, "tx", "off", "rx", "off", "gso", "off", "tso", "off", "gro", "off"]);
    match cmd.output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!("warning: offloads on {ifname}: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => eprintln!("warning: cannot run ethtool: {e}"),
    }
}

/// The demo's addressing (scripts/demo.sh), shared by end-to-end tests.
pub mod addr {
    /// The LAN host, in its namespace.
    pub const LAN_HOST: &str = "100.64.0.2";
    pub const LAN_HOST_CIDR: &str = "100.64.0.2/10";
    pub const LAN_HOST_MAC: &str = "02:00:00:00:01:02";
    /// masqd's inside port.
    pub const LAN_ROUTER: &str = "100.64.0.1";
    pub const LAN_ROUTER_CIDR: &str = "100.64.0.1/10";
    pub const LAN_ROUTER_MAC: &str = "02:00:00:00:01:01";
    /// The server ("the Internet" and its gateway), in its namespace.
    pub const SERVER: &str = "203.0.113.254";
    pub const SERVER_CIDR: &str = "203.0.113.254/24";
    pub const SERVER_MAC: &str = "02:00:00:00:02:01";
    /// masqd's outside port.
    pub const WAN_ROUTER: &str = "203.0.113.1";
    pub const WAN_ROUTER_CIDR: &str = "203.0.113.1/24";
    pub const WAN_ROUTER_MAC: &str = "02:00:00:00:02:02";
}

/// The demo's topology for one test: a LAN host namespace and a server namespace, each
/// joined by a veth pair to the root namespace, where masqd attaches with `net_af_packet`:
///
/// ```text
/// <tag>lan ns: eth0 100.64.0.2/10 ==== <tag>l  [masqd]  <tag>w ==== eth0 203.0.113.254/24 :<tag>srv ns
/// ```
///
/// MACs are fixed ([`addr`]); the root ends carry masqd's MACs (af_packet uses the
/// interface's). Everything goes on drop.
pub struct LanWan {
    pub net: Netns,
    pub lan_ns: String,
    pub srv_ns: String,
    /// masqd's inside port (root namespace).
    pub lan_if: String,
    /// masqd's outside port (root namespace).
    pub wan_if: String,
}

impl LanWan {
    pub fn new() -> LanWan {
        let mut net = Netns::new();
        let lan_ns = net.add_ns("lan");
        let srv_ns = net.add_ns("srv");
        let lan_if = net.add_veth("l", &lan_ns, "eth0");
        let wan_if = net.add_veth("w", &srv_ns, "eth0");
        net.set_mac(None, &lan_if, mac(addr::LAN_ROUTER_MAC));
        net.set_mac(None, &wan_if, mac(addr::WAN_ROUTER_MAC));
        net.set_mac(Some(&lan_ns), "eth0", mac(addr::LAN_HOST_MAC));
        net.set_mac(Some(&srv_ns), "eth0", mac(addr::SERVER_MAC));
        net.add_addr(&lan_ns, "eth0", addr::LAN_HOST_CIDR);
        net.add_addr(&srv_ns, "eth0", addr::SERVER_CIDR);
        net.add_route(&lan_ns, "default", addr::LAN_ROUTER);
        net.add_route(&srv_ns, "default", addr::WAN_ROUTER);
        LanWan { net, lan_ns, srv_ns, lan_if, wan_if }
    }

    /// masqd ports `lan` (inside, 100.64.0.1/10) and `wan` (outside, 203.0.113.1/24,
    /// gateway 203.0.113.254) on this topology's veth ends.
    pub fn masqd_config(&self) -> MasqdConfig {
        MasqdConfig::new()
            .inside("lan", &format!("net_af_packet0,iface={}", self.lan_if), addr::LAN_ROUTER_CIDR)
            .outside("wan", &format!("net_af_packet1,iface={}", self.wan_if), addr::WAN_ROUTER_CIDR, Some(addr::SERVER))
    }

    /// Run a command on the LAN host.
    pub fn lan(&self, limit: Duration, argv: &[&str]) -> Output {
        self.net.exec(&self.lan_ns, limit, argv)
    }

    /// Run a command on the server.
    pub fn srv(&self, limit: Duration, argv: &[&str]) -> Output {
        self.net.exec(&self.srv_ns, limit, argv)
    }

    /// `ping -c <count>` from the LAN host to `dst`; true if every echo was answered.
    pub fn ping_from_lan(&self, dst: &str, count: u32) -> bool {
        let limit = Duration::from_secs(5 + 2 * u64::from(count));
        let count = count.to_string();
        self.lan(limit, &["ping", "-n", "-q", "-c", &count, "-i", "0.2", "-W", "2", dst]).status.success()
    }
}

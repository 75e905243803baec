//! Protocol helpers end to end: real FTP and TFTP programs in network namespaces talk
//! through a real masqd (on `net_af_packet` veths). The LAN host is 100.64.0.2 (and .3),
//! the server namespace 203.0.113.254, masqd's external address 203.0.113.1. Filtering
//! is address-and-port-dependent, so a data connection gets in only through the
//! helper's expectation. Every check looks at what the far side received (files compared
//! by SHA-256) and at masqd's counters.

mod common;

use std::path::Path;
use std::sync::MutexGuard;
use std::time::Duration;

use common::*;

const HOST_A: &str = "100.64.0.2";
const HOST_B: &str = "100.64.0.3";
const EXTERNAL: &str = "203.0.113.1";
const SERVER: &str = "203.0.113.254";
const PY: &str = "/usr/bin/python3";

const RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan -p tcp --dport 21 -j DNAT --to-destination 100.64.0.2:21
-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE
COMMIT
*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 2121 -j CT --helper ftp
COMMIT
";

fn tool(name: &str) -> String {
    workspace_root().join("dataplane/tests/tools").join(name).display().to_string()
}

fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

struct Helpers {
    topo: LanWan,
    masqd: Option<Masqd>,
    files: TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl Helpers {
    fn start(cores: &[u32], extra: &str) -> Option<Helpers> {
        if !require_root_and_tools() {
            return None;
        }
        for (what, ok) in [
            ("python3-pyftpdlib", Path::new("/usr/lib/python3/dist-packages/pyftpdlib").exists()),
            ("tftp-hpa", Path::new("/usr/bin/tftp").exists()),
        ] {
            if !ok {
                skip(&format!("{what} is not installed (scripts/setup.sh installs it)"));
                return None;
            }
        }
        let serial = af_packet_serial();
        let topo = LanWan::new();
        topo.net.add_addr(&topo.lan_ns, "eth0", &format!("{HOST_B}/10"));
        let cfg = topo
            .masqd_config()
            .rules(RULES)
            .cores(cores)
            .extra_toml(&format!("[nat]\nfiltering = \"address-port-dependent\"\n{extra}"));
        let mut masqd = Masqd::start(&cfg);
        masqd.expect_ready(Duration::from_secs(20));
        let files = TempDir::new("e2e-helpers");
        // 3 MB: many segments, several windows.
        let blob: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(files.join("blob"), &blob).unwrap();
        std::fs::write(files.join("small"), b"hello through the helper\n").unwrap();
        Some(Helpers { topo, masqd: Some(masqd), files, _serial: serial })
    }

    fn log(&self) -> String {
        self.masqd.as_ref().map(Masqd::log).unwrap_or_default()
    }

    fn ftp_server(&mut self, ns: &str, addr: &str, port: u16) {
        let dir = self.files.path().display().to_string();
        let port = port.to_string();
        self.topo.net.spawn(
            ns,
            Duration::from_secs(120),
            &[PY, "-m", "pyftpdlib", "-i", addr, "-p", &port, "-d", &dir],
            Some(&self.files.join(format!("ftpd-{addr}-{port}.log"))),
        );
        self.topo.net.wait_listening(ns, "tcp", &port);
    }

    /// curl in `ns`, downloading `url` to `out`: (exit code, stderr).
    fn curl(&self, ns: &str, args: &[&str], url: &str, out: &Path) -> (i32, String) {
        let o = out.display().to_string();
        let mut argv = vec!["curl", "-sS", "--max-time", "30", "-o", &o];
        argv.extend_from_slice(args);
        argv.push(url);
        let r = self.topo.net.exec(ns, Duration::from_secs(40), &argv);
        (r.status.code().unwrap_or(-1), String::from_utf8_lossy(&r.stderr).into_owned())
    }

    fn finish(mut self) -> Stopped {
        let stopped = self.masqd.take().expect("running").stop(Duration::from_secs(10));
        stopped.assert_clean();
        stopped
    }
}

/// Sum of a per-worker counter.
fn total(stopped: &Stopped, name: &str) -> u64 {
    report_counters(&stopped.log)
        .iter()
        .filter(|(k, _)| k.starts_with("worker:") && k.ends_with(&format!(" {name}")))
        .map(|(_, v)| *v)
        .sum()
}

/// Active FTP from a client inside to a server outside, with PORT (`--disable-eprt`) and
/// with EPRT; a large download compared byte for byte; two files over one control
/// connection (the second transfer's commands come after a length-changing rewrite).
fn active_ftp_through_masquerade(cores: &[u32]) {
    let Some(mut t) = Helpers::start(cores, "") else { return };
    let srv = t.topo.srv_ns.clone();
    let lan = t.topo.lan_ns.clone();
    t.ftp_server(&srv, SERVER, 21);
    let want = sha256(&t.files.join("blob"));
    for (name, args) in [("port", &["-P", "-", "--disable-eprt"][..]), ("eprt", &["-P", "-"][..])] {
        let out = t.files.join(format!("active-{name}"));
        let (rc, err) = t.curl(&lan, args, &format!("ftp://{SERVER}/blob"), &out);
        assert_eq!(rc, 0, "curl {name}: {err}\n{}", t.log());
        assert_eq!(sha256(&out), want, "{name}: the file arrived whole");
    }
    // Two files, one control connection: curl reuses it for the second URL.
    let (a, b) = (t.files.join("two-a"), t.files.join("two-b"));
    let (oa, ob) = (a.display().to_string(), b.display().to_string());
    let r = t.topo.net.exec(
        &lan,
        Duration::from_secs(60),
        &[
            "curl",
            "-sS",
            "--max-time",
            "40",
            "-P",
            "-",
            "--disable-eprt",
            "-o",
            &oa,
            &format!("ftp://{SERVER}/blob"),
            "-o",
            &ob,
            &format!("ftp://{SERVER}/small"),
        ],
    );
    assert!(r.status.success(), "two transfers: {}\n{}", String::from_utf8_lossy(&r.stderr), t.log());
    assert_eq!(sha256(&a), want);
    assert_eq!(std::fs::read(&b).unwrap(), b"hello through the helper\n");
    // The helpers' counters, live: stats.get per worker and summed, and masqctl stats.
    let socket = t.masqd.as_ref().unwrap().socket().to_path_buf();
    let json = masqctl(&socket, &["json", r#"{"id":1,"cmd":"stats.get"}"#]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {json}"));
    let stats = &v["result"];
    let text = masqctl(&socket, &["stats"]);
    let stopped = t.finish();
    assert!(total(&stopped, "ftp_port") >= 3, "{}", stopped.log);
    assert!(total(&stopped, "ftp_eprt") >= 1, "{}", stopped.log);
    assert!(total(&stopped, "helper_expect_used") >= 4, "{}", stopped.log);
    // 100,64,0,2 became 203,0,113,1: one byte longer, so later segments were moved.
    assert!(total(&stopped, "helper_seq_adjusted") >= 1, "{}", stopped.log);
    // Nothing happened between the query and the shutdown: the same figures.
    for name in ["helper_sessions", "ftp_port", "ftp_eprt", "helper_expect_created", "helper_expect_used"] {
        let want = total(&stopped, name);
        assert_eq!(stats["counters"][name].as_u64(), Some(want), "stats.get counters.{name}: {json}");
        let per_worker: u64 =
            stats["workers"].as_array().expect("workers").iter().filter_map(|w| w["counters"][name].as_u64()).sum();
        assert_eq!(per_worker, want, "stats.get workers[].counters.{name}: {json}");
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(name));
        assert_eq!(
            line.and_then(|l| l.split_whitespace().nth(1)),
            Some(want.to_string().as_str()),
            "masqctl stats:\n{text}"
        );
    }
}

/// Passive FTP from a client outside to a server inside behind DNAT: PASV (227,
/// `--disable-epsv`, and curl told to use the address in the reply) and EPSV (229).
fn passive_ftp_to_a_server_behind_dnat(cores: &[u32]) {
    let Some(mut t) = Helpers::start(cores, "") else { return };
    let srv = t.topo.srv_ns.clone();
    let lan = t.topo.lan_ns.clone();
    t.ftp_server(&lan, HOST_A, 21);
    let want = sha256(&t.files.join("blob"));
    for (name, args) in [("pasv", &["--disable-epsv", "--no-ftp-skip-pasv-ip"][..]), ("epsv", &[][..])] {
        let out = t.files.join(format!("passive-{name}"));
        let (rc, err) = t.curl(&srv, args, &format!("ftp://{EXTERNAL}/blob"), &out);
        assert_eq!(rc, 0, "curl {name}: {err}\n{}", t.log());
        assert_eq!(sha256(&out), want, "{name}: the file arrived whole");
    }
    let stopped = t.finish();
    assert!(total(&stopped, "ftp_pasv") >= 1, "{}", stopped.log);
    assert!(total(&stopped, "ftp_epsv") >= 1, "{}", stopped.log);
}

/// masqctl (`$MASQCTL`, else the release build next to masqd).
fn masqctl(socket: &Path, args: &[&str]) -> String {
    let bin = std::env::var_os("MASQCTL")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| target_dir().join("release").join("masqctl"));
    let out = std::process::Command::new(&bin)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert!(out.status.success(), "masqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PORT command cut across two segments is held and rewritten whole; the control
/// connection goes on (PWD, a second PORT, RETR) after the length-changing rewrite.
/// While the client waits after PORT, `masqctl -M -L` shows the FTP session and the
/// expectation; after the transfer, the data session listed with its control session.
fn a_split_port_command(cores: &[u32]) {
    let Some(mut t) = Helpers::start(cores, "") else { return };
    let srv = t.topo.srv_ns.clone();
    let lan = t.topo.lan_ns.clone();
    t.ftp_server(&srv, SERVER, 21);
    let script = tool("ftp_split.py");
    let log = t.files.join("split.log");
    t.topo.net.spawn(&lan, Duration::from_secs(40), &[PY, &script, HOST_A, SERVER, "blob", "3"], Some(&log));
    let socket = t.masqd.as_ref().unwrap().socket().to_path_buf();
    // pyftpdlib connects as soon as PORT is accepted: during the client's pause the data
    // session is listed under its control session.
    let mut listing = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            listing = masqctl(&socket, &["-M", "-L"]);
            listing.contains("  ftp data of #")
        }),
        "no data session listed:\n{listing}\n{}",
        t.log()
    );
    let lines: Vec<&str> = listing.lines().collect();
    let control = lines.iter().position(|l| l.contains(":21 ") && l.contains("  ftp #")).expect("control listed");
    assert!(lines[control + 1].contains("  ftp data of #"), "the data session follows its control session:\n{listing}");
    let want = sha256(&t.files.join("blob"));
    assert!(
        wait_until(Duration::from_secs(30), || std::fs::read_to_string(&log).unwrap_or_default().contains(&want)),
        "ftp_split: {}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        t.log()
    );
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(out.trim(), format!("{want} {want}"));

    let stopped = t.finish();
    assert!(total(&stopped, "helper_line_held") >= 1, "{}", stopped.log);
    assert!(total(&stopped, "ftp_port") >= 2, "{}", stopped.log);
}

/// An expectation is listed while it waits: a passive client outside pauses between
/// the 227 reply (rewritten to the external address) and its data connection.
fn the_expectation_is_listed_while_it_waits(cores: &[u32]) {
    let Some(mut t) = Helpers::start(cores, "") else { return };
    let srv = t.topo.srv_ns.clone();
    let lan = t.topo.lan_ns.clone();
    t.ftp_server(&lan, HOST_A, 21);
    let log = t.files.join("pasv.log");
    t.topo.net.spawn(
        &srv,
        Duration::from_secs(40),
        &[PY, &tool("ftp_pasv_wait.py"), EXTERNAL, "small", "3"],
        Some(&log),
    );
    let socket = t.masqd.as_ref().unwrap().socket().to_path_buf();
    let mut listing = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            listing = masqctl(&socket, &["-M", "-L"]);
            listing.contains("Expected connections")
        }),
        "no expectation listed:\n{listing}\n{}",
        t.log()
    );
    let seen = std::fs::read_to_string(&log).unwrap_or_default();
    let line = listing.lines().find(|l| l.starts_with("ftp ")).unwrap_or_default();
    assert!(seen.starts_with(&format!("227 {EXTERNAL}:")), "the 227 reply names the external address: {seen}");
    assert!(line.contains(&format!("{SERVER}:*")) && line.contains(&format!("{HOST_A}:")), "{listing}");
    assert!(
        wait_until(Duration::from_secs(20), || std::fs::read_to_string(&log).unwrap_or_default().lines().count() >= 2),
        "{}",
        t.log()
    );
    let json = masqctl(&socket, &["json", r#"{"id":1,"cmd":"expectations.list"}"#]);
    assert!(json.contains(r#""expectations":[]"#), "used up: {json}");
    t.finish();
}

/// TFTP get through masquerade: the server answers from a new port, which only the
/// expectation lets in (port-dependent filtering).
fn tftp_get_through_masquerade(cores: &[u32]) {
    let Some(mut t) = Helpers::start(cores, "") else { return };
    let srv = t.topo.srv_ns.clone();
    let lan = t.topo.lan_ns.clone();
    let dir = t.files.path().display().to_string();
    let log = t.files.join("tftpd.log");
    let script = tool("tftp_server.py");
    t.topo.net.spawn(&srv, Duration::from_secs(120), &[PY, &script, SERVER, &dir, &log.display().to_string()], None);
    t.topo.net.wait_listening(&srv, "udp", "69");
    let got = t.files.join("tftp-got");
    let g = got.display().to_string();
    let r = t.topo.net.exec(&lan, Duration::from_secs(60), &["tftp", "-m", "binary", SERVER, "-c", "get", "blob", &g]);
    let served = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(r.status.success(), "tftp: {}\n{served}\n{}", String::from_utf8_lossy(&r.stderr), t.log());
    assert_eq!(sha256(&got), sha256(&t.files.join("blob")), "{served}");
    assert!(served.starts_with(&format!("RRQ {EXTERNAL}:")), "the server saw the external address: {served}");
    let stopped = t.finish();
    assert!(total(&stopped, "tftp_request") >= 1, "{}", stopped.log);
    assert!(total(&stopped, "helper_expect_used") >= 1, "{}", stopped.log);
}

/// A raw-table rule puts the FTP helper on port 2121 (not in `[nat] helpers`).
fn ftp_on_another_port_by_a_raw_rule(cores: &[u32]) {
    let Some(mut t) = Helpers::start(cores, "") else { return };
    let srv = t.topo.srv_ns.clone();
    let lan = t.topo.lan_ns.clone();
    t.ftp_server(&srv, SERVER, 2121);
    let out = t.files.join("raw-2121");
    let (rc, err) = t.curl(&lan, &["-P", "-", "--disable-eprt"], &format!("ftp://{SERVER}:2121/small"), &out);
    assert_eq!(rc, 0, "{err}\n{}", t.log());
    assert_eq!(std::fs::read(&out).unwrap(), b"hello through the helper\n");
    let stopped = t.finish();
    assert!(total(&stopped, "ftp_port") >= 1, "{}", stopped.log);
}

macro_rules! one_and_two_workers {
    ($($f:ident: $one:ident, $two:ident;)*) => {$(
        #[test]
        fn $one() {
            $f(&[1]);
        }
        #[test]
        fn $two() {
            $f(&[0, 1]);
        }
    )*};
}

one_and_two_workers! {
    active_ftp_through_masquerade: active_ftp_1w, active_ftp_2w;
    passive_ftp_to_a_server_behind_dnat: passive_ftp_dnat_1w, passive_ftp_dnat_2w;
    tftp_get_through_masquerade: tftp_get_1w, tftp_get_2w;
}

#[test]
fn split_port_command_1w() {
    a_split_port_command(&[1]);
}

#[test]
fn expectation_listed_1w() {
    the_expectation_is_listed_while_it_waits(&[1]);
}

#[test]
fn raw_rule_ftp_port_2121_1w() {
    ftp_on_another_port_by_a_raw_rule(&[1]);
}

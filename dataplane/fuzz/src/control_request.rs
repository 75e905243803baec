//! `control_request`: lines of the control protocol into masqd's handler, as a client
//! would send them on the socket (`control::server::respond`, the one door every
//! request goes through), with one worker answering session commands from a real NAT
//! table on a thread of its own, as in masqd.
//!
//! Each input starts from the same state (empty rules, default timeouts, the worker's
//! sessions refilled). Every response must be one JSON line with `ok` and the request's
//! `id`.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dataplane::config::Config;
use dataplane::control_plane::mailbox::channel;
use dataplane::control_plane::{config_json, HandlerParts, LatencyHistogram, MasqdHandler, WorkerHandle};
use dataplane::counters::WorkerCounters;
use dataplane::nat::{self, Endpoint, NatConfig, Proto, TimeoutValues, Tuple};
use dataplane::pipeline::WorkerRuntime;
use dataplane::policy::{CompiledRules, RuleSet};
use serde_json::Value;

const CONFIG: &str = "[[port]]\nname = \"lan\"\nrole = \"inside\"\ndevice = \"net_null0\"\naddress = \"100.64.0.1/10\"\n\
                      [[port]]\nname = \"wan\"\nrole = \"outside\"\ndevice = \"net_null1\"\naddress = \"203.0.113.1/24\"\n\
                      gateway = \"203.0.113.254\"\n[workers]\ncores = [1]\n";

/// Lines of one input handled at most (a long input is many short tests, not one).
const MAX_LINES: usize = 16;

struct Fixture {
    handler: MasqdHandler,
    timeouts: Arc<nat::Timeouts>,
    _stop: Arc<AtomicBool>,
}

/// Sessions the worker's table holds at the start of each input.
const SESSIONS: u16 = 40;

fn fill(nat: &mut nat::WorkerNat, now: dataplane::time::Instant) {
    for i in 0..SESSIONS {
        let t = Tuple::new(
            Endpoint::new(Ipv4Addr::new(100, 64, 0, (i % 200) as u8 + 2), 10000 + i),
            Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), if i % 2 == 0 { 443 } else { 53 }),
            if i % 2 == 0 { Proto::Tcp } else { Proto::Udp },
        );
        let _ = nat.create(&t, nat::NatAction::Masquerade, 0x02, now);
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = Config::parse(CONFIG).expect("fixture config");
        let timeouts = Arc::new(nat::Timeouts::default());
        let (mut mailbox, link) = channel(0);
        let mut nat = nat::WorkerNat::new(NatConfig::new(vec![Ipv4Addr::new(203, 0, 113, 1)], 0, 1), timeouts.clone())
            .expect("fixture NAT");
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let now = dataplane::time::Instant::from_millis(1000 + start.elapsed().as_millis() as u64);
                    if nat.count() < u32::from(SESSIONS) / 2 {
                        fill(&mut nat, now);
                    }
                    if mailbox.due(now) {
                        mailbox.serve(Some(&mut nat), now);
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
            });
        }
        let latency = Arc::new(LatencyHistogram::default());
        latency.record(1500, 10);
        let runtime = Arc::new(WorkerRuntime::default());
        let worker =
            WorkerHandle { index: 0, lcore: 1, counters: Arc::new(WorkerCounters::default()), latency, link, runtime };
        let handler = MasqdHandler::new(HandlerParts {
            rules: RuleSet::new(),
            port_names: vec!["lan".into(), "wan".into()],
            compiled: Arc::new(ArcSwap::from_pointee(CompiledRules::default())),
            timeouts: timeouts.clone(),
            workers: vec![worker],
            port_stats: Box::new(|| {
                vec![dataplane::control_plane::stats::port_stats(0, "lan", Default::default(), &[])]
            }),
            config: config_json(&config, &[1], Some(Path::new("/etc/masq/rules.v4"))),
            external_addrs: vec![Ipv4Addr::new(203, 0, 113, 1)],
            host: None,
            deterministic: Default::default(),
            tsc_hz: 2_000_000_000,
        })
        .expect("fixture handler");
        Fixture { handler, timeouts, _stop: stop }
    })
}

pub fn control_request(data: &[u8]) {
    let f = fixture();
    f.handler.rules().reload("").expect("empty rules load");
    let d = TimeoutValues::default();
    for (class, secs) in [
        (nat::TimeoutClass::TcpEstablished, d.tcp),
        (nat::TimeoutClass::TcpTransitory, d.tcpfin),
        (nat::TimeoutClass::Udp, d.udp),
        (nat::TimeoutClass::Icmp, d.icmp),
    ] {
        f.timeouts.set(class, secs);
    }
    for line in data.split(|b| *b == b'\n').take(MAX_LINES) {
        let response = control::server::respond(&f.handler, line);
        let out = response.to_line();
        assert_eq!(out.last(), Some(&b'\n'), "a response ends its line");
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let v: Value = serde_json::from_slice(&out).expect("a response is JSON");
        assert!(v["ok"].is_boolean(), "{v}");
        if let Ok(request) = serde_json::from_slice::<Value>(line) {
            if let Some(id) = request.get("id").filter(|id| id.is_number() || id.is_string()) {
                assert_eq!(&v["id"], id, "the response carries the request's id");
            }
        }
    }
}

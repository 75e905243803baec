//! End-to-end checks against real DPDK (no hugepages, virtual devices).
//!
//! The EAL initialises once per process, so every check that needs it runs
//! from the single `#[test]` below, in order.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dpdk::{
    rss, Burst, Eal, Error, Mbuf, MbufRing, Mempool, Port, PortConfig, RssConfig, DEFAULT_DATA_ROOM, HEADROOM,
    LAUNCH_PANICKED, SOCKET_ID_ANY,
};

// ---- pcap files, by hand: 24-byte global header, 16-byte record headers.

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;

fn write_pcap(path: &Path, packets: &[Vec<u8>]) {
    let mut f = Vec::new();
    f.extend_from_slice(&PCAP_MAGIC_US.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    f.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    f.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    f.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&(i as u32 + 1).to_le_bytes()); // ts_sec
        f.extend_from_slice(&0u32.to_le_bytes()); // ts_usec
        f.extend_from_slice(&(p.len() as u32).to_le_bytes()); // incl_len
        f.extend_from_slice(&(p.len() as u32).to_le_bytes()); // orig_len
        f.extend_from_slice(p);
    }
    fs::write(path, f).unwrap();
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let f = fs::read(path).unwrap();
    assert!(f.len() >= 24, "pcap too short: {} bytes", f.len());
    let magic = u32::from_le_bytes(f[0..4].try_into().unwrap());
    assert!(magic == PCAP_MAGIC_US || magic == PCAP_MAGIC_NS, "magic {magic:#x}");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= f.len() {
        let incl = u32::from_le_bytes(f[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16;
        out.push(f[at..at + incl].to_vec());
        at += incl;
    }
    out
}

/// A recognisable Ethernet frame: broadcast dst, fixed src, IPv4 type, then
/// a pattern derived from `seed`.
fn frame(seed: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, seed, 0x08, 0x00];
    f.extend((0..len - 14).map(|i| seed.wrapping_mul(31).wrapping_add(i as u8)));
    f
}

fn mbuf_with(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("pool exhausted");
    m.set_len(bytes.len()).unwrap();
    m.data_mut().copy_from_slice(bytes);
    m
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn dpdk_end_to_end() {
    let pid = std::process::id();
    let dir = Scratch(std::env::temp_dir().join(format!("dpdk-test-{pid}")));
    fs::create_dir_all(&dir.0).unwrap();
    let rx_pcap = dir.0.join("in.pcap");
    let tx_pcap = dir.0.join("out.pcap");
    let pcap_in: Vec<Vec<u8>> = (0..5u8).map(|i| frame(i + 1, 60 + 10 * i as usize)).collect();
    write_pcap(&rx_pcap, &pcap_in);

    let args = vec![
        "test".to_owned(),
        "--no-huge".into(),
        "-m".into(),
        "512".into(),
        "--file-prefix".into(),
        format!("dpdk-test-{pid}"),
        // No shared-config files under /var/run/dpdk (single process).
        "--no-shconf".into(),
        "--no-pci".into(),
        "-l".into(),
        "0,1".into(),
        "--vdev".into(),
        "net_ring0".into(),
        "--vdev".into(),
        "net_null0".into(),
        "--vdev".into(),
        format!("net_pcap0,rx_pcap={},tx_pcap={}", rx_pcap.display(), tx_pcap.display()),
    ];
    let eal = Eal::init(&args).expect("EAL init");

    second_init_fails();
    lcores(&eal);

    let pool = Mempool::new("test_pool", 4095, 32, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).unwrap();
    assert_eq!(pool.in_use(), 0);
    assert_eq!(pool.avail(), 4095);
    assert_eq!(
        Mempool::new("test_pool", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).unwrap_err().errno(),
        Some(libc::EEXIST)
    );

    mempool_alloc_free(&pool);
    mbuf_lengths(&pool);
    burst_ops(&pool);
    ring_handoff(&eal, &pool);
    launch_and_wait(&eal);
    assert_eq!(Port::count(), 3);
    net_ring_loopback(&pool);
    port_from_rings(&pool);
    net_null_rss_and_workers(&eal, &pool);
    net_pcap_files(&pool, &pcap_in, &tx_pcap);

    assert_eq!(pool.in_use(), 0, "every mbuf is back in the pool");
    drop(pool);
    drop(eal); // all objects gone: rte_eal_cleanup runs
    assert_eq!(Mempool::new("late", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).unwrap_err(), Error::NotInitialized);
    assert_eq!(Eal::init(&["again"]).unwrap_err(), Error::AlreadyInitialized);
    // The EAL runtime directory of our --file-prefix (sockets only, thanks
    // to --no-shconf).
    let _ = fs::remove_dir_all(format!("/var/run/dpdk/dpdk-test-{pid}"));
}

fn second_init_fails() {
    assert_eq!(Eal::init(&["test", "--no-huge"]).unwrap_err(), Error::AlreadyInitialized);
}

fn lcores(eal: &Eal) {
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(eal.worker_lcores(), vec![1]);
    assert_eq!(eal.lcore_count(), 2);
    assert_eq!(dpdk::current_lcore_id(), Some(0));
    assert!(dpdk::cycles::tsc_hz() > 0);
    let _ = dpdk::socket_id();
}

fn mempool_alloc_free(pool: &Mempool) {
    let a = pool.alloc().unwrap();
    let b = Mbuf::alloc(pool).unwrap();
    assert_eq!(pool.in_use(), 2);
    assert_eq!(pool.avail(), 4093);
    drop(a);
    assert_eq!(pool.in_use(), 1);
    // Round trip through a raw pointer.
    let raw = b.into_raw();
    assert_eq!(pool.in_use(), 1);
    // SAFETY: `raw` came from `into_raw` just above and nobody else has it.
    let b = unsafe { Mbuf::from_raw(raw) };
    drop(b);
    assert_eq!(pool.in_use(), 0);

    // A small pool runs dry: alloc returns None, not a crash.
    let small = Mempool::new("small_pool", 7, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).unwrap();
    let held: Vec<Mbuf> = std::iter::from_fn(|| small.alloc()).collect();
    assert_eq!(held.len(), 7);
    assert!(small.alloc().is_none());
    drop(held);
    assert_eq!(small.in_use(), 0);
}

fn mbuf_lengths(pool: &Mempool) {
    let mut m = pool.alloc().unwrap();
    let room = usize::from(DEFAULT_DATA_ROOM - HEADROOM);
    assert_eq!(m.len(), 0);
    assert!(m.is_empty());
    assert_eq!(m.headroom(), usize::from(HEADROOM));
    assert_eq!(m.capacity(), room);
    assert_eq!(m.tailroom(), room);
    assert_eq!(m.nb_segs(), 1);
    assert!(m.is_contiguous());
    assert_eq!(m.rss_hash(), None);

    m.set_len(100).unwrap();
    assert_eq!((m.len(), m.pkt_len(), m.tailroom()), (100, 100, room - 100));
    for (i, b) in m.data_mut().iter_mut().enumerate() {
        *b = i as u8;
    }
    assert!(m.data().iter().enumerate().all(|(i, &b)| b == i as u8));
    m.prefetch();

    // Past the buffer end is refused and changes nothing.
    assert!(matches!(
        m.set_len(room + 1),
        Err(Error::OutOfRange { requested, max, .. }) if requested == room + 1 && max == room
    ));
    assert_eq!(m.len(), 100);
    m.set_len(room).unwrap();
    assert_eq!(m.tailroom(), 0);
    m.set_len(10).unwrap();
    assert_eq!(m.data(), &(0..10).collect::<Vec<u8>>()[..]);

    // append / prepend / adj / trim.
    m.append(4).unwrap().copy_from_slice(&[0xaa; 4]);
    assert_eq!(m.len(), 14);
    assert_eq!(&m.data()[10..], &[0xaa; 4]);
    m.prepend(2).unwrap().copy_from_slice(&[0xbb, 0xcc]);
    assert_eq!(&m.data()[..3], &[0xbb, 0xcc, 0]);
    assert_eq!(m.headroom(), usize::from(HEADROOM) - 2);
    m.adj(2).unwrap();
    m.trim(4).unwrap();
    assert_eq!(m.data(), &(0..10).collect::<Vec<u8>>()[..]);
    assert!(m.adj(11).is_err());
    assert!(m.trim(11).is_err());
    assert!(m.prepend(usize::from(HEADROOM) + 1).is_err());
    m.reset().unwrap();
    assert_eq!((m.len(), m.headroom()), (0, usize::from(HEADROOM)));
    drop(m);
    assert_eq!(pool.in_use(), 0);
}

fn burst_ops(pool: &Mempool) {
    let mut b = Burst::<4>::new();
    assert!(b.is_empty() && !b.is_full());
    for seed in 0..4u8 {
        b.push(mbuf_with(pool, &[seed; 20])).unwrap();
    }
    assert!(b.is_full());
    let extra = mbuf_with(pool, &[9; 20]);
    let extra = b.push(extra).unwrap_err(); // handed back, still owned
    assert_eq!(extra.data()[0], 9);
    drop(extra);
    assert_eq!(pool.in_use(), 4);

    let last = b.pop().unwrap();
    assert_eq!(last.data()[0], 3);
    drop(last);
    b.as_mut_slice()[0].data_mut()[0] = 7;
    let firsts: Vec<u8> = b.drain().map(|m| m.data()[0]).collect();
    assert_eq!(firsts, vec![7, 1, 2]);
    assert!(b.is_empty());
    assert_eq!(pool.in_use(), 0);

    // A partly consumed drain frees the rest.
    for seed in 0..4u8 {
        b.push(mbuf_with(pool, &[seed; 20])).unwrap();
    }
    let mut d = b.drain();
    assert_eq!(d.len(), 4);
    let first = d.next().unwrap();
    drop(d);
    assert_eq!(pool.in_use(), 1);
    drop(first);

    // clear() and Drop free in bulk; alloc_bulk fills the free space.
    let mut big = Burst::<32>::new();
    pool.alloc_bulk(&mut big, 20).unwrap();
    assert_eq!((big.len(), pool.in_use()), (20, 20));
    assert!(pool.alloc_bulk(&mut big, 13).is_err());
    pool.alloc_bulk(&mut big, 12).unwrap();
    assert!(big.is_full());
    big.clear();
    assert_eq!(pool.in_use(), 0);
    pool.alloc_bulk(&mut big, 32).unwrap();
    drop(big);
    assert_eq!(pool.in_use(), 0);
}

fn ring_handoff(eal: &Eal, pool: &Mempool) {
    let mut ring = MbufRing::new("test_ring", 8, SOCKET_ID_ANY).unwrap();
    let mut b = Burst::<16>::new();
    for seed in 0..10u8 {
        b.push(mbuf_with(pool, &[seed; 30])).unwrap();
    }
    assert_eq!(ring.enqueue_burst(&mut b), 8);
    assert_eq!(b.len(), 2, "what did not fit stays in the burst");
    assert_eq!(b.as_slice()[0].data()[0], 8);
    assert_eq!(ring.len(), 8);
    assert_eq!(pool.in_use(), 10);
    let mut out = Burst::<16>::new();
    assert_eq!(ring.dequeue_burst(&mut out), 8);
    let seeds: Vec<u8> = out.iter().map(|m| m.data()[0]).collect();
    assert_eq!(seeds, (0..8).collect::<Vec<u8>>());
    out.clear();
    b.clear();
    assert_eq!(pool.in_use(), 0);

    // Producer on the worker lcore, consumer here.
    let (mut tx, mut rx) = ring.split();
    let worker_pool = pool.clone();
    eal.launch(1, move || {
        let mut b = Burst::<8>::new();
        worker_pool.alloc_bulk(&mut b, 5).unwrap();
        for (i, m) in b.iter_mut().enumerate() {
            m.set_len(1).unwrap();
            m.data_mut()[0] = 100 + i as u8;
        }
        tx.enqueue_burst(&mut b) as i32
    })
    .unwrap();
    assert_eq!(eal.wait(1), 5);
    let mut got = Burst::<8>::new();
    assert_eq!(rx.dequeue_burst(&mut got), 5);
    assert_eq!(got.iter().map(|m| m.data()[0]).collect::<Vec<_>>(), vec![100, 101, 102, 103, 104]);
    drop(got);

    // Mbufs left in a ring are freed with it.
    let mut ring = MbufRing::new("test_ring2", 4, SOCKET_ID_ANY).unwrap();
    ring.enqueue(mbuf_with(pool, &[1])).unwrap();
    assert_eq!(pool.in_use(), 1);
    drop(ring);
    drop(rx);
    assert_eq!(pool.in_use(), 0);
}

fn launch_and_wait(eal: &Eal) {
    eal.launch(1, || {
        assert_eq!(dpdk::current_lcore_id(), Some(1));
        42
    })
    .unwrap();
    assert_eq!(eal.wait(1), 42);
    // A panic on the worker is caught and reported.
    eal.launch(1, || panic!("deliberate panic on a worker lcore")).unwrap();
    assert_eq!(eal.wait(1), LAUNCH_PANICKED);
    // Not a worker: refused, and the closure is dropped, not leaked.
    let token = std::sync::Arc::new(());
    let t = token.clone();
    assert!(eal
        .launch(0, move || {
            drop(t);
            0
        })
        .is_err());
    assert_eq!(std::sync::Arc::strong_count(&token), 1);
    // Busy lcore: EBUSY, closure reclaimed.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    eal.launch(1, move || {
        go_rx.recv().unwrap();
        7
    })
    .unwrap();
    let t = token.clone();
    let err = eal
        .launch(1, move || {
            drop(t);
            0
        })
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EBUSY));
    assert_eq!(std::sync::Arc::strong_count(&token), 1);
    go_tx.send(()).unwrap();
    assert_eq!(eal.wait(1), 7);
    eal.wait_all();
}

/// Poll `port` queue 0 until `want` mbufs are in `burst` or a second passes.
fn rx_until<const N: usize>(port: &mut Port, burst: &mut Burst<N>, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while burst.len() < want && Instant::now() < deadline {
        port.rx_burst(0, burst);
    }
}

fn net_ring_loopback(pool: &Mempool) {
    let mut port = Port::by_name("net_ring0").unwrap();
    assert!(matches!(Port::by_name("net_ring0"), Err(Error::Busy(_))));
    let info = port.info().unwrap();
    assert_eq!(info.driver_name, "net_ring");
    assert!(info.max_rx_queues >= 1);

    // net_ring offers no RSS: the request is masked away, not an error.
    let config = PortConfig {
        rss: Some(RssConfig { key: None, hash_fields: rss::IP | rss::UDP | rss::TCP }),
        ..PortConfig::default()
    };
    port.configure(&config, pool).unwrap();
    assert!(!port.rss_active());
    port.start().unwrap();
    assert!(port.link().unwrap().up);
    let _ = port.mac_addr().unwrap();
    let _ = port.set_promiscuous(true); // may be unsupported; must not crash
    port.reset_stats().unwrap();

    // net_ring0 created by --vdev loops TX back into RX on the same port.
    let sent: Vec<Vec<u8>> = (0..8u8).map(|i| frame(i, 64 + usize::from(i))).collect();
    let mut b = Burst::<32>::new();
    for f in &sent {
        b.push(mbuf_with(pool, f)).unwrap();
    }
    assert_eq!(port.tx_burst(0, &mut b), 8);
    assert!(b.is_empty());
    let mut got = Burst::<32>::new();
    rx_until(&mut port, &mut got, 8);
    let received: Vec<Vec<u8>> = got.iter().map(|m| m.data().to_vec()).collect();
    assert_eq!(received, sent);
    got.clear();

    let stats = port.stats().unwrap();
    assert_eq!(stats.opackets, 8);
    assert_eq!(stats.ipackets, 8);
    // (net_ring counts packets only; its byte counters stay 0.)
    let xstats = port.xstats().unwrap();
    assert!(!xstats.is_empty());
    assert!(xstats.iter().any(|(n, v)| n == "rx_good_packets" && *v == 8), "{xstats:?}");

    // Fill the ring until the PMD refuses: the refused mbufs stay in the
    // burst, owned and intact, and nothing is freed twice.
    let mut sent_total = 0;
    let mut refused = false;
    for round in 0..100u8 {
        while !b.is_full() {
            b.push(mbuf_with(pool, &[round; 60])).unwrap();
        }
        let n = port.tx_burst(0, &mut b);
        sent_total += n;
        if !b.is_empty() {
            refused = true;
            assert_eq!(b.len(), 32 - n);
            assert!(b.iter().all(|m| m.len() == 60 && m.data()[0] == round));
            break;
        }
    }
    assert!(refused, "net_ring never refused a TX burst");
    assert_eq!(pool.in_use() as usize, sent_total + b.len());
    b.clear();
    let mut drained = 0;
    loop {
        let n = port.rx_burst(0, &mut got);
        if n == 0 {
            break;
        }
        drained += n;
        got.clear();
    }
    assert_eq!(drained, sent_total);
    assert_eq!(pool.in_use(), 0);

    // Queue handles: configure is refused while one lives.
    let rxq = port.rx_queue(0).unwrap();
    assert!(matches!(port.rx_queue(0), Err(Error::Busy(_))));
    assert!(matches!(port.stop(), Err(Error::Busy(_))));
    assert!(port.rx_queue(1).is_err());
    drop(rxq);
    port.stop().unwrap();
    port.close().unwrap();
    assert!(Port::by_name("net_ring0").is_err(), "a closed vdev is gone");
}

/// `Port::from_rings`: a port whose RX reads one ring and whose TX writes another, with
/// the rings' other ends in our hands (what masq-bench feeds the worker through).
fn port_from_rings(pool: &Mempool) {
    let (mut gen, rx_end) = MbufRing::new("fr_rx", 64, SOCKET_ID_ANY).unwrap().split();
    let (tx_end, mut sink) = MbufRing::new("fr_tx", 64, SOCKET_ID_ANY).unwrap().split();
    let mut port = Port::from_rings("fr_port", rx_end, tx_end, SOCKET_ID_ANY).unwrap();
    assert_eq!(port.name().unwrap(), "net_ring_fr_port");
    assert_eq!(port.info().unwrap().driver_name, "net_ring");
    assert!(matches!(Port::by_name("net_ring_fr_port"), Err(Error::Busy(_))));
    port.configure(&PortConfig::default(), pool).unwrap();
    port.start().unwrap();

    // What we enqueue on the RX ring arrives through the port, in order.
    let sent: Vec<Vec<u8>> = (0..8u8).map(|i| frame(i + 40, 60 + usize::from(i))).collect();
    let mut b = Burst::<32>::new();
    for f in &sent {
        b.push(mbuf_with(pool, f)).unwrap();
    }
    assert_eq!(gen.enqueue_burst(&mut b), 8);
    let mut got = Burst::<32>::new();
    rx_until(&mut port, &mut got, 8);
    assert_eq!(got.iter().map(|m| m.data().to_vec()).collect::<Vec<_>>(), sent);

    // What the port sends lands on the TX ring, not back on RX (unlike --vdev net_ring).
    assert_eq!(port.tx_burst(0, &mut got), 8);
    assert_eq!(port.rx_burst(0, &mut b), 0);
    assert_eq!(sink.len(), 8);
    assert_eq!(sink.dequeue_burst(&mut b), 8);
    assert_eq!(b.iter().map(|m| m.data().to_vec()).collect::<Vec<_>>(), sent);
    let stats = port.stats().unwrap();
    assert_eq!((stats.ipackets, stats.opackets), (8, 8));

    // Frames still in the rings when everything goes are freed, not leaked.
    assert_eq!(port.tx_burst(0, &mut b), 8);
    assert_eq!(sink.len(), 8);
    port.close().unwrap();
    drop(sink);
    drop(gen);
    assert_eq!(pool.in_use(), 0);
    assert!(Port::by_name("net_ring_fr_port").is_err(), "a closed ring port is gone");
}

fn net_null_rss_and_workers(eal: &Eal, pool: &Mempool) {
    let mut port = Port::by_name("net_null0").unwrap();
    let info = port.info().unwrap();
    assert_eq!(info.driver_name, "net_null");
    let config = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rx_desc: 256,
        tx_desc: 256,
        rss: Some(RssConfig { key: None, hash_fields: rss::IP }),
        mtu: Some(1500),
    };
    port.configure(&config, pool).unwrap();
    assert_eq!(port.rss_active(), info.flow_type_rss_offloads & rss::IP != 0);
    assert_eq!((port.rx_queues(), port.tx_queues()), (2, 2));
    port.start().unwrap();

    // Worker lcore owns RX queue 1 and TX queue 1; we poll queue 0 here.
    let mut rxq = port.rx_queue(1).unwrap();
    let mut txq = port.tx_queue(1).unwrap();
    assert!(matches!(port.start(), Err(Error::Busy(_))));
    eal.launch(1, move || {
        let mut b = Burst::<32>::new();
        let mut total = 0;
        for _ in 0..100 {
            total += rxq.rx_burst(&mut b);
            txq.tx_burst(&mut b); // net_null frees what it sends
            b.clear();
        }
        // A run-time burst size below the burst's capacity (net_null always has frames).
        let n = rxq.rx_burst_up_to(&mut b, 5);
        if n != 5 || b.len() != 5 {
            return -1;
        }
        b.clear();
        total as i32
    })
    .unwrap();
    let mut b = Burst::<32>::new();
    let mut here = 0;
    for _ in 0..100 {
        here += port.rx_burst(0, &mut b);
        assert!(b.iter().all(|m| m.len() == 64));
        port.tx_burst(0, &mut b);
        b.clear();
    }
    let worker = eal.wait(1);
    assert!(worker > 0, "worker received {worker}");
    assert!(here > 0);
    let stats = port.stats().unwrap();
    assert!(stats.ipackets >= (here + worker as usize) as u64);
    assert!(stats.opackets > 0);
    assert!(!port.xstats().unwrap().is_empty());
    assert_eq!(pool.in_use(), 0);
    // The handles were dropped on the worker: the port is ours again.
    port.stop().unwrap();
    port.close().unwrap();
}

fn net_pcap_files(pool: &Mempool, pcap_in: &[Vec<u8>], tx_pcap: &Path) {
    let mut port = Port::by_name("net_pcap0").unwrap();
    assert_eq!(port.info().unwrap().driver_name, "net_pcap");
    port.configure(&PortConfig::default(), pool).unwrap();
    port.start().unwrap();
    let mut b = Burst::<32>::new();
    rx_until(&mut port, &mut b, pcap_in.len());
    let got: Vec<Vec<u8>> = b.iter().map(|m| m.data().to_vec()).collect();
    assert_eq!(got, pcap_in);
    assert!(b.iter().all(|m| m.port() == port.id()));
    // Send them back out, reversed, into tx_pcap.
    b.as_mut_slice().reverse();
    assert_eq!(port.tx_burst(0, &mut b), pcap_in.len());
    let stats = port.stats().unwrap();
    assert_eq!(stats.ipackets, pcap_in.len() as u64);
    assert_eq!(stats.opackets, pcap_in.len() as u64);
    port.close().unwrap();
    assert_eq!(pool.in_use(), 0);

    let written = read_pcap(tx_pcap);
    let mut expected = pcap_in.to_vec();
    expected.reverse();
    assert_eq!(written, expected);
}

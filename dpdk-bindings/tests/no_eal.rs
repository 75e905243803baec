//! Behaviour without an initialised EAL (this test binary never calls
//! `Eal::init`).

use dpdk::{cycles, Error, MbufRing, Mempool, Port, DEFAULT_DATA_ROOM, SOCKET_ID_ANY};

#[test]
fn objects_need_a_running_eal() {
    assert_eq!(Mempool::new("p", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).unwrap_err(), Error::NotInitialized);
    assert_eq!(MbufRing::new("r", 64, SOCKET_ID_ANY).unwrap_err(), Error::NotInitialized);
    assert_eq!(Port::count(), 0);
    assert!(Port::by_name("net_null0").is_err());
    assert_eq!(dpdk::current_lcore_id(), None);
}

#[test]
fn tsc_and_prefetch_work_anywhere() {
    let a = cycles::rdtsc();
    let b = cycles::rdtsc();
    assert!(b >= a);
    let x = [0u8; 64];
    cycles::prefetch0(x.as_ptr());
    cycles::prefetch0(std::ptr::null::<u8>());
}

#[test]
fn errors_carry_rte_strerror_text() {
    let e = Error::rte("rte_thing", -libc::EINVAL);
    assert_eq!(e.errno(), Some(libc::EINVAL));
    let msg = e.to_string();
    assert!(msg.contains("rte_thing") && msg.contains("Invalid argument"), "{msg}");
    let e = Error::rte("x", 1001); // E_RTE_SECONDARY
    assert!(e.to_string().contains("secondary"), "{e}");
}

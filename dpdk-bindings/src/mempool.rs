//! Packet-buffer pools (`rte_pktmbuf_pool_create`).
//!
//! A [`Mempool`] is a cheap, clonable handle to one pool. The pool is freed
//! when the last handle goes — ports keep a handle to the pool their RX
//! queues allocate from, so a pool cannot vanish under a running port. If
//! the last handle goes while mbufs are still out (held by the program, in
//! a ring, or in a device's queues), the pool is *leaked* instead of freed,
//! because freeing it would leave those mbufs dangling.

use std::ffi::{c_char, CStr, CString};
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use dpdk_sys as sys;

use crate::burst::Burst;
use crate::eal;
use crate::error::{Error, Result};
use crate::mbuf::Mbuf;

/// Default data room per mbuf: 2048 bytes of packet plus the 128-byte
/// headroom (`RTE_MBUF_DEFAULT_BUF_SIZE`).
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// Headroom reserved in front of the packet data (`RTE_PKTMBUF_HEADROOM`).
pub const HEADROOM: u16 = sys::RTE_PKTMBUF_HEADROOM as u16;

struct PoolInner {
    ptr: NonNull<sys::rte_mempool>,
}

// SAFETY: a DPDK packet mempool created with the default ops
// ("ring_mp_mc") is multi-producer/multi-consumer safe: any thread may get
// and put objects concurrently, and the per-lcore caches are only touched by
// their own lcore. The handle itself is just a pointer to that shared pool.
unsafe impl Send for PoolInner {}
// SAFETY: see `Send`; every method takes `&self` and is MT-safe in DPDK.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        let mp = self.ptr.as_ptr();
        eal::unregister(|| {
            // SAFETY: `mp` is a live pool (we are its last handle).
            let in_use = unsafe { sys::rte_mempool_in_use_count(mp) };
            if in_use == 0 {
                // SAFETY: last handle, nothing allocated from it is alive
                // (ports hold a handle, so none refers to it either).
                unsafe { sys::rte_mempool_free(mp) };
                false
            } else {
                eprintln!("dpdk: leaking mempool with {in_use} mbuf(s) still in use");
                true
            }
        });
    }
}

/// A pool of packet buffers. Clone to share; see the module docs.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

impl Mempool {
    /// Create a pool of `n_mbufs` packet buffers with a per-lcore cache of
    /// `cache_size`, each with `data_room` bytes of buffer (headroom
    /// included; [`DEFAULT_DATA_ROOM`] fits a 1500-byte frame), on NUMA
    /// `socket` ([`SOCKET_ID_ANY`](crate::SOCKET_ID_ANY) for any).
    ///
    /// `name` must be unique in the process (`EEXIST` otherwise).
    pub fn new(name: &str, n_mbufs: u32, cache_size: u32, data_room: u16, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| Error::InvalidArgument("pool name contains a NUL"))?;
        let ptr = eal::register(|| {
            // SAFETY: EAL is running (checked by `register`); `cname` is a
            // valid C string; the other arguments are plain values that DPDK
            // validates (EINVAL, ENOMEM, EEXIST via rte_errno).
            let mp = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n_mbufs, cache_size, 0, data_room, socket) };
            NonNull::new(mp).ok_or_else(|| Error::from_rte_errno("rte_pktmbuf_pool_create"))
        })?;
        Ok(Mempool { inner: Arc::new(PoolInner { ptr }) })
    }

    /// The raw pool pointer (for passing to DPDK).
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }

    /// The pool's name.
    pub fn name(&self) -> String {
        // SAFETY: `name` is a NUL-terminated array inside the live pool,
        // written once at creation; read through the raw pointer without
        // forming a reference to the whole (shared) pool header.
        unsafe { CStr::from_ptr(ptr::addr_of!((*self.as_ptr()).name).cast::<c_char>()) }.to_string_lossy().into_owned()
    }

    /// Total number of mbufs in the pool.
    pub fn size(&self) -> u32 {
        // SAFETY: reading a field of the live pool, fixed at creation.
        unsafe { (*self.as_ptr()).size }
    }

    /// Mbufs available (in the pool's ring plus every lcore cache).
    pub fn avail(&self) -> u32 {
        // SAFETY: MT-safe read-only query on a live pool.
        unsafe { sys::rte_mempool_avail_count(self.as_ptr()) }
    }

    /// Mbufs currently allocated from the pool (`size - avail`).
    pub fn in_use(&self) -> u32 {
        // SAFETY: MT-safe read-only query on a live pool.
        unsafe { sys::rte_mempool_in_use_count(self.as_ptr()) }
    }

    /// Allocate one mbuf; `None` if the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        Mbuf::alloc(self)
    }

    /// Allocate `n` mbufs into the free space of `burst`, all or nothing
    /// (`rte_pktmbuf_alloc_bulk`). Each is reset: empty, headroom in front.
    pub fn alloc_bulk<const N: usize>(&self, burst: &mut Burst<N>, n: usize) -> Result<()> {
        let (spare, room) = burst.spare_raw();
        if n > room {
            return Err(Error::OutOfRange { what: "mbufs to allocate into the burst", requested: n, max: room });
        }
        // SAFETY: `spare` points to `room >= n` writable slots of the burst;
        // on success DPDK wrote `n` valid mbuf pointers there, which we then
        // hand to the burst (it now owns them). On failure it wrote nothing
        // we own (all-or-nothing).
        let ret = unsafe { sys::shim_rte_pktmbuf_alloc_bulk(self.as_ptr(), spare, n as u32) };
        if ret != 0 {
            return Err(Error::rte("rte_pktmbuf_alloc_bulk", ret));
        }
        // SAFETY: the `n` slots after the current length were just filled
        // with owned mbufs.
        unsafe { burst.commit_spare(n) };
        Ok(())
    }
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.name())
            .field("size", &self.size())
            .field("in_use", &self.in_use())
            .finish()
    }
}

//! [`MbufRing`]: a single-producer / single-consumer `rte_ring` of owned
//! mbufs, for handing packets from one worker lcore to another.
//!
//! Mbufs move *into* the ring on enqueue (the ring owns them) and out again
//! on dequeue; mbufs left in the ring when it goes are freed. The ring is
//! SP/SC, so the safe API gives one producer and one consumer:
//! [`MbufRing::split`] turns the ring into an [`MbufRingProducer`] and an
//! [`MbufRingConsumer`], each `Send` with `&mut self` methods; unsplit, one
//! `&mut MbufRing` does both ends on one thread.

use std::ffi::{c_void, CString};
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use dpdk_sys as sys;

use crate::burst::Burst;
use crate::eal;
use crate::error::{Error, Result};
use crate::mbuf::Mbuf;

pub(crate) struct RingInner {
    pub(crate) ptr: NonNull<sys::rte_ring>,
}

// SAFETY: the ring lives in shared DPDK memory; its SP/SC discipline (one
// enqueuing thread, one dequeuing thread at a time) is enforced by the
// handle types below, which own one end each and need `&mut self`.
unsafe impl Send for RingInner {}
// SAFETY: `&RingInner` is only used for the MT-safe count queries; the
// enqueue/dequeue paths go through `&mut` handles.
unsafe impl Sync for RingInner {}

impl RingInner {
    /// # Safety
    /// The caller must be the ring's only producer for the duration.
    unsafe fn enqueue<const N: usize>(&self, burst: &mut Burst<N>) -> usize {
        let len = burst.len();
        if len == 0 {
            return 0;
        }
        // SAFETY: sole producer (caller); the first `len` slots hold owned
        // mbufs. The ring takes the first `n`, which the burst forgets.
        unsafe {
            let n = sys::shim_rte_ring_enqueue_burst(
                self.ptr.as_ptr(),
                burst.raw_ptr().cast::<*mut c_void>(),
                len as u32,
                ptr::null_mut(),
            ) as usize;
            burst.forget_front(n);
            n
        }
    }

    /// # Safety
    /// The caller must be the ring's only consumer for the duration.
    unsafe fn dequeue<const N: usize>(&self, burst: &mut Burst<N>) -> usize {
        let (spare, room) = burst.spare_raw();
        if room == 0 {
            return 0;
        }
        // SAFETY: sole consumer (caller); `spare` has `room` free slots. Only
        // owned mbufs are ever enqueued, so the `n` pointers dequeued are
        // owned mbufs that pass to the burst.
        unsafe {
            let n = sys::shim_rte_ring_dequeue_burst(
                self.ptr.as_ptr(),
                spare.cast::<*mut c_void>(),
                room as u32,
                ptr::null_mut(),
            ) as usize;
            burst.commit_spare(n);
            n
        }
    }

    fn len(&self) -> usize {
        // SAFETY: MT-safe count query on a live ring.
        unsafe { sys::shim_rte_ring_count(self.ptr.as_ptr()) as usize }
    }

    fn free_space(&self) -> usize {
        // SAFETY: MT-safe count query on a live ring.
        unsafe { sys::shim_rte_ring_free_count(self.ptr.as_ptr()) as usize }
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        let r = self.ptr.as_ptr();
        eal::unregister(|| {
            let mut burst = Burst::<64>::new();
            // SAFETY: we are the last owner, hence the only consumer.
            while unsafe { self.dequeue(&mut burst) } > 0 {
                burst.clear();
            }
            // SAFETY: last owner, ring empty; nobody uses it afterwards.
            unsafe { sys::rte_ring_free(r) };
            false
        });
    }
}

/// An SP/SC ring of owned mbufs. See the module docs.
pub struct MbufRing {
    inner: Arc<RingInner>,
}

impl MbufRing {
    /// Create a ring named `name` (unique in the process) holding up to
    /// `size` mbufs, on NUMA `socket`.
    pub fn new(name: &str, size: u32, socket: i32) -> Result<MbufRing> {
        let cname = CString::new(name).map_err(|_| Error::InvalidArgument("ring name contains a NUL"))?;
        let ptr = eal::register(|| {
            // SAFETY: EAL running (checked by `register`), valid C string;
            // DPDK validates the size and reports errors via rte_errno.
            let r = unsafe {
                sys::rte_ring_create(
                    cname.as_ptr(),
                    size,
                    socket,
                    sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ | sys::RING_F_EXACT_SZ,
                )
            };
            NonNull::new(r).ok_or_else(|| Error::from_rte_errno("rte_ring_create"))
        })?;
        Ok(MbufRing { inner: Arc::new(RingInner { ptr }) })
    }

    /// Move mbufs from the front of `burst` into the ring, as many as fit;
    /// returns how many moved. The rest stay in `burst`.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        // SAFETY: an unsplit ring has one handle, used through `&mut self`.
        unsafe { self.inner.enqueue(burst) }
    }

    /// Move mbufs from the ring into the free space of `burst`; returns how
    /// many moved.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        // SAFETY: as `enqueue_burst`.
        unsafe { self.inner.dequeue(burst) }
    }

    /// Mbufs in the ring.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when the ring holds no mbuf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room left.
    pub fn free_space(&self) -> usize {
        self.inner.free_space()
    }

    /// Split into the producer end and the consumer end.
    pub fn split(self) -> (MbufRingProducer, MbufRingConsumer) {
        (MbufRingProducer { inner: Arc::clone(&self.inner) }, MbufRingConsumer { inner: self.inner })
    }

    /// Move one mbuf in; hands it back if the ring is full.
    pub fn enqueue(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        let mut b = Burst::<1>::new();
        // A fresh Burst<1> has room for one.
        let _ = b.push(m);
        self.enqueue_burst(&mut b);
        b.pop().map_or(Ok(()), Err)
    }
}

/// The enqueuing end of a split [`MbufRing`].
pub struct MbufRingProducer {
    pub(crate) inner: Arc<RingInner>,
}

impl MbufRingProducer {
    /// As [`MbufRing::enqueue_burst`].
    #[inline]
    pub fn enqueue_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        // SAFETY: this is the ring's only producer handle (split once).
        unsafe { self.inner.enqueue(burst) }
    }

    /// Room left.
    pub fn free_space(&self) -> usize {
        self.inner.free_space()
    }
}

/// The dequeuing end of a split [`MbufRing`].
pub struct MbufRingConsumer {
    pub(crate) inner: Arc<RingInner>,
}

impl MbufRingConsumer {
    /// As [`MbufRing::dequeue_burst`].
    #[inline]
    pub fn dequeue_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        // SAFETY: this is the ring's only consumer handle (split once).
        unsafe { self.inner.dequeue(burst) }
    }

    /// Mbufs waiting.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for MbufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbufRing").field("len", &self.len()).finish()
    }
}

impl fmt::Debug for MbufRingProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbufRingProducer").finish_non_exhaustive()
    }
}

impl fmt::Debug for MbufRingConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbufRingConsumer").finish_non_exhaustive()
    }
}

//! [`Mbuf`]: one owned packet buffer.
//!
//! An `Mbuf` has exactly one owner. It is **not `Clone`**: two handles to
//! one `rte_mbuf` would free it twice (the classic bug of C-style wrappers
//! and of capsule's early `Clone`). It leaves Rust ownership only through
//! `tx_burst`/ring enqueue (which keep whatever the other side refused) or
//! [`Mbuf::into_raw`]; otherwise `Drop` frees it back to its pool.
//!
//! The API is single-segment: [`Mbuf::data`] is the first segment, and
//! length changes refuse chained mbufs ([`Error::MultiSegment`]). Mbufs from
//! our pools and from RX without scatter are always single-segment.

use std::fmt;
use std::ptr::NonNull;
use std::slice;

use dpdk_sys as sys;

use crate::error::{Error, Result};
use crate::mempool::Mempool;

/// An owned packet buffer, freed on drop. See the module docs.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// Same size and alignment as the `struct rte_mbuf *` arrays DPDK fills.
const _: () = assert!(std::mem::size_of::<Mbuf>() == std::mem::size_of::<*mut sys::rte_mbuf>());
const _: () = assert!(std::mem::size_of::<Option<Mbuf>>() == std::mem::size_of::<usize>());
const _: () = assert!(std::mem::size_of::<sys::rte_mbuf>() == 128);

// SAFETY: an Mbuf is the unique owner of its buffer (no Clone, refcnt 1),
// so moving it to another thread moves all access with it. Freeing from any
// thread is fine: mempool put is MT-safe, and uses the per-lcore cache only
// on the lcore that owns it.
unsafe impl Send for Mbuf {}
// SAFETY: `&Mbuf` only allows reads of the buffer and its header.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Allocate one mbuf from `pool` (reset, empty, default headroom);
    /// `None` if the pool is exhausted.
    pub fn alloc(pool: &Mempool) -> Option<Mbuf> {
        // SAFETY: `pool` is a live packet pool; the returned mbuf (if any)
        // is freshly allocated with refcnt 1, so we are its only owner.
        NonNull::new(unsafe { sys::shim_rte_pktmbuf_alloc(pool.as_ptr()) }).map(Mbuf)
    }

    /// Take ownership of a raw mbuf.
    ///
    /// # Safety
    /// `ptr` must be a valid packet mbuf (refcnt 1, not indirect) that
    /// nobody else owns or will free, e.g. one from [`Mbuf::into_raw`].
    pub unsafe fn from_raw(ptr: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(ptr)
    }

    /// Give up ownership without freeing; the caller must free or transmit
    /// the mbuf (or turn it back with [`Mbuf::from_raw`]).
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let ptr = self.0;
        std::mem::forget(self);
        ptr
    }

    /// The raw pointer, still owned by `self`.
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    #[inline(always)]
    fn hdr(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf; the header is plain data.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn hdr_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: as `hdr`, and `&mut self` means nobody else reads it.
        unsafe { self.0.as_mut() }
    }

    #[inline(always)]
    fn data_ptr(&self) -> *mut u8 {
        let m = self.hdr();
        // SAFETY: data_off <= buf_len, so the result stays inside the buffer.
        unsafe { m.buf_addr.cast::<u8>().add(usize::from(m.data_off)) }
    }

    /// The packet bytes of the first segment (`rte_pktmbuf_mtod`, `data_len`).
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: [data_off, data_off + data_len) lies inside the buffer
        // (DPDK invariant kept by every length change here). The bytes live
        // in DPDK memory that is mapped zero-filled and only ever written,
        // so they are initialised. We own the mbuf, so nobody writes them
        // while this borrow of `self` lives.
        unsafe { slice::from_raw_parts(self.data_ptr(), usize::from(self.hdr().data_len)) }
    }

    /// The packet bytes of the first segment, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.hdr().data_len);
        // SAFETY: as `data`, and `&mut self` makes the access exclusive.
        unsafe { slice::from_raw_parts_mut(self.data_ptr(), len) }
    }

    /// The packet bytes followed by the tailroom, writable: from the first data byte
    /// to the end of the buffer ([`Mbuf::capacity`] bytes). The length is unchanged; a
    /// caller that builds a longer packet here then calls [`Mbuf::set_len`].
    #[inline]
    pub fn room_mut(&mut self) -> &mut [u8] {
        let room = self.capacity();
        // SAFETY: [data_off, buf_len) lies inside the buffer (DPDK invariant); the
        // bytes past data_len are initialised for the same reason as in `data`, and
        // `&mut self` makes the access exclusive.
        unsafe { slice::from_raw_parts_mut(self.data_ptr(), room) }
    }

    /// Bytes of packet data in this (first) segment.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.hdr().data_len)
    }

    /// True when the packet has no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.hdr().data_len == 0
    }

    /// Total packet length over all segments (`pkt_len`).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.hdr().pkt_len as usize
    }

    /// Bytes between the start of the buffer and the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.hdr().data_off)
    }

    /// Bytes between the end of the data and the end of the buffer.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.hdr();
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    /// The most [`Mbuf::set_len`] may give: from the data start to the end
    /// of the buffer.
    #[inline]
    pub fn capacity(&self) -> usize {
        let m = self.hdr();
        usize::from(m.buf_len) - usize::from(m.data_off)
    }

    fn single_segment(&self) -> Result<()> {
        if self.hdr().nb_segs == 1 {
            Ok(())
        } else {
            Err(Error::MultiSegment)
        }
    }

    /// Set the packet length: grow into the tailroom (the new bytes hold
    /// whatever the buffer held before) or shrink. Refuses lengths past the
    /// buffer end and chained mbufs.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> Result<()> {
        self.single_segment()?;
        let cap = self.capacity();
        if len > cap {
            return Err(Error::OutOfRange { what: "mbuf length", requested: len, max: cap });
        }
        let m = self.hdr_mut();
        // `len <= capacity() <= u16::MAX`, so the casts are lossless.
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        Ok(())
    }

    /// Append `n` bytes at the end and return them (`rte_pktmbuf_append`).
    pub fn append(&mut self, n: usize) -> Result<&mut [u8]> {
        self.single_segment()?;
        let max = self.tailroom();
        if n > max {
            return Err(Error::OutOfRange { what: "bytes to append", requested: n, max });
        }
        // SAFETY: single segment with n <= tailroom, so append succeeds and
        // returns a pointer to n bytes inside our buffer.
        let p = unsafe { sys::shim_rte_pktmbuf_append(self.as_ptr(), n as u16) };
        // SAFETY: see above; exclusive through `&mut self`.
        Ok(unsafe { slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    /// Prepend `n` bytes in the headroom and return them
    /// (`rte_pktmbuf_prepend`).
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8]> {
        let max = self.headroom();
        if n > max {
            return Err(Error::OutOfRange { what: "bytes to prepend", requested: n, max });
        }
        // SAFETY: n <= headroom, so prepend succeeds and returns the new
        // data start, n bytes inside our buffer.
        let p = unsafe { sys::shim_rte_pktmbuf_prepend(self.as_ptr(), n as u16) };
        // SAFETY: see above; exclusive through `&mut self`.
        Ok(unsafe { slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    /// Remove `n` bytes from the front (`rte_pktmbuf_adj`).
    pub fn adj(&mut self, n: usize) -> Result<()> {
        let max = self.len();
        if n > max {
            return Err(Error::OutOfRange { what: "bytes to strip from the front", requested: n, max });
        }
        // SAFETY: n <= data_len of the first segment, the function's
        // precondition; it only moves data_off and shrinks the lengths.
        unsafe { sys::shim_rte_pktmbuf_adj(self.as_ptr(), n as u16) };
        Ok(())
    }

    /// Remove `n` bytes from the end (`rte_pktmbuf_trim`).
    pub fn trim(&mut self, n: usize) -> Result<()> {
        self.single_segment()?;
        let max = self.len();
        if n > max {
            return Err(Error::OutOfRange { what: "bytes to trim from the end", requested: n, max });
        }
        // SAFETY: single segment and n <= data_len: only lengths change.
        unsafe { sys::shim_rte_pktmbuf_trim(self.as_ptr(), n as u16) };
        Ok(())
    }

    /// Reset to an empty packet with the default headroom and no flags
    /// (`rte_pktmbuf_reset`). Refuses chained mbufs (it would leak the tail).
    pub fn reset(&mut self) -> Result<()> {
        self.single_segment()?;
        // SAFETY: a single-segment mbuf we own; reset rewrites header fields.
        unsafe { sys::shim_rte_pktmbuf_reset(self.as_ptr()) };
        Ok(())
    }

    /// Number of segments in the chain.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.hdr().nb_segs
    }

    /// True for a single-segment mbuf, the only kind [`Mbuf::data`] covers
    /// completely.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.hdr().nb_segs == 1
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.hdr().ol_flags
    }

    /// The RSS hash computed by the NIC, when it set one.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.hdr();
        if m.ol_flags & sys::RTE_MBUF_F_RX_RSS_HASH != 0 {
            // SAFETY: with RX_RSS_HASH set, the PMD wrote `hash.rss`; every
            // member of the union is plain integers anyway.
            Some(unsafe { m.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }

    /// Input port id (set by RX).
    #[inline]
    pub fn port(&self) -> u16 {
        self.hdr().port
    }

    /// Set the port field (an application may use it to tag a buffer it passes on,
    /// e.g. with its own port index when handing the buffer to another thread).
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.hdr_mut().port = port;
    }

    /// Prefetch the first cache line of packet data into all cache levels.
    #[inline]
    pub fn prefetch(&self) {
        crate::cycles::prefetch0(self.data_ptr());
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we are the unique owner; after this nobody uses the pointer.
        unsafe { sys::shim_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("pkt_len", &self.pkt_len())
            .field("nb_segs", &self.nb_segs())
            .field("port", &self.port())
            .finish()
    }
}

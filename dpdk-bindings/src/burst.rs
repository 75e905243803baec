//! [`Burst`]: a fixed, inline array of owned mbufs — the unit of RX, TX and
//! ring transfers. No heap: `Burst<32>` is 32 pointers and a length.
//!
//! Mbufs enter at the back (`push`, `rx_burst`, `alloc_bulk`, ring dequeue)
//! and leave from the front (`tx_burst`, ring enqueue, `drain`) or the back
//! (`pop`). What a PMD or ring refuses stays in the burst, still owned.
//! Whatever is left when the burst is cleared or dropped is freed with one
//! `rte_pktmbuf_free_bulk`.

use std::fmt;
use std::iter::FusedIterator;
use std::mem::MaybeUninit;
use std::ptr;
use std::slice;

use dpdk_sys as sys;

use crate::mbuf::Mbuf;

/// Up to `N` owned mbufs, stored inline. See the module docs.
pub struct Burst<const N: usize> {
    /// Slots `0..len` hold owned mbufs; the rest are uninitialised.
    len: usize,
    slots: [MaybeUninit<Mbuf>; N],
}

impl<const N: usize> Burst<N> {
    const VALID_N: () = assert!(N > 0 && N <= u16::MAX as usize, "Burst size must be 1..=65535");

    /// An empty burst.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID_N;
        Burst { len: 0, slots: [const { MaybeUninit::uninit() }; N] }
    }

    /// `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Number of mbufs held.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True when no mbuf is held.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `N` mbufs are held.
    pub const fn is_full(&self) -> bool {
        self.len == N
    }

    /// Free slots left.
    pub const fn free_space(&self) -> usize {
        N - self.len
    }

    /// Add an mbuf at the back; hands it back if the burst is full.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.slots[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Remove the last mbuf.
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` (the old last) was initialised; we lowered the
        // length first, so it is read out exactly once.
        Some(unsafe { self.slots[self.len].assume_init_read() })
    }

    /// The held mbufs, in order.
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots 0..len are initialised, and MaybeUninit<Mbuf> has
        // Mbuf's layout.
        unsafe { slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The held mbufs, in order, mutable (reorder or edit them in place).
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as `as_slice`, exclusive through `&mut self`.
        unsafe { slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Iterate over the held mbufs.
    pub fn iter(&self) -> slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterate mutably over the held mbufs.
    pub fn iter_mut(&mut self) -> slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Take every mbuf out, in order, leaving the burst empty. Mbufs the
    /// iterator did not yield are freed in bulk when it is dropped.
    pub fn drain(&mut self) -> Drain<'_, N> {
        let end = self.len;
        // Leak amplification: if the Drain is forgotten, the rest leaks
        // instead of being freed twice.
        self.len = 0;
        Drain { burst: self, pos: 0, end }
    }

    /// Free every held mbuf with one `rte_pktmbuf_free_bulk`.
    pub fn clear(&mut self) {
        let n = self.len;
        if n == 0 {
            return;
        }
        self.len = 0;
        // SAFETY: slots 0..n hold owned mbufs, laid out as `rte_mbuf *`;
        // the length is already 0, so they are not used again.
        unsafe { sys::shim_rte_pktmbuf_free_bulk(self.raw_ptr(), n as u32) };
    }

    /// Pointer to slot 0 as DPDK's `struct rte_mbuf **`.
    pub(crate) fn raw_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        self.slots.as_mut_ptr().cast::<*mut sys::rte_mbuf>()
    }

    /// Pointer to the first free slot and the number of free slots, for
    /// DPDK calls that fill mbufs in (RX, alloc_bulk, ring dequeue).
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        let len = self.len;
        // SAFETY: len <= N, so the offset is in bounds (one past the end at
        // most).
        (unsafe { self.raw_ptr().add(len) }, N - len)
    }

    /// Count `n` more slots after the current length as held.
    ///
    /// # Safety
    /// The `n` slots after `len` (with `n <= free_space()`) must just have
    /// been filled with valid mbufs whose ownership passes to the burst.
    pub(crate) unsafe fn commit_spare(&mut self, n: usize) {
        debug_assert!(n <= N - self.len);
        self.len += n;
    }

    /// Forget the first `n` mbufs (their ownership has passed elsewhere,
    /// e.g. to a PMD on TX) and move the rest to the front.
    ///
    /// # Safety
    /// `n <= len()`, and the first `n` mbufs must no longer be ours.
    pub(crate) unsafe fn forget_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let rest = self.len - n;
        if n > 0 && rest > 0 {
            let base = self.slots.as_mut_ptr();
            // SAFETY: both ranges lie within 0..len <= N; `copy` handles the
            // overlap. Moving the pointer values moves ownership.
            unsafe { ptr::copy(base.add(n), base, rest) };
        }
        self.len = rest;
    }
}

impl<const N: usize> Default for Burst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for Burst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> fmt::Debug for Burst<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Burst").field("len", &self.len).field("capacity", &N).finish()
    }
}

impl<'a, const N: usize> IntoIterator for &'a Burst<N> {
    type Item = &'a Mbuf;
    type IntoIter = slice::Iter<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, const N: usize> IntoIterator for &'a mut Burst<N> {
    type Item = &'a mut Mbuf;
    type IntoIter = slice::IterMut<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

/// Iterator from [`Burst::drain`]: yields owned mbufs in order.
pub struct Drain<'a, const N: usize> {
    burst: &'a mut Burst<N>,
    /// Slots pos..end still hold owned, not yet yielded mbufs.
    pos: usize,
    end: usize,
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    fn next(&mut self) -> Option<Mbuf> {
        if self.pos == self.end {
            return None;
        }
        let i = self.pos;
        self.pos += 1;
        // SAFETY: slot i is in pos..end, initialised and not yet yielded;
        // advancing `pos` first means it is read exactly once.
        Some(unsafe { self.burst.slots[i].assume_init_read() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.pos;
        (n, Some(n))
    }
}

impl<const N: usize> ExactSizeIterator for Drain<'_, N> {}
impl<const N: usize> FusedIterator for Drain<'_, N> {}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        let n = self.end - self.pos;
        if n > 0 {
            // SAFETY: slots pos..end hold owned mbufs not yielded; the burst
            // length is already 0 so nobody else frees them.
            unsafe { sys::shim_rte_pktmbuf_free_bulk(self.burst.raw_ptr().add(self.pos), n as u32) };
        }
    }
}

impl<const N: usize> fmt::Debug for Drain<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain").field("remaining", &(self.end - self.pos)).finish()
    }
}

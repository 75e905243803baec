//! Large tables on transparent huge pages.
//!
//! The session slab and the hash indexes are hundreds of megabytes at millions of
//! sessions and are read at random: on 4 KiB pages nearly every lookup also misses the
//! TLB. [`filled`] allocates such a table, asks the kernel for 2 MiB pages for it
//! (`madvise(MADV_HUGEPAGE)`, which Debian's default THP mode `madvise` honours) *before*
//! the first write faults the memory in, then fills it. Where the kernel says no, the
//! table simply stays on small pages.

/// Tables smaller than this stay as they are (one huge page).
const HUGE: usize = 2 << 20;

/// A boxed slice of `n` copies of `value`, on huge pages where the kernel allows.
pub fn filled<T: Copy>(n: usize, value: T) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes >= HUGE {
        advise_huge(v.as_mut_ptr().cast::<u8>(), bytes);
    }
    v.resize(n, value);
    v.into_boxed_slice()
}

#[cfg(target_os = "linux")]
fn advise_huge(ptr: *mut u8, len: usize) {
    // madvise wants a page-aligned start: round in to the first whole page.
    let page = 4096;
    let start = (ptr as usize).next_multiple_of(page);
    let end = ptr as usize + len;
    if end <= start {
        return;
    }
    // SAFETY: [start, end) lies inside the allocation `ptr..ptr+len` that the caller owns
    // and has not handed out; MADV_HUGEPAGE only changes how the kernel backs those pages
    // (their contents are unaffected) and fails harmlessly where THP is unavailable.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_ptr: *mut u8, _len: usize) {}

#[cfg(test)]
mod tests {
    #[test]
    fn filled_tables_hold_the_value_small_and_large() {
        let small = super::filled(10, 7u32);
        assert_eq!(&*small, &[7u32; 10]);
        let large = super::filled(3 << 20, 0xabu8);
        assert_eq!(large.len(), 3 << 20);
        assert!(large.iter().all(|&b| b == 0xab));
    }
}

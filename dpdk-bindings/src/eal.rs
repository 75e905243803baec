//! The Environment Abstraction Layer: process-wide initialisation, lcores,
//! and launching closures on worker lcores.
//!
//! EAL initialises **once per process** (a second `rte_eal_init`, even after
//! `rte_eal_cleanup`, fails with `EALREADY`), so [`Eal`] is a unique handle.
//! It is neither `Send` nor `Sync`: it lives on the thread that called
//! [`Eal::init`], which the EAL makes the *main lcore*, and the main-lcore-only
//! calls (launch, wait, cleanup) are methods on it.
//!
//! Objects that live in DPDK memory ([`Mempool`](crate::Mempool),
//! [`Port`](crate::Port), [`MbufRing`](crate::MbufRing)) register here. When
//! the `Eal` is dropped it waits for every worker lcore and calls
//! `rte_eal_cleanup` — but only if no such object is still alive and no pool
//! had to be leaked (a pool dropped while mbufs were out). Otherwise it skips
//! the cleanup so that whatever is left stays valid until the process exits.

use std::ffi::{c_int, c_void, CString};
use std::marker::PhantomData;
use std::os::raw::c_char;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dpdk_sys as sys;

use crate::error::{Error, Result};

/// Value returned by [`Eal::wait`] when the launched closure panicked.
pub const LAUNCH_PANICKED: i32 = i32::MIN;

/// "Any NUMA socket", for `socket` arguments.
pub const SOCKET_ID_ANY: i32 = sys::SOCKET_ID_ANY;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `rte_eal_init` never ran, or failed in a way that allows a retry.
    Uninit,
    /// Initialised; the `Eal` handle is alive.
    Running,
    /// The `Eal` handle was dropped (cleaned up, or cleanup skipped).
    Finished,
}

/// Process-wide bookkeeping of the EAL and the DPDK objects that depend on it.
#[derive(Debug)]
pub(crate) struct Registry {
    state: State,
    /// Mempools, claimed ports and rings currently alive.
    live: usize,
    /// A mempool was dropped with mbufs still out, so it was not freed and
    /// DPDK memory must stay mapped.
    leaked: bool,
    /// Port ids with a live `Port` handle (or queue handle).
    claimed_ports: Vec<u16>,
}

static REGISTRY: Mutex<Registry> =
    Mutex::new(Registry { state: State::Uninit, live: 0, leaked: false, claimed_ports: Vec::new() });

fn registry() -> MutexGuard<'static, Registry> {
    // The registry holds plain data that is consistent at every await-free
    // step, so a panic elsewhere while holding the lock does not corrupt it.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Run `create` with the EAL guaranteed running; on success count one more
/// live object. Creation and [`Eal`]'s drop are serialised by the lock.
pub(crate) fn register<T>(create: impl FnOnce() -> Result<T>) -> Result<T> {
    let mut reg = registry();
    if reg.state != State::Running {
        return Err(Error::NotInitialized);
    }
    let value = create()?;
    reg.live += 1;
    Ok(value)
}

/// Claim a port id for one `Port` handle, counting it as a live object.
pub(crate) fn claim_port(id: u16) -> Result<()> {
    let mut reg = registry();
    if reg.state != State::Running {
        return Err(Error::NotInitialized);
    }
    if reg.claimed_ports.contains(&id) {
        return Err(Error::Busy("another Port handle owns this port"));
    }
    reg.claimed_ports.push(id);
    reg.live += 1;
    Ok(())
}

/// Release a port claimed by [`claim_port`].
pub(crate) fn release_port(id: u16) {
    let mut reg = registry();
    reg.claimed_ports.retain(|&p| p != id);
    reg.live -= 1;
}

/// Run `destroy` (which says whether it had to leak) and count one object
/// less.
pub(crate) fn unregister(destroy: impl FnOnce() -> bool) {
    let mut reg = registry();
    let leaked = destroy();
    reg.leaked |= leaked;
    reg.live -= 1;
}

/// The initialised EAL. Unique per process; see the module docs.
#[derive(Debug)]
pub struct Eal {
    /// Not `Send`/`Sync`: main-lcore-only calls hang off this handle.
    _main_lcore_only: PhantomData<*mut ()>,
}

type LaunchFn = Box<dyn FnOnce() -> i32 + Send + 'static>;

impl Eal {
    /// Initialise the EAL with command-line style arguments; `args[0]` is
    /// the program name (e.g. `["masqd", "-l", "0,1", "--vdev", "net_null0"]`).
    ///
    /// The calling thread becomes the main lcore (and is pinned to its CPU).
    /// Returns [`Error::AlreadyInitialized`] if the EAL was initialised
    /// before in this process.
    pub fn init(args: &[impl AsRef<str>]) -> Result<Eal> {
        let mut reg = registry();
        if reg.state != State::Uninit {
            return Err(Error::AlreadyInitialized);
        }
        if args.is_empty() {
            return Err(Error::InvalidArgument("EAL arguments need a program name"));
        }
        let mut owned = Vec::with_capacity(args.len());
        for arg in args {
            let arg =
                CString::new(arg.as_ref()).map_err(|_| Error::InvalidArgument("EAL argument contains a NUL byte"))?;
            owned.push(arg);
        }
        let argc = c_int::try_from(owned.len()).map_err(|_| Error::InvalidArgument("too many EAL arguments"))?;
        // The EAL may keep pointers into argv and permutes the array
        // (getopt), so argv and its strings are leaked: a few bytes, once.
        let argv: &'static mut [*mut c_char] =
            Vec::leak(owned.into_iter().map(CString::into_raw).chain(std::iter::once(std::ptr::null_mut())).collect());
        // SAFETY: argv holds argc valid NUL-terminated strings followed by a
        // NULL, all leaked so they outlive the EAL; the registry lock makes
        // this the only rte_eal_init call in flight in this process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let errno = crate::error::rte_errno();
            if errno == libc::EALREADY {
                reg.state = State::Finished;
                return Err(Error::AlreadyInitialized);
            }
            return Err(Error::rte("rte_eal_init", errno));
        }
        reg.state = State::Running;
        Ok(Eal { _main_lcore_only: PhantomData })
    }

    /// Id of the main lcore (the thread that called [`Eal::init`]).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: plain getter of EAL configuration; EAL is initialised.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// Number of enabled lcores, main included.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: plain getter of EAL configuration; EAL is initialised.
        unsafe { sys::rte_lcore_count() }
    }

    /// Enabled worker lcores (every enabled lcore except the main one), in
    /// increasing order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = u32::MAX; // rte_get_next_lcore starts at i + 1 == 0.
        loop {
            // SAFETY: plain iteration over EAL configuration; any `i` is
            // accepted (the C code adds one and bounds-checks).
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
            if i >= sys::RTE_MAX_LCORE {
                return out;
            }
            out.push(i);
        }
    }

    /// NUMA socket of an lcore (`SOCKET_ID_ANY` if unknown).
    pub fn lcore_socket_id(&self, lcore: u32) -> i32 {
        if lcore >= sys::RTE_MAX_LCORE {
            return SOCKET_ID_ANY;
        }
        // SAFETY: bounds-checked index into EAL's lcore table.
        unsafe { sys::rte_lcore_to_socket_id(lcore) as i32 }
    }

    fn is_worker(&self, lcore: u32) -> bool {
        // SAFETY: rte_lcore_is_enabled bounds-checks its argument.
        lcore != self.main_lcore() && unsafe { sys::rte_lcore_is_enabled(lcore) } != 0
    }

    /// Run `f` on worker lcore `lcore` (`rte_eal_remote_launch`). Its return
    /// value is collected by [`Eal::wait`]; a panic inside `f` is caught and
    /// reported as [`LAUNCH_PANICKED`].
    ///
    /// Fails with `EBUSY` if the lcore is still running something, and with
    /// [`Error::InvalidArgument`] if `lcore` is not an enabled worker.
    ///
    /// With `panic = "abort"` (masq's release profile) a panic aborts the
    /// process instead; the catch only matters for unwinding builds (tests).
    pub fn launch<F>(&self, lcore: u32, f: F) -> Result<()>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        if !self.is_worker(lcore) {
            return Err(Error::InvalidArgument("not an enabled worker lcore"));
        }
        // Double box: the outer Box is a thin pointer that fits in `void *`.
        let boxed: Box<LaunchFn> = Box::new(Box::new(f));
        let arg = Box::into_raw(boxed).cast::<c_void>();
        // SAFETY: we are on the main lcore (`Eal` is !Send and created there)
        // and `lcore` is an enabled worker. `trampoline` takes ownership of
        // `arg` exactly once when the launch succeeds; F is Send + 'static
        // so it may run on that other thread for as long as it likes.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if ret < 0 {
            // SAFETY: the launch failed before the worker saw `arg`, so we
            // still own the box created above; reclaim and drop it.
            drop(unsafe { Box::from_raw(arg.cast::<LaunchFn>()) });
            return Err(Error::rte("rte_eal_remote_launch", ret));
        }
        Ok(())
    }

    /// Wait for the closure launched on `lcore` to finish and return its
    /// value (0 if nothing was launched there or `lcore` is not a worker).
    pub fn wait(&self, lcore: u32) -> i32 {
        if !self.is_worker(lcore) {
            return 0;
        }
        // SAFETY: main lcore only (see `launch`); `lcore` is a valid worker.
        unsafe { sys::rte_eal_wait_lcore(lcore) }
    }

    /// Wait for every worker lcore to finish.
    pub fn wait_all(&self) {
        // SAFETY: main lcore only (see `launch`).
        unsafe { sys::rte_eal_mp_wait_lcore() }
    }
}

unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<LaunchFn>` leaked by `Eal::launch`, handed
    // to exactly one trampoline call by rte_eal_remote_launch.
    let f = unsafe { Box::from_raw(arg.cast::<LaunchFn>()) };
    // Unwinding across the C frame would be undefined behaviour.
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(LAUNCH_PANICKED)
}

impl Drop for Eal {
    fn drop(&mut self) {
        self.wait_all();
        let mut reg = registry();
        reg.state = State::Finished;
        if reg.live == 0 && !reg.leaked {
            // SAFETY: on the main lcore, workers idle, and no mempool, port
            // or ring made through this crate is alive, so nothing of ours
            // points into the memory the cleanup unmaps.
            unsafe { sys::rte_eal_cleanup() };
        } else {
            eprintln!(
                "dpdk: skipping rte_eal_cleanup: {} DPDK object(s) still alive{}",
                reg.live,
                if reg.leaked { ", a mempool was leaked" } else { "" }
            );
        }
    }
}

/// The calling thread's lcore id, or `None` for a thread the EAL does not
/// know (`LCORE_ID_ANY`). Callable anywhere.
pub fn current_lcore_id() -> Option<u32> {
    // SAFETY: reads a thread-local through the C shim.
    let id = unsafe { sys::shim_rte_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
}

/// The calling thread's NUMA socket (`SOCKET_ID_ANY` if unknown).
pub fn socket_id() -> i32 {
    // SAFETY: reads a thread-local; callable on any thread.
    unsafe { sys::rte_socket_id() as i32 }
}

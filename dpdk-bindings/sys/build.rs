//! Build script for `dpdk-sys`.
//!
//! 1. Asks `pkg-config` (the program, not the crate: the crate drops
//!    `-include rte_config.h` and `-march=...`) for libdpdk's cflags and libs.
//! 2. Runs bindgen over `wrapper.h` into `OUT_DIR/bindings.rs`.
//! 3. Compiles `src/shim.c` with exactly those cflags (so `-march` comes from
//!    DPDK's own build, never from us) plus `-DALLOW_EXPERIMENTAL_API`.
//! 4. Emits shared-library link flags for every `-l`/`-L` it gives.
//!
//! Any missing prerequisite ends the build with one line naming the Debian
//! package to install.

use std::env;
use std::panic;
use std::path::PathBuf;
use std::process::{self, Command};

/// The DPDK release these bindings are written against (one LTS, pinned).
const DPDK_SERIES: &str = "22.11";

const HINT_DPDK: &str = "apt-get install libdpdk-dev pkg-config";
const HINT_CLANG: &str = "apt-get install libclang-dev";

fn main() {
    let version = pkg_config(&["--modversion"]);
    let version = version.trim();
    if !version.starts_with(&format!("{DPDK_SERIES}."))
        && version != DPDK_SERIES
        && env::var_os("DPDK_SYS_ALLOW_ANY_VERSION").is_none()
    {
        fail(&format!(
            "dpdk-sys is written for DPDK {DPDK_SERIES} but pkg-config found libdpdk {version}; \
             install Debian's 22.11 ({HINT_DPDK}) or set DPDK_SYS_ALLOW_ANY_VERSION=1 to try anyway"
        ));
    }
    let cflags = split_flags(&pkg_config(&["--cflags"]));
    let libs = split_flags(&pkg_config(&["--libs"]));

    // Bindings first: a missing libclang should be the only thing reported.
    generate_bindings(&cflags);
    compile_shim(&cflags);
    emit_link_flags(&libs);
    // `rte_eth_from_rings` (ports over in-process rings, used by masq-bench) lives in the
    // net_ring PMD, which pkg-config's `--libs` does not list. Linked as-needed: only
    // binaries that call it record the dependency; the EAL's own dlopen of the PMD
    // directory then finds the library already loaded.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");

    // Printed last: a failed run is rerun anyway, and this keeps cargo's
    // failure report down to our one line.
    for var in [
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
        "LIBCLANG_PATH",
        "DPDK_SYS_ALLOW_ANY_VERSION",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for file in ["build.rs", "wrapper.h", "src/shim.h", "src/shim.c"] {
        println!("cargo:rerun-if-changed={file}");
    }
}

/// Print one clear message (as a cargo warning and on stderr) and stop.
fn fail(msg: &str) -> ! {
    println!("cargo:warning=dpdk-sys: {msg}");
    eprintln!("dpdk-sys: {msg}");
    process::exit(1);
}

/// Run `pkg-config <args> libdpdk` and return its stdout.
fn pkg_config(args: &[&str]) -> String {
    let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let output = match Command::new(&program).args(args).arg("libdpdk").output() {
        Ok(output) => output,
        Err(e) => fail(&format!("cannot run `{program}` ({e}); install it and DPDK's headers: {HINT_DPDK}")),
    };
    if !output.status.success() {
        fail(&format!(
            "pkg-config cannot find libdpdk (set PKG_CONFIG_PATH for a custom build); \
             install it: {HINT_DPDK}"
        ));
    }
    match String::from_utf8(output.stdout) {
        Ok(s) => s,
        Err(_) => fail("pkg-config printed non-UTF-8 output for libdpdk"),
    }
}

/// Split pkg-config output into flags, joining `-include FILE` into one item
/// list entry pair so callers see it as a unit.
fn split_flags(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut words = s.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-include" || w == "-isystem" {
            if let Some(arg) = words.next() {
                out.push(w.to_owned());
                out.push(arg.to_owned());
            }
        } else {
            out.push(w.to_owned());
        }
    }
    out
}

/// Shared linking: every `-L` becomes a search path, every `-l` a dylib.
/// rustc links with `--as-needed`, so only the libraries we really call
/// (eal, mbuf, mempool, ethdev, ring; net_ring for
/// masq-bench) end up as NEEDED entries; the PMDs
/// are dlopened by the EAL at run time from its driver directory.
fn emit_link_flags(libs: &[String]) {
    for flag in libs {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
        // `-Wl,--as-needed` and other linker flags: rustc already links
        // as-needed, and a library's link-args would not reach the final
        // binary anyway.
    }
}

fn compile_shim(cflags: &[String]) {
    let mut build = cc::Build::new();
    build
        .file("src/shim.c")
        .include("src")
        .define("ALLOW_EXPERIMENTAL_API", None)
        // The shim is fast-path code: optimise it whatever the profile.
        .opt_level(3)
        .warnings(true)
        .extra_warnings(false);
    let mut it = cflags.iter();
    while let Some(flag) = it.next() {
        if flag == "-include" || flag == "-isystem" {
            if let Some(arg) = it.next() {
                build.flag(flag).flag(arg);
            }
        } else if let Some(dir) = flag.strip_prefix("-I") {
            build.include(dir);
        } else {
            // Includes -march=... exactly as DPDK was built (rte_memcpy.h
            // needs SSSE3 at least; we never pick the value ourselves).
            build.flag(flag);
        }
    }
    if let Err(e) = build.try_compile("masq_dpdk_shim") {
        fail(&format!("compiling src/shim.c against DPDK failed: {e}; check the DPDK headers ({HINT_DPDK})"));
    }
}

#[derive(Debug)]
struct Callbacks;

impl bindgen::callbacks::ParseCallbacks for Callbacks {
    /// Flag macros are 64-bit masks in DPDK (`ol_flags`, offload capabilities,
    /// `rss_hf`); bindgen types them by value, which makes the low ones u32.
    fn int_macro(&self, name: &str, _value: i64) -> Option<bindgen::callbacks::IntKind> {
        const U64_PREFIXES: &[&str] = &["RTE_MBUF_F_", "RTE_ETH_RX_OFFLOAD_", "RTE_ETH_TX_OFFLOAD_", "RTE_ETH_RSS_"];
        U64_PREFIXES.iter().any(|p| name.starts_with(p)).then_some(bindgen::callbacks::IntKind::U64)
    }
}

fn generate_bindings(cflags: &[String]) {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    let builder = bindgen::Builder::default()
        .header(manifest_dir.join("wrapper.h").to_string_lossy())
        .clang_args(cflags)
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .clang_arg(format!("-I{}", manifest_dir.display()))
        .allowlist_function("rte_.*|shim_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|SOCKET_ID_ANY|LCORE_ID_ANY|E_RTE_.*|RING_F_.*")
        // Thread-locals (`rte_errno`, `_lcore_id`) come out as plain statics:
        // they link, then segfault when read. The shim reads them in C.
        .blocklist_item("per_lcore_.*")
        // packed(2) structs holding an align(2) rte_ether_addr: E0588.
        .opaque_type("rte_arp_hdr|rte_arp_ipv4")
        // Same E0588 in rte_flow's L2TPv2 header (reached via rte_ethdev.h).
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        // Holds a bitfield struct without Debug (E0277).
        .no_debug("rte_gtp_psc_.*")
        .newtype_enum("rte_.*")
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(false)
        // DPDK's doxygen text would become (failing) doctests.
        .generate_comments(false)
        // RTE_BIT64()-style constants (RTE_ETH_RSS_*, offload flags).
        .clang_macro_fallback()
        .parse_callbacks(Box::new(Callbacks));

    // bindgen panics when libclang cannot be loaded; turn that into one line.
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(panic::AssertUnwindSafe(|| builder.generate()));
    panic::set_hook(default_hook);

    let bindings = match result {
        Ok(Ok(bindings)) => bindings,
        Ok(Err(e)) => fail(&format!("bindgen could not parse DPDK's headers: {e}; check {HINT_DPDK} and {HINT_CLANG}")),
        Err(payload) => {
            let why = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("bindgen panicked");
            if why.contains("libclang") {
                fail(&format!("libclang not found (needed by bindgen): {HINT_CLANG} (or set LIBCLANG_PATH)"))
            }
            fail(&format!("bindgen panicked ({why}); is libclang usable? {HINT_CLANG}"))
        }
    };
    if let Err(e) = bindings.write_to_file(out_dir.join("bindings.rs")) {
        fail(&format!("cannot write bindings to OUT_DIR: {e}"));
    }
}

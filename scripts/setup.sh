#!/usr/bin/env bash
# masq setup: make a Debian 12 machine ready to build, test and demo masq.
#
#   - installs the Debian packages below (apt-get update only if something is missing);
#   - checks the Rust toolchain: cargo >= 1.82 is required and is NOT installed here
#     (Debian 12's rustc 1.63 is too old; install rustup's stable toolchain first);
#     adds clippy and rustfmt through rustup when they are missing;
#   - reserves 2 MB hugepages (MASQ_HUGEPAGES, default 512 = 1 GiB; 0 leaves them alone)
#     and mounts hugetlbfs on /dev/hugepages. Failure here is tolerated: everything also
#     runs with --no-huge.
#
# Idempotent and non-interactive; run as root. Loads no kernel modules, binds no NIC.
# Usage: scripts/setup.sh        (environment: MASQ_HUGEPAGES=N)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    # DPDK 22.11 LTS: EAL and libraries, headers and libdpdk.pc (dpdk-sys finds it with pkg-config)
    dpdk dpdk-dev libdpdk-dev
    # the drivers masq loads at run time (dpkg-shlibdeps cannot see dlopen'ed PMDs):
    # af_packet (demo, end-to-end tests), pcap (capture tests), null/ring (throughput),
    # tap, the ring mempool handler (no mempool without it) and the vdev/PCI buses
    librte-net-af-packet23 librte-net-pcap23 librte-net-null23 librte-net-ring23
    librte-net-tap23 librte-mempool-ring23 librte-bus-vdev23 librte-bus-pci23
    # bindgen needs libclang; clang for the C shim and sanitizer builds
    libclang-dev clang
    # C toolchain and pkg-config for dpdk-sys' build script; libpcap for net_pcap
    build-essential pkg-config libpcap-dev
    # the network-namespace testbed: ip, ping, sysctl/pgrep, ethtool (offloads off), captures
    iproute2 iputils-ping procps ethtool tcpdump
    # real programs that talk through masqd in end-to-end tests (HTTP, DNS, TCP/UDP peers)
    curl bind9-dnsutils netcat-openbsd socat python3
    # protocol-helper end-to-end tests: an FTP server (pyftpdlib; curl is the client), the
    # TFTP client (the server is a small script of the test), scapy for GRE/ESP packets
    python3-pyftpdlib tftp-hpa python3-scapy
    # the demo's resolver in the "Internet" namespace (dnsmasq without its system service)
    dnsmasq-base
    # perf/compare-linux.sh: Linux's own masquerade (nft) and the traffic generator (trafgen)
    nftables netsniff-ng
    # NAT event logging tests: a real IPFIX collector (nfcapd) and its reader (nfdump)
    nfdump
    # test.sh lints the scripts
    shellcheck
    # the metrics tests check the exporter's output with promtool (Debian's prometheus;
    # its service is not started by the package here)
    prometheus
    # scripts/package-check.sh: man -w for the installed man pages, systemd-analyze verify
    man-db systemd
)

did=()

install_packages() {
    masq_section "Debian packages"
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != "installed" ]; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        masq_log "all ${#PACKAGES[@]} packages already installed"
        did+=("packages: all present")
        return
    fi
    masq_log "missing: ${missing[*]}"
    masq_is_root || masq_die "installing packages needs root (run: sudo $0)"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    did+=("packages: installed ${missing[*]}")
}

check_toolchain() {
    masq_section "Rust toolchain"
    masq_cargo_path
    local v
    v="$(masq_cargo_version)"
    if [ -z "$v" ]; then
        masq_die "cargo not found. masq needs Rust >= $MASQ_MIN_CARGO: install rustup's stable toolchain \
(https://rustup.rs), then re-run. Debian 12's own cargo/rustc (1.63) is too old."
    fi
    if ! masq_version_ge "$v" "$MASQ_MIN_CARGO"; then
        masq_die "cargo $v is too old: masq needs >= $MASQ_MIN_CARGO (rustup update stable)"
    fi
    masq_log "cargo $v (>= $MASQ_MIN_CARGO)"
    local need=()
    cargo clippy --version >/dev/null 2>&1 || need+=(clippy)
    cargo fmt --version >/dev/null 2>&1 || need+=(rustfmt)
    if [ ${#need[@]} -gt 0 ]; then
        command -v rustup >/dev/null 2>&1 ||
            masq_die "cargo ${need[*]} missing and no rustup to add them: install the ${need[*]} component(s)"
        rustup component add "${need[@]}"
        did+=("toolchain: added ${need[*]}")
    else
        did+=("toolchain: cargo $v with clippy and rustfmt")
    fi
}

setup_hugepages() {
    masq_section "Hugepages (2 MB)"
    local want="${MASQ_HUGEPAGES:-512}" have
    if [ "$want" = 0 ]; then
        masq_log "MASQ_HUGEPAGES=0: leaving hugepages alone"
    elif ! masq_is_root; then
        masq_log "not root: cannot reserve hugepages"
    else
        have="$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)"
        if [ "$have" -ge "$want" ]; then
            masq_log "$have pages already reserved (want $want)"
        elif echo "$want" 2>/dev/null >/proc/sys/vm/nr_hugepages; then
            have="$(cat /proc/sys/vm/nr_hugepages)"
            masq_log "reserved $have of $want pages"
        else
            masq_log "could not write /proc/sys/vm/nr_hugepages (read-only or not permitted)"
        fi
        if ! awk '$2 == "/dev/hugepages" && $3 == "hugetlbfs" { f = 1 } END { exit !f }' /proc/mounts; then
            if mkdir -p /dev/hugepages && mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages 2>/dev/null; then
                masq_log "mounted hugetlbfs on /dev/hugepages"
            else
                masq_log "could not mount hugetlbfs on /dev/hugepages"
            fi
        else
            masq_log "hugetlbfs already mounted on /dev/hugepages"
        fi
    fi
    local free
    free="$(masq_hugepages_free_mb)"
    if [ "$free" -ge "$MASQ_TEST_MEM_MB" ]; then
        masq_log "hugepages usable: $free MB free"
        did+=("hugepages: $free MB free (tests run both with and without hugepages)")
    else
        masq_log "hugepages NOT usable ($free MB free, tests need $MASQ_TEST_MEM_MB): everything runs with --no-huge"
        did+=("hugepages: not usable ($free MB free); --no-huge only")
    fi
}

main() {
    [ -r /etc/debian_version ] || masq_warn "not Debian: package names assume Debian 12"
    install_packages
    check_toolchain
    setup_hugepages
    masq_section "setup done"
    local line
    for line in "${did[@]}"; do
        masq_log "  - $line"
    done
}

main "$@"

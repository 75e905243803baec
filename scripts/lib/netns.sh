# shellcheck shell=bash
# Network-namespace testbed helpers shared by demo.sh and perf/compare-linux.sh.
# Source it (after common.sh); don't run it. Needs root when the functions are called.

# Run a command in a network namespace: masq_in_ns NS CMD...
masq_in_ns() {
    local ns="$1"
    shift
    ip netns exec "$ns" "$@"
}

# masq_offloads_off [NS] IFNAME: af_packet sees frames as the kernel sent them, so no
# partial checksums (tx), no GSO/TSO super-frames, no GRO merging on the way in.
masq_offloads_off() {
    local cmd=(ethtool -K "${@: -1}" tx off rx off gso off tso off gro off)
    if [ $# -eq 2 ]; then cmd=(ip netns exec "$1" "${cmd[@]}"); fi
    "${cmd[@]}" >/dev/null 2>&1 || masq_warn "could not turn all offloads off on ${*: -1}"
}

# masq_quiet_port [NS] IFNAME: an interface that belongs to masqd (af_packet) carries no
# kernel address; keep the kernel from answering ARP, forwarding or talking IPv6 on it
# (af_packet still sees every frame).
masq_quiet_port() {
    local ifc="${*: -1}" cmd=(sysctl -qw)
    if [ $# -eq 2 ]; then cmd=(ip netns exec "$1" sysctl -qw); fi
    "${cmd[@]}" "net.ipv6.conf.$ifc.disable_ipv6=1" \
        "net.ipv4.conf.$ifc.forwarding=0" \
        "net.ipv4.conf.$ifc.rp_filter=1" \
        "net.ipv4.conf.$ifc.arp_ignore=8" >/dev/null
}

# masq_new_ns NS: a namespace with loopback up and IPv6 off (no router solicitations,
# no DAD traffic on the test links).
masq_new_ns() {
    ip netns add "$1"
    masq_in_ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
    masq_in_ns "$1" ip link set lo up
}

# masq_stop_pid PID TIMEOUT_S: SIGTERM, wait up to TIMEOUT_S seconds, then SIGKILL.
# Prints nothing; returns the process's exit status (when it is our child).
masq_stop_pid() {
    local pid="$1" deadline=$((SECONDS + $2)) rc=0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

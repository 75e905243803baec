#!/usr/bin/env bash
# masq + pktgen-dpdk on one machine, over a virtual link (no NIC, no hugepages):
#
#   pktgen (client side, core 0)                         masqd (server side)
#   port 0  net_virtio_user0 <== lan.sock ==> net_vhost0  "lan"  inside  100.64.0.1/10
#           02:00:00:00:21:02                            02:00:00:00:21:01
#   port 1  net_virtio_user1 <== wan.sock ==> net_vhost1  "wan"  outside 203.0.113.1/24
#           02:00:00:00:22:01 (203.0.113.254)            02:00:00:00:22:02
#
# masqd owns the vhost-user sockets (server); pktgen connects to them (virtio_user is the
# client). Both run on --no-huge memory. masqd's worker has core 1 to itself; pktgen's
# main and worker lcores both run on core 0 (with masqd's main thread, which sleeps):
# pktgen's busy threads must never share a core with masqd's worker.
#
# The script starts masqd (rules: MASQUERADE out of wan; for the storm profile SNAT to a
# pool of 32 addresses), waits until it is ready, runs pktgen with the profile loaded by
# measure.lua (warm-up, window, one JSON result line), stops both and prints masqd's
# counter report. --interactive gives you pktgen's console with the profile loaded
# instead (type `start 0`, `page range`, `quit`). Everything it creates lives in
# /run/masq-pktgen and is removed at the end, also on failure or Ctrl-C.
#
# pktgen-dpdk is NOT part of masq: build it yourself (docs/benchmarking.md says how) and
# point PKTGEN at the binary.
#
# Usage: scripts/pktgen/run-vhost.sh [--profile range|storm|imix|FILE.pkt] [--pcap FILE]
#                                    [--seconds S] [--warmup S] [--interactive] [--keep-log]
#   --profile P    a .pkt file in scripts/pktgen (by name) or any path; default range
#   --pcap FILE    replay FILE on port 0 in pcap mode instead (gen-pcap.py writes some)
#   --seconds S    measuring window, default 10; --warmup S before it, default 2
#   --refill 0|1   start port 0 again each time it has sent its count, so range mode keeps
#                  making new flows (pktgen builds range packets once per mbuf at start);
#                  1 for the storm profile, 0 for the others
#   --forward      no NAT rules: masqd only routes (the forwarding baseline; the ratio of a
#                  NAT run to this one is masq-bench's nat_forward_ratio, with real I/O)
#   --interactive  pktgen's console with the profile loaded, no measurement
#   --json         print only the result line on stdout (progress goes to stderr)
# Environment: PKTGEN=path to the pktgen binary (required), MASQD=path (default
#   <target>/release/masqd; this script does not build it).
# Needs root and two cores.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"
# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"

STATE_DIR=/run/masq-pktgen
MASQD_PREFIX=masq-pg-masqd
PKTGEN_PREFIX=masq-pg-gen
PKTGEN_CORE=0
WORKER_CORE=1
READY_TIMEOUT=30
STOP_TIMEOUT=15
# pktgen makes several mbuf pools per port and queue (rx, tx, range, sequence, pcap, rate)
PKTGEN_MEM_MB=3072

PROFILE=range
PCAP=
SECONDS_WINDOW=10
WARMUP=2
REFILL=
INTERACTIVE=0
FORWARD=0
JSON=0
KEEP_LOG=0

while [ $# -gt 0 ]; do
    case "$1" in
    --profile | --pcap | --seconds | --warmup | --refill)
        [ $# -ge 2 ] || masq_die "$1 needs a value (try --help)"
        case "$1" in
        --profile) PROFILE="$2" ;;
        --pcap) PCAP="$2" ;;
        --seconds) SECONDS_WINDOW="$2" ;;
        --warmup) WARMUP="$2" ;;
        --refill) REFILL="$2" ;;
        esac
        shift 2
        ;;
    --interactive) INTERACTIVE=1 && shift ;;
    --forward) FORWARD=1 && shift ;;
    --json) JSON=1 && shift ;;
    --keep-log) KEEP_LOG=1 && shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) masq_die "unknown argument: $1 (try --help)" ;;
    esac
done
[[ "$SECONDS_WINDOW" =~ ^[1-9][0-9]*$ ]] || masq_die "--seconds needs a positive integer"
[[ "$WARMUP" =~ ^[0-9]+$ ]] || masq_die "--warmup needs an integer"
if [ -z "$REFILL" ]; then
    if [ "$PROFILE" = storm ]; then REFILL=1; else REFILL=0; fi
fi
[[ "$REFILL" =~ ^[01]$ ]] || masq_die "--refill: 0 or 1"

say() {
    if [ "$JSON" = 1 ]; then printf '%s\n' "$*" >&2; else printf '%s\n' "$*"; fi
}

# The profile: a name in scripts/pktgen, or a path.
if [ -n "$PCAP" ]; then
    [ -r "$PCAP" ] || masq_die "no capture $PCAP (scripts/pktgen/gen-pcap.py writes them)"
    PCAP="$(cd "$(dirname "$PCAP")" && pwd)/$(basename "$PCAP")"
    PROFILE_FILE="$HERE/pcap.pkt"
    PROFILE=pcap
elif [ -r "$PROFILE" ]; then
    PROFILE_FILE="$(cd "$(dirname "$PROFILE")" && pwd)/$(basename "$PROFILE")"
else
    PROFILE_FILE="$HERE/$PROFILE.pkt"
    [ -r "$PROFILE_FILE" ] || masq_die "no profile $PROFILE (have: $(cd "$HERE" && echo *.pkt))"
fi

MASQD_PID=
PKTGEN_PID=

cleanup() {
    local pid
    for pid in "$PKTGEN_PID" "$MASQD_PID"; do
        [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -r "$STATE_DIR/masqd.pid" ]; then # a masqd left by a crashed earlier run
        pid="$(cat "$STATE_DIR/masqd.pid")"
        if [ -n "$pid" ] && grep -qs masqd "/proc/$pid/cmdline"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "/var/run/dpdk/$MASQD_PREFIX" "/var/run/dpdk/$PKTGEN_PREFIX"
    if [ "$KEEP_LOG" = 1 ]; then
        rm -f "$STATE_DIR"/*.sock "$STATE_DIR/masqd.pid"
    else
        rm -rf "$STATE_DIR"
    fi
}

on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    cleanup
    [ "$KEEP_LOG" = 0 ] || say "logs kept in $STATE_DIR"
    exit "$rc"
}

write_masqd_config() {
    local rules
    if [ "$FORWARD" = 1 ]; then
        rules="# --forward: no translation, masqd routes only"
    elif [ "$PROFILE" = storm ]; then
        # every packet a new subscriber/port pair: a pool of 32 addresses (2 M ports) keeps
        # the ports from running out before the 1 M-session table fills
        rules="-A POSTROUTING -o wan -s 100.64.0.0/10 -j SNAT --to-source 203.0.113.16-203.0.113.47"
    else
        rules="-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE"
    fi
    cat >"$STATE_DIR/masq.toml" <<EOF
# written by scripts/pktgen/run-vhost.sh
[dpdk]
args = ["--no-huge", "-m", "1024", "--file-prefix", "$MASQD_PREFIX"]

[[port]]
name = "lan"
role = "inside"
device = "net_vhost0,iface=$STATE_DIR/lan.sock,queues=1"
mac = "02:00:00:00:21:01"
address = "100.64.0.1/10"

[[port]]
name = "wan"
role = "outside"
device = "net_vhost1,iface=$STATE_DIR/wan.sock,queues=1"
mac = "02:00:00:00:22:02"
address = "203.0.113.1/24"
gateway = "203.0.113.254"

[workers]
cores = [$WORKER_CORE]

[[neighbor]]
port = "wan"
address = "203.0.113.254"
mac = "02:00:00:00:22:01"

[control]
socket = "$STATE_DIR/masqd.sock"
EOF
    cat >"$STATE_DIR/rules.v4" <<EOF
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
$rules
COMMIT
EOF
}

start_masqd() {
    : >"$STATE_DIR/masqd.log"
    "$MASQD" --config "$STATE_DIR/masq.toml" --rules "$STATE_DIR/rules.v4" \
        >>"$STATE_DIR/masqd.log" 2>&1 </dev/null &
    MASQD_PID=$!
    echo "$MASQD_PID" >"$STATE_DIR/masqd.pid"
    masq_wait_ready "$MASQD_PID" "$STATE_DIR/masqd.log" "$READY_TIMEOUT"
    say "$(grep -w ready "$STATE_DIR/masqd.log" | head -1)"
}

pktgen_args() {
    local vdev="queues=1,queue_size=1024"
    printf '%s\n' --lcores "0@$PKTGEN_CORE,1@$PKTGEN_CORE" --no-huge -m "$PKTGEN_MEM_MB" \
        --file-prefix "$PKTGEN_PREFIX" --no-pci \
        --vdev "net_virtio_user0,path=$STATE_DIR/lan.sock,mac=02:00:00:00:21:02,$vdev" \
        --vdev "net_virtio_user1,path=$STATE_DIR/wan.sock,mac=02:00:00:00:22:01,$vdev" \
        -- -P -m "1.[0-1]"
    [ -z "$PCAP" ] || printf '%s\n' -s "0:$PCAP"
}

run_pktgen() {
    local args=()
    mapfile -t args < <(pktgen_args)
    if [ "$INTERACTIVE" = 1 ]; then
        say "pktgen console: the profile $PROFILE_FILE is loaded; 'start 0', 'page range', 'quit'"
        "$PKTGEN" "${args[@]}" -f "$PROFILE_FILE"
        return
    fi
    local budget=$((WARMUP + SECONDS_WINDOW + 30))
    (MASQ_PKTGEN_PROFILE="$PROFILE_FILE" MASQ_PKTGEN_WARMUP="$WARMUP" \
            MASQ_PKTGEN_SECONDS="$SECONDS_WINDOW" MASQ_PKTGEN_RESULT="$STATE_DIR/result.json" \
            MASQ_PKTGEN_REFILL="$REFILL" \
            exec timeout -k 5 "$budget" "$PKTGEN" "${args[@]}" -f "$HERE/measure.lua") \
        >"$STATE_DIR/pktgen.log" 2>&1 </dev/null &
    PKTGEN_PID=$!
    local rc=0
    wait "$PKTGEN_PID" || rc=$?
    PKTGEN_PID=
    if [ ! -s "$STATE_DIR/result.json" ]; then
        tail -n 40 "$STATE_DIR/pktgen.log" | sed 's/^/  | /' >&2
        masq_die "pktgen gave no result (exit status $rc; log above)"
    fi
}

stop_masqd() {
    local rc=0
    masq_stop_pid "$MASQD_PID" "$STOP_TIMEOUT" || rc=$?
    MASQD_PID=
    rm -f "$STATE_DIR/masqd.pid"
    if [ "$JSON" = 0 ]; then
        say "masqd counters (non-zero):"
        awk 'NF == 3 && $3 != 0 { print "  " $0 }' "$STATE_DIR/masqd.log"
    fi
    if [ "$rc" -ne 0 ] || ! grep -q '^masqd: clean shutdown' "$STATE_DIR/masqd.log"; then
        masq_warn "masqd did not shut down cleanly (exit status $rc)"
    fi
}

main() {
    masq_is_root || masq_die "needs root (DPDK, vhost-user sockets in /run)"
    [ "$(nproc)" -ge 2 ] || masq_die "needs two cores (pktgen on core $PKTGEN_CORE, masqd's worker on core $WORKER_CORE)"
    [ -n "${PKTGEN:-}" ] || masq_die "set PKTGEN to your pktgen-dpdk binary (docs/benchmarking.md: building pktgen)"
    [ -x "$PKTGEN" ] || masq_die "PKTGEN=$PKTGEN is not an executable"
    MASQD="${MASQD:-$(masq_target_dir "$ROOT")/release/masqd}"
    [ -x "$MASQD" ] || masq_die "no masqd at $MASQD (build it: cargo build --release -p dataplane)"

    cleanup
    trap on_exit EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$STATE_DIR"
    write_masqd_config
    say "profile $PROFILE ($PROFILE_FILE)${PCAP:+, capture $PCAP}$([ "$FORWARD" = 0 ] || echo ", no NAT (--forward)"); masqd worker on core $WORKER_CORE, pktgen on core $PKTGEN_CORE"
    start_masqd
    run_pktgen
    stop_masqd
    if [ "$INTERACTIVE" = 0 ]; then
        # the result line, with what masqd did: sessions it created, frames it dropped
        local created drops
        created="$(awk '$2 == "nat_sessions_created" { n += $3 } END { print n + 0 }' "$STATE_DIR/masqd.log")"
        drops="$(awk '$1 == "drop" { n += $3 } END { print n + 0 }' "$STATE_DIR/masqd.log")"
        sed "s/}\$/,\"nat\":$([ "$FORWARD" = 1 ] && echo false || echo true),\"masqd_sessions_created\":$created,\"masqd_drops\":$drops}/" \
            "$STATE_DIR/result.json"
    fi
}

main

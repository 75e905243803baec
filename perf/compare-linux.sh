#!/usr/bin/env bash
# masq vs Linux: the same traffic through Linux's own masquerade, through masqd, and through
# DPDK's testpmd (no translation: the ceiling of any DPDK application on this testbed).
#
#   cmp-gen (netns)               cmp-rtr (netns)                         cmp-sink (netns)
#   trafgen            eth0 ==== lan0   [ router ]   wan0 ==== eth0   sink 203.0.113.254/24
#   M subscribers x F flows        (a) linux: 100.64.0.1/10 + 203.0.113.1/24,
#   from 100.64.0.0/10,                ip_forward, nftables masquerade
#   64 B UDP to 203.0.113.254:9    (b) masqd: net_af_packet on lan0 and wan0, the same
#                                      addresses, -j MASQUERADE
#                                  (c) testpmd: the same net_af_packet devices,
#                                      --forward-mode=mac, no translation
#
# For each router in turn the script builds the testbed afresh, starts the router, runs the
# generator (trafgen, pinned to the generator core), lets it warm up, and counts the frames
# the sink's eth0 receives over a fixed window (/sys/class/net/eth0/statistics/rx_packets
# in cmp-sink). The sink drops them at its ingress hook (no ICMP back), counting those that
# arrive translated (source 203.0.113.1; testpmd's frames arrive untranslated and all
# count). It prints the rates and the ratios masqd/linux and masqd/testpmd; --json adds
# one JSON line at the end. Every namespace, link, process and file it makes is
# removed at the end, also on failure or Ctrl-C; traffic never leaves the namespaces.
#
# Cores: the generator runs on core 0. The router gets core 1: masqd's worker is pinned
# there ([workers] cores = [1]; its main thread stays on core 0), so is testpmd's
# forwarding lcore (-l 0,1, main lcore 0), and the Linux router's
# forwarding softirq is steered there with RPS on lan0. Whatever follows a frame out of
# the router (the sink's receive) runs on core 1 in both cases.
#
# Usage: perf/compare-linux.sh [options]
#   --subscribers N   subscriber addresses (100.64.1.0 upwards), default 1000
#   --flows F         UDP source ports per subscriber, default 16 (M x F distinct flows,
#                     picked pseudorandomly per packet)
#   --duration S      measuring window in seconds, default 10
#   --warmup S        traffic before the window (sessions, caches), default 3
#   --runs R          alternate linux/masqd R times; prints each run and the medians, default 1
#   --only linux|masqd|testpmd  run one router only (no ratio)
#   --tx-drain-us N   masqd's [workers] tx_drain_us (0..=1000); default: masqd's default (0)
#   --linux-rps 0|1   1 (default): the Linux router's softirq on core 1; 0: leave it where
#                     the frames arrive (the generator's core)
#   --gen sendto|ring how trafgen sends: sendto (default) one blocking sendto(2) per frame,
#                     which waits while the socket's send buffer is full; ring: packet(7)'s
#                     TX_RING, which exits ("Flushing TX_RING failed") as soon as the send
#                     buffer is full, i.e. unless net.core.wmem_default was raised (see
#                     docs/benchmarking.md); the script never changes global sysctls
#   --json            end with one JSON line (rates are medians over the runs)
#   --no-setup        do not run scripts/setup.sh
#   --no-build        do not build masqd (use $MASQD)
#   --keep-log        keep masqd's log and config in /run/masq-cmp
# Environment: MASQD=path (default <target>/release/masqd); MASQ_CMP_AF_PACKET_ARGS=",k=v..."
#   appended to masqd's and testpmd's net_af_packet device strings (default
#   ",framecnt=4096");
#   MASQ_CMP_HUGEPAGES=1 runs masqd on hugepages (default --no-huge).
# Needs root and two cores. Takes about 3 x (duration + warmup + 10) seconds per run; a
# watchdog (timeout) stops it, cleaning up, after about three times that.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"
# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"

# --- the testbed -------------------------------------------------------------------------
GEN_NS=cmp-gen
RTR_NS=cmp-rtr
SINK_NS=cmp-sink
GEN_MAC=02:00:00:00:11:02
LAN_MAC=02:00:00:00:11:01 # router, lan0
WAN_MAC=02:00:00:00:12:02 # router, wan0
SINK_MAC=02:00:00:00:12:01
GEN_HOST=100.64.0.2
LAN_ROUTER=100.64.0.1
LAN_NET=100.64.0.0/10
SINK=203.0.113.254
WAN_ROUTER=203.0.113.1
UDP_DPORT=9 # discard
FIRST_SPORT=10000
FILE_PREFIX=masq-cmp
STATE_DIR=/run/masq-cmp
GEN_CORE=0
ROUTER_CORE=1
READY_TIMEOUT=30
STOP_TIMEOUT=15
# 4096 ring frames instead of 512: 20 ms of traffic, so a worker preempted for a few
# milliseconds (a shared machine) does not lose frames at its RX ring
AF_PACKET_ARGS="${MASQ_CMP_AF_PACKET_ARGS-,framecnt=4096}"

SUBSCRIBERS=1000
FLOWS=16
DURATION=10
WARMUP=3
RUNS=1
ONLY=
LINUX_RPS=1
GEN_MODE=sendto
JSON=0
RUN_SETUP=1
BUILD=1
KEEP_LOG=0
TX_DRAIN_US=

ARGS=("$@")
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

need_uint() { # option value
    if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -eq 0 ]; then
        masq_die "$1 needs a positive integer, got \"$2\""
    fi
}

while [ $# -gt 0 ]; do
    case "$1" in
    --subscribers | --flows | --duration | --warmup | --runs | --only | --linux-rps | --tx-drain-us | --gen)
        [ $# -ge 2 ] || masq_die "$1 needs a value (try --help)"
        case "$1" in
        --subscribers) SUBSCRIBERS="$2" ;;
        --flows) FLOWS="$2" ;;
        --duration) DURATION="$2" ;;
        --warmup) WARMUP="$2" ;;
        --runs) RUNS="$2" ;;
        --only) ONLY="$2" ;;
        --linux-rps) LINUX_RPS="$2" ;;
        --tx-drain-us) TX_DRAIN_US="$2" ;;
        --gen) GEN_MODE="$2" ;;
        esac
        shift 2
        ;;
    --json) JSON=1 && shift ;;
    --no-setup) RUN_SETUP=0 && shift ;;
    --no-build) BUILD=0 && shift ;;
    --keep-log) KEEP_LOG=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) masq_die "unknown argument: $1 (try --help)" ;;
    esac
done
need_uint --subscribers "$SUBSCRIBERS"
need_uint --flows "$FLOWS"
need_uint --duration "$DURATION"
need_uint --warmup "$WARMUP"
need_uint --runs "$RUNS"
# subscribers are 100.64.1.0 + i inside 100.64.0.0/10; source ports FIRST_SPORT + j
[ "$SUBSCRIBERS" -le 4000000 ] || masq_die "--subscribers: at most 4000000 (100.64.0.0/10)"
[ "$FLOWS" -le $((65536 - FIRST_SPORT)) ] || masq_die "--flows: at most $((65536 - FIRST_SPORT))"
case "$ONLY" in "" | linux | masqd | testpmd) ;; *) masq_die "--only: linux, masqd or testpmd, got \"$ONLY\"" ;; esac
case "$LINUX_RPS" in 0 | 1) ;; *) masq_die "--linux-rps: 0 or 1, got \"$LINUX_RPS\"" ;; esac
case "$GEN_MODE" in sendto | ring) ;; *) masq_die "--gen: sendto or ring, got \"$GEN_MODE\"" ;; esac
if [ -n "$TX_DRAIN_US" ]; then
    { [[ "$TX_DRAIN_US" =~ ^[0-9]+$ ]] && [ "$TX_DRAIN_US" -le 1000 ]; } ||
        masq_die "--tx-drain-us: an integer in 0..=1000, got \"$TX_DRAIN_US\""
fi

ROUTERS=(linux masqd testpmd)
[ -z "$ONLY" ] || ROUTERS=("$ONLY")
# every router, each: setup + warm-up + window + stop; the watchdog allows three times that
RUN_BUDGET=$(((DURATION + WARMUP + 10 + READY_TIMEOUT / 3) * ${#ROUTERS[@]} * RUNS))
MAX_RUNTIME=$((3 * RUN_BUDGET + 60))

# The watchdog: the script runs again under timeout(1), which sends SIGTERM (the cleanup
# trap runs) after MAX_RUNTIME seconds and SIGKILL a minute later.
if [ -z "${MASQ_CMP_WATCHDOG:-}" ]; then
    MASQ_CMP_WATCHDOG=1 exec timeout -k 60 "$MAX_RUNTIME" bash "$0" "${ARGS[@]}"
fi

MASQD_PID=
BACKLOG=
WMEM_DEFAULT=
TESTPMD_PID=
GEN_PID=
RESULTS=() # "router pps offered translated_fraction router_core_kernel_share" per measurement

# --- output ------------------------------------------------------------------------------
say() { # human-readable output; on stderr with --json, so stdout is the JSON line alone
    if [ "$JSON" = 1 ]; then printf '%s\n' "$*" >&2; else printf '%s\n' "$*"; fi
}
section() { say "" && say "==> $*"; }

# --- cleanup -----------------------------------------------------------------------------

# Remove everything a (possibly crashed) run creates. Safe to run any time.
cleanup_testbed() {
    local pid ns
    [ -z "$GEN_PID" ] || masq_stop_pid "$GEN_PID" 3 || true
    [ -z "$MASQD_PID" ] || kill -KILL "$MASQD_PID" 2>/dev/null || true
    [ -z "$TESTPMD_PID" ] || kill -KILL "$TESTPMD_PID" 2>/dev/null || true
    GEN_PID=
    MASQD_PID=
    TESTPMD_PID=
    local name
    for name in masqd testpmd; do # a router left by a crashed earlier run
        [ -r "$STATE_DIR/$name.pid" ] || continue
        pid="$(cat "$STATE_DIR/$name.pid")"
        if [ -n "$pid" ] && grep -qs "$name" "/proc/$pid/cmdline"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$STATE_DIR/$name.pid"
    done
    # whatever still runs in our namespaces was started by this script (trafgen's workers)
    for ns in "$GEN_NS" "$RTR_NS" "$SINK_NS"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
    done
    # the veths live in the namespaces: deleting these removes every link we made
    for ns in "$GEN_NS" "$RTR_NS" "$SINK_NS"; do
        ip netns delete "$ns" 2>/dev/null || true
    done
    rm -rf "/var/run/dpdk/$FILE_PREFIX"
}

leftovers() {
    ip netns list | grep -qE "^($GEN_NS|$RTR_NS|$SINK_NS)( |$)"
}

on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    cleanup_testbed
    local _
    for _ in 1 2 3 4 5 6 7 8 9 10; do # links of deleted namespaces go asynchronously
        leftovers || break
        sleep 0.2
    done
    if leftovers; then
        masq_warn "namespaces of the comparison are still there: check 'ip netns list'"
        rc=1
    fi
    if [ "$KEEP_LOG" = 1 ]; then
        say "masqd's and testpmd's logs and masqd's config kept in $STATE_DIR"
    else
        rm -rf "$STATE_DIR"
    fi
    exit "$rc"
}

# --- testbed -----------------------------------------------------------------------------

# A veth pair between the router namespace (RIF) and a host namespace (eth0), offloads off
# on both ends so both routers see the frames trafgen wrote.
link_host() { # host_ns router_if router_mac host_mac
    ip link add "$2" address "$3" netns "$RTR_NS" type veth peer name eth0 address "$4" netns "$1"
    masq_offloads_off "$RTR_NS" "$2"
    masq_offloads_off "$1" eth0
    masq_in_ns "$RTR_NS" ip link set "$2" up
    masq_in_ns "$1" ip link set eth0 up
}

create_testbed() {
    masq_new_ns "$GEN_NS"
    masq_new_ns "$RTR_NS"
    masq_new_ns "$SINK_NS"
    link_host "$GEN_NS" lan0 "$LAN_MAC" "$GEN_MAC"
    link_host "$SINK_NS" wan0 "$WAN_MAC" "$SINK_MAC"
    masq_in_ns "$GEN_NS" ip addr add "$GEN_HOST/10" dev eth0
    masq_in_ns "$GEN_NS" ip route add default via "$LAN_ROUTER"
    masq_in_ns "$SINK_NS" ip addr add "$SINK/24" dev eth0
    masq_in_ns "$SINK_NS" ip route add default via "$WAN_ROUTER"
    # The sink drops what arrives at its ingress hook (before IP: no ICMP port unreachable,
    # no conntrack), counting the frames that come translated.
    masq_in_ns "$SINK_NS" nft -f - <<EOF
table netdev sink {
    chain ingress {
        type filter hook ingress device "eth0" priority 0; policy accept;
        ip saddr $WAN_ROUTER udp dport $UDP_DPORT counter drop
        udp dport $UDP_DPORT counter drop
    }
}
EOF
}

# Linux as the router: forwarding, the nftables equivalent of
# `iptables -t nat -A POSTROUTING -o wan0 -s 100.64.0.0/10 -j MASQUERADE`, a static
# neighbour for the sink (masqd gets the same), softirq on the router core.
start_linux() {
    masq_in_ns "$RTR_NS" ip addr add "$LAN_ROUTER/10" dev lan0
    masq_in_ns "$RTR_NS" ip addr add "$WAN_ROUTER/24" dev wan0
    masq_in_ns "$RTR_NS" ip neigh replace "$SINK" lladdr "$SINK_MAC" dev wan0 nud permanent
    masq_in_ns "$RTR_NS" sysctl -qw net.ipv4.ip_forward=1 >/dev/null
    masq_in_ns "$RTR_NS" nft -f - <<EOF
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" ip saddr $LAN_NET masquerade
    }
}
EOF
    if [ "$LINUX_RPS" = 1 ]; then
        masq_in_ns "$RTR_NS" sh -c "echo $(printf '%x' $((1 << ROUTER_CORE))) >/sys/class/net/lan0/queues/rx-0/rps_cpus"
    fi
}

eal_mem_args() {
    if [ "${MASQ_CMP_HUGEPAGES:-0}" = 1 ]; then
        printf '"-m", "512", "--huge-unlink"'
    else
        printf '"--no-huge", "-m", "512"'
    fi
}

start_masqd() {
    masq_quiet_port "$RTR_NS" lan0
    masq_quiet_port "$RTR_NS" wan0
    cat >"$STATE_DIR/masq.toml" <<EOF
# written by perf/compare-linux.sh
[dpdk]
args = [$(eal_mem_args), "--file-prefix", "$FILE_PREFIX"]

[[port]]
name = "lan"
role = "inside"
device = "net_af_packet0,iface=lan0$AF_PACKET_ARGS"
address = "$LAN_ROUTER/10"

[[port]]
name = "wan"
role = "outside"
device = "net_af_packet1,iface=wan0$AF_PACKET_ARGS"
address = "$WAN_ROUTER/24"
gateway = "$SINK"

[workers]
cores = [$ROUTER_CORE]
${TX_DRAIN_US:+tx_drain_us = $TX_DRAIN_US}

[[neighbor]]
port = "wan"
address = "$SINK"
mac = "$SINK_MAC"

[control]
socket = "$STATE_DIR/masqd.sock"
EOF
    cat >"$STATE_DIR/rules.v4" <<EOF
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan -s $LAN_NET -j MASQUERADE
COMMIT
EOF
    : >"$STATE_DIR/masqd.log"
    ip netns exec "$RTR_NS" "$MASQD" --config "$STATE_DIR/masq.toml" --rules "$STATE_DIR/rules.v4" \
        >>"$STATE_DIR/masqd.log" 2>&1 </dev/null &
    MASQD_PID=$!
    echo "$MASQD_PID" >"$STATE_DIR/masqd.pid"
    masq_wait_ready "$MASQD_PID" "$STATE_DIR/masqd.log" "$READY_TIMEOUT"
    say "$(grep -w ready "$STATE_DIR/masqd.log" | head -1)"
}

stop_masqd() {
    local rc=0
    masq_stop_pid "$MASQD_PID" "$STOP_TIMEOUT" || rc=$?
    MASQD_PID=
    rm -f "$STATE_DIR/masqd.pid"
    if [ "$rc" -ne 0 ] || ! grep -q '^masqd: clean shutdown' "$STATE_DIR/masqd.log"; then
        sed 's/^/  | /' "$STATE_DIR/masqd.log" >&2
        masq_die "masqd did not shut down cleanly (exit status $rc)"
    fi
    local created drops
    created="$(awk '$2 == "nat_sessions_created" { n += $3 } END { print n + 0 }' "$STATE_DIR/masqd.log")"
    drops="$(awk '$1 == "drop" && $3 > 0 { printf "%s%s=%s", sep, $2, $3; sep = " " }' "$STATE_DIR/masqd.log")"
    say "masqd: $created sessions created; drops: ${drops:-none}"
}

# DPDK's testpmd as the router: the same net_af_packet devices as masqd's, the same cores
# (forwarding lcore on the router core, main lcore on the generator core), MAC forwarding
# between the two ports (lan0 <-> wan0, destination MAC the peer behind the other port), no
# translation: what any DPDK application can forward on this testbed with this PMD.
start_testpmd() {
    masq_quiet_port "$RTR_NS" lan0
    masq_quiet_port "$RTR_NS" wan0
    local mem=(--no-huge -m 512)
    [ "${MASQ_CMP_HUGEPAGES:-0}" != 1 ] || mem=(-m 512 --huge-unlink)
    : >"$STATE_DIR/testpmd.log"
    # --stats-period keeps testpmd running without a terminal (it exits on SIGTERM);
    # port 0 is lan0, port 1 wan0: frames from lan0 go to the sink, from wan0 to the generator.
    # stdbuf -oL: testpmd's stdout is a file here, so without it the lines below reach the log
    # only when testpmd flushes, which it does first when it prints its statistics, after
    # --stats-period seconds counted from boot (i.e. never on a machine up for less than an
    # hour with the period used here).
    ip netns exec "$RTR_NS" stdbuf -oL dpdk-testpmd -l "$GEN_CORE,$ROUTER_CORE" --main-lcore "$GEN_CORE" \
        "${mem[@]}" --file-prefix "$FILE_PREFIX" --no-pci \
        --vdev "net_af_packet0,iface=lan0$AF_PACKET_ARGS" \
        --vdev "net_af_packet1,iface=wan0$AF_PACKET_ARGS" -- \
        --nb-cores=1 --rxq=1 --txq=1 --total-num-mbufs=32768 --forward-mode=mac \
        --eth-peer="0,$GEN_MAC" --eth-peer="1,$SINK_MAC" --stats-period=3600 \
        >>"$STATE_DIR/testpmd.log" 2>&1 </dev/null &
    TESTPMD_PID=$!
    echo "$TESTPMD_PID" >"$STATE_DIR/testpmd.pid"
    local deadline=$((SECONDS + READY_TIMEOUT))
    # testpmd prints its forwarding configuration ("mac packet forwarding packets/burst=32")
    # just before it launches the forwarding lcore
    while ! grep -q 'packets/burst=' "$STATE_DIR/testpmd.log"; do
        if ! kill -0 "$TESTPMD_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            sed 's/^/  | /' "$STATE_DIR/testpmd.log" >&2
            masq_die "testpmd did not start forwarding"
        fi
        sleep 0.2
    done
    say "testpmd: forwarding (mac, lan0 <-> wan0, lcore $ROUTER_CORE)"
}

stop_testpmd() {
    # testpmd re-raises SIGTERM after its cleanup, so its exit status is 143: not checked
    masq_stop_pid "$TESTPMD_PID" "$STOP_TIMEOUT" || true
    TESTPMD_PID=
    rm -f "$STATE_DIR/testpmd.pid"
}

# --- traffic -----------------------------------------------------------------------------

# trafgen's packet: 60 bytes on the wire (64 with the FCS), UDP from subscriber
# 100.64.1.0 + i (i < SUBSCRIBERS) and source port FIRST_SPORT + j (j < FLOWS), both
# pseudorandom per packet; trafgen fills in the IPv4 and UDP checksums.
write_trafgen_cfg() {
    local first=256 # 100.64.1.0 as the low 16 bits of the address, 0x0100
    cat >"$STATE_DIR/flows.trafgen" <<EOF
{
  eth(da=$LAN_MAC, sa=$GEN_MAC),
  ipv4(sa=100.64.0.0, sa[2:2]=drnd($first, $((first + SUBSCRIBERS - 1))), da=$SINK, ttl=64),
  udp(sp=drnd($FIRST_SPORT, $((FIRST_SPORT + FLOWS - 1))), dp=$UDP_DPORT),
  fill(0, 18)
}
EOF
}

# How trafgen sends. Its TX_RING mode flushes the ring with a non-blocking send: every
# frame in flight (queued for another core by RPS, or waiting in a veth's backlog) still
# holds its share of the socket's send buffer, and once net.core.wmem_default (the buffer a
# new socket gets, 208 KiB on a fresh machine: about 270 frames) is used up the flush fails
# with EAGAIN and trafgen exits. sendto(2) mode (-t 0, no gap) blocks instead and goes on
# when the buffer drains, so it works the same whatever the machine's socket memory and
# backlog settings are, and nothing global has to be raised (and restored).
gen_mode_args() {
    if [ "$GEN_MODE" = sendto ]; then printf '%s\n' -t 0; fi
}

start_generator() {
    local seconds="$1" mode
    mapfile -t mode < <(gen_mode_args)
    # one trafgen process pinned to the generator core; --no-sock-mem and --notouch-irq
    # leave the machine's socket memory limits and IRQ affinities alone
    ip netns exec "$GEN_NS" timeout -s INT "$seconds" taskset -c "$GEN_CORE" \
        trafgen -o eth0 -i "$STATE_DIR/flows.trafgen" -P 1 "${mode[@]}" --no-sock-mem --notouch-irq -C \
        >"$STATE_DIR/trafgen.log" 2>&1 </dev/null &
    GEN_PID=$!
}

stop_generator() {
    masq_stop_pid "$GEN_PID" 5 || true
    GEN_PID=
}

if_counter() { # ns ifname counter
    masq_in_ns "$1" cat "/sys/class/net/$2/statistics/$3"
}

now() { date +%s.%N; }

# "kernel total" jiffies of one CPU from /proc/stat, kernel = system + irq + softirq: the
# Linux router's forwarding is softirq time, and user time on a shared machine may be
# anybody's (masqd's worker busy-polls, so its core always reads fully used)
cpu_jiffies() {
    awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print $4 + $7 + $8, t }' /proc/stat
}

# The rule counters of the sink's ingress chain: "translated other" (frames to the UDP
# discard port from 203.0.113.1, and from anyone else).
sink_counters() {
    masq_in_ns "$SINK_NS" nft list chain netdev sink ingress |
        awk '/counter packets/ { for (i = 1; i < NF; i++) if ($i == "packets") { printf "%s ", $(i + 1) } } END { print "" }'
}

# One measurement: a fresh testbed, the router, warm-up, the window. Appends to RESULTS.
measure() {
    local router="$1"
    section "$router: testbed, router, ${WARMUP}s warm-up, ${DURATION}s window"
    cleanup_testbed
    create_testbed
    "start_$router"
    start_generator $((WARMUP + DURATION + 5))
    sleep "$WARMUP"
    local rx0 tx0 t0 rx1 tx1 t1 translated other b0 j0 b1 j1
    read -r b0 j0 <<<"$(cpu_jiffies "$ROUTER_CORE")"
    rx0="$(if_counter "$SINK_NS" eth0 rx_packets)"
    tx0="$(if_counter "$GEN_NS" eth0 tx_packets)"
    t0="$(now)"
    sleep "$DURATION"
    rx1="$(if_counter "$SINK_NS" eth0 rx_packets)"
    tx1="$(if_counter "$GEN_NS" eth0 tx_packets)"
    t1="$(now)"
    read -r b1 j1 <<<"$(cpu_jiffies "$ROUTER_CORE")"
    kill -0 "$GEN_PID" 2>/dev/null || {
        sed 's/^/  | /' "$STATE_DIR/trafgen.log" >&2
        if grep -q 'Flushing TX_RING failed' "$STATE_DIR/trafgen.log"; then
            masq_warn "trafgen's TX_RING mode ran out of socket send buffer" \
                "(net.core.wmem_default = $(sysctl -n net.core.wmem_default)); use --gen sendto (the default)"
        fi
        masq_die "the generator stopped before the window ended"
    }
    stop_generator
    [ "$router" != masqd ] || stop_masqd
    [ "$router" != testpmd ] || stop_testpmd
    # of all the frames the sink got in the whole run, how many came translated
    read -r translated other <<<"$(sink_counters)"
    local line
    line="$(awk -v r="$router" -v rx=$((rx1 - rx0)) -v tx=$((tx1 - tx0)) -v tr="$translated" -v ot="$other" \
        -v t="$t0" -v u="$t1" -v busy=$((b1 - b0)) -v all=$((j1 - j0)) \
        'BEGIN { d = u - t; printf "%s %.0f %.0f %.4f %.3f", r, rx / d, tx / d, (tr + ot > 0 ? tr / (tr + ot) : 0), (all > 0 ? busy / all : 0) }')"
    RESULTS+=("$line")
    local pps offered busy
    read -r _ pps offered translated busy <<<"$line"
    say "$(printf '%-7s received %10s pps at the sink (offered %s pps; %s%% translated to %s; core %s %s%% in the kernel)' \
        "$router" "$pps" "$offered" "$(awk -v f="$translated" 'BEGIN { printf "%.1f", f * 100 }')" "$WAN_ROUTER" \
        "$ROUTER_CORE" "$(awk -v f="$busy" 'BEGIN { printf "%.0f", f * 100 }')")"
    [ "$pps" -gt 0 ] || masq_die "$router: nothing reached the sink"
    # linux and masqd masquerade: anything that reached the sink untranslated is a failure;
    # testpmd forwards untranslated, every frame counts
    [ "$router" != testpmd ] || return 0
    awk -v f="$translated" 'BEGIN { exit !(f >= 0.999) }' ||
        masq_die "$router: only $(awk -v f="$translated" 'BEGIN { printf "%.1f", f * 100 }')% of the frames at the sink came from $WAN_ROUTER"
}

median() { # numbers on stdin -> median
    sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

results_of() { # router field(2=pps,3=offered,5=router core kernel share) -> one number per line
    local r
    for r in "${RESULTS[@]}"; do
        awk -v want="$1" -v f="$2" '$1 == want { print $f }' <<<"$r"
    done
}

# --- main --------------------------------------------------------------------------------

build_masqd() {
    MASQD="${MASQD:-$(masq_target_dir "$ROOT")/release/masqd}"
    if [ "$BUILD" = 1 ]; then
        section "building masqd (release)"
        (cd "$ROOT" && cargo build --release -p dataplane --bin masqd) >&2
    fi
    [ -x "$MASQD" ] || masq_die "no masqd at $MASQD (build it: cargo build --release -p dataplane)"
}

main() {
    masq_is_root || masq_die "needs root (network namespaces, nftables, af_packet)"
    [ "$(nproc)" -ge 2 ] || masq_die "needs two cores (generator on core $GEN_CORE, router on core $ROUTER_CORE)"
    if [ "$RUN_SETUP" = 1 ]; then
        bash "$ROOT/scripts/setup.sh" >&2
    fi
    local tool
    for tool in ip nft trafgen taskset ethtool timeout; do
        command -v "$tool" >/dev/null 2>&1 || masq_die "$tool not found (scripts/setup.sh installs it)"
    done
    if [[ " ${ROUTERS[*]} " == *" testpmd "* ]]; then
        command -v dpdk-testpmd >/dev/null 2>&1 || masq_die "dpdk-testpmd not found (Debian package dpdk)"
    fi
    masq_cargo_path
    if [[ " ${ROUTERS[*]} " == *" masqd "* ]]; then build_masqd; fi

    cleanup_testbed
    trap on_exit EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$STATE_DIR"
    write_trafgen_cfg
    say "traffic: $SUBSCRIBERS subscribers x $FLOWS flows ($((SUBSCRIBERS * FLOWS)) flows), 64 B UDP frames to $SINK:$UDP_DPORT"
    say "generator: trafgen on core $GEN_CORE; router: core $ROUTER_CORE; window ${DURATION}s after ${WARMUP}s warm-up; $RUNS run(s)"
    say "net_af_packet options: ${AF_PACKET_ARGS:-(none)}; masqd tx_drain_us: ${TX_DRAIN_US:-default}"
    # global settings the figures depend on; read, never changed (see gen_mode_args)
    BACKLOG="$(sysctl -n net.core.netdev_max_backlog)"
    WMEM_DEFAULT="$(sysctl -n net.core.wmem_default)"
    say "trafgen mode: $GEN_MODE; net.core.netdev_max_backlog $BACKLOG, net.core.wmem_default $WMEM_DEFAULT (as found)"

    local run router
    for run in $(seq 1 "$RUNS"); do
        for router in "${ROUTERS[@]}"; do
            measure "$router"
        done
        [ "$RUNS" -eq 1 ] || say "(run $run of $RUNS done)"
    done

    local linux_pps=0 masqd_pps=0 linux_off=0 masqd_off=0 ratio=null linux_busy=null
    local testpmd_pps=0 testpmd_off=0 ceiling_ratio=null
    if [[ " ${ROUTERS[*]} " == *" linux "* ]]; then
        linux_pps="$(results_of linux 2 | median)"
        linux_off="$(results_of linux 3 | median)"
        linux_busy="$(results_of linux 5 | awk '{ printf "%d\n", $1 * 1000 }' | median)"
        linux_busy="$(awk -v b="$linux_busy" 'BEGIN { printf "%.3f", b / 1000 }')"
    fi
    if [[ " ${ROUTERS[*]} " == *" masqd "* ]]; then
        masqd_pps="$(results_of masqd 2 | median)"
        masqd_off="$(results_of masqd 3 | median)"
    fi
    if [[ " ${ROUTERS[*]} " == *" testpmd "* ]]; then
        testpmd_pps="$(results_of testpmd 2 | median)"
        testpmd_off="$(results_of testpmd 3 | median)"
    fi
    section "result (median of $RUNS run(s), packets per second received at the sink)"
    if [ "$linux_pps" != 0 ]; then
        say "$(printf 'linux nftables masquerade  %10s pps  (router core %s%% in the kernel)' "$linux_pps" \
            "$(awk -v b="$linux_busy" 'BEGIN { printf "%.0f", b * 100 }')")"
    fi
    [ "$masqd_pps" = 0 ] || say "$(printf 'masqd (net_af_packet)      %10s pps' "$masqd_pps")"
    if [ "$linux_pps" != 0 ] && [ "$masqd_pps" != 0 ]; then
        ratio="$(awk -v m="$masqd_pps" -v l="$linux_pps" 'BEGIN { printf "%.2f", m / l }')"
        say "masqd / linux              $ratio"
    fi
    [ "$testpmd_pps" = 0 ] || say "$(printf 'testpmd (mac fwd, ceiling) %10s pps' "$testpmd_pps")"
    if [ "$testpmd_pps" != 0 ] && [ "$masqd_pps" != 0 ]; then
        ceiling_ratio="$(awk -v m="$masqd_pps" -v t="$testpmd_pps" 'BEGIN { printf "%.2f", m / t }')"
        say "masqd / testpmd            $ceiling_ratio"
    fi
    if [ "$JSON" = 1 ]; then
        local drain=null af_args
        [ -z "$TX_DRAIN_US" ] || drain="$TX_DRAIN_US"
        af_args="$(printf '%s' "$AF_PACKET_ARGS" | sed 's/[\\"]/\\&/g')"
        printf '{"test":"compare-linux","frame_bytes":64,"subscribers":%s,"flows_per_subscriber":%s,"duration_s":%s,"runs":%s,"linux_rps":%s,"tx_drain_us":%s,"af_packet_args":"%s","gen_mode":"%s","netdev_max_backlog":%s,"wmem_default":%s,"linux_pps":%s,"masqd_pps":%s,"testpmd_pps":%s,"masqd_linux_ratio":%s,"masqd_over_testpmd":%s,"linux_offered_pps":%s,"masqd_offered_pps":%s,"testpmd_offered_pps":%s,"linux_router_core_kernel":%s}\n' \
            "$SUBSCRIBERS" "$FLOWS" "$DURATION" "$RUNS" "$LINUX_RPS" "$drain" "$af_args" "$GEN_MODE" "$BACKLOG" "$WMEM_DEFAULT" "$linux_pps" "$masqd_pps" "$testpmd_pps" "$ratio" "$ceiling_ratio" "$linux_off" "$masqd_off" "$testpmd_off" "$linux_busy"
    fi
}

main

#!/usr/bin/env bash
# masq demo: real traffic through a real masqd, on this machine only.
#
#   masq-lan (netns)                    masq-rtr (netns)                      masq-srv (netns)
#   LAN host 100.64.0.2/10  eth0 ==== veth-lan  [masqd]  veth-wan ==== eth0  server 203.0.113.254/24
#   default via 100.64.0.1         (net_af_packet0)    (net_af_packet1)       default via 203.0.113.1
#                                   lan0 100.64.0.1/10  wan0 203.0.113.1/24
#                                   (the router's kernel: its host interfaces)
#
# masqd runs in a namespace of its own, masq-rtr, and owns 100.64.0.1 (inside) and
# 203.0.113.1 (outside) on the two veth ends there, which carry no kernel address; it
# answers ARP and routes between the namespaces. Its host interfaces lan0 and wan0 (kernel
# TAPs with the ports' MACs and addresses, docs/host-interface.md) give the router's own
# kernel and programs the same addresses: the host step runs a caching resolver and a TCP
# service there. Nothing of the demo touches the machine's root namespace.
# The demo builds masqd and masqctl (release), creates the namespaces and veth pairs,
# starts masqd, waits until it is ready, runs the steps, stops masqd with SIGTERM, prints
# its output (the counter report at the end) and removes everything it created, also on
# failure or Ctrl-C. A crashed earlier run's leftovers are removed first.
#
# Steps: masqctl (the operator's walkthrough: masqd starts with NO rules; masqctl adds
# MASQUERADE and a port forward while traffic flows, lists the sessions, tunes the timers
# and saves the rules), ping, http, dns, ttl, host (the router's own services: a caching
# resolver on 100.64.0.1 with its upstream on the WAN side, the second answer from its
# cache; a TCP service on the outside address reached from the WAN). With the masqctl
# step masqd starts without rules and that step runs first, whatever its place in
# MASQ_DEMO_STEPS (the others need its MASQUERADE rule); without it masqd starts with the
# MASQUERADE rule in rules.v4.
#
# Usage: scripts/demo.sh [--no-setup] [--no-build] [--net-only] [--keep-log]
#   --net-only   build and tear down the testbed only (no masqd): checks the plumbing
#   --keep-log   keep masqd's log (its path is printed) instead of deleting it
# Environment: MASQD=path (default <target>/release/masqd), MASQCTL=path (default
#   <target>/release/masqctl), MASQ_DEMO_HUGEPAGES=0|1 (default: hugepages if enough are
#   free), MASQ_DEMO_STEPS="masqctl ping http dns ttl host" (which steps run).
# Needs root. Traffic never leaves the three namespaces.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"
# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"

# --- the testbed -------------------------------------------------------------------------
LAN_NS=masq-lan
SRV_NS=masq-srv
RTR_NS=masq-rtr # masqd's own namespace: its ports' veth ends and its host interfaces
LAN_IF=veth-lan # masqd's inside port (in $RTR_NS)
WAN_IF=veth-wan # masqd's outside port (in $RTR_NS)
LAN_HOST_IF=lan0 # the router kernel's interface on the inside port (a TAP masqd makes)
WAN_HOST_IF=wan0 # ... on the outside port
SERVICE_PORT=2222 # a TCP service of the router's own on its outside address
LAN_IF_MAC=02:00:00:00:01:01
WAN_IF_MAC=02:00:00:00:02:02
LAN_HOST=100.64.0.2
LAN_HOST_MAC=02:00:00:00:01:02
LAN_ROUTER=100.64.0.1
LAN_PREFIX=10
SERVER=203.0.113.254
SERVER_MAC=02:00:00:00:02:01
WAN_ROUTER=203.0.113.1
WAN_PREFIX=24
FILE_PREFIX=masq-demo
STATE_DIR=/run/masq-demo
CTL_SOCKET="$STATE_DIR/masqd.sock"         # the demo's own control socket, not /run/masq's
FORWARD_PORT=8080                          # the port forward: 203.0.113.1:8080 -> 100.64.0.2:80
PEER="$ROOT/dataplane/tests/tools/peer.py" # UDP echo/ask helpers of the tests
READY_TIMEOUT=30
STOP_TIMEOUT=15

RUN_SETUP=1
BUILD=1
NET_ONLY=0
KEEP_LOG=0
for arg in "$@"; do
    case "$arg" in
    --no-setup) RUN_SETUP=0 ;;
    --no-build) BUILD=0 ;;
    --net-only) NET_ONLY=1 ;;
    --keep-log) KEEP_LOG=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) masq_die "unknown argument: $arg (try --help)" ;;
    esac
done

MASQD_PID=
BG_PIDS=()
REPORT_SHOWN=0
STEP_NAMES=()
STEP_RESULTS=()

# --- cleanup -----------------------------------------------------------------------------

# Remove everything a (possibly crashed) demo run creates. Safe to run any time.
cleanup_testbed() {
    local pid
    if [ -r "$STATE_DIR/masqd.pid" ]; then
        pid="$(cat "$STATE_DIR/masqd.pid")"
        # only a masqd we started: check the pid still names a masqd
        if [ -n "$pid" ] && grep -qs masqd "/proc/$pid/cmdline"; then
            masq_log "stopping masqd left running by an earlier demo (pid $pid)"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    for pid in "${BG_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # Deleting a namespace destroys its veth ends and so, a moment later, their peers in
    # the root namespace: each step tolerates the object being gone already.
    for ns in "$LAN_NS" "$SRV_NS" "$RTR_NS"; do
        ip netns delete "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/${ns:?}"
    done
    rmdir /etc/netns 2>/dev/null || true # only if empty
    # The demo before masq-rtr left its ports in the root namespace.
    for link in "$LAN_IF" "$WAN_IF"; do
        ip link delete "$link" 2>/dev/null || true
    done
    rm -rf "/var/run/dpdk/$FILE_PREFIX"
    rm -f /dev/hugepages/"$FILE_PREFIX"map_* 2>/dev/null || true
    if [ "$KEEP_LOG" = 1 ] && [ -d "$STATE_DIR" ]; then
        rm -f "$STATE_DIR/masqd.pid"
    else
        rm -rf "$STATE_DIR"
    fi
}

# True if anything of the testbed is still there.
leftovers() {
    ip netns list | grep -qE "^($LAN_NS|$SRV_NS|$RTR_NS)( |$)" ||
        ip link show "$LAN_IF" >/dev/null 2>&1 || ip link show "$WAN_IF" >/dev/null 2>&1 ||
        [ -e "/etc/netns/$LAN_NS" ] || [ -e "/etc/netns/$SRV_NS" ] || [ -e "/etc/netns/$RTR_NS" ]
}

on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$MASQD_PID" ] && kill -0 "$MASQD_PID" 2>/dev/null; then
        stop_masqd || true
    fi
    if [ "$REPORT_SHOWN" = 0 ] && [ -s "$STATE_DIR/masqd.log" ]; then
        show_log
    fi
    masq_section "cleaning up"
    cleanup_testbed
    local i
    for i in 1 2 3 4 5 6 7 8 9 10; do # links of deleted namespaces go asynchronously
        leftovers || break
        sleep 0.2
    done
    if leftovers; then
        masq_warn "something of the demo is still there: check 'ip netns list' and 'ip link'"
        rc=1
    else
        masq_log "removed namespaces $LAN_NS, $SRV_NS, $RTR_NS and their links"
    fi
    [ "$KEEP_LOG" = 0 ] || masq_log "masqd log kept in $STATE_DIR/masqd.log"
    exit "$rc"
}

# --- testbed -----------------------------------------------------------------------------

# `ip netns exec` bind-mounts /etc/netns/<ns>/* over /etc: give each host its own hosts
# file and resolver so no program in a namespace ever asks the machine's real nameserver
# (python's http.server, for one, looks its own address up at start).
etc_files() { # ns nameserver
    mkdir -p "/etc/netns/$1"
    printf 'nameserver %s\n' "$2" >"/etc/netns/$1/resolv.conf"
    cat >"/etc/netns/$1/hosts" <<EOF
127.0.0.1 localhost
$LAN_HOST lan-host
$LAN_ROUTER masqd-lan
$WAN_ROUTER masqd-wan
$SERVER server
EOF
}

make_host() { # ns port_if port_mac host_mac host_cidr gateway (port_if: masqd's end, in $RTR_NS)
    local ns="$1" port_if="$2" port_mac="$3" host_mac="$4" cidr="$5" gw="$6"
    masq_new_ns "$ns"
    ip link add "$port_if" address "$port_mac" netns "$RTR_NS" type veth peer name eth0 address "$host_mac" netns "$ns"
    masq_quiet_port "$RTR_NS" "$port_if"
    masq_offloads_off "$RTR_NS" "$port_if"
    masq_offloads_off "$ns" eth0
    masq_in_ns "$RTR_NS" ip link set "$port_if" up
    masq_in_ns "$ns" ip addr add "$cidr" dev eth0
    masq_in_ns "$ns" ip link set eth0 up
    masq_in_ns "$ns" ip route add default via "$gw"
}

create_testbed() {
    masq_section "testbed"
    mkdir -p "$STATE_DIR"
    # the LAN host resolves through the server (the DNS step, when NAT lands); the
    # server resolves nothing
    etc_files "$LAN_NS" "$SERVER"
    etc_files "$SRV_NS" 127.0.0.1
    etc_files "$RTR_NS" 127.0.0.1
    masq_new_ns "$RTR_NS"
    make_host "$LAN_NS" "$LAN_IF" "$LAN_IF_MAC" "$LAN_HOST_MAC" "$LAN_HOST/$LAN_PREFIX" "$LAN_ROUTER"
    make_host "$SRV_NS" "$WAN_IF" "$WAN_IF_MAC" "$SERVER_MAC" "$SERVER/$WAN_PREFIX" "$WAN_ROUTER"
    masq_log "$LAN_NS: $(masq_in_ns "$LAN_NS" ip -br addr show dev eth0) via $LAN_ROUTER"
    masq_log "$SRV_NS: $(masq_in_ns "$SRV_NS" ip -br addr show dev eth0) via $WAN_ROUTER"
    masq_log "masqd ports in $RTR_NS: $(masq_in_ns "$RTR_NS" ip -br link show dev "$LAN_IF") / $(masq_in_ns "$RTR_NS" ip -br link show dev "$WAN_IF")"
}

# --- masqd -------------------------------------------------------------------------------

eal_mem_args() {
    local huge="${MASQ_DEMO_HUGEPAGES:-auto}"
    if [ "$huge" = auto ]; then
        if [ "$(masq_hugepages_free_mb)" -ge 512 ]; then huge=1; else huge=0; fi
    fi
    if [ "$huge" = 1 ]; then
        printf '"-m", "512", "--huge-unlink"'
    else
        printf '"--no-huge", "-m", "512"'
    fi
}

write_config() {
    cat >"$STATE_DIR/masq.toml" <<EOF
# written by scripts/demo.sh
[dpdk]
args = [$(eal_mem_args), "--file-prefix", "$FILE_PREFIX"]

[[port]]
name = "lan"
role = "inside"
device = "net_af_packet0,iface=$LAN_IF"
address = "$LAN_ROUTER/$LAN_PREFIX"
host_interface = "$LAN_HOST_IF"

[[port]]
name = "wan"
role = "outside"
device = "net_af_packet1,iface=$WAN_IF"
address = "$WAN_ROUTER/$WAN_PREFIX"
gateway = "$SERVER"
host_interface = "$WAN_HOST_IF"

[workers]
cores = [1]

[control]
socket = "$CTL_SOCKET"
EOF
    masq_section "config ($STATE_DIR/masq.toml)"
    sed 's/^/  /' "$STATE_DIR/masq.toml"
    # The classic masquerade: everything the LAN sends out of wan leaves as 203.0.113.1.
    cat >"$STATE_DIR/rules.v4" <<EOF
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan -s $LAN_ROUTER/$LAN_PREFIX -j MASQUERADE
COMMIT
EOF
    masq_section "rules ($STATE_DIR/rules.v4)"
    sed 's/^/  /' "$STATE_DIR/rules.v4"
}

build_masqd() {
    MASQD="${MASQD:-$(masq_target_dir "$ROOT")/release/masqd}"
    MASQCTL="${MASQCTL:-$(masq_target_dir "$ROOT")/release/masqctl}"
    if [ "$BUILD" = 1 ]; then
        masq_section "building masqd and masqctl (release)"
        (cd "$ROOT" && cargo build --release -p dataplane --bin masqd -p control --bin masqctl)
    fi
    [ -x "$MASQD" ] || masq_die "no masqd at $MASQD (build it: cargo build --release -p dataplane)"
    [ -x "$MASQCTL" ] || masq_die "no masqctl at $MASQCTL (build it: cargo build --release -p control)"
}

# The steps to run, in order: the masqctl step first when it is selected.
demo_steps() {
    local step steps="${MASQ_DEMO_STEPS:-masqctl ping http dns ttl host}" out=""
    for step in $steps; do
        if [ "$step" = masqctl ]; then out="masqctl"; fi
    done
    for step in $steps; do
        if [ "$step" != masqctl ]; then out="$out $step"; fi
    done
    printf '%s\n' "$out"
}

# Whether masqd starts with no rules (the masqctl step adds them live).
starts_without_rules() {
    case " $(demo_steps) " in
    *" masqctl "*) return 0 ;;
    *) return 1 ;;
    esac
}

start_masqd() {
    masq_section "starting masqd"
    : >"$STATE_DIR/masqd.log" # exists before wait_ready looks, whatever the child's timing
    local rules=(--rules "$STATE_DIR/rules.v4")
    if starts_without_rules; then
        rules=()
        masq_log "with NO rules: the masqctl step adds them while masqd runs"
    fi
    # `ip netns exec` execs masqd: $! is masqd itself.
    ip netns exec "$RTR_NS" "$MASQD" --config "$STATE_DIR/masq.toml" "${rules[@]}" >>"$STATE_DIR/masqd.log" 2>&1 </dev/null &
    MASQD_PID=$!
    echo "$MASQD_PID" >"$STATE_DIR/masqd.pid"
    masq_log "masqd pid $MASQD_PID, log $STATE_DIR/masqd.log"
}

# Ready when masqd logs a line with the word "ready", or when a ping crosses it anyway;
# not ready if it exits or $READY_TIMEOUT seconds pass.
wait_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 "$MASQD_PID" 2>/dev/null; then
            masq_log "masqd exited during start-up"
            return 1
        fi
        if grep -qw ready "$STATE_DIR/masqd.log"; then
            masq_log "masqd is ready: $(grep -w ready "$STATE_DIR/masqd.log" | head -1)"
            return 0
        fi
        if masq_in_ns "$LAN_NS" timeout 3 ping -n -q -c 1 -W 1 "$SERVER" >/dev/null 2>&1; then
            masq_log "masqd forwards (a probe ping crossed it) but logged no 'ready' line"
            return 0
        fi
        sleep 0.5
    done
    masq_log "masqd not ready after ${READY_TIMEOUT}s"
    return 1
}

stop_masqd() {
    masq_section "stopping masqd (SIGTERM)"
    local pid="$MASQD_PID" rc=0 deadline=$((SECONDS + STOP_TIMEOUT))
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        masq_log "masqd did not exit within ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    MASQD_PID=
    masq_log "masqd exit status $rc"
    show_log
    [ "$rc" -eq 0 ] && grep -q '^masqd: clean shutdown' "$STATE_DIR/masqd.log"
}

show_log() {
    REPORT_SHOWN=1
    masq_section "masqd output (counter report at the end)"
    sed 's/^/  | /' "$STATE_DIR/masqd.log"
}

# --- demo steps --------------------------------------------------------------------------
# One function per step, step_<name>; it prints what it shows and returns non-zero on
# failure. MASQ_DEMO_STEPS picks which run, in order.

# A LAN host pings the server through masqd (the echo identifier is translated).
step_ping() {
    masq_in_ns "$LAN_NS" timeout 20 ping -n -c 3 -i 0.5 -W 2 "$SERVER"
}

# A ping with TTL 1 dies at masqd, which answers with ICMP time exceeded from 100.64.0.1.
step_ttl() {
    local out
    out="$(masq_in_ns "$LAN_NS" timeout 10 ping -n -c 1 -t 1 -W 2 "$SERVER" 2>&1 || true)"
    printf '%s\n' "$out"
    grep -q "From $LAN_ROUTER.*[Tt]ime to live exceeded" <<<"$out"
}

# The LAN host browses: an HTTP fetch from the server, which must see the client as
# 203.0.113.1 (masqd's external address), never as 100.64.0.2.
step_http() {
    # not through masq_in_ns: $! must be the process that becomes `timeout` (it passes our
    # SIGTERM on to the server), not a subshell
    ip netns exec "$SRV_NS" timeout 60 python3 -m http.server 8080 --bind "$SERVER" \
        >"$STATE_DIR/http.log" 2>&1 </dev/null &
    BG_PIDS+=($!)
    local i
    for i in $(seq 1 20); do
        masq_in_ns "$SRV_NS" timeout 2 bash -c "exec 3<>/dev/tcp/$SERVER/8080" 2>/dev/null && break
        sleep 0.2
    done
    masq_in_ns "$LAN_NS" timeout 10 curl -sS -o /dev/null -w 'HTTP %{http_code} in %{time_total}s\n' \
        "http://$SERVER:8080/" || return 1
    local seen
    seen="$(grep -o '^[0-9.]* ' "$STATE_DIR/http.log" | head -1 | tr -d ' ')"
    masq_log "server saw the client as: ${seen:-nothing}"
    [ "$seen" = "$WAN_ROUTER" ] || { masq_log "FAIL: expected $WAN_ROUTER (translated)"; return 1; }
}

# dnsmasq in the server namespace, "the Internet's" name server: it answers for
# masq.test only (no upstream, no hosts file: nothing leaves the namespaces), with a TTL
# of 300 s so that resolvers may cache its answers, and logs every query. Started once.
start_upstream_dns() {
    [ -s "$STATE_DIR/dnsmasq.pid" ] && kill -0 "$(cat "$STATE_DIR/dnsmasq.pid")" 2>/dev/null && return 0
    ip netns exec "$SRV_NS" timeout 120 dnsmasq --keep-in-foreground --no-resolv --no-hosts \
        --listen-address="$SERVER" --bind-interfaces --port=53 --user=root \
        --pid-file="$STATE_DIR/dnsmasq.pid" --address=/masq.test/"$SERVER" --local-ttl=300 \
        --log-queries --log-facility="$STATE_DIR/dnsmasq-upstream.log" \
        >"$STATE_DIR/dnsmasq.log" 2>&1 </dev/null &
    BG_PIDS+=($!)
    local i
    for i in $(seq 1 20); do
        [ -s "$STATE_DIR/dnsmasq.pid" ] && return 0
        sleep 0.1
    done
}

# The LAN host resolves a name through masqd: the server's dnsmasq answers.
step_dns() {
    start_upstream_dns
    local answer="" i
    for i in $(seq 1 10); do
        answer="$(masq_in_ns "$LAN_NS" timeout 5 dig +short +time=1 +tries=1 www.masq.test @"$SERVER" 2>/dev/null || true)"
        [ -n "$answer" ] && break
        sleep 0.3
    done
    masq_log "www.masq.test resolved by $SERVER through masqd: ${answer:-no answer}"
    [ "$answer" = "$SERVER" ]
}

# masqctl as the operator types it, on the demo's socket; the command line is printed
# (on stderr, so that output captured for a check holds masqctl's output only).
ctl() {
    printf '  $ masqctl %s\n' "$*" >&2
    "$MASQCTL" --socket "$CTL_SOCKET" "$@"
}

# One check of the masqctl step: "ok: ..." or "FAIL: ...".
check() { # description command...
    local what="$1"
    shift
    if "$@"; then
        masq_log "  ok: $what"
    else
        masq_log "  FAIL: $what"
        return 1
    fi
}

# Whether text $1 has (has) or lacks (lacks) a line matching extended regex $2.
has() { grep -Eq -- "$2" <<<"$1"; }
lacks() { ! has "$@"; }

# What the server's UDP echo saw of a datagram from the LAN host's port $1.
udp_seen_by_server() {
    masq_in_ns "$LAN_NS" timeout 10 python3 "$PEER" udp-ask "$LAN_HOST" "$1" "$SERVER" 7 2 2>/dev/null || true
}

# The operator's walkthrough (issue 4's "done when"): masqd runs with no rules; masqctl
# adds masquerade and a port forward as with iptables, while traffic flows; the sessions
# appear in masqctl -M -L; the timers are tuned; the rules are saved.
step_masqctl() {
    local fail=0 seen out
    ip netns exec "$SRV_NS" timeout 120 python3 "$PEER" udp-echo "$SERVER" 7 \
        >"$STATE_DIR/udp-echo.log" 2>&1 </dev/null &
    BG_PIDS+=($!)
    ip netns exec "$LAN_NS" timeout 120 python3 -m http.server 80 --bind "$LAN_HOST" \
        >"$STATE_DIR/lan-http.log" 2>&1 </dev/null &
    BG_PIDS+=($!)
    sleep 0.5
    # On a busy machine Python takes longer to bind: wait (bounded) for the UDP echo.
    local i
    for i in $(seq 1 30); do
        masq_in_ns "$SRV_NS" ss -Hlun "sport = :7" | grep -q . && break
        sleep 0.1
    done

    masq_log "masqd runs with no rules: it routes, and translates nothing"
    out="$(ctl save)" || fail=1
    printf '%s\n' "$out" | sed 's/^/    /'
    check "no rules in force" lacks "$out" '^-A' || fail=1
    seen="$(udp_seen_by_server 40000)"
    masq_log "  the server sees the LAN host's datagram come from: ${seen:-nothing}"
    check "untranslated without rules ($LAN_HOST:40000)" [ "$seen" = "$LAN_HOST:40000" ] || fail=1

    masq_log ""
    masq_log "masquerade, as with iptables:"
    ctl -t nat -A POSTROUTING -o wan -j MASQUERADE || fail=1
    seen="$(udp_seen_by_server 40001)"
    masq_log "  the server sees the LAN host's datagram come from: ${seen:-nothing}"
    check "masqueraded to $WAN_ROUTER" [ "${seen%%:*}" = "$WAN_ROUTER" ] || fail=1

    masq_log ""
    masq_log "a port forward: $WAN_ROUTER:$FORWARD_PORT -> $LAN_HOST:80 (a web server on the LAN host)"
    ctl -t nat -A PREROUTING -i wan -p tcp --dport "$FORWARD_PORT" -j DNAT --to-destination "$LAN_HOST:80" || fail=1
    out="$(masq_in_ns "$SRV_NS" timeout 10 curl -sS -o /dev/null -w '%{http_code}' \
        "http://$WAN_ROUTER:$FORWARD_PORT/" 2>&1 || true)"
    masq_log "  on the server: curl http://$WAN_ROUTER:$FORWARD_PORT/ -> HTTP $out"
    check "the port forward answers (HTTP 200)" [ "$out" = 200 ] || fail=1
    seen="$(grep -o '^[0-9.]* ' "$STATE_DIR/lan-http.log" | head -1 | tr -d ' ')"
    check "the LAN web server saw the real client ($SERVER): ${seen:-nothing}" [ "$seen" = "$SERVER" ] || fail=1
    seen="$(udp_seen_by_server 40002)"
    check "the LAN host's new flows are still masqueraded ($seen)" [ "${seen%%:*}" = "$WAN_ROUTER" ] || fail=1

    masq_log ""
    masq_log "the rules with their counters (every rule change starts them at zero; a nat rule"
    masq_log "counts the first packet of each connection it translates):"
    out="$(ctl -t nat -L -n -v --line-numbers)" || fail=1
    printf '%s\n' "$out" | sed 's/^/    /'
    check "the DNAT rule is listed and counted the first packet of its connection" \
        has "$out" '^1 +[1-9][0-9]* +[0-9]+ +DNAT' || fail=1
    check "the MASQUERADE rule is listed and counted the first packet of its flow" \
        has "$out" '^1 +[1-9][0-9]* +[0-9]+ +MASQUERADE' || fail=1

    masq_log ""
    out="$(ctl -M -L)" || fail=1
    printf '%s\n' "$out" | sed 's/^/    /'
    check "the masqueraded UDP flow is in the translation table" \
        has "$out" "^udp +$LAN_HOST:40001 +$WAN_ROUTER:" || fail=1
    check "the port-forwarded TCP connection is in the translation table" \
        has "$out" "^tcp +$LAN_HOST:80 +$WAN_ROUTER:$FORWARD_PORT +$SERVER:" || fail=1

    masq_log ""
    masq_log "tune the timers (ipchains order: tcp tcpfin udp):"
    ctl -M -S 7200 10 60 || fail=1
    out="$(ctl timeouts)" || fail=1
    printf '    %s\n' "$out"
    check "timeouts now tcp 7200, tcpfin 10, udp 60" has "$out" '^tcp 7200  tcpfin 10  udp 60 ' || fail=1

    masq_log ""
    ctl save >"$STATE_DIR/rules.saved" || fail=1
    sed 's/^/    /' "$STATE_DIR/rules.saved"
    out="$(cat "$STATE_DIR/rules.saved")"
    check "saved ($STATE_DIR/rules.saved): the MASQUERADE rule" \
        has "$out" '^-A POSTROUTING -o wan -j MASQUERADE$' || fail=1
    check "saved: the port forward" \
        has "$out" "^-A PREROUTING -i wan -p tcp (-m tcp )?--dport $FORWARD_PORT -j DNAT --to-destination $LAN_HOST:80\$" ||
        fail=1

    masq_log ""
    out="$(ctl stats)" || fail=1
    printf '%s\n' "$out" | sed -n '/^Sessions/p; /^External port utilisation/,/^$/p' | sed 's/^/    /'
    return "$fail"
}

# How often the server's name server was asked for www.masq.test from the router's
# outside address (the dns step's masqueraded queries come from there too).
upstream_queries() {
    grep -c "query\[A\] www.masq.test from $WAN_ROUTER" "$STATE_DIR/dnsmasq-upstream.log" 2>/dev/null || true
}

# The router's own services on its host interfaces (docs/host-interface.md): the
# router's kernel has 100.64.0.1 on lan0 and 203.0.113.1 on wan0, and programs run on it.
# A caching resolver (dnsmasq) on 100.64.0.1 forwards to the server's name server from the
# host ports; the LAN host asks it twice: the first answer comes from upstream, the
# second from the router's cache. Then a small TCP service on the router's outside
# address answers a client on the WAN side.
step_host() {
    local fail=0 out answer
    masq_log "the router's kernel interfaces, made by masqd:"
    masq_in_ns "$RTR_NS" ip -br addr show dev "$LAN_HOST_IF" | sed 's/^/    /'
    masq_in_ns "$RTR_NS" ip -br addr show dev "$WAN_HOST_IF" | sed 's/^/    /'
    masq_in_ns "$RTR_NS" ip route show default | sed 's/^/    /'
    start_upstream_dns
    ip netns exec "$RTR_NS" timeout 120 dnsmasq --keep-in-foreground --no-resolv --no-hosts \
        --listen-address="$LAN_ROUTER" --bind-interfaces --port=53 --user=root \
        --server="$SERVER" --min-port=61000 --max-port=61999 --cache-size=1000 \
        --pid-file="$STATE_DIR/dnsmasq-router.pid" --log-queries \
        --log-facility="$STATE_DIR/dnsmasq-router.log" >/dev/null 2>&1 </dev/null &
    BG_PIDS+=($!)
    sleep 0.5
    masq_log ""
    masq_log "the LAN host asks the router's resolver ($LAN_ROUTER) twice:"
    local n before
    before="$(upstream_queries)"
    for n in 1 2; do
        answer="$(masq_in_ns "$LAN_NS" timeout 5 dig +short +time=2 +tries=2 www.masq.test @"$LAN_ROUTER" 2>/dev/null || true)"
        masq_log "  dig @$LAN_ROUTER www.masq.test ($n): ${answer:-no answer}"
        check "answer $n is $SERVER" [ "$answer" = "$SERVER" ] || fail=1
    done
    masq_log "  the router's resolver log:"
    grep -E 'query\[A\]|forwarded|reply|cached' "$STATE_DIR/dnsmasq-router.log" | sed 's/^[^:]*: /    /; s/^.*dnsmasq\[[0-9]*\]: /    /'
    out="$(cat "$STATE_DIR/dnsmasq-router.log" 2>/dev/null || true)"
    check "the first answer came from upstream ($SERVER)" has "$out" "forwarded www.masq.test to $SERVER" || fail=1
    check "the second answer came from the router's cache" has "$out" "cached www.masq.test is $SERVER" || fail=1
    out="$(upstream_queries)"
    check "upstream ($SERVER) was asked once for both, from the router's address ($WAN_ROUTER)" \
        [ "$out" = $((before + 1)) ] || fail=1

    masq_log ""
    masq_log "a TCP service of the router's own on $WAN_ROUTER:$SERVICE_PORT, reached from the WAN side:"
    ip netns exec "$RTR_NS" timeout 60 python3 "$PEER" tcp-echo-peer "$WAN_ROUTER" "$SERVICE_PORT" \
        >/dev/null 2>&1 </dev/null &
    BG_PIDS+=($!)
    sleep 0.5
    out="$(masq_in_ns "$SRV_NS" timeout 10 python3 "$PEER" tcp-ask "$WAN_ROUTER" "$SERVICE_PORT" 2>&1 || true)"
    masq_log "  on the server: connect $WAN_ROUTER:$SERVICE_PORT -> the service says it sees ${out:-nothing}"
    check "the router's service answered the server ($SERVER)" [ "${out%%:*}" = "$SERVER" ] || fail=1

    masq_log ""
    out="$(ctl stats)" || fail=1
    printf '%s\n' "$out" | sed -n '/^Host interfaces/,/^$/p' | sed 's/^/    /'
    check "masqctl stats lists both host interfaces" has "$out" "^  $WAN_HOST_IF " || fail=1
    return "$fail"
}

run_steps() {
    local step rc
    for step in $(demo_steps); do
        masq_section "step: $step"
        rc=0
        "step_$step" || rc=$?
        STEP_NAMES+=("$step")
        STEP_RESULTS+=("$([ $rc -eq 0 ] && echo PASS || echo FAIL)")
    done
}

# --- main --------------------------------------------------------------------------------

main() {
    masq_is_root || masq_die "the demo needs root (network namespaces, af_packet)"
    if [ "$RUN_SETUP" = 1 ]; then
        bash "$ROOT/scripts/setup.sh"
    fi
    masq_cargo_path
    if [ "$NET_ONLY" = 0 ]; then
        build_masqd
    fi

    cleanup_testbed
    trap on_exit EXIT
    trap 'exit 130' INT TERM
    create_testbed

    if [ "$NET_ONLY" = 1 ]; then
        masq_section "--net-only: testbed is up, no masqd"
        ip netns list | grep -E "^($LAN_NS|$SRV_NS|$RTR_NS)" | sed 's/^/  netns /'
        # Without masqd nothing may cross: the root kernel must stay out of the path.
        if masq_in_ns "$LAN_NS" timeout 5 ping -n -q -c 2 -i 0.3 -W 1 "$SERVER" >/dev/null 2>&1; then
            masq_log "FAIL: $LAN_NS reached $SERVER without masqd (the root namespace forwarded it)"
            return 1
        fi
        masq_log "ok: without masqd, $LAN_NS cannot reach $SERVER; nobody answered its ARP for $LAN_ROUTER:"
        masq_in_ns "$LAN_NS" ip neigh show "$LAN_ROUTER" | sed 's/^/  /'
        return 0
    fi

    write_config
    start_masqd
    local ok=1
    if wait_ready; then
        run_steps
    else
        ok=0
    fi
    stop_masqd || {
        masq_log "masqd did not shut down cleanly (exit status or 'masqd: clean shutdown' missing)"
        ok=0
    }
    if masq_in_ns "$RTR_NS" ip link show "$LAN_HOST_IF" >/dev/null 2>&1 ||
        masq_in_ns "$RTR_NS" ip link show "$WAN_HOST_IF" >/dev/null 2>&1; then
        masq_log "FAIL: a host interface outlived masqd"
        ok=0
    else
        masq_log "the host interfaces $LAN_HOST_IF and $WAN_HOST_IF went with masqd"
    fi

    masq_section "demo summary"
    local i
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-8s %s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}"
        [ "${STEP_RESULTS[$i]}" = PASS ] || ok=0
    done
    if [ "$ok" = 1 ]; then
        masq_log "demo: OK"
    else
        masq_log "demo: FAILED"
        return 1
    fi
}

main

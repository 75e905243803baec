#!/usr/bin/env bash
# Build masq's Debian package and check it on this machine the way an operator meets it:
#
#   1. cargo xtask deb (man pages and completions from the code, then cargo deb);
#   2. dpkg -i; masqctl --version, man -w for every page, the completion files, the unit
#      passes systemd-analyze verify, the example configuration passes masqd --check;
#   3. the unit's own ExecStart runs the installed masqd with the installed example
#      configuration (in a network namespace of its own, where the example's TAP ports
#      live and die); it gets ready, masqctl reaches it on the default socket, the unit's
#      ExecReload succeeds, curl gets /metrics and promtool accepts them, SIGTERM stops it
#      cleanly;
#   4. dpkg -r keeps only the conffiles, dpkg -P leaves nothing of the package behind.
#
# Needs root, the packages scripts/setup.sh installs, cargo-deb (installed here, pinned,
# when missing), and the release binaries (built unless --no-build). Bounded: every wait has a limit. A package already
# installed is purged first. Usage: scripts/package-check.sh [--no-build]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

BUILD=1
for arg in "$@"; do
    case "$arg" in
    --no-build) BUILD=0 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) masq_die "unknown argument: $arg (try --help)" ;;
    esac
done

masq_is_root || masq_die "package-check needs root (dpkg -i, network namespaces)"
cd "$ROOT"
masq_cargo_path
# cargo-deb, pinned: installed here (a few minutes, once) rather than by setup.sh, which
# the demo runs too.
CARGO_DEB_VERSION=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    masq_section "cargo install cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
for tool in dpkg systemd-analyze man curl promtool ip; do
    command -v "$tool" >/dev/null 2>&1 || masq_die "$tool missing: scripts/setup.sh installs it"
done

PKG=masq
NS="mqtpkg$$"
WORK="$(mktemp -d /tmp/masq-pkg.XXXXXX)"
MASQD_PID=
UNIT=/lib/systemd/system/masqd.service

cleanup() {
    if [ -n "$MASQD_PID" ] && kill -0 "$MASQD_PID" 2>/dev/null; then
        kill -KILL "$MASQD_PID" 2>/dev/null || true
    fi
    ip netns del "$NS" 2>/dev/null || true
    if dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null | grep -q .; then
        dpkg -P "$PKG" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    masq_log "FAIL: $*"
    exit 1
}
check() {
    masq_log "ok: $*"
}

masq_section "build the package"
if [ "$BUILD" = 1 ]; then
    cargo build --release -p dataplane -p control
fi
DEB="$(cargo xtask deb)"
[ -f "$DEB" ] || fail "cargo xtask deb printed no package ($DEB)"
masq_log "$DEB ($(du -h "$DEB" | cut -f1))"
dpkg-deb --info "$DEB" | sed -n '/Package:/,/Description:/p'

masq_section "install"
if dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null | grep -q .; then
    masq_log "purging a $PKG package left from before"
    dpkg -P "$PKG"
fi
dpkg -i "$DEB"
dpkg -L "$PKG" | sort >"$WORK/files"

[ "$(masqctl --version 2>/dev/null)" = "masqctl $(dpkg-query -W -f='${Version}' "$PKG" | sed 's/-[^-]*$//')" ] ||
    fail "masqctl --version: $(masqctl --version 2>&1)"
check "masqctl --version: $(masqctl --version 2>/dev/null)"
[ "$(/usr/sbin/masqd --version)" = "$(masqctl --version 2>/dev/null | sed 's/masqctl/masqd/')" ] ||
    fail "masqd --version: $(/usr/sbin/masqd --version)"
check "masqd --version: $(/usr/sbin/masqd --version)"
for page in masqctl masqd masqd.toml; do
    where="$(man -w "$page")" || fail "man -w $page"
    check "man -w $page: $where"
done
man masqd.toml 2>/dev/null | grep -q 'ports_per_subscriber' || fail "man masqd.toml does not render the [nat] keys"
for f in /usr/share/bash-completion/completions/masqctl /usr/share/bash-completion/completions/masqd \
    /usr/share/zsh/vendor-completions/_masqctl /usr/share/zsh/vendor-completions/_masqd; do
    [ -s "$f" ] || fail "completion $f missing"
done
bash -c '. /usr/share/bash-completion/completions/masqctl && complete -p masqctl' >/dev/null ||
    fail "the bash completion does not register for masqctl"
check "bash and zsh completions installed"
[ -f "$UNIT" ] || fail "$UNIT missing"
systemd-analyze verify "$UNIT" || fail "systemd-analyze verify $UNIT"
check "systemd-analyze verify $UNIT"
/usr/sbin/masqd --check --config /etc/masq/masqd.toml --rules /etc/masq/rules.v4 || fail "the example does not pass --check"
check "the example configuration passes masqd --check"

masq_section "run the unit's ExecStart with the example configuration"
exec_line() { sed -n "s/^$1=//p" "$UNIT" | head -n1; }
START="$(exec_line ExecStart)"
RELOAD="$(exec_line ExecReload)"
if [ -z "$START" ] || [ -z "$RELOAD" ]; then
    fail "ExecStart/ExecReload not found in $UNIT"
fi
masq_log "ExecStart=$START"
ip netns add "$NS"
ip -n "$NS" link set lo up
mkdir -p /run/masq
# shellcheck disable=SC2086 # the unit's command line, split as systemd splits it (no quotes in it)
ip netns exec "$NS" $START >"$WORK/masqd.log" 2>&1 &
MASQD_PID=$!
masq_wait_ready "$MASQD_PID" "$WORK/masqd.log" 60
check "masqd ready"
masqctl version | grep -q '^masqd ' || fail "masqctl does not reach masqd on the default socket: $(masqctl version 2>&1)"
masqctl -t nat -L -n | grep -q MASQUERADE || fail "the example rules are not loaded"
check "masqctl reaches it; the example rules are loaded"
# shellcheck disable=SC2086
$RELOAD || fail "ExecReload ($RELOAD) failed"
check "ExecReload: $RELOAD"
ip netns exec "$NS" curl -sS --fail --max-time 10 http://127.0.0.1:9469/metrics >"$WORK/metrics" ||
    fail "curl http://127.0.0.1:9469/metrics"
grep -q '^masq_port_rx_packets_total{port="lan"}' "$WORK/metrics" || fail "no port counters in /metrics"
promtool check metrics <"$WORK/metrics" || fail "promtool check metrics"
check "curl /metrics: $(grep -c '^masq_' "$WORK/metrics") samples, promtool accepts them"
kill -TERM "$MASQD_PID"
for _ in $(seq 1 150); do
    kill -0 "$MASQD_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$MASQD_PID" 2>/dev/null; then
    cat "$WORK/masqd.log"
    fail "masqd did not stop within 15 s of SIGTERM"
fi
rc=0
wait "$MASQD_PID" || rc=$?
MASQD_PID=
if [ "$rc" -ne 0 ] || ! grep -q 'masqd: clean shutdown' "$WORK/masqd.log"; then
    cat "$WORK/masqd.log"
    fail "masqd did not shut down cleanly (exit $rc)"
fi
check "SIGTERM: clean shutdown"
ip netns del "$NS"
rmdir /run/masq 2>/dev/null || true

masq_section "remove, then purge"
dpkg -r "$PKG"
for f in /usr/sbin/masqd /usr/bin/masqctl "$UNIT"; do
    [ ! -e "$f" ] || fail "dpkg -r left $f"
done
[ -f /etc/masq/masqd.toml ] || fail "dpkg -r removed the configuration (conffiles stay until purge)"
check "dpkg -r: programs gone, configuration kept"
dpkg -P "$PKG"
! dpkg-query -W "$PKG" >/dev/null 2>&1 || fail "dpkg still knows $PKG after purge"
left=()
while read -r f; do
    # Shared directories (/usr, /etc, ...) remain; nothing of ours may.
    if [ -e "$f" ] && ! [ -d "$f" ]; then
        left+=("$f")
    fi
done <"$WORK/files"
[ -e /etc/masq ] && left+=(/etc/masq)
[ -e /usr/share/doc/masq ] && left+=(/usr/share/doc/masq)
[ ${#left[@]} -eq 0 ] || fail "left behind after purge: ${left[*]}"
check "dpkg -P: nothing left"
masq_log "package-check: PASS"

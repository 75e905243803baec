#!/usr/bin/env bash
# masq's one test command. Works from any directory; CI runs it through .ci/run.
#
# Steps, in order (a failed step does not stop the later independent ones; the exit status
# is non-zero if any step failed):
#   setup            scripts/setup.sh (packages, toolchain check, hugepages)
#   lint-sh          shellcheck on every shell script in scripts/, perf/ and .ci/
#   fmt              cargo fmt --all --check
#   clippy           cargo clippy --workspace --all-targets -D warnings
#   clippy-nodpdk    the same for dataplane without DPDK (--no-default-features)
#   build-release    cargo build --release --workspace: integration tests run the real
#                    target/release/masqd (fat LTO, like production)
#   unit             unit tests of every crate, dev profile (fast to build; the release
#                    profile's fat LTO would relink every test binary)
#   doc              doc tests
#   unit-nodpdk      dataplane's unit tests without DPDK (the sans-I/O core)
#   fuzz             scripts/fuzz.sh: every fuzz target (dataplane/fuzz) built with libFuzzer
#                    and run for 60 s from its seed corpus; any crash fails (MASQ_FUZZ_TIME
#                    sets the seconds per target)
#   integration      dataplane/tests/*.rs etc. against the release masqd, EAL with --no-huge
#   integration-huge the same again on 2 MB hugepages (MASQ_TEST_HUGEPAGES=1); SKIP when
#                    setup could not reserve them
#   soak             dataplane/tests/soak.rs (ignored by the integration steps): session
#                    churn with short timeouts, rules restored every second, sessions
#                    listed and flushed, 64 control clients, for MASQ_SOAK_SECS seconds
#                    (default 75, about 2 minutes in all); then no mbuf leak, sessions
#                    back to zero, flat resident memory, every frame counted; SKIP when
#                    not root
#   compare-linux    perf/compare-linux.sh with 2 s windows: the same traffic crosses an
#                    nftables masquerade and masqd, all of it translated, and testpmd
#                    (untranslated, the af_packet ceiling; no timing checks); SKIP when
#                    not root
#   package          scripts/package-check.sh: build the Debian package (cargo xtask deb),
#                    dpkg -i it, check versions, man pages, completions, the unit
#                    (systemd-analyze verify), run the unit's ExecStart with the example
#                    configuration (metrics through promtool, reload, SIGTERM), then
#                    dpkg -r / dpkg -P and check nothing is left; SKIP when not root
#   bench-smoke      masq-bench --quick --json and a small masq-bench-mc (release): the
#                    JSON lines parse and have the headline keys (scripts/bench-smoke.sh;
#                    no timing assertions)
# Integration tests run one at a time (--test-threads=1): each masqd busy-polls a core
# and the machine has two. Override with MASQ_TEST_THREADS.
#
# Usage: scripts/test.sh [--no-setup]
# Logs: <target>/masq-test-logs/<step>.log
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

RUN_SETUP=1
for arg in "$@"; do
    case "$arg" in
    --no-setup) RUN_SETUP=0 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) masq_die "unknown argument: $arg (try --help)" ;;
    esac
done

cd "$ROOT"
masq_cargo_path
TARGET="$(masq_target_dir "$ROOT")"
LOGS="$TARGET/masq-test-logs"
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log
export MASQD="$TARGET/release/masqd"
export MASQ_TEST_SKIP_LOG="$LOGS/skipped.txt"
: >"$MASQ_TEST_SKIP_LOG"
TEST_THREADS="${MASQ_TEST_THREADS:-1}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

STEP_PID=
on_signal() {
    if [ -n "$STEP_PID" ]; then
        kill -TERM -- "-$STEP_PID" 2>/dev/null || true
        wait "$STEP_PID" 2>/dev/null || true
    fi
    masq_log "test.sh: interrupted"
    exit 130
}
trap on_signal INT TERM

STEP_NAMES=()
STEP_RESULTS=()
STEP_TIMES=()
FAILED=()

# run_step NAME TIMEOUT_SECONDS CMD...: runs CMD with a time limit, output to the console
# and to $LOGS/NAME.log; records PASS/FAIL.
run_step() {
    local name="$1" limit="$2"
    shift 2
    masq_section "$name: $*"
    local start rc=0
    start=$(date +%s)
    # timeout makes itself a process-group leader: on timeout (or our INT/TERM, see
    # on_signal) the whole group goes, cargo, test binaries and any masqd they started.
    timeout -k 30 "$limit" "$@" > >(tee "$LOGS/$name.log") 2>&1 &
    STEP_PID=$!
    wait "$STEP_PID" || rc=$?
    STEP_PID=
    local secs=$(($(date +%s) - start))
    if [ "$rc" -eq 124 ]; then
        masq_log "$name: timed out after ${limit}s"
    fi
    record "$name" "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)" "${secs}s"
    return 0
}

record() {
    STEP_NAMES+=("$1")
    STEP_RESULTS+=("$2")
    STEP_TIMES+=("$3")
    [ "$2" != FAIL ] || FAILED+=("$1")
}

skip_step() {
    masq_section "$1"
    masq_log "SKIP: $1: $2"
    record "$1" "SKIP ($2)" "-"
}

passed() {
    local i
    for i in "${!STEP_NAMES[@]}"; do
        if [ "${STEP_NAMES[$i]}" = "$1" ]; then
            [ "${STEP_RESULTS[$i]}" = PASS ]
            return
        fi
    done
    return 1
}

shell_scripts() {
    # every tracked or new shell script under scripts/, perf/ and .ci/
    find scripts perf .ci -type f \( -name '*.sh' -o -path '.ci/run' \) | sort
}

main() {
    local started
    started=$(date +%s)
    if [ "$RUN_SETUP" = 1 ]; then
        run_step setup 1800 bash "$ROOT/scripts/setup.sh"
        masq_cargo_path
    else
        skip_step setup "--no-setup"
    fi

    if command -v shellcheck >/dev/null 2>&1; then
        # shellcheck disable=SC2046 # word splitting of the file list is intended
        run_step lint-sh 120 shellcheck -x $(shell_scripts)
    else
        skip_step lint-sh "shellcheck not installed"
    fi
    run_step fmt 300 cargo fmt --all --check
    run_step clippy 1800 cargo clippy --workspace --all-targets -- -D warnings
    run_step clippy-nodpdk 1800 cargo clippy -p dataplane --no-default-features --all-targets -- -D warnings
    run_step build-release 2400 cargo build --release --workspace
    run_step unit 1800 cargo test --workspace --lib --bins
    run_step doc 1200 cargo test --workspace --doc
    run_step unit-nodpdk 1200 cargo test -p dataplane --no-default-features --lib
    run_step fuzz 1500 bash "$ROOT/scripts/fuzz.sh" --time "${MASQ_FUZZ_TIME:-60}"

    if ! passed build-release; then
        skip_step integration "release build failed"
        skip_step integration-huge "release build failed"
        skip_step compare-linux "release build failed"
        skip_step soak "release build failed"
    else
        MASQ_TEST_HUGEPAGES='' run_step integration 1800 \
            cargo test --workspace --test '*' -- --test-threads="$TEST_THREADS"
        local free
        free="$(masq_hugepages_free_mb)"
        if [ "$free" -ge "$MASQ_TEST_MEM_MB" ]; then
            MASQ_TEST_HUGEPAGES=1 run_step integration-huge 1800 \
                cargo test --workspace --test '*' -- --test-threads="$TEST_THREADS"
        else
            skip_step integration-huge "hugepages not available (${free} MB free, need ${MASQ_TEST_MEM_MB})"
        fi
        if masq_is_root; then
            # MASQ_SOAK_SECS (default 75) is passed through: set it for a longer soak.
            run_step soak 600 cargo test -p dataplane --test soak -- --ignored --test-threads=1
        else
            skip_step soak "needs root (network namespaces)"
        fi
        if masq_is_root; then
            run_step compare-linux 300 bash "$ROOT/perf/compare-linux.sh" --no-setup --no-build \
                --duration 2 --warmup 1
        else
            skip_step compare-linux "needs root (network namespaces)"
        fi
    fi

    if ! passed build-release; then
        skip_step package "release build failed"
    elif masq_is_root; then
        run_step package 1200 bash "$ROOT/scripts/package-check.sh" --no-build
    else
        skip_step package "needs root (dpkg -i)"
    fi

    if passed build-release; then
        run_step bench-smoke 300 bash "$ROOT/scripts/bench-smoke.sh" "$TARGET/release/masq-bench"
    else
        skip_step bench-smoke "release build failed"
    fi

    summary "$(($(date +%s) - started))"
}

summary() {
    masq_section "summary"
    local i
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-18s %-6s %s\n' "${STEP_NAMES[$i]}" "${STEP_TIMES[$i]}" "${STEP_RESULTS[$i]}"
    done
    # Sum cargo's per-binary "test result: ok. N passed; M failed; K ignored; ..." lines.
    local totals
    totals="$(cat "$LOGS"/*.log 2>/dev/null | awk '
        /^test result: / {
            for (i = 1; i <= NF; i++) {
                if ($(i+1) ~ /^passed;?$/) p += $i
                if ($(i+1) ~ /^failed;?$/) f += $i
                if ($(i+1) ~ /^ignored;?$/) s += $i
            }
        }
        END { printf "%d %d %d\n", p, f, s }')"
    local np nf ns
    read -r np nf ns <<<"$totals"
    local nskip
    nskip=$(grep -c '^SKIP' "$MASQ_TEST_SKIP_LOG" 2>/dev/null || true)
    if [ "${nskip:-0}" -gt 0 ]; then
        masq_log "  tests that skipped themselves (counted as passed by cargo):"
        sed 's/^/    /' "$MASQ_TEST_SKIP_LOG"
    fi
    masq_log "  total time ${1}s; logs in $LOGS"
    if [ ${#FAILED[@]} -eq 0 ]; then
        masq_log "RESULT: PASS"
    else
        masq_log "RESULT: FAIL (${FAILED[*]})"
    fi
    masq_log "tests: $np passed, $nf failed, $ns skipped"
    [ ${#FAILED[@]} -eq 0 ]
}

main

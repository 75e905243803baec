#!/usr/bin/env bash
# Build masq's fuzz targets (dataplane/fuzz) with libFuzzer on the stable toolchain and run
# each for a bounded time, starting from its seed corpus. Any crash fails the run.
#
# Targets (dataplane/fuzz/fuzz_targets/; what each checks: dataplane/fuzz/README.md):
#   packet_parser   bytes through the packet views, rewriters and ICMP error builder
#   rules_save      iptables-save text (masqd --rules, rules.restore, SIGHUP)
#   masqctl_line    masqctl's command line
#   config_toml     masqd's TOML configuration
#   control_request control-protocol lines into masqd's handler (a worker answering)
#   frames          frame sequences through two workers with NAT, rules and handoff
#
# Usage: scripts/fuzz.sh [--build-only] [--time SECONDS] [--jobs N] [TARGET...]
#   --time SECONDS   per target (default 60); CI runs every target with the default
#   --jobs N         libFuzzer processes per target (default 1)
#   TARGET...        only these (default: every target)
# Corpus (grows, not in git): <target>/fuzz-corpus/TARGET; crashes and their reproducers:
# <target>/fuzz-artifacts/TARGET/. Reproduce one with
#   <target>/fuzz/x86_64-unknown-linux-gnu/release/TARGET <crash-file>
# A long campaign: docs/fuzzing.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

ALL_TARGETS=(packet_parser rules_save masqctl_line config_toml control_request frames)
TIME=60
JOBS=1
BUILD_ONLY=0
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --build-only) BUILD_ONLY=1 ;;
    --time)
        TIME="${2:?--time needs seconds}"
        shift
        ;;
    --jobs)
        JOBS="${2:?--jobs needs a number}"
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    -*) masq_die "unknown option: $1 (try --help)" ;;
    *)
        [[ " ${ALL_TARGETS[*]} " == *" $1 "* ]] || masq_die "unknown target: $1 (targets: ${ALL_TARGETS[*]})"
        TARGETS+=("$1")
        ;;
    esac
    shift
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
case "$TIME" in '' | *[!0-9]*) masq_die "--time: not a number of seconds: $TIME" ;; esac

masq_cargo_path
TARGET_DIR="$(masq_target_dir "$ROOT")"
FUZZ="$ROOT/dataplane/fuzz"
TRIPLE="$(rustc -vV | awk '/^host:/ {print $2}')"
BIN_DIR="$TARGET_DIR/fuzz/$TRIPLE/release"

# What cargo-fuzz passes for `cargo fuzz build -s none`: SanitizerCoverage feeds libFuzzer
# (stable rustc flags); --target keeps the flags off build scripts. No -Zsanitizer: that
# would need nightly, and dataplane denies unsafe code (see docs/fuzzing.md).
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export RUSTFLAGS
masq_section "fuzz: building ${TARGETS[*]}"
bins=()
for t in "${TARGETS[@]}"; do bins+=(--bin "$t"); done
CARGO_TARGET_DIR="$TARGET_DIR/fuzz" cargo build --release --manifest-path "$FUZZ/Cargo.toml" \
    --target "$TRIPLE" "${bins[@]}"
unset RUSTFLAGS
[ "$BUILD_ONLY" = 0 ] || exit 0

FAILED=()
for t in "${TARGETS[@]}"; do
    corpus="$TARGET_DIR/fuzz-corpus/$t"
    artifacts="$TARGET_DIR/fuzz-artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    args=(-max_total_time="$TIME" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$artifacts/")
    [ ! -f "$FUZZ/dict/$t.dict" ] || args+=(-dict="$FUZZ/dict/$t.dict")
    [ "$JOBS" -le 1 ] || args+=(-jobs="$JOBS" -workers="$JOBS")
    case "$t" in
    packet_parser | frames) args+=(-max_len=4096) ;;
    *) args+=(-max_len=8192) ;;
    esac
    masq_section "fuzz: $t for ${TIME}s (seeds: dataplane/fuzz/seeds/$t)"
    # libFuzzer runs every seed first, then mutates; it exits non-zero on a crash, a
    # timeout (one input > 10 s) or running out of memory, leaving the input in $artifacts.
    # A hard limit on top, in case it hangs somewhere it cannot notice.
    if timeout -k 10 $((TIME * 2 + 120)) "$BIN_DIR/$t" "${args[@]}" "$corpus" "$FUZZ/seeds/$t" 2>&1 |
        grep -v -e '^#[0-9]' -e '^"' -e '^######' ; [ "${PIPESTATUS[0]}" -eq 0 ]; then
        masq_log "fuzz: $t: no crash in ${TIME}s"
    else
        masq_log "fuzz: $t: FAILED; reproducers in $artifacts:"
        ls -l "$artifacts" || true
        FAILED+=("$t")
    fi
done
if [ ${#FAILED[@]} -gt 0 ]; then
    masq_die "fuzz: crashes in: ${FAILED[*]}"
fi
masq_log "fuzz: every target ran ${TIME}s without a crash"

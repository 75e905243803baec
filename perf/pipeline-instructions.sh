#!/usr/bin/env bash
# Instructions per packet of the worker's pipeline, by mode, counted by callgrind:
# stable on a shared, noisy machine where wall-clock figures are not.
#
#   perf/pipeline-instructions.sh [SESSIONS] [BURSTS]     (defaults 100000 1000)
#
# Runs target/release/masq-pipeline-cost (cargo build --release -p perf) under
# `valgrind --tool=callgrind`, counting only its measured bursts, for `nat` (established
# flows), `fwd` (the same frames, plain forwarding) and `new` (one new session per
# frame), with the stage timing off and on (what the runtime counters cost). The figures
# include the in-memory I/O's own cost (about 270 instructions per packet: the frame
# writer and queues). Needs valgrind (apt-get install valgrind); takes a minute or two.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

SESSIONS="${1:-100000}"
BURSTS="${2:-1000}"
BIN="$(masq_target_dir "$ROOT")/release/masq-pipeline-cost"
[ -x "$BIN" ] || masq_die "masq-pipeline-cost not found at $BIN (cargo build --release -p perf)"
command -v valgrind >/dev/null 2>&1 || masq_die "valgrind is needed (apt-get install valgrind)"

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

count() { # mode bursts extra-args...
    local mode="$1" bursts="$2"
    shift 2
    local log="$OUT/$mode.log"
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" --toggle-collect='*measured*' \
        "$BIN" --mode "$mode" --sessions "$SESSIONS" --bursts "$bursts" "$@" >"$log" 2>&1 ||
        masq_die "masq-pipeline-cost --mode $mode failed: $(tail -n 5 "$log")"
    local instructions packets
    instructions="$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log")"
    packets="$(sed -n 's/^mode [A-Za-z]*: \([0-9]*\) packets.*/\1/p' "$log")"
    if [ -z "$instructions" ] || [ -z "$packets" ]; then
        masq_die "no count in $log"
    fi
    echo $((instructions / packets))
}

printf '%-5s %14s %14s\n' mode "instr/packet" "+runtime"
for mode in nat fwd new; do
    bursts="$BURSTS"
    [ "$mode" = new ] && bursts=$((BURSTS / 2))
    off="$(count "$mode" "$bursts" --no-runtime)"
    on="$(count "$mode" "$bursts")"
    printf '%-5s %14s %14s\n' "$mode" "$off" "$on"
done

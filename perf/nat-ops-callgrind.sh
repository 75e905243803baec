#!/usr/bin/env bash
# Instructions (and simulated cache misses) per session creation, for each scenario of
# perf::natops, counted by callgrind: stable on a shared machine, unlike timings. The
# cache simulation is fixed (32 KiB 8-way D1, 1 MiB 16-way last level: the L1d and L2 of
# one core of the development machine), so "L2mr" counts the misses that would go to L3
# or memory, whatever machine runs it.
#
# Usage: perf/nat-ops-callgrind.sh [OUTDIR]   (callgrind.out files kept in OUTDIR if given)
# Needs valgrind (Debian package valgrind). Builds examples/nat-ops (release) first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

command -v valgrind >/dev/null 2>&1 || masq_die "valgrind not found (apt-get install valgrind)"
masq_cargo_path
OUT="${1:-}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$ROOT" && cargo build --release -p perf --no-default-features --example nat-ops) >&2
BIN="$(masq_target_dir "$ROOT")/release/examples/nat-ops"

printf '%-22s %10s %10s %10s  %s\n' scenario Ir/session D1mr/sess L2mr/sess "(nat-ops output)"
for s in new-mapping-sparse new-mapping-filling existing-mapping; do
    f="$TMP/callgrind.out.$s"
    info="$(valgrind --tool=callgrind --cache-sim=yes --D1=32768,8,64 --LL=1048576,16,64 --toggle-collect='*natops*create_flows*' \
        --callgrind-out-file="$f" "$BIN" "$s" 2>/dev/null)"
    sessions="$(sed -n 's/^[^:]*: \([0-9]*\) sessions.*/\1/p' <<<"$info")"
    # events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
    read -r ir d1 ll <<<"$(awk '/^(summary|totals):/ { print $2, $6 + $7, $9 + $10; exit }' "$f")"
    awk -v s="$s" -v n="$sessions" -v ir="$ir" -v d1="$d1" -v ll="$ll" -v i="$info" \
        'BEGIN { printf "%-22s %10.0f %10.2f %10.3f  %s\n", s, ir / n, d1 / n, ll / n, i }'
    [ -z "$OUT" ] || { mkdir -p "$OUT" && cp "$f" "$OUT/"; }
done

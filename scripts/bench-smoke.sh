#!/usr/bin/env bash
# CI smoke test of masq-bench: runs `masq-bench --quick --json` (and a small
# `masq-bench-mc`) and checks that the last
# line of its output is one JSON object with the headline keys. No timing assertions: the
# figures depend on the machine and its load.
#
# Usage: scripts/bench-smoke.sh [PATH-TO-masq-bench]   (default: <target>/release/masq-bench)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

BENCH="${1:-$(masq_target_dir "$ROOT")/release/masq-bench}"
[ -x "$BENCH" ] || masq_die "masq-bench not found at $BENCH (cargo build --release -p perf)"
command -v python3 >/dev/null 2>&1 || masq_die "python3 is needed to check the JSON (scripts/setup.sh installs it)"

OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
masq_log "running: $BENCH --quick --json"
"$BENCH" --quick --json | tee "$OUT"

tail -n 1 "$OUT" | python3 -c '
import json, math, sys
line = sys.stdin.read()
try:
    v = json.loads(line)
except ValueError as e:
    sys.exit("bench-smoke: last line is not JSON (%s): %r" % (e, line[:200]))
keys = ["sessions", "nat_mpps", "forward_mpps", "nat_forward_ratio",
        "new_sessions_per_sec", "bytes_per_session", "latency_p99_us", "return_share"]
missing = [k for k in keys if k not in v]
if missing:
    sys.exit("bench-smoke: JSON lacks " + ", ".join(missing))
bad = [k for k in keys if not isinstance(v[k], (int, float)) or not math.isfinite(v[k]) or v[k] < 0]
if bad:
    sys.exit("bench-smoke: not a finite non-negative number: " + ", ".join(bad))
if v["sessions"] <= 0:
    sys.exit("bench-smoke: no sessions were measured")
print("bench-smoke: JSON line OK: " + ", ".join("%s=%s" % (k, v[k]) for k in keys))
'

# masq-bench-mc (one vs two workers) beside it: a small run, the JSON keys and no drop.
MC="$(dirname "$BENCH")/masq-bench-mc"
[ -x "$MC" ] || masq_die "masq-bench-mc not found at $MC (cargo build --release -p perf)"
masq_log "running: $MC --sessions 1000 --subscribers 100 --frames 4096 --runs 1 --mem 512 --json"
"$MC" --sessions 1000 --subscribers 100 --frames 4096 --runs 1 --mem 512 --json | tee "$OUT"
tail -n 1 "$OUT" | python3 -c '
import json, math, sys
v = json.loads(sys.stdin.read())
keys = ["one_worker_mpps", "two_workers_rss_mpps", "two_workers_one_queue_mpps", "scaling_rss",
        "scaling_one_queue", "handed_off_share_one_queue", "return_share"]
bad = [k for k in keys if not isinstance(v.get(k), (int, float)) or not math.isfinite(v[k]) or v[k] < 0]
if bad:
    sys.exit("bench-smoke: masq-bench-mc JSON lacks or has bad " + ", ".join(bad))
# A busy peer makes a worker hold frames back (back-pressure), never drop them: the
# preloaded rings lose nothing, so any drop is a bug, whatever the load of the machine.
if v.get("dropped") != 0:
    sys.exit("bench-smoke: masq-bench-mc dropped %s frames (handoff_full: %s)" % (v.get("dropped"), v.get("handoff_full_one_queue")))
if v["sessions"] != 1000:
    sys.exit("bench-smoke: masq-bench-mc held %s sessions, want 1000" % v["sessions"])
if v["handed_off_share_one_queue"] <= 0:
    sys.exit("bench-smoke: with one queue nothing was handed to the second worker")
print("bench-smoke: masq-bench-mc JSON line OK")
'

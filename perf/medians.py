#!/usr/bin/env python3
"""Medians over several masq-bench runs.

Usage: perf/medians.py [--best] OUT1 OUT2 OUT3 ...   (each the stdout of `masq-bench --json`,
or a file of such JSON lines, one per run)

Reads every masq-bench JSON line in the files and prints, per session count, the median
over the runs of every headline figure (each run's figure is itself the median of its
--runs throughput runs), as a Markdown table. --best takes each figure's best value
instead (highest rate, lowest memory and latency; the ratio is best NAT rate over best
forwarding rate): on a shared machine other processes only ever slow the worker down,
so the best run is the closest to what it can do alone.
"""
import json
import statistics
import sys

FIELDS = [
    ("nat_mpps", "NAT Mpps", "{:.2f}"),
    ("forward_mpps", "fwd Mpps", "{:.2f}"),
    ("nat_forward_ratio", "NAT/fwd", "{:.2f}"),
    ("nat_cycles_per_packet", "NAT cyc/pkt", "{:.0f}"),
    ("forward_cycles_per_packet", "fwd cyc/pkt", "{:.0f}"),
    ("new_sessions_per_sec", "new sess/s", "{:,.0f}"),
    ("teardown_per_sec", "teardown/s", "{:,.0f}"),
    ("table_capacity", "capacity", "{:.0f}"),
    ("bytes_per_session", "B/session (RSS)", "{:.0f}"),
    ("nat_table_bytes_per_session", "B/session (tables)", "{:.0f}"),
]
LAT = [(0.1, "p99 µs @10%"), (0.5, "p50 µs @50%"), (0.5, "p99 µs @50%"), (0.9, "p99 µs @90%")]


HIGHER_IS_BETTER = {"nat_mpps", "forward_mpps", "nat_forward_ratio", "new_sessions_per_sec",
                    "teardown_per_sec", "table_capacity"}


def main(paths):
    best = "--best" in paths
    paths = [p for p in paths if p != "--best"]

    def pick(key, vals):
        vals = list(vals)
        if not best:
            return statistics.median(vals)
        return max(vals) if key in HIGHER_IS_BETTER else min(vals)

    if not paths:
        sys.exit(__doc__)
    per = {}
    for p in paths:
        with open(p, encoding="utf-8") as f:
            reports = []
            for line in f.read().splitlines():
                if not line.startswith("{"):
                    continue
                try:
                    reports.append(json.loads(line)["report"])
                except (ValueError, KeyError):
                    continue
        if not reports:
            sys.exit(f"{p}: no masq-bench JSON line (run it with --json)")
        for rep in reports:
            for pt in rep["points"]:
                pt["tsc_hz"] = rep.get("tsc_hz", 0)
                per.setdefault(pt["sessions"], []).append(pt)
    heads = ["sessions", "runs"] + [h for _, h, _ in FIELDS] + [h for _, h in LAT]
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for n in sorted(per):
        pts = per[n]
        row = [f"{n:,}", str(len(pts))]
        for key, _, fmt in FIELDS:
            if key == "nat_forward_ratio" and best:
                # the best NAT rate over the best forwarding rate, not the luckiest ratio
                top_f = max(p["forward_mpps"] for p in pts)
                row.append(fmt.format(max(p["nat_mpps"] for p in pts) / top_f) if top_f else "-")
                continue
            if key.endswith("cycles_per_packet") and best:
                rate = "nat_mpps" if key.startswith("nat") else "forward_mpps"
                hz = statistics.median(p.get("tsc_hz", 0) or 0 for p in pts)
                top = max(p[rate] for p in pts)
                row.append(fmt.format(hz / (top * 1e6)) if hz and top else "-")
                continue
            row.append(fmt.format(pick(key, (p[key] for p in pts))))
        for i, (load, head) in enumerate(LAT):
            q = "p50_us" if "p50" in head else "p99_us"
            vals = [l[q] for p in pts for l in p["latency"] if abs(l["load"] - load) < 1e-9]
            row.append(f"{pick('latency', vals):.1f}" if vals else "-")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])

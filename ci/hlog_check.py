"""Read vnet-bench's latency logs with HdrHistogram's own Python implementation (hdrh).

For every summary.json under the folders given: each DUT's `DUT.hlog` must parse, hold one
interval per latency point, and agree with what summary.json says of it (the count
exactly; p50 and p99 within HdrHistogram's 3-significant-digit bucket resolution).
Exits 1 on the first disagreement, printing it.
"""
import json
import pathlib
import sys

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader


def close(a, b):
    """Equal within 3 significant digits' bucket width (plus one ns)."""
    return abs(a - b) <= max(a, b) * 2e-3 + 1


def check(summary_path):
    folder = summary_path.parent
    s = json.loads(summary_path.read_text())
    checked = 0
    for d in s["duts"]:
        points = d.get("latency") or []
        if not points:
            continue
        hlog = folder / f"{d['dut']}.hlog"
        reader = HistogramLogReader(str(hlog), HdrHistogram(1, 10**12, 3))
        by_tag = {}
        while True:
            h = reader.get_next_interval_histogram()
            if h is None:
                break
            by_tag[h.get_tag()] = h
        for p in points:
            h = by_tag.get(p["hlog_tag"])
            if h is None:
                sys.exit(f"{hlog}: no interval tagged {p['hlog_tag']}")
            got = (h.get_total_count(), h.get_value_at_percentile(50), h.get_value_at_percentile(99))
            want = (p["count"], p["p50_ns"], p["p99_ns"])
            if got[0] != want[0] or not close(got[1], want[1]) or not close(got[2], want[2]):
                sys.exit(f"{hlog} {p['hlog_tag']}: hdrh reads count/p50/p99 {got}, summary.json says {want}")
            checked += 1
    return checked


def main():
    total = 0
    files = 0
    for root in sys.argv[1:]:
        for summary in sorted(pathlib.Path(root).rglob("summary.json")):
            total += check(summary)
            files += 1
    if total == 0:
        sys.exit(f"no latency points found under {sys.argv[1:]}")
    print(f"hlog interop: {total} latency intervals in {files} result folders read by hdrh agree with summary.json")


main()

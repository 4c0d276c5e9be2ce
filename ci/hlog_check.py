"""Read vnet-bench's latency logs with HdrHistogram's own Python implementation (hdrh).

For every summary.json under the folders given, each DUT's `DUT.hlog` must parse, hold an
interval for every latency point, and agree exactly with what summary.json says of it:

- the count, exactly;
- p50, p90, p99, p99.9 and p99.99: the value the Rust side (the `hdrhistogram` crate's
  `value_at_quantile`) computes from that very histogram must fall in the same HdrHistogram
  bucket (equivalent value range) as summary.json's value.

Why this is exact and the rank rule matters. summary.json's percentiles and the .hlog
interval come from the same `Histogram<u64>` (harness/src/bench/mod.rs), and the V2 log
encoding keeps every count, so hdrh decodes the same counts in the same bucket layout
(the header carries lowest 1, highest 1e11, 3 significant digits). A percentile is "walk
the buckets, return the highest value equivalent to the first bucket where the running
count reaches the rank". The two implementations differ only in the rank:

    Rust crate (7.x):  rank = max(1, ceil(q * n))           q * n in f64
    hdrh (Python):     rank = max(1, int(p * n / 100 + 0.5))  rounded to nearest

When q * n has a fraction below one half (e.g. 0.99 * 11453 = 11338.47: Rust 11339,
hdrh 11338) and the running count lands exactly on hdrh's rank at a bucket's end, the
two pick different buckets. Those are not neighbouring values: the sink records each
frame at the midpoint of its own log-linear bucket (32 per power of two, ~1.6-3.1 %
wide; harness/src/bench/sink.rs), so the nonzero HdrHistogram buckets are at least one
sink bucket apart (16384 ns at 778 us, 2.1 %) and, in a sparse tail, any distance apart.
No tolerance fits that, so this check uses the Rust rank rule on hdrh's decoded counts
and asks for the same bucket. hdrh's own get_value_at_percentile is checked too: the
same walk at hdrh's rank must give its answer, so the walk here is the library's walk.

Usage:
    python hlog_check.py DIR...              check every summary.json under DIR...
    python hlog_check.py --self-test DIR     plant wrong values in copies of the first
                                             result folder under DIR; each must be caught
Exits 1 (printing every disagreement) when a check fails.
"""
import json
import math
import pathlib
import shutil
import sys
import tempfile

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

# summary.json field, the quantile the Rust side passes to value_at_quantile
# (harness/src/bench/results.rs latency_point), and the same as an hdrh percentile.
PERCENTILES = [
    ("p50_ns", 0.5, 50.0),
    ("p90_ns", 0.9, 90.0),
    ("p99_ns", 0.99, 99.0),
    ("p999_ns", 0.999, 99.9),
    ("p9999_ns", 0.9999, 99.99),
]


def rust_rank(quantile, total):
    """The count value_at_quantile walks to: ceil(q * n) in f64 (Python floats are the
    same IEEE doubles, so the product rounds exactly as Rust's does), at least 1."""
    return max(1, math.ceil(quantile * float(total)))


def values_at_ranks(h, ranks):
    """HdrHistogram's percentile walk over h's counts, for several ranks in one pass:
    for each rank, the highest value equivalent to the first bucket at which the running
    count reaches it (0 when the histogram holds fewer values, as both libraries do)."""
    todo = sorted(set(ranks))
    found = {}
    running = 0
    for index in range(h.counts_len):
        if not todo:
            break
        running += h.get_count_at_index(index)
        while todo and running >= todo[0]:
            found[todo.pop(0)] = h.get_highest_equivalent_value(h.get_value_from_index(index))
    return [found.get(r, 0) for r in ranks]


def read_intervals(hlog):
    """Every tagged interval of an interval log, decoded by hdrh, by tag."""
    # The reference histogram is only hdrh's reader API; each interval is decoded with
    # the bounds and significant digits written in its own header.
    reader = HistogramLogReader(str(hlog), HdrHistogram(1, 10**12, 3))
    by_tag = {}
    while True:
        h = reader.get_next_interval_histogram()
        if h is None:
            return by_tag
        by_tag[h.get_tag()] = h


def check_point(where, h, point):
    """The disagreements between one decoded interval and its summary.json latency point."""
    problems = []
    total = h.get_total_count()
    if total != point["count"]:
        problems.append(f"{where} count: hdrh reads {total}, summary.json says {point['count']}")
    ours = values_at_ranks(h, [rust_rank(q, total) for _, q, _ in PERCENTILES])
    # Cross-check: at hdrh's own ranks this walk must give hdrh's own answers.
    hdrh_vals = {p: h.get_value_at_percentile(p) for _, _, p in PERCENTILES}
    hdrh_walk = values_at_ranks(h, [h.get_target_count_at_percentile(p) for _, _, p in PERCENTILES])
    for (field, q, p), got, walked in zip(PERCENTILES, ours, hdrh_walk):
        if walked != hdrh_vals[p]:
            problems.append(f"{where} {field}: this walk gives {walked} at hdrh's rank, "
                            f"hdrh's get_value_at_percentile({p}) gives {hdrh_vals[p]}")
        want = point[field]
        if h.get_lowest_equivalent_value(got) != h.get_lowest_equivalent_value(want):
            lo = h.get_lowest_equivalent_value(got)
            problems.append(
                f"{where} {field}: the counts hdrh decodes give {got} (bucket "
                f"{lo}..{h.get_highest_equivalent_value(got)}, rank {rust_rank(q, total)} of "
                f"{total} as value_at_quantile({q}) counts), summary.json says {want}; "
                f"hdrh's own get_value_at_percentile({p}) says {hdrh_vals[p]}")
    return problems


def check(summary_path):
    """(latency points checked, disagreements) for one result folder."""
    folder = summary_path.parent
    s = json.loads(summary_path.read_text())
    checked, problems = 0, []
    # The DUTs, then the harness floor (from 0.2.0: floor.hlog, summary's harness_floor).
    series = [(d["dut"], d.get("latency")) for d in s["duts"]]
    series.append(("floor", s.get("harness_floor")))
    for name, points in series:
        points = points or []
        if not points:
            continue
        hlog = folder / f"{name}.hlog"
        if not hlog.exists():
            problems.append(f"{hlog}: missing ({len(points)} latency points in summary.json)")
            continue
        by_tag = read_intervals(hlog)
        for p in points:
            h = by_tag.get(p["hlog_tag"])
            if h is None:
                problems.append(f"{hlog}: no interval tagged {p['hlog_tag']}")
                continue
            problems += check_point(f"{hlog} {p['hlog_tag']}", h, p)
            checked += 1
    return checked, problems


def check_dirs(roots):
    """Check every summary.json under roots; print a line and return the exit status."""
    total, files, problems = 0, 0, []
    for root in roots:
        for summary in sorted(pathlib.Path(root).rglob("summary.json")):
            n, p = check(summary)
            total += n
            files += 1
            problems += p
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"hlog interop: {len(problems)} disagreement(s) between the .hlog files and "
              f"summary.json", file=sys.stderr)
        return 1
    if total == 0:
        print(f"hlog interop: no latency points found under {roots}", file=sys.stderr)
        return 1
    print(f"hlog interop: {total} latency intervals in {files} result folders read by hdrh "
          f"agree exactly with summary.json (count; p50/p90/p99/p99.9/p99.99 in the same "
          f"bucket at value_at_quantile's rank)")
    return 0


def self_test(root):
    """Plant wrong values in copies of the first result folder under root; the check must
    pass the untouched copy and catch every plant, naming the field."""
    summary = next((s for s in sorted(pathlib.Path(root).rglob("summary.json"))
                    if any(d.get("latency") for d in json.loads(s.read_text())["duts"])), None)
    if summary is None:
        print(f"hlog self-test: no result folder with latency points under {root}", file=sys.stderr)
        return 1
    original = json.loads(summary.read_text())
    dut = next(d for d in original["duts"] if d.get("latency"))
    h = read_intervals(summary.parent / f"{dut['dut']}.hlog")[dut["latency"][0]["hlog_tag"]]
    p99 = dut["latency"][0]["p99_ns"]
    plants = [
        # (description, field, new value)
        ("p99 + 5 %", "p99_ns", round(p99 * 1.05)),
        ("p99 - 5 %", "p99_ns", round(p99 * 0.95)),
        # The smallest wrong value there is: the first value of the next bucket.
        ("p99 one HdrHistogram bucket up", "p99_ns", h.get_highest_equivalent_value(p99) + 1),
        ("p50 one HdrHistogram bucket down", "p50_ns",
         h.get_lowest_equivalent_value(dut["latency"][0]["p50_ns"]) - 1),
        ("count + 1", "count", dut["latency"][0]["count"] + 1),
    ]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="hlog-selftest-") as tmp:
        copy = pathlib.Path(tmp) / summary.parent.name
        shutil.copytree(summary.parent, copy)
        n, problems = check(copy / "summary.json")
        if problems or n == 0:
            print(f"hlog self-test: the untouched copy of {summary.parent} does not pass: "
                  f"{problems}", file=sys.stderr)
            return 1
        for what, field, value in plants:
            planted = json.loads(json.dumps(original))
            point = next(d for d in planted["duts"] if d.get("latency"))["latency"][0]
            old = point[field]
            point[field] = value
            (copy / "summary.json").write_text(json.dumps(planted))
            _, problems = check(copy / "summary.json")
            caught = [p for p in problems if f" {field}:" in p]
            if caught:
                print(f"hlog self-test: planted {what} ({field} {old} -> {value}) in "
                      f"{dut['dut']} {point['hlog_tag']}: caught")
            else:
                print(f"hlog self-test: planted {what} ({field} {old} -> {value}) in "
                      f"{dut['dut']} {point['hlog_tag']}: NOT caught", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


def main():
    args = sys.argv[1:]
    if args[:1] == ["--self-test"] and len(args) == 2:
        sys.exit(self_test(args[1]))
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    sys.exit(check_dirs(args))


main()

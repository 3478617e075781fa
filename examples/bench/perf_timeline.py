#!/usr/bin/env python3
"""Which thread did what, 10 ms at a time, in a `perf record` of one run.

    perf record -F 4000 -g -o perf.data target/release/cdc-lake sync ...
    perf script -i perf.data -F tid,time,ip,sym > perf.txt
    examples/bench/perf_timeline.py perf.txt [WINDOW_SECONDS]

Each sample is put in a category by the first pattern of CATEGORIES found in its stack (else
its leaf function); each window prints, per thread, its samples and top three categories. At
4 000 Hz a thread busy for a whole 10 ms window has 40 samples: gaps show where a core idled.
"""
import collections
import re
import sys

CATEGORIES = [
    ("split", "records_of"), ("split", "split_lines"), ("pagefault", "exc_page_fault"),
    ("decode", "single_pass"), ("decode", "scan::"), ("decode", "serde_json"),
    ("decode", "decode::"), ("fold", "cdc_core::fold"), ("keys", "arrow_row"),
    ("parquet", "parquet::"), ("parquet", "snap::"), ("take", "arrow_select"),
    ("hudi", "cdc_hudi"), ("delta", "cdc_delta"), ("iceberg", "cdc_iceberg"),
    ("upsert", "upsert"), ("alloc", "malloc"), ("alloc", "free"), ("mem", "memcpy"),
    ("mem", "memmove"), ("mem", "memset"), ("kernel", "ffffffff"), ("loader", "_dl_"),
]


def samples(path):
    for block in open(path).read().split("\n\n"):
        lines = block.strip().split("\n")
        head = re.match(r"\s*(\d+)\s+([\d.]+):", lines[0]) if lines else None
        if not head:
            continue
        stack = "\n".join(lines[1:])
        category = next((name for name, pattern in CATEGORIES if pattern in stack), None)
        if category is None:
            leaf = lines[1].split() if len(lines) > 1 else []
            category = "leaf:" + (leaf[1][:30] if len(leaf) > 1 else "?")
        yield float(head.group(2)), int(head.group(1)), category


def main():
    window = float(sys.argv[2]) if len(sys.argv) > 2 else 0.01
    rows = list(samples(sys.argv[1]))
    start = min(t for t, _, _ in rows)
    by_window = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
    for t, tid, category in rows:
        by_window[int((t - start) / window)][tid][category] += 1
    totals = collections.Counter(c for _, _, c in rows)
    print("samples", len(rows), totals.most_common(12))
    for w in sorted(by_window):
        threads = []
        for tid, counts in by_window[w].items():
            top = ",".join(f"{k} {v}" for k, v in counts.most_common(3))
            threads.append(f"{tid}: {sum(counts.values()):3d} {top}")
        print(f"{w * window * 1000:6.0f} ms | " + " | ".join(threads))


if __name__ == "__main__":
    main()

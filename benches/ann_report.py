"""Summarises benches/ann.sh's CSV: a markdown table per data set (build time on 1 and 2
threads, index bytes, QPS at recall 0.90 / 0.95 / 0.99, recall at ef = 96, ratios to hnswlib)
and a PNG plot per data set (recall on x, QPS on a log y axis, one line per engine).

usage: ann_report.py RESULTS.csv OUT_DIR
"""

import csv
import os
import statistics
import sys
from collections import defaultdict

TARGETS = (0.90, 0.95, 0.99)


def qps_at(points, target):
    """QPS at `target` recall, log-linearly interpolated between the sweep's points."""
    pts = sorted(points)
    for (r1, q1), (r2, q2) in zip(pts, pts[1:]):
        if r1 <= target <= r2:
            if r2 == r1:
                return max(q1, q2)
            f = (target - r1) / (r2 - r1)
            return q1 ** (1 - f) * q2**f
    for r, q in pts:
        if r >= target:
            return q
    return None


def fmt(x, digits=0):
    return "-" if x is None else f"{x:,.{digits}f}"


def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def main():
    src, out = sys.argv[1], sys.argv[2]
    rows = [r for r in csv.DictReader(open(src)) if r["engine"] != "engine"]
    by_data = defaultdict(list)
    for r in rows:
        by_data[r["data"]].append(r)
    report = []
    for data, rs in by_data.items():
        builds = defaultdict(list)  # (engine, threads) -> build seconds, one per round
        size = {}
        # (engine, build threads) -> round -> [(recall, qps)]
        sweeps_by = defaultdict(lambda: defaultdict(list))
        at96_by = defaultdict(list)
        for r in rs:
            key = (r["engine"], int(r["threads"]))
            b = (r["round"], float(r["build_s"]))
            if b not in builds[key]:
                builds[key].append(b)
            if r["index_bytes"]:
                size[r["engine"]] = int(r["index_bytes"])
            sweeps_by[key][r["round"]].append((float(r["recall"]), float(r["qps"])))
            if int(r["ef"]) == 96:
                at96_by[key].append(float(r["recall"]))
        engines = sorted({e for e, _ in builds}, key=lambda e: (not e.startswith("strata"), e))
        # Search is measured on the graph built on the fewest threads each engine has.
        first = {e: min(t for x, t in builds if x == e) for e in engines}
        sweeps = {e: sweeps_by[(e, first[e])] for e in engines}
        at96 = {e: at96_by[(e, first[e])] for e in engines}

        def build(e, t):
            v = [s for _, s in builds.get((e, t), [])]
            return statistics.median(v) if v else None

        def qps(e, target):
            v = [qps_at(p, target) for p in sweeps[e].values()]
            v = [x for x in v if x is not None]
            return statistics.median(v) if v else None

        rounds = len({r["round"] for r in rs})
        report.append(f"#### {data} ({rounds} round(s); medians)\n")
        report.append(
            "| engine | build, 1 thread (s) | build, 2 threads (s) | 2 threads' speed-up | "
            "QPS @ recall 0.90 / 0.95 / 0.99 | recall at ef = 96 | index bytes |"
        )
        report.append("|---|---|---|---|---|---|---|")
        for e in engines:
            b1, b2 = build(e, 1), build(e, 2)
            q = " / ".join(fmt(qps(e, t)) for t in TARGETS)
            r96 = statistics.median(at96[e]) if at96[e] else None
            report.append(
                f"| {e} | {fmt(b1, 1)} | {fmt(b2, 1)} | {ratio(b1, b2)} | {q} | "
                f"{fmt(r96, 3)} | {fmt(size.get(e))} |"
            )
        if "hnswlib" in engines and "strata" in engines:
            report.append("")
            report.append(
                f"Strata ÷ hnswlib: build on 1 thread {ratio(build('strata', 1), build('hnswlib', 1))}, "
                f"on 2 threads {ratio(build('strata', 2), build('hnswlib', 2))}; QPS at recall 0.95 "
                f"{ratio(qps('strata', 0.95), qps('hnswlib', 0.95))}; index bytes "
                f"{ratio(size.get('strata'), size.get('hnswlib'))}."
            )
        for e in (x for x in engines if x.startswith("strata")):
            peers = [p for p in ("hnswlib", "qdrant-edge") if p in engines]
            if peers:
                report.append(
                    f"{e} QPS at recall 0.95 ÷ "
                    + ", ".join(f"{p}: {ratio(qps(e, 0.95), qps(p, 0.95))}" for p in peers)
                    + (f"; index bytes ÷ hnswlib {ratio(size.get(e), size.get('hnswlib'))}" if e in size else "")
                    + "."
                )
        report.append("")
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(7, 4.5))
            for e in engines:
                pts = sorted(p for ps in sweeps[e].values() for p in ps)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=e)
            ax.set_yscale("log")
            ax.set_xlabel("recall@10")
            ax.set_ylabel("queries per second, 1 thread (log)")
            ax.set_title(f"{data}: HNSW m=16, one search thread")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
            fig.tight_layout()
            fig.savefig(os.path.join(out, f"{data}.png"), dpi=110)
        except ImportError:
            print("matplotlib missing: no plot", file=sys.stderr)
    text = "\n".join(report)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

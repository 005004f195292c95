#!/usr/bin/env python3
"""Draws how cost grows (scripts/bench-scaling's results, JSON lines) as one
PNG: a row per dimension (in flight, merchants, store records), throughput on
the left and p99 latency on the right, a line per mix and server.
Usage: plot-scaling.py <results.jsonl> <out.png>"""

import json
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TITLES = {
    "concurrency": "callbacks in flight",
    "merchants": "merchants (creates spread over all)",
    "store_records": "operation records already in the store",
}


def main() -> None:
    source, out = sys.argv[1], sys.argv[2]
    series = defaultdict(list)  # (dimension, mix, server) -> [(x, per_second, p99)]
    with open(source) as lines:
        for line in lines:
            run = json.loads(line)
            if run["x"] is None:
                continue
            key = (run["dimension"], run["mix"], run["server"])
            series[key].append((run["x"], run["per_second"], run["p99_ms"]))
    dimensions = [d for d in TITLES if any(k[0] == d for k in series)]
    fig, axes = plt.subplots(len(dimensions), 2, figsize=(11, 3.6 * len(dimensions)),
                             squeeze=False)
    for row, dimension in enumerate(dimensions):
        for (dim, mix, server), points in sorted(series.items()):
            if dim != dimension:
                continue
            points.sort()
            xs = [p[0] for p in points]
            style = "--" if server == "native" else "-"
            label = f"{mix}, {server}"
            axes[row][0].plot(xs, [p[1] for p in points], style, marker="o", label=label)
            axes[row][1].plot(xs, [p[2] for p in points], style, marker="o", label=label)
        for col, what in enumerate(["callbacks/s", "p99 latency (ms)"]):
            ax = axes[row][col]
            ax.set_xscale("symlog", linthresh=1)
            if dimension == "concurrency":
                ax.set_yscale("log")
            else:
                ax.set_ylim(bottom=0)
            ax.set_xlabel(TITLES[dimension])
            ax.set_ylabel(what)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    print_table(series)
    fig.suptitle("How cost grows: gateway (solid) and native baseline (dashed), same runs")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def print_table(series) -> None:
    """The points as a markdown table, the gateway next to the native
    baseline of the same run where there is one."""
    print("| dimension | x | mix | gateway /s | p99 | native /s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for (dimension, mix, server), points in sorted(series.items()):
        if server != "gateway":
            continue
        native = dict((p[0], p[1]) for p in series.get((dimension, mix, "native"), []))
        for x, per_second, p99 in sorted(points):
            base = native.get(x)
            ratio = f"{per_second / base:.2f}x" if base else ""
            base_text = f"{base:,.0f}" if base else ""
            print(f"| {dimension} | {x:,.0f} | {mix} | {per_second:,.0f} | {p99:.2f} ms "
                  f"| {base_text} | {ratio} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Markdown tables for BENCHMARKS.md from archc and PyTorch bench reports.

    python3 bench/tables.py bench/results/archc-cpu-resnet20.json bench/results/pytorch-cpu-resnet20.json ...

Reports are paired by model; rows by (mode, batch). Only the standard library.
"""
import json
import sys


def mib(b):
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


def main(paths):
    ours, theirs = {}, {}
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        side = ours if report["tool"].startswith("archc") else theirs
        for r in report["results"]:
            side[(r["model"], r["mode"], r["batch"])] = (r, report)
    models = sorted({k[0] for k in ours}, key=lambda m: [k[0] for k in ours].index(m))
    for model in models:
        first = next(v for k, v in ours.items() if k[0] == model)
        r, report = first
        print(f"### {model}\n")
        print(f"{report['tool']} ({r['backend']}) vs PyTorch, {r['threads']} threads, {report['machine']}, {report['date']}\n")
        print("| mode | batch | archc ms (median / p90) | PyTorch ms (median / p90) | archc img/s | PyTorch img/s | ratio | archc GFLOP/s | PyTorch GFLOP/s | archc peak | PyTorch peak |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key in sorted((k for k in ours if k[0] == model), key=lambda k: (k[1], k[2])):
            a = ours[key][0]
            t = theirs.get(key, (None,))[0]
            cells = [key[1], str(key[2]),
                     f"{a['latency_ms']['median']:.2f} / {a['latency_ms']['p90']:.2f}",
                     f"{t['latency_ms']['median']:.2f} / {t['latency_ms']['p90']:.2f}" if t else "-",
                     f"{a['images_per_s']:.0f}", f"{t['images_per_s']:.0f}" if t else "-",
                     f"{a['images_per_s'] / t['images_per_s']:.2f}×" if t else "-",
                     f"{a['gflops_achieved']:.1f}", f"{t['gflops_achieved']:.1f}" if t else "-",
                     mib(a["peak_bytes"]), mib(t["peak_bytes"]) if t else "-"]
            print("| " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main(sys.argv[1:])

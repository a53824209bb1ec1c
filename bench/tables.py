#!/usr/bin/env python3
"""Markdown tables for BENCHMARKS.md from archc and PyTorch bench reports.

    python3 bench/tables.py bench/results/round-*/*.json

Reports are paired by model and, when they lie in per-round directories
(`bench/run_cpu.sh` writes round-1/, round-2/, ...), by round; rows by (mode, batch).
Each side's cells are from its median round by images/s; the ratio is the median of
the per-round ratios (archc ÷ PyTorch in the same round, back to back), with their
range. Only the standard library.
"""
import json
import os
import statistics
import sys


def mib(b):
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


def median_run(runs):
    """The run with the median images/s (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r["images_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def main(paths):
    ours, theirs, meta, sgemm = {}, {}, {}, {}
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        round_ = os.path.basename(os.path.dirname(path))
        if report["tool"] == "sgemm":
            sgemm[round_] = report
            continue
        side = ours if report["tool"].startswith("archc") else theirs
        for r in report["results"]:
            side.setdefault((r["model"], r["mode"], r["batch"]), {})[round_] = r
            if side is ours:
                meta.setdefault(r["model"], (r, report, set()))[2].add(round_)
    for model, (first, report, rounds) in meta.items():
        print(f"### {model}\n")
        print(f"{report['tool']} ({first['backend']}) vs PyTorch, {first['threads']} threads, "
              f"{report['machine']}, {report['date']}, {len(rounds)} round(s)\n")
        print("| mode | batch | archc ms (median / p90) | PyTorch ms (median / p90) | archc img/s | PyTorch img/s "
              "| ratio (range over rounds) | archc GFLOP/s | PyTorch GFLOP/s | archc peak | PyTorch peak |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key in sorted((k for k in ours if k[0] == model), key=lambda k: (k[1], k[2])):
            a_rounds, t_rounds = ours[key], theirs.get(key, {})
            a = median_run(a_rounds.values())
            t = median_run(t_rounds.values()) if t_rounds else None
            ratios = [a_rounds[r]["images_per_s"] / t_rounds[r]["images_per_s"] for r in a_rounds if r in t_rounds]
            if ratios:
                ratio = f"{statistics.median(ratios):.2f}×"
                if len(ratios) > 1:
                    ratio += f" ({min(ratios):.2f}–{max(ratios):.2f})"
            else:
                ratio = "-"
            cells = [key[1], str(key[2]),
                     f"{a['latency_ms']['median']:.2f} / {a['latency_ms']['p90']:.2f}",
                     f"{t['latency_ms']['median']:.2f} / {t['latency_ms']['p90']:.2f}" if t else "-",
                     f"{a['images_per_s']:.0f}", f"{t['images_per_s']:.0f}" if t else "-",
                     ratio,
                     f"{a['gflops_achieved']:.1f}", f"{t['gflops_achieved']:.1f}" if t else "-",
                     mib(a["peak_bytes"]), mib(t["peak_bytes"]) if t else "-"]
            print("| " + " | ".join(cells) + " |")
        print()
    if sgemm:
        print_peak(sgemm, ours, theirs)


def print_peak(sgemm, ours, theirs):
    """Each model's training at its largest batch as a share of the same round's sgemm."""
    rates = [sgemm[r]["gflops_median"] for r in sorted(sgemm)]
    first = next(iter(sgemm.values()))
    print(f"### Against the machine's sgemm\n")
    print(f"sgemm ({first['n']}×{first['n']}, {first['threads']} threads, `gemm` crate): "
          + ", ".join(f"{r:.0f}" for r in rates) + " GFLOP/s in the rounds\n")
    print("| model | training batch | archc GFLOP/s | share of sgemm | PyTorch GFLOP/s | share of sgemm |")
    print("|---|---:|---:|---:|---:|---:|")
    for model in sorted({k[0] for k in ours}):
        train = [k for k in ours if k[0] == model and k[1] == "train"]
        if not train:
            continue
        key = max(train, key=lambda k: k[2])
        cells = [model, str(key[2])]
        for side in (ours, theirs):
            shares = [side[key][r]["gflops_achieved"] / sgemm[r]["gflops_median"]
                      for r in side.get(key, {}) if r in sgemm]
            gflops = [side[key][r]["gflops_achieved"] for r in side.get(key, {}) if r in sgemm]
            if shares:
                cells += [f"{statistics.median(gflops):.0f}",
                          f"{statistics.median(shares):.0%} ({min(shares):.0%}–{max(shares):.0%})"]
            else:
                cells += ["-", "-"]
        print("| " + " | ".join(cells) + " |")
    print()


if __name__ == "__main__":
    main(sys.argv[1:])

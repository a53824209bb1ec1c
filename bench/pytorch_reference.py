#!/usr/bin/env python3
"""PyTorch's side of `archc bench`: the same measurements, the same JSON schema.

For each zoo model named on the command line this builds its PyTorch twin (the
definitions in tests/fixtures/reference/torch_reference.py, whose parameter and
MAC counts are checked equal to archc's), and for each batch size and mode
measures, on random inputs after warm-up iterations:

  infer   model.eval(), torch.inference_mode(), one forward pass
  train   model.train(), forward, cross-entropy against fixed labels, backward,
          SGD(lr=0.01, momentum=0.9) step (archc bench's training step)

  latency_ms       median and p90 (nearest rank) of the timed iterations
  images_per_s     batch / median latency
  gflops_achieved  forward FLOPs per image (FlopCounterMode, = archc's core
                   convention x2), x3 for a training step, x images/s
  peak_bytes       CPU: growth of the resident set (malloc_trim, reset VmHWM via
                   /proc/self/clear_refs, VmHWM at the end minus VmRSS at the
                   start): archc's rule. CUDA: max_memory_allocated growth.

and writes a report with archc's schema ("archc-bench/1"):

    python3 bench/pytorch_reference.py resnet20 lenet5 --threads 2 --out bench/results/pytorch-cpu.json
    archc bench models/resnet20.arch --threads 2 --compare bench/results/pytorch-cpu.json

Not run by CI (it needs torch, torchvision and timm). Use the same --threads for
both sides, and run them back to back on the same machine.
"""
import argparse
import ctypes
import datetime
import json
import math
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "reference"))
from torch_reference import MODELS  # noqa: E402

SCHEMA = "archc-bench/1"


def percentile(samples, q):
    """Nearest rank; the median of an even count is the mean of the middle two."""
    s = sorted(samples)
    n = len(s)
    if q == 0.5 and n % 2 == 0:
        return (s[n // 2 - 1] + s[n // 2]) / 2
    rank = min(max(math.ceil(q * n), 1), n)
    return s[rank - 1]


def status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line[len(key):].strip().split()[0])
    return None


class ResidentGrowth:
    """archc's CPU memory rule (src/bench/memory.rs)."""

    def __init__(self):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.baseline = status_kib("VmRSS:") * 1024
        except OSError:
            self.baseline = None

    def peak_growth(self):
        if self.baseline is None:
            return None
        return max(status_kib("VmHWM:") * 1024 - self.baseline, 0)


class DeviceGrowth:
    def __init__(self):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self.baseline = torch.cuda.memory_allocated()

    def peak_growth(self):
        return max(torch.cuda.max_memory_allocated() - self.baseline, 0)


def forward_flops(model, shape):
    model.eval()
    x = torch.randn(1, *shape)
    # Grad enabled, as torch_reference.py counts (attention goes through SDPA).
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(name, mode, batch, args, device):
    build, shape, _ = MODELS[name]
    torch.manual_seed(0)
    model = build().to(device)
    x = torch.randn(batch, *shape, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    if mode == "infer":
        model.eval()

        def step():
            with torch.inference_mode(), autocast:
                model(x)
    else:
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        with torch.no_grad():
            classes = model(x[:1]).shape[-1]
        labels = (torch.arange(batch, device=device) % classes)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = F.cross_entropy(model(x), labels)
            loss.backward()
            optimizer.step()
    sync(device)
    probe = DeviceGrowth() if device.type == "cuda" else ResidentGrowth()
    seconds = []
    for i in range(args.warmup + args.iters):
        start = time.perf_counter()
        step()
        sync(device)
        elapsed = time.perf_counter() - start
        if i >= args.warmup:
            seconds.append(elapsed)
    return seconds, probe.peak_growth()


def machine(device):
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = f"{cpu} ({os.cpu_count()} cores)"
    if device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help=f"zoo names: {', '.join(MODELS)}")
    ap.add_argument("--batch", default="1,32,128")
    ap.add_argument("--mode", choices=["infer", "train", "both"], default="both")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="bf16 = torch.autocast (mixed precision)")
    ap.add_argument("--out", help="write the JSON report here (default: stdout)")
    args = ap.parse_args()
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batches = [int(b) for b in args.batch.split(",")]
    modes = ["infer", "train"] if args.mode == "both" else [args.mode]
    results = []
    for name in args.models:
        build, shape, _ = MODELS[name]
        flops = forward_flops(build(), shape)
        for mode in modes:
            factor = 1 if mode == "infer" else 3
            for batch in batches:
                seconds, peak = measure(name, mode, batch, args, device)
                median, p90 = percentile(seconds, 0.5), percentile(seconds, 0.9)
                images_per_s = batch / median
                print(f"  {name} {mode} batch {batch}: {median * 1e3:.2f} ms", file=sys.stderr)
                results.append({
                    "model": name,
                    "backend": "pytorch" + ("-bf16" if args.dtype == "bf16" else ""),
                    "device": "cuda:0" if device.type == "cuda" else "cpu",
                    "threads": torch.get_num_threads(),
                    "batch": batch,
                    "mode": mode,
                    "latency_ms": {"median": median * 1e3, "p90": p90 * 1e3},
                    "images_per_s": images_per_s,
                    "gflops_achieved": flops * factor * images_per_s / 1e9,
                    "peak_bytes": peak,
                })
    report = {
        "schema": SCHEMA,
        "tool": f"pytorch {torch.__version__.split('+')[0]}",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine(device),
        "results": results,
    }
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, args.out)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()

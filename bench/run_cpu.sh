#!/usr/bin/env bash
# The CPU tables of BENCHMARKS.md: for each model, PyTorch then archc, back to back on
# the same machine and thread count; JSON into bench/results/, tables to stdout.
#   bash bench/run_cpu.sh [ARCHC_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
archc=${1:-target/debug/archc}
threads=${THREADS:-2}
out=bench/results
mkdir -p "$out"
run() { # model warmup iters
    local model=$1 warmup=$2 iters=$3
    python3 bench/pytorch_reference.py "$model" --threads "$threads" --warmup "$warmup" --iters "$iters" \
        --out "$out/pytorch-cpu-$model.json"
    "$archc" bench "models/$model.arch" --threads "$threads" --warmup "$warmup" --iters "$iters" \
        --out "$out/archc-cpu-$model.json" --compare "$out/pytorch-cpu-$model.json"
}
run lenet5 3 20
run resnet20 2 6
run resnet18_cifar 1 3

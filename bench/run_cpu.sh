#!/usr/bin/env bash
# The CPU tables of BENCHMARKS.md: for each model, PyTorch then archc, back to back on
# the same machine and thread count, repeated in ROUNDS rounds (default 3) because a
# shared machine's speed drifts by tens of percent within minutes; JSON into
# bench/results/round-N/ (with the machine's sgemm rate, measured at the start of each
# round), then tables of the per-round medians to stdout.
#   bash bench/run_cpu.sh [ARCHC_BINARY [MODEL...]]     (default: lenet5 resnet20 resnet18_cifar)
set -euo pipefail
cd "$(dirname "$0")/.."
archc=${1:-target/debug/archc}
shift || true
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(lenet5 resnet20 resnet18_cifar)
threads=${THREADS:-2}
rounds=${ROUNDS:-3}
# The machine's sgemm rate, measured in each round, to hold achieved GFLOP/s against.
cargo build -q -p archc-kernels --example sgemm
for round in $(seq 1 "$rounds"); do
    out=bench/results/round-$round
    mkdir -p "$out"
    target/debug/examples/sgemm 2048 "$threads" 5 > "$out/sgemm.json"
    for model in "${models[@]}"; do
        # Fewer iterations for the slow ones: ResNet-18's training step at batch 128 takes seconds.
        case $model in
            # LeNet-5's steps take under a millisecond at batch 1 and 32: a hundred of them,
            # so that a single preempted step cannot move the median.
            lenet5) warmup=10 iters=100 ;;
            resnet20) warmup=2 iters=6 ;;
            *) warmup=1 iters=3 ;;
        esac
        python3 bench/pytorch_reference.py "$model" --threads "$threads" --warmup "$warmup" --iters "$iters" \
            --out "$out/pytorch-cpu-$model.json"
        "$archc" bench "models/$model.arch" --threads "$threads" --warmup "$warmup" --iters "$iters" \
            --out "$out/archc-cpu-$model.json" --compare "$out/pytorch-cpu-$model.json"
    done
done
python3 bench/tables.py bench/results/round-*/*.json

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
[ -x "$archc" ] || { echo "run_cpu.sh: $archc: no such binary (cargo build --features cuda)" >&2; exit 1; }
# The results of this run alone: an earlier run's rounds (more of them, or reports
# split otherwise) would be read into its tables.
rm -rf bench/results/round-*
for round in $(seq 1 "$rounds"); do
    out=bench/results/round-$round
    mkdir -p "$out"
    target/debug/examples/sgemm 2048 "$threads" 5 > "$out/sgemm.json"
    for model in "${models[@]}"; do
        # Fewer iterations for the slow ones: ResNet-18's training step at batch 128 takes
        # seconds. Its batch of one (tens of milliseconds a step) runs on its own with
        # more: three timed steps let one preempted step move the median.
        case $model in
            # LeNet-5's steps take under a millisecond at batch 1 and 32: a hundred of them,
            # so that a single preempted step cannot move the median.
            lenet5) runs=("1,32,128 10 100") ;;
            resnet20) runs=("1,32,128 2 6") ;;
            resnet18_cifar) runs=("1 3 12" "32,128 1 3") ;;
            *) runs=("1,32,128 1 3") ;;
        esac
        for run in "${runs[@]}"; do
            read -r batches warmup iters <<< "$run"
            # One report per model, or per part of a model's batches (the tables pair
            # them by model, mode and batch).
            name=$model
            [ ${#runs[@]} -eq 1 ] || name=$model-b${batches//,/-}
            python3 bench/pytorch_reference.py "$model" --batch "$batches" --threads "$threads" \
                --warmup "$warmup" --iters "$iters" --out "$out/pytorch-cpu-$name.json"
            "$archc" bench "models/$model.arch" --batch "$batches" --threads "$threads" --warmup "$warmup" \
                --iters "$iters" --out "$out/archc-cpu-$name.json" --compare "$out/pytorch-cpu-$name.json"
        done
    done
done
python3 bench/tables.py bench/results/round-*/*.json

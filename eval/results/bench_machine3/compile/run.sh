#!/usr/bin/env bash
# The compile / bf16 rollout figures of bench_machine4/compile/run.sh, repeated on the Intel Xeon machine
# (2 cores, AMX), then the data and embed benches at today's code; run alone. Logs and JSON land beside this script.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
D=eval/results/bench_machine3/compile
export MUJOCO_GL=egl
skip() { [ -s "$1" ] && echo "skip $1 (exists)"; }
for run in 1 2; do
  for p in 32 bf16; do
    skip $D/eval_resnet18_${p}_run$run.json || .venv/bin/reprl bench eval --repeats 5 --horizon 30 --no-serial --precision $p --json $D/eval_resnet18_${p}_run$run.json
    skip $D/eval_resnet18_${p}_compiled_run$run.json || .venv/bin/reprl bench eval --repeats 5 --horizon 30 --no-serial --precision $p --compile --json $D/eval_resnet18_${p}_compiled_run$run.json
  done
done
skip $D/eval_tiny_32_compiled.json || .venv/bin/reprl bench eval --repeats 5 --horizon 30 --no-serial --encoder tiny --precision 32 --compile --json $D/eval_tiny_32_compiled.json
skip $D/eval_tiny_bf16_compiled.json || .venv/bin/reprl bench eval --repeats 5 --horizon 30 --no-serial --encoder tiny --precision bf16 --compile --json $D/eval_tiny_bf16_compiled.json
for s in 64 224; do
  skip $D/data_$s.json || .venv/bin/reprl bench data --image-size $s --workers 0 --repeats 5 --batches 10 --json $D/data_$s.json
done
skip $D/data_64_run2.json || .venv/bin/reprl bench data --image-size 64 --workers 0 --repeats 5 --batches 10 --json $D/data_64_run2.json
for s in 64 128 224; do
  skip $D/embed_$s.json || .venv/bin/reprl bench embed --image-size $s --repeats 7 --json $D/embed_$s.json
done

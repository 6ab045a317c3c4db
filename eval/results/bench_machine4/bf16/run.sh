#!/usr/bin/env bash
# reprl bench eval: ResNet-18 (the default) in float32 and under bfloat16 autocast, alternated twice, then the
# small CNN in both; run alone on the 2-core machine. Logs and JSON land beside this script.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
D=eval/results/bench_machine4/bf16
export MUJOCO_GL=egl
for run in 1 2; do
  for p in 32 bf16; do
    .venv/bin/reprl bench eval --repeats 5 --horizon 30 --no-serial --precision $p --json $D/eval_resnet18_${p}_run$run.json
  done
done
.venv/bin/reprl bench eval --repeats 5 --horizon 30 --no-serial --encoder tiny --precision 32 --json $D/eval_tiny_32.json
.venv/bin/reprl bench eval --repeats 5 --horizon 30 --no-serial --encoder tiny --precision bf16 --json $D/eval_tiny_bf16.json

#!/usr/bin/env bash
# reprl bench eval: ResNet-18 (the default) eager and compiled, in float32 and under bfloat16 autocast, alternated
# twice, then the small CNN compiled; run alone on the 2-core machine. Logs and JSON land beside this script.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
D=eval/results/bench_machine4/compile
export MUJOCO_GL=egl
for run in 1 2; do
  for p in 32 bf16; do
    .venv/bin/reprl bench eval --repeats 5 --horizon 30 --no-serial --precision $p --json $D/eval_resnet18_${p}_run$run.json
    .venv/bin/reprl bench eval --repeats 5 --horizon 30 --no-serial --precision $p --compile --json $D/eval_resnet18_${p}_compiled_run$run.json
  done
done
.venv/bin/reprl bench eval --repeats 5 --horizon 30 --no-serial --encoder tiny --precision 32 --compile --json $D/eval_tiny_32_compiled.json
.venv/bin/reprl bench eval --repeats 5 --horizon 30 --no-serial --encoder tiny --precision bf16 --compile --json $D/eval_tiny_bf16_compiled.json

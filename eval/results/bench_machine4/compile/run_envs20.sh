#!/usr/bin/env bash
# reprl bench eval with 20 environments in lockstep (a suite's default where 8 GB of memory are free), ResNet-18
# uncompiled and compiled, float32 and bf16; run alone on the 2-core machine after run.sh. Logs and JSON beside it.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
D=eval/results/bench_machine4/compile
export MUJOCO_GL=egl
for p in 32 bf16; do
  .venv/bin/reprl bench eval --envs 20 --repeats 5 --horizon 30 --no-serial --precision $p --json $D/eval20_resnet18_${p}.json
  .venv/bin/reprl bench eval --envs 20 --repeats 5 --horizon 30 --no-serial --precision $p --compile --json $D/eval20_resnet18_${p}_compiled.json
done

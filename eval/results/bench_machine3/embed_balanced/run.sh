#!/usr/bin/env bash
# reprl bench embed with the code before (28abc55) and after even batches per encoder caller, alternated;
# run alone on the 2-core machine. "after" was the working tree with after.patch applied (not kept). Logs and
# JSON land beside this script.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
D=eval/results/bench_machine3/embed_balanced
BEFORE=/tmp/reprl_before_28abc55
[ -d $BEFORE ] || { mkdir -p $BEFORE && git archive 28abc55 reprl | tar -x -C $BEFORE; }
export MUJOCO_GL=egl
for run in 1 2 3; do
  for s in ${SIZES:-64 128}; do
    .venv/bin/python $D/before.py $BEFORE bench embed --image-size $s --repeats 7 --json $D/before_${s}_run$run.json
    .venv/bin/python -m reprl bench embed --image-size $s --repeats 7 --json $D/after_${s}_run$run.json
  done
done
